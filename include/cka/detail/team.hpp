#pragma once
// Private: how the tile engine uses a team (cka/team.hpp) — the share of the tiles a member computes, a
// step run together, sums and gathers that are no-ops alone. Nothing here depends on MPI.

#include <cka/team.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <vector>

namespace cka {
namespace detail {

/// Which upper tiles (I ≤ J) of an nt × nt grid a member computes: the tiles in row-major order dealt
/// round-robin, so that every member gets about nt(nt + 1)/(2·size) of them from every part of the matrix.
struct tile_share {
  int rank = 0, size = 1;
  static tile_share of(const team* t) { return t ? tile_share{t->rank(), t->size()} : tile_share{}; }
  bool owns(std::int64_t ti, std::int64_t tj, std::int64_t nt) const {
    if (size == 1) return true;
    const std::int64_t index = ti * nt - ti * (ti - 1) / 2 + (tj - ti);
    return index % size == rank;
  }
};

/// Runs this member's part of a step, then the agreement that starts the step's collectives: on a team a
/// failure anywhere is thrown everywhere; alone, the part's exception simply propagates.
template <class F>
void together(const team* t, F&& part) {
  if (t == nullptr) {
    part();
    return;
  }
  std::exception_ptr error;
  try {
    part();
  } catch (...) {
    error = std::current_exception();
  }
  t->agree(error);
}

/// Sums over the team (nothing alone).
inline void team_sum(const team* t, double* values, std::size_t count) {
  if (t != nullptr && t->size() > 1) t->sum(values, count);
}
inline void team_sum(const team* t, std::uint64_t* values, std::size_t count) {
  if (t != nullptr && t->size() > 1) t->sum(values, count);
}
/// Every member's values in rank order (this member's alone).
inline std::vector<double> team_gather(const team* t, std::vector<double> mine) {
  return t != nullptr && t->size() > 1 ? t->gather(mine) : mine;
}

}  // namespace detail
}  // namespace cka
