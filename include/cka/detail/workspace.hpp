#pragma once
// Private: memory that one thread's calls reuse, so that a loss called every step of a training loop does not
// fault in fresh pages each time (at B = 256, C = 1000 that costs as much as a third of rcka_loss).

#include <cstddef>
#include <memory>

namespace cka::detail {

/// A lease of `size` values of type A: the calling thread's reused buffer when it is free and the request is
/// at most `cap_values` (128 MiB of doubles), else a buffer of its own, freed with the lease. The contents
/// are unspecified (never initialised here). The thread's buffer keeps the largest size leased (at most the
/// cap) until the thread ends.
template <class A>
class workspace_lease {
 public:
  static constexpr std::size_t cap_values = std::size_t(1) << 24;

  explicit workspace_lease(std::size_t size) {
    pool& p = thread_pool();
    if (!p.busy && size <= cap_values) {
      p.busy = pooled_ = true;
      if (p.size < size) {
        p.values.reset();  // the old buffer goes before the new one is allocated (and if that throws,
        p.size = 0;        // the pool is empty, not wrong)
        p.values.reset(new A[size]);
        p.size = size;
      }
      data_ = p.values.get();
    } else {
      own_.reset(new A[size]);
      data_ = own_.get();
    }
  }
  ~workspace_lease() {
    if (pooled_) thread_pool().busy = false;
  }
  workspace_lease(const workspace_lease&) = delete;
  workspace_lease& operator=(const workspace_lease&) = delete;

  A* data() const { return data_; }

 private:
  struct pool {
    std::unique_ptr<A[]> values;
    std::size_t size = 0;
    bool busy = false;
  };
  static pool& thread_pool() {
    thread_local pool p;
    return p;
  }
  std::unique_ptr<A[]> own_;
  A* data_ = nullptr;
  bool pooled_ = false;
};

}  // namespace cka::detail
