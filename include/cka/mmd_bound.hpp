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
/// Throws cka::invalid_argument for different sample counts, N < 2 or NaN/Inf; cka::domain_error if a
/// Gram is zero (after centering, if asked).
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
    if (options.centered) g = detail::centered_dense<A>(std::move(g), estimator::biased);
    const A norm = g.norm();
    if (!(norm > A(0))) detail::fail_domain(fn, "the Gram of ", name, " is zero, so the alignment is undefined");
    return matrix<A>(g / norm);
  };
  const matrix<A> k = normalised(detail::gram_of<A>(xv, kernel, "mmd_bound"), "X");
  const matrix<A> l = normalised(detail::gram_of<A>(yv, kernel, "mmd_bound"), "Y");
  const A nn = A(xv.rows());
  const A gap = A(k.mean() - l.mean());
  return {T(k.cwiseProduct(l).sum()), T(1), T((k - l).squaredNorm() / A(2)), T(gap),
          T(A(1) - nn * nn / A(2) * gap * gap)};
}

}  // namespace cka
