#pragma once
/// \file rbf_parameters.hpp
/// The parameters of a Gaussian RBF kernel — a fixed σ, or a median rule — and how a median squared
/// distance becomes σ², free of Eigen so that CUDA translation units (cka/device/cuda.hpp) can name them.
/// cka::rbf_kernel (kernels.hpp) is an rbf_parameters with the Eigen operations added; either can be passed
/// to the device functions.

#include <cka/detail/fail.hpp>
#include <cka/median_rule.hpp>

#include <cmath>
#include <cstdint>

namespace cka {

/// A Gaussian RBF kernel's parameters: k(x, y) = exp(−‖x − y‖² / (2σ²)) with σ fixed (`rbf_parameters{sigma}`)
/// or σ² = fraction² · median of the squared pairwise distances (`rbf_parameters::median(fraction, rule)`),
/// resolved for each representation. Throws cka::invalid_argument if sigma or fraction is not positive and
/// finite.
class rbf_parameters {
 public:
  explicit rbf_parameters(double sigma) : sigma_(sigma) { check("sigma", sigma); }

  static rbf_parameters median(double fraction = 1.0, median_rule rule = median_rule::all_pairs) {
    rbf_parameters k(1.0);
    k.set_median(fraction, rule);
    return k;
  }

  /// True for a median-rule bandwidth, resolved per representation.
  bool uses_median() const { return sigma_ == 0.0; }
  /// The fixed σ (0 for a median-rule kernel).
  double sigma() const { return sigma_; }
  double fraction() const { return fraction_; }
  median_rule rule() const { return rule_; }

  /// σ² = fraction² · median for a median squared distance. Throws detail::zero_bandwidth (a
  /// cka::domain_error) when the median is 0, cka::domain_error when σ² leaves the range of T.
  template <class T>
  T bandwidth_from_median(const T& median) const {
    const T s2 = T(T(fraction_) * T(fraction_) * median);
    if (!(median > T(0))) {
      throw detail::zero_bandwidth(
          rule_ == median_rule::nonzero
              ? "cka::rbf_kernel::median: every squared distance is 0 (all samples coincide), so the bandwidth "
                "is zero"
              : "cka::rbf_kernel::median: the median squared distance is 0 (at least half of the pairs coincide), "
                "so the bandwidth is zero; median_rule::nonzero or a fixed sigma avoids it");
    }
    if (!(s2 > T(0)) || !(s2 - s2 == T(0))) {
      detail::fail_domain("rbf_kernel::median", "sigma^2 = fraction^2 * median = ", fraction_, "^2 * ", median,
                          " is outside the range of the accumulation type");
    }
    return s2;
  }

  /// How exp(−d/(2σ²)) is formed for a resolved σ²: exp(d·scale) with scale = −1/(2σ²); or, where that
  /// scale overflows (σ below ~1e−154, `split`), exp((d/root)·half) with root = σ, half = −1/(2σ), and 1 at
  /// d = 0.
  template <class T>
  struct exponent_form {
    T scale, root, half;
    bool split;
  };

  /// The form of exp(−d/(2σ²)) for a resolved σ² = s2 (σ² of a fixed σ, or bandwidth_from_median's).
  /// Throws cka::domain_error when σ² overflows (σ above ~1e154): every kernel value would round to 1.
  template <class T>
  exponent_form<T> exponent_for(const T& s2) const {
    using std::sqrt;
    const T scale = T(T(-1) / (T(2) * s2));
    if (scale - scale == T(0) && scale != T(0)) return {scale, T(0), T(0), false};
    if (scale == T(0)) {
      detail::fail_domain("rbf_kernel", "overflow: sigma^2 = ", s2, " exceeds the range of the accumulation "
                          "type, so every kernel value rounds to 1; rescale the inputs and sigma together");
    }
    const T root = uses_median() ? T(sqrt(s2)) : T(sigma_);
    return {scale, root, T(T(-1) / (T(2) * root)), true};
  }

 protected:
  void set_median(double fraction, median_rule rule) {
    check("fraction", fraction);
    sigma_ = 0.0;
    fraction_ = fraction;
    rule_ = rule;
  }
  static void check(const char* what, double v) {
    if (!(v > 0.0) || !(v - v == 0.0)) detail::fail_argument("rbf_kernel", what, " = ", v, " must be positive and finite");
  }
  double sigma_ = 1.0;
  double fraction_ = 1.0;
  median_rule rule_ = median_rule::all_pairs;
};

}  // namespace cka
