// Published worked values, reproduced from the same data.
#include "support.hpp"

#include <cka/cka.hpp>

#include <catch2/catch.hpp>

using cka::estimator;

// Source: google-research/representation_similarity, Demo.ipynb (Kornblith et al., "Similarity of Neural
// Network Representations Revisited", ICML 2019). Data: np.random.seed(1337); X = np.random.randn(100, 10);
// Y = np.random.randn(100, 10) + X. Printed (5 decimals): linear CKA 0.55761 (from examples and from
// features), RBF CKA with threshold 0.5 0.65483, debiased linear CKA 0.51346. The notebook's RBF bandwidth
// is σ² = 0.5² · median of all n² squared distances, i.e. rbf_kernel::median(0.5, median_rule::all_pairs).
TEST_CASE("Kornblith et al. demo notebook values", "[published]") {
  test::numpy_legacy_rng rng(1337);
  const test::mat<double> x = rng.randn(100, 10);
  const test::mat<double> y = rng.randn(100, 10) + x;
  const double printed_margin = 5e-6;  // the notebook prints 5 decimals
  CHECK(std::abs(cka::linear_cka(x, y) - 0.55761) <= printed_margin);
  CHECK(std::abs(cka::gram_cka(cka::gram(x, cka::linear_kernel{}), cka::gram(y, cka::linear_kernel{})) - 0.55761) <=
        printed_margin);
  CHECK(std::abs(cka::kernel_cka(x, y, cka::rbf_kernel::median(0.5)) - 0.65483) <= printed_margin);
  CHECK(std::abs(cka::linear_cka(x, y, estimator::unbiased) - 0.51346) <= printed_margin);
  // Float input reproduces the same printed digits.
  CHECK(std::abs(cka::linear_cka(x.cast<float>().eval(), y.cast<float>().eval()) - 0.55761f) <= printed_margin);
}

// Source: Shogun machine-learning toolbox, tests/unit/statistics/QuadraticTimeMMD_unittest.cc
// (test_quadratic_mmd_biased / _unbiased, values checked there against MATLAB to 1e-14). Data: the numbers
// 0..47 laid out column-major as 3×16 (each sample three consecutive numbers); P = the first 8 samples
// divided by their maximum (23), Q = the last 8 divided by theirs (47); Gaussian kernel of width 2σ² = 8.
// Shogun reports m·MMD² with m = 8: 0.357650929735592 (biased) and 0.268801886722675 (unbiased, the
// diagonals of Kxx and Kyy left out).
TEST_CASE("Shogun quadratic-time MMD values", "[published][mmd]") {
  test::mat<double> p(8, 3), q(8, 3);
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 3; ++j) {
      p(i, j) = (3 * i + j) / 23.0;
      q(i, j) = (24 + 3 * i + j) / 47.0;
    }
  const cka::rbf_kernel k{2.0};
  CHECK(test::rel_err(8 * cka::mmd2(p, q, k), 0.357650929735592) < 1e-13);
  CHECK(test::rel_err(8 * cka::mmd2(p, q, k, estimator::unbiased), 0.268801886722675) < 1e-13);
}
