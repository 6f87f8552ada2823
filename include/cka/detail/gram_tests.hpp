#pragma once
// Private: the significance tests and intervals on centered Grams A = C(K), B = C(L) — the permutation
// p-value, the closed-form permutation null, the jackknife — for any kernel (docs/inference.md).

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
  // Units of enough permutations (~2¹⁶ products) that dealing them to threads costs nothing beside them.
  const long long count = static_cast<long long>(o.count);
  const long long per = std::max<long long>(1, (1LL << 16) / std::max<long long>(1, (long long)n * n));
  const int threads = Eigen::nbThreads();
  auto at_least = per_thread<long long>(threads, 0);
  parallel_for(Eigen::Index((count + per - 1) / per), threads, [&](int thread, Eigen::Index unit) {
    std::vector<Eigen::Index> perm(static_cast<std::size_t>(n));
    for (long long k = unit * per; k < std::min(count, (unit + 1) * per); ++k) {
      seeded_permutation(o.seed, std::uint64_t(k), perm);
      if (permuted_product(a, b, perm) >= observed) ++at_least[std::size_t(thread)];
    }
  });
  long long total = 0;
  for (long long c : at_least) total += c;
  return double(1 + total) / double(1 + count);
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

}  // namespace cka::detail
