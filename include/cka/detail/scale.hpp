#pragma once
// Private: the power-of-two scale that keeps fourth powers in range — one rule for the host engines and
// the device backend (Eigen-free, CKA_HD).

#include <cka/detail/host_device.hpp>

#include <cmath>

namespace cka::detail {

/// 2^−e for the binary exponent e of a largest magnitude `top` (top = m·2^e, m in [½, 1)) when fourth
/// powers of values of that size would leave the range of A (top outside [2^−200, 2^200]), else 1; for a
/// subnormal top at most 2^1000, so that the scale itself is finite. Scaling by it is exact (but for
/// values that it takes below the normal range, which are negligible against top).
template <class A>
CKA_HD A power_of_two_scale(A top) {
#if !defined(__CUDA_ARCH__)
  using std::frexp;
  using std::ldexp;
#endif
  if (top == A(0) || (top < ldexp(A(1), 200) && top > ldexp(A(1), -200))) return A(1);
  int e = 0;
  frexp(top, &e);
  return ldexp(A(1), e < -1000 ? 1000 : -e);
}

}  // namespace cka::detail
