// The device engine's internals file. The Thrust backend on its host systems (cka::device::omp and cpp): every function on views of every
// layout — column-major, row-major (PyTorch's), padded rows, and neither stride 1 — equals the host
// function on the same values; layout and finiteness errors name the function and the element; the loss
// gradients are written through strided views without touching the memory between their elements.
#include "support.hpp"

#include <cka/device.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using cka::estimator;
using Catch::Matchers::Contains;
namespace device = cka::device;

namespace {

enum class layout { column_major, row_major, padded_rows, strided };
const layout layouts[] = {layout::column_major, layout::row_major, layout::padded_rows, layout::strided};

/// m copied into a buffer of the given layout; the gaps between elements hold NaN, so a function that
/// read outside the view would fail.
template <class T>
struct laid_out {
  std::vector<T> buffer;
  device::matrix_view<T> view;
  device::matrix_view<const T> input() const { return {view.ptr, view.rows, view.cols, view.row_stride, view.col_stride}; }
};

template <class T>
laid_out<T> lay_out(const test::mat<T>& m, layout l) {
  const std::int64_t r = m.rows(), c = m.cols();
  std::int64_t rs = 1, cs = r;
  if (l == layout::row_major) rs = c, cs = 1;
  if (l == layout::padded_rows) rs = c + 3, cs = 1;
  if (l == layout::strided) rs = 2, cs = 2 * r + 1;
  laid_out<T> out;
  out.buffer.assign(std::size_t((r - 1) * rs + (c - 1) * cs + 1), std::numeric_limits<T>::quiet_NaN());
  for (std::int64_t i = 0; i < r; ++i)
    for (std::int64_t j = 0; j < c; ++j) out.buffer[std::size_t(i * rs + j * cs)] = m(i, j);
  out.view = {out.buffer.data(), r, c, rs, cs};
  return out;
}

template <class Context>
void check_against_host(const Context& ctx) {
  const auto x = test::normal<double>(57, 6, 801);
  const auto y = test::related<double>(x, 4, 802);
  const auto y6 = test::related<double>(x, 6, 803);
  const auto kernel = cka::rbf_kernel::median(0.8);
  const test::mat<double> k = cka::gram(x, kernel), l = cka::gram(y, kernel);
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    const double lin = cka::linear_cka(x, y, est), rbf = cka::kernel_cka(x, y, kernel, est);
    const double h = cka::hsic(k, l, est), mmd = cka::mmd2(x, y6, cka::rbf_kernel{2.0}, est);
    for (layout lx : layouts)
      for (layout ly : layouts) {
        CAPTURE(int(lx), int(ly), est == estimator::unbiased);
        const auto vx = lay_out(x, lx), vy = lay_out(y, ly), vy6 = lay_out(y6, ly);
        const auto vk = lay_out(k, lx), vl = lay_out(l, ly);
        CHECK(test::rel_err(cka::linear_cka(ctx, vx.input(), vy.input(), est), lin) < 1e-12);
        CHECK(test::rel_err(cka::kernel_cka(ctx, vx.input(), vy.input(), kernel, kernel, est), rbf) < 1e-12);
        CHECK(test::rel_err(cka::hsic(ctx, vk.input(), vl.input(), est), h) < 1e-12);
        CHECK(test::rel_err(cka::mmd2(ctx, vx.input(), vy6.input(), cka::rbf_kernel{2.0}, est), mmd) < 1e-12);
      }
  }
  // Fewer samples than features (a training batch of wide layers): the sample-space form, two n×n Grams.
  {
    const auto wx = test::normal<double>(23, 40, 811);
    const auto wy = test::related<double>(wx, 30, 812);
    for (estimator est : {estimator::biased, estimator::unbiased})
      for (layout lx : layouts)
        for (layout ly : layouts) {
          CAPTURE(int(lx), int(ly), est == estimator::unbiased);
          CHECK(test::rel_err(cka::linear_cka(ctx, lay_out(wx, lx).input(), lay_out(wy, ly).input(), est),
                              cka::linear_cka(wx, wy, est)) < 1e-12);
        }
    const test::mat<double> wide_huge = wx * 1e300, wide_offset = (wx.array() + 1e6).matrix();
    CHECK(test::rel_err(cka::linear_cka(ctx, lay_out(wide_huge, layout::strided).input(), lay_out(wy, layout::row_major).input()),
                        cka::linear_cka(wx, wy)) < 1e-12);
    CHECK(test::rel_err(cka::linear_cka(ctx, lay_out(wide_offset, layout::column_major).input(),
                                        lay_out(wy, layout::row_major).input(), estimator::unbiased),
                        cka::linear_cka(wx, wy, estimator::unbiased)) < 1e-9);
    const std::vector<double> row(40, 2.5);  // every sample the same: zero variance, as on the host
    const device::matrix_view<const double> same_rows{row.data(), 23, 40, 0, 1};
    CHECK_THROWS_WITH(cka::linear_cka(ctx, same_rows, lay_out(wy, layout::row_major).input()), Contains("zero variance"));
  }
  // Extreme magnitudes are scaled by a power of two first, as on the host; an offset of 1e6 keeps its digits.
  const test::mat<double> huge = x * 1e300, shifted = (x.array() + 1e6).matrix();
  CHECK(test::rel_err(cka::linear_cka(ctx, lay_out(huge, layout::strided).input(), lay_out(y, layout::row_major).input()),
                      cka::linear_cka(x, y)) < 1e-12);
  CHECK(test::rel_err(cka::linear_cka(ctx, lay_out(shifted, layout::row_major).input(), lay_out(y, layout::row_major).input(),
                                      estimator::unbiased),
                      cka::linear_cka(x, y, estimator::unbiased)) < 1e-9);
  // Broadcast views (stride 0, as torch's expand gives): every column the same, or every row.
  {
    const std::vector<double> column(x.data(), x.data() + 57);  // x's first column
    const device::matrix_view<const double> same_columns{column.data(), 57, 3, 1, 0};
    const test::mat<double> dense = x.col(0).replicate(1, 3);
    CHECK(test::rel_err(cka::linear_cka(ctx, same_columns, lay_out(y, layout::row_major).input()), cka::linear_cka(dense, y)) < 1e-12);
    CHECK(test::rel_err(cka::kernel_cka(ctx, same_columns, lay_out(y, layout::column_major).input(), kernel, kernel),
                        cka::kernel_cka(dense, y, kernel)) < 1e-12);
    const std::vector<double> row = {1.0, 2.0, 3.0};
    const device::matrix_view<const double> same_rows{row.data(), 57, 3, 0, 1};
    CHECK_THROWS_WITH(cka::linear_cka(ctx, same_rows, lay_out(y, layout::row_major).input()), Contains("zero variance"));
  }
  // Non-const views are inputs too; float views accumulate in double and round as the host does.
  auto vx = lay_out(x, layout::row_major), vy = lay_out(y, layout::row_major);
  CHECK(cka::linear_cka(ctx, vx.view, vy.view) == cka::linear_cka(ctx, vx.input(), vy.input()));
  const test::mat<float> xf = x.cast<float>(), yf = y.cast<float>();
  const auto fx = lay_out(xf, layout::padded_rows), fy = lay_out(yf, layout::strided);
  CHECK(test::rel_err(double(cka::linear_cka(ctx, fx.input(), fy.input())), double(cka::linear_cka(xf, yf))) < 1e-6);
  CHECK(test::rel_err(double(cka::kernel_cka(ctx, fx.input(), fy.input(), kernel, kernel)),
                      double(cka::kernel_cka(xf, yf, kernel))) < 1e-6);
}

