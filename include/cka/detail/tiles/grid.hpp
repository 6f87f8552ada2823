#pragma once
// Private: the tile grid of a symmetric n×n matrix, the loop every pass runs over a member's upper tiles
// (rows dealt to threads by parallel_for), and the progress meter.

#include <cka/detail/parallel.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/team.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

namespace cka::detail {

/// Rows per tile side: a 256×256 tile of doubles (512 KiB) and its two row blocks stay in cache.
constexpr Eigen::Index tile_rows = 256;

/// The tiles of a symmetric n×n matrix: tile_rows × tile_rows blocks, the last row and column of tiles
/// shorter.
struct tile_grid {
  Eigen::Index n = 0;
  Eigen::Index tiles() const { return (n + tile_rows - 1) / tile_rows; }
  Eigen::Index start(Eigen::Index t) const { return t * tile_rows; }
  Eigen::Index size(Eigen::Index t) const { return std::min(tile_rows, n - t * tile_rows); }
};

/// Progress over tile work, for a long call's progress callback: each pass adds the tiles it has done
/// (from any thread); the callback runs on the calling thread (OpenMP thread 0) only, when the count has
/// grown by a thousandth of the total. `total` is the planned count; a counting pass the median needed beyond
/// its plan does not move the report past it.
class tile_meter {
 public:
  tile_meter() = default;
  tile_meter(std::function<void(std::size_t, std::size_t)> report, std::size_t total)
      : report_(std::move(report)), total_(std::max<std::size_t>(total, 1)) {}
  void tick(int thread, std::size_t tiles) {
    if (!report_) return;
    const std::size_t done = done_.fetch_add(tiles) + tiles;
    if (thread == 0 && done >= shown_ + total_ / 1000) {
      shown_ = std::min(done, total_);
      report_(shown_, total_);
    }
  }
  void finish() {
    if (report_) report_(total_, total_);
  }

 private:
  std::function<void(std::size_t, std::size_t)> report_;
  std::size_t total_ = 1, shown_ = 0;
  std::atomic<std::size_t> done_{0};
};

/// The loop of every pass over the upper tiles (I ≤ J) a team member owns (`share`): for the tile rows
/// first … first+count−1, dealt to threads by parallel_for, f(thread, ti, tj) for each owned
/// tile of the row in order of tj; then the meter (if any) ticks by the row's tiles × `weight`.
template <class F>
void for_owned_tiles(const tile_grid& g, Eigen::Index first, Eigen::Index count, int threads, tile_share share,
                     tile_meter* meter, std::size_t weight, F&& f) {
  const Eigen::Index nt = g.tiles();
  parallel_for(count, threads, [&](int thread, Eigen::Index k) {
    const Eigen::Index ti = first + k;
    std::size_t done = 0;
    for (Eigen::Index tj = ti; tj < nt; ++tj) {
      if (!share.owns(ti, tj, nt)) continue;
      f(thread, ti, tj);
      ++done;
    }
    if (meter) meter->tick(thread, done * weight);
  });
}

/// The same over every tile row, one tick per tile.
template <class F>
void for_owned_tiles(const tile_grid& g, int threads, tile_share share, tile_meter* meter, F&& f) {
  for_owned_tiles(g, 0, g.tiles(), threads, share, meter, 1, std::forward<F>(f));
}

/// The number of upper tiles (I ≤ J) of an n×n matrix: the work of one pass.
inline std::size_t upper_tiles(Eigen::Index n) {
  const std::size_t nt = std::size_t(tile_grid{n}.tiles());
  return nt * (nt + 1) / 2;
}
/// The upper tiles one of `members` computes in a pass (at most).
inline std::size_t upper_tiles(Eigen::Index n, int members) {
  return (upper_tiles(n) + std::size_t(members) - 1) / std::size_t(std::max(members, 1));
}

}  // namespace cka::detail
