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
/// computed from column-centred features) and does the same. The generic form is called once per pair
/// i ≤ j with two rows (Eigen row expressions of scalar T). T is the accumulation type: double for float
/// input. Specialise `cka::kernel_traits` in namespace cka for a new form-based kernel.

#include <cka/detail/checks.hpp>
#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <vector>

namespace cka {

/// How a kernel's Gram is built; see the file comment.
enum class kernel_form { generic, inner_product, squared_distance };

/// Traits of a kernel type; the default is a pairwise `operator()`.
template <class Kernel>
struct kernel_traits {
  static constexpr kernel_form form = kernel_form::generic;
};

/// Which squared distances a median bandwidth is taken over.
/// - `all_pairs`: all n² entries of the distance matrix, the n zeros of its diagonal included, with NumPy's
///   median (the mean of the two middle values when the count is even) — Kornblith et al.'s reference code.
/// - `off_diagonal`: the n(n−1)/2 distinct pairs i < j, same median definition.
enum class median_rule { all_pairs, off_diagonal };

/// Median of the squared distances in the full symmetric n×n matrix d (zero diagonal), under `rule`.
/// Cost O(n²) time and n(n−1)/2 extra values. Throws cka::invalid_argument if d has fewer than 2 rows.
template <class T>
T median_squared_distance(const matrix<T>& d, median_rule rule = median_rule::all_pairs) {
  const Eigen::Index n = d.rows();
  detail::require_samples("median_squared_distance", "the distance matrix", n, 2, "a median bandwidth");
  std::vector<T> v;
  v.reserve(static_cast<std::size_t>(n * (n - 1) / 2));
  for (Eigen::Index j = 0; j < n; ++j) {
    for (Eigen::Index i = j + 1; i < n; ++i) v.push_back(d(i, j));
  }
  // k-th smallest (0-based) of the multiset under the rule: with all_pairs the sorted list is n zeros
  // (the diagonal) followed by every off-diagonal value twice.
  const Eigen::Index count = rule == median_rule::all_pairs ? n * n : Eigen::Index(v.size());
  auto kth = [&](Eigen::Index k) -> T {
    Eigen::Index idx = k;
    if (rule == median_rule::all_pairs) {
      if (k < n) return T(0);
      idx = (k - n) / 2;
    }
    std::nth_element(v.begin(), v.begin() + idx, v.end());
    return v[static_cast<std::size_t>(idx)];
  };
  if (count % 2 == 1) return kth(count / 2);
  const T lo = kth(count / 2 - 1);
  const T hi = kth(count / 2);
  return T((lo + hi) / 2);
}

/// Linear kernel k(x, y) = ⟨x, y⟩.
struct linear_kernel {
  template <class T>
  void from_inner_products(matrix<T>&) const {}
};
template <>
struct kernel_traits<linear_kernel> {
  static constexpr kernel_form form = kernel_form::inner_product;
};

/// Polynomial kernel k(x, y) = (gamma·⟨x, y⟩ + coef0)^degree. Not translation invariant: its Gram is built
/// from the raw features. Throws cka::invalid_argument (at use) if degree < 1 or gamma, coef0 not finite.
struct polynomial_kernel {
  int degree = 2;
  double gamma = 1.0;
  double coef0 = 1.0;

  template <class T>
  void from_inner_products(matrix<T>& g) const {
    if (degree < 1 || !detail::is_finite_value(gamma) || !detail::is_finite_value(coef0)) {
      detail::fail_argument("polynomial_kernel", "degree = ", degree, ", gamma = ", gamma, ", coef0 = ", coef0,
                            "; need degree >= 1 and finite gamma and coef0");
    }
    using std::pow;
    g = g.unaryExpr([this](const T& p) { return T(pow(T(T(gamma) * p + T(coef0)), degree)); });
  }
};
template <>
struct kernel_traits<polynomial_kernel> {
  static constexpr kernel_form form = kernel_form::inner_product;
};

/// Gaussian RBF kernel k(x, y) = exp(−‖x − y‖² / (2σ²)).
/// `rbf_kernel{sigma}` fixes σ; `rbf_kernel::median(fraction, rule)` sets σ² = fraction² · median of the
/// squared pairwise distances, resolved separately for each representation the kernel is applied to (in
/// kernel_cka, once for X and once for Y; in mmd2, on the pooled sample).
/// Throws cka::invalid_argument if sigma or fraction is not positive and finite; cka::domain_error at use
/// if a median bandwidth comes out zero (more than half the distances vanish).
class rbf_kernel {
 public:
  explicit rbf_kernel(double sigma) : sigma_(sigma) { check("sigma", sigma); }

  static rbf_kernel median(double fraction = 1.0, median_rule rule = median_rule::all_pairs) {
    check("fraction", fraction);
    rbf_kernel k(1.0);
    k.sigma_ = 0.0;
    k.fraction_ = fraction;
    k.rule_ = rule;
    return k;
  }

  /// True for a median-rule bandwidth, resolved per representation.
  bool uses_median() const { return sigma_ == 0.0; }
  /// The fixed σ (0 for a median-rule kernel).
  double sigma() const { return sigma_; }
  double fraction() const { return fraction_; }
  median_rule rule() const { return rule_; }

  /// σ² for the representation whose squared distances are d.
  template <class T>
  T bandwidth_squared(const matrix<T>& d) const {
    if (!uses_median()) return T(T(sigma_) * T(sigma_));
    const T s2 = T(T(fraction_) * T(fraction_) * median_squared_distance(d, rule_));
    if (!(s2 > T(0))) {
      detail::fail_domain("rbf_kernel::median", "the median squared distance is ", s2,
                          " (more than half of the pairs coincide), so the bandwidth is zero");
    }
    return s2;
  }

  template <class T>
  void from_squared_distances(matrix<T>& d) const {
    const T scale = T(T(-1) / (T(2) * bandwidth_squared(d)));
    using std::exp;
    d = d.unaryExpr([scale](const T& x) { return T(exp(T(scale * x))); });
  }

 private:
  static void check(const char* what, double v) {
    if (!(v > 0.0) || !detail::is_finite_value(v)) {
      detail::fail_argument("rbf_kernel", what, " = ", v, " must be positive and finite");
    }
  }
  double sigma_ = 1.0;
  double fraction_ = 1.0;
  median_rule rule_ = median_rule::all_pairs;
};
template <>
struct kernel_traits<rbf_kernel> {
  static constexpr kernel_form form = kernel_form::squared_distance;
};

}  // namespace cka
