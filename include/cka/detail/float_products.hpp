#pragma once
// Private: the large products of a loss run in float (rcka::product_precision::input) while everything
// around them stays in double: each factor is rounded to float after a power-of-two scaling that puts its
// largest magnitude in [1/2, 1), so no finite input overflows or underflows the float products, and each
// result is widened to double and the scales divided out (exactly: powers of two).

#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/workspace.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>

namespace cka::detail {

/// The exponent e with top·2^e in [1/2, 1); 0 where top is zero or not finite.
inline int unit_exponent(double top) {
  if (!(top > 0.0) || !(top - top == 0.0)) return 0;
  int e = 0;
  std::frexp(top, &e);
  return -e;
}

/// 2^e as a factor of a double; for e beyond double's exponents, the two halves applied one after the other.
template <class X>
auto times_power_of_two(const X& x, int e) {
  const int half = e / 2;
  return (x * std::ldexp(1.0, half)) * std::ldexp(1.0, e - half);
}

/// x·2^exponent rounded to float, in the thread's workspace (row-major where x is), with exponent the
/// unit_exponent of x's largest magnitude. One pass over x for the magnitude and one to write.
template <bool RowMajor = false>
struct float_factor {
  using storage = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, RowMajor ? Eigen::RowMajor : Eigen::ColMajor>;
  int exponent;
  workspace_lease<float> lease;
  Eigen::Map<storage> x;
  template <class M>
  explicit float_factor(const M& m)
      : exponent(m.size() == 0 ? 0 : unit_exponent(double(m.cwiseAbs().maxCoeff()))),
        lease(std::size_t(m.size())), x(lease.data(), m.rows(), m.cols()) {
    x = times_power_of_two(m.template cast<double>(), exponent).template cast<float>();
  }
};

/// k (p×p, double) = R·Rᵀ for the float factor r of R, by a float SYRK (symmetric_outer_into) in the
/// thread's workspace, widened. Cost p²q float flops and p² conversions.
template <class K, bool RowMajor>
void float_gram_into(K& k, const float_factor<RowMajor>& r) {
  using A = typename K::Scalar;
  const Eigen::Index p = r.x.rows();
  const workspace_lease<float> lease(std::size_t(p * p));
  Eigen::Map<matrix<float>> g(lease.data(), p, p);
  symmetric_outer_into(g, r.x);
  k = times_power_of_two(g.template cast<A>(), -2 * r.exponent);
}

/// out (double) = (l·2^−el)·(r·2^−er) for float l and r (factors' x, or their transposes) by a float GEMM,
/// widened. Cost 2mnk float flops.
template <class O, class L, class R>
void float_product_into(O& out, const L& l, int el, const R& r, int er) {
  using A = typename O::Scalar;
  const workspace_lease<float> lease(std::size_t(l.rows() * r.cols()));
  Eigen::Map<matrix<float>> g(lease.data(), l.rows(), r.cols());
  product_into(g, l, r);
  out = times_power_of_two(g.template cast<A>(), -(el + er));
}

}  // namespace cka::detail
