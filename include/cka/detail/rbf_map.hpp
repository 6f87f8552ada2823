#pragma once
// Private: the RBF map exp(−d/(2σ²)) applied in place to squared distances — one routine for the
// in-memory Grams (rbf_kernel) and the host tile engine.

#include <cka/rbf_parameters.hpp>

#include <Eigen/Core>

#include <cmath>

namespace cka::detail {

/// exp(−d/(2σ²)) in place for a resolved σ² = s2 of the kernel p, in the form p.exponent_for(s2) chooses.
/// Throws cka::domain_error when σ² overflows.
template <class D>
void apply_rbf(const rbf_parameters& p, Eigen::MatrixBase<D>& d, typename D::Scalar s2) {
  using T = typename D::Scalar;
  using std::exp;
  const rbf_parameters::exponent_form<T> f = p.exponent_for(s2);
  if (!f.split) {
    d.derived() = (d.array() * f.scale).exp().matrix();
  } else {
    d.derived() = d.unaryExpr([&](const T& v) { return v == T(0) ? T(1) : T(exp(T(T(v / f.root) * f.half))); });
  }
}

}  // namespace cka::detail
