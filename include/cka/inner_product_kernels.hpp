#pragma once
/// \file inner_product_kernels.hpp
/// The kernels built from inner products — linear and polynomial — free of Eigen, so that CUDA translation
/// units (cka/device/cuda.hpp) can pass them; kernels.hpp includes them with the rest.

#include <cka/detail/fail.hpp>
#include <cka/detail/host_device.hpp>
#include <cka/kernel_traits.hpp>

#include <cmath>

namespace cka {

/// Linear kernel k(x, y) = ⟨x, y⟩.
struct linear_kernel {
  /// The Gram from the inner products: nothing to do.
  template <class M>
  void from_inner_products(M&) const {}
};
template <>
struct kernel_traits<linear_kernel> {
  static constexpr kernel_form form = kernel_form::inner_product;
  static constexpr builtin_kernel builtin = builtin_kernel::linear;
};

/// Polynomial kernel k(x, y) = (gamma·⟨x, y⟩ + coef0)^degree. Not translation invariant: its Gram is built
/// from the raw features. Throws cka::invalid_argument (at use) if degree < 1 or gamma, coef0 not finite.
struct polynomial_kernel {
  int degree = 2;
  double gamma = 1.0;
  double coef0 = 1.0;

  /// Throws cka::invalid_argument naming the kernel unless degree ≥ 1 and gamma, coef0 are finite.
  void require_valid() const {
    if (degree < 1 || !std::isfinite(gamma) || !std::isfinite(coef0)) {
      detail::fail_argument("polynomial_kernel", "degree = ", degree, ", gamma = ", gamma, ", coef0 = ", coef0,
                            "; need degree >= 1 and finite gamma and coef0");
    }
  }

  /// The kernel value (γ·p + c₀)^degree for an inner product p, in T: the power by repeated squaring
  /// (⌊log₂ degree⌋ squarings and as many products at most; no intermediate exceeds the result's
  /// magnitude when it is at least 1). The same routine on the host and, compiled by nvcc, on the device.
  /// Precondition: require_valid().
  template <class T>
  CKA_HD T from_inner_product(const T& p) const {
    T base = T(T(gamma) * p + T(coef0)), result = T(1);
    for (int e = degree;;) {
      if (e & 1) result = T(result * base);
      e >>= 1;
      if (e == 0) return result;
      base = T(base * base);
    }
  }

  /// Replaces the inner products in g (an Eigen matrix of scalar T) by kernel values, in T.
  template <class M>
  void from_inner_products(M& g) const {
    using T = typename M::Scalar;
    require_valid();
    g = g.unaryExpr([this](const T& p) { return from_inner_product(p); });
  }
};
template <>
struct kernel_traits<polynomial_kernel> {
  static constexpr kernel_form form = kernel_form::inner_product;
  static constexpr builtin_kernel builtin = builtin_kernel::polynomial;
};

}  // namespace cka
