// The tile engine's internals file. Kernel CKA in tiles: the exact tiled median against the full-matrix median (bit for bit on the same
// distances), adversarial data, and the tiled route against the in-memory route for both estimators,
// every median rule, odd n, n not a multiple of the tile, n below one tile, float and row-major input;
// the same bits with one thread and with two.
#include "support.hpp"

#include <cka/similarity.hpp>
#include <cka/mmd.hpp>
#include <cka/similarity_matrix.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <stdexcept>
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

constexpr estimator est_biased() { return estimator::biased; }

/// A kernel of the generic form (called per pair): Laplacian k(x, y) = exp(−‖x − y‖₁ / s).
struct laplacian_kernel {
  double s = 3.0;
  template <class RX, class RY>
  double operator()(const RX& x, const RY& y) const {
    return std::exp(-double((x - y).cwiseAbs().sum()) / s);
  }
};

/// A generic kernel that throws on one pair, as user code may.
struct throwing_kernel {
  template <class RX, class RY>
  double operator()(const RX& x, const RY& y) const {
    if (x(0) == y(0) && x(0) > 2.5) throw std::runtime_error("throwing_kernel: a pair it refuses");
    return double(x.dot(y));
  }
};

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
      const double full = cka::median_squared_distance(d, rule);
      for (int threads : {1, 2}) {
        CHECK(cka::detail::tiled_median("test", t, rule, threads) == full);
        CHECK(cka::detail::tiled_median("test", cka::detail::stored_distances("test", t, threads), rule, threads) == full);
      }
    }
  }
}

