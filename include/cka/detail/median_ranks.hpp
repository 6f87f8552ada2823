#pragma once
// Private: where the middle values of a median of squared distances sit among the sorted distinct pairs,
// and NumPy's midpoint of the two — the rules every median route (the dense matrix, the host tiles, the
// device) shares. Free of Eigen, so that CUDA translation units can use it.

#include <cka/median_rule.hpp>

#include <cstdint>

namespace cka::detail {

/// The 0-based ranks, among the n(n−1)/2 off-diagonal squared distances sorted ascending, of the one or two
/// middle values of the median under `rule`, given how many of them are exactly zero (only `nonzero` needs
/// it); −1 for a middle value that is a diagonal zero (all_pairs: the sorted list is n zeros followed by
/// every off-diagonal value twice). Both −1: the median is 0.
struct middle_ranks {
  std::int64_t lo, hi;
};
inline middle_ranks median_ranks(std::uint64_t n, median_rule rule, std::uint64_t zeros) {
  const std::uint64_t pairs = n * (n - 1) / 2;
  const std::uint64_t count = rule == median_rule::all_pairs ? n * n : rule == median_rule::nonzero ? pairs - zeros : pairs;
  auto position = [&](std::uint64_t k) -> std::int64_t {
    if (rule == median_rule::all_pairs) return k < n ? -1 : std::int64_t((k - n) / 2);
    return std::int64_t(rule == median_rule::nonzero ? k + zeros : k);
  };
  return {position((count - 1) / 2), position(count / 2)};
}

/// NumPy's mean of the two middle values, halved first only where the sum would overflow.
template <class T>
T median_midpoint(const T& lower, const T& upper) {
  const T mid = T((lower + upper) / 2);
  return mid - mid == T(0) ? mid : T(lower / 2 + upper / 2);
}

}  // namespace cka::detail
