#pragma once
// Private: the one driver behind every exact median of squared distances — the dense matrix
// (median_squared_distance), the host tiles (tiled_median) and the device tiles (tile_median). It brackets
// the middle values with a sample, counts the values by bucket of their bit patterns, narrows to the
// buckets of the middle ranks, collects what is left and takes NumPy's midpoint. A source supplies the
// passes over the distances (how it counts, collects and samples); the driver decides which pass comes
// next. Free of Eigen: the device backend uses it too.

#include <cka/detail/fail.hpp>
#include <cka/detail/host_device.hpp>
#include <cka/detail/median_ranks.hpp>
#include <cka/median_rule.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <utility>
#include <vector>

namespace cka::detail {

/// The selection key of a squared distance v ≥ 0: its bit pattern, which orders like the values for
/// non-negative doubles (−0 becomes +0 first).
CKA_HD inline std::uint64_t distance_key(double v) {
  v += 0.0;
#if defined(__CUDA_ARCH__)
  return std::uint64_t(__double_as_longlong(v));
#else
  std::uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
#endif
}
/// The double whose key is u.
inline double key_value(std::uint64_t u) {
  double v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}
/// The key of the largest double: keys 0 … largest_key are exactly the finite non-negative doubles.
constexpr std::uint64_t largest_key = 0x7FEFFFFFFFFFFFFFull;

/// A closed range of keys (every finite non-negative double by default).
struct key_range {
  std::uint64_t lo = 0, hi = largest_key;
  double lo_value() const { return key_value(lo); }
  double hi_value() const { return key_value(hi); }
  bool operator==(const key_range& o) const { return lo == o.lo && hi == o.hi; }
};

/// The smallest shift that splits r into at most `buckets` buckets of 2^shift keys.
inline int bucket_shift(const key_range& r, std::uint64_t buckets) {
  int shift = 0;
  while (((r.hi - r.lo) >> shift) >= buckets) ++shift;
  return shift;
}

/// What one counting pass over the n(n−1)/2 distinct pairs found, for a range r split at `shift`: the
/// values below r, the exact zeros (all of them), and the values in r by bucket (bucket q holds the keys
/// r.lo + q·2^shift … r.lo + (q+1)·2^shift − 1). held: the source kept r's values, so picking from them
/// takes no further pass.
struct key_counts {
  std::uint64_t below = 0, zeros = 0;
  std::vector<std::uint64_t> buckets;
  bool held = false;
  std::uint64_t inside() const {
    std::uint64_t s = 0;
    for (std::uint64_t c : buckets) s += c;
    return s;
  }
};

/// Two 0-based ranks among the distinct pairs sorted ascending, first ≤ last.
struct rank_pair {
  std::uint64_t first, last;
};

/// For sources that never sample (the dense matrix): draw_sample() says so.
struct no_sample {
  std::uint64_t draw_sample() { return 0; }
  std::uint64_t sample_zeros() const { return 0; }
  double sample_value(std::uint64_t) { return 0; }
};

/// The values at ranks want.first and want.last of the ones collected in v, `before` values ranking below
/// all of them (v is reordered). Throws cka::backend_error if v is too short (passes that disagreed).
template <class V>
std::pair<V, V> order_values(const char* fn, std::vector<V>& v, std::uint64_t before, rank_pair want) {
  if (want.first < before || want.last - before >= v.size()) {
    fail_backend(fn, "internal error: a median rank fell outside the collected values");
  }
  const auto last = v.begin() + std::ptrdiff_t(want.last - before);
  std::nth_element(v.begin(), last, v.end());
  if (want.first == want.last) return {*last, *last};
  const auto first = v.begin() + std::ptrdiff_t(want.first - before);
  std::nth_element(v.begin(), first, last);
  return {*first, *last};
}

/// A Source for select_median, with `value_type`, the bucket count `buckets` (a power of two), `cap` (the
/// most values one collection may hold), `exact_keys` (a key gives its value), and
///   key_range span()                        the keys of every value (or a range holding them all)
///   key_counts count(r, shift, hold)        one counting pass; hold: r is a sampled bracket, worth keeping
///   pair<V, V> pick(r, before, inside, w)   the values at ranks w among the `inside` values in r
///   draw_sample(), sample_zeros(), sample_value(k)   a sample of pair distances: its size (0: none), its
///                                           zeros, its k-th smallest value
/// The driver: the values at ranks `want`, known to lie in r whose counts are c.
template <class Source>
std::pair<typename Source::value_type, typename Source::value_type> select_ranks(const char* fn, Source& src,
                                                                                rank_pair want, key_range r,
                                                                                key_counts c) {
  for (;;) {
    if (want.first < c.below || want.last - c.below >= c.inside()) {
      fail_backend(fn, "internal error: a median rank fell outside its bracket");
    }
    const int shift = bucket_shift(r, src.buckets);
    // The buckets of the two ranks, and the values before the first of them.
    std::uint64_t before = c.below;
    std::size_t q = 0;
    while (before + c.buckets[q] <= want.first) before += c.buckets[q++];
    std::size_t q_last = q;
    std::uint64_t through = before + c.buckets[q];
    while (through <= want.last) through += c.buckets[++q_last];
    if (shift == 0 && Source::exact_keys) {
      using V = typename Source::value_type;
      return {V(key_value(r.lo + q)), V(key_value(r.lo + q_last))};
    }
    auto bucket = [&](std::size_t from, std::size_t to) {
      return key_range{r.lo + (std::uint64_t(from) << shift),
                       std::min(r.hi, r.lo + ((std::uint64_t(to) + 1) << shift) - 1)};
    };
    if (through - before <= src.cap || shift == 0) return src.pick(bucket(q, q_last), before, through - before, want);
    if (q != q_last) {  // two buckets too full to collect together: each rank in its own
      auto one = [&](std::uint64_t rank, std::size_t b) {
        const key_range s = bucket(b, b);
        return select_ranks(fn, src, {rank, rank}, s, src.count(s, bucket_shift(s, src.buckets), false)).second;
      };
      return {one(want.first, q), one(want.last, q_last)};
    }
    r = bucket(q, q);
    c = src.count(r, bucket_shift(r, src.buckets), false);
  }
}

/// How far sample_bracket widens the middle of a sample of `population` values on each side, in sample
/// ranks: 5 standard errors of a median's rank, and 2.
inline double bracket_spread(double population) { return 5 * std::sqrt(0.25 * population) + 2; }

/// The values such a bracket is expected to hold among `pairs`, from `draws` sampled pairs:
/// pairs·2·bracket_spread(draws)/draws. A source keeps them in its counting pass where this is under cap/2.
inline double expected_in_bracket(std::uint64_t pairs, std::uint64_t draws) {
  return double(pairs) * 2 * bracket_spread(double(draws)) / double(draws);
}

/// A bracket of the middle values from the source's sample: its quantiles at the middle ranks' fractions
/// (the nonzero values' middle for `nonzero`), widened by 5 standard errors. False without a sample, or
/// if it gave no finite bracket.
template <class Source>
bool sample_bracket(std::uint64_t n, median_rule rule, Source& src, key_range& r) {
  const std::uint64_t m = src.draw_sample();
  if (m < 2) return false;
  const std::uint64_t pairs = n * (n - 1) / 2;
  const std::uint64_t zeros = rule == median_rule::nonzero ? src.sample_zeros() : 0;
  const double population = double(m - zeros);
  if (population < 2) return false;
  const middle_ranks guess = median_ranks(n, rule, 0);
  auto fraction = [&](std::int64_t rank) {
    return rule == median_rule::nonzero ? 0.5 : double(std::max<std::int64_t>(rank, 0)) / double(pairs);
  };
  const double spread = bracket_spread(population);
  const double at_lo = std::floor(double(zeros) + fraction(guess.lo) * population - spread);
  const double at_hi = std::ceil(double(zeros) + fraction(guess.hi) * population + spread);
  const double lo = at_lo < 0 ? 0.0 : src.sample_value(std::uint64_t(at_lo));
  const bool open = at_hi >= double(m);
  const double hi = open ? 0.0 : src.sample_value(std::uint64_t(at_hi));
  if (!(lo - lo == 0.0) || !(hi - hi == 0.0) || lo < 0 || hi < 0) return false;
  r = key_range{distance_key(lo), open ? largest_key : distance_key(hi)};
  return true;
}

/// The exact median of the n(n−1)/2 distinct squared distances of `src` under `rule` (NumPy's, as
/// median_squared_distance defines it). Passes: with a sample that brackets the middle values, one count
/// (which may keep the bracket's values) and at most one collection; otherwise each count narrows the
/// middle ranks to 1/buckets of the keys until they can be collected (at most `cap` values) or are one
/// key. Every pass's results are the same on every member of a team (the source sums them), so all select
/// the same value.
template <class Source>
typename Source::value_type select_median(const char* fn, std::uint64_t n, median_rule rule, Source& src) {
  using V = typename Source::value_type;
  const std::uint64_t pairs = n * (n - 1) / 2;
  key_range r = src.span();
  const bool sampled = sample_bracket(n, rule, src, r);
  key_counts c = src.count(r, bucket_shift(r, src.buckets), sampled);
  if (rule == median_rule::nonzero && c.zeros == pairs) return V(0);
  const middle_ranks m = median_ranks(n, rule, c.zeros);
  if (m.hi < 0) return V(0);
  const rank_pair want{std::uint64_t(m.lo < 0 ? m.hi : m.lo), std::uint64_t(m.hi)};
  std::pair<V, V> v;
  if (want.first < c.below || want.last - c.below >= c.inside()) {  // the sample missed: every key
    if (!sampled) fail_backend(fn, "internal error: a median rank fell outside the counted values");
    r = src.span();
    c = src.count(r, bucket_shift(r, src.buckets), false);
    v = select_ranks(fn, src, want, r, c);
  } else if (sampled && (c.held || c.inside() <= src.cap)) {
    v = src.pick(r, c.below, c.inside(), want);
  } else {
    v = select_ranks(fn, src, want, r, c);
  }
  if (m.lo == m.hi) return v.second;
  return median_midpoint(m.lo < 0 ? V(0) : v.first, v.second);
}

}  // namespace cka::detail
