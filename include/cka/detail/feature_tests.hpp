#pragma once
// Private: the same tests for the linear kernel in feature space — centered columns instead of n×n Grams:
// batched permutation GEMMs of O(n·d1·d2), the closed-form null and the jackknife in O(n(d1 + d2)²).

#include <cka/detail/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/null_moments.hpp>
#include <cka/detail/parallel.hpp>
#include <cka/detail/permutations.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/ratio.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>
#include <cka/detail/gram_tests.hpp>
#include <cka/inference_types.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace cka::detail {

/// ‖C_x‖·‖C_y‖ for centered columns xc, yc with squared row norms k, l — plus, for the unbiased estimator,
/// the terms that cancel in each self-product: the size a permuted statistic's rounding is relative to.
/// O(n(d1² + d2²)).
template <class A>
A feature_rounding_scale(const matrix<A>& xc, const vector<A>& k, const matrix<A>& yc, const vector<A>& l, estimator est) {
  using std::sqrt;
  A mx = A((xc.transpose() * xc).squaredNorm()), my = A((yc.transpose() * yc).squaredNorm());
  if (est == estimator::unbiased) {
    const unbiased_feature_terms<A> t(xc.rows());
    mx += t.magnitude(k.sum(), k.sum(), k.squaredNorm());
    my += t.magnitude(l.sum(), l.sum(), l.squaredNorm());
  }
  return A(sqrt(mx) * sqrt(my));
}

/// The linear kernel in feature space: column-centered X and Y (n×d1, n×d2) and their squared row norms
/// k, l (the diagonals of A = XcXcᵀ and B = YcYcᵀ, whose rows sum to zero).
template <class A>
struct linear_features {
  matrix<A> xc, yc;
  vector<A> k, l;
  estimator est;
  /// ⟨C(K), C(L_π)⟩ from ‖G‖² for the cross moment G = Xcᵀ·(P Yc) and Σ k_i l_π(i): ‖G‖² for the
  /// biased estimator, plus the unbiased estimator's row-norm terms (detail/sums.hpp).
  A combine(const A& g_squared, const A& sum_a, const A& sum_b, const A& dot) const {
    if (est == estimator::biased) return g_squared;
    return A(g_squared + unbiased_feature_terms<A>(xc.rows())(sum_a, sum_b, dot));
  }
  A cross(const A& g_squared, const A& kl) const { return combine(g_squared, A(k.sum()), A(l.sum()), kl); }
  A self_x() const { return combine(A((xc.transpose() * xc).squaredNorm()), A(k.sum()), A(k.sum()), A(k.squaredNorm())); }
  A self_y() const { return combine(A((yc.transpose() * yc).squaredNorm()), A(l.sum()), A(l.sum()), A(l.squaredNorm())); }
  /// The library's zero-variance and overflow rule (cka::domain_error), with (Σk)² as the raw scale,
  /// raised for the unbiased estimator to the size of the terms that cancel (first_order_reference).
  void check(const char* fn, const A& ab, const A& aa, const A& bb) const { cka_ratio(fn, sums(ab, aa, bb)); }
  /// The size a statistic's rounding is relative to (feature_rounding_scale).
  A rounding_scale() const { return feature_rounding_scale(xc, k, yc, l, est); }
  centered_sums<A> sums(const A& ab, const A& aa, const A& bb) const {
    A ref_x = A(k.sum() * k.sum()), ref_y = A(l.sum() * l.sum());
    if (est == estimator::unbiased) {
      const unbiased_feature_terms<A> t(xc.rows());
      ref_x = first_order_reference(ref_x, A((xc.transpose() * xc).squaredNorm() + t.magnitude(k.sum(), k.sum(), k.squaredNorm())), xc.rows());
      ref_y = first_order_reference(ref_y, A((yc.transpose() * yc).squaredNorm() + t.magnitude(l.sum(), l.sum(), l.squaredNorm())), yc.rows());
    }
    return {ab, aa, bb, ref_x, ref_y};
  }
};

/// The centered columns of x, scaled by a power of two where their magnitudes lie beyond 2^±200 (linear
/// CKA and its tests are scale-invariant; the library's one rescaling rule).
template <class A, class V>
matrix<A> scaled_centered_columns(const V& x) {
  matrix<A> c = centered_columns<A>(x);
  const A s = safe_scale<A>(c);
  if (s != A(1)) c *= s;
  return c;
}

template <class A, class VX, class VY>
linear_features<A> features_of(const char* fn, const VX& x, const VY& y, estimator est) {
  require_same_samples(fn, "X", x, "Y", y);
  require_samples(fn, "X", x.rows(), est == estimator::biased ? 4 : 5, "a test on the estimator");
  require_finite(fn, "X", x);
  require_finite(fn, "Y", y);
  linear_features<A> f{scaled_centered_columns<A>(x), scaled_centered_columns<A>(y), vector<A>(), vector<A>(), est};
  f.k = f.xc.rowwise().squaredNorm();
  f.l = f.yc.rowwise().squaredNorm();
  return f;
}

