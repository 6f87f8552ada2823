// High precision: every estimator instantiated in long double and in 50-digit cpp_bin_float_50, and the
// double and float results checked against the naive formulas evaluated in 50 digits on the same inputs.
#include "oracle.hpp"
#include "support.hpp"

#include <cka/cka.hpp>
#include <cka/state.hpp>

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <boost/multiprecision/eigen.hpp>
#include <catch2/catch.hpp>

#include <algorithm>

using cka::estimator;
using mp = boost::multiprecision::cpp_bin_float_50;

namespace {
template <class T>
oracle::mat<mp> to_mp(const test::mat<T>& m) {
  return m.template cast<double>().template cast<mp>();
}
double rel(const mp& a, const mp& b) { return static_cast<double>(abs(mp(a - b)) / abs(b)); }

const std::tuple<int, int, int> shapes[] = {{9, 2, 3}, {24, 5, 7}, {12, 20, 16}};
}  // namespace

TEST_CASE("double and float CKA against a 50-digit oracle", "[precision]") {
  double worst_double = 0, worst_float = 0;
  for (auto [n, d1, d2] : shapes) {
    const auto x = test::normal<double>(n, d1, 500 + n);
    const auto y = test::related<double>(x, d2, 600 + n);
    const test::mat<float> xf = x.cast<float>(), yf = y.cast<float>();
    for (bool unbiased : {false, true}) {
      const estimator est = unbiased ? estimator::unbiased : estimator::biased;
      const mp ref = oracle::cka(oracle::gram_linear(to_mp(x)), oracle::gram_linear(to_mp(y)), unbiased);
      const mp ref_f = oracle::cka(oracle::gram_linear(to_mp(xf)), oracle::gram_linear(to_mp(yf)), unbiased);
      worst_double = std::max(worst_double, rel(mp(cka::linear_cka(x, y, est)), ref));
      worst_float = std::max(worst_float, rel(mp(cka::linear_cka(xf, yf, est)), ref_f));

      const mp s2x = oracle::median_sq(oracle::squared_distances(to_mp(x)), true);
      const mp s2y = oracle::median_sq(oracle::squared_distances(to_mp(y)), true);
      const mp kref = oracle::cka(oracle::gram_rbf(to_mp(x), s2x), oracle::gram_rbf(to_mp(y), s2y), unbiased);
      worst_double = std::max(worst_double, rel(mp(cka::kernel_cka(x, y, cka::rbf_kernel::median(), est)), kref));
      // The tile engine's other way: tiles recomputed in every pass.
      cka::compute_options recompute;
      recompute.max_bytes = 1;
      worst_double = std::max(worst_double, rel(mp(cka::kernel_cka(x, y, cka::rbf_kernel::median(), est, recompute)), kref));
      // RBF MMD on the tile engine (stored and recomputed) against the pooled 50-digit Gram.
      const test::mat<double> y2 = 0.5 * y.leftCols(std::min(d1, d2)), x2 = x.leftCols(std::min(d1, d2));
      const mp s2 = mp(1.5) * mp(1.5);
      auto rbf = [&](const auto& a, const auto& b) { return mp(exp(mp(-(a - b).squaredNorm() / (2 * s2)))); };
      const mp mref = oracle::mmd2<mp>(to_mp(x2), to_mp(y2), rbf, unbiased);
      worst_double = std::max(worst_double, rel(mp(cka::mmd2(x2, y2, cka::rbf_kernel{1.5}, est)), mref));
      worst_double = std::max(worst_double, rel(mp(cka::mmd2(x2, y2, cka::rbf_kernel{1.5}, est, recompute)), mref));
      // The inner-product kernels on the tile engine, stored and recomputed: a polynomial (raw features)
      // against the linear kernel (centered), and the polynomial MMD.
      const cka::polynomial_kernel cubic{3, 0.3, 1.0};
      const mp pref = oracle::cka(oracle::gram_poly(to_mp(x), 3, mp(0.3), mp(1)), oracle::gram_linear(to_mp(y)), unbiased);
      for (const cka::compute_options& co : {cka::compute_options{}, recompute}) {
        worst_double = std::max(worst_double, rel(mp(cka::kernel_cka(x, y, cubic, cka::linear_kernel{}, est, co)), pref));
      }
      auto poly = [&](const auto& a, const auto& b) { return mp(pow(mp(mp(0.3) * a.dot(b) + 1), 3)); };
      const mp pmref = oracle::mmd2<mp>(to_mp(x2), to_mp(y2), poly, unbiased);
      worst_double = std::max(worst_double, rel(mp(cka::mmd2(x2, y2, cubic, est)), pmref));
      worst_double = std::max(worst_double, rel(mp(cka::mmd2(x2, y2, cubic, est, recompute)), pmref));
    }
  }
  WARN("largest relative error vs 50 digits: double " << worst_double << ", float " << worst_float);
  CHECK(worst_double <= 1e-12);
  CHECK(worst_float <= 1e-5);
}

