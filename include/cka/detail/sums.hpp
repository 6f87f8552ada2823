#pragma once
// Private: the centered sums every CKA route reduces to, the HSIC normaliser, and the one CKA ratio with
// its policy for an undefined (0/0) or overflowing result.

#include <cka/detail/checks.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <cmath>
#include <limits>

namespace cka::detail {

inline const char* estimator_name(estimator est) {
  return est == estimator::biased ? "the biased estimator" : "the unbiased estimator";
}

/// Sums over all i, j of the centered entries: kl = Σ C(K)∘C(L), kk = Σ C(K)², ll = Σ C(L)², and reference
/// squared norms ref_k, ref_l of the uncentered (or shifted) matrices that tell a vanishing centered Gram
/// from rounding. HSIC = kl / hsic_denominator(n, est).
template <class A>
struct centered_sums {
  A kl, kk, ll, ref_k, ref_l;
};

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

/// What the ratio does when CKA is undefined (a representation without variance): throw
/// cka::domain_error, or return NaN (the matrix clients, which list such layers instead).
enum class when_undefined { raise, nan };

/// Names of the two sides in the ratio's messages.
struct side_names {
  const char* first = "the first representation";
  const char* second = "the second representation";
  const char* condition = "has zero variance after centering";
};

/// True when a centered self-product has nothing left: not positive, or below the rounding level of its
/// reference (relative (64ε)²). The library's one zero-variance rule.
template <class A>
bool vanishes(const A& self, const A& reference) {
  const A eps = Eigen::NumTraits<A>::epsilon();
  return !(self > A(64) * A(64) * eps * eps * reference);
}

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

/// The one CKA ratio: (kl / √kk) / √ll (the HSIC normalisers cancel; divided in turn so that no product
/// overflows or underflows where the ratio does not). A self-term that is not positive, or that is
/// below the rounding level of its reference (relative (64ε)²), means no variance is left after centering.
/// Sums that are not finite are an overflow of the double range, reported as such (never as "zero
/// variance").
template <class A>
A cka_ratio(const char* fn, const centered_sums<A>& s, when_undefined policy = when_undefined::raise,
            const side_names& names = {}) {
  if (!is_finite_value(s.kl) || !is_finite_value(s.kk) || !is_finite_value(s.ll)) {
    fail_domain(fn, "overflow: the centered products exceed the range of the accumulation type (HSIC(K, L) = ",
                s.kl, ", HSIC(K, K) = ", s.kk, ", HSIC(L, L) = ", s.ll, "); rescale the inputs");
  }
  const bool first_flat = vanishes(s.kk, s.ref_k), second_flat = vanishes(s.ll, s.ref_l);
  if (first_flat || second_flat) {
    if (policy == when_undefined::nan) return A(std::numeric_limits<double>::quiet_NaN());
    const char* who = first_flat ? names.first : names.second;
    const A self = first_flat ? s.kk : s.ll, ref = first_flat ? s.ref_k : s.ref_l;
    fail_domain(fn, who, " ", names.condition, " (its self-product is ", self / (ref > A(0) ? ref : A(1)),
                " relative to its uncentered one), so the alignment is undefined");
  }
  using std::sqrt;
  return A(A(s.kl / A(sqrt(A(s.kk)))) / A(sqrt(A(s.ll))));
}

}  // namespace cka::detail
