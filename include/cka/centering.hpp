#pragma once
/// \file centering.hpp
/// The centered copy of a Gram matrix for each HSIC estimator, in O(n²) without forming the centering
/// matrix H = I − 11ᵀ/n.

#include <cka/detail/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <limits>

namespace cka {

/// Centered copy of a symmetric Gram matrix K (n×n): HKH for `estimator::biased`; the U-centered K̃
/// (Székely & Rizzo 2014; zero diagonal) for `estimator::unbiased`, so that HSIC = ⟨C(K), C(L)⟩ / (n−1)²
/// or / (n(n−3)). Cost O(n²): one read of K for the checks and row sums, one to write the copy; accumulated
/// in double for float input; no n×n centering matrix is formed.
/// Entries beyond 2^±200 are centered at a power-of-two scale (exactly) so that their sums cannot overflow.
/// Throws cka::invalid_argument if K is not square, not symmetric, not finite, or has fewer than
/// min_samples(est) rows; cka::domain_error (overflow) if a centered entry exceeds the range of the scalar.
template <class Derived>
matrix<typename Derived::Scalar> center_gram(const Eigen::MatrixBase<Derived>& k,
                                             estimator est = estimator::biased) {
  using T = typename Derived::Scalar;
  using A = accumulator_t<T>;
  const detail::view_t<Derived> kv(k.derived());
  // The row sums in the checks' read, then one pass that reads K and writes the centered copy.
  detail::lower_row_sums<A> sums(std::min(kv.rows(), kv.cols()));  // a matrix that is not square is refused unvisited
  const T top = detail::require_symmetric_gram("center_gram", "K", kv, sums);
  detail::require_samples("center_gram", "K", kv.rows(), min_samples(est), detail::estimator_name(est));
  const A s = detail::safe_scale_for<A>(A(top));
  matrix<T> out(kv.rows(), kv.cols());
  if (s == A(1)) {
    const detail::centering<A> c = detail::centering_from_sums<A>(sums.total(), kv.diagonal().template cast<A>(), est);
    detail::write_centered<A>(kv, c, est, out);
  } else {  // rare: entries beyond 2^±200, whose row sums may overflow: centered at the power-of-two scale s, undone per entry
    const auto scaled = kv.template cast<A>() * s;
    detail::write_centered<A>(scaled, detail::centering_of<A>(scaled, est), est, out);
    out = (out.template cast<A>() / s).template cast<T>();  // a division: 1/s itself may overflow
  }
  // |C_ij| ≤ 6·max|K| (n ≥ 4; 4·max|K| for the biased estimator): only near the top of T's range can an entry overflow.
  if ((s != A(1) || A(top) > A(std::numeric_limits<T>::max()) / 8) && !out.allFinite()) {
    detail::fail_domain("center_gram", "overflow: a centered entry exceeds the range of the result type (largest |K_ij| = ",
                        top, "); rescale K");
  }
  return out;
}

}  // namespace cka