template <class Context>
void check_losses(const Context& ctx) {
  // 16×10: the host takes the Gram form; 40×6: its feature-space form (ds + dt < n); the device engine
  // always takes the Gram form. Options: the default, unbiased, raise, the official code's row-normalised
  // cosine, the plain cosine, centered CKA of the row-scaled Grams, and the plain cosine with the estimator
  // set to unbiased (which an uncentered alignment ignores).
  std::vector<cka::rcka::relation_options> options(7);
  options[1].est = estimator::unbiased;
  options[2].on_undefined = cka::rcka::undefined_policy::raise;
  options[3].centered = false, options[3].row_normalize = true;
  options[4].centered = false;
  options[5].row_normalize = true;
  options[6].centered = false, options[6].est = estimator::unbiased;
  for (auto shape : {std::pair<Eigen::Index, Eigen::Index>{16, 10}, {40, 6}})
    for (const auto& opts : options) {
      const Eigen::Index n = shape.first, d = shape.second;
      const auto s = test::normal<double>(n, d, 811);
      const auto t = test::related<double>(s, d, 812);
      const auto host_sample = cka::rcka::sample_relation_loss(s, t, opts);
      const auto host_class = cka::rcka::class_relation_loss(s, t, opts);
      const auto host_feature = cka::rcka::feature_loss(s, t, opts);
      const auto host_rcka = cka::rcka::rcka_loss(s, t, cka::rcka::rcka_weights{15.0, 3.0}, opts);
      for (layout l : layouts) {
        CAPTURE(n, int(l), opts.centered, opts.row_normalize, int(opts.est), int(opts.on_undefined));
        const auto vs = lay_out(s, l), vt = lay_out(t, l);
        auto grad = lay_out(test::mat<double>(test::mat<double>::Zero(n, d)), l == layout::row_major ? layout::padded_rows : l);
        auto check = [&](const auto& got, const auto& host) {
          CHECK(test::rel_err(got.value, host.value) < 1e-12);
          CHECK(got.skipped == host.skipped);
          double worst = 0;
          for (Eigen::Index i = 0; i < n; ++i)
            for (Eigen::Index j = 0; j < d; ++j) {
              const double g = grad.buffer[std::size_t(i * grad.view.row_stride + j * grad.view.col_stride)];
              worst = std::max(worst, std::abs(g - host.grad(i, j)) / host.grad.cwiseAbs().maxCoeff());
            }
          CHECK(worst < 1e-12);
          // The gaps between the gradient's elements are untouched (still NaN).
          std::size_t gaps = 0;
          for (double v : grad.buffer) gaps += std::isnan(v);
          CHECK(gaps == grad.buffer.size() - std::size_t(n * d));
        };
        check(cka::rcka::sample_relation_loss(ctx, vs.input(), vt.input(), grad.view, opts), host_sample);
        check(cka::rcka::class_relation_loss(ctx, vs.input(), vt.input(), grad.view, opts), host_class);
        check(cka::rcka::feature_loss(ctx, vs.input(), vt.input(), grad.view, opts), host_feature);
        check(cka::rcka::rcka_loss(ctx, vs.input(), vt.input(), grad.view, cka::rcka::rcka_weights{15.0, 3.0}, opts), host_rcka);
      }
    }
  // Undefined terms: a constant student is skipped (value 0, a zero gradient over the previous values),
  // or raises under undefined_policy::raise; too few rows for the unbiased estimator likewise.
  const test::mat<double> flat = test::mat<double>::Constant(12, 4, 0.5);
  const auto t = test::normal<double>(12, 4, 813);
  auto grad = lay_out(test::mat<double>(test::mat<double>::Constant(12, 4, 7.0)), layout::row_major);
  const auto r = cka::rcka::sample_relation_loss(ctx, lay_out(flat, layout::row_major).input(), lay_out(t, layout::row_major).input(), grad.view);
  CHECK(r.value == 0.0);
  CHECK(r.skipped == 1);
  CHECK(device::detail::map(grad.view).cwiseAbs().maxCoeff() == 0.0);
  cka::rcka::relation_options raise;
  raise.on_undefined = cka::rcka::undefined_policy::raise;
  CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(ctx, lay_out(flat, layout::row_major).input(), lay_out(t, layout::row_major).input(),
                                                    grad.view, raise),
                    Contains("rcka::sample_relation_loss") && Contains("constant student"));
  const test::mat<double> three = t.topRows(3);
  auto grad3 = lay_out(test::mat<double>(test::mat<double>::Constant(3, 4, 7.0)), layout::column_major);
  cka::rcka::relation_options unbiased;
  unbiased.est = estimator::unbiased;
  const auto host3 = cka::rcka::rcka_loss(three, three, {}, unbiased);
  const auto got3 = cka::rcka::rcka_loss(ctx, lay_out(three, layout::row_major).input(), lay_out(three, layout::row_major).input(),
                                         grad3.view, {}, unbiased);
  CHECK(got3.skipped == host3.skipped);
  CHECK(std::abs(got3.value - host3.value) < 1e-12);
  CHECK((device::detail::map(grad3.view) - host3.grad).cwiseAbs().maxCoeff() < 1e-12);
  unbiased.on_undefined = cka::rcka::undefined_policy::raise;
  CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(ctx, lay_out(three, layout::row_major).input(),
                                                    lay_out(three, layout::row_major).input(), grad3.view, unbiased),
                    Contains("the student has 3 samples"));
  // The class relation needs the same classes.
  const test::mat<double> wide = test::normal<double>(12, 5, 814);
  CHECK_THROWS_WITH(cka::rcka::class_relation_loss(ctx, lay_out(t, layout::row_major).input(), lay_out(wide, layout::row_major).input(),
                                                   grad.view),
                    Contains("classes"));
}

template <class Context>
void check_errors(const Context& ctx) {
  auto x = lay_out(test::normal<double>(20, 3, 821), layout::row_major);
  const auto y = lay_out(test::normal<double>(20, 2, 822), layout::column_major);
  device::matrix_view<const double> null_view{nullptr, 20, 3, 3, 1};
  CHECK_THROWS_WITH(cka::linear_cka(ctx, null_view, y.input()), Contains("linear_cka") && Contains("null"));
  device::matrix_view<const double> negative{x.buffer.data(), -1, 3, 3, 1};
  CHECK_THROWS_AS(cka::linear_cka(ctx, negative, y.input()), std::invalid_argument);
  device::matrix_view<const double> backwards{x.buffer.data(), 20, 3, -3, 1};
  CHECK_THROWS_WITH(cka::kernel_cka(ctx, backwards, y.input(), cka::rbf_kernel{1.0}, cka::rbf_kernel{1.0}), Contains("negative strides"));
  const std::int64_t big = std::numeric_limits<std::int64_t>::max() / 2;
  device::matrix_view<const double> far{x.buffer.data(), 20, 3, big, 1};
  CHECK_THROWS_WITH(cka::linear_cka(ctx, far, y.input()), Contains("64-bit"));
  x.buffer[std::size_t(7 * 3 + 2)] = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(cka::linear_cka(ctx, x.input(), y.input()), Contains("linear_cka") && Contains("X(7, 2)"));
  CHECK_THROWS_WITH(cka::mmd2(ctx, y.input(), x.input(), cka::rbf_kernel{1.0}), Contains("mmd2"));
  const auto short_y = lay_out(test::normal<double>(19, 2, 823), layout::column_major);
  x.buffer[std::size_t(7 * 3 + 2)] = 0.5;
  CHECK_THROWS_WITH(cka::linear_cka(ctx, x.input(), short_y.input()), Contains("19"));
  // A gradient view of the wrong shape.
  auto grad = lay_out(test::mat<double>(test::mat<double>::Zero(20, 2)), layout::row_major);
  CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(ctx, x.input(), y.input(), grad.view), Contains("grad is 20x2"));
}

}  // namespace

TEST_CASE("device views on the CPP system equal the host functions", "[device]") {
  check_against_host(device::cpp{});
  check_losses(device::cpp{});
  check_errors(device::cpp{});
}

TEST_CASE("device views on the OMP system equal the host functions", "[device]") {
  check_against_host(device::omp{});
  check_losses(device::omp{});
  check_errors(device::omp{});
}

TEST_CASE("device HSIC: Thrust's centered sums against the host, and the Gram checks", "[device]") {
  // Odd n and a Gram that is symmetric only up to rounding (a product computed in two orders).
  const auto x = test::normal<double>(41, 5, 831);
  const test::mat<double> k = cka::gram(x, cka::rbf_kernel{1.3});
  const test::mat<double> l = x * x.transpose() / 5.0;
  auto run = [&](const auto& ctx) {
    for (estimator est : {estimator::biased, estimator::unbiased})
      for (layout lk : layouts) {
        CAPTURE(int(lk), est == estimator::unbiased);
        const auto vk = lay_out(k, lk), vl = lay_out(l, layout::row_major);
        CHECK(test::rel_err(cka::hsic(ctx, vk.input(), vl.input(), est), cka::hsic(k, l, est)) < 1e-12);
        CHECK(test::rel_err(cka::hsic(ctx, vk.input(), vk.input(), est), cka::hsic(k, k, est)) < 1e-12);
      }
    // Not square, not symmetric (the culprit named), different sizes, too few samples.
    const auto rect = lay_out(test::mat<double>(k.leftCols(40)), layout::row_major);
    CHECK_THROWS_WITH(cka::hsic(ctx, rect.input(), rect.input()), Contains("hsic") && Contains("41x40") && Contains("square"));
    test::mat<double> bent = k;
    bent(9, 3) += 0.25;
    const auto vb = lay_out(bent, layout::column_major), vk = lay_out(k, layout::column_major);
    CHECK_THROWS_WITH(cka::hsic(ctx, vk.input(), vb.input()), Contains("L is not symmetric") && Contains("(9, 3)"));
    const auto small = lay_out(test::mat<double>(k.topLeftCorner(3, 3)), layout::row_major);
    CHECK_THROWS_WITH(cka::hsic(ctx, vk.input(), small.input()), Contains("same samples"));
    CHECK_THROWS_WITH(cka::hsic(ctx, small.input(), small.input(), estimator::unbiased), Contains("3"));
  };
  run(device::cpp{});
  run(device::omp{});
}

