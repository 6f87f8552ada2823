#pragma once
/// \file team.hpp
/// The seam between the tile engine and a group of processes that share one computation: an abstract
/// team (its rank and size, elementwise sums, a gather, an agreement on failure). <cka/mpi.hpp> implements
/// it over an MPI communicator. A vocabulary header: it includes nothing of cka's, so private code may
/// use it.
///
/// The protocol: every collective step of the engine starts with agree(error), where error is what this
/// member's own part of the step threw (or nothing). So a member that fails anywhere — in its tiles, or in
/// a caller's code between steps — only has to call agree(its error) once to end the next step on every
/// member with the same error, instead of leaving the others waiting in a sum.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <vector>

namespace cka {

/// A group of processes that compute one result together: pass one (e.g. cka::mpi::team) as
/// compute_options::processes. Implement it over any transport by providing these members.
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

}  // namespace cka
