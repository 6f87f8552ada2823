#pragma once
// cka-similarity: the processes of a run — this one alone, or those mpirun or srun started — and what each
// may say (warnings come from rank 0 only).

#include "options.hpp"

#include <cka/team.hpp>

#ifdef CKA_TOOL_MPI
#include <cka/mpi.hpp>
#endif

#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace tool {

/// The processes of this run: this one alone, or those that mpirun or srun started (MPI is initialised
/// only under such a launcher, so that a plain run never touches MPI).
struct processes {
  int rank = 0, size = 1;
  const cka::team* team = nullptr;
#ifdef CKA_TOOL_MPI
  const cka::mpi::team* mpi = nullptr;
#endif
  bool speaker() const { return rank == 0; }
  /// Whether the processes have already agreed on a failure (its message is final: pass it on as it is).
  bool agreed_failure() const {
#ifdef CKA_TOOL_MPI
    return mpi != nullptr && mpi->failed();
#else
    return false;
#endif
  }
};
inline processes world;

inline void warn(const config& c, const std::string& message) {
  if (!c.quiet && world.speaker()) std::fprintf(stderr, "cka-similarity: warning: %s\n", message.c_str());
}

/// Physical memory in bytes (0 if unknown), divided among the processes of this run on this machine.
inline int processes_here = 1;
inline double physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) / double(processes_here) : 0.0;
}

#ifdef CKA_TOOL_MPI
/// Whether a launcher (mpirun, mpiexec, srun) started this process: then it joins MPI_COMM_WORLD.
inline bool under_launcher() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

inline void finalize_mpi() {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}
#endif

}  // namespace tool