TEST_CASE("tiled median: buckets too full to collect take more counting passes", "[tiles][median]") {
  // n = 2000 (2M pairs) and 1500 with at most 2^14 values collected: wide Gaussian rows concentrate the
  // distances in a few of the top-16-bit buckets (more than 2^14 values: a second counting pass); the
  // simplex puts every distance in one bucket at every level (narrowed to one bit pattern, the value read
  // from its bits). With the default cap, one count and one collection.
  const std::vector<test::mat<double>> sets = {test::normal<double>(2000, 200, 5), test::mat<double>::Identity(1500, 1500)};
  for (const auto& x : sets) {
    const auto t = cka::detail::tiled_rows_of<double>(x, 1.0);
    const test::mat<double> d = tiled_full(t);
    const auto stored = cka::detail::stored_distances("test", t, 2);
    for (median_rule rule : {median_rule::all_pairs, median_rule::off_diagonal}) {
      CAPTURE(x.cols(), int(rule));
      const double full = cka::median_squared_distance(d, rule);
      for (std::size_t cap : {std::size_t(1) << 14, std::size_t(1) << 25}) {
        CHECK(cka::detail::tiled_median("test", t, rule, 2, nullptr, nullptr, cap) == full);
        // Stored distances: a sample of n(n-1)/512 pairs brackets the median, then one counting pass.
        CHECK(cka::detail::tiled_median("test", stored, rule, 2, nullptr, nullptr, nullptr, cap) == full);
      }
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
    const auto stored = cka::detail::stored_distances("test", t, 2);
    for (median_rule rule : {median_rule::all_pairs, median_rule::off_diagonal, median_rule::nonzero}) {
      CAPTURE(x.cols(), int(rule));
      CHECK(cka::detail::tiled_median("test", t, rule, 2) == cka::median_squared_distance(d, rule));
      CHECK(cka::detail::tiled_median("test", stored, rule, 2) == cka::median_squared_distance(d, rule));
      // A bracket too full to collect (what n beyond ~120,000 meets): counted by bucket, then the middle
      // ranks' buckets collected — or, where ties crowd a bucket (the integer grid, one-hot rows), more
      // counting passes.
      // (Recomputed tiles once per data set, for time: the pass-count test below covers that route too.)
      const std::size_t small = 4096;
      if (rule == median_rule::all_pairs) {
        CHECK(cka::detail::tiled_median("test", t, rule, 2, nullptr, nullptr, small) == cka::median_squared_distance(d, rule));
      }
      CHECK(cka::detail::tiled_median("test", stored, rule, 2, nullptr, nullptr, nullptr, small) ==
            cka::median_squared_distance(d, rule));
    }
  }
}

TEST_CASE("tiled median: passes over the tiles, collected and binned bracket", "[tiles][median]") {
  // Normal data at n = 6000 (300 upper tiles): with the default cap the bracket is collected in one pass;
  // with a small one it is counted by bucket, then the middle ranks' buckets collected: two passes.
  const auto t = cka::detail::tiled_rows_of<double>(test::normal<double>(6000, 3, 6), 1.0);
  const std::size_t tiles = cka::detail::upper_tiles(6000);
  for (std::size_t cap : {std::size_t(1) << 25, std::size_t(4096)}) {
    std::size_t seen = 0;
    cka::detail::tile_meter meter([&](std::size_t done, std::size_t) { seen = done; }, 999);  // every tile
    cka::detail::tiled_median("test", t, median_rule::all_pairs, 1, &meter, nullptr, cap);
    CHECK(seen == (cap == 4096 ? 2 : 1) * tiles);
  }
}

/// Kernel CKA from two full Grams (gram + gram_cka): the route that holds n×n matrices, independent of the
/// tile engine.
template <class X, class Y, class KX, class KY>
double from_grams(const X& x, const Y& y, const KX& kx, const KY& ky, estimator est) {
  return cka::gram_cka(cka::gram(x, kx), cka::gram(y, ky), est);
}

TEST_CASE("RBF CKA: stored tiles, computed tiles and full Grams agree", "[tiles][cka]") {
  const std::vector<Eigen::Index> sizes = {37, 256, 300, 513};
  for (Eigen::Index n : sizes) {
    const auto x = test::normal<double>(n, 6, 10 + std::uint64_t(n));
    const auto y = test::related<double>(x, 4, 20 + std::uint64_t(n), 1.0);
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      for (median_rule rule : {median_rule::all_pairs, median_rule::off_diagonal, median_rule::nonzero}) {
        CAPTURE(n, est == estimator::unbiased, int(rule));
        const auto k = cka::rbf_kernel::median(0.8, rule);
        const double stored = cka::kernel_cka(x, y, k, est);
        CHECK(test::rel_err(cka::kernel_cka(x, y, k, est, tiles()), stored) < 1e-12);
        CHECK(test::rel_err(stored, from_grams(x, y, k, k, est)) < 1e-12);
      }
      const cka::rbf_kernel fixed{2.5};
      CHECK(test::rel_err(cka::kernel_cka(x, y, fixed, est, tiles()), cka::kernel_cka(x, y, fixed, est)) < 1e-12);
      CHECK(test::rel_err(cka::kernel_cka(x, y, fixed, est), from_grams(x, y, fixed, fixed, est)) < 1e-12);
    }
  }
  // Float input and a row-major view, different kernels for X and Y.
  const auto x = test::normal<double>(300, 5, 31);
  const auto y = test::related<double>(x, 3, 32);
  const test::mat<float> xf = x.cast<float>(), yf = y.cast<float>();
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xr = x;
  CHECK(test::rel_err(cka::kernel_cka(xf, yf, cka::rbf_kernel::median(), cka::rbf_kernel{3.0}, estimator::biased, tiles()),
                      cka::kernel_cka(xf, yf, cka::rbf_kernel::median(), cka::rbf_kernel{3.0})) < 1e-6);
  // Float input is promoted to double: the stored route matches double input to the float result's rounding.
  CHECK(test::rel_err(double(cka::kernel_cka(xf, yf, cka::rbf_kernel::median(), cka::rbf_kernel{3.0})),
                      from_grams(test::mat<double>(xf.cast<double>()), test::mat<double>(yf.cast<double>()),
                                 cka::rbf_kernel::median(), cka::rbf_kernel{3.0}, estimator::biased)) < 1e-6);
  CHECK(test::rel_err(cka::kernel_cka(xr, y, cka::rbf_kernel::median(), estimator::unbiased, tiles()),
                      cka::kernel_cka(xr, y, cka::rbf_kernel::median(), estimator::unbiased)) < 1e-12);
  CHECK(test::rel_err(cka::kernel_cka(xr, y, cka::rbf_kernel::median(), estimator::unbiased),
                      from_grams(x, y, cka::rbf_kernel::median(), cka::rbf_kernel::median(), estimator::unbiased)) < 1e-12);
  // A non-contiguous view (every other column of a wider matrix).
  const test::mat<double> wide = test::normal<double>(300, 10, 33);
  const auto strided = Eigen::Map<const test::mat<double>, 0, Eigen::OuterStride<>>(wide.data(), 300, 5, Eigen::OuterStride<>(600));
  const test::mat<double> dense = strided;
  CHECK(test::rel_err(cka::kernel_cka(strided, y, cka::rbf_kernel::median(), estimator::biased, tiles()),
                      from_grams(dense, y, cka::rbf_kernel::median(), cka::rbf_kernel::median(), estimator::biased)) < 1e-12);
  // Extreme magnitudes: the median bandwidth is scale-invariant on this route too.
  CHECK(test::rel_err(cka::kernel_cka(test::mat<double>(x * 1e155), y, cka::rbf_kernel::median(), estimator::biased, tiles()),
                      cka::kernel_cka(x, y, cka::rbf_kernel::median())) < 1e-12);
}