/// Feature space is cheaper when a permutation's GEMM (2n·d1·d2 flops at GEMM rate) beats a gather over
/// n² Gram entries, or when two n×n Grams would not fit in 2 GiB.
inline bool prefer_features(Eigen::Index n, Eigen::Index d1, Eigen::Index d2) {
  return double(d1) * double(d2) <= 40.0 * double(n) || 16.0 * double(n) * double(n) > double(std::size_t(1) << 31);
}

/// One representation in feature space: its centered columns and their squared row norms k.
template <class A>
struct centered_side {
  const matrix<A>* xc;
  const vector<A>* k;
};

/// The permutation p-values of several representations X_1 … X_m against one Y in feature space, all
/// under the same permutations of Y's samples (permutation k depends only on the seed and k): each batch
/// of permutations gathers [P₁Yc, P₂Yc, …] once and multiplies it by the stacked [Xc_1, …, Xc_m] in one
/// GEMM, (Σd_i)·n·(batch·d_y) multiply-adds; T_π of X_i is ‖its block‖² (+ the unbiased terms, with
/// Σ k_i(r)·l(π(r))). A T_π within the rounding level of T counts as reaching it (tie_tolerance). Batches
/// run on the threads; the p-values do not depend on their number.
template <class A>
std::vector<double> permutation_p_values(const std::vector<centered_side<A>>& xs, const matrix<A>& yc, const vector<A>& l,
                                         estimator est, const permutation_options& o) {
  const Eigen::Index n = yc.rows(), dy = yc.cols(), m = Eigen::Index(xs.size());
  std::vector<Eigen::Index> offset{0};
  for (const auto& x : xs) offset.push_back(offset.back() + x.xc->cols());
  matrix<A> stacked(n, offset.back());
  for (Eigen::Index i = 0; i < m; ++i) stacked.middleCols(offset[std::size_t(i)], xs[std::size_t(i)].xc->cols()) = *xs[std::size_t(i)].xc;
  const unbiased_feature_terms<A> terms(n);
  const A sum_l = l.sum();
  // T for X_i from its block of G = stackedᵀ·(P Yc) and Σ k_i(r)·l(π(r)).
  auto statistic = [&](Eigen::Index i, const A& g_squared, const A& kl) {
    if (est == estimator::biased) return g_squared;
    return A(g_squared + terms(A(xs[std::size_t(i)].k->sum()), sum_l, kl));
  };
  // One batch: permutations first … last−1 gathered, multiplied, and each T_π handed to `use(i, k, T)`.
  const Eigen::Index batch =
      std::max<Eigen::Index>(1, std::min<Eigen::Index>(Eigen::Index(o.count), (Eigen::Index(1) << 21) / std::max<Eigen::Index>(1, n * dy)));
  auto run_batch = [&](long long first, long long last, bool identity, auto&& use) {
    const Eigen::Index b = Eigen::Index(last - first);
    matrix<A> block(n, b * dy);
    matrix<A> lp(n, b);  // l(π(r)) per permutation
    std::vector<Eigen::Index> perm(static_cast<std::size_t>(n));
    for (long long k = first; k < last; ++k) {
      const Eigen::Index at = Eigen::Index(k - first);
      if (identity) {
        for (Eigen::Index r = 0; r < n; ++r) perm[std::size_t(r)] = r;
      } else {
        seeded_permutation(o.seed, std::uint64_t(k), perm);
      }
      for (Eigen::Index c = 0; c < dy; ++c) {  // column by column: Yc is column-major
        const A* src = yc.data() + c * n;
        A* dst = block.data() + (at * dy + c) * n;
        for (Eigen::Index r = 0; r < n; ++r) dst[r] = src[perm[std::size_t(r)]];
      }
      for (Eigen::Index r = 0; r < n; ++r) lp(r, at) = l(perm[std::size_t(r)]);
    }
    matrix<A> g(stacked.cols(), block.cols());  // (Σd) × (b·dy)
    product_into(g, stacked.transpose(), block);
    for (Eigen::Index i = 0; i < m; ++i) {
      const Eigen::Index rows = xs[std::size_t(i)].xc->cols();
      for (Eigen::Index at = 0; at < b; ++at) {
        const A kli = est == estimator::unbiased ? A(xs[std::size_t(i)].k->dot(lp.col(at))) : A(0);
        use(i, first + at, statistic(i, A(g.block(offset[std::size_t(i)], at * dy, rows, dy).squaredNorm()), kli));
      }
    }
  };
  // The observed values through the same arithmetic, less their rounding level.
  std::vector<A> observed(static_cast<std::size_t>(m));
  run_batch(0, 1, true, [&](Eigen::Index i, long long, const A& t) { observed[std::size_t(i)] = t; });
  for (Eigen::Index i = 0; i < m; ++i) {
    const auto& x = xs[std::size_t(i)];
    observed[std::size_t(i)] -= tie_tolerance(n, feature_rounding_scale(*x.xc, *x.k, yc, l, est));
  }
  const long long count = static_cast<long long>(o.count), batches = (count + batch - 1) / batch;
  const int threads = Eigen::nbThreads();
  auto mine = per_thread(threads, std::vector<long long>(static_cast<std::size_t>(m), 0));
  parallel_for(Eigen::Index(batches), threads, [&](int thread, Eigen::Index bt) {
    run_batch(bt * batch, std::min<long long>(bt * batch + batch, count), false, [&](Eigen::Index i, long long, const A& t) {
      if (t >= observed[std::size_t(i)]) ++mine[std::size_t(thread)][std::size_t(i)];
    });
  });
  std::vector<long long> at_least(static_cast<std::size_t>(m), 0);
  for (const auto& counts : mine)
    for (std::size_t i = 0; i < counts.size(); ++i) at_least[i] += counts[i];
  std::vector<double> p(static_cast<std::size_t>(m));
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = double(1 + at_least[i]) / double(1 + count);
  return p;
}