namespace {

/// The device tile engine on a host system with a small plan (tiles of `tile` rows; brackets of more than
/// `cap` values narrowed; a sample of `draws` pairs brackets the median first when draws > 0; each item of
/// a tally counting `chunk` values).
template <class Context>
auto small_engine(const Context& ctx, std::int64_t tile, std::uint64_t cap, std::uint64_t draws, std::int64_t chunk = 64) {
  device::detail::tile_plan plan;
  plan.tile = tile;
  plan.chunk = chunk;
  plan.cap = cap;
  plan.draws = draws;
  plan.sample_above = 0;  // a sample of `draws` pairs whenever draws > 0
  return device::detail::make_tile_engine(device::detail::backend_for(ctx, "kernel_cka"), plan);
}

/// The engine's median of the squared distances between the rows of x (centered, unscaled).
template <class Engine>
double engine_median(const Engine& e, const test::mat<double>& x, cka::median_rule rule) {
  const std::int64_t n = x.rows(), d = x.cols();
  std::vector<double> z(std::size_t(n * d)), norms(static_cast<std::size_t>(n)), slots(device::detail::input_slots::count);
  std::vector<double> stats(std::size_t(2 * d + device::detail::moments_scratch(n, d)));
  const auto rows = device::detail::alone(device::detail::strided<double>{x.data(), n, d, 1, n});
  device::detail::scan_columns(e.be, rows, stats.data(), stats.data() + d, stats.data() + 2 * d,
                               device::detail::input_slots{slots.data()}, false, false);
  device::detail::write_centered(e.be, rows, stats.data(), stats.data() + d, nullptr, z.data());
  e.be.transform(n, norms.data(), device::detail::row_norm{z.data(), n, d});
  return device::detail::tile_median(e, device::detail::tile_rows{z.data(), norms.data(), n, d}, rule);
}

const cka::median_rule rules[] = {cka::median_rule::all_pairs, cka::median_rule::off_diagonal, cka::median_rule::nonzero};

}  // namespace

TEST_CASE("device RBF engine: the exact median by bit-pattern selection, every plan", "[device]") {
  // Integer features: every squared distance is an exact integer in any summation order, so the medians
  // must equal median_squared_distance's exactly; rows repeat (ties and zero distances), n is odd and even.
  // Plans: one tile with everything collected; tiles of 7; buckets narrowed (cap 3); a sample then
  // narrowing; cap 1 (narrowed down to single bit patterns).
  for (Eigen::Index n : {2, 3, 31, 64, 97}) {
    // Rows ±h (and a zero row for odd n): the column means are exactly 0, so centering changes nothing.
    test::mat<double> h = (test::normal<double>(n / 2, 3, 840 + std::uint64_t(n)) * 2.0).array().round().matrix();
    for (Eigen::Index i = 0; i + 5 < h.rows(); i += 5) h.row(i + 1) = h.row(i);
    test::mat<double> x = test::mat<double>::Zero(n, 3);
    x.topRows(n / 2) = h;
    x.middleRows(n / 2, n / 2) = -h;
    const test::mat<double> d = cka::gram(x, cka::linear_kernel{}).diagonal().replicate(1, n) +
                                cka::gram(x, cka::linear_kernel{}).diagonal().transpose().replicate(n, 1) -
                                2.0 * cka::gram(x, cka::linear_kernel{});
    for (auto rule : rules) {
      const double expected = cka::median_squared_distance(d, rule);
      for (auto plan : {std::array<std::uint64_t, 3>{256, 1u << 20, 0}, {7, 1u << 20, 0}, {5, 3, 0}, {16, 40, 64}, {9, 1, 25}}) {
        CAPTURE(n, int(rule), plan[0], plan[1], plan[2]);
        CHECK(engine_median(small_engine(device::cpp{}, std::int64_t(plan[0]), plan[1], plan[2]), x, rule) == expected);
        // Tally items of 1 and 5 values: items that end inside a tile's rows, and a tile's last item short.
        CHECK(engine_median(small_engine(device::cpp{}, std::int64_t(plan[0]), plan[1], plan[2], 5), x, rule) == expected);
        CHECK(engine_median(small_engine(device::cpp{}, std::int64_t(plan[0]), plan[1], plan[2], 1), x, rule) == expected);
      }
      CHECK(engine_median(small_engine(device::omp{}, 8, 10, 30), x, rule) == expected);
      CHECK(engine_median(small_engine(device::omp{}, 8, 10, 30, 3), x, rule) == expected);
    }
  }
  // All rows equal: the nonzero rule's median is 0; many equal distances narrowed to one bit pattern.
  const test::mat<double> same = test::mat<double>::Ones(20, 2);
  CHECK(engine_median(small_engine(device::cpp{}, 6, 2, 0), same, cka::median_rule::nonzero) == 0.0);
  test::mat<double> two(40, 1);
  for (Eigen::Index i = 0; i < 40; ++i) two(i, 0) = i % 2 ? 0.5 : -0.5;  // distances 0 and 1, 380 and 400
  const test::mat<double> d2 = (two.replicate(1, 40) - two.transpose().replicate(40, 1)).array().square().matrix();
  for (auto rule : rules) {
    CHECK(engine_median(small_engine(device::cpp{}, 8, 4, 0), two, rule) == cka::median_squared_distance(d2, rule));
  }
  // Random rows repeated (found by the conformance suite): the expansion left equal rows a small positive
  // distance, which the nonzero rule counted; summed from the rows they are 0. Against the median of the
  // distances summed directly (values within rounding; a miscounted zero moves the rank).
  test::mat<double> dup(60, 7);
  dup << test::normal<double>(30, 7, 93), test::normal<double>(30, 7, 93);
  test::mat<double> direct(60, 60);
  for (Eigen::Index i = 0; i < 60; ++i)
    for (Eigen::Index j = 0; j < 60; ++j) direct(i, j) = (dup.row(i) - dup.row(j)).squaredNorm();
  // The products summed in reverse order (as a GPU's GEMM may order them; the row norms are summed
  // forwards), so that equal rows do not come out exactly 0 from the expansion.
  struct reversed_ops : device::detail::eigen_ops {
    void tile_gemm(const char*, const double* a, const double* b, std::int64_t h, std::int64_t w, std::int64_t d,
                   std::int64_t lda, double* g) const {
      for (std::int64_t j = 0; j < w; ++j)
        for (std::int64_t i = 0; i < h; ++i) {
          double v = 0;
          for (std::int64_t c = d - 1; c >= 0; --c) v += a[c * lda + i] * b[c * lda + j];
          g[j * h + i] = v;
        }
    }
  };
  device::detail::tile_plan plan;
  plan.tile = 8;
  const auto reversed =
      device::detail::make_tile_engine(device::detail::make_backend(thrust::cpp::par, reversed_ops{}, nullptr, "kernel_cka"), plan);
  for (auto rule : rules) {
    CAPTURE(int(rule));
    CHECK(test::rel_err(engine_median(reversed, dup, rule), cka::median_squared_distance(direct, rule)) < 1e-13);
  }
}

