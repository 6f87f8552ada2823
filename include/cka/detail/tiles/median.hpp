#pragma once
// Private: the exact median of the squared distances without holding them — select_median's source over
// the tiles (each pass recomputes or reads every owned tile; a team sums the counts and gathers the
// collected values).

#include <cka/detail/checks.hpp>
#include <cka/detail/permutations.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/select.hpp>
#include <cka/detail/team.hpp>
#include <cka/detail/tiles/grid.hpp>
#include <cka/detail/tiles/rows.hpp>
#include <cka/detail/tiles/storage.hpp>
#include <cka/median_rule.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace cka::detail {

/// The pair distances of the tiles as a select_median source. runs(f) calls f(thread, p, m) for runs of m
/// values as for_pair_runs does (this member's tiles on a team); pair(i, j) gives one entry (i ≠ j), the
/// same value up to rounding; draws is the size of the random sample that brackets the middle values (0:
/// none). Counts split a range into `buckets` buckets: 2^16 (the first count, over every key, by the top
/// 16 bits), or 16 where there are no more pairs than that (and at most `cap`): collecting them all costs
/// less than clearing and adding 2^16 counters per thread and pass, which took most of a call's time at
/// n = 8. A counting pass over a sampled bracket also keeps its values where they are expected to be few
/// (about 10/√draws of the pairs, under half of `cap`), so that one pass usually decides.
template <class Runs, class Pair>
struct tile_distance_source {
  using value_type = double;
  static constexpr bool exact_keys = true;

  const char* fn;
  std::uint64_t n;
  Runs runs;
  Pair pair;
  std::size_t draws;
  int threads;
  const team* members;
  std::uint64_t cap;
  std::uint64_t buckets = std::uint64_t(1) << 16;
  std::vector<double> sample{}, held{};
  key_range held_range{};

  key_range span() const { return {}; }
  std::size_t slots() const { return std::size_t(std::max(threads, 1)); }

  /// The same draws on every member; each evaluates its share of them, and all gather every value.
  std::uint64_t draw_sample() {
    if (draws == 0 || n < 2) return 0;
    const tile_share share = tile_share::of(members);
    std::vector<double> mine;
    together(members, [&] {
      splitmix64 g{0x5EEDC0DEull};
      mine.reserve(draws / std::size_t(share.size) + 1);
      for (std::size_t k = 0; k < draws; ++k) {
        const Eigen::Index i = Eigen::Index(g.below(n));
        Eigen::Index j = Eigen::Index(g.below(n - 1));
        j += j >= i;
        if (k % std::size_t(share.size) == std::size_t(share.rank)) mine.push_back(pair(i, j));
      }
    });
    sample = team_gather(members, std::move(mine));
    return sample.size();
  }
  std::uint64_t sample_zeros() const { return std::uint64_t(std::count(sample.begin(), sample.end(), 0.0)); }
  double sample_value(std::uint64_t k) {
    std::nth_element(sample.begin(), sample.begin() + std::ptrdiff_t(k), sample.end());
    return sample[std::size_t(k)];
  }

