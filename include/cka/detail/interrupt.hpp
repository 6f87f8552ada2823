#pragma once
// Private: the check that cka::interrupt_check installs on its thread, and the one routine the long loops
// call between units of work.

#include <chrono>
#include <functional>

namespace cka::detail {

/// This thread's installed check (null: none), its interval and when it last ran.
struct interrupt_slot {
  const std::function<void()>* check = nullptr;
  std::chrono::steady_clock::duration interval{};
  std::chrono::steady_clock::time_point last{};
};

inline interrupt_slot& this_thread_interrupt() {
  thread_local interrupt_slot slot;
  return slot;
}

/// Called between units of long work (tile rows, batches of permutations, chunks of rows, layers, pairs):
/// runs this thread's check when one is installed and its interval has passed since it last ran. The
/// other threads of a parallel region have none installed, so the check runs on the calling thread only
/// (OpenMP's thread 0 is the thread that entered the region). Throws what the check throws: callers call
/// it where an exception may leave (outside parallel regions, or inside for_tile_rows' carrying loop).
inline void poll_interrupt() {
  interrupt_slot& s = this_thread_interrupt();
  if (s.check == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - s.last < s.interval) return;
  s.last = now;
  (*s.check)();
}

}  // namespace cka::detail
