// xtensor inputs: containers, adapted buffers, slices, transposes and lazy expressions give the Eigen
// results, and the oracle comparisons hold through them.
#include "oracle.hpp"
#include "support.hpp"

#include <cka/xtensor.hpp>

#include <catch2/catch.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xview.hpp>

#include <vector>

using cka::estimator;

namespace {
template <class T>
xt::xtensor<T, 2> to_xt(const test::mat<T>& m) {
  xt::xtensor<T, 2> out = xt::zeros<T>({std::size_t(m.rows()), std::size_t(m.cols())});
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) out(std::size_t(i), std::size_t(j)) = m(i, j);
  return out;
}
}  // namespace

TEMPLATE_TEST_CASE("xtensor inputs match the oracle and the Eigen path", "[xtensor][oracle]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-10;
  for (auto [n, d1, d2] : {std::tuple{30, 5, 8}, std::tuple{12, 40, 25}}) {
    const auto x = test::normal<T>(n, d1, 700 + n);
    const auto y = test::related<T>(x, d2, 800 + n);
    const xt::xtensor<T, 2> xx = to_xt(x), yx = to_xt(y);
    const xt::xarray<T> ya = yx;
    const oracle::mat<double> kd = oracle::gram_linear<double>(x.template cast<double>());
    const oracle::mat<double> ld = oracle::gram_linear<double>(y.template cast<double>());
    for (bool unbiased : {false, true}) {
      const estimator est = unbiased ? estimator::unbiased : estimator::biased;
      CAPTURE(n, d1, d2, unbiased);
      CHECK(test::rel_err(cka::linear_cka(xx, ya, est), oracle::cka(kd, ld, unbiased)) < tol);
      const xt::xtensor<T, 2> kx = to_xt<T>(x * x.transpose()), lx = to_xt<T>(y * y.transpose());
      CHECK(test::rel_err(cka::hsic(kx, lx, est), oracle::hsic(kd, ld, unbiased)) < tol);
      CHECK(test::rel_err(cka::gram_cka(kx, lx, est), oracle::cka(kd, ld, unbiased)) < tol);
      CHECK(test::rel_err(cka::kernel_cka(xx, yx, cka::rbf_kernel::median(), est),
                          cka::kernel_cka(x, y, cka::rbf_kernel::median(), est)) < 1e-12);
    }
  }
}

TEST_CASE("every kind of xtensor expression is accepted", "[xtensor][views]") {
  const auto x = test::normal<double>(40, 6, 1);
  const auto y = test::related<double>(x, 9, 2);
  const double expected = cka::linear_cka(x, y);
  const xt::xtensor<double, 2> xx = to_xt(x), yx = to_xt(y);
  // An adapted row-major buffer (no copy), a slice of a larger tensor (strided rows), a transposed view
  // (column stride 1 is lost: evaluated), and a lazy expression (evaluated).
  std::vector<double> buffer(xx.begin(), xx.end());
  const auto adapted = xt::adapt(buffer, std::vector<std::size_t>{40, 6});
  xt::xtensor<double, 2> big = xt::zeros<double>({50, 10});
  xt::view(big, xt::range(5, 45), xt::range(2, 8)) = xx;
  const auto slice = xt::view(big, xt::range(5, 45), xt::range(2, 8));
  const xt::xtensor<double, 2> xt_t = xt::transpose(xx);
  CHECK(test::rel_err(cka::linear_cka(adapted, yx), expected) < 1e-13);
  CHECK(test::rel_err(cka::linear_cka(slice, yx), expected) < 1e-13);
  CHECK(test::rel_err(cka::linear_cka(xt::transpose(xt_t), yx), expected) < 1e-13);
  CHECK(test::rel_err(cka::linear_cka(xx * 2.0 + 1.0, yx), expected) < 1e-13);
  CHECK(test::rel_err(cka::mmd2(slice, xt::view(yx, xt::all(), xt::range(0, 6)), cka::rbf_kernel{2.0}),
                      cka::mmd2(x, y.leftCols(6), cka::rbf_kernel{2.0})) < 1e-13);
  const auto r = cka::rcka::rcka_loss(slice, xx);
  CHECK(std::abs(r.value) < 1e-14);
  // PCKA on an NCHW map held as a 2×(2·4·4) row-major tensor: the same as the Eigen vector path.
  const test::mat<double> maps = test::normal<double>(64, 1, 3), maps_t = test::normal<double>(64, 1, 4);
  const auto ms = xt::adapt(maps.data(), 64, xt::no_ownership(), std::vector<std::size_t>{2, 32});
  const auto mt = xt::adapt(maps_t.data(), 64, xt::no_ownership(), std::vector<std::size_t>{2, 32});
  const auto px = cka::rcka::patch_loss(ms, mt, {2, 2, 4, 4}, 2, 2);
  const auto pe = cka::rcka::patch_loss(maps, maps_t, {2, 2, 4, 4}, 2, 2);
  CHECK(test::rel_err(px.value, pe.value) < 1e-15);
  CHECK(px.grad(1, 5) == pe.grad(37, 0));
  CHECK_THROWS_WITH(cka::linear_cka(xt::xarray<double>::from_shape({2, 3, 4}), yx), Catch::Contains("X is a 3-D xtensor expression"));
  // The message names the argument that is not 2-D (it said "an xtensor input" whichever it was).
  CHECK_THROWS_WITH(cka::hsic(xt::xarray<double>::from_shape({3, 3}), xt::xarray<double>::from_shape({3})),
                    Catch::Contains("hsic") && Catch::Contains("L is a 1-D xtensor expression"));
  CHECK_THROWS_WITH(cka::rcka::rcka_loss(yx, xt::xarray<double>::from_shape({2, 3, 4})),
                    Catch::Contains("rcka_loss") && Catch::Contains("teacher is a 3-D xtensor expression"));
  // Accumulation states take xtensor chunks: slices, views and lazy expressions, mixed with Eigen ones.
  cka::linear_state state(6, yx.shape()[1]);
  state.add(xt::view(slice, xt::range(0, 15), xt::all()), xt::view(yx, xt::range(0, 15), xt::all()));
  state.add(xt::view(xx * 1.0, xt::range(15, 40), xt::all()), y.bottomRows(25));
  CHECK(test::rel_err(state.cka(), expected) < 1e-13);
  CHECK_THROWS_WITH(state.add(xt::xarray<double>::from_shape({2, 3, 4}), yx), Catch::Contains("linear_state::add") && Catch::Contains("X is a 3-D xtensor expression"));
}
