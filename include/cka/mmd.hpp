#pragma once
/// \file mmd.hpp
/// Squared maximum mean discrepancy between two samples.

#include <cka/detail/checks.hpp>
#include <cka/detail/mmd_sums.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/gram.hpp>
#include <cka/kernels.hpp>
#include <cka/detail/centering.hpp>
#include <cka/detail/sums.hpp>
#include <cka/detail/tiles.hpp>
#include <cka/compute.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <type_traits>

namespace cka {
namespace detail {

/// Squared MMD under the linear kernel in O((m+n)d), from the means of the pooled sample shifted to its own
/// mean μ (the statistic is translation invariant): biased ‖x̄ − ȳ‖²; unbiased, with Sx = Σ(xᵢ − μ) and
/// Qx = Σ‖xᵢ − μ‖², (‖Sx‖² − Qx)/(m(m−1)) + (‖Sy‖² − Qy)/(n(n−1)) − 2⟨Sx, Sy⟩/(mn). Extreme magnitudes are
/// scaled by a power of two first; a result outside the range of A is reported as overflow.
template <class A, class VX, class VY>
A linear_mmd2(const char* fn, const VX& x, const VY& y, estimator est) {
  const Eigen::Index m = x.rows(), n = y.rows(), d = x.cols();
  using row = Eigen::Matrix<A, 1, Eigen::Dynamic>;
  const A c = std::min(safe_scale<A>(x), safe_scale<A>(y));
  const row r0 = x.row(0).template cast<A>() * c;
  row diff = row::Zero(d);  // Σ (z − r0): the pooled mean is r0 + diff/(m+n)
  for (Eigen::Index i = 0; i < m; ++i) diff += x.row(i).template cast<A>() * c - r0;
  for (Eigen::Index i = 0; i < n; ++i) diff += y.row(i).template cast<A>() * c - r0;
  const row mu = r0 + diff / A(m + n);
  row sx = row::Zero(d), sy = row::Zero(d);
  A qx(0), qy(0);
  for (Eigen::Index i = 0; i < m; ++i) {
    const row v = x.row(i).template cast<A>() * c - mu;
    sx += v;
    qx += v.squaredNorm();
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    const row v = y.row(i).template cast<A>() * c - mu;
    sy += v;
    qy += v.squaredNorm();
  }
  const A mm = A(m), nn = A(n);
  A value = est == estimator::biased
                ? A((sx / mm - sy / nn).squaredNorm())
                : A((sx.squaredNorm() - qx) / (mm * (mm - 1)) + (sy.squaredNorm() - qy) / (nn * (nn - 1)) -
                    A(2) * sx.dot(sy) / (mm * nn));
  value = A(A(value / c) / c);
  if (!is_finite_value(value)) {
    fail_domain(fn, "overflow: the squared MMD exceeds the range of the accumulation type; rescale the inputs");
  }
  return value;
}

}  // namespace detail

/// Squared MMD between samples X (m×d) and Y (n×d) under `kernel` (Gretton et al., JMLR 2012):
///   biased:   mean(Kxx) + mean(Kyy) − 2·mean(Kxy) over all entries (the V-statistic, ≥ 0 for a
///             characteristic kernel);
///   unbiased: the diagonals of Kxx and Kyy left out: Σ_{i≠j} Kxx/(m(m−1)) + Σ_{i≠j} Kyy/(n(n−1)) −
///             2·mean(Kxy) (Gretton et al. eq. 3; may be negative, returned as computed).
/// The linear kernel takes a closed form in O((m+n)d) instead: biased MMD² = ‖x̄ − ȳ‖², computed from the
/// pooled sample shifted to its mean, so a large common offset costs no digits and the value is ≥ 0.
/// The kernel is applied to the pooled sample [X; Y]: a median-rule `rbf_kernel` takes its bandwidth from
/// the (m+n)² pooled distances. Cost O((m+n)²d) for one Gram; memory (m+n)². `rbf_kernel`,
/// `polynomial_kernel` and generic kernels run on the tile engine (docs/math.md) instead, for float and
/// double input: the pooled kernel's upper tiles, stored (4·(m+n)² bytes) when they fit the budget of `co`
/// (default: half the physical memory), else recomputed in each pass (a median bandwidth's, the block
/// sums) with nothing (m+n)×(m+n) held; (m+n)²·d/2 multiply-adds per pass. `co.processes`
/// shares the tiles among a team's members, as for kernel_cka (docs/distributed.md).
/// Throws cka::invalid_argument if the feature counts differ, m or n is below 1 (biased) or 2 (unbiased),
/// an entry is NaN or ±Inf, or a kernel parameter is bad; cka::domain_error for a zero median bandwidth or
/// an overflow.
template <class DX, class DY, class Kernel>
typename DX::Scalar mmd2(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const Kernel& kernel,
                         estimator est = estimator::biased, const compute_options& co = {}) {
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
  // On a team, the checks are the first step: bad input on one member fails every member (no hang).
  detail::together(co.processes, [&] {
    const Eigen::Index needed = est == estimator::biased ? 1 : 2;
    detail::require_samples(fn, "X", xv.rows(), needed, detail::estimator_name(est));
    detail::require_samples(fn, "Y", yv.rows(), needed, detail::estimator_name(est));
    detail::require_finite(fn, "X", xv);
    detail::require_finite(fn, "Y", yv);
  });

  if constexpr (std::is_same_v<Kernel, linear_kernel>) {
    return T(detail::linear_mmd2<A>(fn, xv, yv, est));
  }
  const Eigen::Index m = xv.rows(), n = yv.rows();
  if constexpr (detail::in_tile_engine<Kernel> && std::is_same_v<A, double>) {
    // The tiles of the pooled sample, built from X and Y without a stacked copy.
    const int threads = Eigen::nbThreads();
    const bool store = detail::packed_tiles::bytes(m + n, detail::members_of(co)) <= detail::memory_budget(co);
    const auto tiles = detail::tiles_of(fn, xv, yv, kernel, store, threads, co.processes);
    const detail::block_sums s = detail::tile_block_sums(tiles, m, threads, co.processes);
    return T(detail::mmd2_from_sums<double>(s.xx, s.yy, s.xy, s.diag_x, s.diag_y, m, n, est));
  } else {
    matrix<A> z(m + n, xv.cols());
    z.topRows(m) = xv.template cast<A>();
    z.bottomRows(n) = yv.template cast<A>();
    const matrix<A> k = detail::gram_of<A>(z, kernel);
    return T(detail::mmd2_from_sums<A>(k.topLeftCorner(m, m).sum(), k.bottomRightCorner(n, n).sum(),
                                       k.bottomLeftCorner(n, m).sum(), k.diagonal().head(m).sum(),
                                       k.diagonal().tail(n).sum(), m, n, est));
  }
}

}  // namespace cka
