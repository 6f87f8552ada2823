#pragma once
// Private: kernel CKA without n×n matrices. Tiles of the squared-distance matrix are computed from the
// centered features, used and dropped: the exact median-rule bandwidth by radix selection on the bit
// patterns of the distances (a few counting passes, nothing stored but histograms), then the centered
// products in two passes (row sums first, then the centered tiles), as ../shared/notes/engine.md outlines.
// Every pass computes a tile's distances with the same routine, so the passes agree bit for bit, and the
// floating-point sums are combined in tile order, so the value does not depend on the thread count.
// On a team of processes (detail/team.hpp) each member computes its share of the upper tiles (tile_share)
// and every pass ends in one sum over the team: the median's counts exactly, the floating-point sums to
// rounding, so the value does not depend on the number of members beyond ~1e-15.

#include <cka/detail/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/permutations.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/detail/team.hpp>
#include <cka/estimator.hpp>
#include <cka/kernels.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace cka::detail {

/// Rows per tile side: a 256×256 tile of doubles (512 KiB) and its two row blocks stay in cache.
constexpr Eigen::Index tile_rows = 256;

/// A representation prepared for tiles: column-centered features (times a power-of-two scale) and their
/// squared row norms.
template <class A>
struct tiled_rows {
  Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xc;  // a tile's rows are contiguous
  vector<A> norms;
  Eigen::Index rows() const { return xc.rows(); }
  Eigen::Index tiles() const { return (xc.rows() + tile_rows - 1) / tile_rows; }
};

/// How a representation's rows enter the tiles: column-centered (distances, the linear kernel), or as given
/// (the polynomial kernel, which is not translation invariant).
enum class row_form { centered, raw };

/// Rows × cols prepared for tiles from fill(block, c0, w), which writes columns c0 … c0+w−1 of the input
/// (converted to A) into a column-major block: 64 columns at a time, centered there as centered_columns
/// centers them (the same bits: a column's statistics are its own) unless `form` is raw, scaled and copied
/// into the row-major result — no full-size temporary beside it.
template <class A, class Fill>
tiled_rows<A> tiled_rows_from(Eigen::Index rows, Eigen::Index cols, A scale, Fill&& fill,
                              row_form form = row_form::centered) {
  tiled_rows<A> t;
  t.xc.resize(rows, cols);
  matrix<A> block;
  for (Eigen::Index c0 = 0; c0 < cols; c0 += 64) {
    const Eigen::Index w = std::min<Eigen::Index>(64, cols - c0);
    block.resize(rows, w);
    fill(block, c0, w);
    if (rows > 0 && form == row_form::centered) {
      column_stats<A> stats;
      stats.add(block);
      center_chunk(block, stats.mean(), stats.keep());
    }
    if (scale != A(1)) block *= scale;
    t.xc.middleCols(c0, w) = block;
  }
  t.norms = t.xc.rowwise().squaredNorm();
  return t;
}

/// One representation's rows.
template <class A, class V>
tiled_rows<A> tiled_rows_of(const V& x, A scale, row_form form = row_form::centered) {
  return tiled_rows_from<A>(
      x.rows(), x.cols(), scale,
      [&](matrix<A>& b, Eigen::Index c0, Eigen::Index w) { b = x.middleCols(c0, w).template cast<A>(); }, form);
}

/// A pooled sample's rows: X's over Y's (same width), centered with the pooled means unless `form` is raw.
template <class A, class VX, class VY>
tiled_rows<A> tiled_rows_of(const VX& x, const VY& y, A scale, row_form form = row_form::centered) {
  return tiled_rows_from<A>(
      x.rows() + y.rows(), x.cols(), scale,
      [&](matrix<A>& b, Eigen::Index c0, Eigen::Index w) {
        b.topRows(x.rows()) = x.middleCols(c0, w).template cast<A>();
        b.bottomRows(y.rows()) = y.middleCols(c0, w).template cast<A>();
      },
      form);
}

/// The tiles of a symmetric n×n matrix: tile_rows × tile_rows blocks, the last row and column of tiles
/// shorter.
struct tile_grid {
  Eigen::Index n = 0;
  Eigen::Index tiles() const { return (n + tile_rows - 1) / tile_rows; }
  Eigen::Index start(Eigen::Index t) const { return t * tile_rows; }
  Eigen::Index size(Eigen::Index t) const { return std::min(tile_rows, n - t * tile_rows); }
};

/// Squared distances between the rows of tile I and those of tile J into out (h×w, column-major):
/// ‖x_i‖² + ‖x_j‖² − 2⟨x_i, x_j⟩, clamped at 0, summed from the rows where that is too small to trust
/// (exactly 0 for equal rows), exactly 0 for i = j. The one routine every pass and both
/// routes use (into 64-byte aligned memory, so that every call rounds alike). Throws cka::domain_error on
/// overflow.
template <class A>
void tile_distances(const char* fn, const tiled_rows<A>& t, Eigen::Index ti, Eigen::Index tj, A* data) {
  const tile_grid g{t.rows()};
  const Eigen::Index i0 = g.start(ti), j0 = g.start(tj), h = g.size(ti), w = g.size(tj);
  Eigen::Map<matrix<A>> out(data, h, w);
  out.noalias() = t.xc.middleRows(i0, h) * t.xc.middleRows(j0, w).transpose();
  const Eigen::Index d = t.xc.cols();
  squared_distances_from_inner(out, t.norms.segment(i0, h), t.norms.segment(j0, w), ti == tj, [&](Eigen::Index i, Eigen::Index j) {
    return direct_squared_distance(t.xc.row(i0 + i).data(), 1, t.xc.row(j0 + j).data(), 1, d);
  });
  require_finite_distances(fn, out);
}

template <class A>
void tile_distances(const char* fn, const tiled_rows<A>& t, Eigen::Index ti, Eigen::Index tj, matrix<A>& out) {
  const tile_grid g{t.rows()};
  out.resize(g.size(ti), g.size(tj));
  tile_distances(fn, t, ti, tj, out.data());
}

/// Calls f(thread, tile_row) for every tile row 0 … nt−1, the rows dealt to `threads` threads. An exception
/// thrown by f (an overflow found in a tile) must not leave the OpenMP region: the first one is kept, the
/// remaining rows are skipped, and it is rethrown on the calling thread.
template <class F>
void for_tile_rows(Eigen::Index nt, int threads, F&& f) {
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (Eigen::Index ti = 0; ti < nt; ++ti) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
#if defined(_OPENMP)
      f(omp_get_thread_num(), ti);
#else
      f(0, ti);
#endif
    } catch (...) {
#if defined(_OPENMP)
#pragma omp critical(cka_tile_error)
#endif
      {
        if (!error) error = std::current_exception();
      }
      failed.store(true, std::memory_order_relaxed);
    }
  }
  (void)threads;
  if (error) std::rethrow_exception(error);
}

