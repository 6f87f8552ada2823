// Significance and precision: the permutation null's exact moments (against all n! permutations), the
// permutation test (reproducible, thread-count independent, uniform under independence), the analytic
// independence test (agreeing with the permutation test), and the jackknife (its O(n²) leave-one-out
// values against n direct recomputations; its coverage on simulated data).
#include "support.hpp"

#include <cka/inference.hpp>
#include <cka/similarity.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

using cka::estimator;
using Catch::Matchers::Contains;

namespace {

/// Kolmogorov–Smirnov distance of a sample from Uniform(0, 1).
double ks_uniform(std::vector<double> p) {
  std::sort(p.begin(), p.end());
  const double n = double(p.size());
  double d = 0;
  for (std::size_t i = 0; i < p.size(); ++i) d = std::max({d, double(i + 1) / n - p[i], p[i] - double(i) / n});
  return d;
}

test::mat<double> independent_pair_y(Eigen::Index n, std::uint64_t seed) { return test::normal<double>(n, 3, seed); }

}  // namespace

TEST_CASE("permutation test: value, reproducibility, thread independence, power", "[inference][permutation]") {
  const auto x = test::normal<double>(40, 4, 3);
  const auto y = test::related<double>(x, 3, 4, 2.0);
  cka::permutation_options o;
  o.count = 199;
  o.seed = 42;
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    const auto r = cka::permutation_test(x, y, cka::linear_kernel{}, est, o);
    CHECK(test::rel_err(r.value, cka::linear_cka(x, y, est)) < 1e-12);
    CHECK(r.permutations == 199);
    CHECK(r.p_value == cka::permutation_test(x, y, cka::linear_kernel{}, est, o).p_value);
    if (test::two_threads_available()) {
      const int threads = Eigen::nbThreads();
      Eigen::setNbThreads(1);
      const double one = cka::permutation_test(x, y, cka::linear_kernel{}, est, o).p_value;
      Eigen::setNbThreads(2);
      const double two = cka::permutation_test(x, y, cka::linear_kernel{}, est, o).p_value;
      Eigen::setNbThreads(threads);
      CHECK(one == two);
    } else {
      WARN("skipped: one thread against two needs OpenMP, absent from this build");
    }
  }
  // Strong dependence: no permutation reaches the observed value.
  const auto strong = test::related<double>(x, 3, 5, 0.1);
  CHECK(cka::permutation_test(x, strong, cka::rbf_kernel::median(), estimator::biased, o).p_value == 1.0 / 200);
  // The seed picks the family of permutations.
  cka::permutation_options other = o;
  other.seed = 7;
  const auto weak = independent_pair_y(40, 9);
  CHECK(cka::permutation_test(x, weak, cka::linear_kernel{}, estimator::biased, o).p_value !=
        cka::permutation_test(x, weak, cka::linear_kernel{}, estimator::biased, other).p_value);
}

TEST_CASE("p-values are uniform under independence and agree between the tests", "[inference][null]") {
  // 150 independent data sets of n = 30: Kolmogorov–Smirnov distance below the 1% critical value 1.63/√150.
  std::vector<double> analytic_u, analytic_b, permuted;
  cka::permutation_options o;
  o.count = 99;
  for (std::uint64_t s = 0; s < 150; ++s) {
    const auto x = test::normal<double>(30, 2, 1000 + s), y = test::normal<double>(30, 3, 5000 + s);
    analytic_u.push_back(cka::independence_test(x, y, cka::linear_kernel{}, estimator::unbiased).p_value);
    analytic_b.push_back(cka::independence_test(x, y, cka::rbf_kernel::median(), estimator::biased).p_value);
    o.seed = s;
    permuted.push_back(cka::permutation_test(x, y, cka::linear_kernel{}, estimator::biased, o).p_value);
  }
  const double critical = 1.63 / std::sqrt(150.0);
  CHECK(ks_uniform(analytic_u) < critical);
  CHECK(ks_uniform(analytic_b) < critical);
  CHECK(ks_uniform(permuted) < critical + 0.01);  // p takes the values k/100
  // n = 200, a weak dependence: the analytic p-values match the permutation p-value (2000 draws, Monte
  // Carlo error ~0.01).
  const auto x = test::normal<double>(200, 3, 11);
  const auto y = test::related<double>(x, 2, 12, 9.0);
  o.count = 2000;
  o.seed = 1;
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    const double p = cka::permutation_test(x, y, cka::linear_kernel{}, est, o).p_value;
    const auto a = cka::independence_test(x, y, cka::linear_kernel{}, est);
    CAPTURE(p, a.p_value, a.z);
    CHECK(p > 0.005);
    CHECK(p < 0.5);
    CHECK(std::abs(a.p_value - p) < 0.035);
    CHECK(test::rel_err(a.value, cka::linear_cka(x, y, est)) < 1e-12);
  }
  // Debiased CKA's z is its value over the exact null standard deviation √(2/(n(n−3))).
  const auto u = cka::independence_test(x, y, cka::linear_kernel{}, estimator::unbiased);
  CHECK(test::rel_err(u.z, u.value * std::sqrt(200.0 * 197.0 / 2.0)) < 1e-12);
}

