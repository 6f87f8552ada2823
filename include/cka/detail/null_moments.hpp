#pragma once
// Private: the permutation null of T = ⟨A, P B Pᵀ⟩ for centered Grams A, B (zero row sums), its exact
// mean and variance from O(1) sums (docs/inference.md derives them), and the distribution functions the
// tests need — normal and gamma tails, the normal quantile — written from their standard definitions.

#include <cmath>
#include <limits>

namespace cka::detail {

/// Sums of a symmetric n×n matrix A with zero row sums that fix the permutation moments:
/// d1 = Σ A_ii, d2 = Σ A_ii², off = Σ_{i≠j} A_ij².
struct null_sums {
  double d1 = 0, d2 = 0, off = 0;
};

/// Mean and variance of Γ = Σ_ij A_ij B_π(i)π(j) over uniformly random permutations π, exactly.
/// With zero diagonals (U-centered A, B) the mean is 0 and the variance 2·off_A·off_B/(n(n−3)).
/// `scale` is the size of the terms whose difference is the variance (its rounding level is relative to it).
struct null_moments {
  double mean = 0, variance = 0, scale = 0;
};

inline null_moments permutation_moments(const null_sums& a, const null_sums& b, double n) {
  const double n1 = n * (n - 1), n2 = n1 * (n - 2), n3 = n2 * (n - 3);
  // Γ = D + O: the diagonal part D = Σ A_ii B_π(i)π(i) and the off-diagonal part O.
  const double mean_d = a.d1 * b.d1 / n, mean_o = a.d1 * b.d1 / n1;  // Σ_{i≠j} A_ij = −Σ A_ii
  const double dd = a.d2 * b.d2 / n + (a.d1 * a.d1 - a.d2) * (b.d1 * b.d1 - b.d2) / n1;
  const double oo = 2 * a.off * b.off / n1 + 4 * (a.d2 - a.off) * (b.d2 - b.off) / n2 +
                    (a.d1 * a.d1 + 2 * a.off - 4 * a.d2) * (b.d1 * b.d1 + 2 * b.off - 4 * b.d2) / n3;
  const double dof = 2 * a.d2 * b.d2 / n1 + (2 * a.d2 - a.d1 * a.d1) * (2 * b.d2 - b.d1 * b.d1) / n2;
  const double mean = mean_d + mean_o;
  return {mean, dd + 2 * dof + oo - mean * mean, std::abs(dd) + 2 * std::abs(dof) + std::abs(oo) + mean * mean};
}

/// P(Z ≥ z) for a standard normal Z.
inline double normal_upper_tail(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

/// The z with P(Z ≤ z) = p, 0 < p < 1: bisection on erfc to full double precision (no closed form).
inline double normal_quantile(double p) {
  double lo = -40, hi = 40;
  for (int k = 0; k < 200 && hi - lo > 1e-15 * std::max(1.0, std::abs(lo)); ++k) {
    const double mid = 0.5 * (lo + hi);
    (1 - normal_upper_tail(mid) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

/// The regularised upper incomplete gamma function Q(s, x) = Γ(s, x)/Γ(s): the series for P = 1 − Q below
/// x = s + 1, the continued fraction (modified Lentz) above it.
inline double gamma_upper_regularized(double s, double x) {
  if (x <= 0) return 1.0;
  const double log_prefix = s * std::log(x) - x - std::lgamma(s);
  if (x < s + 1) {
    double term = 1.0 / s, sum = term;
    for (int k = 1; k < 100000; ++k) {
      term *= x / (s + k);
      sum += term;
      if (std::abs(term) < std::abs(sum) * 1e-17) break;
    }
    return std::max(0.0, 1.0 - std::exp(log_prefix) * sum);
  }
  const double tiny = std::numeric_limits<double>::min() / std::numeric_limits<double>::epsilon();
  double b = x + 1 - s, c = 1 / tiny, d = 1 / b, h = d;
  for (int k = 1; k < 100000; ++k) {
    const double an = -k * (k - s);
    b += 2;
    d = an * d + b;
    if (std::abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::abs(c) < tiny) c = tiny;
    d = 1 / d;
    const double step = d * c;
    h *= step;
    if (std::abs(step - 1) < 1e-16) break;
  }
  return std::exp(log_prefix) * h;
}

/// P(G ≥ x) for G ~ Gamma(shape, scale).
inline double gamma_upper_tail(double x, double shape, double scale) { return gamma_upper_regularized(shape, x / scale); }

}  // namespace cka::detail