/// Progress over tile work, for a long call's progress callback: each pass adds the tiles it has done
/// (from any thread); the callback runs on the calling thread (OpenMP thread 0) only, when the count has
/// grown by a thousandth of the total. `total` is the planned count; a radix pass the median needed beyond
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

/// The number of upper tiles (I ≤ J) of an n×n matrix: the work of one pass.
inline std::size_t upper_tiles(Eigen::Index n) {
  const std::size_t nt = std::size_t(tile_grid{n}.tiles());
  return nt * (nt + 1) / 2;
}
/// The upper tiles one of `members` computes in a pass (at most).
inline std::size_t upper_tiles(Eigen::Index n, int members) {
  return (upper_tiles(n) + std::size_t(members) - 1) / std::size_t(std::max(members, 1));
}

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
    // 2 MiB aligned, and on Linux marked for transparent huge pages: first-touch page faults of 4 KiB
    // pages cost as much as a fifth of the distance products at n = 4096.
    constexpr std::size_t huge = std::size_t(1) << 21;
    const std::size_t bytes = (std::max<std::size_t>(at, 1) * sizeof(double) + huge - 1) / huge * huge;
    data_.reset(static_cast<double*>(std::aligned_alloc(huge, bytes)));
    if (!data_) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    ::madvise(data_.get(), bytes, MADV_HUGEPAGE);  // advice only: without it, ordinary pages
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
  const Eigen::Index nt = g.tiles();
  for_tile_rows(nt, threads, [&](int thread, Eigen::Index ti) {
    matrix<double> scratch;
    const Eigen::Index h = g.size(ti);
    std::size_t done = 0;
    for (Eigen::Index tj = ti; tj < nt; ++tj) {
      if (!share.owns(ti, tj, nt)) continue;
      ++done;
      const double* p = tile(ti, tj, scratch);
      if (ti == tj) {
        for (Eigen::Index j = 0; j + 1 < h; ++j) f(thread, p + j * h + j + 1, h - j - 1);
      } else {
        f(thread, p, h * g.size(tj));
      }
    }
    if (meter) meter->tick(thread, done);
  });
}

/// Where the pair values of a squared-distance matrix come from, for tiled_median: runs(f) calls f(thread,
/// p, m) as for_pair_runs does; pair(i, j) gives one entry (i ≠ j), the same value up to rounding; draws is
/// the size of the random sample that brackets the middle values (0: radix passes only).
template <class Runs, class Pair>
struct distance_source {
  Runs runs;
  Pair pair;
  std::size_t draws;
};
template <class Runs, class Pair>
distance_source<Runs, Pair> make_distance_source(Runs runs, Pair pair, std::size_t draws) {
  return {std::move(runs), std::move(pair), draws};
}

