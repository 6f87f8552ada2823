#pragma once
// Private: the library's one parallel loop over units of long work (tile rows, batches of permutations),
// which carries exceptions out of the OpenMP region and polls for an interrupt.

#include <cka/detail/interrupt.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace cka::detail {

/// Called by a thread of the library's own OpenMP region: the BLAS calls it makes until the region ends run
/// on it alone — also in a region of one thread, which is inactive and where OpenBLAS would start threads of
/// its own and split a ?syrk differently, so the bits would depend on the number of threads. The setting
/// belongs to the region's task and ends with it; the caller's own is untouched.
inline void one_thread_inside_region() {
#if defined(_OPENMP)
  omp_set_num_threads(1);
#endif
}

/// Calls f(thread, k) for k = 0 … count−1, the k dealt one at a time to `threads` OpenMP threads
/// (`thread` in [0, threads)), polling for an interrupt before each k (on the calling thread only). An
/// exception — from f (an overflow found in a tile, a failed allocation) or from the poll — must not leave
/// the OpenMP region: the first one is kept, the remaining k are skipped, and it is rethrown on the
/// calling thread.
template <class F>
void parallel_for(Eigen::Index count, int threads, F&& f) {
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (Eigen::Index k = 0; k < count; ++k) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      poll_interrupt();
      one_thread_inside_region();
#if defined(_OPENMP)
      f(omp_get_thread_num(), k);
#else
      f(0, k);
#endif
    } catch (...) {
#if defined(_OPENMP)
#pragma omp critical(cka_parallel_error)
#endif
      {
        if (!error) error = std::current_exception();
      }
      failed.store(true, std::memory_order_relaxed);
    }
  }
  (void)threads;
  if (error) std::rethrow_exception(error);
}

/// One value per thread of a parallel_for loop (scratch matrices, counters), indexed by its `thread`
/// argument; each a copy of `init`.
template <class T>
std::vector<T> per_thread(int threads, const T& init = T()) {
  return std::vector<T>(std::size_t(std::max(threads, 1)), init);
}

}  // namespace cka::detail
