// similarity_matrix: the once-per-layer Grams give the pairwise CKA values; minibatch CKA over one batch is
// debiased CKA; constant layers become NaN cells.
#include "oracle.hpp"
#include "support.hpp"

#include <cka/similarity_matrix.hpp>
#include <cka/similarity.hpp>

#include <catch2/catch.hpp>

#include <cmath>

using cka::estimator;

TEST_CASE("similarity_matrix equals pairwise CKA", "[matrix]") {
  std::vector<test::mat<double>> layers;
  const auto x = test::normal<double>(50, 6, 1);
  layers.push_back(x);
  layers.push_back(test::related<double>(x, 9, 2));
  layers.push_back(test::related<double>(layers[1], 70, 3));  // wider than n: Gram route in linear_cka
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    cka::similarity_matrix_options o;
    o.est = est;
    const auto lin = cka::similarity_matrix(layers, cka::linear_kernel{}, o);
    const auto rbf = cka::similarity_matrix(layers, cka::rbf_kernel::median(0.7, cka::median_rule::off_diagonal), o);
    const auto poly = cka::similarity_matrix(layers, cka::polynomial_kernel{}, o);
    for (std::size_t a = 0; a < 3; ++a)
      for (std::size_t b = 0; b < 3; ++b) {
        CAPTURE(a, b, est == estimator::unbiased);
        CHECK(test::rel_err(lin.values(a, b), cka::linear_cka(layers[a], layers[b], est)) < 1e-12);
        CHECK(test::rel_err(poly.values(a, b), cka::kernel_cka(layers[a], layers[b], cka::polynomial_kernel{}, est)) < 1e-12);
        CHECK(test::rel_err(rbf.values(a, b),
                            cka::kernel_cka(layers[a], layers[b], cka::rbf_kernel::median(0.7, cka::median_rule::off_diagonal),
                                            est)) < 1e-12);
      }
  }
  // Rows against columns.
  const std::vector<test::mat<double>> rows(layers.begin(), layers.begin() + 1), cols(layers.begin() + 1, layers.end());
  const auto rect = cka::similarity_matrix(rows, cols);
  REQUIRE(rect.values.rows() == 1);
  REQUIRE(rect.values.cols() == 2);
  CHECK(test::rel_err(rect.values(0, 1), cka::linear_cka(layers[0], layers[2])) < 1e-12);
  // Views: row-major Maps against column-major Refs, without copies; float layers computed in double.
  std::vector<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> row_major(layers.begin(), layers.end());
  using map_t = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  std::vector<map_t> maps;
  for (const auto& m : row_major) maps.emplace_back(m.data(), m.rows(), m.cols());
  std::vector<Eigen::Ref<const test::mat<double>>> refs(layers.begin(), layers.end());
  const auto mixed = cka::similarity_matrix(maps, refs);
  CHECK((mixed.values - cka::similarity_matrix(layers).values).cwiseAbs().maxCoeff() < 1e-12);
  std::vector<test::mat<float>> floats;
  for (const auto& m : layers) floats.push_back(m.cast<float>());
  const cka::basic_similarity_result<double> fr = cka::similarity_matrix(floats);
  CHECK(test::rel_err(fr.values(0, 1), cka::linear_cka(floats[0].cast<double>(), floats[1].cast<double>())) < 1e-12);
}

TEST_CASE("minibatch CKA: one batch is debiased CKA, several batches sum unbiased HSIC", "[matrix][minibatch]") {
  const auto x = test::normal<double>(40, 5, 11);
  const std::vector<test::mat<double>> layers = {x, test::related<double>(x, 7, 12)};
  cka::similarity_matrix_options o;
  o.minibatch = 40;
  CHECK(test::rel_err(cka::similarity_matrix(layers, cka::linear_kernel{}, o).values(0, 1),
                      cka::linear_cka(layers[0], layers[1], estimator::unbiased)) < 1e-12);
  // Batches of 15: 15 + 15 + 10, each unbiased HSIC summed unscaled, then the ratio (Nguyen et al. 2021).
  o.minibatch = 15;
  double xy = 0, xx = 0, yy = 0;
  for (int b0 : {0, 15, 30}) {
    const int h = b0 == 30 ? 10 : 15;
    const oracle::mat<double> k = oracle::gram_linear<double>(layers[0].middleRows(b0, h));
    const oracle::mat<double> l = oracle::gram_linear<double>(layers[1].middleRows(b0, h));
    xy += oracle::hsic_unbiased(k, l);
    xx += oracle::hsic_unbiased(k, k);
    yy += oracle::hsic_unbiased(l, l);
  }
  const auto r = cka::similarity_matrix(layers, cka::linear_kernel{}, o);
  CHECK(test::rel_err(r.values(0, 1), xy / std::sqrt(xx * yy)) < 1e-12);
  CHECK(r.dropped_samples == 0);
  o.minibatch = 19;  // 19 + 19 + 2: the last 2 samples cannot form an unbiased estimate
  CHECK(cka::similarity_matrix(layers, cka::linear_kernel{}, o).dropped_samples == 2);
}

