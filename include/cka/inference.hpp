#pragma once
/// \file inference.hpp
/// Is this similarity significant, and how precise is it? A permutation test, the closed-form
/// permutation null (an independence test in O(1) after the CKA itself), and jackknife intervals.
/// docs/inference.md derives the formulas.
///
/// All three work on the centered Grams A = C(K), B = C(L) (HKH for the biased estimator, the U-centered
/// K̃ for the unbiased one), so CKA = ⟨A, B⟩/(‖A‖‖B‖). Permuting the samples of Y maps B to P B Pᵀ and
/// leaves ‖B‖ alone: only the cross term changes.

#include <cka/detail/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/null_moments.hpp>
#include <cka/detail/permutations.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>
#include <cka/gram.hpp>
#include <cka/kernels.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace cka {

/// Options of permutation_test.
struct permutation_options {
  std::size_t count = 1000;  ///< permutations drawn
  std::uint64_t seed = 0;    ///< the family of permutations: the same seed gives the same p-value
};

/// CKA, its permutation p-value (1 + #{T_π ≥ T})/(1 + count), and the number of permutations.
struct permutation_result {
  double value;
  double p_value;
  std::size_t permutations;
};

/// CKA, its z-score under the permutation null (T − E)/sd, and the one-sided p-value P(T_π ≥ T).
struct independence_result {
  double value;
  double z;
  double p_value;
};

/// Options of jackknife.
struct jackknife_options {
  double level = 0.95;  ///< the coverage of the interval
};

/// CKA, the jackknife standard error √((n−1)/n · Σ(θ₋ᵢ − θ̄)²), and the normal interval value ± z·se.
struct jackknife_result {
  double value;
  double standard_error;
  double lower;
  double upper;
  std::vector<double> leave_one_out;  ///< θ₋ᵢ: CKA without sample i
};

namespace detail {

/// The centered Grams of X and Y under their kernels (memory 2n²), checked, and their self-products.
template <class A>
struct centered_pair {
  matrix<A> a, b;
  A aa, bb, ab;
};

template <class A, class VX, class VY, class KX, class KY>
centered_pair<A> centered_grams(const char* fn, const VX& x, const VY& y, const KX& kx, const KY& ky, estimator est) {
  require_same_samples(fn, "X", x, "Y", y);
  require_samples(fn, "X", x.rows(), est == estimator::biased ? 4 : 5, "a test on the estimator");
  require_finite(fn, "X", x);
  require_finite(fn, "Y", y);
  centered_pair<A> c;
  A ref_k(0), ref_l(0);
  c.a = centered_gram<A>(fn, x, kx, est, ref_k);
  c.b = centered_gram<A>(fn, y, ky, est, ref_l);
  c.aa = c.a.squaredNorm();
  c.bb = c.b.squaredNorm();
  c.ab = c.a.cwiseProduct(c.b).sum();
  // The library's one rule for zero variance and overflow (cka::domain_error).
  cka_ratio(fn, centered_sums<A>{c.ab, c.aa, c.bb, ref_k, ref_l});
  return c;
}

template <class A>
null_sums sums_of(const matrix<A>& a) {
  null_sums s;
  s.d1 = double(a.trace());
  s.d2 = double(a.diagonal().squaredNorm());
  s.off = double(a.squaredNorm()) - s.d2;
  return s;
}

/// ⟨A, P B Pᵀ⟩ = Σ_ij A_ij B_π(i)π(j), column by column.
template <class A>
A permuted_product(const matrix<A>& a, const matrix<A>& b, const std::vector<Eigen::Index>& perm) {
  const Eigen::Index n = a.rows();
  A total(0);
  for (Eigen::Index j = 0; j < n; ++j) {
    const A* bj = b.data() + perm[std::size_t(j)] * n;
    const A* aj = a.data() + j * n;
    A s(0);
    for (Eigen::Index i = 0; i < n; ++i) s += aj[i] * bj[perm[std::size_t(i)]];
    total += s;
  }
  return total;
}

/// (1 + #{⟨A, P_k B P_kᵀ⟩ ≥ ⟨A, B⟩})/(1 + count) over the seeded permutations k, threaded.
template <class A>
double permutation_p_value(const matrix<A>& a, const matrix<A>& b, const permutation_options& o) {
  const Eigen::Index n = a.rows();
  std::vector<Eigen::Index> identity(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) identity[std::size_t(i)] = i;
  const A observed = permuted_product(a, b, identity);  // the same summation as every T_π
  const long long count = static_cast<long long>(o.count);
  long long at_least = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : at_least) num_threads(Eigen::nbThreads())
#endif
  for (long long k = 0; k < count; ++k) {
    std::vector<Eigen::Index> perm(static_cast<std::size_t>(n));
    seeded_permutation(o.seed, std::uint64_t(k), perm);
    if (permuted_product(a, b, perm) >= observed) ++at_least;
  }
  return double(1 + at_least) / double(1 + count);
}

