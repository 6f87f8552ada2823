#pragma once
/// \file mmd_bound.hpp
/// The decomposition of the Gram alignment into a constant minus a mean squared discrepancy, and its
/// Jensen upper bound in terms of an MMD-type gap (Zhou et al., IJCAI 2024, §3; derived in
/// docs/mmd_bound.md).

#include <cka/detail/centering.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/gram.hpp>
#include <cka/kernels.hpp>

#include <Eigen/Core>

#include <cmath>
#include <type_traits>

namespace cka {

/// The terms of   alignment = constant − discrepancy ≤ bound = constant − (N²/2)·mean_gap².
/// With K̂ = K/‖K‖_F and L̂ = L/‖L‖_F (N×N):
///   alignment   = ⟨K̂, L̂⟩_F (the cosine of the Grams; CKA when `centered`)
///   constant    = 1
///   discrepancy = ½‖K̂ − L̂‖²_F = (N²/2)·mean_ij (K̂_ij − L̂_ij)²            (exact)
///   mean_gap    = mean_ij K̂_ij − mean_ij L̂_ij                            (an MMD-type term)
///   bound       = 1 − (N²/2)·mean_gap²  ≥ alignment                      (Jensen: mean D² ≥ (mean D)²)
template <class T>
struct mmd_bound_result {
  T alignment, constant, discrepancy, mean_gap, bound;
};

/// How mmd_bound treats the Grams.
struct mmd_bound_options {
  /// Center both Grams (HKH) first: the alignment is then CKA, the means vanish and the bound is 1.
  /// Off by default, as in the paper's derivation.
  bool centered = false;
};

/// The decomposition and bound for the Grams of X (N×d1) and Y (N×d2) under `kernel` (the same kernel
/// type and parameters for both; a median-rule bandwidth is resolved per representation), uncentered
/// as in the paper's derivation unless `options.centered` (then both Grams are HKH, their means vanish,
/// and the bound is the trivial 1). Cost O(N²(d1+d2)).
/// Every result is that of the normalised Grams K/‖K‖, L/‖L‖, so a Gram (and, for the linear kernel, a
/// representation) whose magnitudes lie beyond 2^±200 is scaled by a power of two first.
/// Throws cka::invalid_argument for different sample counts, N < 2 or NaN/Inf; cka::domain_error if a
/// Gram is zero (after centering, if asked) or a kernel value overflows.
template <class DX, class DY, class Kernel = linear_kernel>
mmd_bound_result<typename DX::Scalar> mmd_bound(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                                                const Kernel& kernel = {}, const mmd_bound_options& options = {}) {
  using T = typename DX::Scalar;
  static_assert(std::is_same_v<T, typename DY::Scalar>, "cka::mmd_bound: X and Y must have the same scalar type");
  using A = accumulator_t<T>;
  const char* fn = "mmd_bound";
  const detail::view_t<DX> xv(x.derived());
  const detail::view_t<DY> yv(y.derived());
  detail::require_same_samples(fn, "X", xv, "Y", yv);
  detail::require_samples(fn, "X", xv.rows(), 2, "the alignment");
  detail::require_finite(fn, "X", xv);
  detail::require_finite(fn, "Y", yv);
  auto normalised = [&](matrix<A> g, const char* name) {
    detail::scale_gram<A>(g);  // beyond 2^±200, by a power of two first: g/‖g‖ does not depend on it
    if (options.centered) g = detail::centered_dense<A>(std::move(g), estimator::biased);
    const A norm = g.norm();
    if (!(norm > A(0))) detail::fail_domain(fn, "the Gram of ", name, " is zero, so the alignment is undefined");
    return matrix<A>(g / norm);
  };
  // The linear kernel's Gram goes as the square of the features: they are scaled by a power of two first
  // where their magnitudes are extreme, so that its entries neither overflow nor underflow.
  auto gram = [&](const auto& v, const char* name) {
    if constexpr (std::is_same_v<Kernel, linear_kernel>) {
      const A s = detail::safe_scale<A>(v);
      if (s != A(1)) return normalised(detail::gram_of<A>(detail::scaled_copy<A>(v, s), kernel, fn), name);
    }
    return normalised(detail::gram_of<A>(v, kernel, fn), name);
  };
  const matrix<A> k = gram(xv, "X");
  const matrix<A> l = gram(yv, "Y");
  const A nn = A(xv.rows());
  const A gap = A(k.mean() - l.mean());
  return {T(k.cwiseProduct(l).sum()), T(1), T((k - l).squaredNorm() / A(2)), T(gap),
          T(A(1) - nn * nn / A(2) * gap * gap)};
}

}  // namespace cka