TEST_CASE("jackknife: the O(n²) leave-one-out values equal n recomputations", "[inference][jackknife]") {
  const auto x = test::normal<double>(14, 3, 21);
  const auto y = test::related<double>(x, 4, 22);
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    for (int kernel = 0; kernel < 2; ++kernel) {
      CAPTURE(est == estimator::unbiased, kernel);
      const auto r = kernel == 0 ? cka::jackknife(x, y, cka::linear_kernel{}, est)
                                 : cka::jackknife(x, y, cka::rbf_kernel{2.0}, est);
      REQUIRE(r.leave_one_out.size() == 14);
      for (Eigen::Index i = 0; i < 14; ++i) {
        test::mat<double> xi(13, 3), yi(13, 4);
        for (Eigen::Index k = 0, row = 0; k < 14; ++k)
          if (k != i) {
            xi.row(row) = x.row(k);
            yi.row(row++) = y.row(k);
          }
        const double direct = kernel == 0 ? cka::linear_cka(xi, yi, est) : cka::kernel_cka(xi, yi, cka::rbf_kernel{2.0}, est);
        CHECK(test::rel_err(r.leave_one_out[std::size_t(i)], direct) < 1e-11);
      }
      CHECK(r.lower < r.value);
      CHECK(r.upper > r.value);
      CHECK(test::rel_err(r.upper - r.value, r.value - r.lower) < 1e-12);
    }
  }
}

TEST_CASE("jackknife intervals cover the population CKA near the nominal level", "[inference][jackknife]") {
  // A fixed population relation; the population linear CKA from n = 200,000 samples.
  const auto w = test::normal<double>(3, 3, 31);
  auto draw = [&](Eigen::Index n, std::uint64_t seed, test::mat<double>& x, test::mat<double>& y) {
    x = test::normal<double>(n, 3, seed);
    y = x * w + 1.5 * test::normal<double>(n, 3, seed + 77777);
  };
  test::mat<double> big_x, big_y;
  draw(200000, 1, big_x, big_y);
  const double truth = cka::linear_cka(big_x, big_y, estimator::unbiased);
  int covered = 0;
  const int sets = 200;
  cka::jackknife_options o;
  o.level = 0.9;
  for (int s = 0; s < sets; ++s) {
    test::mat<double> x, y;
    draw(80, 100 + std::uint64_t(s), x, y);
    const auto r = cka::jackknife(x, y, cka::linear_kernel{}, estimator::unbiased, o);
    covered += r.lower <= truth && truth <= r.upper;
  }
  CAPTURE(covered, truth);
  CHECK(covered >= int(0.82 * sets));
  CHECK(covered <= int(0.97 * sets));
}

TEST_CASE("inference: bad input", "[inference][errors]") {
  const auto x = test::normal<double>(20, 3, 41), y = test::normal<double>(20, 2, 42);
  cka::permutation_options none;
  none.count = 0;
  CHECK_THROWS_WITH(cka::permutation_test(x, y, cka::linear_kernel{}, estimator::biased, none),
                    Contains("cka::permutation_test") && Contains("count = 0"));
  cka::jackknife_options bad;
  bad.level = 1.5;
  CHECK_THROWS_WITH(cka::jackknife(x, y, cka::linear_kernel{}, estimator::biased, bad), Contains("level = 1.5"));
  CHECK_THROWS_AS(cka::independence_test(x.topRows(3), y.topRows(3), cka::linear_kernel{}), std::invalid_argument);
  CHECK_THROWS_AS(cka::independence_test(x, y.topRows(19), cka::linear_kernel{}), std::invalid_argument);
  const test::mat<double> flat = test::mat<double>::Constant(20, 2, 1.0);
  CHECK_THROWS_AS(cka::independence_test(x, flat, cka::linear_kernel{}), std::domain_error);
  CHECK_THROWS_AS(cka::jackknife(x.topRows(5), y.topRows(5), cka::linear_kernel{}, estimator::unbiased),
                  std::invalid_argument);
}