/// The exact median of the squared distances under `rule`, as median_squared_distance gives it for the
/// full matrix, without holding them (src: a distance_source). With a sample (src.draws > 0, many pairs),
/// one pass usually suffices: the sample's quantiles, widened by 5 standard errors, bracket the middle
/// values, and the pass counts the values below the bracket and collects those inside it (about 5/√draws
/// of all). Otherwise, or if the bracket missed: radix selection on the bit patterns of the non-negative
/// doubles (which order like the values), 16 bits per counting pass, and a final pass that collects the
/// values left in the target bucket once they number at most 2^20. Both middle ranks are tracked for
/// NumPy's even-count median. Where the bracket would hold more than half of `cap` values (from about
/// n = 120,000 with 2^22 draws), the counting pass histograms the bracket instead, 2^16 bins over its bit
/// patterns, and a second pass collects the one or two bins that hold the middle ranks. On a team
/// (src.runs covering this member's tiles) each pass ends in sums of the counts and a gather of the
/// collected values, so every member selects the same exact value.
template <class Source>
double tiled_median(const char* fn, Eigen::Index n, median_rule rule, int threads, const Source& src,
                    const team* t = nullptr, std::size_t cap = std::size_t(1) << 25) {
  require_samples(fn, "the representation", n, 2, "a median bandwidth");
  const std::uint64_t pairs = std::uint64_t(n) * std::uint64_t(n - 1) / 2;
  auto bits = [](double v) {
    std::uint64_t u;
    std::memcpy(&u, &v, 8);
    return u;
  };
  // Every off-diagonal pair once, value by value.
  auto for_pairs = [&](auto&& per_value) {
    src.runs([&](int thread, const double* p, Eigen::Index m) {
      for (Eigen::Index k = 0; k < m; ++k) per_value(thread, p[k]);
    });
  };
  const int slots = std::max(threads, 1);
  // The middle ranks among the off-diagonal values sorted ascending, as in median_squared_distance, given
  // the number of exact zeros (which only the nonzero rule needs).
  auto middle_ranks = [&](std::uint64_t zero_count, std::int64_t& lo_rank, std::int64_t& hi_rank) {
    const detail::middle_ranks r = median_ranks(std::uint64_t(n), rule, zero_count);
    lo_rank = r.lo;
    hi_rank = r.hi;
  };
  auto midpoint = [](double lower, double upper) { return median_midpoint(lower, upper); };

  // The median from a bracket [lo, hi] too full to collect: one pass counts the values below it and the
  // exact zeros, and histograms those inside by their bit patterns (non-negative doubles order like them)
  // into 2^16 bins; a second pass collects the bins of the middle ranks. hit = false if a middle rank lies
  // outside the bracket, or its bin holds more than cap values.
  auto binned_bracket_median = [&](double lo, double hi, bool& hit) -> double {
    constexpr std::size_t bins = std::size_t(1) << 16;
    const std::uint64_t ulo = bits(std::max(lo, 0.0)), uhi = bits(hi);
    int shift = 0;
    while (((uhi - ulo) >> shift) >= bins) ++shift;
    // Per slot: the bins, then one for the values outside, then the counts below the bracket and of zeros.
    std::vector<std::vector<std::uint64_t>> h(std::size_t(slots), std::vector<std::uint64_t>(bins + 3, 0));
    together(t, [&] {
      src.runs([&](int s, const double* p, Eigen::Index run) {
        std::uint64_t* hs = h[std::size_t(s)].data();
        std::uint64_t under = 0, zero = 0;
        for (Eigen::Index k = 0; k < run; ++k) {
          const double v = p[k];
          under += v < lo;
          zero += v == 0.0;
          const bool in = (v >= lo) & (v <= hi);
          ++hs[in ? (bits(v) - ulo) >> shift : bins];
        }
        hs[bins + 1] += under;
        hs[bins + 2] += zero;
      });
    });
    std::vector<std::uint64_t> total(bins + 3, 0);
    for (const auto& part : h)
      for (std::size_t b = 0; b < total.size(); ++b) total[b] += part[b];
    team_sum(t, total.data(), total.size());
    const std::uint64_t below_all = total[bins + 1], zero_count = total[bins + 2];
    if (rule == median_rule::nonzero && zero_count == pairs) {
      hit = true;
      return 0.0;
    }
    std::int64_t lo_rank = 0, hi_rank = 0;
    middle_ranks(zero_count, lo_rank, hi_rank);
    if (hi_rank < 0) {
      hit = true;
      return 0.0;
    }
    // The bin of each middle rank, and the rank within it.
    struct place {
      std::size_t bin = 0;
      std::uint64_t rank = 0;
      double value = 0;
    };
    std::vector<place> targets;
    for (std::int64_t r : {lo_rank, hi_rank}) {
      if (r < 0) continue;
      if (std::uint64_t(r) < below_all) return 0.0;
      std::uint64_t at = std::uint64_t(r) - below_all;
      std::size_t b = 0;
      while (b < bins && at >= total[b]) at -= total[b++];
      if (b == bins || total[b] > cap) return 0.0;
      targets.push_back({b, at, 0.0});
    }
    // One pass collects the values of the target bins (inside the bracket).
    std::vector<std::vector<std::vector<double>>> got(targets.size(), std::vector<std::vector<double>>(std::size_t(slots)));
    together(t, [&] {
      src.runs([&](int s, const double* p, Eigen::Index run) {
        for (Eigen::Index k = 0; k < run; ++k) {
          const double v = p[k];
          if (!((v >= lo) & (v <= hi))) continue;
          const std::size_t b = std::size_t((bits(v) - ulo) >> shift);
          for (std::size_t q = 0; q < targets.size(); ++q)
            if (b == targets[q].bin) got[q][std::size_t(s)].push_back(v);
        }
      });
    });
    for (std::size_t q = 0; q < targets.size(); ++q) {
      std::vector<double> all;
      for (const auto& part : got[q]) all.insert(all.end(), part.begin(), part.end());
      all = team_gather(t, std::move(all));
      std::nth_element(all.begin(), all.begin() + std::ptrdiff_t(targets[q].rank), all.end());
      targets[q].value = all[std::size_t(targets[q].rank)];
    }
    hit = true;
    const double upper = targets.back().value;
    if (lo_rank == hi_rank) return upper;
    return midpoint(lo_rank < 0 ? 0.0 : targets.front().value, upper);
  };

  // A sampled bracket first (many pairs only): the quantiles of 2^22 random pairs, widened by 5 standard
  // errors, bracket the middle values; one pass counts the values below the bracket and collects those in
  // it, and selection among those is exact. If the bracket missed, the radix passes below decide.
  const tile_share share = tile_share::of(t);
  // The bracket holds about 5/√draws of all pairs; where that exceeds what one pass may collect, its
  // values are counted in bins first.
  const double bracket = src.draws > 0 ? double(pairs) * (10 * std::sqrt(0.25 * double(src.draws)) + 4) / double(src.draws) : 0;
  const bool binned = bracket >= 0.5 * double(cap);
  if (src.draws > 0) {
    // The same draws on every member; each evaluates its share of them.
    std::vector<double> mine;
    together(t, [&] {
      splitmix64 g{0x5EEDC0DEull};
      mine.reserve(src.draws / std::size_t(share.size) + 1);
      for (std::size_t k = 0; k < src.draws; ++k) {
        const Eigen::Index i = Eigen::Index(g.below(std::uint64_t(n)));
        Eigen::Index j = Eigen::Index(g.below(std::uint64_t(n - 1)));
        j += j >= i;
        if (k % std::size_t(share.size) != std::size_t(share.rank)) continue;
        const double v = src.pair(i, j);
        if (rule != median_rule::nonzero || v > 0) mine.push_back(v);
      }
    });
    std::vector<double> sample = team_gather(t, std::move(mine));
    if (sample.size() > 1000) {
      // The target fraction of the sampled population (off-diagonal pairs; the nonzero ones for `nonzero`).
      std::int64_t lo_guess = 0, hi_guess = 0;
      middle_ranks(0, lo_guess, hi_guess);
      const double m = double(sample.size());
      const double q_lo = rule == median_rule::nonzero ? 0.5 : double(std::max<std::int64_t>(lo_guess, 0)) / double(pairs);
      const double q_hi = rule == median_rule::nonzero ? 0.5 : double(std::max<std::int64_t>(hi_guess, 0)) / double(pairs);
      const double spread = 5 * std::sqrt(m * 0.25) + 2;
      const std::int64_t k_lo = std::int64_t(std::floor(q_lo * m - spread)), k_hi = std::int64_t(std::ceil(q_hi * m + spread));
      auto order = [&](std::int64_t k) {  // the sample's k-th smallest value
        std::nth_element(sample.begin(), sample.begin() + std::ptrdiff_t(k), sample.end());
        return sample[std::size_t(k)];
      };
      const double lo = k_lo < 0 ? -1.0 : order(k_lo);
      const double hi = k_hi >= std::int64_t(sample.size()) ? std::numeric_limits<double>::infinity() : order(k_hi);
      if (binned) {  // if it misses a middle rank, or a bin is too full, radix selection decides
        bool hit = false;
        const double value = binned_bracket_median(lo, hi, hit);
        if (hit) return value;
      } else {
        const std::size_t member_cap = cap / std::size_t(share.size);
        std::vector<std::uint64_t> below(std::size_t(slots), 0), zeros_in(std::size_t(slots), 0);
        std::vector<std::vector<double>> inside(static_cast<std::size_t>(slots)), buffer(static_cast<std::size_t>(slots));
        std::vector<char> overflowed(std::size_t(slots), 0);
        together(t, [&] { src.runs([&](int s, const double* p, Eigen::Index run) {
          const double a = lo, b = hi;
          std::uint64_t under = 0, zero = 0;
          for (Eigen::Index k = 0; k < run; ++k) {  // vectorised counts
            under += p[k] < a;
            zero += p[k] == 0.0;
          }
          below[std::size_t(s)] += under;
          zeros_in[std::size_t(s)] += zero;
          // The values inside the bracket, compacted without branches (few are).
          auto& buf = buffer[std::size_t(s)];
          if (buf.size() < std::size_t(run)) buf.resize(std::size_t(run));
          std::size_t count = 0;
          for (Eigen::Index k = 0; k < run; ++k) {
            buf[count] = p[k];
            count += (p[k] >= a) & (p[k] <= b);
          }
          auto& in = inside[std::size_t(s)];
          if (in.size() + count > member_cap / std::size_t(slots)) overflowed[std::size_t(s)] = 1;
          else in.insert(in.end(), buf.begin(), buf.begin() + std::ptrdiff_t(count));
        }); });
        std::uint64_t totals[3] = {0, 0, 0};  // below the bracket, exact zeros, members whose bracket overflowed
        std::vector<double> all;
        for (int s = 0; s < slots; ++s) {
          totals[0] += below[std::size_t(s)];
          totals[1] += zeros_in[std::size_t(s)];
          all.insert(all.end(), inside[std::size_t(s)].begin(), inside[std::size_t(s)].end());
          totals[2] = totals[2] || overflowed[std::size_t(s)];
        }
        team_sum(t, totals, 3);
        const std::uint64_t below_all = totals[0], zero_count = totals[1];
        const bool full = totals[2] > 0;
        if (!full) all = team_gather(t, std::move(all));
        std::int64_t lo_rank = 0, hi_rank = 0;
        if (rule == median_rule::nonzero && zero_count == pairs) return 0.0;
        middle_ranks(zero_count, lo_rank, hi_rank);
        auto inside_bracket = [&](std::int64_t r) {
          return r < 0 || (std::uint64_t(r) >= below_all && std::uint64_t(r) < below_all + all.size());
        };
        if (!full && inside_bracket(lo_rank) && inside_bracket(hi_rank)) {
          if (hi_rank < 0) return 0.0;
          const auto it = all.begin() + std::ptrdiff_t(std::uint64_t(hi_rank) - below_all);
          std::nth_element(all.begin(), it, all.end());
          const double upper = *it;
          if (lo_rank == hi_rank) return upper;
          if (lo_rank < 0) return midpoint(0.0, upper);
          // lo_rank = hi_rank − 1: the largest value ranked below the upper one, inside the bracket too.
          return midpoint(*std::max_element(all.begin(), it), upper);
        }
      }
    }
  }

  // Pass 1: the top 16 bits, and the exact zeros.
  std::vector<std::vector<std::uint64_t>> hist(std::size_t(slots), std::vector<std::uint64_t>(1 << 16, 0));
  std::vector<std::uint64_t> zeros(std::size_t(slots), 0);
  together(t, [&] {
    for_pairs([&](int s, double v) {
      ++hist[std::size_t(s)][bits(v) >> 48];
      zeros[std::size_t(s)] += v == 0.0;
    });
  });
  std::vector<std::uint64_t> top((1 << 16) + 1, 0);  // the histogram, then the zero count
  for (int s = 0; s < slots; ++s) {
    for (std::size_t b = 0; b < (1 << 16); ++b) top[b] += hist[std::size_t(s)][b];
    top.back() += zeros[std::size_t(s)];
  }
  team_sum(t, top.data(), top.size());
  const std::uint64_t zero_count = top.back();
  top.pop_back();
  if (rule == median_rule::nonzero && zero_count == pairs) return 0.0;
  std::int64_t lo_rank = 0, hi_rank = 0;
  middle_ranks(zero_count, lo_rank, hi_rank);
  if (hi_rank < 0) return 0.0;

  struct target {
    std::uint64_t prefix = 0, rank = 0;
    int fixed = 0;
    bool collect = false, done = false;
    double value = 0;
  };
  constexpr std::uint64_t collect_limit = std::uint64_t(1) << 20;
  // Moves a target into the bucket of `h` (histogram of the next 16 bits) that holds its rank.
  auto descend = [&](target& g, const std::vector<std::uint64_t>& h) {
    std::uint64_t before = 0;
    std::size_t b = 0;
    while (before + h[b] <= g.rank) before += h[b++];
    g.rank -= before;
    g.prefix = (g.prefix << 16) | std::uint64_t(b);
    g.fixed += 16;
    if (g.fixed == 64) {
      std::memcpy(&g.value, &g.prefix, 8);
      g.done = true;
    } else {
      g.collect = h[b] <= collect_limit;
    }
  };
  std::vector<target> targets;
  for (std::int64_t r : {lo_rank, hi_rank}) {
    if (r < 0) continue;  // a diagonal zero
    target g;
    g.rank = std::uint64_t(r);
    descend(g, top);
    targets.push_back(g);
  }
  if (targets.size() == 2 && lo_rank == hi_rank) targets.pop_back();
  while (std::any_of(targets.begin(), targets.end(), [](const target& g) { return !g.done; })) {
    // One pass for every target still open: a histogram of its next 16 bits, or its bucket's values.
    std::vector<std::vector<std::vector<std::uint64_t>>> next(
        targets.size(), std::vector<std::vector<std::uint64_t>>(std::size_t(slots)));
    for (std::size_t k = 0; k < targets.size(); ++k)
      for (auto& h : next[k]) h.assign(targets[k].done || targets[k].collect ? 0 : (1 << 16), 0);
    together(t, [&] {
      for_pairs([&](int s, double v) {
        const std::uint64_t u = bits(v);
        for (std::size_t k = 0; k < targets.size(); ++k) {
          const target& g = targets[k];
          if (g.done || (u >> (64 - g.fixed)) != g.prefix) continue;
          auto& h = next[k][std::size_t(s)];
          if (g.collect) h.push_back(u);
          else ++h[(u >> (48 - g.fixed)) & 0xFFFF];
        }
      });
    });
    for (std::size_t k = 0; k < targets.size(); ++k) {
      target& g = targets[k];
      if (g.done) continue;
      if (g.collect) {
        // The bucket's values from every member (as doubles: non-negative ones order like their bits).
        std::vector<double> all;
        for (const auto& h : next[k])
          for (std::uint64_t u : h) {
            double v;
            std::memcpy(&v, &u, 8);
            all.push_back(v);
          }
        all = team_gather(t, std::move(all));
        std::nth_element(all.begin(), all.begin() + std::ptrdiff_t(g.rank), all.end());
        g.value = all[std::size_t(g.rank)];
        g.done = true;
      } else {
        std::vector<std::uint64_t> h(1 << 16, 0);
        for (const auto& part : next[k])
          for (std::size_t b = 0; b < h.size(); ++b) h[b] += part[b];
        team_sum(t, h.data(), h.size());
        descend(g, h);
      }
    }
  }
  const double upper = targets.back().value;
  if (lo_rank == hi_rank) return upper;
  return midpoint(lo_rank < 0 ? 0.0 : targets.front().value, upper);
}

