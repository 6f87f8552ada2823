// The Thrust backend on its host systems (cka::device::omp and cpp): every function on views of every
// layout — column-major, row-major (PyTorch's), padded rows, and neither stride 1 — equals the host
// function on the same values; layout and finiteness errors name the function and the element; the loss
// gradients are written through strided views without touching the memory between their elements.
#include "support.hpp"

#include <cka/device.hpp>

#include <catch2/catch.hpp>

#include <cmath>
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
  const auto s = test::normal<double>(16, 10, 811);
  const auto t = test::related<double>(s, 10, 812);
  cka::rcka::relation_options opts;
  const auto host_sample = cka::rcka::sample_relation_loss(s, t, opts);
  const auto host_class = cka::rcka::class_relation_loss(s, t, opts);
  const auto host_feature = cka::rcka::feature_loss(s, t, opts);
  const auto host_rcka = cka::rcka::rcka_loss(s, t, cka::rcka::rcka_weights{15.0, 15.0}, opts);
  for (layout l : layouts) {
    CAPTURE(int(l));
    const auto vs = lay_out(s, l), vt = lay_out(t, l);
    auto grad = lay_out(test::mat<double>(test::mat<double>::Zero(16, 10)), l == layout::row_major ? layout::padded_rows : l);
    auto check = [&](const auto& got, const auto& host) {
      CHECK(test::rel_err(got.value, host.value) < 1e-12);
      CHECK(got.skipped == host.skipped);
      double worst = 0;
      for (std::int64_t i = 0; i < 16; ++i)
        for (std::int64_t j = 0; j < 10; ++j) {
          const double g = grad.buffer[std::size_t(i * grad.view.row_stride + j * grad.view.col_stride)];
          worst = std::max(worst, std::abs(g - host.grad(i, j)) / host.grad.cwiseAbs().maxCoeff());
        }
      CHECK(worst < 1e-12);
      // The gaps between the gradient's elements are untouched (still NaN).
      std::size_t gaps = 0;
      for (double v : grad.buffer) gaps += std::isnan(v);
      CHECK(gaps == grad.buffer.size() - 160);
    };
    check(cka::rcka::sample_relation_loss(ctx, vs.input(), vt.input(), grad.view, opts), host_sample);
    check(cka::rcka::class_relation_loss(ctx, vs.input(), vt.input(), grad.view, opts), host_class);
    check(cka::rcka::feature_loss(ctx, vs.input(), vt.input(), grad.view, opts), host_feature);
    check(cka::rcka::rcka_loss(ctx, vs.input(), vt.input(), grad.view, cka::rcka::rcka_weights{15.0, 15.0}, opts), host_rcka);
  }
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