TEST_CASE("similarity_tests: the pairwise tests for every pair, Grams centered once", "[inference][matrix]") {
  const auto x = test::normal<double>(50, 3, 51);
  const std::vector<test::mat<double>> rows = {x, test::related<double>(x, 2, 52, 3.0)};
  const std::vector<test::mat<double>> cols = {test::related<double>(x, 4, 53), test::normal<double>(50, 2, 54),
                                               test::mat<double>::Constant(50, 2, 3.0)};
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    cka::similarity_tests_options o;
    o.est = est;
    o.level = 0.9;
    const auto analytic = cka::similarity_tests(rows, cols, cka::rbf_kernel{1.5}, o);
    o.permutations = 99;
    o.seed = 5;
    const auto permuted = cka::similarity_tests(rows, cols, cka::rbf_kernel{1.5}, o);
    CHECK(test::undefined_layers(analytic) == std::vector<std::size_t>{4});
    cka::permutation_options po;
    po.count = 99;
    po.seed = 5;
    cka::jackknife_options jo;
    jo.level = 0.9;
    for (Eigen::Index i = 0; i < 2; ++i) {
      CHECK(std::isnan(analytic.values(i, 2)));
      CHECK(std::isnan(permuted.p_value(i, 2)));
      for (Eigen::Index j = 0; j < 2; ++j) {
        CAPTURE(i, j, est == estimator::unbiased);
        const auto& a = rows[std::size_t(i)];
        const auto& b = cols[std::size_t(j)];
        const auto t = cka::independence_test(a, b, cka::rbf_kernel{1.5}, est);
        CHECK(test::rel_err(analytic.values(i, j), t.value) < 1e-12);
        CHECK(analytic.p_value(i, j) == Approx(t.p_value).epsilon(1e-12));
        CHECK(permuted.p_value(i, j) == cka::permutation_test(a, b, cka::rbf_kernel{1.5}, est, po).p_value);
        const auto jr = cka::jackknife(a, b, cka::rbf_kernel{1.5}, est, jo);
        CHECK(test::rel_err(analytic.lower(i, j), jr.lower) < 1e-12);
        CHECK(test::rel_err(analytic.upper(i, j), jr.upper) < 1e-12);
      }
    }
  }
}

TEST_CASE("similarity_tests_bytes: what the prepared layers hold, and the budget", "[inference][matrix]") {
  // n = 50: a pair runs in feature space where d_i·d_j <= 2000. Layers of widths 3 and 100: (3, 3),
  // (3, 100), (100, 3) in features, (100, 100) on Grams.
  const double features3 = 8.0 * (50 * 3 + 50), features100 = 8.0 * (50 * 100 + 50), gram = 8.0 * 50 * 50;
  CHECK(cka::similarity_tests_bytes(50, {3, 100}) == features3 + features100 + gram);
  cka::similarity_tests_options o;
  o.permutations = 10;
  CHECK(cka::similarity_tests_bytes(50, {3, 100}, {}, cka::linear_kernel{}, o) == features3 + features100 + gram + 8.0 * 50 * 103);
  CHECK(cka::similarity_tests_bytes(50, {3, 100}, {}, cka::rbf_kernel{1.0}) == 2 * gram);
  // Rectangular: 3 against 100 only (features); 100 prepared against 3 (features).
  CHECK(cka::similarity_tests_bytes(50, {3}, {100}) == features3 + features100);
  CHECK(cka::similarity_tests_bytes(1000000, {10}, {}, cka::rbf_kernel{1.0}) == 8e12);
  CHECK_THROWS_AS(cka::similarity_tests_bytes(-1, {3}), std::invalid_argument);
  CHECK_THROWS_AS(cka::similarity_tests_bytes(5, {3, 0}), std::invalid_argument);

  const std::vector<test::mat<double>> layers = {test::normal<double>(50, 3, 71), test::normal<double>(50, 100, 72)};
  cka::similarity_tests_options tight;
  tight.max_bytes = std::size_t(features3 + features100 + gram);
  const auto r = cka::similarity_tests(layers, cka::linear_kernel{}, tight);  // exactly the budget: runs
  CHECK(std::isfinite(r.values(0, 1)));
  tight.max_bytes -= 1;
  CHECK_THROWS_WITH(cka::similarity_tests(layers, cka::linear_kernel{}, tight),
                    Catch::Contains("cka::similarity_tests: 2 layers of n = 50") && Catch::Contains("max_bytes"));
  // The sample counts are checked first: a mismatch is named, not a budget.
  CHECK_THROWS_WITH(cka::similarity_tests(std::vector<test::mat<double>>{layers[0], test::normal<double>(40, 3, 73)},
                                          cka::linear_kernel{}, tight),
                    Catch::Contains("40 samples but the first has 50"));
}

