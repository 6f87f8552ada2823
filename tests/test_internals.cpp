// The internals of the host engines other than the tile engine (whose internals are test_tiles.cpp's):
// the routes and primitives the public functions choose between automatically, checked against each other
// and against explicit products, and the permutation null's moments. The other test files use the public
// API, except test_tiles.cpp (the tile engine), test_device.cpp (the device engine on its host systems) and
// tests/mpi/test_mpi.cpp (the team's share of the median). The median's selection driver, shared by all
// three, is checked here on a plain list of values.
#include "oracle.hpp"
#include "support.hpp"

#include <cka/cka.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/moments.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/select.hpp>
#include <cka/detail/parallel.hpp>
#include <cka/detail/workspace.hpp>
#include <cka/similarity_matrix.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

using cka::estimator;

namespace {
template <class T>
double tol() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}
const std::tuple<int, int, int> shapes[] = {{10, 3, 4}, {50, 8, 13}, {200, 40, 30}, {6, 20, 30}, {64, 64, 64}};

/// The distinct-pair distances as a plain list, a select_median source with 4 buckets and a given cap; a
/// sample (every value, when `sampled`) and the passes it took.
struct list_source {
  using value_type = double;
  static constexpr std::uint64_t buckets = 4;
  static constexpr bool exact_keys = true;
  std::vector<double> values;
  std::uint64_t cap;
  bool sampled;
  std::vector<double> sample{};
  int passes = 0;

  cka::detail::key_range span() const { return {}; }
  std::uint64_t draw_sample() {
    if (sampled) sample = values;
    return sample.size();
  }
  std::uint64_t sample_zeros() const { return std::uint64_t(std::count(sample.begin(), sample.end(), 0.0)); }
  double sample_value(std::uint64_t k) {
    std::nth_element(sample.begin(), sample.begin() + std::ptrdiff_t(k), sample.end());
    return sample[std::size_t(k)];
  }
  cka::detail::key_counts count(const cka::detail::key_range& r, int shift, bool) {
    ++passes;
    cka::detail::key_counts c;
    c.buckets.assign(buckets, 0);
    for (double v : values) {
      const std::uint64_t u = cka::detail::distance_key(v);
      c.zeros += v == 0.0;
      c.below += u < r.lo;
      if (u >= r.lo && u <= r.hi) ++c.buckets[(u - r.lo) >> shift];
    }
    return c;
  }
  std::pair<double, double> pick(const cka::detail::key_range& r, std::uint64_t before, std::uint64_t inside,
                                 cka::detail::rank_pair want) {
    ++passes;
    std::vector<double> in;
    for (double v : values)
      if (cka::detail::distance_key(v) >= r.lo && cka::detail::distance_key(v) <= r.hi) in.push_back(v);
    CHECK(in.size() == inside);
    return cka::detail::order_values("test", in, before, want);
  }
};

/// NumPy's median of the pair values under a rule (n samples; the diagonal's n zeros for all_pairs).
double numpy_median(std::vector<double> pairs, std::uint64_t n, cka::median_rule rule) {
  if (rule == cka::median_rule::all_pairs) {
    std::vector<double> all(std::size_t(n), 0.0);
    for (double v : pairs) all.insert(all.end(), {v, v});
    pairs = all;
  }
  if (rule == cka::median_rule::nonzero) pairs.erase(std::remove(pairs.begin(), pairs.end(), 0.0), pairs.end());
  if (pairs.empty()) return 0.0;
  return oracle::numpy_median(pairs);
}
}  // namespace

