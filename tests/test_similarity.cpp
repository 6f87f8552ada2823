// CKA: oracle comparisons, the identities of the method, invariances and input types.
#include "oracle.hpp"
#include "support.hpp"

#include <cka/cka.hpp>

#include <Eigen/QR>
#include <catch2/catch.hpp>

#include <tuple>

using cka::estimator;

namespace {
template <class T>
constexpr double tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-10;
}
const std::tuple<int, int, int> shapes[] = {{6, 2, 3}, {30, 5, 8}, {12, 40, 25}, {64, 3, 100}, {200, 10, 20}};
}  // namespace

TEMPLATE_TEST_CASE("linear_cka and gram_cka match the oracle", "[cka][oracle]", float, double) {
  using T = TestType;
  for (auto [n, d1, d2] : shapes) {
    const auto x = test::normal<T>(n, d1, 100 + n);
    const auto y = test::related<T>(x, d2, 200 + n);
    const oracle::mat<double> kd = oracle::gram_linear<double>(x.template cast<double>());
    const oracle::mat<double> ld = oracle::gram_linear<double>(y.template cast<double>());
    for (bool unbiased : {false, true}) {
      const estimator est = unbiased ? estimator::unbiased : estimator::biased;
      CAPTURE(n, d1, d2, unbiased);
      const double expected = oracle::cka(kd, ld, unbiased);
      CHECK(test::rel_err(cka::linear_cka(x, y, est), expected) < tol<T>());
      const test::mat<T> k = x * x.transpose(), l = y * y.transpose();
      CHECK(test::rel_err(cka::gram_cka(k, l, est), expected) < tol<T>());
    }
  }
}

TEMPLATE_TEST_CASE("kernel_cka matches the oracle for each built-in kernel", "[cka][kernels][oracle]", float,
                   double) {
  using T = TestType;
  const Eigen::Index n = 41;
  const auto x = test::normal<T>(n, 7, 1);
  const auto y = test::related<T>(x, 12, 2);
  const oracle::mat<double> xd = x.template cast<double>(), yd = y.template cast<double>();
  for (bool unbiased : {false, true}) {
    const estimator est = unbiased ? estimator::unbiased : estimator::biased;
    CAPTURE(unbiased);
    // Fixed bandwidths, a different one for each side.
    CHECK(test::rel_err(cka::kernel_cka(x, y, cka::rbf_kernel{2.0}, cka::rbf_kernel{3.5}, est),
                        oracle::cka(oracle::gram_rbf(xd, 4.0), oracle::gram_rbf(yd, 12.25), unbiased)) < tol<T>());
    // Median bandwidths, resolved separately for X and for Y under each rule.
    for (bool all_pairs : {true, false}) {
      const auto rule = all_pairs ? cka::median_rule::all_pairs : cka::median_rule::off_diagonal;
      const double sx = 0.25 * oracle::median_sq(oracle::squared_distances(xd), all_pairs);
      const double sy = 0.25 * oracle::median_sq(oracle::squared_distances(yd), all_pairs);
      CHECK(test::rel_err(cka::kernel_cka(x, y, cka::rbf_kernel::median(0.5, rule), est),
                          oracle::cka(oracle::gram_rbf(xd, sx), oracle::gram_rbf(yd, sy), unbiased)) < tol<T>());
    }
    const cka::polynomial_kernel poly{3, 0.1, 1.0};
    CHECK(test::rel_err(cka::kernel_cka(x, y, poly, est),
                        oracle::cka(oracle::gram_poly(xd, 3, 0.1, 1.0), oracle::gram_poly(yd, 3, 0.1, 1.0), unbiased)) <
          tol<T>());
    // The linear kernel through kernel_cka, and through explicit Grams, is linear CKA.
    const T lin = cka::linear_cka(x, y, est);
    CHECK(test::rel_err(cka::kernel_cka(x, y, cka::linear_kernel{}, est), lin) < tol<T>());
    CHECK(test::rel_err(cka::gram_cka(cka::gram(x, cka::linear_kernel{}), cka::gram(y, cka::linear_kernel{}), est),
                        lin) < tol<T>());
  }
}