TEST_CASE("similarity_tests: the square form equals the rectangular one", "[inference][matrix]") {
  const auto x = test::normal<double>(30, 3, 61);
  const std::vector<test::mat<double>> layers = {x, test::related<double>(x, 2, 62), test::normal<double>(30, 4, 63)};
  cka::similarity_tests_options o;
  o.permutations = 49;
  o.level = 0.95;
  const auto sq = cka::similarity_tests(layers, cka::linear_kernel{}, o);
  const auto rect = cka::similarity_tests(layers, layers, cka::linear_kernel{}, o);
  // The square form computes each unordered pair once: its upper triangle is the rectangular form's, and
  // its matrices are symmetric by construction (issue 25, item 11: 0.37 against 0.57 for one pair).
  for (Eigen::Index i = 0; i < 3; ++i)
    for (Eigen::Index j = i; j < 3; ++j) {
      CAPTURE(i, j);
      CHECK(sq.values(i, j) == rect.values(i, j));
      CHECK(sq.lower(i, j) == rect.lower(i, j));
      CHECK(sq.values(j, i) == sq.values(i, j));
      CHECK(sq.p_value(j, i) == sq.p_value(i, j));
      CHECK(sq.upper(j, i) == sq.upper(i, j));
      // The diagonal's p-value is known without drawing (Cauchy–Schwarz); the drawn one agrees.
      CHECK(sq.p_value(i, j) == rect.p_value(i, j));
    }
  CHECK(sq.undefined.empty());
  CHECK(sq.degenerate.empty());
  for (Eigen::Index i = 0; i < 3; ++i) CHECK(sq.values(i, i) == Approx(1.0).epsilon(1e-14));
  CHECK(sq.p_value(0, 0) == 1.0 / 50);
}

// Issue 25, item 11: a permutation-invariant layer (one-hot rows of distinct classes, biased estimator:
// its centered Gram is H, and P H Pᵀ = H). Every permutation gives the observed value, so the exact
// permutation p-value is 1: the analytic test gave NaN (or p = 0 from a rounding-level variance) and the
// permutation test a p-value decided by rounding. Now p = 1 on both routes, flagged as degenerate.
TEST_CASE("a permutation-invariant layer: p = 1, flagged, on every route", "[inference][degenerate]") {
  const Eigen::Index n = 40;
  const test::mat<double> distinct = test::mat<double>::Identity(n, n);
  const auto x = test::normal<double>(n, 3, 64);
  const auto t = cka::independence_test(distinct, x, cka::linear_kernel{});
  CHECK(t.degenerate);
  CHECK(t.p_value == 1.0);
  CHECK(t.z == 0.0);
  cka::permutation_options po;
  po.count = 99;
  CHECK(cka::permutation_test(distinct, x, cka::linear_kernel{}, estimator::biased, po).p_value == 1.0);
  CHECK(cka::permutation_test(x, distinct, cka::linear_kernel{}, estimator::biased, po).p_value == 1.0);
  CHECK(cka::permutation_test(distinct, x, cka::rbf_kernel{1.0}, estimator::biased, po).p_value == 1.0);
  CHECK_FALSE(cka::independence_test(x, test::normal<double>(n, 2, 65), cka::linear_kernel{}).degenerate);
  for (std::size_t permutations : {std::size_t(0), std::size_t(49)}) {
    cka::similarity_tests_options o;
    o.permutations = permutations;
    const std::vector<test::mat<double>> layers = {distinct, x, test::related<double>(x, 2, 66)};
    const auto r = cka::similarity_tests(layers, cka::linear_kernel{}, o);
    CHECK(r.degenerate == std::vector<std::size_t>{0});
    for (Eigen::Index j = 0; j < 3; ++j) {
      CHECK(r.p_value(0, j) == 1.0);
      CHECK(r.p_value(j, 0) == 1.0);
    }
    CHECK(r.p_value(1, 2) < 0.1);
  }
  // The unbiased estimator: the U-centered Gram of distinct one-hot rows is zero — undefined, not degenerate.
  cka::similarity_tests_options o;
  o.est = estimator::unbiased;
  const auto u = cka::similarity_tests(std::vector<test::mat<double>>{distinct, x}, cka::linear_kernel{}, o);
  CHECK(test::undefined_layers(u) == std::vector<std::size_t>{0});
  CHECK(u.undefined[0].cause == cka::zero_variance_cause(estimator::unbiased));
  CHECK_THROWS_AS(cka::linear_cka(distinct, x, estimator::unbiased), cka::domain_error);
}

