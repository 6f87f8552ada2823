#pragma once
/// \file hsic.hpp
/// The Hilbert–Schmidt independence criterion of two Gram matrices.

#include <cka/detail/centering.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <type_traits>

namespace cka {
namespace detail {

/// The largest magnitudes of two checked Gram matrices (what safe_scale_for needs).
template <class T>
struct gram_magnitudes {
  T k, l;
};

/// The checks shared by every function taking two Gram matrices, with what their read also finds: the
/// largest magnitudes (what safe_scale_for needs) and the centerings of K and L in A (from the row sums of
/// the lower triangles, taken block by block as the checks pass).
template <class A, class T>
struct checked_gram_pair {
  gram_magnitudes<T> top;
  centering<A> k, l;
};
template <class A, class VK, class VL>
checked_gram_pair<A, typename VK::Scalar> require_gram_pair(const char* fn, const VK& k, const VL& l, estimator est) {
  // Sized by the smaller side: a matrix that is not square is refused before any block is visited.
  lower_row_sums<A> rk(std::min(k.rows(), k.cols())), rl(std::min(l.rows(), l.cols()));
  const auto top_k = require_symmetric_gram(fn, "K", k, rk);
  const auto top_l = require_symmetric_gram(fn, "L", l, rl);
  if (k.rows() != l.rows()) {
    fail_argument(fn, "K is ", k.rows(), "x", k.cols(), " but L is ", l.rows(), "x", l.cols(),
                  "; both Grams must be over the same samples");
  }
  require_samples(fn, "K", k.rows(), min_samples(est), estimator_name(est));
  return {{top_k, top_l}, centering_from_sums<A>(rk.total(), k.diagonal().template cast<A>(), est),
          centering_from_sums<A>(rl.total(), l.diagonal().template cast<A>(), est)};
}

}  // namespace detail

/// HSIC of two symmetric n×n Gram matrices K and L:
///   biased:   tr(K H L H) / (n−1)²;
///   unbiased: Song et al. 2012, eq. 5 (see `cka::estimator`), may be negative.
/// Cost O(n²): two reads of each matrix (the symmetry and finiteness checks with the row sums, then the
/// centered products on the fly; no H matrix, no copy of K or L); float input accumulates in double.
/// Entries beyond 2^±200 are scaled by powers of two first (exactly), so a value within the range of T is
/// returned even where the products of the entries are not.
/// Throws cka::invalid_argument if K or L is not square, not symmetric or not finite, their sizes differ,
/// or n < min_samples(est); cka::domain_error (overflow) if HSIC itself exceeds the range of T.
template <class DK, class DL>
typename DK::Scalar hsic(const Eigen::MatrixBase<DK>& k, const Eigen::MatrixBase<DL>& l,
                         estimator est = estimator::biased) {
  using T = typename DK::Scalar;
  static_assert(std::is_same_v<T, typename DL::Scalar>, "cka::hsic: K and L must have the same scalar type");
  using A = accumulator_t<T>;
  const char* fn = "hsic";
  const detail::view_t<DK> kv(k.derived());
  const detail::view_t<DL> lv(l.derived());
  // The checks' pass finds the magnitudes and the row sums too: one read, then the products.
  const auto checked = detail::require_gram_pair<A>(fn, kv, lv, est);
  const A sk = detail::safe_scale_for<A>(A(checked.top.k)), sl = detail::safe_scale_for<A>(A(checked.top.l));
  A value;
  if (sk == A(1) && sl == A(1)) {
    value = A(detail::centered_products<A>(kv, lv, est, checked.k, checked.l).kl / detail::hsic_denominator<A>(kv.rows(), est));
  } else {  // rare: each Gram read through a scaled view (no copy), and the scales undone on the result; the
            // checks' row sums are not reused, since beyond 2^±200 they may have overflowed or lost their digits
    const auto ks = kv.template cast<A>() * sk;
    const auto ls = lv.template cast<A>() * sl;
    value = A(detail::centered_products<A>(ks, ls, est).kl / detail::hsic_denominator<A>(kv.rows(), est));
    value = A(value / sk / sl);
  }
  if (!detail::is_finite_value(value) || !detail::is_finite_value(T(value))) detail::fail_hsic_overflow(fn, value);
  return T(value);
}

}  // namespace cka