/// The exact median of the squared distances between the rows of t, computed tile by tile in every pass;
/// above 2^24 pairs a sample of 2^22 pairs brackets it first.
/// One squared distance computed from the features (i ≠ j): a sample value, equal to the tiles' up to
/// rounding.
inline double pair_distance(const tiled_rows<double>& t, Eigen::Index i, Eigen::Index j) {
  return resolved_distance(std::max(0.0, t.norms(i) + t.norms(j) - 2 * t.xc.row(i).dot(t.xc.row(j))), t.norms(i), t.norms(j),
                           [&] { return direct_squared_distance(t.xc.row(i).data(), 1, t.xc.row(j).data(), 1, t.xc.cols()); });
}

inline double tiled_median(const char* fn, const tiled_rows<double>& t, median_rule rule, int threads,
                           tile_meter* meter = nullptr, const team* members = nullptr,
                           std::size_t cap = std::size_t(1) << 25) {
  const tile_grid g{t.rows()};
  const std::uint64_t pairs = std::uint64_t(g.n) * std::uint64_t(std::max<Eigen::Index>(g.n - 1, 0)) / 2;
  auto runs = [&](auto&& f) {
    for_pair_runs(g, threads, [&](Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) {
      tile_distances(fn, t, ti, tj, scratch);
      return static_cast<const double*>(scratch.data());
    }, f, meter, tile_share::of(members));
  };
  auto pair = [&](Eigen::Index i, Eigen::Index j) { return pair_distance(t, i, j); };
  const std::size_t draws = pairs > (std::uint64_t(1) << 24) ? std::size_t(1) << 22 : 0;
  return tiled_median(fn, g.n, rule, threads, make_distance_source(runs, pair, draws), members, cap);
}