/// The independence test on centered Grams with ⟨A, B⟩ = ab, ‖A‖² = aa, ‖B‖² = bb.
template <class A>
independence_result independence_from(const null_sums& sa, const null_sums& sb, A ab, A aa, A bb, double n,
                                      estimator est) {
  using std::sqrt;
  const double norm = double(sqrt(aa) * sqrt(bb));
  const double value = double(ab) / norm;
  const null_moments m = permutation_moments(sa, sb, n);
  const double mean = m.mean / norm, sd = std::sqrt(std::max(m.variance, 0.0)) / norm;
  const double z = (value - mean) / sd;
  if (est == estimator::unbiased) return {value, z, normal_upper_tail(z)};
  const double shape = mean * mean / (sd * sd), scale = sd * sd / mean;
  return {value, z, gamma_upper_tail(value, shape, scale)};
}

template <class A>
independence_result independence_of(const matrix<A>& a, const matrix<A>& b, A ab, A aa, A bb, estimator est) {
  return independence_from(sums_of(a), sums_of(b), ab, aa, bb, double(a.rows()), est);
}

/// The jackknife from the full centered products ab = ⟨A, B⟩, aa, bb, the row products cab_i = Σ_j A_ij B_ij
/// (caa, cbb likewise) and the diagonals da, db (zero for U-centered Grams): see jackknife.
template <class A>
jackknife_result jackknife_from(A ab_full, A aa_full, A bb_full, const vector<A>& cab, const vector<A>& caa,
                                const vector<A>& cbb, const vector<A>& da, const vector<A>& db, estimator est,
                                double level) {
  const Eigen::Index n = cab.size();
  const A m = A(n - 1);
  // The centered product of the Grams without sample i, from the full sums, the row products and the
  // diagonals (biased), or the row products alone (unbiased: U-centered rows sum to zero, diagonals are 0).
  auto without = [&](A full, A row, A di, A dj) {
    if (est == estimator::unbiased) return A(full - A(2) * row * (m - 1) / (m - 2));
    const A dd = di * dj;
    return A(full - A(2) * row + dd - A(2) / m * (row - dd) + dd / (m * m));
  };
  using std::sqrt;
  jackknife_result r;
  r.value = double(ab_full / sqrt(aa_full) / sqrt(bb_full));
  r.leave_one_out.resize(std::size_t(n));
  double mean = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const A ai = da(i), bi = db(i);
    const A ab = without(ab_full, cab(i), ai, bi), aa = without(aa_full, caa(i), ai, ai), bb = without(bb_full, cbb(i), bi, bi);
    r.leave_one_out[std::size_t(i)] = double(ab / sqrt(aa) / sqrt(bb));
    mean += r.leave_one_out[std::size_t(i)];
  }
  mean /= double(n);
  double spread = 0;
  for (double v : r.leave_one_out) spread += (v - mean) * (v - mean);
  r.standard_error = std::sqrt(double(n - 1) / double(n) * spread);
  const double z = normal_quantile(0.5 + level / 2);
  r.lower = r.value - z * r.standard_error;
  r.upper = r.value + z * r.standard_error;
  return r;
}

