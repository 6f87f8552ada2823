// Bad input: every case throws the documented exception with a message naming the function and values.
#include "support.hpp"

#include <cka/cka.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using cka::estimator;
using Catch::Matchers::Contains;

namespace {
const double not_a_number = std::numeric_limits<double>::quiet_NaN();
const double inf = std::numeric_limits<double>::infinity();
}  // namespace

TEST_CASE("different sample counts", "[errors]") {
  const auto x = test::normal<double>(10, 3, 1), y = test::normal<double>(12, 3, 2);
  CHECK_THROWS_AS(cka::linear_cka(x, y), std::invalid_argument);
  CHECK_THROWS_WITH(cka::linear_cka(x, y), Contains("cka::linear_cka") && Contains("10") && Contains("12"));
  CHECK_THROWS_WITH(cka::kernel_cka(x, y, cka::rbf_kernel{1.0}), Contains("cka::kernel_cka") && Contains("12"));
  const test::mat<double> k = x * x.transpose(), l = y * y.transpose();
  CHECK_THROWS_AS(cka::hsic(k, l), cka::invalid_argument);
  CHECK_THROWS_WITH(cka::gram_cka(k, l), Contains("cka::gram_cka") && Contains("10x10") && Contains("12x12"));
}

TEST_CASE("fewer samples than the estimator needs", "[errors]") {
  const auto x1 = test::normal<double>(1, 3, 1), x3 = test::normal<double>(3, 3, 2);
  CHECK_THROWS_WITH(cka::linear_cka(x1, x1), Contains("1 samples") && Contains("at least 2"));
  CHECK_THROWS_WITH(cka::linear_cka(x3, x3, estimator::unbiased),
                    Contains("3 samples") && Contains("unbiased") && Contains("at least 4"));
  CHECK_NOTHROW(cka::linear_cka(x3, x3));
  const test::mat<double> k3 = x3 * x3.transpose();
  CHECK_THROWS_AS(cka::hsic(k3, k3, estimator::unbiased), std::invalid_argument);
  CHECK_THROWS_AS(cka::center_gram(k3, estimator::unbiased), std::invalid_argument);
  CHECK_THROWS_AS(cka::mmd2(x1, x3, cka::rbf_kernel{1.0}, estimator::unbiased), std::invalid_argument);
  CHECK_NOTHROW(cka::mmd2(x1, x3, cka::rbf_kernel{1.0}));
}

TEST_CASE("different feature counts in mmd2", "[errors]") {
  const auto x = test::normal<double>(10, 3, 1), y = test::normal<double>(10, 4, 2);
  CHECK_THROWS_AS(cka::mmd2(x, y, cka::linear_kernel{}), std::invalid_argument);
  CHECK_THROWS_WITH(cka::mmd2(x, y, cka::linear_kernel{}), Contains("cka::mmd2") && Contains("3") && Contains("4"));
}

TEST_CASE("NaN and infinity in any input", "[errors]") {
  for (double bad : {not_a_number, inf, -inf}) {
    auto x = test::normal<double>(10, 3, 1);
    const auto y = test::normal<double>(10, 3, 2);
    x(4, 2) = bad;
    CHECK_THROWS_AS(cka::linear_cka(x, y), std::invalid_argument);
    CHECK_THROWS_WITH(cka::linear_cka(y, x), Contains("Y(4, 2)") && Contains("not finite"));
    CHECK_THROWS_AS(cka::kernel_cka(x, y, cka::rbf_kernel::median()), std::invalid_argument);
    CHECK_THROWS_AS(cka::mmd2(y, x, cka::rbf_kernel{1.0}), std::invalid_argument);
    CHECK_THROWS_AS(cka::gram(x, cka::linear_kernel{}), std::invalid_argument);
    test::mat<double> k = y * y.transpose();
    k(3, 3) = bad;
    CHECK_THROWS_WITH(cka::hsic(k, k), Contains("cka::hsic") && Contains("K(3, 3)"));
    const auto xf = test::normal<float>(10, 3, 3);
    test::mat<float> yf = xf;
    yf(0, 0) = static_cast<float>(bad);
    CHECK_THROWS_AS(cka::linear_cka(xf, yf), std::invalid_argument);
  }
}

TEST_CASE("bandwidth and kernel parameters", "[errors]") {
  for (double bad : {0.0, -1.0, not_a_number, inf}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(cka::rbf_kernel{bad}, std::invalid_argument);
    CHECK_THROWS_AS(cka::rbf_kernel::median(bad), std::invalid_argument);
  }
  CHECK_THROWS_WITH(cka::rbf_kernel{-2.0}, Contains("cka::rbf_kernel") && Contains("sigma = -2"));
  const auto x = test::normal<double>(10, 3, 1);
  CHECK_THROWS_AS(cka::gram(x, cka::polynomial_kernel{0, 1.0, 1.0}), std::invalid_argument);
  // A median bandwidth of zero: more than half the points coincide.
  test::mat<double> dup = test::mat<double>::Zero(10, 3);
  dup(0, 0) = 1.0;
  CHECK_THROWS_AS(cka::gram(dup, cka::rbf_kernel::median()), std::domain_error);
}

