#pragma once
// Private: the one CKA ratio and the one zero-variance rule, Eigen-free, for the host engines and the device
// backend alike (the rule also in device code: vanishes_at is CKA_HD).

#include <cka/detail/fail.hpp>
#include <cka/detail/host_device.hpp>

#include <cmath>
#include <limits>

namespace cka::detail {

template <class T>
bool is_finite_value(const T& v) {
  return v - v == T(0);  // false for NaN and +-Inf; works for every scalar type used here
}

/// Sums over all i, j of the centered entries: kl = Σ C(K)∘C(L), kk = Σ C(K)², ll = Σ C(L)², and reference
/// squared norms ref_k, ref_l of the uncentered (or shifted) matrices that tell a vanishing centered Gram
/// from rounding. HSIC = kl / hsic_denominator(n, est).
template <class A>
struct centered_sums {
  A kl, kk, ll, ref_k, ref_l;
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

/// The sides of a relation loss (the RCKA terms), on the host and the device.
inline side_names relation_sides() {
  return {"the student's relation Gram (a constant student)", "the teacher's relation Gram (a constant teacher)"};
}

/// True when a centered self-product has nothing left: not positive, or below the rounding level of its
/// reference (relative (64ε)², ε the accumulation type's). The library's one zero-variance rule.
template <class A>
CKA_HD bool vanishes_at(const A& self, const A& reference, const A& eps) {
  return !(self > A(64) * A(64) * eps * eps * reference);
}
template <class A>
bool vanishes(const A& self, const A& reference) {
  return vanishes_at(self, reference, A(std::numeric_limits<A>::epsilon()));
}

/// The one CKA ratio: (kl / √kk) / √ll (the HSIC normalisers cancel; divided in turn so that no product
/// overflows or underflows where the ratio does not). A self-term that vanishes means no variance is left
/// after centering. Sums that are not finite are an overflow of the range, reported as such (never as
/// "zero variance").
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