TEST_CASE("median selection driver: NumPy's median of a list, every cap, with and without a sample", "[internals][median]") {
  // Lists of n(n-1)/2 values: random (with ties and zeros), two values far apart whose middle ranks split
  // into two buckets too full to collect, all equal (narrowed to one bit pattern), negative zeros, zeros
  // only, and the largest doubles.
  std::vector<std::pair<std::uint64_t, std::vector<double>>> lists;
  for (std::uint64_t n : {2, 3, 16, 40}) {
    std::vector<double> v(std::size_t(n * (n - 1) / 2));
    for (std::size_t k = 0; k < v.size(); ++k) v[k] = double((k * 7919) % 13) * (k % 3 == 0 ? 0.25 : 3.0);
    lists.push_back({n, v});
  }
  std::vector<double> split(120, 1.0);
  std::fill(split.begin() + 60, split.end(), 1000.0);
  lists.push_back({16, split});
  lists.push_back({16, std::vector<double>(120, 2.5)});
  std::vector<double> signed_zeros(45, -0.0);
  for (std::size_t k = 0; k < 45; k += 3) signed_zeros[k] = 0.5;
  lists.push_back({10, signed_zeros});
  lists.push_back({10, std::vector<double>(45, 0.0)});
  std::vector<double> huge(45, std::numeric_limits<double>::max());
  for (std::size_t k = 0; k < 45; k += 2) huge[k] = std::numeric_limits<double>::max() / 3;
  lists.push_back({10, huge});
  for (const auto& [n, values] : lists) {
    for (cka::median_rule rule : {cka::median_rule::all_pairs, cka::median_rule::off_diagonal, cka::median_rule::nonzero}) {
      const double expected = numpy_median(values, n, rule);
      for (std::uint64_t cap : {1, 3, 50, 1000}) {
        for (bool sampled : {false, true}) {
          CAPTURE(n, values.front(), int(rule), cap, sampled);
          list_source src{values, cap, sampled};
          const double got = cka::detail::select_median("test", n, rule, src);
          CHECK(got == expected);
          // Every pass narrows by the bucket count at least (64 bits, 4 buckets: at most 32 counts).
          CHECK(src.passes <= 2 * 33 + 2);
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("feature-space (moment state) and Gram-space linear CKA agree", "[internals][identity]", float, double) {
  using T = TestType;
  using A = cka::accumulator_t<T>;
  for (auto [n, d1, d2] : shapes) {
    const auto x = test::normal<T>(n, d1, 300 + n);
    const auto y = test::related<T>(x, d2, 400 + n);
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      CAPTURE(n, d1, d2, est == estimator::unbiased);
      const A f = cka::detail::cka_ratio("test", cka::detail::linear_sums_features<A>(x, y, est));
      const A g = cka::detail::cka_ratio("test", cka::detail::linear_sums_grams<A>(x, y, est));
      CHECK(test::rel_err(f, g) < 1e-10);
    }
  }
}

TEMPLATE_TEST_CASE("moment state: centered blocks and row norms equal explicit products", "[internals][moments]", float, double) {
  using T = TestType;
  using A = cka::accumulator_t<T>;
  const auto x = test::normal<T>(300, 7, 61);
  test::mat<T> y = test::related<T>(x, 5, 62);
  y.col(2).setConstant(T(0.1));  // a constant column must contribute exactly nothing
  const oracle::mat<double> xc = (x.template cast<double>().rowwise() - x.template cast<double>().colwise().mean()).eval();
  const oracle::mat<double> yc = (y.template cast<double>().rowwise() - y.template cast<double>().colwise().mean()).eval();
  oracle::mat<double> z(300, 12);
  z << xc, yc;
  const oracle::mat<double> g_expected = z.transpose() * z;
  cka::detail::moments<A> m({7, 5});
  for (Eigen::Index r0 = 0; r0 < 300; r0 += 70) {  // several chunks, the last one partial
    const Eigen::Index h = std::min<Eigen::Index>(70, 300 - r0);
    m.template add<Eigen::ColMajor>("test", h, [&](Eigen::Index b, Eigen::Index q0, Eigen::Index hh, auto&& dest) {
      if (b == 0) dest = x.middleRows(r0 + q0, hh).template cast<A>();
      else dest = y.middleRows(r0 + q0, hh).template cast<A>();
    });
  }
  const cka::matrix<A> c = m.centered();
  CHECK((c.block(1, 1, 12, 12).template cast<double>() - g_expected).norm() / g_expected.norm() < tol<T>());
  CHECK(c.col(1 + 7 + 2).cwiseAbs().maxCoeff() == A(0));
  const cka::vector<double> kx = xc.rowwise().squaredNorm();
  CHECK(test::rel_err(c(m.norm_index(0), 0), kx.sum()) < tol<T>());
  CHECK(test::rel_err(c(m.norm_index(0), m.norm_index(0)), kx.squaredNorm()) < tol<T>());
  CHECK(test::rel_err(c(0, 0), 300.0) == 0.0);
  const test::mat<T> wide = x.transpose();  // 7 rows, 300 columns: Gram over column chunks
  const oracle::mat<double> wc = (wide.template cast<double>().rowwise() - wide.template cast<double>().colwise().mean()).eval();
  const oracle::mat<double> k_expected = wc * wc.transpose();
  CHECK((cka::detail::centered_row_gram<A>(wide, 1).template cast<double>() - k_expected).norm() / k_expected.norm() <
        tol<T>());
}

// The symmetric rank-k update every feature-space and Gram route sums through, and the general product of
// the tile engine and the batched permutation tests: in a build with a BLAS (CKA_USE_BLAS; the main
// build's tests) OpenBLAS takes every product of at least blas_min_work multiply-adds, Eigen the smaller
// ones; in the clang suite's build Eigen takes all. The shapes below mix both in one call (add_lower_outer's
// 128-column blocks: its diagonal blocks and the parts below them), and each route is checked against the
// explicit product — the lower triangle of it, the strict upper triangle untouched.
TEST_CASE("all_finite: every layout, gaps between lines never read", "[internals][checks]") {
  using cka::detail::all_finite;
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  // A 4×9 block in a 6×9 column-major buffer (gaps of 2 after each column of 4) and its row-major twin.
  oracle::mat<double> buffer = test::normal<double>(6, 9, 5);
  buffer.bottomRows(2).setConstant(nan);
  const Eigen::Map<const oracle::mat<double>, 0, Eigen::OuterStride<>> gappy(buffer.data(), 4, 9, Eigen::OuterStride<>(6));
  CHECK(all_finite(gappy));
  CHECK_FALSE(all_finite(buffer));
  for (const double bad : {nan, inf, -inf}) {
    for (const auto& [i, j] : {std::pair<int, int>{0, 0}, {3, 8}, {2, 5}}) {
      CAPTURE(bad, i, j);
      oracle::mat<double> m = test::normal<double>(4, 9, 6);  // contiguous: one scan
      CHECK(all_finite(m));
      m(i, j) = bad;
      CHECK_FALSE(all_finite(m));
      const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> r = m;
      CHECK_FALSE(all_finite(r));
      CHECK_FALSE(all_finite(m.transpose()));
      buffer.topRows(4) = m;
      CHECK_FALSE(all_finite(gappy));  // line by line
      CHECK_FALSE(all_finite(m.cast<float>().eval()));
    }
  }
  CHECK(all_finite(oracle::mat<double>(0, 3)));
  CHECK(all_finite(oracle::mat<double>(3, 0)));
}

TEST_CASE("centered_columns: the same bits from every layout of the same values", "[internals][centering]") {
  // The column statistics are summed row after row whatever the layout, so a row-major copy, a strided view
  // and a transposed view give the bits of the column-major matrix (float input converted to double too).
  for (const auto& [n, d] : {std::pair<int, int>{37, 21}, {16, 1024}, {5, 3}, {1, 4}, {300, 9}}) {
    CAPTURE(n, d);
    const oracle::mat<double> x = (test::normal<double>(n, d, 11).array() * 1e3 + 7.0).matrix();
    const oracle::mat<double> expected = cka::detail::centered_columns<double>(x);
    const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> r = x;
    CHECK(cka::detail::centered_columns<double>(r) == expected);
    const oracle::mat<double> xt = x.transpose();
    CHECK(cka::detail::centered_columns<double>(xt.transpose()) == expected);
    oracle::mat<double> wide = oracle::mat<double>::Zero(n + 3, d);
    wide.topRows(n) = x;
    const Eigen::Map<const oracle::mat<double>, 0, Eigen::OuterStride<>> view(wide.data(), n, d, Eigen::OuterStride<>(n + 3));
    CHECK(cka::detail::centered_columns<double>(view) == expected);
    const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic> f = x.cast<float>();
    const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> fr = f;
    CHECK(cka::detail::centered_columns<double>(fr) == cka::detail::centered_columns<double>(f));
    // Against the definition: each column minus its mean, to rounding.
    const oracle::mat<double> direct = x.rowwise() - x.colwise().mean();
    CHECK((expected - direct).cwiseAbs().maxCoeff() <= 1e-12 * x.cwiseAbs().maxCoeff());
    // A constant column is exactly zero.
    oracle::mat<double> c = x;
    c.col(d / 2).setConstant(0.1);
    CHECK(cka::detail::centered_columns<double>(c).col(d / 2).cwiseAbs().maxCoeff() == 0.0);
  }
}

TEST_CASE("symmetric products: add_lower_outer equals the explicit product on every operand form", "[internals][products]") {
  using cka::detail::add_lower_outer;
  using cka::detail::blas_lower_outer;
  const oracle::mat<double> base = test::normal<double>(300, 400, 71);
  const auto check_lower = [](const auto& g, const oracle::mat<double>& expected, double tolerance) {
    const Eigen::Index p = expected.rows();
    double worst = 0, upper = 0;
    for (Eigen::Index j = 0; j < p; ++j) {
      for (Eigen::Index i = 0; i < j; ++i) upper = std::max(upper, std::abs(double(g(i, j))));
      for (Eigen::Index i = j; i < p; ++i) worst = std::max(worst, std::abs(double(g(i, j)) - expected(i, j)));
    }
    CHECK(upper == 0.0);
    CHECK(worst <= tolerance * expected.cwiseAbs().maxCoeff());
  };
  SECTION("column-major, a block of a taller matrix (outer stride 300), onto a nonzero lower triangle") {
    const auto r = base.middleRows(10, 260);  // blocks of 128, 128 and 4 columns
    cka::matrix<double> g = cka::matrix<double>::Zero(260, 260);
    g.triangularView<Eigen::Lower>().setConstant(1.5);
    add_lower_outer(g, r);
    oracle::mat<double> expected = r * r.transpose();
    expected.array() += 1.5;
    check_lower(g, expected, 1e-14);
    cka::matrix<double> h = cka::matrix<double>::Zero(260, 260);
    CHECK(blas_lower_outer(h, r) == cka::detail::blas_products);  // the BLAS takes it where the build has one
    cka::matrix<double> small = cka::matrix<double>::Zero(20, 20);
    CHECK_FALSE(blas_lower_outer(small, base.topLeftCorner(20, 30)));  // too little work: Eigen's
  }
  SECTION("row-major: the transpose of a column-major matrix, and a row-major block") {
    const auto r = base.transpose();  // 400 × 300
    cka::matrix<double> g = cka::matrix<double>::Zero(400, 400);
    add_lower_outer(g, r);
    check_lower(g, r * r.transpose(), 1e-14);
    const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = base;
    cka::matrix<double> g2 = cka::matrix<double>::Zero(200, 200);
    add_lower_outer(g2, rm.block(7, 3, 200, 300));
    check_lower(g2, base.block(7, 3, 200, 300) * base.block(7, 3, 200, 300).transpose(), 1e-14);
  }
  SECTION("float, long double, and an expression without direct access (Eigen's products)") {
    const test::mat<float> rf = base.cast<float>();
    cka::matrix<float> gf = cka::matrix<float>::Zero(300, 300);
    add_lower_outer(gf, rf);
    check_lower(gf, rf.cast<double>() * rf.cast<double>().transpose(), 1e-5);
    const cka::matrix<long double> rl = base.topRows(130).cast<long double>();
    cka::matrix<long double> gl = cka::matrix<long double>::Zero(130, 130);
    CHECK_FALSE(blas_lower_outer(gl, rl));
    add_lower_outer(gl, rl);
    check_lower(gl, base.topRows(130) * base.topRows(130).transpose(), 1e-14);
    const auto scaled = 2.0 * base.topRows(130);
    cka::matrix<double> g = cka::matrix<double>::Zero(130, 130);
    CHECK_FALSE(blas_lower_outer(g, scaled));
    add_lower_outer(g, scaled);
    check_lower(g, 4.0 * base.topRows(130) * base.topRows(130).transpose(), 1e-14);
  }
  SECTION("a depth of zero adds nothing; a stride beyond the BLAS's int is left to Eigen, unread") {
    cka::matrix<double> g = cka::matrix<double>::Constant(5, 5, 2.0);
    add_lower_outer(g, base.topRows(5).leftCols(0));
    CHECK((g.array() == 2.0).all());
    const Eigen::Map<const cka::matrix<double>, 0, Eigen::OuterStride<>> far(base.data(), 2000, 3000,
                                                                             Eigen::OuterStride<>(Eigen::Index(1) << 31));
    cka::matrix<double> g2 = cka::matrix<double>::Zero(2000, 2000);
    CHECK_FALSE(blas_lower_outer(g2, far));
    CHECK((g2.array() == 0.0).all());
  }
}

TEST_CASE("products: product_into and add_product equal the explicit product on every operand form", "[internals][products]") {
  using cka::detail::add_product;
  using cka::detail::blas_product;
  using cka::detail::product_into;
  const oracle::mat<double> a = test::normal<double>(300, 200, 81), b = test::normal<double>(200, 150, 82);
  const auto close = [](const auto& got, const oracle::mat<double>& expected, double tolerance) {
    CHECK(got.rows() == expected.rows());
    CHECK(got.cols() == expected.cols());
    CHECK((got.template cast<double>() - expected).cwiseAbs().maxCoeff() <= tolerance * expected.cwiseAbs().maxCoeff());
  };
  cka::matrix<double> out(300, 150), probe(300, 150);
  product_into(out, a, b);
  close(out, a * b, 1e-14);
  CHECK(blas_product(probe, a, b) == cka::detail::blas_products);  // the BLAS takes it where the build has one
  add_product(out, a, b);
  close(out, 2.0 * a * b, 1e-14);
  cka::matrix<double> tiles(160, 150);  // the tile engine's form: rows of one block times rows of another
  Eigen::Map<cka::matrix<double>> tile(tiles.data(), 160, 150);
  product_into(tile, a.middleRows(5, 160), a.middleRows(133, 150).transpose());
  close(tiles, a.middleRows(5, 160) * a.middleRows(133, 150).transpose(), 1e-14);
  cka::matrix<double> tt(150, 300);  // both transposed, so row-major
  product_into(tt, b.transpose(), a.transpose());
  close(tt, b.transpose() * a.transpose(), 1e-14);
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = a;
  cka::matrix<double> rb(150, 150);  // a row-major block on the left, a column-major block below the diagonal
  product_into(rb, rm.block(3, 0, 150, 200), b);
  close(rb, a.block(3, 0, 150, 200) * b, 1e-14);
  cka::matrix<double> empty = cka::matrix<double>::Constant(300, 150, 3.0);  // a depth of zero: zeros
  product_into(empty, a.leftCols(0), b.topRows(0));
  CHECK((empty.array() == 0.0).all());
  const test::mat<float> af = a.cast<float>(), bf = b.cast<float>();
  cka::matrix<float> of(300, 150);
  product_into(of, af, bf);
  close(of, af.cast<double>() * bf.cast<double>(), 1e-5);
  const cka::matrix<long double> al = a.cast<long double>(), bl = b.cast<long double>();
  cka::matrix<long double> ol(300, 150);
  CHECK_FALSE(blas_product(ol, al, bl));  // Eigen's product for every other scalar
  product_into(ol, al, bl);
  close(ol, a * b, 1e-14);
}

TEST_CASE("workspace: leases nest without overlap, and a repeated call reuses the arena", "[internals][workspace]") {
  using lease = cka::detail::workspace_lease<double>;
  auto apart = [](const lease& a, std::size_t na, const lease& b, std::size_t nb) {
    return b.data() >= a.data() + na || b.data() + nb <= a.data();
  };
  std::thread([&] {  // a thread of its own: an empty arena
    const double* first = nullptr;
    const double* second = nullptr;
    for (int round = 0; round < 3; ++round) {
      CAPTURE(round);
      lease outer(1000);
      std::fill(outer.data(), outer.data() + 1000, 1.0);
      {
        lease inner(500);  // round 0: beyond the arena (its own buffer); then behind the outer lease
        std::fill(inner.data(), inner.data() + 500, 2.0);
        CHECK(apart(outer, 1000, inner, 500));
        if (round > 0) CHECK(inner.data() == outer.data() + 1000);
        if (round == 2) {
          CHECK(outer.data() == first);  // no new buffer: the arena grew once, to the most leased at once
          CHECK(inner.data() == second);
        }
        first = outer.data();
        second = inner.data();
      }
      CHECK(std::all_of(outer.data(), outer.data() + 1000, [](double v) { return v == 1.0; }));
    }
    // Beyond the cap: a buffer of its own, whole (its last value written), apart from a lease taken after it.
    {
      using char_lease = cka::detail::workspace_lease<char>;
      char_lease big(char_lease::cap_values + 1);
      char_lease small(64);
      big.data()[char_lease::cap_values] = 'x';
      CHECK((small.data() >= big.data() + char_lease::cap_values + 1 || small.data() + 64 <= big.data()));
    }
  }).join();
}

#if defined(_OPENMP)
TEST_CASE("parallel loops keep one thread per block inside, and the caller's OpenMP setting", "[internals][threads]") {
  // add_lower_outer and parallel_for set one thread inside their own regions (so that the BLAS does not
  // thread a block's product itself); that setting must end with the region, whatever the thread count.
  const int before = omp_get_max_threads(), eigen = Eigen::nbThreads();
  const auto r = test::normal<double>(300, 40, 5);
  for (int t : {1, 2}) {
    CAPTURE(t);
    Eigen::setNbThreads(t);
    test::mat<double> g = test::mat<double>::Zero(300, 300);
    cka::detail::add_lower_outer(g, r);
    std::vector<int> inside(4, 0);
    cka::detail::parallel_for(4, t, [&](int, Eigen::Index k) { inside[std::size_t(k)] = omp_get_max_threads(); });
    CHECK(std::all_of(inside.begin(), inside.end(), [](int v) { return v == 1; }));
    CHECK(omp_get_max_threads() == before);
    const test::mat<double> full = r * r.transpose();
    CHECK((g.triangularView<Eigen::Lower>().toDenseMatrix() - full.triangularView<Eigen::Lower>().toDenseMatrix()).norm() <=
          1e-13 * full.norm());
  }
  Eigen::setNbThreads(eigen);
}
#endif

TEST_CASE("similarity_matrix: both routes of the linear kernel agree with pairwise CKA", "[internals][matrix]") {
  std::vector<test::mat<double>> layers;
  const auto x = test::normal<double>(50, 6, 1);
  layers.push_back(x);
  layers.push_back(test::related<double>(x, 9, 2));
  layers.push_back(test::related<double>(layers[1], 70, 3));  // wider than n
  layers.push_back(test::mat<double>::Constant(50, 3, 0.25));
  const auto list = cka::detail::make_layers<test::mat<double>, test::mat<double>>(layers, nullptr);
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    cka::similarity_matrix_options o;
    o.est = est;
    for (auto route : {cka::detail::matrix_route::grams, cka::detail::matrix_route::moments}) {
      const auto r = cka::detail::similarity_matrix_impl<double>(list, cka::linear_kernel{}, o, route);
      CHECK(test::undefined_layers(r) == std::vector<std::size_t>{3});
      for (std::size_t a = 0; a < 3; ++a)
        for (std::size_t b = 0; b < 3; ++b) {
          CAPTURE(a, b, est == estimator::unbiased, route == cka::detail::matrix_route::moments);
          CHECK(test::rel_err(r.values(Eigen::Index(a), Eigen::Index(b)), cka::linear_cka(layers[a], layers[b], est)) < 1e-12);
        }
    }
  }
}

// The permutation null's moments (cka/detail/null_moments.hpp), which independence_test and
// similarity_tests use, against every permutation of a small sample.
TEST_CASE("permutation moments: exact against all 7! permutations", "[inference][moments]") {
  const Eigen::Index n = 7;
  const auto x = test::normal<double>(n, 2, 1), y = test::normal<double>(n, 3, 2);
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    const test::mat<double> a = cka::detail::centered_dense<double>(test::mat<double>(x * x.transpose()), est);
    const test::mat<double> b = cka::detail::centered_dense<double>(
        cka::detail::gram_of<double>(y, cka::rbf_kernel{1.5}), est);
    std::vector<Eigen::Index> perm(n);
    std::iota(perm.begin(), perm.end(), Eigen::Index(0));
    double sum = 0, sum2 = 0, count = 0;
    do {
      const double t = cka::detail::permuted_product(a, b, perm);
      sum += t;
      sum2 += t * t;
      ++count;
    } while (std::next_permutation(perm.begin(), perm.end()));
    const double mean = sum / count, variance = sum2 / count - mean * mean;
    const auto m = cka::detail::permutation_moments(cka::detail::sums_of(a), cka::detail::sums_of(b), double(n));
    CHECK(std::abs(m.mean - mean) <= 1e-12 * std::sqrt(variance));
    CHECK(test::rel_err(m.variance, variance) < 1e-10);
    if (est == estimator::unbiased) {
      CHECK(std::abs(m.mean) < 1e-12);
      CHECK(test::rel_err(m.variance, 2 * a.squaredNorm() * b.squaredNorm() / double(n * (n - 3))) < 1e-12);
    }
  }
}
