// Gram matrices, median bandwidths and user-defined kernels.
#include "oracle.hpp"
#include "support.hpp"

#include <cka/cka.hpp>

#include <catch2/catch.hpp>

namespace {

// A user kernel of the generic form: Laplacian k(x, y) = exp(−‖x − y‖₁ / s).
struct laplacian_kernel {
  double s = 2.0;
  template <class RX, class RY>
  auto operator()(const RX& x, const RY& y) const {
    using T = typename RX::Scalar;
    using std::exp;
    return T(exp(T(-(x - y).cwiseAbs().sum() / T(s))));
  }
};

// A user kernel of the squared-distance form: inverse multiquadric k = 1 / √(1 + d²/c²).
struct inverse_multiquadric {
  double c = 1.5;
  template <class T>
  void from_squared_distances(cka::matrix<T>& d) const {
    using std::sqrt;
    d = d.unaryExpr([this](const T& v) { return T(T(1) / sqrt(T(T(1) + v / T(c * c)))); });
  }
};

}  // namespace

template <>
struct cka::kernel_traits<inverse_multiquadric> {
  static constexpr cka::kernel_form form = cka::kernel_form::squared_distance;
};

TEMPLATE_TEST_CASE("gram matches the explicit kernel formulas", "[gram][oracle]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  const auto x = test::normal<T>(37, 6, 5);
  const oracle::mat<double> xd = x.template cast<double>();

  auto close = [&](const test::mat<T>& got, const oracle::mat<double>& want) {
    return (got.template cast<double>() - want).norm() / want.norm() < tol;
  };
  CHECK(close(cka::gram(x, cka::linear_kernel{}), oracle::gram_linear(xd)));
  CHECK(close(cka::gram(x, cka::rbf_kernel{1.7}), oracle::gram_rbf(xd, 1.7 * 1.7)));
  CHECK(close(cka::gram(x, cka::polynomial_kernel{2, 0.5, 2.0}), oracle::gram_poly(xd, 2, 0.5, 2.0)));
  const double med = oracle::median_sq(oracle::squared_distances(xd), true);
  CHECK(close(cka::gram(x, cka::rbf_kernel::median(0.8)), oracle::gram_rbf(xd, 0.64 * med)));

  // User-defined kernels of the generic and the squared-distance form.
  oracle::mat<double> lap(37, 37), imq(37, 37);
  for (int i = 0; i < 37; ++i)
    for (int j = 0; j < 37; ++j) {
      lap(i, j) = std::exp(-(xd.row(i) - xd.row(j)).cwiseAbs().sum() / 2.0);
      imq(i, j) = 1.0 / std::sqrt(1.0 + (xd.row(i) - xd.row(j)).squaredNorm() / 2.25);
    }
  CHECK(close(cka::gram(x, laplacian_kernel{}), lap));
  CHECK(close(cka::gram(x, inverse_multiquadric{}), imq));
  const auto y = test::related<T>(x, 4, 6);
  const oracle::mat<double> yd = y.template cast<double>();
  oracle::mat<double> lapy(37, 37);
  for (int i = 0; i < 37; ++i)
    for (int j = 0; j < 37; ++j) lapy(i, j) = std::exp(-(yd.row(i) - yd.row(j)).cwiseAbs().sum() / 2.0);
  CHECK(test::rel_err(cka::kernel_cka(x, y, laplacian_kernel{}), oracle::cka(lap, lapy, false)) < tol * 10);
}

TEST_CASE("gram is symmetric with the exact diagonal", "[gram]") {
  const auto x = test::normal<double>(50, 9, 8);
  const test::mat<double> k = cka::gram(x, cka::rbf_kernel{2.0});
  CHECK((k - k.transpose()).cwiseAbs().maxCoeff() == 0.0);
  CHECK((k.diagonal().array() == 1.0).all());
}

TEST_CASE("median squared distance follows NumPy's median under both rules", "[kernels][median]") {
  for (int n : {2, 3, 4, 5, 10, 33}) {
    const auto x = test::normal<double>(n, 3, 40 + n);
    const oracle::mat<double> d = oracle::squared_distances(x);
    CAPTURE(n);
    CHECK(test::rel_err(cka::median_squared_distance(d, cka::median_rule::all_pairs), oracle::median_sq(d, true)) <
          1e-15);
    CHECK(test::rel_err(cka::median_squared_distance(d, cka::median_rule::off_diagonal),
                        oracle::median_sq(d, false)) < 1e-15);
  }
  // Hand-checked case: points 0, 1, 3 on a line. Squared distances 1, 9, 4 (each twice) and three zeros:
  // all_pairs sorted = 0 0 0 1 1 4 4 9 9 -> median 1; off_diagonal = 1 4 9 -> median 4.
  test::mat<double> pts(3, 1);
  pts << 0, 1, 3;
  const oracle::mat<double> d = oracle::squared_distances(pts);
  CHECK(cka::median_squared_distance(d, cka::median_rule::all_pairs) == 1.0);
  CHECK(cka::median_squared_distance(d, cka::median_rule::off_diagonal) == 4.0);
  // Four points 0, 1, 2, 4: pairs 1 4 16 1 9 4 -> sorted 1 1 4 4 9 16, off-diagonal median (4+4)/2 = 4;
  // all 16 entries: four zeros then each pair twice -> 8th and 9th values are 1 and 4, median 2.5.
  test::mat<double> p4(4, 1);
  p4 << 0, 1, 2, 4;
  const oracle::mat<double> d4 = oracle::squared_distances(p4);
  CHECK(cka::median_squared_distance(d4, cka::median_rule::off_diagonal) == 4.0);
  CHECK(cka::median_squared_distance(d4, cka::median_rule::all_pairs) == 2.5);
}
