#pragma once
// Private: the upper tiles of a symmetric matrix held in memory (packed_tiles), the stored squared
// distances, and the walk over every off-diagonal value once (for the median's counting passes).

#include <cka/detail/scalar.hpp>
#include <cka/detail/team.hpp>
#include <cka/detail/tiles/grid.hpp>
#include <cka/detail/tiles/rows.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace cka::detail {

/// The upper tiles (I ≤ J) of a symmetric n×n matrix, stored one after another, each column-major and
/// starting on a 64-byte boundary: about n²/2 values. The in-memory route keeps its distances and then
/// its kernel values here, so every later pass reads instead of recomputing.
class packed_tiles {
 public:
  /// The upper tiles of an n×n matrix, or only those of `share`.
  explicit packed_tiles(Eigen::Index n, tile_share share = {}) : grid_{n} {
    const Eigen::Index nt = grid_.tiles();
    offset_.assign(std::size_t(nt * nt), 0);
    std::size_t at = 0;
    for (Eigen::Index ti = 0; ti < nt; ++ti)
      for (Eigen::Index tj = ti; tj < nt; ++tj) {
        if (!share.owns(ti, tj, nt)) continue;
        offset_[std::size_t(ti * nt + tj)] = at;
        at += (std::size_t(grid_.size(ti) * grid_.size(tj)) + 7) / 8 * 8;
      }
    // From 2 MiB on: 2 MiB aligned, and on Linux marked for transparent huge pages (first-touch page
    // faults of 4 KiB pages cost as much as a fifth of the distance products at n = 4096). Below: 64-byte
    // aligned at its own size (rounded up to a huge page, a few tiles made the kernel clear 2 MiB per
    // representation and call: most of a small call's time).
    constexpr std::size_t huge = std::size_t(1) << 21;
    const std::size_t need = std::max<std::size_t>(at, 1) * sizeof(double);
    const std::size_t align = need >= huge ? huge : 64;
    const std::size_t bytes = (need + align - 1) / align * align;
    data_.reset(static_cast<double*>(std::aligned_alloc(align, bytes)));
    if (!data_) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == huge) ::madvise(data_.get(), bytes, MADV_HUGEPAGE);  // advice only: without it, ordinary pages
#endif
  }
  /// Bytes held for an n×n matrix.
  static double bytes(Eigen::Index n) {
    // Σ over I ≤ J of size(I)·size(J) = (n² + Σ size²)/2; only the last diagonal tile can need padding.
    const tile_grid g{n};
    const double last = double(g.size(g.tiles() - 1)), full = double(g.tiles() - 1) * double(tile_rows * tile_rows);
    const double values = (double(n) * double(n) + full + last * last) / 2;
    return 8.0 * (values + double((8 - std::int64_t(last * last) % 8) % 8));
  }
  /// Bytes one of `members` holds (its share of the tiles, and a tile of slack for an uneven deal).
  static double bytes(Eigen::Index n, int members) {
    return members <= 1 ? bytes(n) : bytes(n) / double(members) + 8.0 * double(tile_rows * tile_rows);
  }
  const tile_grid& grid() const { return grid_; }
  double* tile(Eigen::Index ti, Eigen::Index tj) { return data_.get() + offset_[std::size_t(ti * grid_.tiles() + tj)]; }
  const double* tile(Eigen::Index ti, Eigen::Index tj) const {
    return data_.get() + offset_[std::size_t(ti * grid_.tiles() + tj)];
  }
  /// Entry (i, j) of the matrix, read from the tile that holds it.
  double at(Eigen::Index i, Eigen::Index j) const {
    Eigen::Index ti = i / tile_rows, tj = j / tile_rows;
    if (ti > tj) {
      std::swap(i, j);
      std::swap(ti, tj);
    }
    return tile(ti, tj)[(j - grid_.start(tj)) * grid_.size(ti) + (i - grid_.start(ti))];
  }

 private:
  struct release {
    void operator()(double* p) const { std::free(p); }
  };
  tile_grid grid_;
  std::vector<std::size_t> offset_;
  std::unique_ptr<double, release> data_;
};

/// Calls f(thread, p, m) with runs of m contiguous values that together hold every off-diagonal entry of
/// the symmetric matrix once: the strict lower triangle of the diagonal tiles, all of the others. tile(ti,
/// tj, scratch) returns the tile's values (computed into scratch, or stored elsewhere).
template <class Tile, class F>
void for_pair_runs(const tile_grid& g, int threads, Tile&& tile, F&& f, tile_meter* meter = nullptr,
                   tile_share share = {}) {
  auto scratch = per_thread<matrix<double>>(threads);
  for_owned_tiles(g, threads, share, meter, [&](int thread, Eigen::Index ti, Eigen::Index tj) {
    const Eigen::Index h = g.size(ti);
    const double* p = tile(ti, tj, scratch[std::size_t(thread)]);
    if (ti == tj) {
      for (Eigen::Index j = 0; j + 1 < h; ++j) f(thread, p + j * h + j + 1, h - j - 1);
    } else {
      f(thread, p, h * g.size(tj));
    }
  });
}

/// The upper tiles of the squared distances between the rows of t (those of `share`), stored.
inline packed_tiles stored_distances(const char* fn, const tiled_rows<double>& t, int threads,
                                     tile_meter* meter = nullptr, tile_share share = {}) {
  packed_tiles d(t.rows(), share);
  for_owned_tiles(d.grid(), threads, share, meter,
                  [&](int, Eigen::Index ti, Eigen::Index tj) { tile_distances(fn, t, ti, tj, d.tile(ti, tj)); });
  return d;
}

}  // namespace cka::detail
