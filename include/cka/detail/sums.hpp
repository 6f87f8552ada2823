#pragma once
// Private: the HSIC normaliser, the unbiased estimator's feature terms and the reference of an unbiased
// self-product; the centered sums and the one CKA ratio are in ratio.hpp.

#include <cka/detail/checks.hpp>
#include <cka/detail/ratio.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <cmath>
#include <limits>

namespace cka::detail {

inline const char* estimator_name(estimator est) {
  return est == estimator::biased ? "the biased estimator" : "the unbiased estimator";
}

/// The HSIC normaliser: (n−1)² (biased) or n(n−3) (unbiased).
template <class A>
A hsic_denominator(Eigen::Index n, estimator est) {
  const A nn = A(n);
  return est == estimator::biased ? A((nn - 1) * (nn - 1)) : A(nn * (nn - 3));
}

/// The unbiased estimator in feature space. For column-centered X (n×d) and Y with squared row norms k and
/// l — the diagonals of the linear Grams, whose rows sum to zero — Song's formula times n(n−3) is
///   ‖XᵀY‖²_F + Σk·Σl/((n−1)(n−2)) − n/(n−2)·Σ kᵢlᵢ;
/// `operator()` gives the two last terms from Σk, Σl and Σ kᵢlᵢ; c1 = n/(n−2), c2 = 1/((n−1)(n−2)).
template <class A>
struct unbiased_feature_terms {
  A c1, c2;
  explicit unbiased_feature_terms(Eigen::Index n)
      : c1(A(A(n) / A(n - 2))), c2(A(A(1) / (A(n - 1) * A(n - 2)))) {}
  A operator()(const A& sum_k, const A& sum_l, const A& dot_kl) const { return A(c2 * sum_k * sum_l - c1 * dot_kl); }
  /// The size of the terms that operator() sums (what its rounding is relative to).
  A magnitude(const A& sum_k, const A& sum_l, const A& dot_kl) const {
    using std::abs;
    return A(abs(A(c2 * sum_k * sum_l)) + abs(A(c1 * dot_kl)));
  }
};

/// The reference for an unbiased self-product assembled in feature space from sums over n rows,
/// ‖C‖² + c2(Σk)² − c1Σk²: its terms cancel to first order (a layer without variance, or one whose samples
/// are all equally similar, leaves a residue of up to about nε times their size, not ε²), so the reference
/// is raised until the threshold of `vanishes`, (64ε)²·reference, is 64nε times their size. (A layer with
/// variance keeps a self-product of about n/(n + d) of that size: far above it.)
template <class A>
A first_order_reference(const A& reference, const A& magnitude, Eigen::Index n) {
  const A eps = Eigen::NumTraits<A>::epsilon();
  const A raised = A(magnitude * A(n) / (A(64) * eps));
  return raised > reference ? raised : reference;
}

}  // namespace cka::detail