TEST_CASE("inner-product and generic kernels on the tile engine: stored, computed and full Grams agree", "[tiles][cka]") {
  const cka::polynomial_kernel cubic{3, 0.2, 1.0}, square{2, 0.5, -1.5};
  const cka::linear_kernel linear;
  const auto rbf = cka::rbf_kernel::median(0.7);
  const laplacian_kernel laplace;
  for (Eigen::Index n : {Eigen::Index(37), Eigen::Index(300), Eigen::Index(513)}) {
    // An offset: the polynomial kernel sees the raw features, the linear kernel's centered Gram does not.
    const test::mat<double> x = (test::normal<double>(n, 6, 80 + std::uint64_t(n)).array() + 0.5).matrix();
    const auto y = test::related<double>(x, 4, 90 + std::uint64_t(n), 1.0);
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      CAPTURE(n, est == estimator::unbiased);
      auto agree = [&](const auto& kx, const auto& ky) {
        const double grams = from_grams(x, y, kx, ky, est);
        CHECK(test::rel_err(cka::kernel_cka(x, y, kx, ky, est), grams) < 1e-12);
        CHECK(test::rel_err(cka::kernel_cka(x, y, kx, ky, est, tiles()), grams) < 1e-12);
      };
      agree(cubic, cubic);
      agree(cubic, square);
      agree(square, rbf);
      agree(rbf, cubic);
      agree(linear, rbf);
      agree(rbf, linear);
      agree(linear, square);
      agree(laplace, laplace);
      agree(laplace, rbf);
      agree(cubic, laplace);
      // polynomial{1, 1, 0} is the linear kernel.
      CHECK(test::rel_err(cka::kernel_cka(x, y, cka::polynomial_kernel{1, 1.0, 0.0}, est, tiles()),
                          cka::linear_cka(x, y, est)) < 1e-12);
    }
  }
  // Float input (accumulated in double) and a non-contiguous view.
  const auto x = test::normal<double>(300, 5, 95);
  const auto y = test::related<double>(x, 3, 96);
  const test::mat<float> xf = x.cast<float>(), yf = y.cast<float>();
  const test::mat<double> xd = xf.cast<double>(), yd = yf.cast<double>();
  CHECK(test::rel_err(double(cka::kernel_cka(xf, yf, cubic, rbf, estimator::biased, tiles())),
                      from_grams(xd, yd, cubic, rbf, estimator::biased)) < 1e-6);
  const test::mat<double> wide = test::normal<double>(300, 10, 97);
  const auto strided = Eigen::Map<const test::mat<double>, 0, Eigen::OuterStride<>>(wide.data(), 300, 5, Eigen::OuterStride<>(600));
  CHECK(test::rel_err(cka::kernel_cka(strided, y, cubic, linear, estimator::unbiased, tiles()),
                      from_grams(test::mat<double>(strided), y, cubic, linear, estimator::unbiased)) < 1e-12);
  // The same bits with one thread and with two, on both routes.
  if (test::two_threads_available()) {
    const int threads = Eigen::nbThreads();
    std::vector<double> runs;
    for (int t : {1, 2}) {
      Eigen::setNbThreads(t);
      runs.push_back(cka::kernel_cka(x, y, cubic, rbf, estimator::unbiased, tiles()));
      runs.push_back(cka::kernel_cka(x, y, cubic, rbf, estimator::unbiased));
    }
    Eigen::setNbThreads(threads);
    CHECK(runs[0] == runs[2]);
    CHECK(runs[1] == runs[3]);
  } else {
    WARN("skipped: one thread against two needs OpenMP, absent from this build");
  }
  // A generic kernel's exception leaves the tile threads and reaches the caller, on both routes.
  const test::mat<double> grid = (3 * test::normal<double>(300, 2, 98)).array().round().matrix();
  for (const cka::compute_options& co : {cka::compute_options{}, tiles()}) {
    CHECK_THROWS_WITH(cka::kernel_cka(grid, y, throwing_kernel{}, rbf, est_biased(), co), Contains("a pair it refuses"));
  }
  // Errors as on the in-memory route: overflow, a bad degree, a constant layer.
  for (const cka::compute_options& co : {cka::compute_options{}, tiles()}) {
    CHECK_THROWS_WITH(cka::kernel_cka(x, y, cka::polynomial_kernel{400, 1.0, 1.0}, est_biased(), co),
                      Contains("overflow: a kernel value"));
    CHECK_THROWS_AS(cka::kernel_cka(x, y, cka::polynomial_kernel{0, 1.0, 1.0}, est_biased(), co), std::invalid_argument);
    CHECK_THROWS_AS(cka::kernel_cka(x, y, cka::polynomial_kernel{2, 0.0, 1.0}, est_biased(), co), std::domain_error);
  }
}