/// The jackknife on centered Grams (see jackknife).
template <class A>
jackknife_result jackknife_of(const matrix<A>& a, const matrix<A>& b, A ab_full, A aa_full, A bb_full, estimator est,
                              double level) {
  return jackknife_from<A>(ab_full, aa_full, bb_full, a.cwiseProduct(b).colwise().sum().transpose(),
                           a.colwise().squaredNorm().transpose(), b.colwise().squaredNorm().transpose(), a.diagonal(),
                           b.diagonal(), est, level);
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
  /// The library's zero-variance and overflow rule (cka::domain_error), with (Σk)² as the raw scale.
  void check(const char* fn, const A& ab, const A& aa, const A& bb) const {
    cka_ratio(fn, centered_sums<A>{ab, aa, bb, A(k.sum() * k.sum()), A(l.sum() * l.sum())});
  }
};

template <class A, class VX, class VY>
linear_features<A> features_of(const char* fn, const VX& x, const VY& y, estimator est) {
  require_same_samples(fn, "X", x, "Y", y);
  require_samples(fn, "X", x.rows(), est == estimator::biased ? 4 : 5, "a test on the estimator");
  require_finite(fn, "X", x);
  require_finite(fn, "Y", y);
  linear_features<A> f{centered_columns<A>(x), centered_columns<A>(y), vector<A>(), vector<A>(), est};
  f.k = f.xc.rowwise().squaredNorm();
  f.l = f.yc.rowwise().squaredNorm();
  return f;
}

/// Feature space is cheaper when a permutation's GEMM (2n·d1·d2 flops at GEMM rate) beats a gather over
/// n² Gram entries, or when two n×n Grams would not fit in 2 GiB.
inline bool prefer_features(Eigen::Index n, Eigen::Index d1, Eigen::Index d2) {
  return double(d1) * double(d2) <= 40.0 * double(n) || 16.0 * double(n) * double(n) > double(std::size_t(1) << 31);
}

/// The permutation p-value in feature space: batches of permutations, each batch one GEMM
/// Xcᵀ·[P₁Yc, P₂Yc, …] (O(n·d1·d2) per permutation), batches spread over the threads.
template <class A>
double permutation_p_value(const linear_features<A>& f, const permutation_options& o) {
  const Eigen::Index n = f.xc.rows(), d2 = f.yc.cols();
  auto statistic = [&](const std::vector<Eigen::Index>& perm, matrix<A>& block, Eigen::Index at) {
    A kl(0);
    for (Eigen::Index i = 0; i < n; ++i) {
      block.middleCols(at * d2, d2).row(i) = f.yc.row(perm[std::size_t(i)]);
      kl += f.k(i) * f.l(perm[std::size_t(i)]);
    }
    return kl;
  };
  const Eigen::Index batch = std::max<Eigen::Index>(1, std::min<Eigen::Index>(Eigen::Index(o.count), (Eigen::Index(1) << 21) / std::max<Eigen::Index>(1, n * d2)));
  // The observed value through the same arithmetic as every permuted one.
  std::vector<Eigen::Index> identity(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) identity[std::size_t(i)] = i;
  matrix<A> one(n, d2);
  const A kl0 = statistic(identity, one, 0);
  const A observed = f.cross(A((f.xc.transpose() * one).squaredNorm()), kl0);
  const long long batches = (static_cast<long long>(o.count) + batch - 1) / batch;
  long long at_least = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : at_least) num_threads(Eigen::nbThreads())
#endif
  for (long long b = 0; b < batches; ++b) {
    const long long first = b * batch, last = std::min<long long>(first + batch, static_cast<long long>(o.count));
    matrix<A> block(n, (last - first) * d2);
    std::vector<A> kl(std::size_t(last - first));
    std::vector<Eigen::Index> perm(static_cast<std::size_t>(n));
    for (long long k = first; k < last; ++k) {
      seeded_permutation(o.seed, std::uint64_t(k), perm);
      kl[std::size_t(k - first)] = statistic(perm, block, Eigen::Index(k - first));
    }
    const matrix<A> g = f.xc.transpose() * block;  // d1 × (batch·d2)
    for (long long k = first; k < last; ++k) {
      const A t = f.cross(A(g.middleCols(Eigen::Index(k - first) * d2, d2).squaredNorm()), kl[std::size_t(k - first)]);
      if (t >= observed) ++at_least;
    }
  }
  return double(1 + at_least) / double(1 + static_cast<long long>(o.count));
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

}  // namespace detail