TEST_CASE("linear kernel: the feature-space route equals the Gram route", "[inference][routes]") {
  // polynomial_kernel{1, 1, 0} is ⟨x, y⟩ through the Gram route; linear_kernel takes feature space.
  const cka::polynomial_kernel gram_linear{1, 1.0, 0.0};
  const auto x = test::normal<double>(45, 3, 71);
  const auto y = test::related<double>(x, 2, 72, 4.0);
  cka::permutation_options o;
  o.count = 300;
  o.seed = 9;
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    const auto f = cka::permutation_test(x, y, cka::linear_kernel{}, est, o);
    const auto g = cka::permutation_test(x, y, gram_linear, est, o);
    CHECK(test::rel_err(f.value, g.value) < 1e-12);
    CHECK(f.p_value == g.p_value);
    CHECK(f.p_value > 0.01);  // a weak relation: a p-value the tie-free count decides
    const auto fi = cka::independence_test(x, y, cka::linear_kernel{}, est);
    const auto gi = cka::independence_test(x, y, gram_linear, est);
    CHECK(test::rel_err(fi.value, gi.value) < 1e-12);
    CHECK(std::abs(fi.z - gi.z) < 1e-10);
    CHECK(std::abs(fi.p_value - gi.p_value) < 1e-12);
  }
  const test::mat<double> flat = test::mat<double>::Constant(45, 2, 1.0);
  CHECK_THROWS_AS(cka::permutation_test(x, flat, cka::linear_kernel{}, estimator::biased, o), std::domain_error);
}

TEST_CASE("inference keeps its accuracy under a large common offset", "[inference][precision]") {
  // Features are centered before any Gram is formed, so an offset of 1e6 changes nothing beyond rounding.
  const auto x = test::normal<double>(40, 30, 81);
  const auto y = test::related<double>(x, 25, 82);  // d1·d2 > 40n: the permutation test's Gram route
  const test::mat<double> xo = (x.array() + 1e6).matrix(), yo = (y.array() - 1e6).matrix();
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CHECK(test::rel_err(cka::jackknife(xo, yo, cka::linear_kernel{}, est).upper,
                        cka::jackknife(x, y, cka::linear_kernel{}, est).upper) < 1e-9);
    cka::permutation_options o;
    o.count = 50;
    CHECK(test::rel_err(cka::permutation_test(xo, yo, cka::linear_kernel{}, est, o).value,
                        cka::permutation_test(x, y, cka::linear_kernel{}, est, o).value) < 1e-9);
    cka::similarity_tests_options so;
    so.est = est;
    const std::vector<test::mat<double>> a = {xo}, b = {yo}, a0 = {x}, b0 = {y};
    CHECK(test::rel_err(cka::similarity_tests(a, b, cka::linear_kernel{}, so).p_value(0, 0),
                        cka::similarity_tests(a0, b0, cka::linear_kernel{}, so).p_value(0, 0)) < 1e-6);
  }
}

TEST_CASE("jackknife of linear CKA: feature space equals the Gram route", "[inference][jackknife][routes]") {
  const cka::polynomial_kernel gram_linear{1, 1.0, 0.0};  // ⟨x, y⟩ through the Gram route
  const auto x = test::normal<double>(60, 4, 91);
  const auto y = test::related<double>(x, 3, 92);
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    const auto f = cka::jackknife(x, y, cka::linear_kernel{}, est);
    const auto g = cka::jackknife(x, y, gram_linear, est);
    REQUIRE(f.leave_one_out.size() == g.leave_one_out.size());
    for (std::size_t i = 0; i < f.leave_one_out.size(); ++i) CHECK(test::rel_err(f.leave_one_out[i], g.leave_one_out[i]) < 1e-11);
    CHECK(test::rel_err(f.standard_error, g.standard_error) < 1e-8);
  }
}