TEST_CASE("tiled RBF CKA: the same bits with one thread and with two, and undefined cases", "[tiles][threads]") {
  const auto x = test::normal<double>(600, 8, 41);
  const auto y = test::related<double>(x, 5, 42);
  if (test::two_threads_available()) {
    const int threads = Eigen::nbThreads();
    Eigen::setNbThreads(1);
    const double one = cka::kernel_cka(x, y, cka::rbf_kernel::median(), estimator::unbiased, tiles());
    Eigen::setNbThreads(2);
    const double two = cka::kernel_cka(x, y, cka::rbf_kernel::median(), estimator::unbiased, tiles());
    Eigen::setNbThreads(1);
    const double one_stored = cka::kernel_cka(x, y, cka::rbf_kernel::median(), estimator::unbiased);
    Eigen::setNbThreads(2);
    const double two_stored = cka::kernel_cka(x, y, cka::rbf_kernel::median(), estimator::unbiased);
    Eigen::setNbThreads(threads);
    CHECK(one == two);
    CHECK(one_stored == two_stored);
  } else {
    WARN("skipped: one thread against two needs OpenMP, absent from this build");
  }
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

/// The layer matrix of `layers` (the last one without a kernel: NaN cells) on the tile engine, stored and
/// recomputed, against the route of per-layer Grams and against pairwise kernel_cka; the progress
/// callback only moves forward and ends at its total.
template <class Kernel>
void check_matrix_routes(const std::vector<test::mat<double>>& layers, const Kernel& kernel, estimator est) {
  const std::size_t undefined = layers.size() - 1;
  const Eigen::Index live = Eigen::Index(undefined);
  cka::similarity_matrix_options o;
  o.est = est;
  std::size_t last = 0, total = 0;
  o.progress = [&](std::size_t done, std::size_t all) {
    CHECK(done >= last);
    CHECK(done <= all);
    last = done;
    total = all;
  };
  const auto stored = cka::similarity_matrix(layers, kernel, o);
  CHECK(last > 0);
  CHECK(last == total);
  o.progress = nullptr;
  const auto computed = cka::similarity_matrix(layers, kernel, o, tiles());
  const auto list = cka::detail::make_layers<test::mat<double>, test::mat<double>>(layers, nullptr);
  const auto grams = cka::detail::similarity_matrix_impl<double>(list, kernel, o, cka::detail::matrix_route::grams);
  CHECK(test::undefined_layers(stored) == std::vector<std::size_t>{undefined});
  CHECK(test::undefined_layers(computed) == std::vector<std::size_t>{undefined});
  CHECK(test::undefined_layers(grams) == std::vector<std::size_t>{undefined});
  for (Eigen::Index a = 0; a < live; ++a)
    for (Eigen::Index b = 0; b < live; ++b) {
      CAPTURE(a, b, est == estimator::unbiased);
      CHECK(test::rel_err(stored.values(a, b), computed.values(a, b)) < 1e-12);
      CHECK(test::rel_err(stored.values(a, b), grams.values(a, b)) < 1e-12);
      if (a != b) CHECK(test::rel_err(stored.values(a, b), cka::kernel_cka(layers[std::size_t(a)], layers[std::size_t(b)], kernel, est)) < 1e-12);
    }
  CHECK(std::isnan(stored.values(live, 0)));
  CHECK(std::isnan(computed.values(0, live)));
}

TEST_CASE("RBF similarity matrix on the tile engine: stored, computed, Grams and pairwise agree", "[tiles][matrix]") {
  // Layers of different widths, one without a median bandwidth (one-hot rows: most pairs coincide).
  std::vector<test::mat<double>> layers = {test::normal<double>(301, 5, 51), test::normal<double>(301, 9, 52)};
  layers.push_back(test::related<double>(layers[0], 4, 53));
  test::mat<double> onehot = test::mat<double>::Zero(301, 2);
  for (Eigen::Index i = 0; i < 301; ++i) onehot(i, i % 10 < 8 ? 0 : 1) = 1;
  layers.push_back(onehot);
  const auto kernel = cka::rbf_kernel::median(0.9);
  for (estimator est : {estimator::biased, estimator::unbiased}) check_matrix_routes(layers, kernel, est);
  // The rectangular form and float layers.
  std::vector<test::mat<float>> rows = {layers[0].cast<float>(), layers[1].cast<float>()}, cols = {layers[2].cast<float>()};
  const auto r = cka::similarity_matrix(rows, cols, kernel, cka::similarity_matrix_options{}, tiles());
  REQUIRE(r.values.rows() == 2);
  REQUIRE(r.values.cols() == 1);
  // The same float values promoted to double (kernel_cka of float input rounds its result to float).
  const test::mat<double> r0 = rows[0].cast<double>(), r1 = rows[1].cast<double>(), c0 = cols[0].cast<double>();
  CHECK(test::rel_err(r.values(0, 0), cka::kernel_cka(r0, c0, kernel)) < 1e-12);
  CHECK(test::rel_err(r.values(1, 0), cka::kernel_cka(r1, c0, kernel)) < 1e-12);
}

TEST_CASE("polynomial and generic similarity matrices on the tile engine: stored, computed, Grams and pairwise agree", "[tiles][matrix]") {
  std::vector<test::mat<double>> layers = {test::normal<double>(301, 5, 151), test::normal<double>(301, 9, 152)};
  layers.push_back((test::related<double>(layers[0], 4, 153).array() + 2.0).matrix());  // an offset
  layers.push_back(test::mat<double>::Constant(301, 2, 1.5));                           // zero variance
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    check_matrix_routes(layers, cka::polynomial_kernel{3, 0.2, 1.0}, est);
    check_matrix_routes(layers, laplacian_kernel{}, est);
  }
}