/// Permutation test of CKA(X, Y) against independence: the samples of Y are permuted `count` times
/// (reproducibly: permutation k depends only on the seed and k), and p = (1 + #{CKA_π ≥ CKA})/(1 + count).
/// The Grams are formed and centered once; each permutation redoes only ⟨A, P B Pᵀ⟩ — O(n²) —, spread
/// over the threads (the p-value does not depend on their number). Memory 2n². With the linear kernel on
/// both sides, feature space where it is cheaper (d1·d2 ≤ 40n, or Grams beyond 2 GiB): ‖Xcᵀ·P·Yc‖² for
/// batches of permutations in one GEMM, O(n·d1·d2) per permutation, memory O(n(d1 + d2)).
/// Throws as kernel_cka (n ≥ 4, biased; ≥ 5, unbiased), and cka::invalid_argument for count = 0.
template <class DX, class DY, class KX, class KY>
permutation_result permutation_test(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx,
                                    const KY& ky, estimator est = estimator::biased, const permutation_options& o = {}) {
  using A = accumulator_t<typename DX::Scalar>;
  const char* fn = "permutation_test";
  if (o.count == 0) detail::fail_argument(fn, "count = 0; at least one permutation is needed");
  const detail::view_t<DX> xv(x.derived());
  const detail::view_t<DY> yv(y.derived());
  using std::sqrt;
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    if (detail::prefer_features(xv.rows(), xv.cols(), yv.cols())) {
      const auto f = detail::features_of<A>(fn, xv, yv, est);
      const A aa = f.self_x(), bb = f.self_y();
      const A ab = f.cross(A((f.xc.transpose() * f.yc).squaredNorm()), A(f.k.dot(f.l)));
      f.check(fn, ab, aa, bb);
      return {double(ab / sqrt(aa) / sqrt(bb)), detail::permutation_p_value(f, o), o.count};
    }
  }
  const auto c = detail::centered_grams<A>(fn, xv, yv, kx, ky, est);
  return {double(c.ab / sqrt(c.aa) / sqrt(c.bb)), detail::permutation_p_value(c.a, c.b, o), o.count};
}

/// The same with one kernel for X and Y.
template <class DX, class DY, class Kernel>
permutation_result permutation_test(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const Kernel& kernel,
                                    estimator est = estimator::biased, const permutation_options& o = {}) {
  return permutation_test(x, y, kernel, kernel, est, o);
}

/// Independence test from the exact mean and variance of CKA under random permutation of the samples:
/// debiased CKA (estimator::unbiased) has mean 0 and variance 2/(n(n−3)) exactly, so z = CKA·√(n(n−3)/2)
/// and p = P(Z ≥ z) (normal); the biased estimator's null is skewed, so p comes from a gamma distribution
/// with the exact permutation mean and variance (the moment match of Gretton et al., NeurIPS 2008).
/// Cost O(n²) beyond the Grams (memory 2n²); with the linear kernel on both sides O(n(d1 + d2)²) in
/// feature space, without a Gram (the moments need only tr A, Σ A_ii² and ‖A‖²). Throws as permutation_test.
template <class DX, class DY, class KX, class KY>
independence_result independence_test(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx,
                                      const KY& ky, estimator est = estimator::biased) {
  using A = accumulator_t<typename DX::Scalar>;
  const char* fn = "independence_test";
  const detail::view_t<DX> xv(x.derived());
  const detail::view_t<DY> yv(y.derived());
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    // In feature space, O(n(d1 + d2)²): the moments need only tr A, Σ A_ii² and ‖A‖².
    const auto f = detail::features_of<A>(fn, xv, yv, est);
    const A aa = f.self_x(), bb = f.self_y();
    const A ab = f.cross(A((f.xc.transpose() * f.yc).squaredNorm()), A(f.k.dot(f.l)));
    f.check(fn, ab, aa, bb);
    return detail::independence_from(detail::feature_null_sums(f.k, aa, est), detail::feature_null_sums(f.l, bb, est),
                                      ab, aa, bb, double(xv.rows()), est);
  }
  const auto c = detail::centered_grams<A>(fn, xv, yv, kx, ky, est);
  return detail::independence_of(c.a, c.b, c.ab, c.aa, c.bb, est);
}

