#pragma once
/// \file mmd.hpp
/// Squared maximum mean discrepancy between two samples.

#include <cka/detail/checks.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/gram.hpp>
#include <cka/kernels.hpp>
#include <cka/detail/centering.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <type_traits>

namespace cka {

/// Squared MMD between samples X (m×d) and Y (n×d) under `kernel` (Gretton et al., JMLR 2012):
///   biased:   mean(Kxx) + mean(Kyy) − 2·mean(Kxy) over all entries (the V-statistic, ≥ 0 for a
///             characteristic kernel);
///   unbiased: the diagonals of Kxx and Kyy left out: Σ_{i≠j} Kxx/(m(m−1)) + Σ_{i≠j} Kyy/(n(n−1)) −
///             2·mean(Kxy) (Gretton et al. eq. 3; may be negative, returned as computed).
/// The kernel is applied to the pooled sample [X; Y]: a median-rule `rbf_kernel` takes its bandwidth from
/// the (m+n)² pooled distances. Cost O((m+n)²d) for one Gram; memory (m+n)².
/// Throws cka::invalid_argument if the feature counts differ, m or n is below 1 (biased) or 2 (unbiased),
/// or an entry is NaN or ±Inf.
template <class DX, class DY, class Kernel>
typename DX::Scalar mmd2(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const Kernel& kernel,
                         estimator est = estimator::biased) {
  using T = typename DX::Scalar;
  static_assert(std::is_same_v<T, typename DY::Scalar>, "cka::mmd2: X and Y must have the same scalar type");
  using A = accumulator_t<T>;
  const detail::view_t<DX> xv(x.derived());
  const detail::view_t<DY> yv(y.derived());
  const char* fn = "mmd2";
  if (xv.cols() != yv.cols()) {
    detail::fail_argument(fn, "X has ", xv.cols(), " features (columns) but Y has ", yv.cols(),
                          "; both samples must live in the same space");
  }
  const Eigen::Index needed = est == estimator::biased ? 1 : 2;
  detail::require_samples(fn, "X", xv.rows(), needed, detail::estimator_name(est));
  detail::require_samples(fn, "Y", yv.rows(), needed, detail::estimator_name(est));
  detail::require_finite(fn, "X", xv);
  detail::require_finite(fn, "Y", yv);

  const Eigen::Index m = xv.rows(), n = yv.rows();
  matrix<A> z(m + n, xv.cols());
  z.topRows(m) = xv.template cast<A>();
  z.bottomRows(n) = yv.template cast<A>();
  const matrix<A> k = detail::gram_of<A>(z, kernel);

  A sxx = k.topLeftCorner(m, m).sum();
  A syy = k.bottomRightCorner(n, n).sum();
  const A sxy = k.bottomLeftCorner(n, m).sum();
  const A mm = A(m), nn = A(n);
  if (est == estimator::biased) {
    return T(sxx / (mm * mm) + syy / (nn * nn) - A(2) * sxy / (mm * nn));
  }
  sxx -= k.diagonal().head(m).sum();
  syy -= k.diagonal().tail(n).sum();
  return T(sxx / (mm * (mm - 1)) + syy / (nn * (nn - 1)) - A(2) * sxy / (mm * nn));
}

}  // namespace cka
