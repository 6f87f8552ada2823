// Kernel CKA in tiles: the exact tiled median against the full-matrix median (bit for bit on the same
// distances), adversarial data, and the tiled route against the in-memory route for both estimators,
// every median rule, odd n, n not a multiple of the tile, n below one tile, float and row-major input;
// the same bits with one thread and with two.
#include "support.hpp"

#include <cka/similarity.hpp>

#include <catch2/catch.hpp>

#include <vector>

using cka::estimator;
using cka::median_rule;
using Catch::Matchers::Contains;

namespace {

/// The full distance matrix assembled from the tile routine itself.
test::mat<double> tiled_full(const cka::detail::tiled_rows<double>& t) {
  const Eigen::Index n = t.rows(), nt = t.tiles(), s = cka::detail::tile_rows;
  test::mat<double> d(n, n), tile;
  for (Eigen::Index ti = 0; ti < nt; ++ti)
    for (Eigen::Index tj = ti; tj < nt; ++tj) {
      cka::detail::tile_distances("test", t, ti, tj, tile);
      d.block(ti * s, tj * s, tile.rows(), tile.cols()) = tile;
      d.block(tj * s, ti * s, tile.cols(), tile.rows()) = tile.transpose();
    }
  return d;
}

cka::compute_options tiles() {
  cka::compute_options o;
  o.max_bytes = 1;  // nothing fits: the tiled route
  return o;
}

/// Data sets that stress the selection: ties, one-hot rows, a simplex (all distances equal), duplicates.
std::vector<test::mat<double>> adversarial() {
  std::vector<test::mat<double>> out;
  test::mat<double> ties = (3 * test::normal<double>(301, 2, 1)).array().round().matrix();  // integer grid
  out.push_back(ties);
  test::mat<double> onehot = test::mat<double>::Zero(300, 3);
  for (Eigen::Index i = 0; i < 300; ++i) onehot(i, i % 7 < 5 ? 0 : (i % 7 == 5 ? 1 : 2)) = 1;
  out.push_back(onehot);
  out.push_back(test::mat<double>::Identity(260, 260));  // every off-diagonal squared distance is 2
  test::mat<double> dup(280, 4);
  const auto base = test::normal<double>(10, 4, 2);
  for (Eigen::Index i = 0; i < 280; ++i) dup.row(i) = base.row(i % 10);
  out.push_back(dup);
  out.push_back(test::normal<double>(37, 5, 3));   // below one tile
  out.push_back(test::normal<double>(513, 3, 4));  // two tiles and one row
  return out;
}

}  // namespace

TEST_CASE("tiled median: the full-matrix median of the same distances, bit for bit", "[tiles][median]") {
  for (const auto& x : adversarial()) {
    const auto t = cka::detail::tiled_rows_of<double>(x, 1.0);
    const test::mat<double> d = tiled_full(t);
    for (median_rule rule : {median_rule::all_pairs, median_rule::off_diagonal, median_rule::nonzero}) {
      CAPTURE(x.rows(), int(rule));
      for (int threads : {1, 2}) CHECK(cka::detail::tiled_median("test", t, rule, threads) == cka::median_squared_distance(d, rule));
    }
  }
}

TEST_CASE("tiled median: buckets too full to collect take more radix passes", "[tiles][median]") {
  // n = 2000 (2M pairs) and 1500: wide Gaussian rows concentrate the distances in a few top-16-bit buckets (more
  // than 2^20 values: a second histogram pass); the simplex puts every distance in one bucket at every
  // level (all four 16-bit passes, the value read from its bits).
  const std::vector<test::mat<double>> sets = {test::normal<double>(2000, 200, 5), test::mat<double>::Identity(1500, 1500)};  // 1.1M pairs > 2^20
  for (const auto& x : sets) {
    const auto t = cka::detail::tiled_rows_of<double>(x, 1.0);
    const test::mat<double> d = tiled_full(t);
    for (median_rule rule : {median_rule::all_pairs, median_rule::off_diagonal}) {
      CAPTURE(x.cols(), int(rule));
      CHECK(cka::detail::tiled_median("test", t, rule, 2) == cka::median_squared_distance(d, rule));
    }
  }
}

