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
#include <cka/detail/dense_median.hpp>
#include <cka/detail/rbf_map.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/inner_product_kernels.hpp>
#include <cka/kernel_traits.hpp>
#include <cka/rbf_parameters.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstdint>

namespace cka {

/// Median of the squared distances in the full symmetric n×n matrix d (zero diagonal), under `rule`.
/// Exact, in O(n²) time and O(1) extra memory for typical data: a count of the n(n−1)/2 values below the
/// diagonal by bucket (2^12 of them, by bit pattern) locates the middle rank(s), and only their buckets'
/// values are then selected (a full sort or a selection over a copy of all n²/2 values costs several times
/// more at n = 4096). Returns 0 for `nonzero` when every distance is zero.
/// Throws cka::invalid_argument if d has fewer than 2 rows, or an entry below the diagonal is NaN, ±Inf
/// or negative (the message names it).
template <class T>
T median_squared_distance(const matrix<T>& d, median_rule rule = median_rule::all_pairs) {
  const char* fn = "median_squared_distance";
  auto src = detail::dense_distances_of(fn, d);
  return detail::select_median(fn, std::uint64_t(d.rows()), rule, src);
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
    detail::apply_rbf(*this, d, s2);
  }
};
template <>
struct kernel_traits<rbf_kernel> {
  static constexpr kernel_form form = kernel_form::squared_distance;
  static constexpr builtin_kernel builtin = builtin_kernel::rbf;
};

}  // namespace cka
