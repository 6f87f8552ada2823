#pragma once
// Private: the device tile engine's core — the device twin of the host's tile engine (cka/detail/tiles.hpp).
// A representation is written once into Z (n×d, column-major, double): column-centered for the linear and
// RBF kernels (scaled by a power of two for a median rule), as it is for the polynomial kernel. A pass
// walks the upper tiles I ≤ J of the n×n kernel matrix; for each, the caller's gemm writes G = Z_I·Z_Jᵀ
// (h×w) into a tile buffer, and the pass's Thrust algorithms read kernel values off G as they go
// (kernel_sums.hpp), the squared distance ‖z_i‖² + ‖z_j‖² − 2g formed as the host forms it. Nothing n×n is
// held: Z, its row norms and one or two tiles.

#include <cka/detail/distances.hpp>
#include <cka/device/detail/linear.hpp>

#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform.h>

#include <algorithm>
#include <cstdint>

namespace cka::device::detail {

/// A representation written for tiles: Z (n×d, column-major) and its squared row norms.
struct tile_rows {
  const double* z;
  const double* norms;
  std::int64_t n, d;
};

/// One tile (rows i0 … i0+h−1 against j0 … j0+w−1) of an n×n symmetric matrix, column-major in a buffer.
struct tile_place {
  std::int64_t i0, j0, h, w;
  bool diagonal() const { return i0 == j0; }
};

/// Squared distance at flat index k of a tile holding G = Z_I·Z_Jᵀ, as the host's tile_distances forms it.
struct tile_distance {
  const double* g;
  const double* ni;  // norms of the tile's rows
  const double* nj;  // and of its columns
  std::int64_t h;
  bool diagonal;
  const double* zi;  // Z's row i0 and row j0 (column-major, leading dimension ld, d columns): where the
  const double* zj;  // expansion is too small to trust, the distance is summed from the rows
  std::int64_t ld, d;
  CKA_HD double operator()(std::int64_t k) const {
    const std::int64_t i = k % h, j = k / h;
    if (diagonal && i == j) return 0.0;
    return cka::detail::resolved_distance(ni[i] + nj[j] - 2.0 * g[k], ni[i], nj[j],
                                          [&] { return cka::detail::direct_squared_distance(zi + i, ld, zj + j, ld, d); });
  }
};

/// Row i's squared norm in Z.
struct row_norm {
  const double* z;
  std::int64_t n, d;
  CKA_HD double operator()(std::int64_t i) const {
    double s = 0;
    for (std::int64_t c = 0; c < d; ++c) s += z[c * n + i] * z[c * n + i];
    return s;
  }
};

/// The tile size and the median's limits of the device tile engine.
struct tile_plan {
  std::int64_t tile = 256;                       // rows per tile side
  std::int64_t chunk = 64;                       // entries a thread sums in a tile's row or column sums
  std::uint64_t cap = std::uint64_t(1) << 25;    // most bracket values the median collects at once
  std::uint64_t draws = std::uint64_t(1) << 20;  // most sampled pairs (pairs/64 of them, at least 2^12)
  std::uint64_t sample_above = std::uint64_t(1) << 16;  // pairs beyond which a sample brackets the median
};

/// Calls f(place) for every upper tile I ≤ J of an n×n matrix, row of tiles after row of tiles.
template <class F>
void for_upper_tiles(std::int64_t n, std::int64_t b, F&& f) {
  for (std::int64_t i0 = 0; i0 < n; i0 += b)
    for (std::int64_t j0 = i0; j0 < n; j0 += b) f(tile_place{i0, j0, std::min(b, n - i0), std::min(b, n - j0)});
}

/// Scratch doubles of tile_engine::write_rows for n rows of d columns: the means and flags, and the
/// column statistics' chunks.
inline std::int64_t rows_scratch(std::int64_t n, std::int64_t d) { return 2 * d + moments_scratch(n, d); }

/// Throws the overflow of a tile pass: of a squared distance (the RBF kernel, the median), or of a kernel
/// value (the inner-product kernels) — the host's messages.
[[noreturn]] inline void fail_tile_overflow(const char* fn, bool distances) {
  if (distances) cka::detail::fail_distance_overflow(fn);
  cka::detail::fail_kernel_overflow(fn);
}

/// The engine over a context: policy runs Thrust, gemm(a, b, h, w, d, lda, g) writes G = A·Bᵀ (h×w,
/// column-major, ld h) for A = rows of Z from a (h of them) and B from b (w), both with leading dimension
/// lda and d columns; to_host(dst, src, count) copies doubles back; make(count) allocates count doubles on
/// the context's memory (an owner with get()).
template <class Policy, class Gemm, class ToHost, class Make>
struct tile_engine {
  Policy policy;
  Gemm gemm;
  ToHost to_host;
  Make make;
  const char* fn;
  tile_plan plan;

  /// G for tile p of representation t into buf.
  void product(const tile_rows& t, const tile_place& p, double* buf) const {
    gemm(t.z + p.i0, t.z + p.j0, p.h, p.w, t.d, t.n, buf);
  }
  tile_distance distances(const tile_rows& t, const tile_place& p, const double* buf) const {
    return tile_distance{buf, t.norms + p.i0, t.norms + p.j0, p.h, p.diagonal(), t.z + p.i0, t.z + p.j0, t.n, t.d};
  }

  /// The rows of a view, or of two stacked views (y may have no rows), into z (n×d) with their squared
  /// norms: column-centered (constant columns exactly zero) when `centered`, else as they are; times
  /// `scale`. stats: rows_scratch(n, d) doubles.
  template <class T>
  void write_rows(const strided<T>& x, const strided<T>& y, bool centered, double scale, double* z, double* norms,
                  double* stats) const {
    const std::int64_t n = x.rows + y.rows, d = x.cols;
    const thrust::counting_iterator<std::int64_t> first(0);
    if (centered) {
      column_moments(policy, x, stats, stats + d, stats + 2 * d, y);
    } else {
      thrust::fill(policy, stats, stats + d, 0.0);
      thrust::fill(policy, stats + d, stats + 2 * d, 1.0);
    }
    thrust::for_each(policy, first, first + x.rows * d, center_into<T>{x, stats, stats + d, scale, z, n, 0, 0});
    if (y.rows > 0) thrust::for_each(policy, first, first + y.rows * d, center_into<T>{y, stats, stats + d, scale, z, n, x.rows, 0});
    thrust::transform(policy, first, first + n, norms, row_norm{z, n, d});
  }
};

template <class Policy, class Gemm, class ToHost, class Make>
tile_engine<Policy, Gemm, ToHost, Make> make_tile_engine(const Policy& policy, Gemm gemm, ToHost to_host, Make make,
                                                         const char* fn, const tile_plan& plan) {
  return {policy, gemm, to_host, make, fn, plan};
}

}  // namespace cka::device::detail
