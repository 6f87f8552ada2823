#pragma once
/// \file kernels.hpp
/// Kernels as small value types, with traits that tell `cka::gram` how to build their Gram matrices fast.
///
/// A kernel type K works in every function of the library (gram, kernel_cka, mmd2) when
/// `cka::kernel_traits<K>::form` names one of three forms, and K provides that form's member:
///
/// | form                          | member K must provide                                                 |
/// |-------------------------------|-----------------------------------------------------------------------|
/// | `kernel_form::inner_product`  | `template <class T> void from_inner_products(cka::matrix<T>& g) const` |
/// | `kernel_form::squared_distance` | `template <class T> void from_squared_distances(cka::matrix<T>& d) const` |
/// | `kernel_form::generic` (default) | `template <class RX, class RY> T operator()(const RX& x, const RY& y) const` |
///
/// `from_inner_products` receives the full symmetric n×n matrix of ⟨x_i, x_j⟩ and replaces it with the
/// Gram; `from_squared_distances` receives the full symmetric matrix of ‖x_i − x_j‖² (zero diagonal,
/// computed from column-centered features) and does the same. The generic form is called once per pair
/// i ≤ j with two rows (Eigen row expressions of scalar T). T is the accumulation type: double for float
/// input. With double accumulation the tile engine (kernel_cka, mmd2, similarity_matrix) calls a generic
/// kernel from several threads at once, so its operator() must not change shared state. Specialise
/// `cka::kernel_traits` in namespace cka for a new form-based kernel.

#include <cka/detail/checks.hpp>
#include <cka/detail/median_ranks.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/inner_product_kernels.hpp>
#include <cka/kernel_traits.hpp>
#include <cka/rbf_parameters.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace cka {

/// Median of the squared distances in the full symmetric n×n matrix d (zero diagonal), under `rule`.
/// Exact, in O(n²) time and O(1) extra memory for typical data: a histogram of the n(n−1)/2 values below
/// the diagonal locates the bin holding the middle rank(s), and only that bin's values are then selected
/// (a full sort or a selection over a copy of all n²/2 values costs several times more at n = 4096).
/// Returns 0 for `nonzero` when every distance is zero.
/// Throws cka::invalid_argument if d has fewer than 2 rows, or an entry below the diagonal is NaN, ±Inf
/// or negative (the message names it).
template <class T>
T median_squared_distance(const matrix<T>& d, median_rule rule = median_rule::all_pairs) {
  const char* fn = "median_squared_distance";
  const Eigen::Index n = d.rows();
  detail::require_samples(fn, "the distance matrix", n, 2, "a median bandwidth");
  if (d.cols() != n) detail::fail_argument(fn, "the distance matrix is ", n, "x", d.cols(), "; it must be square");
  // Validity and the count of zero distances below the diagonal, in one vectorised pass.
  Eigen::Index zeros = 0;
  for (Eigen::Index j = 0; j + 1 < n; ++j) {
    const auto below = d.col(j).tail(n - j - 1);
    if (!below.allFinite() || (below.array() < T(0)).any()) {
      for (Eigen::Index i = j + 1; i < n; ++i)
        if (!detail::is_finite_value(d(i, j)) || d(i, j) < T(0)) {
          detail::fail_argument(fn, "d(", i, ", ", j, ") = ", d(i, j),
                                " is not a squared distance (it must be finite and non-negative)");
        }
    }
    zeros += (below.array() == T(0)).count();
  }
  // Ranks (0-based) of the middle value(s) among the off-diagonal values, −1 for a diagonal zero.
  const Eigen::Index pairs = n * (n - 1) / 2;
  if (rule == median_rule::nonzero && zeros == pairs) return T(0);
  const detail::middle_ranks ranks = detail::median_ranks(std::uint64_t(n), rule, std::uint64_t(zeros));
  const Eigen::Index lo_rank = Eigen::Index(ranks.lo), hi_rank = Eigen::Index(ranks.hi);
  if (hi_rank < 0) return T(0);
  const Eigen::Index first_rank = lo_rank < 0 ? hi_rank : lo_rank;

  T tmin = d(1, 0), tmax = d(1, 0);
  for (Eigen::Index j = 0; j + 1 < n; ++j) {
    const auto below = d.col(j).tail(n - j - 1);
    tmin = std::min<T>(tmin, below.minCoeff());
    tmax = std::max<T>(tmax, below.maxCoeff());
  }
  // Bin edges in double; the bin of a value is a non-decreasing function of it, so bins keep the order.
  const double lo = static_cast<double>(tmin), hi = static_cast<double>(tmax);
  const Eigen::Index bins = std::min<Eigen::Index>(Eigen::Index(1) << 12, pairs);
  // (v − lo)/(hi − lo) lies in [0, 1] for every finite value, so the bin index never overflows.
  const double range = hi > lo ? hi - lo : 1.0;
  Eigen::Matrix<Eigen::Index, Eigen::Dynamic, 1> bin(n);
  auto bins_of_column = [&](Eigen::Index j) {  // bins of d(j+1.., j), vectorised
    const Eigen::Index m = n - j - 1;
    bin.head(m) = ((d.col(j).tail(m).template cast<double>().array() - lo) / range * double(bins))
                      .floor()
                      .min(double(bins - 1))
                      .template cast<Eigen::Index>()
                      .matrix();
    return m;
  };
  std::vector<Eigen::Index> histogram(static_cast<std::size_t>(bins), 0);
  for (Eigen::Index j = 0; j + 1 < n; ++j) {
    const Eigen::Index m = bins_of_column(j);
    for (Eigen::Index i = 0; i < m; ++i) ++histogram[static_cast<std::size_t>(bin(i))];
  }
  // The bins holding first_rank and hi_rank, and how many values precede the first of them.
  Eigen::Index first_bin = -1, last_bin = -1, before = 0, seen = 0;
  for (Eigen::Index b = 0; b < bins && last_bin < 0; ++b) {
    const Eigen::Index c = histogram[static_cast<std::size_t>(b)];
    if (first_bin < 0 && seen + c > first_rank) {
      first_bin = b;
      before = seen;
    }
    if (seen + c > hi_rank) last_bin = b;
    seen += c;
  }
  std::vector<T> v;
  for (Eigen::Index j = 0; j + 1 < n; ++j) {
    const Eigen::Index m = bins_of_column(j);
    for (Eigen::Index i = 0; i < m; ++i) {
      if (bin(i) >= first_bin && bin(i) <= last_bin) v.push_back(d(j + 1 + i, j));
    }
  }
  const auto hi_at = v.begin() + (hi_rank - before);
  std::nth_element(v.begin(), hi_at, v.end());
  const T upper = *hi_at;
  if (lo_rank == hi_rank) return upper;
  // The lower middle value is a diagonal zero, or the largest value ranked below the upper one.
  const T lower = lo_rank < 0 ? T(0) : *std::max_element(v.begin(), hi_at);
  return detail::median_midpoint(lower, upper);
}

