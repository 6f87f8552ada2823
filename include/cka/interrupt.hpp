#pragma once
/// \file interrupt.hpp
/// Stopping a long computation from outside — a user's Ctrl-C (the Python package installs one for every
/// call), a deadline, a cancelled job — without killing the process.

#include <cka/detail/interrupt.hpp>

#include <chrono>
#include <functional>
#include <utility>

namespace cka {

/// While an interrupt_check lives, the computations that its thread starts call `check` between units of
/// work — tile rows of the tiled kernel routes, batches of permutations, chunks of rows of linear CKA,
/// chunks of columns and passes of a dense Gram, layers and pairs of the similarity matrix and tests — at
/// most once per `interval`, and on that thread only. An exception `check` throws abandons the
/// computation: the other threads stop at their next unit, and it reaches the caller of the cka function,
/// which returns nothing (inputs are never written).
/// Accumulation states (linear_state, layers_state) do not call it: an `add` is done whole or not at all.
/// Cost: a clock read per unit. Installing one over another restores the outer one when it ends; not
/// copyable or movable.
class interrupt_check {
 public:
  explicit interrupt_check(std::function<void()> check,
                           std::chrono::steady_clock::duration interval = std::chrono::milliseconds(50))
      : check_(std::move(check)), outer_(detail::this_thread_interrupt()) {
    detail::interrupt_slot& s = detail::this_thread_interrupt();
    s.check = check_ ? &check_ : nullptr;
    s.interval = interval;
    s.last = std::chrono::steady_clock::now();
  }
  ~interrupt_check() { detail::this_thread_interrupt() = outer_; }
  interrupt_check(const interrupt_check&) = delete;
  interrupt_check& operator=(const interrupt_check&) = delete;

 private:
  std::function<void()> check_;
  detail::interrupt_slot outer_;
};

}  // namespace cka
