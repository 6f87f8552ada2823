#pragma once
// Private: the squared MMD from the block sums of a pooled kernel matrix. Free of Eigen, so that the CUDA
// context (cka/device/cuda.hpp) shares it with the host.

#include <cka/estimator.hpp>

#include <cstdint>

namespace cka::detail {

/// Squared MMD from Σ Kxx, Σ Kyy (all entries), Σ Kxy (each pair once) and the diagonals of Kxx and Kyy,
/// for m samples of X and n of Y: biased mean(Kxx) + mean(Kyy) − 2·mean(Kxy); unbiased with the diagonals
/// of Kxx and Kyy left out.
template <class A>
A mmd2_from_sums(A sxx, A syy, A sxy, A diag_x, A diag_y, std::int64_t m, std::int64_t n, estimator est) {
  const A mm = A(m), nn = A(n);
  if (est == estimator::biased) return A(sxx / (mm * mm) + syy / (nn * nn) - A(2) * sxy / (mm * nn));
  return A((sxx - diag_x) / (mm * (mm - 1)) + (syy - diag_y) / (nn * (nn - 1)) - A(2) * sxy / (mm * nn));
}

}  // namespace cka::detail