/// Gaussian RBF kernel k(x, y) = exp(−‖x − y‖² / (2σ²)).
/// `rbf_kernel{sigma}` fixes σ; `rbf_kernel::median(fraction, rule)` sets σ² = fraction² · median of the
/// squared pairwise distances, resolved separately for each representation the kernel is applied to (in
/// kernel_cka, once for X and once for Y; in mmd2, on the pooled sample).
/// Throws cka::invalid_argument if sigma or fraction is not positive and finite; cka::domain_error at use
/// if a median bandwidth comes out zero (more than half the distances vanish).
class rbf_kernel : public rbf_parameters {
 public:
  explicit rbf_kernel(double sigma) : rbf_parameters(sigma) {}

  static rbf_kernel median(double fraction = 1.0, median_rule rule = median_rule::all_pairs) {
    rbf_kernel k(1.0);
    k.set_median(fraction, rule);
    return k;
  }

  /// σ² for the representation whose squared distances are d.
  template <class T>
  T bandwidth_squared(const matrix<T>& d) const {
    if (!uses_median()) return T(T(sigma_) * T(sigma_));
    return bandwidth_from_median(median_squared_distance(d, rule_));
  }

  /// Replaces squared distances by kernel values exp(−d/(2σ²)). When 1/(2σ²) overflows (σ below ~1e−154)
  /// the exponent is formed as −(d/σ)/(2σ): 1 on the diagonal, the true (usually zero) value elsewhere.
  /// Throws cka::domain_error when σ² overflows (σ above ~1e154): every kernel value would round to 1.
  template <class T>
  void from_squared_distances(matrix<T>& d) const {
    apply(d, uses_median() ? bandwidth_squared(d) : T(T(sigma_) * T(sigma_)));
  }

  /// exp(−d/(2σ²)) in place for a resolved σ² = s2 (from bandwidth_squared or bandwidth_from_median), on any
  /// writable Eigen matrix (the tiled engine passes tiles). Throws as from_squared_distances.
  template <class D>
  void apply(Eigen::MatrixBase<D>& d, typename D::Scalar s2) const {
    using T = typename D::Scalar;
    using std::exp;
    const exponent_form<T> f = exponent_for(s2);
    if (!f.split) {
      d.derived() = (d.array() * f.scale).exp().matrix();
    } else {
      d.derived() = d.unaryExpr([&](const T& v) { return v == T(0) ? T(1) : T(exp(T(T(v / f.root) * f.half))); });
    }
  }
};
template <>
struct kernel_traits<rbf_kernel> {
  static constexpr kernel_form form = kernel_form::squared_distance;
  static constexpr builtin_kernel builtin = builtin_kernel::rbf;
};

}  // namespace cka