TEST_CASE("similarity_matrix: constant layers and bad input", "[matrix][errors]") {
  const auto x = test::normal<double>(20, 4, 21);
  const std::vector<test::mat<double>> layers = {x, test::mat<double>::Constant(20, 3, 0.25), test::related<double>(x, 5, 22)};
  const auto r = cka::similarity_matrix(layers);
  CHECK(test::undefined_layers(r) == std::vector<std::size_t>{1});
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    cka::similarity_matrix_options oe;
    oe.est = est;
    CHECK(test::undefined_layers(cka::similarity_matrix(layers, cka::linear_kernel{}, oe)) == std::vector<std::size_t>{1});
    CHECK(test::undefined_layers(cka::similarity_matrix(layers, cka::rbf_kernel{1.0}, oe)) == std::vector<std::size_t>{1});
  }
  CHECK(std::isnan(r.values(1, 0)));
  CHECK(std::isnan(r.values(2, 1)));
  CHECK_FALSE(std::isnan(r.values(0, 2)));
  std::vector<test::mat<double>> uneven = {x, test::normal<double>(19, 4, 23)};
  CHECK_THROWS_WITH(cka::similarity_matrix(uneven), Catch::Contains("19 samples"));
  cka::similarity_matrix_options o;
  o.minibatch = 3;
  CHECK_THROWS_AS(cka::similarity_matrix(layers, cka::linear_kernel{}, o), std::invalid_argument);
}

TEST_CASE("similarity_matrix_bytes follows the route", "[matrix]") {
  std::vector<test::mat<double>> narrow, wide;
  for (int l = 0; l < 3; ++l) {
    narrow.push_back(test::normal<double>(400, 8, 30 + l));
    wide.push_back(test::normal<double>(40, 300, 40 + l));
  }
  cka::similarity_matrix_options o;
  const double p = 1 + 3 * 9;  // the joint moment state: 1 + Σ(d + 1)
  CHECK(cka::similarity_matrix_bytes(narrow) == 8.0 * (p * p + (1 << 20)));
  CHECK(cka::similarity_matrix_bytes(wide) == 8.0 * 40 * 40 * 3);  // one Gram per layer
  // RBF without a minibatch: the tile engine's stored upper tiles (4n² bytes and padding per layer), or,
  // over the budget, the layers' centered copies and a few tiles per thread.
  const double stored = 8.0 * (256 * 256 + 256 * 144 + 144 * 144);  // tiles (0,0), (0,1), (1,1)
  CHECK(cka::similarity_matrix_bytes(narrow, cka::rbf_kernel{1.0}) == 3 * stored);
  cka::compute_options small;
  small.max_bytes = 1 << 20;
  // Three centered copies with their row norms, and per thread the tiles of pass B (two per layer, two more).
  CHECK(cka::similarity_matrix_bytes(narrow, cka::rbf_kernel{1.0}, o, small) ==
        3 * 8.0 * 400 * 9 + 8.0 * 256 * 256 * 8 * Eigen::nbThreads());
  o.minibatch = 100;
  CHECK(cka::similarity_matrix_bytes(narrow, cka::rbf_kernel{1.0}, o) == 8.0 * 100 * 100 * 3);
  o.minibatch = 1000;  // larger than n: one batch of n
  CHECK(cka::similarity_matrix_bytes(narrow, cka::rbf_kernel{1.0}, o) == 8.0 * 400 * 400 * 3);
  // From the shapes alone, as a caller plans before reading the layers: the same bytes on every route.
  const std::vector<Eigen::Index> narrow_widths{8, 8, 8}, wide_widths{300, 300, 300};
  cka::similarity_matrix_options plain;
  CHECK(cka::similarity_matrix_bytes<double>(400, narrow_widths) == cka::similarity_matrix_bytes(narrow));
  CHECK(cka::similarity_matrix_bytes<double>(40, wide_widths) == cka::similarity_matrix_bytes(wide));
  CHECK(cka::similarity_matrix_bytes<double>(400, narrow_widths, cka::rbf_kernel{1.0}) == 3 * stored);
  CHECK(cka::similarity_matrix_bytes<float>(400, narrow_widths, cka::rbf_kernel{1.0}, plain, small) ==
        cka::similarity_matrix_bytes(narrow, cka::rbf_kernel{1.0}, plain, small));
  CHECK(cka::similarity_matrix_bytes<double>(400, narrow_widths, cka::rbf_kernel{1.0}, o) == 8.0 * 400 * 400 * 3);
  CHECK_THROWS_WITH(cka::similarity_matrix_bytes<double>(-1, narrow_widths), Catch::Contains("similarity_matrix_bytes") && Catch::Contains("n = -1"));
  CHECK_THROWS_WITH(cka::similarity_matrix_bytes<double>(400, std::vector<Eigen::Index>{8, 0}),
                    Catch::Contains("layer 1 has width 0"));
}