TEST_CASE("CKA identities: symmetry, self-similarity, invariances", "[cka][identity]") {
  const Eigen::Index n = 60;
  const auto x = test::normal<double>(n, 8, 7);
  const auto y = test::related<double>(x, 10, 8);
  const test::mat<double> q = Eigen::HouseholderQR<test::mat<double>>(test::normal<double>(10, 10, 9)).householderQ();
  const cka::rbf_kernel rbf = cka::rbf_kernel::median();

  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    const double base = cka::linear_cka(x, y, est);
    const double kbase = cka::kernel_cka(x, y, rbf, est);
    CHECK(test::rel_err(cka::linear_cka(y, x, est), base) < 1e-12);
    CHECK(test::rel_err(cka::kernel_cka(y, x, rbf, est), kbase) < 1e-12);
    CHECK(test::rel_err(cka::linear_cka(x, x, est), 1.0) < 1e-12);
    CHECK(test::rel_err(cka::kernel_cka(x, x, rbf, est), 1.0) < 1e-12);

    const test::mat<double> rotated = y * q;
    const test::mat<double> scaled = 3.7 * y;
    const test::mat<double> shifted = (y.rowwise() + test::normal<double>(1, 10, 10).row(0) * 50.0).eval();
    CHECK(test::rel_err(cka::linear_cka(x, rotated, est), base) < 1e-12);
    CHECK(test::rel_err(cka::linear_cka(x, scaled, est), base) < 1e-12);
    CHECK(test::rel_err(cka::linear_cka(x, shifted, est), base) < 1e-12);
    // The RBF kernel with a median bandwidth is invariant to the same three maps.
    CHECK(test::rel_err(cka::kernel_cka(x, rotated, rbf, est), kbase) < 1e-12);
    CHECK(test::rel_err(cka::kernel_cka(x, scaled, rbf, est), kbase) < 1e-12);
    CHECK(test::rel_err(cka::kernel_cka(x, shifted, rbf, est), kbase) < 1e-12);

    // Not invariant to a general invertible linear map: stretch one direction hard.
    test::mat<double> stretch = test::mat<double>::Identity(10, 10);
    stretch(0, 0) = 25.0;
    const double moved = cka::linear_cka(x, (y * q * stretch).eval(), est);
    CHECK(std::abs(moved - base) > 1e-2);
  }
}

TEST_CASE("float input with a large offset keeps its CKA", "[cka][float]") {
  // The pitfall of Gram-space centering in float: +1e4 on every feature. Our float result must match the
  // double computation on the very same float values.
  const auto x = test::normal<float>(500, 20, 21);
  const auto y = test::related<float>(x, 30, 22);
  const test::mat<float> xs = (x.array() + 1.0e4f).matrix(), ys = (y.array() + 1.0e4f).matrix();
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    const double expected = cka::linear_cka(xs.cast<double>(), ys.cast<double>(), est);
    CHECK(test::rel_err(cka::linear_cka(xs, ys, est), expected) < 1e-6);
    // Gram-space route (n < d1 + d2) too.
    CHECK(test::rel_err(cka::linear_cka(xs.topRows(40), ys.topRows(40), est),
                        cka::linear_cka(xs.topRows(40).cast<double>(), ys.topRows(40).cast<double>(), est)) < 1e-6);
    // And it is still close to the unshifted value (the shift only rounds the inputs, ~1e-3 absolute).
    CHECK(std::abs(cka::linear_cka(xs, ys, est) - cka::linear_cka(x, y, est)) < 1e-2);
  }
}

TEST_CASE("debiased CKA is returned as computed, negative included", "[cka][unbiased]") {
  // Independent small samples: the debiased estimate scatters around 0 and must come back negative for
  // some seeds rather than being clamped.
  int negatives = 0;
  for (std::uint64_t seed = 0; seed < 40; ++seed) {
    const auto x = test::normal<double>(8, 3, 1000 + seed);
    const auto z = test::normal<double>(8, 3, 2000 + seed);
    const double v = cka::linear_cka(x, z, estimator::unbiased);
    const double o = oracle::cka(oracle::gram_linear(x), oracle::gram_linear(z), true);
    CHECK(std::abs(v - o) < 1e-10 * std::max(1.0, std::abs(o)));
    negatives += v < 0;
  }
  CHECK(negatives > 0);
}

TEST_CASE("every dense Eigen input type gives the same value", "[cka][views]") {
  const auto x = test::normal<double>(50, 6, 31);
  const auto y = test::related<double>(x, 9, 32);
  const double expected = cka::linear_cka(x, y);
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xr = x, yr = y;
  CHECK(test::rel_err(cka::linear_cka(xr, yr), expected) < 1e-13);
  CHECK(test::rel_err(cka::linear_cka(xr, y), expected) < 1e-13);
  // Map over foreign memory, row-major like a framework tensor.
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> xm(xr.data(), 50, 6);
  CHECK(test::rel_err(cka::linear_cka(xm, y), expected) < 1e-13);
  // Blocks of a larger matrix, and a lazy expression.
  test::mat<double> big = test::mat<double>::Zero(70, 20);
  big.block(5, 3, 50, 6) = x;
  CHECK(test::rel_err(cka::linear_cka(big.block(5, 3, 50, 6), y), expected) < 1e-13);
  CHECK(test::rel_err(cka::linear_cka(x * 2.0, y), expected) < 1e-13);
  CHECK(test::rel_err(cka::kernel_cka(xm, big.block(5, 3, 50, 6), cka::rbf_kernel::median()),
                      cka::kernel_cka(x, x, cka::rbf_kernel::median())) < 1e-13);
  const test::mat<double> k = cka::gram(x, cka::linear_kernel{});
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> kr = k;
  CHECK(test::rel_err(cka::gram_cka(kr, cka::gram(y, cka::linear_kernel{})), expected) < 1e-12);
}