TEST_CASE("device RBF engine: kernel CKA against the host for every plan, rule, estimator and scale", "[device]") {
  const auto x = test::normal<double>(45, 5, 851);
  const auto y = test::related<double>(x, 3, 852);
  const cka::rbf_kernel kernels[] = {cka::rbf_kernel::median(0.8), cka::rbf_kernel::median(1.0, cka::median_rule::off_diagonal),
                                     cka::rbf_kernel::median(1.5, cka::median_rule::nonzero), cka::rbf_kernel{2.0}};
  const auto vx = lay_out(x, layout::row_major), vy = lay_out(y, layout::strided);
  for (const auto& k : kernels)
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      const double expected = cka::kernel_cka(x, y, k, k, est);
      for (std::int64_t tile : {4, 7, 16, 45, 64}) {
        CAPTURE(k.sigma(), int(k.rule()), est == estimator::unbiased, tile);
        device::detail::tile_plan plan;
        plan.tile = tile;
        plan.chunk = 3;  // pass A's chunks end inside tiles and rows
        plan.cap = 50;
        plan.draws = 100;
        plan.sample_above = 0;
        CHECK(test::rel_err(device::detail::tile_kernel_cka(device::cpp{}, vx.input(), vy.input(), k, k, est, plan), expected) < 1e-12);
        CHECK(test::rel_err(device::detail::tile_kernel_cka(device::omp{}, vx.input(), vy.input(), k, k, est, plan), expected) < 1e-12);
      }
    }
  // Mixed kernels; the fewest samples; magnitudes a median rule rescales; a σ whose 1/(2σ²) overflows.
  CHECK(test::rel_err(cka::kernel_cka(device::omp{}, vx.input(), vy.input(), kernels[0], kernels[3]),
                      cka::kernel_cka(x, y, kernels[0], kernels[3])) < 1e-12);
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    const Eigen::Index n = est == estimator::biased ? 2 : 4;
    const test::mat<double> xs = x.topRows(n), ys = y.topRows(n);
    CHECK(test::rel_err(cka::kernel_cka(device::cpp{}, lay_out(xs, layout::row_major).input(), lay_out(ys, layout::row_major).input(),
                                        kernels[3], kernels[3], est),
                        cka::kernel_cka(xs, ys, kernels[3], kernels[3], est)) < 1e-12);
  }
  const test::mat<double> huge = x * 1e200, tiny = x * 1e-200;
  CHECK(test::rel_err(cka::kernel_cka(device::omp{}, lay_out(huge, layout::row_major).input(), vy.input(), kernels[0], kernels[0]),
                      cka::kernel_cka(huge, y, kernels[0], kernels[0])) < 1e-12);
  CHECK(test::rel_err(cka::kernel_cka(device::omp{}, lay_out(tiny, layout::column_major).input(), vy.input(), kernels[1], kernels[1]),
                      cka::kernel_cka(tiny, y, kernels[1], kernels[1])) < 1e-12);
  const test::mat<double> fine = x * 1e-160;
  const cka::rbf_kernel narrow{1e-160};
  CHECK(test::rel_err(cka::kernel_cka(device::cpp{}, lay_out(fine, layout::row_major).input(), vy.input(), narrow, kernels[3]),
                      cka::kernel_cka(fine, y, narrow, kernels[3])) < 1e-12);
}

TEST_CASE("device RBF engine: the host's errors", "[device]") {
  const auto y = test::normal<double>(30, 2, 861);
  const auto vy = lay_out(y, layout::row_major);
  // Distances beyond the double range with a fixed σ: an overflow, as on the host.
  const test::mat<double> huge = test::normal<double>(30, 3, 862) * 1e160;
  const auto vh = lay_out(huge, layout::column_major);
  CHECK_THROWS_AS(cka::kernel_cka(huge, y, cka::rbf_kernel{1.0}, cka::rbf_kernel{1.0}), cka::domain_error);
  CHECK_THROWS_WITH(cka::kernel_cka(device::omp{}, vh.input(), vy.input(), cka::rbf_kernel{1.0}, cka::rbf_kernel{1.0}),
                    Contains("kernel_cka") && Contains("overflow"));
  // More than half the pairs coincide: a zero median bandwidth (the type similarity_matrix catches).
  test::mat<double> repeated = test::mat<double>::Zero(30, 3);
  repeated.row(0) << 1.0, 2.0, 3.0;
  CHECK_THROWS_AS(cka::kernel_cka(device::cpp{}, lay_out(repeated, layout::row_major).input(), vy.input(),
                                  cka::rbf_kernel::median(), cka::rbf_kernel::median()),
                  cka::detail::zero_bandwidth);
  // σ² beyond the double range.
  CHECK_THROWS_WITH(cka::kernel_cka(device::cpp{}, vy.input(), vy.input(), cka::rbf_kernel{1e160}, cka::rbf_kernel{1.0}),
                    Contains("overflow"));
  // Constant rows: zero variance after centering.
  const test::mat<double> flat = test::mat<double>::Ones(30, 3);
  CHECK_THROWS_WITH(cka::kernel_cka(device::omp{}, lay_out(flat, layout::row_major).input(), vy.input(), cka::rbf_kernel{1.0},
                                    cka::rbf_kernel{1.0}),
                    Contains("zero variance"));
  // Too few samples for the unbiased estimator; different sample counts.
  const test::mat<double> three = y.topRows(3);
  CHECK_THROWS_WITH(cka::kernel_cka(device::cpp{}, lay_out(three, layout::row_major).input(), lay_out(three, layout::row_major).input(),
                                    cka::rbf_kernel{1.0}, cka::rbf_kernel{1.0}, estimator::unbiased),
                    Contains("unbiased"));
  CHECK_THROWS_WITH(cka::kernel_cka(device::cpp{}, lay_out(three, layout::row_major).input(), vy.input(), cka::rbf_kernel{1.0},
                                    cka::rbf_kernel{1.0}),
                    Contains("same samples"));
}

TEST_CASE("device RBF engine: MMD on the pooled sample against the host", "[device]") {
  const auto x = test::normal<double>(23, 4, 871);
  const test::mat<double> y = (test::normal<double>(30, 4, 872).array() + 0.4).matrix();
  const cka::rbf_kernel kernels[] = {cka::rbf_kernel::median(), cka::rbf_kernel::median(0.7, cka::median_rule::off_diagonal),
                                     cka::rbf_kernel{1.5}};
  const auto vx = lay_out(x, layout::strided), vy = lay_out(y, layout::row_major);
  for (const auto& k : kernels)
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      const double expected = cka::mmd2(x, y, k, est);
      for (std::int64_t tile : {5, 16, 23, 64}) {
        CAPTURE(k.sigma(), est == estimator::unbiased, tile);
        device::detail::tile_plan plan;
        plan.tile = tile;
        plan.cap = 100;
        plan.draws = 200;
        plan.sample_above = 0;
        CHECK(test::rel_err(device::detail::tile_mmd2(device::cpp{}, vx.input(), vy.input(), k, est, plan), expected) < 1e-12);
        CHECK(test::rel_err(device::detail::tile_mmd2(device::omp{}, vx.input(), vy.input(), k, est, plan), expected) < 1e-12);
      }
    }
  // One sample each (biased), float input, magnitudes a median rule rescales, and the errors.
  const test::mat<double> x1 = x.topRows(1), y1 = y.topRows(1);
  CHECK(test::rel_err(cka::mmd2(device::cpp{}, lay_out(x1, layout::row_major).input(), lay_out(y1, layout::row_major).input(), kernels[2]),
                      cka::mmd2(x1, y1, kernels[2])) < 1e-12);
  const test::mat<float> xf = x.cast<float>(), yf = y.cast<float>();
  CHECK(test::rel_err(double(cka::mmd2(device::omp{}, lay_out(xf, layout::padded_rows).input(), lay_out(yf, layout::strided).input(),
                                       kernels[0])),
                      double(cka::mmd2(xf, yf, kernels[0]))) < 1e-6);
  const test::mat<double> xh = x * 1e250, yh = y * 1e250;
  CHECK(test::rel_err(cka::mmd2(device::omp{}, lay_out(xh, layout::row_major).input(), lay_out(yh, layout::row_major).input(), kernels[0]),
                      cka::mmd2(xh, yh, kernels[0])) < 1e-12);
  CHECK_THROWS_WITH(cka::mmd2(device::omp{}, lay_out(xh, layout::row_major).input(), lay_out(yh, layout::row_major).input(), kernels[2]),
                    Contains("mmd2") && Contains("overflow"));
  const test::mat<double> narrow = y.leftCols(3);
  CHECK_THROWS_WITH(cka::mmd2(device::cpp{}, vx.input(), lay_out(narrow, layout::row_major).input(), kernels[2]),
                    Contains("mmd2") && Contains("same space"));
  CHECK_THROWS_WITH(cka::mmd2(device::cpp{}, lay_out(x1, layout::row_major).input(), vy.input(), kernels[2], estimator::unbiased),
                    Contains("X has 1 samples"));
}

namespace {

/// A generic kernel (pairwise operator()): the device functions run the host function on it.
struct laplace_kernel {
  template <class RX, class RY>
  double operator()(const RX& a, const RY& b) const {
    return std::exp(-(a - b).cwiseAbs().sum());
  }
};

}  // namespace

