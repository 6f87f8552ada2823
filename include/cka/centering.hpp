#pragma once
/// \file centering.hpp
/// The two HSIC estimators and the centering each one applies to a Gram matrix, in O(n²) without forming
/// the centering matrix H = I − 11ᵀ/n.

#include <cka/detail/checks.hpp>
#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

namespace cka {

/// Which HSIC estimator to use.
/// - `biased`: HSIC = tr(K H L H) / (n−1)², H = I − 11ᵀ/n (Gretton et al. 2005; the convention of
///   Kornblith et al.'s reference code). Needs n ≥ 2.
/// - `unbiased`: Song et al. 2012 (JMLR 13), eq. 5, with K̃, L̃ the Grams with zeroed diagonals:
///   HSIC = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3)); equal to the inner product of
///   the U-centred Grams (Székely & Rizzo 2014) over n(n−3). Needs n ≥ 4. May be negative.
///   CKA with this estimator in all three HSIC terms is the "debiased CKA" of Kornblith et al. 2019.
enum class estimator { biased, unbiased };

/// Smallest sample count the estimator accepts: 2 (biased) or 4 (unbiased).
constexpr Eigen::Index min_samples(estimator est) { return est == estimator::biased ? 2 : 4; }

namespace detail {

inline const char* estimator_name(estimator est) {
  return est == estimator::biased ? "the biased estimator" : "the unbiased estimator";
}

/// Centering of a symmetric n×n matrix K written as  C_ij = K_ij − u_i − u_j + c  (i ≠ j, and i = j for the
/// biased estimator; the unbiased estimator's diagonal is zero):
///   biased:   u = K1/n,            c = 1ᵀK1/n²                 (C = HKH)
///   unbiased: u = K̃1/(n−2),        c = 1ᵀK̃1/((n−1)(n−2))       (U-centering of K̃ = K − diag K)
template <class A>
struct centering {
  vector<A> u;
  A c;
};

/// The centering of K, from its lower triangle, accumulated in A. O(n²).
template <class A, class M>
centering<A> centering_of(const M& k, estimator est) {
  const Eigen::Index n = k.rows();
  vector<A> r = vector<A>::Zero(n);
  for (Eigen::Index j = 0; j < n; ++j) {
    const auto seg = lower_segment(k, j).template cast<A>();
    r(j) += seg.sum();
    r.tail(n - j - 1) += seg.tail(n - j - 1);
  }
  const A nn = A(n);
  if (est == estimator::biased) {
    const A s = r.sum();
    return {r / nn, A(s / (nn * nn))};
  }
  r -= k.diagonal().template cast<A>();
  const A s = r.sum();
  return {r / A(nn - 2), A(s / ((nn - 1) * (nn - 2)))};
}

/// Sums over all i, j of the centred entries: kl = Σ C(K)∘C(L), kk = Σ C(K)², ll = Σ C(L)², and the raw
/// squared norms ref_k = Σ K'², ref_l = Σ L'² (K' = K, or K̃ for the unbiased estimator) that tell a
/// vanishing centred Gram from rounding. Reads the lower triangles only; O(n²) time, O(n) extra memory.
template <class A>
struct centered_sums {
  A kl, kk, ll, ref_k, ref_l;
};

template <class A, class MK, class ML>
centered_sums<A> centered_products(const MK& k, const ML& l, estimator est) {
  const Eigen::Index n = k.rows();
  const centering<A> ck = centering_of<A>(k, est);
  const centering<A> cl = centering_of<A>(l, est);
  const bool keep_diagonal = est == estimator::biased;
  vector<A> a(n), b(n), rk(n), rl(n);
  centered_sums<A> s{A(0), A(0), A(0), A(0), A(0)};
  for (Eigen::Index j = 0; j < n; ++j) {
    const Eigen::Index m = n - j;
    rk.head(m) = lower_segment(k, j).template cast<A>();
    rl.head(m) = lower_segment(l, j).template cast<A>();
    if (!keep_diagonal) {
      rk(0) = A(0);
      rl(0) = A(0);
    }
    a.head(m) = rk.head(m) - ck.u.tail(m);
    a.head(m).array() -= A(ck.u(j) - ck.c);
    b.head(m) = rl.head(m) - cl.u.tail(m);
    b.head(m).array() -= A(cl.u(j) - cl.c);
    if (!keep_diagonal) {
      a(0) = A(0);
      b(0) = A(0);
    }
    // Off-diagonal entries appear twice in the full sum, the diagonal once.
    s.kl += A(2) * a.head(m).dot(b.head(m)) - a(0) * b(0);
    s.kk += A(2) * a.head(m).squaredNorm() - a(0) * a(0);
    s.ll += A(2) * b.head(m).squaredNorm() - b(0) * b(0);
    s.ref_k += A(2) * rk.head(m).squaredNorm() - rk(0) * rk(0);
    s.ref_l += A(2) * rl.head(m).squaredNorm() - rl(0) * rl(0);
  }
  return s;
}

/// The HSIC normaliser: (n−1)² (biased) or n(n−3) (unbiased).
template <class A>
A hsic_denominator(Eigen::Index n, estimator est) {
  const A nn = A(n);
  return est == estimator::biased ? A((nn - 1) * (nn - 1)) : A(nn * (nn - 3));
}

/// The unbiased estimator in feature space. For column-centred X (n×d) and Y with squared row norms k and
/// l — the diagonals of the linear Grams, whose rows sum to zero — Song's formula times n(n−3) is
///   ‖XᵀY‖²_F + Σk·Σl/((n−1)(n−2)) − n/(n−2)·k·l;
/// `operator()` gives the two last terms, c1 = n/(n−2) and c2 = 1/((n−1)(n−2)) their coefficients.
template <class A>
struct unbiased_feature_terms {
  A c1, c2;
  explicit unbiased_feature_terms(Eigen::Index n)
      : c1(A(A(n) / A(n - 2))), c2(A(A(1) / (A(n - 1) * A(n - 2)))) {}
  A operator()(const vector<A>& k, const vector<A>& l) const { return A(c2 * k.sum() * l.sum() - c1 * k.dot(l)); }
};

/// Dense centred copy of an n×n matrix P of scalar A: H P H for the biased estimator (P need not be
/// symmetric), the U-centred P̃ (zero diagonal) for the unbiased one (P symmetric). O(n²).
template <class A>
matrix<A> centered_dense(matrix<A> p, estimator est) {
  const Eigen::Index n = p.rows();
  const A nn = A(n);
  if (est == estimator::unbiased) p.diagonal().setZero();
  const A row_div = est == estimator::biased ? nn : A(nn - 2);
  const A all_div = est == estimator::biased ? A(nn * nn) : A((nn - 1) * (nn - 2));
  const vector<A> r = p.rowwise().sum() / row_div;
  const Eigen::Matrix<A, 1, Eigen::Dynamic> c = p.colwise().sum() / row_div;
  const A s = p.sum() / all_div;
  p.colwise() -= r;
  p.rowwise() -= c;
  p.array() += s;
  if (est == estimator::unbiased) p.diagonal().setZero();
  return p;
}

}  // namespace detail

/// Centred copy of a symmetric Gram matrix K (n×n): HKH for `estimator::biased`; the U-centred K̃
/// (Székely & Rizzo 2014; zero diagonal) for `estimator::unbiased`, so that HSIC = ⟨C(K), C(L)⟩ / (n−1)²
/// or / (n(n−3)). Cost O(n²), accumulated in double for float input; no n×n centering matrix is formed.
/// Throws cka::invalid_argument if K is not square, not symmetric, not finite, or has fewer than
/// min_samples(est) rows.
template <class Derived>
matrix<typename Derived::Scalar> center_gram(const Eigen::MatrixBase<Derived>& k,
                                             estimator est = estimator::biased) {
  using T = typename Derived::Scalar;
  using A = accumulator_t<T>;
  const detail::view_t<Derived> kv(k.derived());
  detail::require_symmetric_gram("center_gram", "K", kv);
  detail::require_samples("center_gram", "K", kv.rows(), min_samples(est), detail::estimator_name(est));
  return detail::centered_dense<A>(kv.template cast<A>(), est).template cast<T>();
}

}  // namespace cka