  key_counts count(const key_range& r, int shift, bool hold) {
    const double lo = r.lo_value(), hi = r.hi_value();
    const std::uint64_t pairs = n * (n - 1) / 2;
    hold = hold && expected_in_bracket(pairs, draws) < 0.5 * double(cap);
    const std::size_t per_slot = std::size_t(cap) / std::size_t(tile_share::of(members).size) / slots();
    // Per slot: the buckets, then the values below r, the zeros, and whether the kept values overflowed.
    std::vector<std::vector<std::uint64_t>> h(slots(), std::vector<std::uint64_t>(std::size_t(buckets) + 3, 0));
    std::vector<std::vector<double>> buffer(slots()), kept(slots());
    together(members, [&] {
      runs([&](int s, const double* p, Eigen::Index m) {
        std::uint64_t* hs = h[std::size_t(s)].data();
        std::uint64_t under = 0, zero = 0;
        for (Eigen::Index k = 0; k < m; ++k) {  // vectorised counts
          under += p[k] < lo;
          zero += p[k] == 0.0;
        }
        hs[buckets] += under;
        hs[buckets + 1] += zero;
        // The values in r, compacted without branches, then counted by bucket.
        auto& buf = buffer[std::size_t(s)];
        if (buf.size() < std::size_t(m)) buf.resize(std::size_t(m));
        std::size_t in = 0;
        for (Eigen::Index k = 0; k < m; ++k) {
          buf[in] = p[k];
          in += (p[k] >= lo) & (p[k] <= hi);
        }
        for (std::size_t k = 0; k < in; ++k) ++hs[(distance_key(buf[k]) - r.lo) >> shift];
        if (!hold) return;
        auto& keep = kept[std::size_t(s)];
        if (keep.size() + in > per_slot) hs[buckets + 2] = 1;
        else keep.insert(keep.end(), buf.begin(), buf.begin() + std::ptrdiff_t(in));
      });
    });
    std::vector<std::uint64_t> total(std::size_t(buckets) + 3, 0);
    for (const auto& part : h)
      for (std::size_t b = 0; b < total.size(); ++b) total[b] += part[b];
    team_sum(members, total.data(), total.size());
    key_counts c;
    c.below = total[buckets];
    c.zeros = total[buckets + 1];
    c.held = hold && total[buckets + 2] == 0;
    total.resize(std::size_t(buckets));
    c.buckets = std::move(total);
    if (c.held) {
      held.clear();
      for (const auto& part : kept) held.insert(held.end(), part.begin(), part.end());
      held = team_gather(members, std::move(held));
      held_range = r;
    }
    return c;
  }

  std::pair<double, double> pick(const key_range& r, std::uint64_t before, std::uint64_t inside, rank_pair want) {
    std::vector<double> all;
    if (!held.empty() && held_range == r) {
      all = std::move(held);
      held.clear();
    } else {
      const double lo = r.lo_value(), hi = r.hi_value();
      std::vector<std::vector<double>> got(slots());
      together(members, [&] {
        runs([&](int s, const double* p, Eigen::Index m) {
          auto& g = got[std::size_t(s)];
          for (Eigen::Index k = 0; k < m; ++k)
            if (p[k] >= lo && p[k] <= hi) g.push_back(p[k]);
        });
      });
      all.reserve(std::size_t(inside) / std::size_t(tile_share::of(members).size) + 1);
      for (const auto& part : got) all.insert(all.end(), part.begin(), part.end());
      all = team_gather(members, std::move(all));
    }
    return order_values(fn, all, before, want);
  }
};

/// The exact median of the squared distances of a tile_distance_source's runs and pairs under `rule`.
template <class Runs, class Pair>
double tiled_median(const char* fn, Eigen::Index n, median_rule rule, int threads, Runs runs, Pair pair,
                    std::size_t draws, const team* members, std::size_t cap) {
  require_samples(fn, "the representation", n, 2, "a median bandwidth");
  tile_distance_source<Runs, Pair> src{fn, std::uint64_t(n), std::move(runs), std::move(pair), draws, threads, members, cap};
  const std::uint64_t pairs = std::uint64_t(n) * std::uint64_t(n - 1) / 2;
  if (pairs <= std::min<std::uint64_t>(cap, src.buckets)) src.buckets = 16;
  return select_median(fn, std::uint64_t(n), rule, src);
}

/// The exact median of the squared distances between the rows of t, computed tile by tile in every pass;
/// above 2^24 pairs a sample of 2^22 pairs brackets it first.
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
  return tiled_median(fn, g.n, rule, threads, runs, pair, draws, members, cap);
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
  return tiled_median(fn, g.n, rule, threads, runs, pair, draws, members, cap);
}

}  // namespace cka::detail