TEST_CASE("device tile engine: linear and polynomial kernels, alone and mixed with RBF, against the host", "[device]") {
  const auto x = test::normal<double>(37, 5, 891);
  const auto y = test::related<double>(x, 3, 892);
  const cka::polynomial_kernel cubic{3, 0.5, 1.0}, square{2, 1.0, 0.0}, shifted{2, 0.2, -3.0};
  const cka::rbf_kernel rbf = cka::rbf_kernel::median(1.2);
  const cka::linear_kernel lin;
  const auto vx = lay_out(x, layout::row_major), vy = lay_out(y, layout::strided);
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    // Every pair the engine evaluates, on tiles that do and do not divide n, against the host's Grams.
    auto check_pair = [&](const auto& kx, const auto& ky) {
      const double expected = cka::kernel_cka(x, y, kx, ky, est);
      for (std::int64_t tile : {5, 16, 37, 64}) {
        CAPTURE(tile);
        device::detail::tile_plan plan;
        plan.tile = tile;
        plan.chunk = tile == 16 ? 16 : 6;
        CHECK(test::rel_err(device::detail::tile_kernel_cka(device::cpp{}, vx.input(), vy.input(), kx, ky, est, plan), expected) < 1e-12);
        CHECK(test::rel_err(device::detail::tile_kernel_cka(device::omp{}, vx.input(), vy.input(), kx, ky, est, plan), expected) < 1e-12);
      }
      CHECK(test::rel_err(cka::kernel_cka(device::omp{}, vx.input(), vy.input(), kx, ky, est), expected) < 1e-12);
    };
    check_pair(cubic, cubic);
    check_pair(square, shifted);
    check_pair(cubic, rbf);
    check_pair(rbf, square);
    check_pair(lin, cubic);
    check_pair(rbf, lin);
    check_pair(lin, lin);  // linear_cka on the context, through the engine too
    // The same CKA whether the linear kernel goes through the engine or linear_cka.
    CHECK(test::rel_err(device::detail::tile_kernel_cka(device::cpp{}, vx.input(), vy.input(), lin, lin, est),
                        cka::linear_cka(x, y, est)) < 1e-12);
    // polynomial_kernel{1, 1, 0} is the linear kernel.
    CHECK(test::rel_err(cka::kernel_cka(device::cpp{}, vx.input(), vy.input(), cka::polynomial_kernel{1, 1.0, 0.0},
                                        cka::polynomial_kernel{1, 1.0, 0.0}, est),
                        cka::linear_cka(x, y, est)) < 1e-12);
    // A generic kernel: the host function.
    CHECK(test::rel_err(cka::kernel_cka(device::cpp{}, vx.input(), vy.input(), laplace_kernel{}, rbf, est),
                        cka::kernel_cka(x, y, laplace_kernel{}, rbf, est)) < 1e-12);
  }
  // Float input accumulates in double, as on the host.
  const test::mat<float> xf = x.cast<float>(), yf = y.cast<float>();
  CHECK(test::rel_err(double(cka::kernel_cka(device::omp{}, lay_out(xf, layout::padded_rows).input(), lay_out(yf, layout::column_major).input(),
                                             cubic, lin)),
                      double(cka::kernel_cka(xf, yf, cubic, lin))) < 1e-6);
  // The polynomial kernel uses the raw rows: an offset changes its CKA, on both sides alike.
  const test::mat<double> moved = (x.array() + 2.0).matrix();
  CHECK(test::rel_err(cka::kernel_cka(device::cpp{}, lay_out(moved, layout::row_major).input(), vy.input(), cubic, cubic),
                      cka::kernel_cka(moved, y, cubic, cubic)) < 1e-12);
  CHECK(std::abs(cka::kernel_cka(moved, y, cubic, cubic) - cka::kernel_cka(x, y, cubic, cubic)) > 1e-3);

  // Kernel matrices beyond 2^+-200 are scaled by a power of two on the device, as by the host's tile
  // engine: the CKA of the unscaled rows, on tiles that do and do not divide n (the largest magnitude found
  // across tiles and chunks), from Grams near 1e200, 1e-200 and (degree 2) 1e-240.
  const cka::polynomial_kernel plain{1, 1.0, 0.0};
  const test::mat<double> big = x * 1e100, small = y * 1e-100, tiny = x * 1e-60;
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    const double expected = cka::kernel_cka(x, y, plain, plain, est), squared = cka::kernel_cka(x, y, square, cubic, est);
    for (std::int64_t tile : {5, 16, 256}) {
      CAPTURE(tile);
      device::detail::tile_plan plan;
      plan.tile = tile;
      plan.chunk = 6;
      const auto vb = lay_out(big, layout::row_major), vs = lay_out(small, layout::column_major), vt = lay_out(tiny, layout::strided);
      CHECK(test::rel_err(device::detail::tile_kernel_cka(device::cpp{}, vb.input(), vs.input(), plain, plain, est, plan), expected) < 1e-12);
      CHECK(test::rel_err(device::detail::tile_kernel_cka(device::omp{}, vs.input(), vb.input(), plain, plain, est, plan),
                          cka::kernel_cka(y, x, plain, plain, est)) < 1e-12);
      CHECK(test::rel_err(device::detail::tile_kernel_cka(device::omp{}, vt.input(), vy.input(), square, cubic, est, plan), squared) < 1e-12);
    }
  }

  // The host's errors: a bad parameter, an overflowed kernel value, a constant polynomial Gram, samples.
  CHECK_THROWS_WITH(cka::kernel_cka(device::cpp{}, vx.input(), vy.input(), cka::polynomial_kernel{0, 1.0, 1.0}, lin),
                    Contains("polynomial_kernel") && Contains("degree = 0"));
  CHECK_THROWS_AS(cka::kernel_cka(device::cpp{}, vx.input(), vy.input(), rbf, cka::polynomial_kernel{2, NAN, 1.0}), cka::invalid_argument);
  CHECK_THROWS_AS(cka::kernel_cka(x, y, cka::polynomial_kernel{400, 1.0, 1.0}, lin), cka::domain_error);
  CHECK_THROWS_WITH(cka::kernel_cka(device::omp{}, vx.input(), vy.input(), cka::polynomial_kernel{400, 1.0, 1.0}, lin),
                    Contains("kernel_cka") && Contains("overflow: a kernel value"));
  CHECK_THROWS_AS(cka::kernel_cka(x, y, cka::polynomial_kernel{2, 0.0, 1.0}, lin), cka::domain_error);
  CHECK_THROWS_WITH(cka::kernel_cka(device::omp{}, vx.input(), vy.input(), cka::polynomial_kernel{2, 0.0, 1.0}, lin),
                    Contains("zero variance"));
  const test::mat<double> three = x.topRows(3);
  CHECK_THROWS_WITH(cka::kernel_cka(device::cpp{}, lay_out(three, layout::row_major).input(), lay_out(three, layout::row_major).input(),
                                    cubic, lin, estimator::unbiased),
                    Contains("unbiased"));
}

