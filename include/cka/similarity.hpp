#pragma once
/// \file similarity.hpp
/// Centered kernel alignment: CKA(K, L) = HSIC(K, L) / √(HSIC(K, K) · HSIC(L, L)).

#include <cka/centering.hpp>
#include <cka/detail/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/moments.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/detail/tiles.hpp>
#include <cka/compute.hpp>
#include <cka/estimator.hpp>
#include <cka/gram.hpp>
#include <cka/hsic.hpp>
#include <cka/kernels.hpp>

#include <Eigen/Core>

#include <cmath>
#include <type_traits>

namespace cka {
namespace detail {

/// The sample checks of two representations: the same rows, enough of them for the estimator.
template <class VX, class VY>
void require_sample_pair(const char* fn, const VX& x, const VY& y, estimator est) {
  require_same_samples(fn, "X", x, "Y", y);
  require_samples(fn, "X", x.rows(), min_samples(est), estimator_name(est));
}

/// Checks shared by the functions taking two representations with the same samples.
template <class VX, class VY>
void require_representation_pair(const char* fn, const VX& x, const VY& y, estimator est) {
  require_sample_pair(fn, x, y, est);
  require_finite(fn, "X", x);
  require_finite(fn, "Y", y);
}

/// Linear CKA in feature space, through the moment state that linear_state also uses: one pass of
/// symmetric rank-h updates over the rows of z = [1, x̃, ỹ, ‖x̃‖², ‖ỹ‖²] (~n(d1+d2+3)² flops), then
/// O((d1+d2)²) to finish (detail/moments.hpp). The inputs were checked by the caller.
template <class A, class VX, class VY>
centered_sums<A> linear_sums_features(const VX& x, const VY& y, estimator est) {
  moments<A> m({x.cols(), y.cols()});
  m.interruptible = true;
  m.add_pair("linear_cka", x, y);
  matrix<A> c;
  return m.take_pair_sums(0, 1, est, c);
}

/// Linear CKA in Gram space: K = XcXcᵀ, L = YcYcᵀ (n²(d1+d2) flops, streamed over column chunks), then
/// the O(n²) centered products.
template <class A, class VX, class VY>
centered_sums<A> linear_sums_grams(const VX& x, const VY& y, estimator est) {
  const matrix<A> k = centered_row_gram<A>(x);
  const matrix<A> l = centered_row_gram<A>(y);
  return centered_products<A>(k, l, est);
}

/// Kernel CKA through the tile engine (detail/tiles.hpp), for RBF, inner-product and generic kernels in any
/// pairing and both estimators. store: keep each kernel matrix's upper tiles (4·n² bytes per
/// representation; every tile computed once), else recompute tiles in every pass (no n×n memory:
/// 8·n·(d1 + d2) bytes plus a tile per thread). A median bandwidth is the exact median of the (power-of-two
/// scaled) representation's distances.
template <class VX, class VY, class KX, class KY>
double kernel_cka_tiles(const char* fn, const VX& x, const VY& y, const KX& kx, const KY& ky, estimator est,
                        bool store, const team* members = nullptr) {
  const int threads = Eigen::nbThreads();
  const auto tx = tiles_of(fn, x, kx, store, threads, members);
  const auto ty = tiles_of(fn, y, ky, store, threads, members);
  return cka_ratio(fn, tile_pair_sums<tile_layer>(tx, ty, est, threads, members));
}

/// True when the feature-space form is cheaper: nD² flops against n²D, i.e. D = d1 + d2 < n.
inline bool prefer_feature_space(Eigen::Index n, Eigen::Index d1, Eigen::Index d2) { return d1 + d2 < n; }

/// Linear CKA of two checked views, by the cheaper route.
template <class A, class VX, class VY>
A linear_cka_of(const VX& x, const VY& y, estimator est) {
  const auto s = prefer_feature_space(x.rows(), x.cols(), y.cols()) ? linear_sums_features<A>(x, y, est)
                                                                     : linear_sums_grams<A>(x, y, est);
  return cka_ratio("linear_cka", s);
}


}  // namespace detail

/// CKA of two symmetric n×n Gram matrices: HSIC(K, L) / √(HSIC(K, K)·HSIC(L, L)) with the given estimator
/// in all three terms. Cost O(n²): two reads of each matrix (the checks with the row sums, which read both
/// triangles, then the products, which read the lower one); no copies.
/// Throws cka::invalid_argument as `cka::hsic` does; cka::domain_error if K or L has nothing left after
/// centering (a constant representation), since CKA is then 0/0.
template <class DK, class DL>
typename DK::Scalar gram_cka(const Eigen::MatrixBase<DK>& k, const Eigen::MatrixBase<DL>& l,
                             estimator est = estimator::biased) {
  using T = typename DK::Scalar;
  static_assert(std::is_same_v<T, typename DL::Scalar>, "cka::gram_cka: K and L must have the same scalar type");
  using A = accumulator_t<T>;
  const detail::view_t<DK> kv(k.derived());
  const detail::view_t<DL> lv(l.derived());
  const auto checked = detail::require_gram_pair<A>("gram_cka", kv, lv, est);  // one read, then the products
  return T(detail::cka_ratio("gram_cka", detail::centered_products<A>(kv, lv, est, checked.k, checked.l)));
}

/// Linear CKA between X (n×d1) and Y (n×d2), d1 ≠ d2 allowed:
///   ‖XcᵀYc‖²_F / (‖XcᵀXc‖_F ‖YcᵀYc‖_F) for the biased estimator (Xc: X with centered columns), and the
///   debiased CKA of Kornblith et al. for `estimator::unbiased`.
/// Features are centered first (in double for float input), so a large common offset costs no accuracy;
/// magnitudes beyond 2^±200 are scaled by a power of two first (CKA is scale-invariant), so 1e300 or 1e−170
/// give the same value as 1.
/// Cost: min(n(d1+d2)², n²(d1+d2)) flops — feature space when d1 + d2 < n, else Gram space; both give the
/// same value. Memory: (d1+d2)² or 2n², plus one 8 MiB chunk buffer (no centered copy of the inputs).
/// Throws cka::invalid_argument if the sample counts differ, n < min_samples(est), or an entry is NaN or
/// ±Inf; cka::domain_error if X or Y has zero variance (all rows equal).
template <class DX, class DY>
typename DX::Scalar linear_cka(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                               estimator est = estimator::biased) {
  using T = typename DX::Scalar;
  static_assert(std::is_same_v<T, typename DY::Scalar>, "cka::linear_cka: X and Y must have the same scalar type");
  using A = accumulator_t<T>;
  const detail::view_t<DX> xv(x.derived());
  const detail::view_t<DY> yv(y.derived());
  detail::require_sample_pair("linear_cka", xv, yv, est);  // finiteness: with the magnitudes below
  // CKA is scale-invariant: magnitudes whose fourth powers would leave the range of A are first scaled by
  // a power of two (exactly; one O(nd) scan, the finiteness check's, and a scaled copy only in that rare
  // case).
  const A sx = detail::finite_safe_scale<A>("linear_cka", "X", xv), sy = detail::finite_safe_scale<A>("linear_cka", "Y", yv);
  if (sx != A(1) || sy != A(1)) {
    return T(detail::linear_cka_of<A>(detail::scaled_copy<A>(xv, sx), detail::scaled_copy<A>(yv, sy), est));
  }
  return T(detail::linear_cka_of<A>(xv, yv, est));
}

/// Kernel CKA between X (n×d1) and Y (n×d2): gram_cka(gram(X, kx), gram(Y, ky)), each Gram formed once in
/// double for float input. A median-rule `rbf_kernel` resolves its bandwidth separately for X and for Y.
/// With `linear_kernel` for both it is `linear_cka` (same value, cheaper path).
/// RBF, polynomial, linear and generic (pairwise) kernels, in any pairing, run on the tile engine
/// (docs/math.md) for float and double input: 256×256 tiles of the upper triangle, the exact median
/// bandwidth of a median-rule RBF by selection on the distances' bit patterns, row sums and then centered
/// products in two passes. The tiles are stored (4·n² bytes per representation; n²·(d1+d2) flops in all) when both fit the budget of `co`
/// (default: half the physical memory), else recomputed in each pass — nothing n×n, memory 8·n·(d1+d2)
/// bytes plus a few tiles per thread, about 2·n²·(d1+d2) flops (3 with a median bandwidth). Both ways give
/// the same median bit for bit and agree to ~1e-13; neither depends on the thread count. With
/// `co.processes` (a team, e.g. cka::mpi::team) every member passes the same X and Y and computes its share
/// of the tiles: the same value on every member, one process's to ~1e-15 (docs/distributed.md).
/// Kernels that map a whole matrix (a user's inner-product or squared-distance form), and long double or
/// multiprecision input: O(n²(d1+d2)) for the Grams plus O(n²); memory 2n².
/// A kernel matrix whose largest entry lies beyond 2^±200 is scaled by a power of two first (CKA does not
/// depend on a Gram's scale; the tile engine then makes its row-sum pass twice), so that its centered
/// products stay in range.
/// Throws as linear_cka, plus cka::invalid_argument for bad kernel parameters and cka::domain_error for a
/// median bandwidth of zero or overflow (a kernel value or distance beyond the accumulation type).
template <class DX, class DY, class KX, class KY,
          class = std::enable_if_t<!std::is_same_v<KY, estimator>>>
typename DX::Scalar kernel_cka(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx,
                               const KY& ky, estimator est = estimator::biased, const compute_options& co = {}) {
  using T = typename DX::Scalar;
  static_assert(std::is_same_v<T, typename DY::Scalar>, "cka::kernel_cka: X and Y must have the same scalar type");
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    return linear_cka(x, y, est);
  } else {
    using A = accumulator_t<T>;
    const detail::view_t<DX> xv(x.derived());
    const detail::view_t<DY> yv(y.derived());
    // On a team, the checks are the first step: bad input on one member fails every member (no hang).
    detail::together(co.processes, [&] { detail::require_representation_pair("kernel_cka", xv, yv, est); });
    if constexpr (std::is_same_v<A, double> && detail::in_tile_engine<KX> && detail::in_tile_engine<KY>) {
      const int members = detail::members_of(co);
      const bool store = 2 * detail::packed_tiles::bytes(xv.rows(), members) <= detail::memory_budget(co);
      return T(detail::kernel_cka_tiles("kernel_cka", xv, yv, kx, ky, est, store, co.processes));
    }
    matrix<A> k = detail::gram_of<A>(xv, kx, "kernel_cka"), l = detail::gram_of<A>(yv, ky, "kernel_cka");
    detail::scale_gram<A>(k);  // extreme magnitudes by a power of two each (CKA does not depend on a Gram's scale)
    detail::scale_gram<A>(l);
    return T(detail::cka_ratio("kernel_cka", detail::centered_products<A>(k, l, est)));
  }
}

/// Kernel CKA with the same kernel type and parameters for X and Y (a median bandwidth is still resolved
/// per representation).
template <class DX, class DY, class Kernel>
typename DX::Scalar kernel_cka(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                               const Kernel& kernel, estimator est = estimator::biased, const compute_options& co = {}) {
  return kernel_cka(x, y, kernel, kernel, est, co);
}

}  // namespace cka
