// Hostile and degenerate input, one table: every row is an input a user can produce and the outcome the
// library promises for it — a value (checked against an independent one), a NaN cell that is reported, or
// an exception of the documented type whose message names the function and the fault. Built and run under
// AddressSanitizer and UndefinedBehaviorSanitizer (tests/CMakeLists.txt), so a crash, an overflow in index
// arithmetic or a read out of bounds fails the row even where the outcome looks right. Each defect fixed
// gets a row here; the device backend's rows are in test_hostile_device.cpp (the same table format,
// hostile_table.hpp), the tool's in tests/tool/test_cka_similarity.py.
#include "hostile_table.hpp"
#include "oracle.hpp"
#include "support.hpp"

#include <cka/gram.hpp>
#include <cka/hsic.hpp>
#include <cka/inference.hpp>
#include <cka/mmd.hpp>
#include <cka/mmd_bound.hpp>
#include <cka/rcka.hpp>
#include <cka/similarity_matrix.hpp>
#include <cka/state.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace {

using cka::estimator;
using hostile::outcome;
using hostile::row;
using hostile::one_hot;
using test::mat;

const mat<double> x = test::normal<double>(60, 5, 1);
const mat<double> y = test::related<double>(x, 4, 2);
const mat<double> z = test::normal<double>(50, 5, 7);  // a second sample in x's space (mmd2)

/// ‖x̄ − ȳ‖² in long double (the linear-kernel biased MMD² of the stored values).
template <class T>
double mean_gap(const mat<T>& a, const mat<T>& b) {
  long double total = 0;
  for (Eigen::Index j = 0; j < a.cols(); ++j) {
    long double ma = 0, mb = 0;
    for (Eigen::Index i = 0; i < a.rows(); ++i) ma += static_cast<long double>(a(i, j));
    for (Eigen::Index i = 0; i < b.rows(); ++i) mb += static_cast<long double>(b(i, j));
    const long double g = ma / a.rows() - mb / b.rows();
    total += g * g;
  }
  return static_cast<double>(total);
}

const double huge = 1e300, tiny = 1e-170;

/// A user kernel of the generic form that returns NaN for a pair of equal first coordinates.
struct nan_kernel {
  template <class RX, class RY>
  double operator()(const RX& a, const RY& b) const {
    return a(0) == b(0) && a(0) > 2.5 ? std::nan("") : double(a.dot(b));
  }
};

