// Squared MMD against explicit double sums.
#include "oracle.hpp"
#include "support.hpp"

#include <cka/cka.hpp>

#include <catch2/catch.hpp>

using cka::estimator;

TEMPLATE_TEST_CASE("mmd2 matches explicit sums", "[mmd][oracle]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-11;
  const auto x = test::normal<T>(31, 4, 1);
  const test::mat<T> y = (test::normal<T>(19, 4, 2).array() + T(0.7)).matrix();
  const oracle::mat<double> xd = x.template cast<double>(), yd = y.template cast<double>();
  auto rbf = [](const auto& a, const auto& b) { return std::exp(-(a - b).squaredNorm() / (2 * 1.3 * 1.3)); };
  auto lin = [](const auto& a, const auto& b) { return a.dot(b); };
  for (bool unbiased : {false, true}) {
    const estimator est = unbiased ? estimator::unbiased : estimator::biased;
    CAPTURE(unbiased);
    CHECK(test::rel_err(cka::mmd2(x, y, cka::rbf_kernel{1.3}, est), oracle::mmd2(xd, yd, rbf, unbiased)) < tol);
    CHECK(test::rel_err(cka::mmd2(x, y, cka::linear_kernel{}, est), oracle::mmd2(xd, yd, lin, unbiased)) < tol);
  }
  // Biased linear MMD² is the squared distance between the means.
  const double means = (xd.colwise().mean() - yd.colwise().mean()).squaredNorm();
  CHECK(test::rel_err(cka::mmd2(x, y, cka::linear_kernel{}), means) < tol);
}

TEST_CASE("mmd2 with a median bandwidth uses the pooled sample", "[mmd][median]") {
  const auto x = test::normal<double>(20, 3, 3);
  const auto y = test::normal<double>(25, 3, 4);
  oracle::mat<double> z(45, 3);
  z << x, y;
  const double s2 = oracle::median_sq(oracle::squared_distances(z), true);
  auto rbf = [s2](const auto& a, const auto& b) { return std::exp(-(a - b).squaredNorm() / (2 * s2)); };
  CHECK(test::rel_err(cka::mmd2(x, y, cka::rbf_kernel::median()), oracle::mmd2(x, y, rbf, false)) < 1e-12);
}

TEST_CASE("mmd2 of a sample with itself", "[mmd]") {
  const auto x = test::normal<double>(30, 5, 9);
  // Biased: exactly the same blocks, so zero up to rounding of sums of ~1 (stated margin 1e-14).
  CHECK(std::abs(cka::mmd2(x, x, cka::rbf_kernel{1.0})) < 1e-14);
  // Unbiased with Y = X: 2(S − m²)/(m²(m−1)) with S = Σ Kxx < m² (off-diagonal entries < 1): negative.
  CHECK(cka::mmd2(x, x, cka::rbf_kernel{1.0}, estimator::unbiased) < 0.0);
}