// Issue 25, item 12: all samples equal but one. Without that sample the layer has no variance, so that
// leave-one-out CKA is undefined: the jackknife gave NaN intervals, or a finite interval built from a
// leave-one-out value of 6e-10 or -3e-9. Now a domain_error naming the sample; a NaN interval in the matrix.
TEST_CASE("jackknife with an undefined leave-one-out CKA", "[inference][jackknife][errors]") {
  const Eigen::Index n = 30;
  test::mat<double> spike = test::mat<double>::Constant(n, 3, 0.5);
  spike.row(7) << 2.0, -1.0, 3.0;
  const auto x = test::normal<double>(n, 2, 71);
  // (Under the unbiased estimator a single spike has no variance at all: its U-centered Gram is zero.)
  CHECK_THROWS_WITH(cka::jackknife(spike, x, cka::linear_kernel{}, estimator::unbiased), Contains("zero variance"));
  for (estimator est : {estimator::biased}) {
    CHECK_THROWS_WITH(cka::jackknife(spike, x, cka::linear_kernel{}, est),
                      Contains("cka::jackknife") && Contains("without sample 7"));
    CHECK_THROWS_WITH(cka::jackknife(spike, x, cka::rbf_kernel{1.0}, est), Contains("without sample 7"));
    cka::similarity_tests_options o;
    o.est = est;
    o.level = 0.9;
    const auto r = cka::similarity_tests(std::vector<test::mat<double>>{spike, x}, cka::linear_kernel{}, o);
    CHECK(std::isnan(r.lower(0, 1)));
    CHECK(std::isnan(r.upper(1, 0)));
    CHECK(std::isfinite(r.values(0, 1)));
    CHECK(std::isfinite(r.lower(1, 1)));
  }
}

// Issue 25, item 13: the inference functions follow the library's one rescaling rule (a power of two
// beyond 2^±200): a layer times 1e-100 was "zero variance" here while linear_cka gave its value, and at
// 1e100 an overflow was reported as zero variance. Every route now gives the unscaled values.
TEST_CASE("inference at extreme magnitudes equals the unscaled inference", "[inference][scale]") {
  const auto x = test::normal<double>(60, 4, 81);
  const auto y = test::related<double>(x, 3, 82);
  const test::mat<double> wide = test::normal<double>(60, 70, 83);  // d > n: the Gram routes
  cka::permutation_options po;
  po.count = 59;
  for (double factor : {1e-100, 1e-80, 1e100, 1e150}) {
    CAPTURE(factor);
    const test::mat<double> xs = x * factor, ws = wide * factor;
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      CAPTURE(est == estimator::unbiased);
      for (const auto& [a, b] : {std::pair<const test::mat<double>*, const test::mat<double>*>{&xs, &x}, {&ws, &wide}}) {
        const auto t = cka::independence_test(*a, y, cka::linear_kernel{}, est), t1 = cka::independence_test(*b, y, cka::linear_kernel{}, est);
        CHECK(test::rel_err(t.value, t1.value) < 1e-12);
        CHECK(t.p_value == Approx(t1.p_value).epsilon(1e-9));
        CHECK(cka::permutation_test(*a, y, cka::linear_kernel{}, est, po).p_value ==
              cka::permutation_test(*b, y, cka::linear_kernel{}, est, po).p_value);
        CHECK(test::rel_err(cka::jackknife(*a, y, cka::linear_kernel{}, est).upper,
                            cka::jackknife(*b, y, cka::linear_kernel{}, est).upper) < 1e-10);
      }
      cka::similarity_tests_options o;
      o.est = est;
      o.level = 0.9;
      const auto scaled = cka::similarity_tests(std::vector<test::mat<double>>{xs, y, ws}, cka::linear_kernel{}, o);
      const auto plain = cka::similarity_tests(std::vector<test::mat<double>>{x, y, wide}, cka::linear_kernel{}, o);
      CHECK(scaled.undefined.empty());
      for (Eigen::Index i = 0; i < 9; ++i) {
        CHECK(test::rel_err(scaled.values.data()[i], plain.values.data()[i]) < 1e-12);
        CHECK(scaled.p_value.data()[i] == Approx(plain.p_value.data()[i]).epsilon(1e-9));
      }
    }
  }
}
