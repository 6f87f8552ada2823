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
  /// The most permutations one test draws (2³²): the p-value's resolution 1/(1 + count) is then finer than
  /// any use needs, and every count is exact in double.
  static constexpr std::size_t max_count = std::size_t(1) << 32;
  std::size_t count = 1000;  ///< permutations drawn, 1 … max_count
  std::uint64_t seed = 0;    ///< the family of permutations: the same seed gives the same p-value
};

/// CKA, its permutation p-value (1 + #{T_π ≥ T})/(1 + count), and the number of permutations.
struct permutation_result {
  double value;
  double p_value;
  std::size_t permutations;
};

/// CKA, its z-score under the permutation null (T − E)/sd, and the one-sided p-value P(T_π ≥ T).
/// `degenerate`: the permutation null has no spread (every permutation gives the observed value — a
/// permutation-invariant layer, such as one-hot rows of distinct classes under the biased estimator); then
/// z = 0 and p = 1, the exact permutation p-value.
struct independence_result {
  double value;
  double z;
  double p_value;
  bool degenerate = false;
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
  /// The first sample without which a representation has no variance left (all the others equal, say),
  /// or −1. Then that θ₋ᵢ is undefined, and so are the standard error and the interval (NaN here; the
  /// public jackknife throws cka::domain_error naming the sample).
  long long undefined_without = -1;
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

/// How far below the observed statistic a permuted one still counts as a tie (and so as "at least as
/// large"): the rounding of sums over n² products of centered Grams with norms whose product is `scale`.
/// A permutation-invariant layer (every T_π equals T) then gives p = 1, not a p-value decided by rounding.
template <class A>
A tie_tolerance(Eigen::Index n, const A& scale) {
  return A(A(64) * A(n) * Eigen::NumTraits<A>::epsilon() * scale);
}

/// Refuses a permutation count of 0 or above permutation_options::max_count, naming it.
inline void require_permutation_count(const char* fn, const char* what, std::size_t count) {
  if (count == 0 || count > permutation_options::max_count) {
    fail_argument(fn, what, " = ", count, "; between 1 and ", permutation_options::max_count, " permutations can be drawn");
  }
}

/// (1 + #{⟨A, P_k B P_kᵀ⟩ ≥ ⟨A, B⟩})/(1 + count) over the seeded permutations k, threaded.
template <class A>
double permutation_p_value(const matrix<A>& a, const matrix<A>& b, const permutation_options& o) {
  const Eigen::Index n = a.rows();
  std::vector<Eigen::Index> identity(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < n; ++i) identity[std::size_t(i)] = i;
  using std::sqrt;
  // The same summation as every T_π, less the rounding level: ties count.
  const A observed = permuted_product(a, b, identity) - tie_tolerance(n, A(sqrt(a.squaredNorm()) * sqrt(b.squaredNorm())));
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
  // A variance at the rounding level of its terms (sums over n² entries: √n·64ε relative) is no spread.
  if (m.variance <= 64.0 * std::sqrt(n) * std::numeric_limits<double>::epsilon() * m.scale) return {value, 0.0, 1.0, true};
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
  // A leave-one-out self-product is the full one less O(1) terms: it cancels to first order, so below
  // 64nε of the full one it is no variance left (a layer whose other samples are all equal).
  const A floor_a = A(64) * A(n) * Eigen::NumTraits<A>::epsilon() * aa_full, floor_b = A(64) * A(n) * Eigen::NumTraits<A>::epsilon() * bb_full;
  for (Eigen::Index i = 0; i < n; ++i) {
    const A ai = da(i), bi = db(i);
    const A ab = without(ab_full, cab(i), ai, bi), aa = without(aa_full, caa(i), ai, ai), bb = without(bb_full, cbb(i), bi, bi);
    if (!(aa > floor_a && bb > floor_b)) {
      if (r.undefined_without < 0) r.undefined_without = i;
      r.leave_one_out[std::size_t(i)] = std::numeric_limits<double>::quiet_NaN();
      continue;
    }
    r.leave_one_out[std::size_t(i)] = double(ab / sqrt(aa) / sqrt(bb));
    mean += r.leave_one_out[std::size_t(i)];
  }
  if (r.undefined_without >= 0) {
    r.standard_error = r.lower = r.upper = std::numeric_limits<double>::quiet_NaN();
    return r;
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

/// The jackknife's result, or cka::domain_error where a leave-one-out CKA is undefined.
inline jackknife_result defined_jackknife(const char* fn, jackknife_result r) {
  if (r.undefined_without >= 0) {
    fail_domain(fn, "without sample ", r.undefined_without, " a representation has no variance left (its other samples are "
                "all equal), so that leave-one-out CKA, and the jackknife, are undefined");
  }
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
    const matrix<A> g = stacked.transpose() * block;  // (Σd) × (b·dy)
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
  std::vector<long long> at_least(static_cast<std::size_t>(m), 0);
#if defined(_OPENMP)
#pragma omp parallel num_threads(Eigen::nbThreads())
#endif
  {
    std::vector<long long> mine(static_cast<std::size_t>(m), 0);
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (long long bt = 0; bt < batches; ++bt) {
      run_batch(bt * batch, std::min<long long>(bt * batch + batch, count), false, [&](Eigen::Index i, long long, const A& t) {
        if (t >= observed[std::size_t(i)]) ++mine[std::size_t(i)];
      });
    }
#if defined(_OPENMP)
#pragma omp critical
#endif
    for (std::size_t i = 0; i < mine.size(); ++i) at_least[i] += mine[i];
  }
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

}  // namespace detail

/// Permutation test of CKA(X, Y) against independence: the samples of Y are permuted `count` times
/// (reproducibly: permutation k depends only on the seed and k), and p = (1 + #{CKA_π ≥ CKA})/(1 + count).
/// The Grams are formed and centered once; each permutation redoes only ⟨A, P B Pᵀ⟩ — O(n²) —, spread
/// over the threads (the p-value does not depend on their number). Memory 2n². With the linear kernel on
/// both sides, feature space where it is cheaper (d1·d2 ≤ 40n, or Grams beyond 2 GiB): ‖Xcᵀ·P·Yc‖² for
/// batches of permutations in one GEMM, O(n·d1·d2) per permutation, memory O(n(d1 + d2)).
/// Throws as kernel_cka (n ≥ 4, biased; ≥ 5, unbiased), and cka::invalid_argument for a count of 0 or above
/// permutation_options::max_count.
template <class DX, class DY, class KX, class KY>
permutation_result permutation_test(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx,
                                    const KY& ky, estimator est = estimator::biased, const permutation_options& o = {}) {
  using A = accumulator_t<typename DX::Scalar>;
  const char* fn = "permutation_test";
  detail::require_permutation_count(fn, "count", o.count);
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
/// O(n(d1 + d2)²) time and O(n(d1 + d2)) memory. Throws as permutation_test (n ≥ 4 biased, ≥ 6 unbiased),
/// cka::invalid_argument for a level outside (0, 1), and cka::domain_error (naming the sample) where a
/// leave-one-out CKA is undefined: a representation whose samples are all equal but one. (similarity_tests
/// gives that cell a NaN interval instead.)
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
      return detail::defined_jackknife(fn, detail::jackknife_of(f, o.level));
    }
  }
  const auto c = detail::centered_grams<A>(fn, xv, yv, kx, ky, est);
  return detail::defined_jackknife(fn, detail::jackknife_of(c.a, c.b, c.ab, c.aa, c.bb, est, o.level));
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
/// NaN in the rows and columns of layers without variance (their index in `undefined`). `degenerate`
/// lists the layers whose permutation null has no spread (permutation-invariant: one-hot rows of distinct
/// classes, say): their p-values are 1, exactly (every permutation gives the observed value).
struct similarity_tests_result {
  matrix<double> values, p_value, lower, upper;
  std::vector<std::size_t> undefined, degenerate;
};

/// Significance (and intervals) for every pair of layers: the matrix form of independence_test or
/// permutation_test, and of jackknife, with their values. The square form computes each unordered pair
/// once (its matrices are symmetric by construction: the p-value of (i, j) is that of (j, i)). With the
/// linear kernel, a pair of narrow layers (d_i·d_j ≤ 40n) runs in feature space: a permutation costs
/// O(n·d_i·d_j) in batched GEMMs, the analytic test and the jackknife O(n(d_i + d_j)²). Other pairs use
/// the layers' centered Grams: a permutation costs O(n²). Each layer is prepared once, as its pairs need it
/// (centered columns, n·d; a centered Gram, n²). `progress` is called once per pair computed.
/// Throws cka::invalid_argument for layers with different sample counts, too few samples, NaN/Inf, a level
/// outside [0, 1), or a permutation count above permutation_options::max_count; cka::domain_error for
/// overflow.
namespace detail {
template <class M, class N, class Kernel>
similarity_tests_result similarity_tests_impl(const std::vector<M>& rows, const std::vector<N>* cols_or_square,
                                              const Kernel& kernel, const similarity_tests_options& o) {
  using A = accumulator_t<typename M::Scalar>;
  const char* fn = "similarity_tests";
  const bool square = cols_or_square == nullptr;
  if (rows.empty() || (!square && cols_or_square->empty())) detail::fail_argument(fn, "needs at least one layer on each side");
  if (!(o.level >= 0 && o.level < 1)) detail::fail_argument(fn, "level = ", o.level, " must lie in [0, 1)");
  if (o.permutations > 0) detail::require_permutation_count(fn, "permutations", o.permutations);
  const Eigen::Index n = rows[0].rows();
  const Eigen::Index needed = o.est == estimator::biased ? 4 : (o.level > 0 ? 6 : 5);
  // The pairs: with the linear kernel, feature space where a permutation's GEMM beats a Gram gather
  // (prefer_features); a layer keeps its centered columns, its centered Gram, or both, as its pairs need.
  std::vector<Eigen::Index> row_width, col_width;
  for (const auto& x : rows) row_width.push_back(x.cols());
  if (!square)
    for (const auto& y : *cols_or_square) col_width.push_back(y.cols());
  const std::vector<Eigen::Index>& cw = square ? row_width : col_width;
  auto in_features = [&](Eigen::Index di, Eigen::Index dj) { return std::is_same_v<Kernel, linear_kernel> && prefer_features(n, di, dj); };
  struct layer {
    matrix<A> g, xc;  ///< the centered Gram, the centered columns (each where a pair needs it)
    vector<A> k;      ///< the squared row norms of xc
    bool defined = true, degenerate = false;  ///< degenerate: permutation-invariant (its null with any layer has no spread)
  };
  auto prepare = [&](const auto& x, const std::vector<Eigen::Index>& others) {
    const detail::view_t<std::decay_t<decltype(x)>> v(x);
    if (v.rows() != n) detail::fail_argument(fn, "a layer has ", v.rows(), " samples but the first has ", n);
    detail::require_samples(fn, "each layer", n, needed, "the tests");
    detail::require_finite(fn, "a layer", v);
    bool features = false, grams = false;
    for (const Eigen::Index d : others) (in_features(v.cols(), d) ? features : grams) = true;
    layer l;
    null_sums ns;
    A self(0);
    if (features) {
      l.xc = scaled_centered_columns<A>(v);
      l.k = l.xc.rowwise().squaredNorm();
      const linear_features<A> f{l.xc, l.xc, l.k, l.k, o.est};
      self = f.self_x();
      l.defined = !vanishes(self, f.sums(self, self, self).ref_k);
      ns = feature_null_sums(l.k, self, o.est);
    }
    if (grams) {
      A ref(0);
      l.g = detail::centered_gram<A>(fn, v, kernel, o.est, ref);
      self = l.g.squaredNorm();
      l.defined = !detail::vanishes(self, ref);
      ns = sums_of(l.g);
    }
    l.degenerate = l.defined && independence_from(ns, ns, self, self, self, double(n), o.est).degenerate;
    return l;
  };
  std::vector<layer> r, c;
  for (const auto& x : rows) r.push_back(prepare(x, square ? row_width : col_width));
  if (!square)
    for (const auto& y : *cols_or_square) c.push_back(prepare(y, row_width));
  const std::vector<layer>& cl = square ? r : c;  // the square form prepares each layer once
  const double nan = std::numeric_limits<double>::quiet_NaN();
  similarity_tests_result out;
  const Eigen::Index nr = Eigen::Index(r.size()), nc = Eigen::Index(cl.size());
  out.values = out.p_value = out.lower = out.upper = matrix<double>::Constant(nr, nc, nan);
  for (std::size_t i = 0; i < r.size(); ++i)
    if (!r[i].defined) out.undefined.push_back(i);
  for (std::size_t j = 0; j < c.size(); ++j)
    if (!c[j].defined) out.undefined.push_back(r.size() + j);
  permutation_options po;
  po.count = o.permutations;
  po.seed = o.seed;
  // One pair: its value, p-value (a feature-space permutation p-value comes precomputed: `drawn`) and interval.
  auto pair = [&](Eigen::Index i, Eigen::Index j, double drawn) {
    const layer &a = r[std::size_t(i)], &b = cl[std::size_t(j)];
    independence_result t{};
    // A layer against itself (the square form's diagonal): T_π = ⟨A, PAPᵀ⟩ ≤ ‖A‖² = T, with equality only
    // where PAPᵀ = A (Cauchy–Schwarz). So no permutation reaches T unless the layer is permutation-
    // invariant (then all do) — save those that only exchange duplicated samples, with probability
    // Π mₖ!/n! — and the p-value is known without drawing any: 1/(1 + count), or 1.
    const bool self_pair = square && i == j;
    double p = self_pair ? (a.degenerate ? 1.0 : 1.0 / (1.0 + double(o.permutations))) : nan;
    jackknife_result jr{};
    if (in_features(row_width[std::size_t(i)], cw[std::size_t(j)])) {
      const linear_features<A> f{a.xc, b.xc, a.k, b.k, o.est};
      const A aa = f.self_x(), bb = f.self_y(), ab = f.cross(A((f.xc.transpose() * f.yc).squaredNorm()), A(f.k.dot(f.l)));
      cka_ratio(fn, f.sums(ab, aa, bb), when_undefined::nan);  // overflow is an error
      t = independence_from(feature_null_sums(f.k, aa, o.est), feature_null_sums(f.l, bb, o.est), ab, aa, bb, double(n), o.est);
      if (o.permutations > 0 && !self_pair) p = drawn;
      if (o.level > 0) jr = jackknife_of(f, o.level);
    } else {
      const A ab = a.g.cwiseProduct(b.g).sum(), aa = a.g.squaredNorm(), bb = b.g.squaredNorm();
      t = independence_of(a.g, b.g, ab, aa, bb, o.est);
      if (o.permutations > 0 && !self_pair) p = permutation_p_value(a.g, b.g, po);
      if (o.level > 0) jr = jackknife_of(a.g, b.g, ab, aa, bb, o.est, o.level);
    }
    out.values(i, j) = t.value;
    out.p_value(i, j) = o.permutations > 0 ? p : t.p_value;
    if (o.level > 0) {
      out.lower(i, j) = jr.lower;
      out.upper(i, j) = jr.upper;
    }
  };
  const std::size_t total = square ? std::size_t(nr * (nr + 1) / 2) : std::size_t(nr * nc);
  std::size_t done = 0;
  for (Eigen::Index j = 0; j < nc; ++j) {
    const layer& b = cl[std::size_t(j)];
    // The feature-space permutation p-values of column j's pairs, all under one gather of its permutations.
    std::vector<double> drawn(static_cast<std::size_t>(nr), nan);
    if (o.permutations > 0 && b.defined) {
      std::vector<centered_side<A>> sides;
      std::vector<Eigen::Index> which;
      for (Eigen::Index i = 0; i < (square ? j : nr); ++i) {
        const layer& a = r[std::size_t(i)];
        if (!a.defined || !in_features(row_width[std::size_t(i)], cw[std::size_t(j)])) continue;
        sides.push_back({&a.xc, &a.k});
        which.push_back(i);
      }
      if (!sides.empty()) {
        const std::vector<double> p = permutation_p_values(sides, b.xc, b.k, o.est, po);
        for (std::size_t q = 0; q < which.size(); ++q) drawn[std::size_t(which[q])] = p[q];
      }
    }
    for (Eigen::Index i = 0; i < (square ? j + 1 : nr); ++i) {
      if (r[std::size_t(i)].defined && b.defined) pair(i, j, drawn[std::size_t(i)]);
      if (square && j != i) {  // the same pair: the same numbers
        out.values(j, i) = out.values(i, j);
        out.p_value(j, i) = out.p_value(i, j);
        out.lower(j, i) = out.lower(i, j);
        out.upper(j, i) = out.upper(i, j);
      }
      if (o.progress) o.progress(++done, total);
    }
  }
  for (std::size_t i = 0; i < r.size(); ++i)
    if (r[i].degenerate) out.degenerate.push_back(i);
  for (std::size_t j = 0; j < c.size(); ++j)
    if (c[j].degenerate) out.degenerate.push_back(r.size() + j);
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
