// HSIC and Gram centering against the explicit-H and Song et al. oracles.
#include "oracle.hpp"
#include "support.hpp"

#include <cka/cka.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
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

TEMPLATE_TEST_CASE("center_gram reads any layout: column-major, row-major and a strided block give HKH and agree",
                   "[centering][oracle]", float, double) {
  // Sizes around the tile of 32 and above the 256 rows where the copy is written on the OpenMP threads.
  using T = TestType;
  for (Eigen::Index n : {Eigen::Index(5), Eigen::Index(33), Eigen::Index(300)}) {
    const auto x = test::normal<T>(n, 4, 7 + int(n));
    const test::mat<T> k = (x * x.transpose()).array() + T(2);
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rows_first = k;
    test::mat<T> big = test::mat<T>::Constant(n + 9, n + 5, T(7));
    big.block(3, 2, n, n) = k;
    const auto inner = big.block(3, 2, n, n);
    const oracle::mat<double> kd = k.template cast<double>();
    const oracle::mat<double> h = oracle::centering_matrix<double>(n);
    const oracle::mat<double> hkh = h * kd * h;
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      CAPTURE(n, est == estimator::unbiased);
      const test::mat<T> c = cka::center_gram(k, est);
      CHECK((cka::center_gram(rows_first, est) - c).template cast<double>().norm() <= tol<T>() * c.template cast<double>().norm());
      CHECK((cka::center_gram(inner, est) - c).template cast<double>().norm() <= tol<T>() * c.template cast<double>().norm());
      if (est == estimator::biased) {
        CHECK((c.template cast<double>() - hkh).norm() / hkh.norm() < tol<T>());
      } else {
        CHECK(c.diagonal().cwiseAbs().maxCoeff() == T(0));
        CHECK(c.template cast<double>().rowwise().sum().norm() < tol<T>() * c.template cast<double>().norm());
      }
    }
  }
}

TEST_CASE("hsic of Grams beyond 2^+-200 reads scaled views of any layout: the exact multiple of the unscaled value",
          "[hsic][scale]") {
  // K·2^700 and L·2^-690: HSIC is 2^10 times HSIC(K, L), each Gram read through its scaled view.
  for (Eigen::Index n : {Eigen::Index(6), Eigen::Index(300)}) {
    const auto x = test::normal<double>(n, 4, 40 + int(n)), y = test::related<double>(x, 3, 41 + int(n));
    const test::mat<double> k = cka::gram(x, cka::rbf_kernel{1.5}), l = cka::gram(y, cka::polynomial_kernel{2, 0.5, 1.0});
    const test::mat<double> kb = k * std::ldexp(1.0, 700), ls = l * std::ldexp(1.0, -690);
    const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rows_first = ls;
    test::mat<double> padded = test::mat<double>::Constant(n + 4, n + 3, 1e300);
    padded.block(2, 1, n, n) = kb;
    const auto inner = padded.block(2, 1, n, n);
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      CAPTURE(n, est == estimator::unbiased);
      const double expected = std::ldexp(cka::hsic(k, l, est), 10);
      CHECK(test::rel_err(cka::hsic(kb, ls, est), expected) < 1e-13);
      CHECK(test::rel_err(cka::hsic(inner, rows_first, est), expected) < 1e-13);
      CHECK(test::rel_err(cka::hsic(rows_first, inner, est), expected) < 1e-13);
    }
  }
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

