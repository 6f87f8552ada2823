#pragma once
// Private: symmetric products R·Rᵀ through Eigen's GEMM, computing only the lower block triangle.

#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <algorithm>

namespace cka::detail {

/// G = R·Rᵀ (p×p, full and symmetric) for R of size p×q, in scalar A. The lower triangle is computed in
/// block columns of width ~p/8, each one GEMM (so Eigen's blocked, multithreaded kernel does the work),
/// costing p²q(1 + 1/8) flops instead of 2p²q; the upper triangle is then mirrored.
template <class A, class M>
matrix<A> symmetric_outer(const M& r) {
  const Eigen::Index p = r.rows();
  matrix<A> g(p, p);
  const Eigen::Index width = std::max<Eigen::Index>(32, ((p + 7) / 8 + 7) / 8 * 8);
  for (Eigen::Index j0 = 0; j0 < p; j0 += width) {
    const Eigen::Index w = std::min(width, p - j0);
    g.block(j0, j0, p - j0, w).noalias() = r.middleRows(j0, p - j0) * r.middleRows(j0, w).transpose();
  }
  for (Eigen::Index j = 1; j < p; ++j) {
    g.col(j).head(j) = g.row(j).head(j).transpose();
  }
  return g;
}

}  // namespace cka::detail
