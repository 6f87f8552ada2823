#pragma once
// Private: the exact median of the squared distances without holding them — a sampled bracket, then
// counting passes over the tiles (radix selection on the bit patterns), then the values collected.

#include <cka/detail/checks.hpp>
#include <cka/detail/median_ranks.hpp>
#include <cka/detail/permutations.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/team.hpp>
#include <cka/detail/tiles/grid.hpp>
#include <cka/detail/tiles/rows.hpp>
#include <cka/detail/tiles/storage.hpp>
#include <cka/median_rule.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

namespace cka::detail {

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

}  // namespace cka::detail