// The Gram checks find a non-finite entry inside their symmetry pass over pairs of 32×32 tiles (and the
// largest magnitude for hsic's scaling): wherever it lies — below or above the diagonal, in one triangle or
// both, in the last tiles, after an asymmetric pair — the message names the first one in column order.
TEST_CASE("a non-finite entry anywhere in a Gram, found by the symmetry pass", "[errors]") {
  const auto x = test::normal<double>(70, 4, 5);
  const test::mat<double> k = x * x.transpose();
  using entry = std::pair<Eigen::Index, Eigen::Index>;
  const std::vector<std::vector<entry>> placements = {{{40, 2}}, {{2, 40}}, {{40, 2}, {2, 40}}, {{69, 69}}, {{65, 33}}, {{0, 0}}};
  for (double bad : {not_a_number, inf, -inf}) {
    for (const auto& where : placements) {
      test::mat<double> b = k;
      for (const auto& [i, j] : where) b(i, j) = bad;
      const entry first = *std::min_element(where.begin(), where.end(), [](const entry& p, const entry& q) {
        return std::make_pair(p.second, p.first) < std::make_pair(q.second, q.first);
      });
      const std::string named = "L(" + std::to_string(first.first) + ", " + std::to_string(first.second) + ")";
      CAPTURE(bad, named);
      CHECK_THROWS_WITH(cka::hsic(k, b), Contains("cka::hsic") && Contains(named) && Contains("not finite"));
      CHECK_THROWS_WITH(cka::gram_cka(k, b), Contains(named) && Contains("not finite"));
      const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rb = b;
      CHECK_THROWS_WITH(cka::hsic(k, rb), Contains(named) && Contains("not finite"));
      const test::mat<float> fb = b.cast<float>(), fk = k.cast<float>();
      CHECK_THROWS_WITH(cka::hsic(fk, fb), Contains(named) && Contains("not finite"));
      b(50, 1) += 1.0;  // an asymmetric pair in an earlier tile: the non-finite entry is still what is named
      CHECK_THROWS_WITH(cka::hsic(k, b), Contains(named) && Contains("not finite"));
    }
  }
}

TEST_CASE("Gram matrices that are not square or not symmetric", "[errors]") {
  const auto x = test::normal<double>(8, 3, 1);
  const test::mat<double> k = x * x.transpose();
  const test::mat<double> rect = test::normal<double>(8, 7, 2);
  CHECK_THROWS_WITH(cka::hsic(rect, k), Contains("8x7") && Contains("square"));
  CHECK_THROWS_AS(cka::gram_cka(k, rect), std::invalid_argument);
  test::mat<double> asym = k;
  asym(5, 1) += 0.1;
  CHECK_THROWS_WITH(cka::gram_cka(k, asym), Contains("L is not symmetric") && Contains("(5, 1)"));
  CHECK_THROWS_AS(cka::center_gram(asym), std::invalid_argument);
  // Rounding-level asymmetry (as left by a float GEMM) is accepted.
  test::mat<float> kf = (x * x.transpose()).cast<float>();
  kf(5, 1) = std::nextafter(kf(5, 1), 1e9f);
  CHECK_NOTHROW(cka::hsic(kf, kf));
}

TEST_CASE("a backend failure is not an undefined value", "[errors]") {
  // Code that catches std::domain_error to skip a constant layer must not swallow a driver failure.
  static_assert(std::is_base_of_v<std::runtime_error, cka::backend_error>);
  static_assert(!std::is_base_of_v<std::domain_error, cka::backend_error>);
  static_assert(!std::is_base_of_v<std::invalid_argument, cka::backend_error>);
  bool skipped = false, reported = false;
  try {
    try {
      throw cka::backend_error("cka::device::cuda: CUDA error in cudaMallocAsync: out of memory");
    } catch (const std::domain_error&) {
      skipped = true;
    }
  } catch (const std::runtime_error& e) {
    reported = std::string(e.what()).find("cudaMallocAsync") != std::string::npos;
  }
  CHECK_FALSE(skipped);
  CHECK(reported);
}

TEST_CASE("zero variance makes CKA undefined", "[errors][domain]") {
  const auto y = test::normal<double>(12, 4, 1);
  // All rows equal, with values that do not sum exactly in floating point.
  const test::mat<double> flat = test::mat<double>::Constant(12, 4, 0.1);
  const test::mat<double> flat_wide = test::mat<double>::Constant(12, 40, 0.3);  // Gram-space route
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    CHECK_THROWS_AS(cka::linear_cka(flat, y, est), std::domain_error);
    CHECK_THROWS_WITH(cka::linear_cka(y, flat, est), Contains("cka::linear_cka") && Contains("second representation"));
    CHECK_THROWS_AS(cka::linear_cka(flat_wide, y, est), cka::domain_error);
    CHECK_THROWS_AS(cka::kernel_cka(flat, y, cka::rbf_kernel{1.0}, est), std::domain_error);
    CHECK_THROWS_AS(cka::kernel_cka(y, flat, cka::polynomial_kernel{}, est), std::domain_error);
    const test::mat<double> ones = test::mat<double>::Constant(12, 12, 0.7);
    CHECK_THROWS_WITH(cka::gram_cka(ones, y * y.transpose(), est),
                      Contains("cka::gram_cka") && Contains("first representation"));
  }
}
