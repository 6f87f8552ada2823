#pragma once
/// \file gram.hpp
/// Gram matrices of a representation under a kernel.

#include <cka/detail/centering.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/interrupt.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/kernels.hpp>

#include <Eigen/Core>

#include <cmath>
#include <type_traits>
#include <utility>

namespace cka {
namespace detail {

/// Throws cka::domain_error (overflow) unless every entry of the n×n kernel matrix g is finite.
template <class A>
void require_finite_gram(const char* fn, const matrix<A>& g) {
  if (g.allFinite()) return;
  fail_kernel_overflow(fn);
}

/// Full symmetric n×n Gram of the rows of x under `kernel`, in scalar A. Inner-product kernels use the raw
/// features; squared-distance kernels use column-centered features (distances are translation invariant and
/// centering keeps float data with a large offset accurate; a median-rule RBF, which is also scale
/// invariant, first scales extreme magnitudes by a power of two so their squares stay in range); generic
/// kernels are called per pair i ≤ j. Throws cka::domain_error (overflow) for a kernel value outside the
/// range of A, naming `fn`.
template <class A, class M, class Kernel>
matrix<A> gram_of(const M& x, const Kernel& kernel, const char* fn = "gram") {
  constexpr kernel_form form = kernel_traits<Kernel>::form;
  if constexpr (form == kernel_form::inner_product) {
    matrix<A> g = symmetric_outer<A>(promote<A>(x));
    kernel.from_inner_products(g);
    require_finite_gram(fn, g);
    return g;
  } else if constexpr (form == kernel_form::squared_distance) {
    if constexpr (std::is_same_v<Kernel, rbf_kernel>) {
      if (kernel.uses_median()) {
        const A scale = safe_scale<A>(x);
        if (scale != A(1)) return gram_of<A>(scaled_copy<A>(x, scale), kernel, fn);
      }
    }
    matrix<A> d = centered_row_gram<A>(x);
    const vector<A> sq = d.diagonal();
    require_finite_distances(fn, sq);
    // ‖xi‖² + ‖xj‖² − 2⟨xi, xj⟩, or Σ (x_ik − x_jk)² where that is too small to trust (equal rows: 0).
    squared_distances_from_inner(d, sq, sq, true, [&](Eigen::Index i, Eigen::Index j) {
      return A((x.row(i).template cast<A>() - x.row(j).template cast<A>()).squaredNorm());
    });
    poll_interrupt();  // between the O(n²) passes of a large Gram
    require_finite_distances(fn, d);
    kernel.from_squared_distances(d);
    poll_interrupt();
    require_finite_gram(fn, d);
    return d;
  } else {
    decltype(auto) xa = promote<A>(x);
    const Eigen::Index n = xa.rows();
    matrix<A> g(n, n);
    for (Eigen::Index j = 0; j < n; ++j) {
      for (Eigen::Index i = j; i < n; ++i) {
        g(i, j) = A(kernel(xa.row(i), xa.row(j)));
        g(j, i) = g(i, j);
      }
      poll_interrupt();
    }
    require_finite_gram(fn, g);
    return g;
  }
}

/// Multiplies the Gram k by `scale`, a power of two, and returns it; where scale is 0, by the one that
/// brings k's largest magnitude into [2^−200, 2^200] (1 where it lies there or is zero), so that the
/// centered products — squares of the entries, summed — stay in range. CKA is the same for cK as for K, and
/// the product is exact. O(n²) to find the largest magnitude; a second pass only where it is scaled.
template <class A>
A scale_gram(matrix<A>& k, A scale = A(0)) {
  if (scale == A(0)) scale = safe_scale<A>(k);
  if (scale != A(1)) k *= scale;
  return scale;
}

/// The centered Gram C(K) of x under the kernel (HKH, or the U-centered K̃ for the unbiased estimator),
/// and in `raw` the squared norm of the Gram it was centered from (the reference for a vanishing one).
/// `scale`, in and out: the power of two that multiplies the features (linear kernel) or the Gram (other
/// kernels) — chosen from this x where it is 0 (safe_scale of x, or scale_gram of its Gram), else applied
/// as given, so that the Grams of one layer's batches share it. CKA does not depend on it.
/// The linear kernel centers the features first (K = XcXcᵀ is HKH already, and a large common offset costs
/// no accuracy), so its reference is the centered Gram itself; a constant layer gives exact zeros.
template <class A, class V, class Kernel>
matrix<A> centered_gram(const char* fn, const V& x, const Kernel& kernel, estimator est, A& raw, A& scale) {
  if constexpr (std::is_same_v<Kernel, linear_kernel>) {
    if (scale == A(0)) scale = safe_scale<A>(x);
    matrix<A> k = scale == A(1) ? centered_row_gram<A>(x) : centered_row_gram<A>(scaled_copy<A>(x, scale));
    raw = k.squaredNorm();
    return est == estimator::biased ? k : centered_dense<A>(std::move(k), est);
  } else {
    matrix<A> k = gram_of<A>(x, kernel, fn);
    scale = scale_gram<A>(k, scale);
    raw = k.squaredNorm();
    return centered_dense<A>(std::move(k), est);
  }
}

/// The same, its scale chosen from x.
template <class A, class V, class Kernel>
matrix<A> centered_gram(const char* fn, const V& x, const Kernel& kernel, estimator est, A& raw) {
  A scale(0);
  return centered_gram<A>(fn, x, kernel, est, raw, scale);
}

}  // namespace detail

/// Gram matrix G_ij = k(x_i, x_j) of the rows of X (n×d) under `kernel` (see kernels.hpp for the kernel
/// forms). Returns n×n in X's scalar type, computed in double for float input.
/// Cost: O(n²d) — one symmetric GEMM of n²d(1+1/8) flops for the linear, polynomial and RBF kernels.
/// Throws cka::invalid_argument for NaN or ±Inf in X, or a bad kernel parameter; cka::domain_error for a
/// median bandwidth that comes out zero.
template <class Derived, class Kernel>
matrix<typename Derived::Scalar> gram(const Eigen::MatrixBase<Derived>& x, const Kernel& kernel) {
  using T = typename Derived::Scalar;
  const detail::view_t<Derived> xv(x.derived());
  detail::require_finite("gram", "X", xv);
  if constexpr (std::is_same_v<T, accumulator_t<T>>) {
    return detail::gram_of<T>(xv, kernel);
  } else {
    return detail::gram_of<accumulator_t<T>>(xv, kernel).template cast<T>();
  }
}

}  // namespace cka
