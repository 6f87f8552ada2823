#pragma once
// Private: the device tile engine's core — the device twin of the host's tile engine (cka/detail/tiles.hpp).
// A representation is written once into Z (n×d, column-major, double; moments.hpp): column-centered for the
// linear and RBF kernels (scaled by a power of two for a median rule), as it is for the polynomial kernel. A
// pass walks the upper tiles I ≤ J of the n×n kernel matrix; for each, the backend's tile product writes
// G = Z_I·Z_Jᵀ (h×w) into a tile buffer, and the pass's launches read kernel values off G as they go
// (kernel_sums.hpp), the squared distance ‖z_i‖² + ‖z_j‖² − 2g formed as the host forms it. Nothing n×n is
// held: Z, its row norms and one or two tiles.

#include <cka/detail/distances.hpp>
#include <cka/device/detail/linear.hpp>
#include <cka/device/detail/moments.hpp>


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

/// Squared distance at (i, j) of a tile holding G = Z_I·Z_Jᵀ (column-major, h rows), as the host's
/// tile_distances forms it. The passes walk i and j and call at(i, j); operator()(k) recovers them from a
/// flat index with one division.
struct tile_distance {
  const double* g;
  const double* ni;  // norms of the tile's rows
  const double* nj;  // and of its columns
  std::int64_t h;
  bool diagonal;
  const double* zi;  // Z's row i0 and row j0 (column-major, leading dimension ld, d columns): where the
  const double* zj;  // expansion is too small to trust, the distance is summed from the rows
  std::int64_t ld, d;
  CKA_HD double at(std::int64_t i, std::int64_t j) const {
    if (diagonal && i == j) return 0.0;
    return cka::detail::resolved_distance(ni[i] + nj[j] - 2.0 * g[j * h + i], ni[i], nj[j],
                                          [&] { return cka::detail::direct_squared_distance(zi + i, ld, zj + j, ld, d); });
  }
  CKA_HD double operator()(std::int64_t k) const {
    const flat_index f = divide(k, h);
    return at(f.r, f.q);
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
  std::int64_t chunk = 64;                       // entries a thread sums (row or column sums) or counts (a tally)
  std::uint64_t cap = std::uint64_t(1) << 25;    // most bracket values the median collects at once
  std::uint64_t draws = std::uint64_t(1) << 20;  // most sampled pairs (pairs/64 of them, at least 2^12)
  std::uint64_t sample_above = std::uint64_t(1) << 16;  // pairs beyond which a sample brackets the median
};

/// Tiles of an n×n matrix with side b (the upper ones, I ≤ J).
inline std::int64_t upper_tiles(std::int64_t n, std::int64_t b) {
  const std::int64_t t = (n + b - 1) / b;
  return t * (t + 1) / 2;
}

/// Calls f(place) for every upper tile I ≤ J of an n×n matrix, row of tiles after row of tiles.
template <class F>
void for_upper_tiles(std::int64_t n, std::int64_t b, F&& f) {
  for (std::int64_t i0 = 0; i0 < n; i0 += b)
    for (std::int64_t j0 = i0; j0 < n; j0 += b) f(tile_place{i0, j0, std::min(b, n - i0), std::min(b, n - j0)});
}

/// Throws the overflow of a tile pass: of a squared distance (the RBF kernel, the median), or of a kernel
/// value (the inner-product kernels) — the host's messages.
[[noreturn]] inline void fail_tile_overflow(const char* fn, bool distances) {
  if (distances) cka::detail::fail_distance_overflow(fn);
  cka::detail::fail_kernel_overflow(fn);
}

/// The engine over a backend (backend.hpp): its plan, the product of a tile and the distances read off it.
template <class Backend>
struct tile_engine {
  Backend be;
  tile_plan plan;

  /// G for tile p of representation t into buf: one product.
  void product(const tile_rows& t, const tile_place& p, double* buf) const {
    be.tile_gemm(t.z + p.i0, t.z + p.j0, p.h, p.w, t.d, t.n, buf);
  }
  tile_distance distances(const tile_rows& t, const tile_place& p, const double* buf) const {
    return tile_distance{buf, t.norms + p.i0, t.norms + p.j0, p.h, p.diagonal(), t.z + p.i0, t.z + p.j0, t.n, t.d};
  }
};

template <class Backend>
tile_engine<Backend> make_tile_engine(const Backend& be, const tile_plan& plan) {
  return {be, plan};
}

}  // namespace cka::device::detail
