#pragma once
// Private: the exact median of the squared distances between the rows of Z on the device tile engine
// (tiles.hpp) — the bandwidth of a median-rule RBF kernel, equal to median_squared_distance's bit for bit:
// select_median (cka/detail/select.hpp) over a source whose counting passes are one reduction per tile
// (16 buckets of the keys), whose collection is a copy_if per tile and a sort, and whose sample (pairs/64
// pair distances, 2^12 … plan.draws, beyond plan.sample_above pairs) is drawn and sorted on the device.

#include <cka/device/detail/tiles.hpp>
#include <cka/detail/select.hpp>
#include <cka/median_rule.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>

namespace cka::device::detail {

using cka::detail::distance_key;

/// The tally of one counting pass over the distinct pairs i < j: values below the range's first key,
/// exact zeros, non-finite values, and 16 buckets of the keys in [lo, hi] ((key − lo) >> shift).
struct median_tally {
  static constexpr int buckets = 16;
  std::uint64_t below = 0, zeros = 0, bad = 0;
  std::uint64_t bucket[buckets] = {};
};
struct add_tally {
  CKA_HD median_tally operator()(const median_tally& a, const median_tally& b) const {
    median_tally s;
    s.below = a.below + b.below;
    s.zeros = a.zeros + b.zeros;
    s.bad = a.bad + b.bad;
    for (int q = 0; q < median_tally::buckets; ++q) s.bucket[q] = a.bucket[q] + b.bucket[q];
    return s;
  }
};
struct tally_at {
  tile_distance dist;
  std::uint64_t lo, hi;
  int shift;
  CKA_HD median_tally operator()(std::int64_t k) const {
    median_tally t;
    if (dist.diagonal) {  // a diagonal tile's pairs i < j only
      const flat_index f = divide(k, dist.h);
      if (f.r >= f.q) return t;
    }
    const double v = dist(k);
    if (!(v - v == 0.0)) {
      t.bad = 1;
      return t;
    }
    const std::uint64_t u = distance_key(v);
    t.zeros = v == 0.0;
    if (u < lo) {
      t.below = 1;
    } else if (u <= hi) {
      t.bucket[(u - lo) >> shift] = 1;
    }
    return t;
  }
};
/// Whether the pair at flat index k is a distinct pair whose distance lies in [lo, hi] (collect pass).
struct in_bracket {
  tile_distance dist;
  std::uint64_t lo, hi;
  CKA_HD bool operator()(std::int64_t k) const {
    if (dist.diagonal) {
      const flat_index f = divide(k, dist.h);
      if (f.r >= f.q) return false;
    }
    const std::uint64_t u = distance_key(dist(k));
    return u >= lo && u <= hi;
  }
};

/// The squared distance of a sampled pair, from the features (the sample only brackets; counting decides).
struct sampled_distance {
  const double* z;
  std::int64_t n, d;
  std::uint64_t seed;
  CKA_HD double operator()(std::int64_t s) const {
    // splitmix64 of the draw's index gives a pair i ≠ j
    std::uint64_t x = seed + std::uint64_t(s) * 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    const std::uint64_t nn = std::uint64_t(n);
    const std::int64_t i = std::int64_t((x >> 32) % nn);
    std::int64_t j = std::int64_t((x & 0xFFFFFFFFull) % (nn - 1));
    if (j >= i) ++j;
    double v = 0;
    for (std::int64_t c = 0; c < d; ++c) {
      const double e = z[c * n + i] - z[c * n + j];
      v += e * e;
    }
    return v;
  }
};

/// Whether a sampled distance is an exact zero (their count, for the nonzero rule's bracket).
struct zero_at {
  const double* p;
  CKA_HD std::uint64_t operator()(std::int64_t k) const { return p[k] == 0.0; }
};
struct add_counts {
  CKA_HD std::uint64_t operator()(std::uint64_t a, std::uint64_t b) const { return a + b; }
};

/// The distances of an engine's tiles of the rows t as a select_median source; buf holds one tile.
template <class Engine>
struct device_distance_source {
  using value_type = double;
  static constexpr std::uint64_t buckets = median_tally::buckets;
  static constexpr bool exact_keys = true;