/// mmd2 with kernel k against its definition on the pooled Gram, stored and recomputed tiles.
template <class Kernel>
void check_mmd_routes(const Kernel& k) {
  for (const auto& [m, n] : std::vector<std::pair<Eigen::Index, Eigen::Index>>{{300, 213}, {37, 5}}) {
    const test::mat<double> x = test::normal<double>(m, 4, 160 + std::uint64_t(m));
    const test::mat<double> y = (test::normal<double>(n, 4, 170 + std::uint64_t(n)).array() + 0.4).matrix();
    test::mat<double> z(m + n, 4);
    z << x, y;
    const test::mat<double> g = cka::gram(z, k);
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      CAPTURE(m, n, est == estimator::unbiased);
      const double sx = g.topLeftCorner(m, m).sum() - (est == estimator::unbiased ? g.diagonal().head(m).sum() : 0.0);
      const double sy = g.bottomRightCorner(n, n).sum() - (est == estimator::unbiased ? g.diagonal().tail(n).sum() : 0.0);
      const double mm = double(m), nn = double(n), px = est == estimator::unbiased ? mm * (mm - 1) : mm * mm,
                   py = est == estimator::unbiased ? nn * (nn - 1) : nn * nn;
      const double expected = sx / px + sy / py - 2 * g.bottomLeftCorner(n, m).sum() / (mm * nn);
      REQUIRE(std::abs(expected) > 1e-3);
      CHECK(test::rel_err(cka::mmd2(x, y, k, est), expected) < 1e-12);
      CHECK(test::rel_err(cka::mmd2(x, y, k, est, tiles()), expected) < 1e-12);
    }
  }
}

