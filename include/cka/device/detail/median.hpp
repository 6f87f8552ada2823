#pragma once
// Private: the exact median of the squared distances between the rows of Z on the device tile engine
// (tiles.hpp) — the bandwidth of a median-rule RBF kernel, equal to median_squared_distance's bit for bit:
// select_median (cka/detail/select.hpp) over a source whose counting passes are one reduction per tile
// (16 buckets of the keys; each item of it counts plan.chunk values in registers, in 32 bits) left in the
// context's memory and one reduction of the tiles' tallies read back, whose collection is one launch per
// tile (each value in the bracket takes the next slot of a counter), a read of the counter and a sort,
// and whose sample (pairs/64 pair distances, 2^12 … plan.draws, beyond plan.sample_above pairs) is drawn
// and sorted on the device. The counting pass over a sampled bracket also collects the bracket's values
// where they are expected to be few (as the host's tiles do), in the same reductions, so one pass of tile
// products, each distance formed once, usually decides. Read-backs per counting pass and per collection:
// one or two, and two, whatever the number of tiles.

#include <cka/device/detail/tiles.hpp>
#include <cka/detail/select.hpp>
#include <cka/median_rule.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>

namespace cka::device::detail {

using cka::detail::distance_key;

/// A tally of the distinct pairs i < j in a counting pass: values below the range's first key, exact
/// zeros, non-finite values, and 16 buckets of the keys in [lo, hi] ((key − lo) >> shift). Counts of type C:
/// 32 bits within one tile (fewer than 2³² pairs), 64 bits over the tiles.
template <class C>
struct tally_counts {
  static constexpr int buckets = 16;
  C below = 0, zeros = 0, bad = 0;
  C bucket[buckets] = {};
  C pad = 0;  // 20 counts: a whole number of doubles at either width
};
using median_tally = tally_counts<std::uint64_t>;
using tile_tally_counts = tally_counts<std::uint32_t>;
struct add_tally {
  template <class C>
  CKA_HD tally_counts<C> operator()(const tally_counts<C>& a, const tally_counts<C>& b) const {
    tally_counts<C> s;
    s.below = a.below + b.below;
    s.zeros = a.zeros + b.zeros;
    s.bad = a.bad + b.bad;
    for (int q = 0; q < tally_counts<C>::buckets; ++q) s.bucket[q] = a.bucket[q] + b.bucket[q];
    return s;
  }
};
/// The tiles' 32-bit tallies (in the context's memory) as a sequence of 64-bit ones to reduce.
struct tile_tally {
  const tile_tally_counts* tiles;
  CKA_HD median_tally operator()(std::int64_t t) const {
    const tile_tally_counts& a = tiles[t];
    median_tally s;
    s.below = a.below;
    s.zeros = a.zeros;
    s.bad = a.bad;
    for (int q = 0; q < median_tally::buckets; ++q) s.bucket[q] = a.bucket[q];
    return s;
  }
};
/// The value of *counter before adding one to it, atomically on every system (threads of a GPU or of
/// OpenMP take distinct values).
CKA_HD inline unsigned long long take_slot(unsigned long long* counter) {
#if defined(__CUDA_ARCH__)
  return atomicAdd(counter, 1ull);
#else
  return __atomic_fetch_add(counter, 1ull, __ATOMIC_RELAXED);
#endif
}
struct zero_counter {
  unsigned long long* counter;
  CKA_HD void operator()(std::int64_t) const { *counter = 0; }
};

/// Where a pass puts the distances of a bracket [lo, hi] of keys: each takes the next slot of out
/// (counter: the slots taken; none at or beyond capacity is written). The order of the slots varies with
/// the threads; the values are sorted after. No collection where out is null.
struct bracket_slots {
  double* out = nullptr;
  unsigned long long* counter = nullptr;
  std::uint64_t capacity = 0;
  CKA_HD void put(double v) const {
    const unsigned long long at = take_slot(counter);
    if (at < capacity) out[at] = v;
  }
};

/// The tally of one tile's pairs, item by item: item t counts the flat indices t, t + items, t + 2·items, …
/// below size (h·w), in registers (consecutive items read consecutive values: coalesced on a GPU), so the
/// reduction combines one tally per item rather than one per value; it steps (i, j) without dividing. A
/// value in [lo, hi] also goes to `keep` where it collects (the counting pass over a sampled bracket): the
/// reduction calls the item once on every system, and the slots taken must equal the count (median.hpp's
/// count() checks).
struct tally_items {
  tile_distance dist;
  std::uint64_t lo, hi;
  int shift;
  std::int64_t items, size;
  bracket_slots keep;
  CKA_HD tile_tally_counts operator()(std::int64_t item) const {
    tile_tally_counts t;
    if (item >= size) return t;
    const std::int64_t h = dist.h;
    const flat_index start = divide(item, h), step = divide(items, h);
    std::int64_t i = start.r, j = start.q;
    for (std::int64_t k = item; k < size; k += items) {
      if (!dist.diagonal || i < j) {  // a diagonal tile's pairs i < j only
        const double v = dist.at(i, j);
        if (!(v - v == 0.0)) {
          ++t.bad;
        } else {
          const std::uint64_t u = distance_key(v);
          t.zeros += v == 0.0;
          if (u < lo) {
            ++t.below;
          } else if (u <= hi) {
            ++t.bucket[(u - lo) >> shift];
            if (keep.out != nullptr) keep.put(v);
          }
        }
      }
      i += step.r;
      j += step.q;
      if (i >= h) {
        i -= h;
        ++j;
      }
    }
    return t;
  }
};

/// The collect pass over one tile: a distinct pair whose distance lies in [lo, hi] goes to `keep`.
struct collect_bracket {
  tile_distance dist;
  std::uint64_t lo, hi;
  bracket_slots keep;
  CKA_HD void operator()(std::int64_t k) const {
    const flat_index f = divide(k, dist.h);
    if (dist.diagonal && f.r >= f.q) return;
    const double v = dist.at(f.r, f.q);
    const std::uint64_t u = distance_key(v);
    if (u < lo || u > hi) return;
    keep.put(v);
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
  using scratch_t = decltype(std::declval<const Engine&>().be.scratch(0));
  std::optional<scratch_t> sample{}, held{};
  std::uint64_t drawn = 0;
  cka::detail::key_range held_range{};  // held, where present, holds all of its values, in no order

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

  /// One counting pass over every distinct pair (tile after tile: each tile's tally left in the context's
  /// memory, then their sum read back once); throws on an overflowed distance. hold (r is a sampled
  /// bracket): where r's values are expected to number under cap/2 (expected_in_bracket) the tallies also
  /// collect them (room for twice that; the counter read back), and they are held if they all fit.
  cka::detail::key_counts count(const cka::detail::key_range& r, int shift, bool hold) {
    static_assert(sizeof(tile_tally_counts) % sizeof(double) == 0 && alignof(tile_tally_counts) <= alignof(double),
                  "tallies are kept in scratch doubles");
    if (e.plan.tile > 65535) cka::detail::fail_backend(e.be.fn, "internal error: a tile's pairs exceed a 32-bit tally");
    constexpr std::size_t words = sizeof(tile_tally_counts) / sizeof(double);
    auto store = e.be.scratch(std::size_t(upper_tiles(t.n, e.plan.tile)) * words);
    tile_tally_counts* tallies = reinterpret_cast<tile_tally_counts*>(store.get());
    const std::int64_t per = std::max<std::int64_t>(1, e.plan.chunk);
    held.reset();
    std::uint64_t room = 0;
    unsigned long long* counter = nullptr;
    if (hold && drawn > 0) {
      const double expected = cka::detail::expected_in_bracket(std::uint64_t(t.n) * std::uint64_t(t.n - 1) / 2, drawn);
      if (expected < 0.5 * double(cap)) {
        room = std::uint64_t(std::min(double(cap), 2 * expected + 4096));
        held.emplace(open_collection(room, counter));
      }
    }
    std::int64_t at = 0;
    for_upper_tiles(t.n, e.plan.tile, [&](const tile_place& p) {
      e.product(t, p, buf);
      const tile_distance dist = e.distances(t, p, buf);
      const std::int64_t size = p.h * p.w, items = (size + per - 1) / per;
      const bracket_slots keep = counter != nullptr ? bracket_slots{held->get(), counter, room} : bracket_slots{};
      e.be.reduce_into(items, tally_items{dist, r.lo, r.hi, shift, items, size, keep}, tile_tally_counts{}, add_tally{},
                       tallies + at++);
    });
    const median_tally sum = e.be.reduce(at, tile_tally{tallies}, median_tally{}, add_tally{});
    if (sum.bad > 0) fail_tile_overflow(e.be.fn, true);
    cka::detail::key_counts c;
    c.below = sum.below;
    c.zeros = sum.zeros;
    c.buckets.assign(sum.bucket, sum.bucket + buckets);
    if (counter != nullptr) {
      const std::uint64_t taken = read_counter(held->get() + room);
      if (taken != c.inside()) cka::detail::fail_backend(e.be.fn, "internal error: the held values are not the counted ones");
      if (taken > room) held.reset();
      c.held = held.has_value();
      held_range = r;
    }
    return c;
  }

  /// Scratch for a collection of up to `room` values, then its counter (set to zero: one launch).
  scratch_t open_collection(std::uint64_t room, unsigned long long*& counter) const {
    scratch_t values = e.be.scratch(std::size_t(room) + 1);
    counter = reinterpret_cast<unsigned long long*>(values.get() + room);
    e.be.launch(1, zero_counter{counter});
    return values;
  }

  /// A counter at p (the slot after a collection's values) read back: one synchronisation.
  std::uint64_t read_counter(const double* p) const {
    double slot = 0;
    e.be.to_host(&slot, p, 1);
    unsigned long long taken = 0;
    std::memcpy(&taken, &slot, sizeof taken);
    return std::uint64_t(taken);
  }

  /// The values in r (`inside` of them, `before` values under r) collected and sorted on the device; the
  /// two at ranks want read back (one read where they are neighbours). The number collected is read back
  /// and must be `inside`.
  std::pair<double, double> pick(const cka::detail::key_range& r, std::uint64_t before, std::uint64_t inside,
                                 cka::detail::rank_pair want) {
    if (want.first < before || want.last < want.first || want.last - before >= inside) {
      cka::detail::fail_backend(e.be.fn, "internal error: a median rank fell outside the collected values");
    }
    std::optional<scratch_t> collected;
    double* out = nullptr;
    if (held && held_range == r) {  // the counting pass kept them: no pass over the tiles
      collected.emplace(std::move(*held));
      held.reset();
      out = collected->get();
    } else {
      unsigned long long* counter = nullptr;
      collected.emplace(open_collection(inside, counter));
      out = collected->get();
      for_upper_tiles(t.n, e.plan.tile, [&](const tile_place& p) {
        e.product(t, p, buf);
        e.be.launch(p.h * p.w, collect_bracket{e.distances(t, p, buf), r.lo, r.hi, bracket_slots{out, counter, inside}});
      });
      if (read_counter(out + inside) != inside) {
        cka::detail::fail_backend(e.be.fn, "internal error: the collected values are not the counted ones");
      }
    }
    e.be.sort(out, std::int64_t(inside));
    const std::int64_t first = std::int64_t(want.first - before), last = std::int64_t(want.last - before);
    double v[2] = {0, 0};
    if (last - first <= 1) {
      e.be.to_host(v, out + first, last - first + 1);
      return {v[0], v[last - first]};
    }
    e.be.to_host(&v[0], out + first, 1);
    e.be.to_host(&v[1], out + last, 1);
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