  const Engine& e;
  const tile_rows& t;
  double* buf;
  std::uint64_t cap;
  std::optional<decltype(std::declval<const Engine&>().be.scratch(0))> sample{};
  std::uint64_t drawn = 0;

  cka::detail::key_range span() const { return {}; }

  /// pairs/64 pair distances (2^12 … plan.draws) from the features, sorted, beyond plan.sample_above pairs.
  std::uint64_t draw_sample() {
    const std::uint64_t n = std::uint64_t(t.n), pairs = n * (n - 1) / 2;
    if (pairs <= e.plan.sample_above || e.plan.draws == 0) return 0;
    drawn = std::min(e.plan.draws, std::max<std::uint64_t>(pairs / 64, std::uint64_t(1) << 12));
    sample.emplace(e.be.scratch(std::size_t(drawn)));
    e.be.transform(std::int64_t(drawn), sample->get(), sampled_distance{t.z, t.n, t.d, 0x2545F4914F6CDD1Dull});
    e.be.sort(sample->get(), std::int64_t(drawn));
    return drawn;
  }
  std::uint64_t sample_zeros() {
    return e.be.reduce(std::int64_t(drawn), zero_at{sample->get()}, std::uint64_t(0), add_counts{});
  }
  double sample_value(std::uint64_t k) {
    double v = 0;
    e.be.to_host(&v, sample->get() + std::int64_t(k), 1);
    return v;
  }

  /// One counting pass over every distinct pair (tile after tile); throws on an overflowed distance.
  cka::detail::key_counts count(const cka::detail::key_range& r, int shift, bool) const {
    median_tally sum;
    for_upper_tiles(t.n, e.plan.tile, [&](const tile_place& p) {
      e.product(t, p, buf);
      sum = add_tally{}(sum, e.be.reduce(p.h * p.w, tally_at{e.distances(t, p, buf), r.lo, r.hi, shift}, median_tally{}, add_tally{}));
    });
    if (sum.bad > 0) fail_tile_overflow(e.be.fn, true);
    cka::detail::key_counts c;
    c.below = sum.below;
    c.zeros = sum.zeros;
    c.buckets.assign(sum.bucket, sum.bucket + buckets);
    return c;
  }

  /// The values in r (`inside` of them, `before` values under r) collected and sorted on the device; the
  /// two at ranks want read back.
  std::pair<double, double> pick(const cka::detail::key_range& r, std::uint64_t before, std::uint64_t inside,
                                 cka::detail::rank_pair want) const {
    auto values = e.be.scratch(std::size_t(inside));
    double* out = values.get();
    std::int64_t at = 0;
    for_upper_tiles(t.n, e.plan.tile, [&](const tile_place& p) {
      e.product(t, p, buf);
      const tile_distance dist = e.distances(t, p, buf);
      at += e.be.copy_if(p.h * p.w, dist, out + at, in_bracket{dist, r.lo, r.hi});
    });
    if (std::uint64_t(at) != inside || want.first < before || want.last - before >= inside) {
      cka::detail::fail_backend(e.be.fn, "internal error: a median rank fell outside the collected values");
    }
    e.be.sort(out, at);
    double v[2] = {0, 0};
    e.be.to_host(&v[1], out + std::int64_t(want.last - before), 1);
    if (want.first == want.last) return {v[1], v[1]};
    e.be.to_host(&v[0], out + std::int64_t(want.first - before), 1);
    return {v[0], v[1]};
  }
};

/// The exact median of the squared distances between the rows of t under `rule` (NumPy's definition, as
/// median_squared_distance gives it), on the engine's context; one tile of scratch.
template <class Engine>
double tile_median(const Engine& e, const tile_rows& t, median_rule rule) {
  auto buffer = e.be.scratch(std::size_t(e.plan.tile * e.plan.tile));
  device_distance_source<Engine> src{e, t, buffer.get(), e.plan.cap};
  return cka::detail::select_median(e.be.fn, std::uint64_t(t.n), rule, src);
}

}  // namespace cka::device::detail