/// The exact median of stored squared distances (the upper tiles d, all of them or a team member's
/// share); above 2^18 pairs a sample of n(n−1)/512 of them (at most 2^22) brackets it first, read from d
/// alone, or computed from the features t where given (a member does not hold every tile).
inline double tiled_median(const char* fn, const packed_tiles& d, median_rule rule, int threads,
                           tile_meter* meter = nullptr, const team* members = nullptr,
                           const tiled_rows<double>* t = nullptr, std::size_t cap = std::size_t(1) << 25) {
  const tile_grid& g = d.grid();
  const std::uint64_t pairs = std::uint64_t(g.n) * std::uint64_t(std::max<Eigen::Index>(g.n - 1, 0)) / 2;
  auto runs = [&](auto&& f) {
    for_pair_runs(g, threads, [&](Eigen::Index ti, Eigen::Index tj, matrix<double>&) { return d.tile(ti, tj); }, f, meter,
                  tile_share::of(members));
  };
  auto pair = [&](Eigen::Index i, Eigen::Index j) { return t ? pair_distance(*t, i, j) : d.at(i, j); };
  const std::size_t draws =
      pairs >= (std::uint64_t(1) << 18) ? std::size_t(std::min<std::uint64_t>(pairs / 256, std::uint64_t(1) << 22)) : 0;
  return tiled_median(fn, g.n, rule, threads, make_distance_source(runs, pair, draws), members, cap);
}

/// The upper tiles of the squared distances between the rows of t (those of `share`), stored.
inline packed_tiles stored_distances(const char* fn, const tiled_rows<double>& t, int threads,
                                     tile_meter* meter = nullptr, tile_share share = {}) {
  packed_tiles d(t.rows(), share);
  const Eigen::Index nt = d.grid().tiles();
  for_tile_rows(nt, threads, [&](int thread, Eigen::Index ti) {
    std::size_t done = 0;
    for (Eigen::Index tj = ti; tj < nt; ++tj)
      if (share.owns(ti, tj, nt)) {
        tile_distances(fn, t, ti, tj, d.tile(ti, tj));
        ++done;
      }
    if (meter) meter->tick(thread, done);
  });
  return d;
}

/// Pass A over the upper tiles of a symmetric kernel matrix K (tile(ti, tj, scratch) gives its values):
/// the row sums r = K1, the diagonal, and Σ K_ij² off the diagonal and on it. Each tile row is one
/// thread's; a tile I < J adds its row sums to block I and its column sums to block J. Column sums are
/// buffered per tile row and added in tile-row order, and each row's own sums last, so the bits do not
/// depend on the thread count.
struct kernel_row_sums {
  vector<double> r, diag;
  double off_squares = 0, diag_squares = 0;
};

template <class Tile>
kernel_row_sums tile_row_sums(const tile_grid& g, int threads, Tile&& tile, tile_meter* meter = nullptr,
                              const team* members = nullptr) {
  const Eigen::Index n = g.n, nt = g.tiles();
  const tile_share share = tile_share::of(members);
  kernel_row_sums s;
  s.r = vector<double>::Zero(n);
  s.diag = vector<double>::Zero(n);
  vector<double> own = vector<double>::Zero(n), off = vector<double>::Zero(nt), on = vector<double>::Zero(nt);
  const Eigen::Index group = std::max<Eigen::Index>(16, 4 * Eigen::Index(threads));
  matrix<double> cols(n, std::min(group, nt));  // column sums of the tiles right of the diagonal, per tile row
  together(members, [&] {
  for (Eigen::Index g0 = 0; g0 < nt; g0 += group) {
    const Eigen::Index count = std::min(group, nt - g0);
    for_tile_rows(count, threads, [&](int thread, Eigen::Index k) {
      const Eigen::Index ti = g0 + k, i0 = g.start(ti), h = g.size(ti);
      matrix<double> scratch;
      vector<double> acc = vector<double>::Zero(h);
      std::size_t done = 0;
      if (share.size > 1) cols.col(k).setZero();  // a member's row skips the tiles of others
      for (Eigen::Index tj = ti; tj < nt; ++tj) {
        if (!share.owns(ti, tj, nt)) continue;
        ++done;
        const Eigen::Index j0 = g.start(tj), w = g.size(tj);
        const Eigen::Map<const matrix<double>> t(tile(ti, tj, scratch), h, w);
        for (Eigen::Index j = 0; j < w; ++j) acc += t.col(j);
        if (ti == tj) {
          s.diag.segment(i0, h) = t.diagonal();
          on(ti) = t.diagonal().squaredNorm();
          off(ti) += t.squaredNorm() - on(ti);
        } else {
          cols.col(k).segment(j0, w) = t.colwise().sum().transpose();
          off(ti) += 2 * t.squaredNorm();
        }
      }
      own.segment(i0, h) = acc;
      if (meter) meter->tick(thread, done);
    });
    for (Eigen::Index k = 0; k < count; ++k) {
      const Eigen::Index rest = g.start(g0 + k) + g.size(g0 + k);
      s.r.tail(n - rest) += cols.col(k).tail(n - rest);
    }
  }
  s.r += own;
  });
  if (share.size > 1) {  // one sum over the team: row sums, diagonal, and the squares per tile row
    vector<double> all(2 * n + 2 * nt);
    all << s.r, s.diag, off, on;
    team_sum(members, all.data(), std::size_t(all.size()));
    s.r = all.head(n);
    s.diag = all.segment(n, n);
    off = all.segment(2 * n, nt);
    on = all.tail(nt);
  }
  s.off_squares = off.sum();
  s.diag_squares = on.sum();
  return s;
}