/// The same with one kernel for X and Y.
template <class DX, class DY, class Kernel>
independence_result independence_test(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                                      const Kernel& kernel, estimator est = estimator::biased) {
  return independence_test(x, y, kernel, kernel, est);
}

/// Jackknife standard error and interval of CKA(X, Y): all n leave-one-out values in O(n²) in all, from
/// the centered Grams and their row products c_i = Σ_j A_ij B_ij (centering the Grams of n − 1 samples is
/// centering the rows and columns of A and B that remain: docs/inference.md), not n recomputations.
/// Memory 2n²; with the linear kernel on both sides and d1 + d2 < n, in feature space instead:
/// O(n(d1 + d2)²) time and O(n(d1 + d2)) memory. Throws as permutation_test (n ≥ 4 biased, ≥ 6 unbiased), and cka::invalid_argument for a
/// level outside (0, 1).
template <class DX, class DY, class KX, class KY>
jackknife_result jackknife(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx, const KY& ky,
                           estimator est = estimator::biased, const jackknife_options& o = {}) {
  using A = accumulator_t<typename DX::Scalar>;
  const char* fn = "jackknife";
  if (!(o.level > 0 && o.level < 1)) detail::fail_argument(fn, "level = ", o.level, " must lie in (0, 1)");
  const detail::view_t<DX> xv(x.derived());
  const detail::view_t<DY> yv(y.derived());
  if (est == estimator::unbiased) detail::require_samples(fn, "X", xv.rows(), 6, "a leave-one-out unbiased estimate");
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    if (xv.cols() + yv.cols() < xv.rows()) {  // feature space: O(n(d1 + d2)²) and no Gram
      const auto f = detail::features_of<A>(fn, xv, yv, est);
      f.check(fn, f.cross(A((f.xc.transpose() * f.yc).squaredNorm()), A(f.k.dot(f.l))), f.self_x(), f.self_y());
      return detail::jackknife_of(f, o.level);
    }
  }
  const auto c = detail::centered_grams<A>(fn, xv, yv, kx, ky, est);
  return detail::jackknife_of(c.a, c.b, c.ab, c.aa, c.bb, est, o.level);
}

/// The same with one kernel for X and Y.
template <class DX, class DY, class Kernel>
jackknife_result jackknife(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const Kernel& kernel,
                           estimator est = estimator::biased, const jackknife_options& o = {}) {
  return jackknife(x, y, kernel, kernel, est, o);
}

/// Options of similarity_tests.
struct similarity_tests_options {
  estimator est = estimator::biased;
  std::size_t permutations = 0;  ///< 0: analytic p-values (independence_test); else a permutation test of this size
  std::uint64_t seed = 0;        ///< the permutation family (the same for every pair)
  double level = 0;              ///< in (0, 1): jackknife intervals at this level; 0: none
  std::function<void(std::size_t done, std::size_t total)> progress;  ///< optional, once per pair
};

/// Per pair of layers: CKA, its p-value against independence, and (with a level) the jackknife interval.
/// NaN in the rows and columns of layers without variance (their index in `undefined`).
struct similarity_tests_result {
  matrix<double> values, p_value, lower, upper;
  std::vector<std::size_t> undefined;
};

