#pragma once
// Private: the seam between the tile engine and a group of processes that share one computation. The
// engine sees an abstract team (its rank and size, elementwise sums, a gather and an agreement on
// failure); <cka/mpi.hpp> implements it over an MPI communicator, and a user can implement it over any
// other transport. Nothing here depends on MPI.
//
// The protocol: every collective step of the engine starts with agree(error), where error is what this
// member's own part of the step threw (or nothing). So a member that fails anywhere — in its tiles, or in
// a caller's code between steps — only has to call agree(its error) once to end the next step on every
// member with the same error, instead of leaving the others waiting in a sum.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <vector>

namespace cka {
namespace detail {

/// A group of processes that compute one result together (see compute_options::processes).
class team {
 public:
  virtual ~team() = default;
  /// This member's number, 0 … size() − 1, and the number of members.
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Elementwise sums over all members, in place: every member passes `count` values and receives the sums.
  virtual void sum(double* values, std::size_t count) const = 0;
  virtual void sum(std::uint64_t* values, std::size_t count) const = 0;
  /// Every member's values, concatenated in rank order, on every member.
  virtual std::vector<double> gather(const std::vector<double>& mine) const = 0;
  /// Collective: returns if no member failed; otherwise every member throws the error of the lowest failing
  /// rank (that member rethrows its own; the others an exception of the same kind with its message).
  virtual void agree(std::exception_ptr error) const = 0;
};

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

/// A group of processes sharing one computation: pass one (e.g. cka::mpi::team) as
/// compute_options::processes. Implementations provide rank, size, sums, gather and agree.
using team = detail::team;

}  // namespace cka