/// Pass B: the centered products Σ C_a∘C_b of every pair a ≤ b of the kernel matrices of `layers` (each
/// with tile(ti, tj, scratch) and its centering `c`), C_ij = K_ij − u_i − v_j + c (0 on the diagonal for
/// the unbiased estimator), over the tiles I ≤ J (off-diagonal ones twice). Partial sums per tile row,
/// added in row order. Returns the symmetric L×L matrix of sums.
template <class Layer>
matrix<double> tile_centered_products(const tile_grid& g, int threads, const std::vector<const Layer*>& layers,
                                      const std::vector<centering<double>>& c, estimator est,
                                      tile_meter* meter = nullptr, const team* members = nullptr) {
  const Eigen::Index nt = g.tiles(), count = Eigen::Index(layers.size());
  const tile_share share = tile_share::of(members);
  // Partial sums per tile row: nt blocks of count × count, contiguous for one sum over the team.
  matrix<double> partial = matrix<double>::Zero(count, count * nt);
  together(members, [&] {
  for_tile_rows(nt, threads, [&](int thread, Eigen::Index ti) {
    std::vector<matrix<double>> scratch(layers.size()), centered(layers.size());
    const Eigen::Index i0 = g.start(ti), h = g.size(ti);
    auto part = partial.middleCols(ti * count, count);
    std::size_t done = 0;
    for (Eigen::Index tj = ti; tj < nt; ++tj) {
      if (!share.owns(ti, tj, nt)) continue;
      ++done;
      const Eigen::Index j0 = g.start(tj), w = g.size(tj);
      for (std::size_t a = 0; a < layers.size(); ++a) {
        const Eigen::Map<const matrix<double>> t(layers[a]->tile(ti, tj, scratch[a]), h, w);
        matrix<double>& ca = centered[a];
        ca.resize(h, w);
        for (Eigen::Index j = 0; j < w; ++j) {
          ca.col(j) = (t.col(j).array() - c[a].u.segment(i0, h).array() - (c[a].v(j0 + j) - c[a].c)).matrix();
        }
        if (est == estimator::unbiased && ti == tj) ca.diagonal().setZero();
      }
      const double weight = ti == tj ? 1.0 : 2.0;
      for (Eigen::Index a = 0; a < count; ++a)
        for (Eigen::Index b = a; b < count; ++b) {
          part(a, b) += weight * centered[std::size_t(a)].cwiseProduct(centered[std::size_t(b)]).sum();
        }
    }
    if (meter) meter->tick(thread, done * layers.size());
  });
  });
  team_sum(members, partial.data(), std::size_t(partial.size()));
  matrix<double> total = matrix<double>::Zero(count, count);
  for (Eigen::Index ti = 0; ti < nt; ++ti) total += partial.middleCols(ti * count, count);
  return total.selfadjointView<Eigen::Upper>();
}

/// A kernel matrix as the passes read it: its grid, and tile(ti, tj, scratch), the kernel values of an upper
/// tile (stored, or computed into scratch). Layers of different kernels meet in one pass through this base.
class tile_layer {
 public:
  virtual ~tile_layer() = default;
  virtual const tile_grid& grid() const = 0;
  virtual const double* tile(Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) const = 0;

 protected:
  tile_layer() = default;
  tile_layer(const tile_layer&) = default;
  tile_layer& operator=(const tile_layer&) = default;
  tile_layer(tile_layer&&) = default;
  tile_layer& operator=(tile_layer&&) = default;
};

/// Every member of a team must hold the same representation: its shape and a checksum of the rows (bitwise
/// equal for equal data) are compared with rank 0's; a difference makes every member throw
/// cka::invalid_argument.
inline void require_same_rows(const char* fn, const tiled_rows<double>& rows, const team* members) {
  const std::vector<double> mine{double(rows.rows()), double(rows.xc.cols()), rows.norms.sum()};
  const std::vector<double> all = members->gather(mine);
  for (int r = 1; r < members->size(); ++r) {
    const double* o = all.data() + 3 * r;
    if (o[0] != all[0] || o[1] != all[1] || !(o[2] == all[2])) {
      fail_argument(fn, "rank ", r, " holds a representation of ", o[0], " samples and ", o[1],
                    " features that differs from rank 0's (", all[0], " and ", all[1],
                    "); every member of the team must pass the same data");
    }
  }
}

/// One representation's RBF kernel matrix for the passes, with its bandwidth resolved: computed tile by
/// tile from the centered features in every pass (memory 8·n·d bytes), or computed once and stored
/// (packed_tiles, 4·n² bytes). A median bandwidth comes from the exact median of the same distance tiles
/// (tiled_median), stored or computed.
class rbf_tiles final : public tile_layer {
 public:
  /// On a team (`members`), every member passes the same x and holds (stores) only its share of the tiles;
  /// a member with other data than rank 0's makes every member throw cka::invalid_argument.
  template <class V>
  rbf_tiles(const char* fn, const V& x, const rbf_kernel& k, bool store, int threads, tile_meter* meter = nullptr,
            const team* members = nullptr)
      : rbf_tiles(prepared{}, fn, [&] { return tiled_rows_of<double>(x, k.uses_median() ? safe_scale<double>(x) : 1.0); },
                  k, store, threads, meter, members) {}

  /// The pooled sample [X; Y] (MMD), without a stacked copy of it.
  template <class VX, class VY>
  rbf_tiles(const char* fn, const VX& x, const VY& y, const rbf_kernel& k, bool store, int threads,
            tile_meter* meter = nullptr, const team* members = nullptr)
      : rbf_tiles(prepared{}, fn, [&] {
          const double top = std::max(x.size() ? double(x.cwiseAbs().maxCoeff()) : 0.0,
                                      y.size() ? double(y.cwiseAbs().maxCoeff()) : 0.0);
          return tiled_rows_of<double>(x, y, k.uses_median() ? safe_scale_for<double>(top) : 1.0);
        }, k, store, threads, meter, members) {}

  /// Bytes the stored route holds for n samples (on each of `members` members).
  static double stored_bytes(Eigen::Index n, int members = 1) { return packed_tiles::bytes(n, members); }
  /// Tile passes the constructor makes (for a meter): the stored distances, or the median's counting pass.
  static std::size_t planned_passes(const rbf_kernel& k, bool store) { return store || k.uses_median() ? 1 : 0; }
  bool stored() const { return stored_.has_value(); }

  const tile_grid& grid() const override { return grid_; }
  double bandwidth_squared() const { return s2_; }
  /// Kernel values of tile (ti, tj): stored, or computed into scratch.
  const double* tile(Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) const override {
    if (stored_) return stored_->tile(ti, tj);
    tile_distances(fn_, rows_, ti, tj, scratch);
    kernel_.apply(scratch, s2_);
    return scratch.data();
  }