/// The permutation p-value of one pair in feature space (permutation_p_values with one X).
template <class A>
double permutation_p_value(const linear_features<A>& f, const permutation_options& o) {
  return permutation_p_values<A>({centered_side<A>{&f.xc, &f.k}}, f.yc, f.l, f.est, o)[0];
}

/// Row products c_i = Σ_{j≠i} Ã_ij B̃_ij of the U-centered linear Grams Ã, B̃ in feature space. With
/// A = XcXcᵀ (zero row sums, diagonal k) U-centering is Ã_ij = A_ij + p(k_i + k_j) − q for i ≠ j, p = 1/(n−2),
/// q = Σk/((n−1)(n−2)) (the same for B with l and r); expanding the product leaves x̃ᵢᵀ(XcᵀYc)ỹᵢ,
/// x̃ᵢᵀ(Xcᵀl), ỹᵢᵀ(Ycᵀk) and sums of k and l: O(n·d1·d2) for all i, no Gram.
template <class A>
vector<A> u_centered_row_products(const matrix<A>& xc, const vector<A>& k, const matrix<A>& yc, const vector<A>& l) {
  const Eigen::Index n = xc.rows();
  const A p = A(1) / A(n - 2), K = k.sum(), L = l.sum(), KL = k.dot(l);
  const A q = K / (A(n - 1) * A(n - 2)), r = L / (A(n - 1) * A(n - 2));
  const vector<A> s1 = (xc * (xc.transpose() * yc)).cwiseProduct(yc).rowwise().sum() - k.cwiseProduct(l);
  const vector<A> alpha = xc * (xc.transpose() * l), beta = yc * (yc.transpose() * k);
  vector<A> c(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const A u = p * k(i) - q, v = p * l(i) - r, kl = k(i) * l(i);
    c(i) = s1(i) - v * k(i) + p * (alpha(i) - kl) - u * l(i) + p * (beta(i) - kl) + A(n - 1) * u * v + p * u * (L - l(i)) +
           p * v * (K - k(i)) + p * p * (KL - kl);
  }
  return c;
}

/// The jackknife of linear CKA in feature space, O(n·(d1 + d2)²), memory O(n(d1 + d2)).
template <class A>
jackknife_result jackknife_of(const linear_features<A>& f, double level) {
  const A aa = f.self_x(), bb = f.self_y();
  const A ab = f.cross(A((f.xc.transpose() * f.yc).squaredNorm()), A(f.k.dot(f.l)));
  if (f.est == estimator::unbiased) {
    const vector<A> zero = vector<A>::Zero(f.xc.rows());
    return jackknife_from<A>(ab, aa, bb, u_centered_row_products(f.xc, f.k, f.yc, f.l),
                             u_centered_row_products(f.xc, f.k, f.xc, f.k), u_centered_row_products(f.yc, f.l, f.yc, f.l),
                             zero, zero, f.est, level);
  }
  // Biased: A = XcXcᵀ, so Σ_j A_ij B_ij = x̃ᵢᵀ(XcᵀYc)ỹᵢ and the diagonal is k.
  const vector<A> cab = (f.xc * (f.xc.transpose() * f.yc)).cwiseProduct(f.yc).rowwise().sum();
  const vector<A> caa = (f.xc * (f.xc.transpose() * f.xc)).cwiseProduct(f.xc).rowwise().sum();
  const vector<A> cbb = (f.yc * (f.yc.transpose() * f.yc)).cwiseProduct(f.yc).rowwise().sum();
  return jackknife_from<A>(ab, aa, bb, cab, caa, cbb, f.k, f.l, f.est, level);
}

/// The sums of A = C(XcXcᵀ) that fix the permutation moments, in feature space.
template <class A>
null_sums feature_null_sums(const vector<A>& k, A self, estimator est) {
  null_sums s;
  if (est == estimator::unbiased) {
    s.off = double(self);  // U-centered: zero diagonal
    return s;
  }
  s.d1 = double(k.sum());
  s.d2 = double(k.squaredNorm());
  s.off = double(self) - s.d2;
  return s;
}

}  // namespace cka::detail