TEST_CASE("tiled median: the sampled bracket (more than 2^24 pairs) is exact too", "[tiles][median]") {
  // n = 6000: 18M pairs, one counting pass when the bracket holds the middle ranks; an integer grid puts
  // many pairs on the bracket's edges; the one-hot rows give a zero median (all_pairs) and the nonzero one.
  test::mat<double> onehot = test::mat<double>::Zero(6000, 3);
  for (Eigen::Index i = 0; i < 6000; ++i) onehot(i, i % 9 < 6 ? 0 : (i % 9 < 8 ? 1 : 2)) = 1;
  const std::vector<test::mat<double>> sets = {test::normal<double>(6000, 3, 6),
                                               (2 * test::normal<double>(6000, 2, 7)).array().round().matrix(), onehot};
  for (const auto& x : sets) {
    const auto t = cka::detail::tiled_rows_of<double>(x, 1.0);
    const test::mat<double> d = tiled_full(t);
    for (median_rule rule : {median_rule::all_pairs, median_rule::off_diagonal, median_rule::nonzero}) {
      CAPTURE(x.cols(), int(rule));
      CHECK(cka::detail::tiled_median("test", t, rule, 2) == cka::median_squared_distance(d, rule));
    }
  }
}

TEST_CASE("tiled RBF CKA equals the in-memory route", "[tiles][cka]") {
  const std::vector<Eigen::Index> sizes = {37, 256, 300, 513};
  for (Eigen::Index n : sizes) {
    const auto x = test::normal<double>(n, 6, 10 + std::uint64_t(n));
    const auto y = test::related<double>(x, 4, 20 + std::uint64_t(n), 1.0);
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      for (median_rule rule : {median_rule::all_pairs, median_rule::off_diagonal, median_rule::nonzero}) {
        CAPTURE(n, est == estimator::unbiased, int(rule));
        const auto k = cka::rbf_kernel::median(0.8, rule);
        CHECK(test::rel_err(cka::kernel_cka(x, y, k, est, tiles()), cka::kernel_cka(x, y, k, est)) < 1e-12);
      }
      const cka::rbf_kernel fixed{2.5};
      CHECK(test::rel_err(cka::kernel_cka(x, y, fixed, est, tiles()), cka::kernel_cka(x, y, fixed, est)) < 1e-12);
    }
  }
  // Float input and a row-major view, different kernels for X and Y.
  const auto x = test::normal<double>(300, 5, 31);
  const auto y = test::related<double>(x, 3, 32);
  const test::mat<float> xf = x.cast<float>(), yf = y.cast<float>();
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xr = x;
  CHECK(test::rel_err(cka::kernel_cka(xf, yf, cka::rbf_kernel::median(), cka::rbf_kernel{3.0}, estimator::biased, tiles()),
                      cka::kernel_cka(xf, yf, cka::rbf_kernel::median(), cka::rbf_kernel{3.0})) < 1e-6);
  CHECK(test::rel_err(cka::kernel_cka(xr, y, cka::rbf_kernel::median(), estimator::unbiased, tiles()),
                      cka::kernel_cka(xr, y, cka::rbf_kernel::median(), estimator::unbiased)) < 1e-12);
  // Extreme magnitudes: the median bandwidth is scale-invariant on this route too.
  CHECK(test::rel_err(cka::kernel_cka(test::mat<double>(x * 1e155), y, cka::rbf_kernel::median(), estimator::biased, tiles()),
                      cka::kernel_cka(x, y, cka::rbf_kernel::median())) < 1e-12);
}

TEST_CASE("tiled RBF CKA: the same bits with one thread and with two; undefined cases", "[tiles][threads]") {
  const auto x = test::normal<double>(600, 8, 41);
  const auto y = test::related<double>(x, 5, 42);
  const int threads = Eigen::nbThreads();
  Eigen::setNbThreads(1);
  const double one = cka::kernel_cka(x, y, cka::rbf_kernel::median(), estimator::unbiased, tiles());
  Eigen::setNbThreads(2);
  const double two = cka::kernel_cka(x, y, cka::rbf_kernel::median(), estimator::unbiased, tiles());
  Eigen::setNbThreads(threads);
  CHECK(one == two);
  // A zero median bandwidth and a constant layer fail as on the in-memory route.
  test::mat<double> onehot = test::mat<double>::Zero(300, 2);
  for (Eigen::Index i = 0; i < 300; ++i) onehot(i, i % 10 < 7 ? 0 : 1) = 1;
  CHECK_THROWS_WITH(cka::kernel_cka(onehot, x.topRows(300), cka::rbf_kernel::median(), estimator::biased, tiles()),
                    Contains("median squared distance is 0"));
  CHECK(test::rel_err(cka::kernel_cka(onehot, x.topRows(300), cka::rbf_kernel::median(1.0, median_rule::nonzero),
                                      estimator::biased, tiles()),
                      cka::kernel_cka(onehot, x.topRows(300), cka::rbf_kernel::median(1.0, median_rule::nonzero))) < 1e-12);
  const test::mat<double> flat = test::mat<double>::Constant(300, 3, 2.0);
  CHECK_THROWS_AS(cka::kernel_cka(flat, x.topRows(300), cka::rbf_kernel{1.0}, estimator::biased, tiles()), std::domain_error);
}