TEST_CASE("the estimators instantiate and agree in cpp_bin_float_50 and long double", "[precision]") {
  const auto xd = test::normal<double>(14, 3, 71);
  const auto yd = test::related<double>(xd, 18, 72);  // d1 + d2 > n: the Gram-space route
  const oracle::mat<mp> x = to_mp(xd), y = to_mp(yd);
  const oracle::mat<mp> k = oracle::gram_linear(x), l = oracle::gram_linear(y);
  const mp tight("1e-40");
  for (bool unbiased : {false, true}) {
    const estimator est = unbiased ? estimator::unbiased : estimator::biased;
    CAPTURE(unbiased);
    CHECK(rel(cka::hsic(k, l, est), oracle::hsic(k, l, unbiased)) < tight);
    CHECK(rel(cka::gram_cka(k, l, est), oracle::cka(k, l, unbiased)) < tight);
    CHECK(rel(cka::linear_cka(x, y, est), oracle::cka(k, l, unbiased)) < tight);
    CHECK(rel(cka::linear_cka(x.leftCols(2), y.leftCols(3), est),
              oracle::cka(oracle::gram_linear<mp>(x.leftCols(2)), oracle::gram_linear<mp>(y.leftCols(3)), unbiased)) <
          tight);
    const mp s2 = mp(1.5) * mp(1.5);
    CHECK(rel(cka::kernel_cka(x, y, cka::rbf_kernel{1.5}, est),
              oracle::cka(oracle::gram_rbf(x, s2), oracle::gram_rbf(y, s2), unbiased)) < tight);
    const mp mx = mp(0.25) * oracle::median_sq(oracle::squared_distances(x), false);
    const mp my = mp(0.25) * oracle::median_sq(oracle::squared_distances(y), false);
    CHECK(rel(cka::kernel_cka(x, y, cka::rbf_kernel::median(0.5, cka::median_rule::off_diagonal), est),
              oracle::cka(oracle::gram_rbf(x, mx), oracle::gram_rbf(y, my), unbiased)) < tight);
    auto rbf = [&](const auto& a, const auto& b) { return mp(exp(mp(-(a - b).squaredNorm() / (2 * s2)))); };
    CHECK(rel(cka::mmd2(x, mp(0.5) * y.leftCols(3), cka::rbf_kernel{1.5}, est),
              oracle::mmd2<mp>(x, mp(0.5) * y.leftCols(3), rbf, unbiased)) < tight);

    using ld = long double;
    const test::mat<ld> xl = xd.cast<ld>(), yl = yd.cast<ld>();
    CHECK(rel(mp(cka::linear_cka(xl, yl, est)), oracle::cka(k, l, unbiased)) < mp("1e-15"));
    CHECK(rel(mp(cka::kernel_cka(xl, yl, cka::rbf_kernel{1.5}, est)),
              oracle::cka(oracle::gram_rbf(x, s2), oracle::gram_rbf(y, s2), unbiased)) < mp("1e-15"));
  }
}

TEST_CASE("linear_state in 50 digits against the oracle", "[state][precision]") {
  const auto xd = test::normal<double>(13, 3, 41);
  const auto yd = test::related<double>(xd, 4, 42);
  const oracle::mat<mp> x = xd.cast<mp>(), y = yd.cast<mp>();
  for (bool unbiased : {false, true}) {
    const estimator est = unbiased ? estimator::unbiased : estimator::biased;
    cka::basic_linear_state<mp> s(3, 4);
    s.add(x.topRows(5), y.topRows(5));
    s.add(x.bottomRows(8), y.bottomRows(8));
    const mp expected = oracle::cka(oracle::gram_linear(x), oracle::gram_linear(y), unbiased);
    const mp got = s.cka(est);
    CHECK(static_cast<double>(abs(mp(got - expected)) / abs(expected)) < 1e-40);
  }
}

TEST_CASE("median_squared_distance in every scalar type: values one double cannot tell apart", "[precision][median]") {
  // Squared distances 1 + k·1e-30 (distinct in 50 digits, one double), then values beyond the doubles'
  // range (1e400·(1 + k·1e-20)): the selection orders by the nearest double and must still pick the exact
  // values. No distance is zero, so the nonzero rule's median is the off-diagonal one.
  for (int n : {5, 8, 41}) {
    for (double scale : {1.0, 0.0}) {
      oracle::mat<mp> d = oracle::mat<mp>::Zero(n, n);
      int k = 0;
      for (int j = 0; j < n; ++j)
        for (int i = j + 1; i < n; ++i, ++k) {
          const mp v = scale == 1.0 ? mp(1) + mp((k * 7) % 23) * mp("1e-30") : mp("1e400") * (mp(1) + mp((k * 5) % 17) * mp("1e-20"));
          d(i, j) = d(j, i) = v;
        }
      for (cka::median_rule rule : {cka::median_rule::all_pairs, cka::median_rule::off_diagonal, cka::median_rule::nonzero}) {
        CAPTURE(n, scale, int(rule));
        const mp expected = oracle::median_sq(d, rule == cka::median_rule::all_pairs);
        CHECK(cka::median_squared_distance(d, rule) == expected);
        if (scale == 1.0) {  // the same in long double, where every value rounds to 1 (ties)
          const oracle::mat<long double> dl = d.unaryExpr([](const mp& v) { return static_cast<long double>(v); });
          CHECK(cka::median_squared_distance(dl, rule) == oracle::median_sq(dl, rule == cka::median_rule::all_pairs));
        }
      }
    }
  }
  // Float: integer squared distances, against the oracle in float.
  const auto x = (3 * test::normal<double>(29, 2, 77)).array().round().matrix().cast<float>().eval();
  const oracle::mat<float> df = oracle::squared_distances(test::mat<float>(x));
  for (cka::median_rule rule : {cka::median_rule::all_pairs, cka::median_rule::off_diagonal}) {
    CHECK(cka::median_squared_distance(df, rule) == oracle::median_sq(df, rule == cka::median_rule::all_pairs));
  }
}