std::vector<row> table() {
  const mat<double> labels = one_hot();
  const mat<double> features = test::related<double>(labels, 8, 3);
  std::vector<row> rows;

  // Defect 1: a median bandwidth of zero gives NaN cells in a matrix (and is listed with its cause),
  // an exception naming the way out in a pairwise call, and a value under the non-zero median rule.
  rows.push_back({"rbf matrix, one-hot labels: NaN cells", [=] {
                    const std::vector<mat<double>> layers = {labels, features};
                    return double(cka::similarity_matrix(layers, cka::rbf_kernel::median()).values(0, 1));
                  }, outcome::nan});
  rows.push_back({"rbf matrix, one-hot labels: the cause is listed", [=] {
                    const std::vector<mat<double>> layers = {labels, features};
                    const auto r = cka::similarity_matrix(layers, cka::rbf_kernel::median());
                    return r.undefined.size() == 1 && r.undefined[0].layer == 0 &&
                                   r.undefined[0].cause.find("median") != std::string::npos
                               ? 1.0
                               : 0.0;
                  }, outcome::value, 1.0, 0.0});
  rows.push_back({"rbf kernel_cka, one-hot labels: domain_error naming the way out",
                  [=] { return cka::kernel_cka(labels, features, cka::rbf_kernel::median()); }, outcome::domain_error, 0, 0,
                  {"cka::rbf_kernel::median", "median squared distance is 0", "median_rule::nonzero"}});
  rows.push_back({"rbf kernel_cka, one-hot labels, median_rule::nonzero: a value", [=] {
                    return cka::kernel_cka(labels, features, cka::rbf_kernel::median(1.0, cka::median_rule::nonzero));
                  }, outcome::value, 0.0, -1.0});  // any finite value (checked against the matrix route below)
  rows.push_back({"rbf matrix, nonzero rule: the same value as kernel_cka", [=] {
                    const std::vector<mat<double>> layers = {labels, features};
                    const auto k = cka::rbf_kernel::median(1.0, cka::median_rule::nonzero);
                    return test::rel_err(cka::similarity_matrix(layers, k).values(0, 1), cka::kernel_cka(labels, features, k));
                  }, outcome::value, 0.0, -1e-13});

  // Found by the conformance suite (case rbf-duplicated_rows-median-sq-nonzero-…): distances formed as
  // ‖a‖² + ‖b‖² − 2⟨a, b⟩ left equal random rows a small positive distance, so the nonzero median rule
  // counted them. Every route now matches the naive median of the pairs i < j at a positive distance.
  {
    mat<double> dup(30, 4);
    dup << test::normal<double>(20, 4, 91), test::normal<double>(20, 4, 91).topRows(10);
    const mat<double> other = (dup.leftCols(3) + test::normal<double>(30, 3, 92)).eval();
    auto naive_sigma2 = [](const mat<double>& a) {
      const mat<double> d = oracle::squared_distances(a);
      std::vector<double> v;
      for (Eigen::Index i = 0; i < d.rows(); ++i)
        for (Eigen::Index j = i + 1; j < d.cols(); ++j)
          if (d(i, j) > 0) v.push_back(d(i, j));
      return oracle::numpy_median(v);
    };
    const double expected = oracle::cka(oracle::gram_rbf(dup, naive_sigma2(dup)), oracle::gram_rbf(other, naive_sigma2(other)), false);
    const auto k = cka::rbf_kernel::median(1.0, cka::median_rule::nonzero);
    rows.push_back({"rbf kernel_cka, random rows duplicated, nonzero rule: the naive value",
                    [=] { return cka::kernel_cka(dup, other, k); }, outcome::value, expected, 1e-12});
    rows.push_back({"rbf Grams, random rows duplicated, nonzero rule: the naive value",
                    [=] { return cka::gram_cka(cka::gram(dup, k), cka::gram(other, k)); }, outcome::value, expected, 1e-12});
    rows.push_back({"rbf matrix, random rows duplicated, nonzero rule: the naive value", [=] {
                      const std::vector<mat<double>> layers = {dup, other};
                      return double(cka::similarity_matrix(layers, k).values(0, 1));
                    }, outcome::value, expected, 1e-12});
  }

  // Defect 4: values near 1e155 overflowed the squared distances and crashed the median.
  rows.push_back({"rbf median on x*1e155: the unscaled value", [] {
                    const mat<double> a = x * 1e155, b = y * 1e155;
                    return cka::kernel_cka(a, b, cka::rbf_kernel::median());
                  }, outcome::value, cka::kernel_cka(x, y, cka::rbf_kernel::median()), 1e-12});
  rows.push_back({"mmd2 rbf median on X*1e155 and Y*1e155 (a pooled sample, scaled once): the unscaled value", [] {
                    const mat<double> a = x * 1e155, b = z * 1e155;
                    return cka::mmd2(a, b, cka::rbf_kernel::median());
                  }, outcome::value, cka::mmd2(x, z, cka::rbf_kernel::median()), 1e-12});
  rows.push_back({"mmd2 rbf median on X*1e-180 (its squares underflow) and Y*1e-180: the unscaled value", [] {
                    const mat<double> a = x * 1e-180, b = z * 1e-180;
                    return cka::mmd2(a, b, cka::rbf_kernel::median());
                  }, outcome::value, cka::mmd2(x, z, cka::rbf_kernel::median()), 1e-12});
  rows.push_back({"rbf fixed sigma on x*1e155: overflow", [] {
                    const mat<double> a = x * 1e155;
                    return cka::kernel_cka(a, a, cka::rbf_kernel{1.0});
                  }, outcome::domain_error, 0, 0, {"cka::kernel_cka", "overflow"}});
  // Defect 8: an overflow found inside the tile engine's OpenMP threads left the parallel region as an
  // exception and aborted the process (std::terminate); the table is now built with OpenMP.
  rows.push_back({"rbf fixed sigma on x*1e155 in 300 rows (two tile rows, threaded): overflow", [] {
                    const mat<double> a = test::normal<double>(300, 3, 91) * 1e155;
                    return cka::kernel_cka(a, a, cka::rbf_kernel{1.0});
                  }, outcome::domain_error, 0, 0, {"cka::kernel_cka", "overflow"}});
  rows.push_back({"rbf fixed sigma, recomputed tiles, x*1e155: overflow", [] {
                    const mat<double> a = test::normal<double>(300, 3, 92) * 1e155;
                    cka::compute_options tiles;
                    tiles.max_bytes = 1;
                    return cka::kernel_cka(a, a, cka::rbf_kernel{1.0}, cka::estimator::biased, tiles);
                  }, outcome::domain_error, 0, 0, {"cka::kernel_cka", "overflow"}});
  rows.push_back({"similarity_matrix rbf fixed sigma with a 1e155 layer: overflow", [] {
                    const std::vector<mat<double>> layers = {test::normal<double>(300, 3, 93),
                                                             test::normal<double>(300, 3, 94) * 1e155};
                    return double(cka::similarity_matrix(layers, cka::rbf_kernel{1.0}).values(0, 1));
                  }, outcome::domain_error, 0, 0, {"similarity_matrix", "overflow"}});
  // The matrix checks each layer and takes its magnitude in one pass (finite_safe_scale).
  rows.push_back({"similarity_matrix with a NaN in a float layer: the entry named", [] {
                    const test::mat<float> a = test::normal<float>(50, 3, 97);
                    test::mat<float> b = test::normal<float>(50, 4, 98);
                    b(7, 2) = std::numeric_limits<float>::quiet_NaN();
                    return double(cka::similarity_matrix(std::vector<test::mat<float>>{a, b}).values(0, 1));
                  }, outcome::invalid_argument, 0, 0, {"similarity_matrix", "a layer(7, 2)", "not finite"}});
  rows.push_back({"similarity_matrix with -Inf in a row-major layer: the entry named", [] {
                    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> b = test::normal<double>(50, 4, 98);
                    b(49, 3) = -std::numeric_limits<double>::infinity();
                    using R = decltype(b);
                    return double(cka::similarity_matrix(std::vector<R>{R(test::normal<double>(50, 3, 97)), b}).values(0, 1));
                  }, outcome::invalid_argument, 0, 0, {"a layer(49, 3)", "not finite"}});
  rows.push_back({"mmd2 rbf sigma = 1e200 on 300 rows: overflow", [] {
                    const mat<double> a = test::normal<double>(300, 3, 95), b = test::normal<double>(200, 3, 96);
                    return cka::mmd2(a, b, cka::rbf_kernel{1e200});
                  }, outcome::domain_error, 0, 0, {"overflow", "sigma"}});
  // Defect 9: the linear kernel beside another kernel (kernel_cka) overflowed on x*1e300, where its CKA,
  // which does not depend on the scale, is defined; the tile engine now scales such rows by a power of two.
  rows.push_back({"kernel_cka linear beside rbf on x*1e300: the value at scale 1", [] {
                    return test::rel_err(cka::kernel_cka(mat<double>(x * huge), y, cka::linear_kernel{}, cka::rbf_kernel::median()),
                                         cka::kernel_cka(x, y, cka::linear_kernel{}, cka::rbf_kernel::median()));
                  }, outcome::value, 0.0, -1e-12});
  // The inner-product kernels on the tile engine: an overflow inside its threads, on every route.
  rows.push_back({"polynomial degree 400, recomputed tiles in 300 rows: overflow", [] {
                    const mat<double> a = test::normal<double>(300, 3, 97);
                    cka::compute_options tiles;
                    tiles.max_bytes = 1;
                    return cka::kernel_cka(a, a, cka::polynomial_kernel{400, 1.0, 1.0}, cka::estimator::biased, tiles);
                  }, outcome::domain_error, 0, 0, {"cka::kernel_cka", "overflow: a kernel value"}});
  rows.push_back({"mmd2 polynomial degree 400 on 300 + 200 rows: overflow", [] {
                    const mat<double> a = test::normal<double>(300, 3, 98), b = test::normal<double>(200, 3, 99);
                    return cka::mmd2(a, b, cka::polynomial_kernel{400, 1.0, 1.0});
                  }, outcome::domain_error, 0, 0, {"cka::mmd2", "overflow: a kernel value"}});
  rows.push_back({"similarity_matrix polynomial degree 400: overflow", [] {
                    const std::vector<mat<double>> layers = {test::normal<double>(300, 3, 100), test::normal<double>(300, 2, 101)};
                    return double(cka::similarity_matrix(layers, cka::polynomial_kernel{400, 1.0, 1.0}).values(0, 1));
                  }, outcome::domain_error, 0, 0, {"similarity_matrix", "overflow: a kernel value"}});
  rows.push_back({"kernel_cka, a generic kernel that returns NaN, 300 rows (inside the tile threads): overflow", [] {
                    const mat<double> grid = (3 * test::normal<double>(300, 2, 102)).array().round().matrix();
                    return cka::kernel_cka(grid, grid, nan_kernel{}, cka::rbf_kernel::median());
                  }, outcome::domain_error, 0, 0, {"cka::kernel_cka", "overflow: a kernel value"}});
  rows.push_back({"median_squared_distance with NaN", [] {
                    mat<double> d = mat<double>::Ones(4, 4);
                    d(2, 1) = d(1, 2) = std::numeric_limits<double>::quiet_NaN();
                    return cka::median_squared_distance(d);
                  }, outcome::invalid_argument, 0, 0, {"cka::median_squared_distance", "d(2, 1)"}});
  rows.push_back({"median_squared_distance with Inf", [] {
                    mat<double> d = mat<double>::Ones(4, 4);
                    d(3, 0) = d(0, 3) = std::numeric_limits<double>::infinity();
                    return cka::median_squared_distance(d);
                  }, outcome::invalid_argument, 0, 0, {"d(3, 0)"}});
  rows.push_back({"median_squared_distance with a negative entry", [] {
                    mat<double> d = mat<double>::Ones(4, 4);
                    d(3, 2) = d(2, 3) = -1;
                    return cka::median_squared_distance(d);
                  }, outcome::invalid_argument, 0, 0, {"d(3, 2)", "non-negative"}});
  rows.push_back({"median_squared_distance of the largest finite distances", [] {
                    const mat<double> d = mat<double>::Constant(5, 5, std::numeric_limits<double>::max());
                    return cka::median_squared_distance(d, cka::median_rule::off_diagonal);
                  }, outcome::value, std::numeric_limits<double>::max(), 0.0});
  // Long double distances beyond the doubles' range, or closer than a double can tell apart: the selection
  // orders by the nearest double (clamped) and must still return the exact middle values (10 pairs, 1…10).
  rows.push_back({"median_squared_distance of long double distances near 1e4000", [] {
                    mat<long double> d = mat<long double>::Zero(5, 5);
                    int k = 1;
                    for (int j = 0; j < 5; ++j)
                      for (int i = j + 1; i < 5; ++i, ++k) d(i, j) = d(j, i) = (11 - k) * 1e4000L;
                    return double(cka::median_squared_distance(d, cka::median_rule::off_diagonal) / 1e4000L);
                  }, outcome::value, 5.5, 1e-15});
  rows.push_back({"median_squared_distance of long double distances 1 + k/2^60 (one double)", [] {
                    mat<long double> d = mat<long double>::Zero(5, 5);
                    int k = 1;
                    for (int j = 0; j < 5; ++j)
                      for (int i = j + 1; i < 5; ++i, ++k) d(i, j) = d(j, i) = 1.0L + (11 - k) * 0x1p-60L;
                    return double((cka::median_squared_distance(d, cka::median_rule::off_diagonal) - 1.0L) * 0x1p60L);
                  }, outcome::value, 5.5, 1e-15});

  // Defect 5: overflow and underflow were reported as zero variance.
  rows.push_back({"linear_cka on x*1e300", [] { return cka::linear_cka(mat<double>(x * huge), y); }, outcome::value,
                  cka::linear_cka(x, y), 1e-13});
  rows.push_back({"linear_cka on x*1e-170, debiased", [] {
                    return cka::linear_cka(mat<double>(x * tiny), mat<double>(y * tiny), estimator::unbiased);
                  }, outcome::value, cka::linear_cka(x, y, estimator::unbiased), 1e-13});
  rows.push_back({"linear_cka, Gram route (n < d1 + d2), x*1e300", [] {
                    const mat<double> a = test::normal<double>(6, 5, 4), b = test::normal<double>(6, 4, 5);
                    return test::rel_err(cka::linear_cka(mat<double>(a * huge), b), cka::linear_cka(a, b));
                  }, outcome::value, 0.0, -1e-13});
  // Issue 26: permutation_test's feature-space route kept its own sums without the power-of-two scaling and
  // threw overflow on x*1e200, where linear_cka returns a value.
  rows.push_back({"permutation_test linear on x*1e200: the value at scale 1", [] {
                    cka::permutation_options o;
                    o.count = 99;
                    return cka::permutation_test(mat<double>(x * 1e200), y, cka::linear_kernel{}, estimator::biased, o).value;
                  }, outcome::value, cka::linear_cka(x, y), 1e-13});
  rows.push_back({"polynomial degree 400: overflow", [] { return cka::kernel_cka(x, y, cka::polynomial_kernel{400, 1.0, 1.0}); },
                  outcome::domain_error, 0, 0, {"cka::kernel_cka", "overflow"}});
  rows.push_back({"rbf sigma = 1e-300: the K = I limit", [] { return cka::kernel_cka(x, y, cka::rbf_kernel{1e-300}); },
                  outcome::value, 1.0, 1e-15});
  rows.push_back({"rbf sigma = 1e200: overflow", [] { return cka::kernel_cka(x, y, cka::rbf_kernel{1e200}); },
                  outcome::domain_error, 0, 0, {"overflow", "sigma"}});
  rows.push_back({"similarity_matrix on x*1e300 (moment route)", [] {
                    const std::vector<mat<double>> layers = {mat<double>(x * huge), y};
                    return cka::similarity_matrix(layers).values(0, 1);
                  }, outcome::value, cka::linear_cka(x, y), 1e-13});
  rows.push_back({"similarity_matrix on x*1e-170 (Gram route, minibatch)", [] {
                    const std::vector<mat<double>> layers = {mat<double>(x * tiny), y};
                    cka::similarity_matrix_options o;
                    o.minibatch = 20;
                    const std::vector<mat<double>> plain = {x, y};
                    return test::rel_err(cka::similarity_matrix(layers, cka::linear_kernel{}, o).values(0, 1),
                                         cka::similarity_matrix(plain, cka::linear_kernel{}, o).values(0, 1));
                  }, outcome::value, 0.0, -1e-13});

  // Defect 12: the linear-kernel MMD² under a common offset, and beyond the double range.
  rows.push_back({"mmd2 linear, double + 1e8", [] {
                    const mat<double> a = (x.array() + 1e8).matrix(), b = (x.array() * 0.9 + 1e8 + 0.3).matrix();
                    return test::rel_err(cka::mmd2(a, b, cka::linear_kernel{}), mean_gap(a, b));
                  }, outcome::value, 0.0, -1e-6});
  rows.push_back({"mmd2 linear, float + 1e4", [] {
                    const mat<float> a = (x.cast<float>().array() + 1e4f).matrix();
                    const mat<float> b = (x.cast<float>().array() * 1.1f + 1e4f + 0.05f).matrix();
                    return test::rel_err(cka::mmd2(a, b, cka::linear_kernel{}), mean_gap(a, b));
                  }, outcome::value, 0.0, -1e-6});
  rows.push_back({"mmd2 linear, unbiased, double + 1e8: the offset-free value", [] {
                    const mat<double> a = (x.array() + 1e8).matrix(), b = (x.array() * 0.9 + 1e8).matrix();
                    const mat<double> a0 = (a.array() - 1e8).matrix(), b0 = (b.array() - 1e8).matrix();
                    return test::rel_err(cka::mmd2(a, b, cka::linear_kernel{}, estimator::unbiased),
                                         cka::mmd2(a0, b0, cka::linear_kernel{}, estimator::unbiased));
                  }, outcome::value, 0.0, -1e-7});
  rows.push_back({"mmd2 linear on 1e300 values: overflow", [] {
                    return cka::mmd2(mat<double>(x * huge), mat<double>(z * -huge), cka::linear_kernel{});
                  }, outcome::domain_error, 0, 0, {"cka::mmd2", "overflow"}});
  rows.push_back({"mmd2 rbf median on x*1e155: the unscaled value", [] {
                    return cka::mmd2(mat<double>(x * 1e155), mat<double>(z * 1e155), cka::rbf_kernel::median());
                  }, outcome::value, cka::mmd2(x, z, cka::rbf_kernel::median()), 1e-12});

  // Defect 14: B·C·H·W overflowed before the size check.
  // A NaN or infinite weight gave a NaN or infinite loss; float logits near 1e-42 an infinite gradient
  // (it goes as 1/|logits|, beyond float), both silently.
  rows.push_back({"rcka_loss with a NaN weight", [] {
                    return cka::rcka::rcka_loss(x, y, {std::nan(""), 1.0}).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::rcka_loss", "weights sample = nan and cls = 1"}});
  rows.push_back({"rcka_loss unbiased with an infinite weight", [] {
                    cka::rcka::relation_options o;
                    o.est = estimator::unbiased;
                    return cka::rcka::rcka_loss(x, y, {1.0, std::numeric_limits<double>::infinity()}, o).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::rcka_loss", "must be finite"}});
  rows.push_back({"sample_relation_loss, float logits near 1e-42: the gradient overflows float", [] {
                    const mat<float> s = (x * 1e-42).cast<float>(), t = y.cast<float>();
                    return double(cka::rcka::sample_relation_loss(s, t).value);
                  }, outcome::domain_error, 0, 0, {"cka::rcka::sample_relation_loss", "overflow", "gradient"}});
  rows.push_back({"rcka_loss, float logits near 1e-42", [] {
                    const mat<float> s = (x.leftCols(4) * 1e-42).cast<float>(), t = y.cast<float>();
                    return double(cka::rcka::rcka_loss(s, t).value);
                  }, outcome::domain_error, 0, 0, {"cka::rcka::rcka_loss", "overflow"}});
  rows.push_back({"class_relation_loss row_normalize, float logits near 1e-42", [] {
                    const mat<float> s = (x.leftCols(4) * 1e-42).cast<float>(), t = y.cast<float>();
                    cka::rcka::relation_options o;
                    o.centered = false;
                    o.row_normalize = true;
                    return double(cka::rcka::class_relation_loss(s, t, o).value);
                  }, outcome::domain_error, 0, 0, {"cka::rcka::class_relation_loss", "overflow"}});
  rows.push_back({"patch_loss, float maps near 1e-42", [] {
                    const mat<float> s = (test::normal<double>(2, 2 * 6 * 6, 5) * 1e-42).cast<float>();
                    const mat<float> t = test::normal<double>(2, 2 * 6 * 6, 6).cast<float>();
                    return double(cka::rcka::patch_loss(s, t, {2, 2, 6, 6}, 3, 3).value);
                  }, outcome::domain_error, 0, 0, {"cka::rcka::patch_loss", "overflow"}});
  // The forms that write the gradient into the caller's matrix: its shape, its own memory, no overlap.
  rows.push_back({"rcka_loss into a 3x3 gradient for 60x5 logits", [] {
                    mat<double> g(3, 3);
                    return cka::rcka::rcka_loss(x, x, g).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::rcka_loss", "grad is 3x3 but student is 60x5"}});
  rows.push_back({"sample_relation_loss with the student as its own gradient", [] {
                    mat<double> s = x;
                    return cka::rcka::sample_relation_loss(s, y, s).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::sample_relation_loss", "shares memory with the student"}});
  rows.push_back({"class_relation_loss into the teacher's columns", [] {
                    mat<double> t = test::normal<double>(60, 8, 3);
                    return cka::rcka::class_relation_loss(x, t.leftCols(5), t.rightCols(5)).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::class_relation_loss", "shares memory with the teacher"}});
  rows.push_back({"feature_loss into a view whose rows share memory (outer stride 1)", [] {
                    std::vector<double> buffer(64);
                    Eigen::Map<mat<double>, 0, Eigen::OuterStride<>> g(buffer.data(), 60, 5, Eigen::OuterStride<>(1));
                    return cka::rcka::feature_loss(x, y, g).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::feature_loss", "overlaps itself"}});
  rows.push_back({"patch_loss into a gradient of the maps' size but another shape", [] {
                    const mat<double> s = test::normal<double>(2, 2 * 6 * 6, 5), t = test::normal<double>(2, 2 * 6 * 6, 6);
                    mat<double> g(2 * 2 * 6 * 6, 1);
                    return cka::rcka::patch_loss(s, t, g, {2, 2, 6, 6}, 3, 3).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::patch_loss", "grad is 144x1 but student is 2x72"}});
  rows.push_back({"patch_loss into the teacher's maps", [] {
                    const mat<double> s = test::normal<double>(2, 2 * 6 * 6, 5);
                    mat<double> t = test::normal<double>(2, 2 * 6 * 6, 6);
                    return cka::rcka::patch_loss(s, t, t, {2, 2, 6, 6}, 3, 3).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::patch_loss", "shares memory with the teacher"}});
  // The channels are dealt to threads: a raised constant channel is the first one, named, on any number.
  rows.push_back({"patch_loss raise, channels 2 and 4 of 6 constant: channel 2 named", [] {
                    mat<double> s = test::normal<double>(3 * 6 * 4 * 4, 1, 11), t = test::normal<double>(3 * 6 * 4 * 4, 1, 12);
                    for (Eigen::Index b = 0; b < 3; ++b) {
                      t.middleRows((b * 6 + 4) * 16, 16).setConstant(1.0);
                      s.middleRows((b * 6 + 2) * 16, 16).setZero();
                    }
                    cka::rcka::relation_options o;
                    o.on_undefined = cka::rcka::undefined_policy::raise;
                    return cka::rcka::patch_loss(s, t, {3, 6, 4, 4}, 2, 2, o).value;
                  }, outcome::domain_error, 0, 0, {"cka::rcka::patch_loss, channel 2:", "constant student"}});
  rows.push_back({"patch_loss shape {2^31, 2^31, 2, 2}", [] {
                    const Eigen::Index big = Eigen::Index(1) << 31;
                    return cka::rcka::patch_loss(x, x, {big, big, 2, 2}, 1, 1).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::patch_loss", "needs"}});
  rows.push_back({"patch_loss shape {2^62, 4, 4, 4}", [] {
                    return cka::rcka::patch_loss(x, x, {Eigen::Index(1) << 62, 4, 4, 4}, 2, 2).value;
                  }, outcome::invalid_argument, 0, 0, {"needs"}});
  rows.push_back({"patch_loss patch 2^62 x 2^62", [] {
                    const mat<double> maps = test::normal<double>(2 * 1 * 6 * 5, 1, 9);
                    return cka::rcka::patch_loss(maps, maps, {2, 1, 6, 5}, Eigen::Index(1) << 62, Eigen::Index(1) << 62).value;
                  }, outcome::invalid_argument, 0, 0, {"at least 2"}});

  // Under row_normalize the zero-variance rule compared the scaled Gram P (which goes as the logits' scale)
  // with the unscaled one's self-product (as its square): logits near 1e30 were a "constant student".
  rows.push_back({"sample_relation_loss row_normalize + centered, raise, logits near 1e30: the scale-free value", [] {
                    cka::rcka::relation_options o{true, true, estimator::biased};
                    o.on_undefined = cka::rcka::undefined_policy::raise;
                    return cka::rcka::sample_relation_loss(mat<double>(x * 1e30), mat<double>(y * 1e30), o).value;
                  }, outcome::value, [] {
                    return cka::rcka::sample_relation_loss(x, y, {true, true, estimator::biased}).value;
                  }(), 1e-12});
  // Float products (product_precision::input) scale their factors: float logits near 1e30 or 1e-30 give
  // the exact loss within the products' rounding, not an overflow or a flushed Gram.
  for (float mag : {1e30f, 1e-30f}) {
    rows.push_back({mag > 1 ? "rcka_loss, float products, float logits near 1e30"
                            : "rcka_loss, float products, float logits near 1e-30", [=] {
                      cka::rcka::relation_options o;
                      o.products = cka::rcka::product_precision::input;
                      const mat<float> s = (x.leftCols(4) * mag).cast<float>(), t = (y * mag).cast<float>();
                      return double(cka::rcka::rcka_loss(s, t, {}, o).value);
                    }, outcome::value, cka::rcka::rcka_loss(mat<double>(x.leftCols(4)), y).value, 1e-5});
  }

  // Defect 3: the losses on ordinary training states.
  const mat<double> zero = mat<double>::Zero(60, 5);
  rows.push_back({"sample_relation_loss, zero student: skipped", [=] {
                    const auto r = cka::rcka::sample_relation_loss(zero, y);
                    return r.skipped == 1 && r.grad.cwiseAbs().maxCoeff() == 0.0 ? r.value : 1.0;
                  }, outcome::value, 0.0, 0.0});
  rows.push_back({"patch_loss, every channel dead in the teacher: skipped", [] {
                    const mat<double> maps = test::normal<double>(2 * 3 * 4 * 4, 1, 10);
                    const auto r = cka::rcka::patch_loss(maps, mat<double>(mat<double>::Zero(96, 1)), {2, 3, 4, 4}, 2, 2);
                    return r.skipped == 3 ? r.value : 1.0;
                  }, outcome::value, 0.0, 0.0});
  rows.push_back({"sample_relation_loss, batch of 1: skipped", [] {
                    const auto r = cka::rcka::sample_relation_loss(x.topRows(1), y.topRows(1));
                    return r.skipped == 1 ? r.value : 1.0;
                  }, outcome::value, 0.0, 0.0});
  rows.push_back({"sample_relation_loss, zero student, policy raise", [=] {
                    cka::rcka::relation_options o;
                    o.on_undefined = cka::rcka::undefined_policy::raise;
                    return cka::rcka::sample_relation_loss(zero, y, o).value;
                  }, outcome::domain_error, 0, 0, {"cka::rcka::sample_relation_loss", "constant student"}});
  // rcka_loss's joint form (both relations from one product) scales its inputs by a power of two: logits of
  // 1e200 or 1e-200 used to overflow the sample relation's Gram ("overflow" error); the value is the unscaled one.
  for (const double scale : {1e200, 1e-200}) {
    rows.push_back({scale > 1 ? "rcka_loss of logits times 1e200: the unscaled value" : "rcka_loss of logits times 1e-200: the unscaled value",
                    [=] {
                      const mat<double> s = x.leftCols(4) * scale;
                      return cka::rcka::rcka_loss(s, y).value;
                    }, outcome::value, cka::rcka::rcka_loss(mat<double>(x.leftCols(4)), y).value, 1e-13});
  }
  rows.push_back({"rcka_loss, a NaN teacher logit with more rows than classes: names it in the caller's coordinates", [] {
                    mat<double> t = y;
                    t(7, 2) = std::numeric_limits<double>::quiet_NaN();
                    return cka::rcka::rcka_loss(mat<double>(x.leftCols(4)), t).value;
                  }, outcome::invalid_argument, 0, 0, {"rcka::sample_relation_loss", "teacher(7, 2)"}});
  rows.push_back({"rcka_loss, an infinite student logit with more classes than rows", [] {
                    mat<double> s = x.leftCols(4).transpose(), t = y.transpose();
                    s(3, 41) = std::numeric_limits<double>::infinity();
                    return cka::rcka::rcka_loss(s, t).value;
                  }, outcome::invalid_argument, 0, 0, {"rcka::sample_relation_loss", "student(3, 41)"}});

  // Defect 6: the matrix ratio of float32 activations near the top of their range.
  // Defect 9 (MPI issue): set_shift, which cka::mpi::allreduce uses to bring states to one shift.
  // Widths whose state side (1 + d1 + d2 + 2) squared leaves the index range wrapped into a negative
  // size (an Eigen assertion, or a crash under NDEBUG): now a clear error before any allocation.
  rows.push_back({"linear_state with widths 2^62", [] {
                    cka::linear_state s(Eigen::Index(1) << 62, Eigen::Index(1) << 62);
                    return 0.0;
                  }, outcome::invalid_argument, 0, 0, {"cka::linear_state: widths 4611686018427387904, 4611686018427387904", "1073741824", "cannot address"}});
  rows.push_back({"layers_state with widths 2^31", [] {
                    cka::layers_state s({Eigen::Index(1) << 31, 3});
                    return 0.0;
                  }, outcome::invalid_argument, 0, 0, {"cka::layers_state: widths 2147483648, 3", "cannot address"}});
  // A flat array written with a count that no sum of states has (NaN after a bad reduction, a fraction):
  // the count was converted to an integer, undefined behaviour (-9223372036854775808 samples).
  rows.push_back({"linear_state whose flat array's count is NaN", [] {
                    cka::linear_state s(3, 4);
                    s.add(x.leftCols(3), y.leftCols(4));
                    s.data()[0] = std::nan("");
                    return s.cka();
                  }, outcome::invalid_argument, 0, 0, {"cka::linear_state::cka", "sample count", "nan"}});
  rows.push_back({"layers_state whose flat array's count is 2.5", [] {
                    cka::layers_state s({3, 4});
                    s.add(std::vector<mat<double>>{x.leftCols(3), y.leftCols(4)});
                    s.data()[0] = 2.5;
                    return double(s.samples());
                  }, outcome::invalid_argument, 0, 0, {"cka::layers_state::samples", "sample count", "2.5"}});
  rows.push_back({"linear_state::set_shift with the wrong length", [] {
                    cka::linear_state s(5, 4);
                    s.set_shift(cka::vector<double>::Zero(8));
                    return 0.0;
                  }, outcome::invalid_argument, 0, 0, {"linear_state::set_shift", "8", "9"}});
  rows.push_back({"layers_state::set_shift with a NaN", [] {
                    cka::layers_state s({5, 4});
                    cka::vector<double> m = cka::vector<double>::Zero(9);
                    m(3) = std::nan("");
                    s.set_shift(m);
                    return 0.0;
                  }, outcome::invalid_argument, 0, 0, {"layers_state::set_shift", "shift"}});
  rows.push_back({"linear_state::set_shift after rows: the same CKA", [] {
                    cka::linear_state s(5, 4);
                    s.add(x, y);
                    s.set_shift(cka::vector<double>::Constant(9, 1.0));
                    return s.cka();
                  }, outcome::value, cka::linear_cka(x, y), 1e-12});
  rows.push_back({"similarity_matrix, float32 * 3e37: diagonal 1", [] {
                    const std::vector<mat<float>> layers = {mat<float>(x.cast<float>() * 3e37f), y.cast<float>()};
                    return cka::similarity_matrix(layers).values(0, 0);
                  }, outcome::value, 1.0, 1e-14});
  // Issue 25, item 9: permutation counts that no test can draw (size_t(-1), 2^63) were turned into p = inf
  // or a negative p without one permutation; they are refused, naming the count and the bound.
  const std::pair<const char*, std::size_t> counts[] = {{"permutation_test, count size_t(-1)", std::size_t(-1)},
                                                        {"permutation_test, count 2^63", std::size_t(1) << 63},
                                                        {"permutation_test, count 2^32 + 1", cka::permutation_options::max_count + 1}};
  for (const auto& [name, count] : counts) {
    rows.push_back({name, [count = count] {
                      cka::permutation_options o;
                      o.count = count;
                      return cka::permutation_test(x, y, cka::linear_kernel{}, estimator::biased, o).p_value;
                    }, outcome::invalid_argument, 0, 0, {"cka::permutation_test", std::to_string(count), "4294967296"}});
  }
  rows.push_back({"similarity_tests with an unbounded permutation count", [] {
                    cka::similarity_tests_options o;
                    o.permutations = std::size_t(-1);
                    return cka::similarity_tests(std::vector<mat<double>>{x, y}, cka::linear_kernel{}, o).p_value(0, 1);
                  }, outcome::invalid_argument, 0, 0, {"cka::similarity_tests", "permutations = 18446744073709551615"}});
  // RBF tests of 40,000 samples hold a 12.8 GB centered Gram per layer: beyond the budget they are refused
  // before anything is allocated (they were allocated, and on a machine that overcommits the process was
  // killed for memory while filling them).
  rows.push_back({"similarity_tests whose Grams exceed the budget", [] {
                    const mat<double> big = test::normal<double>(40000, 2, 7);
                    cka::similarity_tests_options o;
                    o.max_bytes = std::size_t(1) << 30;
                    return cka::similarity_tests(std::vector<mat<double>>{big, big}, cka::rbf_kernel{1.0}, o).p_value(0, 1);
                  }, outcome::invalid_argument, 0, 0, {"cka::similarity_tests", "2 layers of n = 40000", "25.6 GB", "max_bytes (1.07 GB)"}});
  // Issue 25, item 14: HSIC past the double range reported as overflow, never inf or NaN; Grams whose
  // products overflow but whose HSIC does not give the value.
  rows.push_back({"linear_state::hsic of rows near 1e150: overflow", [] {
                    cka::linear_state s(5, 4);
                    s.add(mat<double>(x * 1e150), mat<double>(y * 1e150));
                    return s.hsic();
                  }, outcome::domain_error, 0, 0, {"linear_state::hsic", "overflow"}});
  rows.push_back({"hsic of Grams near 1e200: overflow", [] {
                    const mat<double> k = cka::gram(x, cka::linear_kernel{}) * 1e200;
                    return cka::hsic(k, k);
                  }, outcome::domain_error, 0, 0, {"cka::hsic", "overflow"}});
  rows.push_back({"hsic of Grams near 1e200 and 1e-200: the value of the unscaled ones", [] {
                    const mat<double> k = cka::gram(x, cka::linear_kernel{}), l = cka::gram(y, cka::linear_kernel{});
                    return test::rel_err(cka::hsic(mat<double>(k * 1e200), mat<double>(l * 1e-200), estimator::unbiased),
                                         cka::hsic(k, l, estimator::unbiased));
                  }, outcome::value, 0.0, -1e-13});
  // center_gram summed the rows of K unscaled: entries near the top of double's range gave a NaN matrix
  // (the row sums overflowed) where every centered entry is representable; and a centered entry beyond the
  // scalar's range (C_ij up to 2.25·a here) came back as a silent Inf.
  const auto rank_one = [](auto a, Eigen::Index n) {  // a·vvᵀ, v = (1, …, 1, −1): C(K) = a·(v − v̄)(v − v̄)ᵀ
    using T = decltype(a);
    Eigen::Matrix<T, Eigen::Dynamic, 1> v = Eigen::Matrix<T, Eigen::Dynamic, 1>::Ones(n);
    v(n - 1) = T(-1);
    return mat<T>(a * (v * v.transpose()));
  };
  rows.push_back({"center_gram of a Gram near 1e307 (its row sums overflow): the value of the scaled one", [=] {
                    const mat<double> k = cka::gram(x, cka::linear_kernel{});
                    const double a = 1e307 / k.cwiseAbs().maxCoeff();  // 60 rows: sums up to 6e308
                    const mat<double> c = cka::center_gram(mat<double>(k * a)), reference = cka::center_gram(k) * a;
                    return (c - reference).stableNorm() / reference.stableNorm();
                  }, outcome::value, 0.0, -1e-14});
  rows.push_back({"center_gram, unbiased, of a Gram near 1e307: the value of the scaled one", [=] {
                    const mat<double> k = cka::gram(x, cka::linear_kernel{});
                    const double a = 1e307 / k.cwiseAbs().maxCoeff();  // 60 rows: sums up to 6e308
                    const mat<double> c = cka::center_gram(mat<double>(k * a), estimator::unbiased);
                    const mat<double> reference = cka::center_gram(k, estimator::unbiased) * a;
                    return (c - reference).stableNorm() / reference.stableNorm();
                  }, outcome::value, 0.0, -1e-14});
  rows.push_back({"center_gram of a 3x3 Gram of +-1e308 (scale 2^-1024): the exact value", [] {
                    mat<double> k(3, 3);
                    k << 1e308, 1e308, -1e308, 1e308, 1e308, 1e308, -1e308, 1e308, 1e308;
                    return cka::center_gram(k)(0, 2) / 1e308;  // −a − 2·(a/3) + 5a/9, in units of a
                  }, outcome::value, -10.0 / 9.0, 1e-15});
  rows.push_back({"center_gram of 1e308·vvᵀ (a centered entry 2.25e308): overflow", [=] {
                    return cka::center_gram(rank_one(1e308, 4))(3, 3);
                  }, outcome::domain_error, 0, 0, {"center_gram", "overflow"}});
  rows.push_back({"center_gram of a float 3e38·vvᵀ (a centered entry 6.75e38): overflow", [=] {
                    return double(cka::center_gram(rank_one(3e38f, 300))(299, 299));
                  }, outcome::domain_error, 0, 0, {"center_gram", "overflow"}});
  rows.push_back({"center_gram of a float 1e38·vvᵀ: the exact rank-one value", [=] {
                    return double(cka::center_gram(rank_one(1e38f, 4))(3, 3));
                  }, outcome::value, 1e38 * 2.25, 1e-6});
  // A layer of subnormal values (1e-310): its power-of-two scale 2^1030 was infinite, so linear CKA and
  // a median-rule RBF CKA reported an overflow. Subnormals near 1e-310 carry ~44 bits, hence 1e-11.
  rows.push_back({"linear_cka on x*1e-310 (subnormal)", [] { return cka::linear_cka(mat<double>(x * 1e-310), y); },
                  outcome::value, cka::linear_cka(x, y), 1e-11});
  rows.push_back({"kernel_cka rbf median on x*1e-310 (subnormal)", [] {
                    return cka::kernel_cka(mat<double>(x * 1e-310), y, cka::rbf_kernel::median(), cka::rbf_kernel::median());
                  }, outcome::value, cka::kernel_cka(x, y, cka::rbf_kernel::median(), cka::rbf_kernel::median()), 1e-11});
  // Kernel Grams beyond 2^+-200 (a polynomial kernel on large or small features): their centered products
  // left double's range, so kernel_cka and the tests reported an overflow, or "zero variance" where the
  // squares underflowed (similarity_tests listed such a layer as undefined), although CKA, which does not
  // depend on a Gram's scale, is defined. Each Gram is now scaled by a power of two first.
  const cka::polynomial_kernel inner{1, 1.0, 0.0}, square{2, 1.0, 0.0};  // K(s x) = s^2 K(x), s^4 K(x)
  rows.push_back({"kernel_cka polynomial on x*1e100 (Gram near 1e200)", [=] {
                    return test::rel_err(cka::kernel_cka(mat<double>(x * 1e100), y, inner), cka::kernel_cka(x, y, inner));
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"kernel_cka polynomial, recomputed tiles, unbiased, x*1e-100", [=] {
                    cka::compute_options tiles;
                    tiles.max_bytes = 1;
                    return test::rel_err(cka::kernel_cka(mat<double>(x * 1e-100), y, inner, estimator::unbiased, tiles),
                                         cka::kernel_cka(x, y, inner, estimator::unbiased));
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"kernel_cka polynomial degree 2 on x*1e-60 (Gram near 1e-240)", [=] {
                    return test::rel_err(cka::kernel_cka(mat<double>(x * 1e-60), y, square), cka::kernel_cka(x, y, square));
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"kernel_cka long double polynomial on x*1e100: the double value", [=] {
                    using ld = long double;
                    const mat<ld> big = (x * 1e100).cast<ld>(), other = y.cast<ld>();
                    return test::rel_err(double(cka::kernel_cka(big, other, inner)), cka::kernel_cka(x, y, inner));
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"permutation_test polynomial on x*1e100", [=] {
                    cka::permutation_options o;
                    o.count = 20;
                    return test::rel_err(cka::permutation_test(mat<double>(x * 1e100), y, inner, estimator::biased, o).value,
                                         cka::permutation_test(x, y, inner, estimator::biased, o).value);
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"jackknife polynomial degree 2 on x*1e-60", [=] {
                    return test::rel_err(cka::jackknife(mat<double>(x * 1e-60), y, square).value, cka::jackknife(x, y, square).value);
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"similarity_tests polynomial on x*1e-100 (was an undefined layer)", [=] {
                    const std::vector<mat<double>> small = {mat<double>(x * 1e-100), y}, plain = {x, y};
                    const auto a = cka::similarity_tests(small, inner), b = cka::similarity_tests(plain, inner);
                    return a.undefined.empty() ? test::rel_err(a.values(0, 1), b.values(0, 1)) : 1.0;
                  }, outcome::value, 0.0, -1e-12});
  // A layer's batches share one scale: here its first batch's Gram is near 2^600 and the others near 2^400
  // (a scale per batch would weigh them 2^200 apart).
  rows.push_back({"similarity_matrix polynomial, minibatch 20, batches 2^200 apart", [=] {
                    mat<double> mixed = x;
                    mixed.bottomRows(40) *= std::ldexp(1.0, -100);
                    cka::similarity_matrix_options o;
                    o.minibatch = 20;
                    const std::vector<mat<double>> big = {mat<double>(mixed * std::ldexp(1.0, 300)), y}, plain = {mixed, y};
                    return test::rel_err(cka::similarity_matrix(big, inner, o).values(0, 1),
                                         cka::similarity_matrix(plain, inner, o).values(0, 1));
                  }, outcome::value, 0.0, -1e-12});
  // The relation losses' general route (not rcka_loss's own, which scaled already) summed the squares of
  // unscaled Grams: logits near 1e100 raised an overflow, and near 1e-100 the step was skipped as if the
  // student were constant (value 0, zero gradient), although the alignment does not depend on the
  // logits' scale. Each row: the larger relative error of the value and of the gradient times the scale.
  const auto at_scale = [](auto loss, double a) {
    const mat<double> t = test::related<double>(x, 5, 3);
    const auto scaled = loss(mat<double>(x * a), t), plain = loss(x, t);
    if (scaled.skipped != 0) return 1.0;
    return std::max(test::rel_err(scaled.value, plain.value), (scaled.grad * a - plain.grad).norm() / plain.grad.norm());
  };
  rows.push_back({"sample_relation_loss on logits*1e100 (feature space)", [=] {
                    return at_scale([](const mat<double>& s, const mat<double>& t) { return cka::rcka::sample_relation_loss(s, t); }, 1e100);
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"class_relation_loss on logits*1e-100 (was skipped)", [=] {
                    return at_scale([](const mat<double>& s, const mat<double>& t) { return cka::rcka::class_relation_loss(s, t); }, 1e-100);
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"sample_relation_loss row_normalize on logits*1e160", [=] {
                    cka::rcka::relation_options o;
                    o.row_normalize = true;
                    return at_scale([o](const mat<double>& s, const mat<double>& t) { return cka::rcka::sample_relation_loss(s, t, o); }, 1e160);
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"sample_relation_loss unbiased on logits*1e-160", [=] {
                    cka::rcka::relation_options o;
                    o.est = estimator::unbiased;
                    return at_scale([o](const mat<double>& s, const mat<double>& t) { return cka::rcka::sample_relation_loss(s, t, o); }, 1e-160);
                  }, outcome::value, 0.0, -1e-12});
  // mmd_bound normalised each Gram by its norm, which overflowed beyond ~1e154: on x*1e100 it returned
  // alignment 0 and discrepancy 0.5 silently; on x*1e-100 its "Gram is zero" was false. Its results, of
  // K/||K|| and L/||L||, do not depend on the scale. Each row: the largest relative error of the alignment,
  // the discrepancy and the bound against x.
  const auto bound_at = [](auto kernel, double a, bool centered) {
    cka::mmd_bound_options o;
    o.centered = centered;
    const auto scaled = cka::mmd_bound(mat<double>(x * a), y, kernel, o), plain = cka::mmd_bound(x, y, kernel, o);
    return std::max({test::rel_err(scaled.alignment, plain.alignment), test::rel_err(scaled.discrepancy, plain.discrepancy),
                     test::rel_err(scaled.bound, plain.bound)});
  };
  rows.push_back({"mmd_bound linear on x*1e100 (was alignment 0)", [=] { return bound_at(cka::linear_kernel{}, 1e100, false); },
                  outcome::value, 0.0, -1e-12});
  rows.push_back({"mmd_bound linear centered on x*1e-170", [=] { return bound_at(cka::linear_kernel{}, 1e-170, true); },
                  outcome::value, 0.0, -1e-12});
  rows.push_back({"mmd_bound polynomial on x*1e-100 (was: Gram is zero)", [=] { return bound_at(inner, 1e-100, false); },
                  outcome::value, 0.0, -1e-12});
  // Representations with no features: the symmetric product of a 60x0 matrix crashed the process with
  // SIGFPE (Eigen's blocking heuristic divides by the product's depth); mmd_bound's Gram is then zero.
  rows.push_back({"mmd_bound linear of a 60x0 X: its Gram is zero (was SIGFPE)", [] {
                    return cka::mmd_bound(mat<double>(60, 0), y, cka::linear_kernel{}).alignment;
                  }, outcome::domain_error, 0, 0, {"cka::mmd_bound", "Gram of X is zero"}});
  rows.push_back({"gram of a 60x0 X, linear kernel: 60x60 zeros", [] {
                    const mat<double> g = cka::gram(mat<double>(60, 0), cka::linear_kernel{});
                    return g.rows() == 60 && g.cols() == 60 && g.isZero(0.0) ? 1.0 : 0.0;
                  }, outcome::value, 1.0, 0.0});
  return rows;
}

}  // namespace

TEST_CASE("hostile and degenerate input: every row gets its documented outcome", "[hostile]") { hostile::check(table()); }
