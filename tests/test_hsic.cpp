// HSIC and Gram centering against the explicit-H and Song et al. oracles.
#include "oracle.hpp"
#include "support.hpp"

#include <cka/cka.hpp>

#include <catch2/catch.hpp>

#include <vector>

using cka::estimator;

namespace {
// Tolerance for a result of scalar T checked against a double-precision oracle.
template <class T>
constexpr double tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-10;
}
}  // namespace

TEMPLATE_TEST_CASE("hsic matches the explicit-H and Song oracles", "[hsic][oracle]", float, double) {
  using T = TestType;
  for (auto [n, d1, d2] : {std::tuple{5, 3, 4}, std::tuple{12, 30, 7}, std::tuple{40, 6, 6}, std::tuple{97, 20, 50}}) {
    const auto x = test::normal<T>(n, d1, 11 + n);
    const auto y = test::related<T>(x, d2, 17 + n);
    const test::mat<T> k = x * x.transpose();
    const test::mat<T> l = cka::gram(y, cka::rbf_kernel{3.0});
    const oracle::mat<double> kd = k.template cast<double>(), ld = l.template cast<double>();
    for (bool unbiased : {false, true}) {
      const estimator est = unbiased ? estimator::unbiased : estimator::biased;
      CAPTURE(n, d1, d2, unbiased);
      CHECK(test::rel_err(cka::hsic(k, l, est), oracle::hsic(kd, ld, unbiased)) < tol<T>());
      CHECK(test::rel_err(cka::hsic(k, k, est), oracle::hsic(kd, kd, unbiased)) < tol<T>());
      // HSIC is symmetric in its arguments.
      CHECK(test::rel_err(cka::hsic(l, k, est), oracle::hsic(kd, ld, unbiased)) < tol<T>());
    }
  }
}

TEMPLATE_TEST_CASE("center_gram gives HKH and the U-centered Gram", "[centering][oracle]", float, double) {
  using T = TestType;
  const Eigen::Index n = 23;
  const auto x = test::normal<T>(n, 5, 3);
  const auto y = test::related<T>(x, 9, 4);
  const test::mat<T> k = x * x.transpose(), l = y * y.transpose();
  const oracle::mat<double> kd = k.template cast<double>(), ld = l.template cast<double>();

  const oracle::mat<double> h = oracle::centering_matrix<double>(n);
  const oracle::mat<double> hkh = h * kd * h;
  const test::mat<T> cb = cka::center_gram(k);
  CHECK((cb.template cast<double>() - hkh).norm() / hkh.norm() < tol<T>());
  CHECK(cb.template cast<double>().rowwise().sum().norm() < tol<T>() * hkh.norm());

  // U-centering: zero diagonal, zero row sums, and ⟨Ũ(K), Ũ(L)⟩ / (n(n−3)) is Song's unbiased HSIC.
  const test::mat<T> uk = cka::center_gram(k, estimator::unbiased);
  const test::mat<T> ul = cka::center_gram(l, estimator::unbiased);
  CHECK(uk.diagonal().cwiseAbs().maxCoeff() == T(0));
  CHECK(uk.template cast<double>().rowwise().sum().norm() < tol<T>() * uk.template cast<double>().norm());
  const double inner = uk.template cast<double>().cwiseProduct(ul.template cast<double>()).sum() / double(n * (n - 3));
  CHECK(test::rel_err(inner, oracle::hsic_unbiased(kd, ld)) < tol<T>());
}

TEST_CASE("hsic of independent samples is near zero and of identical samples positive", "[hsic]") {
  const auto x = test::normal<double>(400, 3, 5);
  const auto z = test::normal<double>(400, 3, 6);
  const test::mat<double> k = cka::gram(x, cka::rbf_kernel{1.0}), l = cka::gram(z, cka::rbf_kernel{1.0});
  const double self = cka::hsic(k, k, estimator::unbiased);
  CHECK(self > 0);
  // Independent draws: the unbiased estimate is within a few standard errors of 0, far below HSIC(K, K).
  CHECK(std::abs(cka::hsic(k, l, estimator::unbiased)) < 0.02 * self);
}

// The Gram checks and the centered products run on the OpenMP threads (strips of tile columns; columns
// summed in column order afterwards): the values are the same bits on 1, 2 or 3 threads, and of two
// asymmetric pairs the larger is named — of two equal ones the first in column order — on any of them.
TEST_CASE("hsic and gram_cka: the same bits and the same named pair on any number of threads", "[hsic][threads]") {
  const int threads = Eigen::nbThreads();
  const auto x = test::normal<double>(700, 6, 31);
  const auto y = test::normal<double>(700, 4, 32);
  const test::mat<double> k = x * x.transpose(), l = y * y.transpose();
  test::mat<double> twice = l, equal = l;
  twice(650, 3) += 1.0;   // in the first strip of tile columns
  twice(600, 400) += 2.0;  // in a later one: the larger, named
  equal(650, 3) += 2.0;
  equal(600, 400) += 2.0;  // as large: the first in column order, (650, 3), is named
  std::vector<double> values;
  for (int t : {1, 2, 3}) {
    Eigen::setNbThreads(t);
    CAPTURE(t);
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      values.push_back(cka::hsic(k, l, est));
      values.push_back(cka::gram_cka(k, l, est));
    }
    CHECK_THROWS_WITH(cka::hsic(k, twice), Catch::Matchers::Contains("L is not symmetric") && Catch::Matchers::Contains("(600, 400)"));
    CHECK_THROWS_WITH(cka::hsic(k, equal), Catch::Matchers::Contains("L is not symmetric") && Catch::Matchers::Contains("(650, 3)"));
  }
  Eigen::setNbThreads(threads);
  for (std::size_t i = 4; i < values.size(); ++i) {
    CAPTURE(i);
    CHECK(values[i] == values[i % 4]);
  }
  CHECK(test::rel_err(values[0], oracle::hsic(k, l, false)) < 1e-12);
}

TEMPLATE_TEST_CASE("the Gram check's pass sums the rows of the lower triangle: exactly, in any layout, on any number of threads",
                   "[hsic][centering]", float, double) {
  // Integer entries (below 2^11 in magnitude: every partial sum is exact in double), so the row sums must
  // equal the naive ones exactly; 300 and 1000 rows split into groups of 128 columns and a short last one.
  using T = TestType;
  const int threads = Eigen::nbThreads();
  for (Eigen::Index n : {Eigen::Index(5), Eigen::Index(300), Eigen::Index(1000)}) {
    test::mat<T> k(n, n);
    for (Eigen::Index j = 0; j < n; ++j) {
      for (Eigen::Index i = j; i < n; ++i) k(i, j) = k(j, i) = T(((i * 7919 + j * 104729) % 2001) - 1000);
    }
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rows_first = k;
    Eigen::VectorXd naive = k.template cast<double>().rowwise().sum();
    for (int t : {1, 3}) {
      Eigen::setNbThreads(t);
      CAPTURE(n, t);
      cka::detail::lower_row_sums<double> a(n), b(n);
      cka::detail::require_symmetric_gram("test", "K", k, a);
      cka::detail::require_symmetric_gram("test", "K", rows_first, b);
      CHECK(a.total() == naive);
      CHECK(b.total() == naive);
    }
  }
  Eigen::setNbThreads(threads);
}