TEST_CASE("device MMD: the linear kernel's closed form and the polynomial kernel on tiles, against the host", "[device]") {
  const auto x = test::normal<double>(19, 4, 893);
  const test::mat<double> y = (test::normal<double>(26, 4, 894).array() + 0.3).matrix();
  const cka::polynomial_kernel cubic{3, 0.5, 1.0};
  for (estimator est : {estimator::biased, estimator::unbiased})
    for (layout lx : layouts)
      for (layout ly : layouts) {
        CAPTURE(est == estimator::unbiased, int(lx), int(ly));
        const auto vx = lay_out(x, lx), vy = lay_out(y, ly);
        CHECK(test::rel_err(cka::mmd2(device::cpp{}, vx.input(), vy.input(), cka::linear_kernel{}, est),
                            cka::mmd2(x, y, cka::linear_kernel{}, est)) < 1e-12);
        CHECK(test::rel_err(cka::mmd2(device::omp{}, vx.input(), vy.input(), cubic, est), cka::mmd2(x, y, cubic, est)) < 1e-12);
        CHECK(test::rel_err(cka::mmd2(device::omp{}, vx.input(), vy.input(), laplace_kernel{}, est),
                            cka::mmd2(x, y, laplace_kernel{}, est)) < 1e-12);
      }
  for (std::int64_t tile : {3, 7, 45}) {
    device::detail::tile_plan plan;
    plan.tile = tile;
    CHECK(test::rel_err(device::detail::tile_mmd2(device::cpp{}, lay_out(x, layout::row_major).input(), lay_out(y, layout::row_major).input(),
                                                  cubic, estimator::unbiased, plan),
                        cka::mmd2(x, y, cubic, estimator::unbiased)) < 1e-12);
  }
  // The closed form against the pooled Gram's block sums of the linear kernel (the polynomial {1, 1, 0}).
  CHECK(test::rel_err(cka::mmd2(device::cpp{}, lay_out(x, layout::row_major).input(), lay_out(y, layout::row_major).input(),
                                cka::linear_kernel{}, estimator::unbiased),
                      cka::mmd2(x, y, cka::polynomial_kernel{1, 1.0, 0.0}, estimator::unbiased)) < 1e-10);
  // A large common offset costs no digits; magnitudes near the double range are scaled by a power of two.
  const test::mat<double> xo = (x.array() + 1e6).matrix(), yo = (y.array() + 1e6).matrix();
  CHECK(test::rel_err(cka::mmd2(device::omp{}, lay_out(xo, layout::row_major).input(), lay_out(yo, layout::row_major).input(),
                                cka::linear_kernel{}),
                      cka::mmd2(x, y, cka::linear_kernel{})) < 1e-9);
  const test::mat<double> xh = x * 1e200, yh = y * 1e200;
  CHECK_THROWS_AS(cka::mmd2(xh, yh, cka::linear_kernel{}), cka::domain_error);
  CHECK_THROWS_WITH(cka::mmd2(device::omp{}, lay_out(xh, layout::row_major).input(), lay_out(yh, layout::row_major).input(),
                              cka::linear_kernel{}),
                    Contains("mmd2") && Contains("overflow"));
  const test::mat<double> xs = x * 1e100, ys = y * 1e100;
  CHECK(test::rel_err(cka::mmd2(device::cpp{}, lay_out(xs, layout::row_major).input(), lay_out(ys, layout::row_major).input(),
                                cka::linear_kernel{}),
                      cka::mmd2(xs, ys, cka::linear_kernel{})) < 1e-12);
  // One sample each (biased); float input; the polynomial's overflow and bad parameters; the sample counts.
  const test::mat<double> x1 = x.topRows(1), y1 = y.topRows(1);
  for (const auto& k : {cka::polynomial_kernel{2, 1.0, 1.0}, cka::polynomial_kernel{1, 1.0, 0.0}})
    CHECK(test::rel_err(cka::mmd2(device::cpp{}, lay_out(x1, layout::row_major).input(), lay_out(y1, layout::row_major).input(), k),
                        cka::mmd2(x1, y1, k)) < 1e-12);
  CHECK(test::rel_err(cka::mmd2(device::cpp{}, lay_out(x1, layout::row_major).input(), lay_out(y1, layout::row_major).input(),
                                cka::linear_kernel{}),
                      cka::mmd2(x1, y1, cka::linear_kernel{})) < 1e-12);
  const test::mat<float> xf = x.cast<float>(), yf = y.cast<float>();
  CHECK(test::rel_err(double(cka::mmd2(device::omp{}, lay_out(xf, layout::strided).input(), lay_out(yf, layout::row_major).input(),
                                       cka::linear_kernel{}, estimator::unbiased)),
                      double(cka::mmd2(xf, yf, cka::linear_kernel{}, estimator::unbiased))) < 1e-6);
  CHECK(test::rel_err(double(cka::mmd2(device::omp{}, lay_out(xf, layout::strided).input(), lay_out(yf, layout::row_major).input(), cubic)),
                      double(cka::mmd2(xf, yf, cubic))) < 1e-6);
  const auto vx = lay_out(x, layout::row_major), vy = lay_out(y, layout::row_major);
  CHECK_THROWS_AS(cka::mmd2(x, y, cka::polynomial_kernel{400, 1.0, 1.0}), cka::domain_error);
  CHECK_THROWS_WITH(cka::mmd2(device::omp{}, vx.input(), vy.input(), cka::polynomial_kernel{400, 1.0, 1.0}),
                    Contains("mmd2") && Contains("overflow: a kernel value"));
  CHECK_THROWS_WITH(cka::mmd2(device::omp{}, vx.input(), vy.input(), cka::polynomial_kernel{-1, 1.0, 1.0}),
                    Contains("polynomial_kernel") && Contains("degree = -1"));
  CHECK_THROWS_WITH(cka::mmd2(device::cpp{}, lay_out(x1, layout::row_major).input(), vy.input(), cka::linear_kernel{}, estimator::unbiased),
                    Contains("X has 1 samples"));
}

TEST_CASE("device sums in chunks: column statistics over many rows, pooled samples, constant columns, line sums of n×n matrices", "[device]") {
  // 700 rows: three chunks of 256. Column 1 of X is constant but for its last row (it varies: kept);
  // column 2 is constant throughout (centered to exact zeros); a large offset on every column.
  test::mat<double> x = (test::normal<double>(700, 4, 895).array() + 1e3).matrix();
  x.col(1).setConstant(5.0);
  x(699, 1) = 6.0;
  x.col(2).setConstant(-3.0);
  const auto y = test::related<double>(x, 3, 896);
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    CHECK(test::rel_err(cka::linear_cka(device::omp{}, lay_out(x, layout::row_major).input(), lay_out(y, layout::strided).input(), est),
                        cka::linear_cka(x, y, est)) < 1e-12);
    const cka::polynomial_kernel quad{2, 1e-6, 1.0};
    CHECK(test::rel_err(cka::kernel_cka(device::cpp{}, lay_out(x, layout::column_major).input(), lay_out(y, layout::row_major).input(),
                                        cka::rbf_kernel::median(), quad, est),
                        cka::kernel_cka(x, y, cka::rbf_kernel::median(), quad, est)) < 1e-12);
    // A pooled sample of 300 + 250 rows: its chunks cross from X's rows into Y's.
    const test::mat<double> a = x.topRows(300), b = (x.bottomRows(250).array() + 0.5).matrix();
    CHECK(test::rel_err(cka::mmd2(device::omp{}, lay_out(a, layout::row_major).input(), lay_out(b, layout::column_major).input(),
                                  cka::linear_kernel{}, est),
                        cka::mmd2(a, b, cka::linear_kernel{}, est)) < 1e-12);
    CHECK(test::rel_err(cka::mmd2(device::cpp{}, lay_out(a, layout::row_major).input(), lay_out(b, layout::column_major).input(),
                                  cka::rbf_kernel{3.0}, est),
                        cka::mmd2(a, b, cka::rbf_kernel{3.0}, est)) < 1e-12);
  }
  // The losses center the features of a batch of 600 rows the same way.
  const test::mat<double> s = x.topRows(600), t = y.topRows(600);
  auto grad = lay_out(test::mat<double>(test::mat<double>::Zero(600, 4)), layout::row_major);
  const auto got = cka::rcka::sample_relation_loss(device::omp{}, lay_out(s, layout::row_major).input(),
                                                   lay_out(t, layout::row_major).input(), grad.view);
  const auto expected = cka::rcka::sample_relation_loss(s, t);
  CHECK(test::rel_err(got.value, expected.value) < 1e-12);
  CHECK((device::detail::map(grad.view) - expected.grad).cwiseAbs().maxCoeff() <= 1e-12 * expected.grad.cwiseAbs().maxCoeff());
  // Sums along the rows and columns of n×n matrices in chunks of 64 (the last one partial): HSIC of 150×150
  // Grams, linear CKA in sample space (fewer samples than features), and the losses whose centering or row
  // scaling sums lines — the unbiased U-centering, the official code's row-scaled cosine, and both.
  {
    const auto u = test::normal<double>(150, 5, 897);
    const test::mat<double> k = cka::gram(u, cka::rbf_kernel{2.0}), l = cka::gram(test::related<double>(u, 4, 898), cka::linear_kernel{});
    for (estimator est : {estimator::biased, estimator::unbiased})
      CHECK(test::rel_err(cka::hsic(device::omp{}, lay_out(k, layout::row_major).input(), lay_out(l, layout::column_major).input(), est),
                          cka::hsic(k, l, est)) < 1e-12);
    const auto wide = test::normal<double>(130, 140, 899);
    const auto wide2 = test::related<double>(wide, 150, 900);
    CHECK(test::rel_err(cka::linear_cka(device::cpp{}, lay_out(wide, layout::row_major).input(), lay_out(wide2, layout::row_major).input(),
                                        estimator::unbiased),
                        cka::linear_cka(wide, wide2, estimator::unbiased)) < 1e-12);
    const test::mat<double> s2 = test::normal<double>(200, 7, 901), t2 = test::related<double>(s2, 7, 902);
    for (int option = 0; option < 3; ++option) {
      CAPTURE(option);
      cka::rcka::relation_options opts;
      if (option == 0) opts.est = estimator::unbiased;
      if (option == 1) opts.centered = false, opts.row_normalize = true;
      if (option == 2) opts.row_normalize = true;
      auto g2 = lay_out(test::mat<double>(test::mat<double>::Zero(200, 7)), layout::column_major);
      const auto got2 = cka::rcka::rcka_loss(device::omp{}, lay_out(s2, layout::row_major).input(), lay_out(t2, layout::row_major).input(),
                                             g2.view, {1.0, 2.0}, opts);
      const auto expected2 = cka::rcka::rcka_loss(s2, t2, {1.0, 2.0}, opts);
      CHECK(test::rel_err(got2.value, expected2.value) < 1e-12);
      CHECK((device::detail::map(g2.view) - expected2.grad).cwiseAbs().maxCoeff() <= 1e-12 * expected2.grad.cwiseAbs().maxCoeff());
    }
  }
  // A constant column stays exactly zero after centering: CKA with it alone is undefined, as on the host.
  const test::mat<double> flat = x.col(2);
  CHECK_THROWS_WITH(cka::linear_cka(device::omp{}, lay_out(flat, layout::row_major).input(), lay_out(y, layout::row_major).input()),
                    Contains("zero variance"));
  CHECK_THROWS_AS(cka::linear_cka(flat, y), cka::domain_error);
}