 private:
  // The common constructor: rows from make_rows(), then the stored distances, the bandwidth, the kernel map.
  struct prepared {};
  template <class Make>
  rbf_tiles(prepared, const char* fn, Make&& make_rows, const rbf_kernel& k, bool store, int threads, tile_meter* meter,
            const team* members)
      : fn_(fn), kernel_(k), share_(tile_share::of(members)) {
    together(members, [&] { rows_ = make_rows(); });
    if (share_.size > 1) require_same_rows(fn_, rows_, members);
    const tile_grid g{rows_.rows()};
    const Eigen::Index nt = g.tiles();
    if (store) {
      together(members, [&] { stored_.emplace(stored_distances(fn_, rows_, threads, meter, share_)); });
    }
    if (k.uses_median()) {
      s2_ = k.bandwidth_from_median(stored_ ? tiled_median(fn_, *stored_, k.rule(), threads, nullptr, members,
                                                           share_.size > 1 ? &rows_ : nullptr)
                                            : tiled_median(fn_, rows_, k.rule(), threads, meter, members));
    } else {
      s2_ = k.sigma() * k.sigma();
    }
    if (store) {
      for_tile_rows(nt, threads, [&](int, Eigen::Index ti) {
        for (Eigen::Index tj = ti; tj < nt; ++tj) {
          if (!share_.owns(ti, tj, nt)) continue;
          Eigen::Map<matrix<double>> t(stored_->tile(ti, tj), g.size(ti), g.size(tj));
          kernel_.apply(t, s2_);
        }
      });
      rows_ = tiled_rows<double>{};  // the features are not needed again
    }
    grid_ = g;
  }

  const char* fn_;
  rbf_kernel kernel_;
  tile_share share_;
  tiled_rows<double> rows_;
  std::optional<packed_tiles> stored_;
  tile_grid grid_;
  double s2_ = 0;
};

/// Kernels whose values value_tiles forms: linear_kernel, polynomial_kernel, and kernels of the generic form
/// (k(x, y) called per pair). Kernels of another form map a whole n×n matrix (kernels.hpp) and keep it.
template <class K>
constexpr bool has_value_tiles = std::is_same_v<K, linear_kernel> || std::is_same_v<K, polynomial_kernel> ||
                                 kernel_traits<K>::form == kernel_form::generic;

/// One representation's kernel matrix for the passes, its tiles formed from the rows R:
/// - inner-product kernels: the tile R_I R_Jᵀ (one GEMM of h·w·d multiply-adds) mapped to kernel values. R
///   is X column-centered for the linear kernel (its centered Gram is the same, and an offset costs no
///   digits; one representation's rows are also scaled by a power of two where their magnitudes are
///   extreme, since its CKA does not depend on its scale) and X as given for the polynomial kernel, as the
///   device engine takes them;
/// - generic kernels: k(r_i, r_j) for each pair of the tile, R = X as given (a diagonal tile's pairs i ≤ j,
///   mirrored, as gram calls them).
/// The tiles are computed in every pass (memory 8·n·d bytes) or once and stored (4·n² bytes). On a team,
/// every member passes the same x and holds only its share, as for rbf_tiles. Throws cka::domain_error
/// (overflow) for a kernel value that is not finite in double; an exception of the kernel passes through.
template <class Kernel>
class value_tiles final : public tile_layer {
 public:
  static_assert(has_value_tiles<Kernel>, "cka: value_tiles takes an inner-product or a generic kernel");

  template <class V>
  value_tiles(const char* fn, const V& x, const Kernel& k, bool store, int threads, tile_meter* meter = nullptr,
                const team* members = nullptr)
      : value_tiles(prepared{}, fn, [&] {
          return tiled_rows_of<double>(x, std::is_same_v<Kernel, linear_kernel> ? safe_scale<double>(x) : 1.0, form());
        }, k, store, threads, meter, members) {}

  /// The pooled sample [X; Y] (MMD), without a stacked copy of it.
  template <class VX, class VY>
  value_tiles(const char* fn, const VX& x, const VY& y, const Kernel& k, bool store, int threads,
                tile_meter* meter = nullptr, const team* members = nullptr)
      : value_tiles(prepared{}, fn, [&] { return tiled_rows_of<double>(x, y, 1.0, form()); }, k, store, threads,
                      meter, members) {}

  /// Tile passes the constructor makes (for a meter): the stored tiles.
  static std::size_t planned_passes(const Kernel&, bool store) { return store ? 1 : 0; }

  const tile_grid& grid() const override { return grid_; }
  const double* tile(Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) const override {
    if (stored_) return stored_->tile(ti, tj);
    scratch.resize(grid_.size(ti), grid_.size(tj));
    values(ti, tj, scratch.data());
    return scratch.data();
  }

 private:
  static constexpr row_form form() {
    return std::is_same_v<Kernel, linear_kernel> ? row_form::centered : row_form::raw;
  }

  struct prepared {};
  template <class Make>
  value_tiles(prepared, const char* fn, Make&& make_rows, const Kernel& k, bool store, int threads,
                tile_meter* meter, const team* members)
      : fn_(fn), kernel_(k), grid_{0} {
    if constexpr (std::is_same_v<Kernel, polynomial_kernel>) k.require_valid();
    const tile_share share = tile_share::of(members);
    together(members, [&] { rows_ = make_rows(); });
    if (share.size > 1) require_same_rows(fn_, rows_, members);
    grid_ = tile_grid{rows_.rows()};
    if (!store) return;
    together(members, [&] {
      stored_.emplace(grid_.n, share);
      const Eigen::Index nt = grid_.tiles();
      for_tile_rows(nt, threads, [&](int thread, Eigen::Index ti) {
        std::size_t done = 0;
        for (Eigen::Index tj = ti; tj < nt; ++tj)
          if (share.owns(ti, tj, nt)) {
            values(ti, tj, stored_->tile(ti, tj));
            ++done;
          }
        if (meter) meter->tick(thread, done);
      });
    });
    rows_ = tiled_rows<double>{};  // the features are not needed again
  }

  // The kernel values of tile (ti, tj) into out (h×w, column-major).
  void values(Eigen::Index ti, Eigen::Index tj, double* out) const {
    const Eigen::Index i0 = grid_.start(ti), j0 = grid_.start(tj), h = grid_.size(ti), w = grid_.size(tj);
    Eigen::Map<matrix<double>> t(out, h, w);
    if constexpr (kernel_traits<Kernel>::form == kernel_form::generic) {
      const bool diagonal = ti == tj;
      for (Eigen::Index j = 0; j < w; ++j)
        for (Eigen::Index i = 0; i < (diagonal ? j + 1 : h); ++i) {
          t(i, j) = double(kernel_(rows_.xc.row(i0 + i), rows_.xc.row(j0 + j)));
        }
      if (diagonal)
        for (Eigen::Index j = 0; j < w; ++j)
          for (Eigen::Index i = j + 1; i < h; ++i) t(i, j) = t(j, i);
    } else {
      t.noalias() = rows_.xc.middleRows(i0, h) * rows_.xc.middleRows(j0, w).transpose();
      if constexpr (std::is_same_v<Kernel, polynomial_kernel>) {
        t = t.unaryExpr([this](double p) { return kernel_.from_inner_product(p); });
      }
    }
    if (!t.allFinite()) fail_kernel_overflow(fn_);
  }

