#pragma once
/// \file compute.hpp
/// How much memory a computation may hold, which decides between the in-memory and the tiled routes.

#include <cka/team.hpp>

#include <cstddef>

#include <unistd.h>

namespace cka {

/// Options of the functions that can run in memory or in tiles (kernel_cka).
/// `max_bytes` bounds the working memory beyond the inputs: a route that would hold more is not taken.
/// 0 (the default) means half of the machine's physical memory.
/// `processes`, when set, shares the tile engine (kernel_cka with RBF, polynomial, linear or generic
/// kernels; mmd2 and similarity_matrix with RBF, polynomial or generic kernels) among the members of a team
/// (e.g. cka::mpi::team over an MPI communicator): every member calls the same function with the same
/// inputs, computes its share of the tiles, and receives the same result. The budget is then per member
/// (each stores only its own tiles). Other routes compute in full on every member.
struct compute_options {
  std::size_t max_bytes = 0;
  const team* processes = nullptr;
};

namespace detail {

/// The number of processes sharing a computation under `o` (1 without a team).
inline int members_of(const compute_options& o) { return o.processes ? o.processes->size() : 1; }

/// The budget of `o` in bytes.
inline double memory_budget(const compute_options& o) {
  if (o.max_bytes > 0) return double(o.max_bytes);
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? 0.5 * double(pages) * double(page) : double(std::size_t(1) << 32);
}

}  // namespace detail
}  // namespace cka