/// Significance (and intervals) for every pair of layers, each layer's Gram formed and
/// centered once (memory L·n² for L layers in all): the matrix form of independence_test or
/// permutation_test, and of jackknife. Cost per pair O(n²) (analytic) or O(permutations·n²).
/// Throws cka::invalid_argument for layers with different sample counts, too few samples, NaN/Inf, or a
/// level outside [0, 1); cka::domain_error for overflow.
namespace detail {
template <class M, class N, class Kernel>
similarity_tests_result similarity_tests_impl(const std::vector<M>& rows, const std::vector<N>* cols_or_square,
                                              const Kernel& kernel, const similarity_tests_options& o) {
  using A = accumulator_t<typename M::Scalar>;
  const char* fn = "similarity_tests";
  const bool square = cols_or_square == nullptr;
  if (rows.empty() || (!square && cols_or_square->empty())) detail::fail_argument(fn, "needs at least one layer on each side");
  if (!(o.level >= 0 && o.level < 1)) detail::fail_argument(fn, "level = ", o.level, " must lie in [0, 1)");
  const Eigen::Index n = rows[0].rows();
  const Eigen::Index needed = o.est == estimator::biased ? 4 : (o.level > 0 ? 6 : 5);
  struct layer {
    matrix<A> c;
    A self;
    bool defined;
  };
  auto prepare = [&](const auto& x) {
    const detail::view_t<std::decay_t<decltype(x)>> v(x);
    if (v.rows() != n) detail::fail_argument(fn, "a layer has ", v.rows(), " samples but the first has ", n);
    detail::require_samples(fn, "each layer", n, needed, "the tests");
    detail::require_finite(fn, "a layer", v);
    A ref(0);
    layer l{detail::centered_gram<A>(fn, v, kernel, o.est, ref), A(0), true};
    l.self = l.c.squaredNorm();
    l.defined = !detail::vanishes(l.self, ref);
    return l;
  };
  std::vector<layer> r, c;
  for (const auto& x : rows) r.push_back(prepare(x));
  if (!square)
    for (const auto& y : *cols_or_square) c.push_back(prepare(y));
  const std::vector<layer>& cl = square ? r : c;  // the square form forms each Gram once
  const double nan = std::numeric_limits<double>::quiet_NaN();
  similarity_tests_result out;
  const Eigen::Index nr = Eigen::Index(r.size()), nc = Eigen::Index(cl.size());
  out.values = out.p_value = out.lower = out.upper = matrix<double>::Constant(nr, nc, nan);
  for (std::size_t i = 0; i < r.size(); ++i)
    if (!r[i].defined) out.undefined.push_back(i);
  for (std::size_t j = 0; j < c.size(); ++j)
    if (!c[j].defined) out.undefined.push_back(r.size() + j);
  std::size_t done = 0;
  for (Eigen::Index i = 0; i < nr; ++i)
    for (Eigen::Index j = 0; j < nc; ++j) {
      const layer &a = r[std::size_t(i)], &b = cl[std::size_t(j)];
      if (a.defined && b.defined) {
        const A ab = a.c.cwiseProduct(b.c).sum();
        const independence_result t = detail::independence_of(a.c, b.c, ab, a.self, b.self, o.est);
        out.values(i, j) = t.value;
        if (o.permutations > 0) {
          permutation_options po;
          po.count = o.permutations;
          po.seed = o.seed;
          out.p_value(i, j) = detail::permutation_p_value(a.c, b.c, po);
        } else {
          out.p_value(i, j) = t.p_value;
        }
        if (o.level > 0) {
          const jackknife_result jr = detail::jackknife_of(a.c, b.c, ab, a.self, b.self, o.est, o.level);
          out.lower(i, j) = jr.lower;
          out.upper(i, j) = jr.upper;
        }
      }
      if (o.progress) o.progress(++done, std::size_t(nr * nc));
    }
  return out;
}
}  // namespace detail

/// The rectangular form: `rows` × `cols` layers.
template <class M, class N, class Kernel>
similarity_tests_result similarity_tests(const std::vector<M>& rows, const std::vector<N>& cols, const Kernel& kernel,
                                         const similarity_tests_options& o = {}) {
  return detail::similarity_tests_impl(rows, &cols, kernel, o);
}

/// The square form: every pair of `layers` (`undefined` indexes them once).
template <class M, class Kernel>
similarity_tests_result similarity_tests(const std::vector<M>& layers, const Kernel& kernel,
                                         const similarity_tests_options& o = {}) {
  return detail::similarity_tests_impl<M, M>(layers, nullptr, kernel, o);
}

}  // namespace cka