  const char* fn_;
  Kernel kernel_;
  tiled_rows<double> rows_;
  std::optional<packed_tiles> stored_;
  tile_grid grid_;
};

/// Whether the tile engine evaluates kernel type K: the RBF, inner-product and generic kernels.
template <class K>
constexpr bool in_tile_engine = std::is_same_v<K, rbf_kernel> || has_value_tiles<K>;

/// The tile layer type of kernel K: rbf_tiles or value_tiles<K>.
template <class K>
using tiles_for = std::conditional_t<std::is_same_v<K, rbf_kernel>, rbf_tiles, value_tiles<K>>;

/// The tile layer of x under kernel k; store, meter and members as rbf_tiles and value_tiles take them.
template <class V, class K>
tiles_for<K> tiles_of(const char* fn, const V& x, const K& k, bool store, int threads, const team* members) {
  return tiles_for<K>(fn, x, k, store, threads, nullptr, members);
}
/// The tile layer of the pooled sample [X; Y] under kernel k.
template <class VX, class VY, class K>
tiles_for<K> tiles_of(const char* fn, const VX& x, const VY& y, const K& k, bool store, int threads,
                      const team* members) {
  return tiles_for<K>(fn, x, y, k, store, threads, nullptr, members);
}

/// Kernel CKA sums of every pair of `layers` (tile layers over the same samples, nullptr for a layer left
/// out): pass A for each, then one pass B over all. sums(a, b) = Σ C_a∘C_b; ref(a) the squared norm of K_a
/// (K̃_a for the unbiased estimator), the reference for a vanishing one.
struct tile_pair_sums_result {
  matrix<double> sums;
  vector<double> ref;
};

template <class Layer>
tile_pair_sums_result tile_pair_sums(const std::vector<const Layer*>& layers, estimator est, int threads,
                                     tile_meter* meter = nullptr, const team* members = nullptr) {
  std::vector<const Layer*> live;
  std::vector<centering<double>> c;
  std::vector<Eigen::Index> slot;
  tile_pair_sums_result out;
  out.ref = vector<double>::Zero(Eigen::Index(layers.size()));
  for (const Layer* l : layers) {
    if (l == nullptr) {
      slot.push_back(-1);
      continue;
    }
    const kernel_row_sums r = tile_row_sums(
        l->grid(), threads, [l](Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) { return l->tile(ti, tj, scratch); },
        meter, members);
    out.ref(Eigen::Index(slot.size())) = r.off_squares + (est == estimator::unbiased ? 0.0 : r.diag_squares);
    c.push_back(centering_from_sums<double>(r.r, r.diag, est));
    slot.push_back(Eigen::Index(live.size()));
    live.push_back(l);
  }
  const Eigen::Index count = Eigen::Index(layers.size());
  out.sums = matrix<double>::Zero(count, count);
  if (live.empty()) return out;
  const matrix<double> p = tile_centered_products<Layer>(live.front()->grid(), threads, live, c, est, meter, members);
  for (Eigen::Index a = 0; a < count; ++a)
    for (Eigen::Index b = 0; b < count; ++b)
      if (slot[std::size_t(a)] >= 0 && slot[std::size_t(b)] >= 0) out.sums(a, b) = p(slot[std::size_t(a)], slot[std::size_t(b)]);
  return out;
}

/// The centered sums of the kernel matrices of two tile layers over the same samples.
template <class Layer>
centered_sums<double> tile_pair_sums(const Layer& a, const Layer& b, estimator est, int threads,
                                     const team* members = nullptr) {
  const tile_pair_sums_result r = tile_pair_sums<Layer>({&a, &b}, est, threads, nullptr, members);
  return {r.sums(0, 1), r.sums(0, 0), r.sums(1, 1), r.ref(0), r.ref(1)};
}

/// The block sums of a symmetric kernel matrix over a pooled sample [X; Y] split after m samples: Σ Kxx and
/// Σ Kyy over all their entries, Σ Kxy over each (x, y) pair once, and the diagonal sums of the two blocks.
/// One pass over the tiles I ≤ J, partial sums per tile row added in row order.
struct block_sums {
  double xx = 0, yy = 0, xy = 0, diag_x = 0, diag_y = 0;
};

template <class Layer>
block_sums tile_block_sums(const Layer& l, Eigen::Index m, int threads, const team* members = nullptr) {
  const tile_grid& g = l.grid();
  const Eigen::Index nt = g.tiles();
  const tile_share share = tile_share::of(members);
  matrix<double> partial = matrix<double>::Zero(nt, 5);
  together(members, [&] {
  for_tile_rows(nt, threads, [&](int, Eigen::Index ti) {
    matrix<double> scratch;
    const Eigen::Index h = g.size(ti), rx = std::clamp<Eigen::Index>(m - g.start(ti), 0, h);  // rows in X
    for (Eigen::Index tj = ti; tj < nt; ++tj) {
      if (!share.owns(ti, tj, nt)) continue;
      const Eigen::Index w = g.size(tj), cx = std::clamp<Eigen::Index>(m - g.start(tj), 0, w);  // columns in X
      const Eigen::Map<const matrix<double>> t(l.tile(ti, tj, scratch), h, w);
      const double weight = ti == tj ? 1.0 : 2.0;  // an off-diagonal tile stands for its transpose too
      partial(ti, 0) += weight * t.topLeftCorner(rx, cx).sum();
      partial(ti, 1) += weight * t.bottomRightCorner(h - rx, w - cx).sum();
      // Each (x, y) pair once: below the diagonal in a diagonal tile; anywhere (it is above) otherwise.
      partial(ti, 2) += t.bottomLeftCorner(h - rx, cx).sum() + (ti == tj ? 0.0 : t.topRightCorner(rx, w - cx).sum());
      if (ti == tj) {
        partial(ti, 3) += t.diagonal().head(rx).sum();
        partial(ti, 4) += t.diagonal().tail(h - rx).sum();
      }
    }
  });
  });
  team_sum(members, partial.data(), std::size_t(partial.size()));
  const Eigen::Matrix<double, 1, 5> total = partial.colwise().sum();
  return {total(0), total(1), total(2), total(3), total(4)};
}

}  // namespace cka::detail
