#pragma once
// Private: memory that one thread's calls reuse, so that a loss called every step of a training loop does not
// fault in fresh pages each time (at B = 256, C = 1000 that costs as much as a third of a loss).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace cka::detail {

/// A lease of `size` values of type A from the calling thread's arena. Leases nest (one taken while another
/// is held lies after it) and must end in the reverse order: scoped objects and members, never kept in a
/// container or handed to another thread. A lease that does not fit behind the ones held, or that would
/// take the arena beyond `cap_values` (128 MiB of doubles), gets a buffer of its own, freed with it; when
/// the arena is next empty it grows to the most that was leased at once (up to the cap), so that a call
/// repeated with the same sizes allocates nothing. The contents are unspecified (never initialised here).
/// The arena is kept until the thread ends.
template <class A>
class workspace_lease {
 public:
  static constexpr std::size_t cap_values = std::size_t(1) << 24;

  explicit workspace_lease(std::size_t size) : size_(rounded(size)) {
    arena& a = thread_arena();
    const std::size_t grown = std::min(std::max(a.peak, size_), cap_values);
    if (a.used == 0 && a.size < grown && size_ <= grown) {
      a.storage.reset();  // the old buffer goes before the new one is allocated (and if that throws, the
      a.size = 0;         // arena is empty, not wrong)
      a.values = allocate(a.storage, grown);
      a.size = grown;
    }
    if (size_ <= a.size - a.used) {
      data_ = a.values + a.used;
      a.used += size_;
      pooled_ = true;
    } else {
      data_ = allocate(own_, size_);
    }
    a.wanted += size_;  // after the last allocation that may throw: a lease that was never made holds nothing
    a.peak = std::max(a.peak, a.wanted);
  }
  ~workspace_lease() {
    arena& a = thread_arena();
    a.wanted -= size_;
    if (pooled_) a.used -= size_;
  }
  workspace_lease(const workspace_lease&) = delete;
  workspace_lease& operator=(const workspace_lease&) = delete;

  /// The lease's first value, on a 64-byte boundary for float, double and long double: wherever a lease
  /// lies, vectorised loops over it split their work the same way, so results keep the same bits.
  A* data() const { return data_; }

 private:
  /// Values per 64 bytes where A tiles them (else 1): leases are whole multiples of it.
  static constexpr std::size_t step = 64 % sizeof(A) == 0 ? 64 / sizeof(A) : 1;
  static std::size_t rounded(std::size_t size) { return size > cap_values ? size : (size + step - 1) / step * step; }
  /// storage for count values from a 64-byte boundary (where A's alignment allows); returns the first.
  static A* allocate(std::unique_ptr<A[]>& storage, std::size_t count) {
    storage.reset(new A[count + step - 1]);
    A* p = storage.get();
    for (std::size_t k = 1; k < step && reinterpret_cast<std::uintptr_t>(p) % 64 != 0; ++k) ++p;
    return reinterpret_cast<std::uintptr_t>(p) % 64 == 0 ? p : storage.get();
  }
  struct arena {
    std::unique_ptr<A[]> storage;
    A* values = nullptr;     ///< the buffer's first value (64-byte aligned)
    std::size_t size = 0;    ///< values in the buffer
    std::size_t used = 0;    ///< of them, held by leases (the leases inside the buffer, innermost last)
    std::size_t wanted = 0;  ///< values held by all leases, inside the buffer or not
    std::size_t peak = 0;    ///< the most held at once so far: the size for the next growth
  };
  static arena& thread_arena() {
    thread_local arena a;
    return a;
  }
  std::unique_ptr<A[]> own_;
  A* data_ = nullptr;
  std::size_t size_;
  bool pooled_ = false;
};

}  // namespace cka::detail
