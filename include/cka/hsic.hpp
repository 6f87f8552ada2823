#pragma once
/// \file hsic.hpp
/// The Hilbert–Schmidt independence criterion of two Gram matrices.

#include <cka/detail/centering.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <type_traits>

namespace cka {
namespace detail {

/// Checks shared by every function taking two Gram matrices.
template <class VK, class VL>
void require_gram_pair(const char* fn, const VK& k, const VL& l, estimator est) {
  require_symmetric_gram(fn, "K", k);
  require_symmetric_gram(fn, "L", l);
  if (k.rows() != l.rows()) {
    fail_argument(fn, "K is ", k.rows(), "x", k.cols(), " but L is ", l.rows(), "x", l.cols(),
                  "; both Grams must be over the same samples");
  }
  require_samples(fn, "K", k.rows(), min_samples(est), estimator_name(est));
}

}  // namespace detail

/// HSIC of two symmetric n×n Gram matrices K and L:
///   biased:   tr(K H L H) / (n−1)²;
///   unbiased: Song et al. 2012, eq. 5 (see `cka::estimator`), may be negative.
/// Cost O(n²) (centering on the fly, no H matrix, no copy of K or L); float input accumulates in double.
/// Throws cka::invalid_argument if K or L is not square, not symmetric or not finite, their sizes differ,
/// or n < min_samples(est).
template <class DK, class DL>
typename DK::Scalar hsic(const Eigen::MatrixBase<DK>& k, const Eigen::MatrixBase<DL>& l,
                         estimator est = estimator::biased) {
  using T = typename DK::Scalar;
  static_assert(std::is_same_v<T, typename DL::Scalar>, "cka::hsic: K and L must have the same scalar type");
  using A = accumulator_t<T>;
  const detail::view_t<DK> kv(k.derived());
  const detail::view_t<DL> lv(l.derived());
  detail::require_gram_pair("hsic", kv, lv, est);
  const auto s = detail::centered_products<A>(kv, lv, est);
  return T(s.kl / detail::hsic_denominator<A>(kv.rows(), est));
}

}  // namespace cka
