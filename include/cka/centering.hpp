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

namespace cka {

/// Centered copy of a symmetric Gram matrix K (n×n): HKH for `estimator::biased`; the U-centered K̃
/// (Székely & Rizzo 2014; zero diagonal) for `estimator::unbiased`, so that HSIC = ⟨C(K), C(L)⟩ / (n−1)²
/// or / (n(n−3)). Cost O(n²), accumulated in double for float input; no n×n centering matrix is formed.
/// Throws cka::invalid_argument if K is not square, not symmetric, not finite, or has fewer than
/// min_samples(est) rows.
template <class Derived>
matrix<typename Derived::Scalar> center_gram(const Eigen::MatrixBase<Derived>& k,
                                             estimator est = estimator::biased) {
  using T = typename Derived::Scalar;
  using A = accumulator_t<T>;
  const detail::view_t<Derived> kv(k.derived());
  detail::require_symmetric_gram("center_gram", "K", kv);
  detail::require_samples("center_gram", "K", kv.rows(), min_samples(est), detail::estimator_name(est));
  return detail::centered_dense<A>(kv.template cast<A>(), est).template cast<T>();
}

}  // namespace cka