TEST_CASE("polynomial and generic MMD on the tile engine: stored, computed and one pooled Gram agree", "[tiles][mmd]") {
  check_mmd_routes(cka::polynomial_kernel{3, 0.25, 1.0});
  check_mmd_routes(laplacian_kernel{});
  const test::mat<double> x = test::normal<double>(50, 3, 180), y = test::normal<double>(40, 3, 181);
  CHECK_THROWS_WITH(cka::mmd2(x, y, cka::polynomial_kernel{400, 1.0, 1.0}, estimator::biased, tiles()),
                    Contains("overflow: a kernel value"));
}

TEST_CASE("RBF MMD on the tile engine: stored, computed and one pooled Gram agree", "[tiles][mmd]") {
  const std::vector<std::pair<Eigen::Index, Eigen::Index>> sizes = {{300, 213}, {37, 5}, {256, 256}};
  for (const auto& [m, n] : sizes) {
    const test::mat<double> x = test::normal<double>(m, 4, 60 + std::uint64_t(m));
    const test::mat<double> y = (test::normal<double>(n, 4, 70 + std::uint64_t(n)).array() + 0.4).matrix();
    test::mat<double> z(m + n, 4);
    z << x, y;
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      for (const auto& kernel : {cka::rbf_kernel::median(), cka::rbf_kernel::median(0.5, median_rule::off_diagonal),
                                 cka::rbf_kernel{2.0}}) {
        CAPTURE(m, n, est == estimator::unbiased, kernel.sigma());
        // The definition on the full pooled Gram (Gretton et al. 2012, eq. 2 and 3).
        const test::mat<double> g = cka::gram(z, kernel);
        const double mm = double(m), nn = double(n);
        double xx = g.topLeftCorner(m, m).sum(), yy = g.bottomRightCorner(n, n).sum();
        const double xy = g.bottomLeftCorner(n, m).sum();
        double expected = xx / (mm * mm) + yy / (nn * nn) - 2 * xy / (mm * nn);
        if (est == estimator::unbiased) {
          xx -= g.diagonal().head(m).sum();
          yy -= g.diagonal().tail(n).sum();
          expected = xx / (mm * (mm - 1)) + yy / (nn * (nn - 1)) - 2 * xy / (mm * nn);
        }
        REQUIRE(expected > 1e-3);
        CHECK(test::rel_err(cka::mmd2(x, y, kernel, est), expected) < 1e-12);
        CHECK(test::rel_err(cka::mmd2(x, y, kernel, est, tiles()), expected) < 1e-12);
      }
    }
  }
}

TEST_CASE("packed tiles: the bytes of the stored upper tiles", "[tiles]") {
  CHECK(cka::detail::packed_tiles::bytes(400) == 8.0 * (256 * 256 + 256 * 144 + 144 * 144));  // tiles (0,0), (0,1), (1,1)
  CHECK(cka::detail::packed_tiles::bytes(257) == 8.0 * (256 * 256 + 256 + 1 + 7));           // one padded value
}
