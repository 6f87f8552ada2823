#pragma once
// Private: the exact median of the squared distances between the rows of Z on the device tile engine
// (tiles.hpp) — the bandwidth of a median-rule RBF kernel, equal to median_squared_distance's bit for bit.
// Selection on the bit patterns of the distances (non-negative doubles order like their patterns): a
// counting pass tallies the values below a bracket, the exact zeros and 16 buckets of the bracket; if the
// bracket holds both middle ranks and at most `cap` values, one pass collects it and a sort picks them;
// otherwise each middle rank is narrowed to its bucket (16× per pass) until the bucket can be collected or
// is one bit pattern. Beyond `sample_above` pairs a sample of pairs/64 pair distances (2^12 … `draws`)
// brackets the middle first, so that the collected values are few (about 10/√draws of the pairs).

#include <cka/device/detail/tiles.hpp>
#include <cka/detail/median_ranks.hpp>
#include <cka/median_rule.hpp>


#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace cka::device::detail {

/// The bit pattern of a double (its order is the value's for non-negative doubles).
CKA_HD inline std::uint64_t bits_of(double v) {
#if defined(__CUDA_ARCH__)
  return std::uint64_t(__double_as_longlong(v));
#else
  std::uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
#endif
}
inline double double_of(std::uint64_t u) {
  double v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

/// The tally of one counting pass over the distinct pairs i < j: values below the bracket's first pattern,
/// exact zeros, non-finite values, and 16 buckets of patterns in [lo, hi] ((u − lo) >> shift).
struct median_tally {
  std::uint64_t below = 0, zeros = 0, bad = 0;
  std::uint64_t bucket[16] = {};
};
struct add_tally {
  CKA_HD median_tally operator()(const median_tally& a, const median_tally& b) const {
    median_tally s;
    s.below = a.below + b.below;
    s.zeros = a.zeros + b.zeros;
    s.bad = a.bad + b.bad;
    for (int q = 0; q < 16; ++q) s.bucket[q] = a.bucket[q] + b.bucket[q];
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
    const std::uint64_t u = bits_of(v);
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
    const std::uint64_t u = bits_of(dist(k));
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

/// The middle ranks of a median rule over n samples, given the count of zero distances.
struct rule_ranks {
  median_rule rule;
  std::uint64_t n;
  cka::detail::middle_ranks operator()(std::uint64_t zeros) const {
    if (rule == median_rule::nonzero && zeros == n * (n - 1) / 2) return {-1, -1};  // all coincide: 0
    return cka::detail::median_ranks(n, rule, zeros);
  }
};

/// The selection of the median over an engine's tiles of the rows t; buf holds one tile.
template <class Engine>
struct median_selection {
  const Engine& e;
  const tile_rows& t;
  double* buf;

  static std::uint64_t top_pattern() { return bits_of(1.7976931348623157e308); }
  static int shift_for(std::uint64_t lo, std::uint64_t hi) {
    int shift = 0;
    while (((hi - lo) >> shift) >= 16) ++shift;
    return shift;
  }
  static std::uint64_t total(const median_tally& c) {
    std::uint64_t inside = 0;
    for (int q = 0; q < 16; ++q) inside += c.bucket[q];
    return inside;
  }

  /// The median under ranks(zeros), the middle ranks among the distinct pairs.
  template <class Ranks>
  double run(Ranks&& ranks) const {
    const std::uint64_t n = std::uint64_t(t.n), pairs = n * (n - 1) / 2;
    std::uint64_t lo = 0, hi = top_pattern();
    bool sampled = false;
    if (pairs > e.plan.sample_above && e.plan.draws > 0) sampled = sample_bracket(ranks(0), pairs, lo, hi);
    const median_tally c = tally(lo, hi, shift_for(lo, hi));
    const auto r = ranks(c.zeros);
    if (r.hi < 0) return 0.0;
    const std::uint64_t inside = total(c);
    auto within = [&](std::int64_t w) { return w < 0 || (std::uint64_t(w) >= c.below && std::uint64_t(w) < c.below + inside); };
    if (within(r.lo) && within(r.hi) && inside <= e.plan.cap) {  // usual: one pass collects both middle values
      std::vector<double> v = collect(lo, hi, inside, c.below, {r.lo, r.hi});
      return r.lo == r.hi ? v[1] : cka::detail::median_midpoint(r.lo < 0 ? 0.0 : v[0], v[1]);
    }
    if (sampled && !(within(r.lo) && within(r.hi))) lo = 0, hi = top_pattern();  // the sample missed
    const double upper = select(std::uint64_t(r.hi), lo, hi);
    if (r.lo == r.hi) return upper;
    return cka::detail::median_midpoint(r.lo < 0 ? 0.0 : select(std::uint64_t(r.lo), lo, bits_of(upper)), upper);
  }

  /// Brackets the middle from a sample of pair distances: its quantiles around the middle rank, widened by
  /// 5 standard errors. False if the sample gave no finite bracket.
  template <class R>
  bool sample_bracket(const R& guess, std::uint64_t pairs, std::uint64_t& lo, std::uint64_t& hi) const {
    const std::uint64_t m = std::min(e.plan.draws, std::max<std::uint64_t>(pairs / 64, std::uint64_t(1) << 12));
    auto sample = e.be.scratch(std::size_t(m));
    e.be.transform(std::int64_t(m), sample.get(), sampled_distance{t.z, t.n, t.d, 0x2545F4914F6CDD1Dull});
    e.be.sort(sample.get(), std::int64_t(m));
    const double q = double(std::max<std::int64_t>(guess.hi, 0)) / double(pairs);
    const double spread = 5.0 * std::sqrt(double(m) * q * (1 - q)) + 1;
    const double at_lo = std::max(0.0, double(m) * q - spread), at_hi = std::min(double(m - 1), double(m) * q + spread);
    double vlo = 0, vhi = 0;
    e.be.to_host(&vlo, sample.get() + std::int64_t(at_lo), 1);
    e.be.to_host(&vhi, sample.get() + std::int64_t(at_hi), 1);
    if (!(vlo - vlo == 0.0) || !(vhi - vhi == 0.0)) return false;
    lo = bits_of(vlo > 0 ? vlo : 0.0);
    hi = bits_of(vhi);
    return true;
  }

  /// The value at one rank among the distinct pairs, known to lie in [lo, hi]: counting passes narrow the
  /// range to the rank's bucket (16× each) until it holds at most cap values (then one pass collects them)
  /// or a bucket is a single bit pattern (then the pattern is the value).
  double select(std::uint64_t rank, std::uint64_t lo, std::uint64_t hi) const {
    for (;;) {
      const int shift = shift_for(lo, hi);
      const median_tally c = tally(lo, hi, shift);
      const std::uint64_t inside = total(c);
      if (rank < c.below || rank >= c.below + inside) {
        cka::detail::fail_backend(e.be.fn, "internal error: a median rank fell outside its bracket");
      }
      if (inside <= e.plan.cap) return collect(lo, hi, inside, c.below, {std::int64_t(rank), std::int64_t(rank)})[1];
      std::uint64_t seen = c.below;
      int q = 0;
      while (rank >= seen + c.bucket[q]) seen += c.bucket[q++];
      if (shift == 0) return double_of(lo + std::uint64_t(q));
      const std::uint64_t new_lo = lo + (std::uint64_t(q) << shift);
      hi = std::min(hi, new_lo + ((std::uint64_t(1) << shift) - 1));
      lo = new_lo;
    }
  }

  /// One counting pass over every distinct pair (tile after tile); throws on an overflowed distance.
  median_tally tally(std::uint64_t lo, std::uint64_t hi, int shift) const {
    median_tally sum;
    for_upper_tiles(t.n, e.plan.tile, [&](const tile_place& p) {
      e.product(t, p, buf);
      sum = add_tally{}(sum, e.be.reduce(p.h * p.w, tally_at{e.distances(t, p, buf), lo, hi, shift}, median_tally{}, add_tally{}));
    });
    if (sum.bad > 0) fail_tile_overflow(e.be.fn, true);
    return sum;
  }

  /// The values in [lo, hi] (`inside` of them, `below` values under lo) collected and sorted; returns the
  /// values at ranks want[0] and want[1] (a negative rank gives 0).
  std::vector<double> collect(std::uint64_t lo, std::uint64_t hi, std::uint64_t inside, std::uint64_t below,
                              const std::int64_t (&want)[2]) const {
    auto values = e.be.scratch(std::size_t(inside));
    double* out = values.get();
    std::int64_t at = 0;
    for_upper_tiles(t.n, e.plan.tile, [&](const tile_place& p) {
      e.product(t, p, buf);
      const tile_distance dist = e.distances(t, p, buf);
      at += e.be.copy_if(p.h * p.w, dist, out + at, in_bracket{dist, lo, hi});
    });
    e.be.sort(out, at);
    std::vector<double> v(2, 0.0);
    for (int q = 0; q < 2; ++q)
      if (want[q] >= 0) e.be.to_host(&v[std::size_t(q)], out + (want[q] - std::int64_t(below)), 1);
    return v;
  }
};

/// The exact median of the squared distances between the rows of t under `rule` (NumPy's definition, as
/// median_squared_distance gives it), on the engine's context; one tile of scratch.
template <class Engine>
double tile_median(const Engine& e, const tile_rows& t, median_rule rule) {
  auto buffer = e.be.scratch(std::size_t(e.plan.tile * e.plan.tile));
  return median_selection<Engine>{e, t, buffer.get()}.run(rule_ranks{rule, std::uint64_t(t.n)});
}

}  // namespace cka::device::detail
