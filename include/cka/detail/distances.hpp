#pragma once
// Private, Eigen-free and shared by the host tile engine, the in-memory Grams and the device backend: when a
// squared distance formed as ‖a‖² + ‖b‖² − 2⟨a, b⟩ (one GEMM for a whole tile) must be recomputed from the
// rows, and how.

#include <cka/detail/host_device.hpp>

#include <cstdint>

namespace cka::detail {

/// The expansion ‖a‖² + ‖b‖² − 2⟨a, b⟩ carries a rounding error of about (d + 2)·ε·(‖a‖² + ‖b‖²). At or
/// below this fraction of ‖a‖² + ‖b‖² the error could be a large part of the value — equal rows would
/// come out as small positive numbers, not 0, which the `nonzero` median rule must see as zeros — so the
/// value is recomputed from the rows.
constexpr double expansion_floor = 0x1p-20;

/// Whether the expansion's value v for rows of squared norms na and nb must be recomputed. False for NaN
/// (an overflow, reported as one).
template <class T>
CKA_HD bool unresolved_distance(T v, T na, T nb) {
  return v <= T(expansion_floor) * (na + nb);
}

/// The squared distance from the expansion's value v (clamped at +0; NaN, an overflow, kept), or direct()
/// — the distance summed from the rows — where v is too small to trust.
template <class T, class Direct>
CKA_HD T resolved_distance(T v, T na, T nb, Direct&& direct) {
  v = v > T(0) ? v : (v == v ? T(0) : v);
  return unresolved_distance(v, na, nb) ? direct() : v;
}

/// Σ_c (a_c − b_c)² over d values at strides sa and sb, summed in column order (the same bits on every
/// backend): exactly 0 for equal rows.
template <class T>
CKA_HD T direct_squared_distance(const T* a, std::int64_t sa, const T* b, std::int64_t sb, std::int64_t d) {
  T s(0);
  for (std::int64_t c = 0; c < d; ++c) {
    const T e = a[c * sa] - b[c * sb];
    s += e * e;
  }
  return s;
}

}  // namespace cka::detail
