#pragma once
// Private: reproducible random permutations. Permutation k of a seeded family depends only on (seed, k) —
// not on the thread that draws it or the standard library — so a permutation test gives the same p-value
// with any thread count, compiler and platform.

#include <cstdint>
#include <numeric>
#include <vector>

namespace cka::detail {

__extension__ typedef unsigned __int128 uint128;  // GCC and Clang; __extension__ keeps -Wpedantic quiet

/// SplitMix64 (Steele, Lea and Flood 2014): a 64-bit generator whose stream is fixed by its state.
struct splitmix64 {
  std::uint64_t state;
  std::uint64_t operator()() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, bound), bound ≥ 1, without bias (Lemire's multiply-and-reject).
  std::uint64_t below(std::uint64_t bound) {
    uint128 m = static_cast<uint128>((*this)()) * bound;
    std::uint64_t low = static_cast<std::uint64_t>(m);
    if (low < bound) {
      const std::uint64_t threshold = (0 - bound) % bound;
      while (low < threshold) {
        m = static_cast<uint128>((*this)()) * bound;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }
};

/// Writes permutation k of the family `seed` of {0, …, n−1} into perm (Fisher–Yates).
template <class Index>
void seeded_permutation(std::uint64_t seed, std::uint64_t k, std::vector<Index>& perm) {
  const std::size_t n = perm.size();
  std::iota(perm.begin(), perm.end(), Index(0));
  splitmix64 g{seed ^ (0xD1B54A32D192ED03ull * (k + 1))};
  g();  // decorrelate neighbouring k
  for (std::size_t i = n; i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(g.below(i));
    std::swap(perm[i - 1], perm[j]);
  }
}

}  // namespace cka::detail