TEST_CASE("device losses left in a loss_slot: the waiting functions' values, gradients and errors as statuses", "[device]") {
  const auto s = test::normal<double>(14, 6, 881);
  const auto t = test::related<double>(s, 6, 882);
  auto run = [&](const auto& ctx) {
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      cka::rcka::relation_options opts;
      opts.est = est;
      const auto vs = lay_out(s, layout::row_major), vt = lay_out(t, layout::strided);
      auto waited_grad = lay_out(test::mat<double>(test::mat<double>::Zero(14, 6)), layout::padded_rows);
      auto slot_grad = lay_out(test::mat<double>(test::mat<double>::Zero(14, 6)), layout::column_major);
      double value = -1;
      std::int64_t status = 99;
      const device::loss_slot<double> out{&value, &status};
      const auto w = cka::rcka::rcka_loss(ctx, vs.input(), vt.input(), waited_grad.view, {15.0, 3.0}, opts);
      cka::rcka::rcka_loss(ctx, vs.input(), vt.input(), slot_grad.view, out, {15.0, 3.0}, opts);
      CHECK(test::rel_err(value, w.value) < 1e-14);
      CHECK(status == w.skipped);
      CHECK((device::detail::map(slot_grad.view) - device::detail::map(waited_grad.view)).cwiseAbs().maxCoeff() <=
            1e-14 * device::detail::map(waited_grad.view).cwiseAbs().maxCoeff());
      const auto ws = cka::rcka::sample_relation_loss(ctx, vs.input(), vt.input(), waited_grad.view, opts);
      cka::rcka::sample_relation_loss(ctx, vs.input(), vt.input(), slot_grad.view, device::loss_slot<double>{&value, nullptr}, opts);
      CHECK(test::rel_err(value, ws.value) < 1e-14);
      const auto wc = cka::rcka::class_relation_loss(ctx, vs.input(), vt.input(), waited_grad.view, opts);
      cka::rcka::class_relation_loss(ctx, vs.input(), vt.input(), slot_grad.view, out, opts);
      CHECK(test::rel_err(value, wc.value) < 1e-14);
      cka::rcka::feature_loss(ctx, vs.input(), vt.input(), slot_grad.view, out, opts);
      CHECK(test::rel_err(value, ws.value) < 1e-14);
    }
    // Errors in the data become statuses with value NaN and a zero gradient; the waiting functions throw.
    auto grad = lay_out(test::mat<double>(test::mat<double>::Constant(14, 6, 3.0)), layout::row_major);
    double value = 0;
    std::int64_t status = 0;
    const device::loss_slot<double> out{&value, &status};
    test::mat<double> bad = s;
    bad(5, 2) = std::numeric_limits<double>::quiet_NaN();
    cka::rcka::rcka_loss(ctx, lay_out(bad, layout::row_major).input(), lay_out(t, layout::row_major).input(), grad.view, out);
    CHECK(status == device::loss_not_finite);
    CHECK(std::isnan(value));
    CHECK(device::detail::map(grad.view).cwiseAbs().maxCoeff() == 0.0);
    CHECK_THROWS_AS(device::check_loss_status("rcka::rcka_loss", status), cka::invalid_argument);
    // Logits of 1e160 (whose Grams' squares would overflow) are scaled by a power of two first: the value
    // of the unscaled logits, and a defined status. An overflow status is still an error when checked.
    const test::mat<double> huge = s * 1e160;
    cka::rcka::sample_relation_loss(ctx, lay_out(huge, layout::row_major).input(), lay_out(t, layout::row_major).input(), grad.view, out);
    CHECK(status == 0);
    CHECK(test::rel_err(value, cka::rcka::sample_relation_loss(s, t).value) < 1e-13);
    CHECK_THROWS_WITH(device::check_loss_status("rcka::sample_relation_loss", device::loss_overflow), Contains("overflow"));
    CHECK_THROWS_AS(device::check_loss_status("rcka::sample_relation_loss", device::loss_overflow), cka::domain_error);
    const test::mat<double> flat = test::mat<double>::Constant(14, 6, 2.0);
    cka::rcka::sample_relation_loss(ctx, lay_out(flat, layout::row_major).input(), lay_out(t, layout::row_major).input(), grad.view, out);
    CHECK(status == 1);
    CHECK(value == 0.0);
    cka::rcka::relation_options raise;
    raise.on_undefined = cka::rcka::undefined_policy::raise;
    cka::rcka::sample_relation_loss(ctx, lay_out(flat, layout::row_major).input(), lay_out(t, layout::row_major).input(), grad.view,
                                    out, raise);
    CHECK(status == device::loss_undefined);
    CHECK(std::isnan(value));
    CHECK_THROWS_WITH(device::check_loss_status("rcka::sample_relation_loss", status), Contains("undefined"));
    CHECK_NOTHROW(device::check_loss_status("rcka::sample_relation_loss", 2));
    // Shapes are known on the host: too few rows (raise), a null value pointer, other alignments throw at once.
    const test::mat<double> two = s.topRows(2);
    auto grad2 = lay_out(test::mat<double>(test::mat<double>::Zero(2, 6)), layout::row_major);
    cka::rcka::sample_relation_loss(ctx, lay_out(two, layout::row_major).input(), lay_out(two, layout::row_major).input(), grad2.view,
                                    out, cka::rcka::relation_options{true, false, estimator::unbiased});
    CHECK(status == 1);
    CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(ctx, lay_out(two, layout::row_major).input(), lay_out(two, layout::row_major).input(),
                                                      grad2.view, out, cka::rcka::relation_options{true, false, estimator::unbiased,
                                                                                                 cka::rcka::undefined_policy::raise}),
                      Contains("the student has 2 samples"));
    CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(ctx, lay_out(s, layout::row_major).input(), lay_out(t, layout::row_major).input(),
                                                      grad.view, device::loss_slot<double>{}),
                      Contains("null"));
    CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(ctx, lay_out(s, layout::row_major).input(), lay_out(t, layout::row_major).input(),
                                                      grad.view, out, cka::rcka::relation_options{true, true, estimator::unbiased}),
                      Contains("row_normalize") && Contains("biased"));
    // The official code's alignment (uncentered, rows scaled): a zero row is skipped, or undefined under raise.
    test::mat<double> zero_row = s;
    zero_row.row(4).setZero();
    const cka::rcka::relation_options official{false, true};
    cka::rcka::sample_relation_loss(ctx, lay_out(zero_row, layout::row_major).input(), lay_out(t, layout::row_major).input(), grad.view,
                                    out, official);
    CHECK(status == 1);
    CHECK(value == 0.0);
    cka::rcka::sample_relation_loss(ctx, lay_out(zero_row, layout::row_major).input(), lay_out(t, layout::row_major).input(), grad.view,
                                    out, cka::rcka::relation_options{false, true, estimator::biased, cka::rcka::undefined_policy::raise});
    CHECK(status == device::loss_undefined);
    CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(ctx, lay_out(zero_row, layout::row_major).input(),
                                                      lay_out(t, layout::row_major).input(), grad.view,
                                                      cka::rcka::relation_options{false, true, estimator::biased,
                                                                                  cka::rcka::undefined_policy::raise}),
                      Contains("the student's row 4 is zero"));
  };
  run(device::cpp{});
  run(device::omp{});
}

