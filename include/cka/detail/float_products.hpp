#pragma once
// Private: the large products of a loss run in float (rcka::product_precision::input) while everything
// around them stays in double: each factor is rounded to float after a power-of-two scaling that puts its
// largest magnitude in [1/2, 1), so no finite input overflows or underflows the float products, and each
// result is widened to double and the scales divided out (exactly: powers of two).

#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/workspace.hpp>

#include <Eigen/Core>

#include <algorithm>
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

/// Selects float_factor's constructor from inputs whose columns are centered on the way.
struct from_columns {
  bool center;  ///< each column centered (a constant one exactly zero), as centered_columns does
};

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

  /// The factor of [m₁ m₂ …] (side by side, the same rows), each column centered in double where asked,
  /// straight from the inputs: their column statistics from one read each (column_stats), then one pass
  /// that writes — no double copy. x − mean is monotone in x, so the largest centered magnitude is
  /// max(hi − mean, mean − lo) over the kept columns: the exponent and every value are those of
  /// float_factor(centered_columns<double>([m₁ m₂ …])). Uncentered, the columns are m's own.
  template <class... M>
  float_factor(from_columns how, const M&... m)
      : exponent(0), lease(std::size_t((m.size() + ...))), x(lease.data(), first_rows(m...), (m.cols() + ...)) {
    static_assert(!RowMajor, "float_factor: a factor of columns is column-major");
    struct columns {
      Eigen::Matrix<double, 1, Eigen::Dynamic> mean, keep;
    };
    columns c[sizeof...(M)];
    double top = 0;
    std::size_t k = 0;
    const auto measure = [&](const auto& v) {
      columns& ck = c[k++];
      ck.mean = Eigen::Matrix<double, 1, Eigen::Dynamic>::Zero(v.cols());
      ck.keep = Eigen::Matrix<double, 1, Eigen::Dynamic>::Ones(v.cols());
      if (v.rows() == 0 || v.cols() == 0) return;
      column_stats<double> stats;
      stats.add(v.template cast<double>());
      if (how.center) {
        ck.mean = stats.mean();
        ck.keep = stats.keep();
        const auto reach = (stats.hi - ck.mean).cwiseMax(ck.mean - stats.lo);
        top = std::max(top, (reach.array() * ck.keep.array()).maxCoeff());
      } else {
        top = std::max(top, stats.hi.cwiseAbs().cwiseMax(stats.lo.cwiseAbs()).maxCoeff());
      }
    };
    (measure(m), ...);
    exponent = unit_exponent(top);
    k = 0;
    Eigen::Index c0 = 0;
    const auto write = [&](const auto& v) {
      const columns& ck = c[k++];
      x.middleCols(c0, v.cols()) =
          times_power_of_two(((v.template cast<double>().rowwise() - ck.mean).array().rowwise() * ck.keep.array()).matrix(),
                             exponent)
              .template cast<float>();
      c0 += v.cols();
    };
    (write(m), ...);
  }

 private:
  template <class M, class... Rest>
  static Eigen::Index first_rows(const M& m, const Rest&...) {
    return m.rows();
  }
};

/// k (p×p, double) = R·Rᵀ for R = r·2^−exponent, r a float p×q matrix (a factor's x, or its transpose), by a
/// float SYRK (symmetric_outer_into) in the thread's workspace, widened. Cost p²q float flops and p²
/// conversions.
template <class K, class R>
void float_gram_into(K& k, const R& r, int exponent) {
  using A = typename K::Scalar;
  const Eigen::Index p = r.rows();
  const workspace_lease<float> lease(std::size_t(p * p));
  Eigen::Map<matrix<float>> g(lease.data(), p, p);
  symmetric_outer_into(g, r);
  k = times_power_of_two(g.template cast<A>(), -2 * exponent);
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
