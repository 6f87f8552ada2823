#pragma once
// Private: the centering of an n×n matrix for each estimator, in O(n²) without forming H = I − 11ᵀ/n, and
// the centered sums of two Grams. One formula, C_ij = P_ij − u_i − v_j + c, serves the on-the-fly sums and
// the dense centered copy.

#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <utility>

namespace cka::detail {

/// Centering of an n×n matrix P written as  C_ij = P_ij − u_i − v_j + c  (i ≠ j, and i = j for the biased
/// estimator; the unbiased estimator's diagonal is zero):
///   biased:   u = P1/n (row means), v = 1ᵀP/n (column means), c = 1ᵀP1/n²        (C = HPH)
///   unbiased: u = v = P̃1/(n−2), c = 1ᵀP̃1/((n−1)(n−2))  (U-centering of P̃ = P − diag P; P symmetric)
template <class A>
struct centering {
  vector<A> u, v;
  A c;
};

/// The centering of a symmetric n×n matrix from its row sums r and its diagonal (used by the unbiased
/// estimator only). O(n).
template <class A, class D>
centering<A> centering_from_sums(vector<A> r, const D& diagonal, estimator est) {
  const A nn = A(r.size());
  if (est == estimator::biased) {
    const A s = r.sum();
    vector<A> u = r / nn;
    return {u, u, A(s / (nn * nn))};
  }
  r -= diagonal;
  const A s = r.sum();
  vector<A> u = r / A(nn - 2);
  return {u, u, A(s / ((nn - 1) * (nn - 2)))};
}

/// The centering of a symmetric K, from its lower triangle, accumulated in A. O(n²).
template <class A, class M>
centering<A> centering_of(const M& k, estimator est) {
  const Eigen::Index n = k.rows();
  vector<A> r = vector<A>::Zero(n);
  for (Eigen::Index j = 0; j < n; ++j) {
    const auto seg = lower_segment(k, j).template cast<A>();
    r(j) += seg.sum();
    r.tail(n - j - 1) += seg.tail(n - j - 1);
  }
  return centering_from_sums<A>(std::move(r), k.diagonal().template cast<A>(), est);
}

/// The biased centering HPH of any square P (not necessarily symmetric). O(n²).
template <class A>
centering<A> centering_of_general(const matrix<A>& p) {
  const A nn = A(p.rows());
  return {p.rowwise().sum() / nn, p.colwise().sum().transpose() / nn, A(p.sum() / (nn * nn))};
}

/// Dense centered copy of P under the centering c (computed from P). O(n²).
template <class A>
matrix<A> centered_dense(matrix<A> p, const centering<A>& c, estimator est) {
  p.colwise() -= c.u;
  p.rowwise() -= c.v.transpose();
  p.array() += c.c;
  if (est == estimator::unbiased) p.diagonal().setZero();
  return p;
}

/// Dense centered copy of a symmetric P: HPH (biased) or the U-centered P̃ (unbiased). O(n²).
template <class A>
matrix<A> centered_dense(matrix<A> p, estimator est) {
  const centering<A> c = centering_of<A>(p, est);
  return centered_dense<A>(std::move(p), c, est);
}

/// Centered sums of two symmetric Grams: kl = Σ C(K)∘C(L), kk = Σ C(K)², ll = Σ C(L)², and the raw
/// squared norms ref_k = Σ K'², ref_l = Σ L'² (K' = K, or K̃ for the unbiased estimator). Reads the lower
/// triangles only, columns on the OpenMP threads; O(n²) time, O(n) extra memory per thread.
template <class A, class MK, class ML>
centered_sums<A> centered_products(const MK& k, const ML& l, estimator est) {
  const Eigen::Index n = k.rows();
  const centering<A> ck = centering_of<A>(k, est);
  const centering<A> cl = centering_of<A>(l, est);
  const bool keep_diagonal = est == estimator::biased;
  // Each column's five sums, on the OpenMP threads, then added in column order: the same bits on any
  // number of threads.
  matrix<A> part(5, n);
#if defined(_OPENMP)
#pragma omp parallel num_threads(Eigen::nbThreads()) if (n >= 256)
#endif
  {
    vector<A> a(n), b(n), rk(n), rl(n);
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 16)
#endif
    for (Eigen::Index j = 0; j < n; ++j) {
      const Eigen::Index m = n - j;
      rk.head(m) = lower_segment(k, j).template cast<A>();
      rl.head(m) = lower_segment(l, j).template cast<A>();
      if (!keep_diagonal) {
        rk(0) = A(0);
        rl(0) = A(0);
      }
      a.head(m) = rk.head(m) - ck.u.tail(m);
      a.head(m).array() -= A(ck.v(j) - ck.c);
      b.head(m) = rl.head(m) - cl.u.tail(m);
      b.head(m).array() -= A(cl.v(j) - cl.c);
      if (!keep_diagonal) {
        a(0) = A(0);
        b(0) = A(0);
      }
      // Off-diagonal entries appear twice in the full sum, the diagonal once.
      part(0, j) = A(2) * a.head(m).dot(b.head(m)) - a(0) * b(0);
      part(1, j) = A(2) * a.head(m).squaredNorm() - a(0) * a(0);
      part(2, j) = A(2) * b.head(m).squaredNorm() - b(0) * b(0);
      part(3, j) = A(2) * rk.head(m).squaredNorm() - rk(0) * rk(0);
      part(4, j) = A(2) * rl.head(m).squaredNorm() - rl(0) * rl(0);
    }
  }
  centered_sums<A> s{A(0), A(0), A(0), A(0), A(0)};
  for (Eigen::Index j = 0; j < n; ++j) {
    s.kl += part(0, j);
    s.kk += part(1, j);
    s.ll += part(2, j);
    s.ref_k += part(3, j);
    s.ref_l += part(4, j);
  }
  return s;
}

}  // namespace cka::detail