// The check walks tile pairs line by line and flags a tile whose differences are not all finite: a NaN or
// an infinity on either side (two equal infinities included), or finite entries whose difference
// overflows. The first non-finite entry in column order is named, else the overflowed pair; in either
// layout, in the last (short) tile, above and below the diagonal.
TEMPLATE_TEST_CASE("the Gram check names a non-finite entry or an overflowed asymmetry in any layout", "[hsic][errors]",
                   float, double) {
  using T = TestType;
  using rmat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto x = test::normal<double>(150, 3, 41);
  const test::mat<T> k = (x * x.transpose()).template cast<T>();
  const T inf = std::numeric_limits<T>::infinity(), big = std::numeric_limits<T>::max() / 4 * 3;
  struct change {
    Eigen::Index i, j;
    T value;
    bool mirrored;  // the same value at (j, i) too
  };
  const std::vector<std::pair<std::vector<change>, std::string>> cases = {
      {{{140, 10, T(std::nan("")), false}}, "(140, 10) = nan is not finite"},
      {{{10, 140, T(std::nan("")), false}}, "(10, 140) = nan is not finite"},
      {{{130, 70, inf, true}}, "(130, 70) = inf is not finite"},
      {{{149, 149, -inf, false}}, "(149, 149) = -inf is not finite"},
      {{{120, 5, big, false}, {5, 120, -big, false}}, " is not symmetric: (120, 5)"},
  };
  for (const auto& [changes, message] : cases) {
    CAPTURE(message);
    test::mat<T> bad = k;
    for (const change& c : changes) {
      bad(c.i, c.j) = c.value;
      if (c.mirrored) bad(c.j, c.i) = c.value;
    }
    const rmat bad_rows = bad;
    CHECK_THROWS_WITH(cka::hsic(k, bad), Catch::Matchers::Contains("L" + message));
    CHECK_THROWS_WITH(cka::hsic(bad_rows, rmat(k)), Catch::Matchers::Contains("K" + message));
    CHECK_THROWS_WITH(cka::center_gram(bad), Catch::Matchers::Contains(message));
  }
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

TEMPLATE_TEST_CASE("row_sums_of and the Gram check's pass give the same bits: one rule for the row sums", "[hsic][centering]",
                   float, double) {
  // Entries with full mantissas, so a different order of addition would show in the last bits; the
  // centerings (both estimators) that the two routes give are therefore equal too.
  using T = TestType;
  const int threads = Eigen::nbThreads();
  std::mt19937_64 gen(23);
  std::normal_distribution<double> normal;
  for (Eigen::Index n : {Eigen::Index(7), Eigen::Index(300), Eigen::Index(1000)}) {
    test::mat<T> k(n, n);
    for (Eigen::Index j = 0; j < n; ++j) {
      for (Eigen::Index i = j; i < n; ++i) k(i, j) = k(j, i) = T(normal(gen) * 1e3 + 0.1);
    }
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rows_first = k;
    for (int t : {1, 3}) {
      Eigen::setNbThreads(t);
      CAPTURE(n, t);
      // The same bits within a layout (a row-major block's column sums vectorise in another order).
      cka::detail::lower_row_sums<double> checked(n), checked_rows(n);
      cka::detail::require_symmetric_gram("test", "K", k, checked);
      cka::detail::require_symmetric_gram("test", "K", rows_first, checked_rows);
      const Eigen::VectorXd walked = cka::detail::row_sums_of<double>(k);
      CHECK(walked == checked.total());
      CHECK(cka::detail::row_sums_of<double>(rows_first) == checked_rows.total());
      const Eigen::VectorXd naive = k.template cast<double>().rowwise().sum();
      CHECK(test::rel_err(walked.sum(), naive.sum()) < 1e-12);
      CHECK((walked - naive).cwiseAbs().maxCoeff() < 1e-12 * k.template cast<double>().cwiseAbs().rowwise().sum().maxCoeff());
      for (cka::estimator est : {cka::estimator::biased, cka::estimator::unbiased}) {
        const auto pair = cka::detail::require_gram_pair<double>("test", k, rows_first, est);
        const auto own = cka::detail::centering_of<double>(k, est);
        const auto own_rows = cka::detail::centering_of<double>(rows_first, est);
        CHECK(pair.k.u == own.u);
        CHECK(pair.k.c == own.c);
        CHECK(pair.l.u == own_rows.u);
        CHECK(pair.l.c == own_rows.c);
      }
    }
  }
  Eigen::setNbThreads(threads);
}