TEST_CASE("device backend: each function's launches and synchronisations (the pass budget of docs/device.md)", "[device]") {
  // The counts on the CPP system are the CUDA context's too (the same code over the same backend trait):
  // a regression in the pass budget — a pass more, a read-back more — fails here without a GPU.
  device::work_counts counts;
  const device::cpp ctx{&counts};
  struct budget {
    const char* what;
    std::function<void()> run;
    std::int64_t launches, syncs;
  };
  const auto x = test::normal<double>(300, 5, 71), y = test::related<double>(x, 7, 72), z = test::normal<double>(200, 5, 73);
  const auto wx = test::normal<double>(20, 15, 74), wy = test::normal<double>(20, 15, 75);
  const test::mat<double> k = x * x.transpose(), l = y * y.transpose();
  const auto s = test::normal<double>(64, 10, 76), t = test::related<double>(s, 10, 77);
  const auto vx = lay_out(x, layout::row_major), vy = lay_out(y, layout::column_major), vz = lay_out(z, layout::row_major);
  const auto vwx = lay_out(wx, layout::row_major), vwy = lay_out(wy, layout::row_major);
  const auto vk = lay_out(k, layout::row_major), vl = lay_out(l, layout::column_major);
  const auto vs = lay_out(s, layout::row_major), vt = lay_out(t, layout::row_major);
  auto grad = lay_out(test::mat<double>(test::mat<double>::Zero(64, 10)), layout::row_major);
  std::vector<double> slot(1);
  std::vector<std::int64_t> status(1);
  const device::loss_slot<double> out{slot.data(), status.data()};
  const cka::rbf_kernel fixed{2.0};
  // 300 rows in 256-row tiles: 3 upper tiles (2 on the diagonal), 500 pooled rows likewise.
  const budget table[] = {
      // scan (4: chunks, columns, verdict, scales), one chunk of rows written and accumulated (2), one reduction;
      // the read-back.
      {"linear_cka, features", [&] { cka::linear_cka(ctx, vx.input(), vy.input()); }, 7, 1},
      // the unbiased estimator's centered row norms: one more pass over the rows.
      {"linear_cka unbiased, features", [&] { cka::linear_cka(ctx, vx.input(), vy.input(), estimator::unbiased); }, 8, 1},
      // scan, Z = [Xc Yc], two Grams, their mirror, centered sums (4), raw squares.
      {"linear_cka, n < d1 + d2 (Grams)", [&] { cka::linear_cka(ctx, vwx.input(), vwy.input()); }, 13, 1},
      // line sums with the checks, their chunks, the verdict, the products.
      {"hsic", [&] { cka::hsic(ctx, vk.input(), vl.input()); }, 4, 1},
      // scan, Z, norms, the verdict read; pass A: a fill, per tile two products, the chunk sums of both sides
      // and their totals; totals, scales; pass B: per tile two products and a reduction; the read-back.
      {"kernel_cka rbf fixed sigma", [&] { cka::kernel_cka(ctx, vx.input(), vy.input(), fixed, fixed); }, 30, 2},
      // scan, a pass of chunk sums, a reduction over the columns.
      {"mmd2 linear", [&] { cka::mmd2(ctx, vx.input(), vz.input(), cka::linear_kernel{}); }, 6, 1},
      // scan, Z, norms, the verdict read; per tile a product and a reduction; the read-back.
      {"mmd2 rbf fixed sigma", [&] { cka::mmd2(ctx, vx.input(), vz.input(), fixed); }, 12, 2},
      // count of non-finite elements, scan, Z, two Grams, mirror, raw squares, products, finish, gradient,
      // product, scatter, the gradient's count of non-finite elements; the read-back.
      {"rcka::sample_relation_loss", [&] { cka::rcka::sample_relation_loss(ctx, vs.input(), vt.input(), grad.view); }, 16, 1},
      {"rcka::rcka_loss", [&] { cka::rcka::rcka_loss(ctx, vs.input(), vt.input(), grad.view); }, 32, 2},
      // the same terms, each kept (1), the loss stored (1), the gradient zeroed on an error (1); nothing read back.
      {"rcka::rcka_loss, loss_slot", [&] { cka::rcka::rcka_loss(ctx, vs.input(), vt.input(), grad.view, out); }, 36, 0},
  };
  for (const budget& b : table) {
    CAPTURE(b.what);
    counts = {};
    b.run();
    CHECK(counts.launches == b.launches);
    CHECK(counts.syncs == b.syncs);
  }
  // A median rule adds its selection per side: counting passes (per tile a product and a reduction left in
  // the context's memory, then one reduction of the tiles' tallies, read back) and one collection (per
  // tile a product and a launch; the counter read back, a sort, the two ranks read back together). The
  // read-backs do not grow with the number of tiles: 3 upper tiles at 300 rows, 15 at 1100 (before the
  // tallies stayed on the device: 18, 70 and 72 read-backs). At 1100 rows a sample brackets the median,
  // and the counting pass over the bracket also collects its values in its tile reductions (the counter
  // read back), so no second pass of tile products follows (before: 244 and 246 launches; with a collect
  // launch per tile beside the reduction, 214 and 216).
  const auto big = test::normal<double>(1100, 5, 78), bigy = test::related<double>(big, 7, 79);
  const auto vb = lay_out(big, layout::row_major), vby = lay_out(bigy, layout::column_major);
  struct median_budget {
    bool big;
    cka::median_rule rule;
    std::int64_t launches, syncs;
  };
  const median_budget medians[] = {{false, cka::median_rule::all_pairs, 60, 8},
                                   {true, cka::median_rule::all_pairs, 184, 12},
                                   {true, cka::median_rule::nonzero, 186, 14}};
  for (const median_budget& b : medians) {
    CAPTURE(b.big, int(b.rule));
    counts = {};
    const auto k = cka::rbf_kernel::median(1.0, b.rule);
    if (b.big) cka::kernel_cka(ctx, vb.input(), vby.input(), k, k);
    else cka::kernel_cka(ctx, vx.input(), vy.input(), k, k);
    CHECK(counts.launches == b.launches);
    CHECK(counts.syncs == b.syncs);
  }
}

TEST_CASE("device linear CKA: the feature form in chunks of rows agrees with one chunk and with the host", "[device]") {
  // The chunked accumulation (S += WᵀW per chunk, shifted by the first row) at chunk sizes that split the
  // rows unevenly, on rows with an offset of 1e4 (the shift keeps their digits), both estimators.
  const test::mat<double> x = (test::normal<double>(301, 6, 81).array() + 1e4).matrix();
  const auto y = test::related<double>(x, 4, 82);
  const auto sx = lay_out(x, layout::row_major), sy = lay_out(y, layout::strided);
  const device::detail::strided<double> hx = device::detail::strided_of(sx.input()), hy = device::detail::strided_of(sy.input());
  for (auto est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(int(est));
    const double expected = cka::linear_cka(x, y, est);
    for (std::int64_t rows : {1, 7, 256, 301}) {
      CAPTURE(rows);
      device::work_counts counts;
      const auto be = device::detail::make_backend(thrust::cpp::par, device::detail::eigen_ops{}, &counts, "linear_cka");
      std::vector<double> scratch(std::size_t(device::detail::linear_scratch(301, 10, rows)));
      const auto s = device::detail::linear_sums(be, scratch.data(), hx, hy, est, rows);
      CHECK(test::rel_err(device::detail::cka_of("linear_cka", s), expected) < 1e-12);
      CHECK(counts.launches == 4 + 2 * ((301 + rows - 1) / rows) + 1 + (est == estimator::unbiased ? 1 : 0));
    }
  }
}

TEST_CASE("device RBF engine: kernel CKA and MMD at n = 6000 (sampled median brackets) against the host", "[device]") {
  // Beyond the sizes where both medians are selected exactly from all pairs at once: the device samples a
  // bracket (2^16 pairs and more), the host its own way; the values must still agree to rounding.
  const auto x = test::normal<double>(6000, 4, 91);
  const auto y = test::related<double>(x, 3, 92);
  const auto vx = lay_out(x, layout::row_major), vy = lay_out(y, layout::column_major);
  const auto k = cka::rbf_kernel::median(), nonzero = cka::rbf_kernel::median(1.0, cka::median_rule::nonzero);
  CHECK(test::rel_err(cka::kernel_cka(device::omp{}, vx.input(), vy.input(), k, nonzero), cka::kernel_cka(x, y, k, nonzero)) <
        1e-12);
  const test::mat<double> a = x.topRows(3500), b = x.bottomRows(2500);
  const auto va = lay_out(a, layout::row_major), vb = lay_out(b, layout::row_major);
  // Two samples of one distribution: MMD² (about −7e-5 here) is a difference of kernel means near 0.4, so
  // its rounding is relative to those (RBF values are at most 1): an absolute margin of 1e-12.
  CHECK(std::abs(cka::mmd2(device::omp{}, va.input(), vb.input(), k, estimator::unbiased) -
                 cka::mmd2(a, b, k, estimator::unbiased)) < 1e-12);
}

TEST_CASE("device engines: a flat index divided in 32 bits where it fits, in 64 beyond", "[device]") {
  const std::int64_t two32 = std::int64_t(1) << 32;
  const std::int64_t cases[][2] = {{0, 1}, {17, 5}, {two32 - 1, 4096}, {two32 - 1, two32 - 1}, {two32, 7},
                                   {46341LL * 46341LL + 12345, 46341}, {std::int64_t(1) << 62, 3}, {5, two32 + 1}};
  for (const auto& c : cases) {
    CAPTURE(c[0], c[1]);
    const auto f = device::detail::divide(c[0], c[1]);
    CHECK(f.q == c[0] / c[1]);
    CHECK(f.r == c[0] % c[1]);
  }
}
