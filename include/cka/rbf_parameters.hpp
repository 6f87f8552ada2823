#pragma once
/// \file rbf_parameters.hpp
/// The parameters of a Gaussian RBF kernel — a fixed σ, or a median rule — and how a median squared
/// distance becomes σ², free of Eigen so that CUDA translation units (cka/device/cuda.hpp) can name them.
/// cka::rbf_kernel (kernels.hpp) is an rbf_parameters with the Eigen operations added; either can be passed
/// to the device functions.

#include <cka/detail/fail.hpp>

#include <cmath>
#include <cstdint>

namespace cka {

/// Which squared distances a median bandwidth is taken over.
/// - `all_pairs`: all n² entries of the distance matrix, the n zeros of its diagonal included, with NumPy's
///   median (the mean of the two middle values when the count is even) — Kornblith et al.'s reference code.
/// - `off_diagonal`: the n(n−1)/2 distinct pairs i < j, same median definition.
/// - `nonzero`: the distinct pairs i < j at a positive distance only (duplicated rows left out), same
///   median definition — a convention some implementations use so that repeated samples, sparse layers
///   or one-hot labels still get a positive bandwidth; zero only when all rows coincide.
enum class median_rule { all_pairs, off_diagonal, nonzero };

namespace detail {

/// Thrown (as the cka::domain_error it is) when a median bandwidth comes out zero; similarity_matrix
/// catches it to give that layer NaN cells instead of losing the whole matrix.
class zero_bandwidth : public domain_error {
 public:
  using domain_error::domain_error;
};

/// The 0-based ranks, among the n(n−1)/2 off-diagonal squared distances sorted ascending, of the one or two
/// middle values of the median under `rule`, given how many of them are exactly zero (only `nonzero` needs
/// it); −1 for a middle value that is a diagonal zero (all_pairs: the sorted list is n zeros followed by
/// every off-diagonal value twice). Both −1: the median is 0.
struct middle_ranks {
  std::int64_t lo, hi;
};
inline middle_ranks median_ranks(std::uint64_t n, median_rule rule, std::uint64_t zeros) {
  const std::uint64_t pairs = n * (n - 1) / 2;
  const std::uint64_t count = rule == median_rule::all_pairs ? n * n : rule == median_rule::nonzero ? pairs - zeros : pairs;
  auto position = [&](std::uint64_t k) -> std::int64_t {
    if (rule == median_rule::all_pairs) return k < n ? -1 : std::int64_t((k - n) / 2);
    return std::int64_t(rule == median_rule::nonzero ? k + zeros : k);
  };
  return {position((count - 1) / 2), position(count / 2)};
}

/// How exp(−d/(2σ²)) is formed for a resolved σ²: exp(d·scale) with scale = −1/(2σ²); or, where that
/// scale overflows (σ below ~1e−154), exp((d/root)·half) with root = σ, half = −1/(2σ), and 1 at d = 0.
template <class T>
struct rbf_exponent_form {
  T scale, root, half;
  bool split;
};

/// NumPy's mean of the two middle values, halved first only where the sum would overflow.
template <class T>
T median_midpoint(const T& lower, const T& upper) {
  const T mid = T((lower + upper) / 2);
  return mid - mid == T(0) ? mid : T(lower / 2 + upper / 2);
}

}  // namespace detail

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

  /// The form of exp(−d/(2σ²)) for a resolved σ² = s2 (σ² of a fixed σ, or bandwidth_from_median's).
  /// Throws cka::domain_error when σ² overflows (σ above ~1e154): every kernel value would round to 1.
  template <class T>
  detail::rbf_exponent_form<T> exponent_for(const T& s2) const {
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
