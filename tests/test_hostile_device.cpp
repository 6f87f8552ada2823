// The hostile-input table's rows for the device backend on its host systems (cka::device::omp and cpp):
// what a training loop or a tensor dump can hand it. Built into test_hostile under AddressSanitizer and
// UndefinedBehaviorSanitizer, but without UBSan's pointer checks (null, alignment, object-size, vptr) for
// this file: Thrust's reference type binds and upcasts a null system pointer on purpose
// (thrust/detail/reference.h, assign_from: "avoid default-constructing systems; instead, just use a null
// pointer") inside every omp reduction, which g++ reports as a null reference and clang++ as an upcast of a
// null pointer. ASan still catches a null dereference or a read out of bounds, and UBSan's arithmetic
// checks (index overflow among them) stay on.
#include "hostile_table.hpp"
#include "support.hpp"

#include <cka/device.hpp>
#include <cka/gram.hpp>
#include <cka/mmd.hpp>
#include <cka/rcka.hpp>
#include <cka/similarity.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

using cka::estimator;
using hostile::one_hot;
using hostile::outcome;
using hostile::row;
using test::mat;
namespace device = cka::device;

const mat<double> x = test::normal<double>(60, 5, 1);
const mat<double> y = test::related<double>(x, 4, 2);
const mat<double> z = test::normal<double>(50, 5, 7);  // a second sample in x's space (mmd2)


/// A row-major view of m (the layout of a PyTorch tensor).
template <class T>
device::matrix_view<const T> view_of(const mat<T>& m, std::vector<T>& buffer) {
  buffer.resize(std::size_t(m.size()));
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) buffer[std::size_t(i * m.cols() + j)] = m(i, j);
  return device::row_major(static_cast<const T*>(buffer.data()), m.rows(), m.cols());
}

/// The device backend on its host systems: what a training loop or a tensor dump can hand it.
std::vector<row> device_table() {
  std::vector<row> rows;
  rows.push_back({"device linear_cka, a NaN in X: invalid_argument naming the element", [] {
                    mat<double> a = x;
                    a(7, 2) = std::nan("");
                    std::vector<double> ba, bb;
                    return cka::linear_cka(device::omp{}, view_of(a, ba), view_of(y, bb));
                  }, outcome::invalid_argument, 0, 0, {"cka::linear_cka", "X(7, 2)"}});
  rows.push_back({"device linear_cka, a negative stride", [] {
                    std::vector<double> bx, by;
                    auto v = view_of(x, bx);
                    v.row_stride = -5;
                    return cka::linear_cka(device::cpp{}, v, view_of(y, by));
                  }, outcome::invalid_argument, 0, 0, {"cka::linear_cka", "negative strides"}});
  rows.push_back({"device linear_cka, a null pointer with a shape", [] {
                    std::vector<double> by;
                    return cka::linear_cka(device::cpp{}, device::matrix_view<const double>{nullptr, 60, 5, 5, 1}, view_of(y, by));
                  }, outcome::invalid_argument, 0, 0, {"cka::linear_cka", "null"}});
  rows.push_back({"device linear_cka, strides that address beyond 64-bit offsets", [] {
                    std::vector<double> bx, by;
                    auto v = view_of(x, bx);
                    v.row_stride = std::int64_t(1) << 62;
                    return cka::linear_cka(device::cpp{}, v, view_of(y, by));
                  }, outcome::invalid_argument, 0, 0, {"cka::linear_cka", "strides"}});
  rows.push_back({"device linear_cka, a broadcast row (stride 0): zero variance", [] {
                    std::vector<double> bx, by;
                    auto v = view_of(x, bx);
                    v.row_stride = 0;
                    return cka::linear_cka(device::omp{}, v, view_of(y, by));
                  }, outcome::domain_error, 0, 0, {"cka::linear_cka", "zero variance"}});
  rows.push_back({"device linear_cka, 700 rows (column statistics in chunks): the host's value", [] {
                    const mat<double> a = test::normal<double>(700, 6, 97), b = test::related<double>(a, 5, 98);
                    std::vector<double> ba, bb;
                    return test::rel_err(cka::linear_cka(device::omp{}, view_of(a, ba), view_of(b, bb), estimator::unbiased),
                                         cka::linear_cka(a, b, estimator::unbiased));
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"device kernel_cka, polynomial of degree 400: overflow", [] {
                    std::vector<double> bx, by;
                    return cka::kernel_cka(device::omp{}, view_of(x, bx), view_of(y, by), cka::polynomial_kernel{400, 1.0, 1.0},
                                           cka::polynomial_kernel{400, 1.0, 1.0});
                  }, outcome::domain_error, 0, 0, {"cka::kernel_cka", "overflow: a kernel value"}});
  rows.push_back({"device kernel_cka, polynomial of degree 0", [] {
                    std::vector<double> bx, by;
                    return cka::kernel_cka(device::cpp{}, view_of(x, bx), view_of(y, by), cka::polynomial_kernel{0, 1.0, 1.0},
                                           cka::linear_kernel{});
                  }, outcome::invalid_argument, 0, 0, {"polynomial_kernel", "degree = 0"}});
  rows.push_back({"device kernel_cka, polynomial and RBF on 300 rows (two tile rows, pass A in chunks): the host's value", [] {
                    const mat<double> a = test::normal<double>(300, 4, 99), b = test::related<double>(a, 3, 100);
                    std::vector<double> ba, bb;
                    const cka::polynomial_kernel k{3, 0.25, 1.0};
                    return test::rel_err(cka::kernel_cka(device::omp{}, view_of(a, ba), view_of(b, bb), k, cka::rbf_kernel::median()),
                                         cka::kernel_cka(a, b, k, cka::rbf_kernel::median()));
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"device kernel_cka, linear beside RBF on x*1e300: the host's value at scale 1", [] {
                    const mat<double> a = x * 1e300;
                    std::vector<double> ba, bb;
                    return test::rel_err(cka::kernel_cka(device::omp{}, view_of(a, ba), view_of(y, bb), cka::linear_kernel{},
                                                         cka::rbf_kernel::median()),
                                         cka::kernel_cka(x, y, cka::linear_kernel{}, cka::rbf_kernel::median()));
                  }, outcome::value, 0.0, -1e-12});
  // The device summed the squares of unscaled kernel matrices: a Gram near 1e200 reported an overflow,
  // one near 1e-200 zero variance. Each is now scaled by a power of two, as on the host: the value of x.
  rows.push_back({"device kernel_cka polynomial on x*1e100 (Gram near 1e200)", [] {
                    const mat<double> a = x * 1e100;
                    std::vector<double> ba, bb;
                    const cka::polynomial_kernel k{1, 1.0, 0.0};
                    return test::rel_err(cka::kernel_cka(device::omp{}, view_of(a, ba), view_of(y, bb), k, k), cka::kernel_cka(x, y, k, k));
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"device kernel_cka polynomial degree 2 on x*1e-60, unbiased", [] {
                    const mat<double> a = x * 1e-60;
                    std::vector<double> ba, bb;
                    const cka::polynomial_kernel k{2, 1.0, 0.0};
                    return test::rel_err(cka::kernel_cka(device::cpp{}, view_of(a, ba), view_of(y, bb), k, cka::rbf_kernel::median(), estimator::unbiased),
                                         cka::kernel_cka(x, y, k, cka::rbf_kernel::median(), estimator::unbiased));
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"device kernel_cka rbf median, one-hot labels: zero bandwidth naming the way out", [] {
                    const mat<double> labels = one_hot(), features = test::related<double>(labels, 8, 3);
                    std::vector<double> ba, bb;
                    return cka::kernel_cka(device::omp{}, view_of(labels, ba), view_of(features, bb), cka::rbf_kernel::median(),
                                           cka::rbf_kernel::median());
                  }, outcome::domain_error, 0, 0, {"median squared distance is 0", "median_rule::nonzero"}});
  rows.push_back({"device kernel_cka rbf fixed sigma on x*1e155: overflow", [] {
                    const mat<double> a = x * 1e155;
                    std::vector<double> ba;
                    const auto v = view_of(a, ba);
                    return cka::kernel_cka(device::omp{}, v, v, cka::rbf_kernel{1.0}, cka::rbf_kernel{1.0});
                  }, outcome::domain_error, 0, 0, {"cka::kernel_cka", "overflow"}});
  rows.push_back({"device mmd2 linear on x*1e200: overflow", [] {
                    const mat<double> a = x * 1e200, b = z * 1e200;
                    std::vector<double> ba, bb;
                    return cka::mmd2(device::omp{}, view_of(a, ba), view_of(b, bb), cka::linear_kernel{});
                  }, outcome::domain_error, 0, 0, {"cka::mmd2", "overflow"}});
  rows.push_back({"device mmd2 linear, X and Y in different spaces", [] {
                    std::vector<double> ba, bb;
                    return cka::mmd2(device::cpp{}, view_of(x, ba), view_of(y, bb), cka::linear_kernel{});
                  }, outcome::invalid_argument, 0, 0, {"cka::mmd2", "same space"}});
  rows.push_back({"device mmd2 linear, the unbiased estimator on one sample", [] {
                    const mat<double> one = x.topRows(1);
                    std::vector<double> ba, bb;
                    return cka::mmd2(device::cpp{}, view_of(one, ba), view_of(z, bb), cka::linear_kernel{}, estimator::unbiased);
                  }, outcome::invalid_argument, 0, 0, {"cka::mmd2", "X has 1 samples"}});
  rows.push_back({"device hsic, an asymmetric K", [] {
                    mat<double> k = cka::gram(x, cka::linear_kernel{});
                    k(3, 9) += 1.0;
                    const mat<double> l = cka::gram(y, cka::linear_kernel{});
                    std::vector<double> bk, bl;
                    return cka::hsic(device::omp{}, view_of(k, bk), view_of(l, bl));
                  }, outcome::invalid_argument, 0, 0, {"cka::hsic", "not symmetric"}});
  rows.push_back({"device rcka_loss, a gradient view of the wrong shape", [] {
                    std::vector<double> bs, bt;
                    std::vector<double> grad(60 * 4);
                    return cka::rcka::rcka_loss(device::omp{}, view_of(y, bs), view_of(y, bt),
                                                device::row_major(grad.data(), 60, 3)).value;
                  }, outcome::invalid_argument, 0, 0, {"rcka_loss"}});
  rows.push_back({"device rcka_loss, an infinite logit: invalid_argument", [] {
                    mat<double> s = y;
                    s(5, 1) = std::numeric_limits<double>::infinity();
                    std::vector<double> bs, bt;
                    std::vector<double> grad(60 * 4);
                    return cka::rcka::rcka_loss(device::omp{}, view_of(s, bs), view_of(y, bt), device::row_major(grad.data(), 60, 4)).value;
                  }, outcome::invalid_argument, 0, 0, {"rcka_loss", "student(5, 1)"}});
  // The checks are folded into the engines' first reads (one scan, read back with the results); each
  // culprit is still named in the caller's row-major indices, whichever view and orientation held it.
  rows.push_back({"device class_relation_loss, a NaN in the teacher: names teacher(2, 3)", [] {
                    mat<double> t = y;
                    t(2, 3) = std::nan("");
                    std::vector<double> bs, bt;
                    std::vector<double> grad(60 * 4);
                    return cka::rcka::class_relation_loss(device::cpp{}, view_of(y, bs), view_of(t, bt),
                                                          device::row_major(grad.data(), 60, 4)).value;
                  }, outcome::invalid_argument, 0, 0, {"class_relation_loss", "teacher(2, 3)"}});
  rows.push_back({"device hsic, a NaN in L at (4, 7) only: names L(4, 7)", [] {
                    const mat<double> k = cka::gram(x, cka::linear_kernel{});
                    mat<double> l = cka::gram(y, cka::linear_kernel{});
                    l(4, 7) = std::nan("");
                    std::vector<double> bk, bl;
                    return cka::hsic(device::cpp{}, view_of(k, bk), view_of(l, bl));
                  }, outcome::invalid_argument, 0, 0, {"cka::hsic", "L(4, 7)"}});
  rows.push_back({"device hsic, an asymmetric K: names the first pair below the diagonal", [] {
                    mat<double> k = cka::gram(x, cka::linear_kernel{});
                    k(3, 9) += 1.0;
                    const mat<double> l = cka::gram(y, cka::linear_kernel{});
                    std::vector<double> bk, bl;
                    return cka::hsic(device::cpp{}, view_of(k, bk), view_of(l, bl));
                  }, outcome::invalid_argument, 0, 0, {"cka::hsic", "K is not symmetric: (9, 3)"}});
  // HSIC beyond the result type's range came back as NaN (products overflowing double) or, for float,
  // as inf; the host reports an overflow.
  rows.push_back({"device hsic of Grams near 1e150 and 1e160: overflow", [] {
                    const mat<double> k = cka::gram(x, cka::linear_kernel{}) * 1e150, l = cka::gram(y, cka::linear_kernel{}) * 1e160;
                    std::vector<double> bk, bl;
                    return cka::hsic(device::omp{}, view_of(k, bk), view_of(l, bl));
                  }, outcome::domain_error, 0, 0, {"cka::hsic", "overflow: HSIC exceeds"}});
  rows.push_back({"device hsic of float Grams near 1e20 each: overflow of float", [] {
                    const mat<float> k = (cka::gram(x, cka::linear_kernel{}) * 1e20).cast<float>();
                    const mat<float> l = (cka::gram(y, cka::linear_kernel{}) * 1e20).cast<float>();
                    std::vector<float> bk, bl;
                    return double(cka::hsic(device::cpp{}, view_of(k, bk), view_of(l, bl), estimator::unbiased));
                  }, outcome::domain_error, 0, 0, {"cka::hsic", "overflow: HSIC exceeds"}});
  rows.push_back({"device hsic of Grams near 1e160 and 1e-160: the host's value", [] {
                    const mat<double> k = cka::gram(x, cka::linear_kernel{}) * 1e160, l = cka::gram(y, cka::linear_kernel{}) * 1e-160;
                    std::vector<double> bk, bl;
                    return test::rel_err(cka::hsic(device::omp{}, view_of(k, bk), view_of(l, bl)), cka::hsic(k, l));
                  }, outcome::value, 0.0, -1e-12});
  rows.push_back({"device rcka_loss with an infinite weight (and its loss_slot variant)", [] {
                    std::vector<double> bs, bt, grad(60 * 4), slot(2);
                    const mat<double> s = x.leftCols(4);
                    const cka::rcka::rcka_weights w{-std::numeric_limits<double>::infinity(), 1.0};
                    CHECK_THROWS_WITH(cka::rcka::rcka_loss(device::cpp{}, view_of(s, bs), view_of(y.leftCols(4).eval(), bt),
                                                           device::row_major(grad.data(), 60, 4), device::loss_slot<double>{slot.data(), nullptr}, w),
                                      Catch::Matchers::Contains("must be finite"));
                    return cka::rcka::rcka_loss(device::omp{}, view_of(s, bs), view_of(y.leftCols(4).eval(), bt),
                                                device::row_major(grad.data(), 60, 4), w).value;
                  }, outcome::invalid_argument, 0, 0, {"cka::rcka::rcka_loss", "weights sample = -inf"}});
  // Float logits near 1e-42: the gradient (it goes as 1/|logits|) was written as inf, silently, with a
  // finite value and a defined status; a term undefined under raise left the other term's gradient in a
  // loss_slot's view (the contract is a zero gradient).
  rows.push_back({"device sample_relation_loss, float logits near 1e-42: the gradient overflows float", [] {
                    const mat<float> s = (x.leftCols(4) * 1e-42).cast<float>(), t = y.cast<float>();
                    std::vector<float> bs, bt, grad(60 * 4);
                    return double(cka::rcka::sample_relation_loss(device::cpp{}, view_of(s, bs), view_of(t, bt),
                                                                  device::row_major(grad.data(), 60, 4)).value);
                  }, outcome::domain_error, 0, 0, {"cka::rcka::sample_relation_loss", "overflow", "gradient"}});
  rows.push_back({"device rcka_loss into a loss_slot, float logits near 1e-42: loss_gradient_overflow, NaN, zero gradient", [] {
                    const mat<float> s = (x.leftCols(4) * 1e-42).cast<float>(), t = y.cast<float>();
                    std::vector<float> bs, bt, grad(60 * 4, 1.0f);
                    float value = 0;
                    std::int64_t status = 0;
                    cka::rcka::rcka_loss(device::omp{}, view_of(s, bs), view_of(t, bt), device::row_major(grad.data(), 60, 4),
                                         device::loss_slot<float>{&value, &status});
                    const bool zero_gradient = std::all_of(grad.begin(), grad.end(), [](float g) { return g == 0.0f; });
                    CHECK_THROWS_WITH(device::check_loss_status("rcka::rcka_loss", status), Catch::Matchers::Contains("gradient"));
                    return std::isnan(value) && status == device::loss_gradient_overflow && zero_gradient ? 1.0 : 0.0;
                  }, outcome::value, 1.0, 0.0});
  rows.push_back({"device rcka_loss on float logits, weights of 1e39 (beyond float): overflow", [] {
                    const mat<float> s = x.leftCols(4).cast<float>(), t = y.cast<float>();
                    std::vector<float> bs, bt, grad(60 * 4);
                    return double(cka::rcka::rcka_loss(device::omp{}, view_of(s, bs), view_of(t, bt),
                                                       device::row_major(grad.data(), 60, 4), {1e39, 1e39}).value);
                  }, outcome::domain_error, 0, 0, {"cka::rcka::rcka_loss", "overflow"}});
  rows.push_back({"device rcka_loss into a loss_slot under raise, identical teacher rows: loss_undefined, zero gradient", [] {
                    const mat<double> s = x.leftCols(4);
                    const mat<double> t = mat<double>::Ones(60, 1) * y.row(0);  // the class relation alone is defined
                    std::vector<double> bs, bt, grad(60 * 4, 1.0);
                    double value = 0;
                    std::int64_t status = 0;
                    cka::rcka::relation_options raise;
                    raise.on_undefined = cka::rcka::undefined_policy::raise;
                    cka::rcka::rcka_loss(device::cpp{}, view_of(s, bs), view_of(t, bt), device::row_major(grad.data(), 60, 4),
                                         device::loss_slot<double>{&value, &status}, {}, raise);
                    const bool zero_gradient = std::all_of(grad.begin(), grad.end(), [](double g) { return g == 0.0; });
                    return std::isnan(value) && status == device::loss_undefined && zero_gradient ? 1.0 : 0.0;
                  }, outcome::value, 1.0, 0.0});
  rows.push_back({"device mmd2 linear, a NaN in Y(3, 1): names it", [] {
                    mat<double> b = z;
                    b(3, 1) = std::nan("");
                    std::vector<double> ba, bb;
                    return cka::mmd2(device::cpp{}, view_of(x, ba), view_of(b, bb), cka::linear_kernel{});
                  }, outcome::invalid_argument, 0, 0, {"cka::mmd2", "Y(3, 1)"}});
  rows.push_back({"device kernel_cka rbf, an infinity in Y(2, 0): names it", [] {
                    mat<double> b = y;
                    b(2, 0) = std::numeric_limits<double>::infinity();
                    std::vector<double> ba, bb;
                    return cka::kernel_cka(device::cpp{}, view_of(x, ba), view_of(b, bb), cka::rbf_kernel::median(),
                                           cka::rbf_kernel::median());
                  }, outcome::invalid_argument, 0, 0, {"cka::kernel_cka", "Y(2, 0)"}});
  // The power-of-two scale of a subnormal layer was infinite (see test_hostile.cpp); the device scan shares
  // the rule.
  rows.push_back({"device linear_cka on x*1e-310 (subnormal): the host's value", [] {
                    std::vector<double> ba, bb;
                    return cka::linear_cka(device::omp{}, view_of(mat<double>(x * 1e-310), ba), view_of(y, bb));
                  }, outcome::value, cka::linear_cka(x, y), 1e-11});
  rows.push_back({"device rcka_loss into a loss_slot, an infinite logit: status loss_not_finite, value NaN", [] {
                    mat<double> s = y;
                    s(5, 1) = std::numeric_limits<double>::infinity();
                    std::vector<double> bs, bt;
                    std::vector<double> grad(60 * 4, 1.0);
                    double value = 0;
                    std::int64_t status = 0;
                    cka::rcka::rcka_loss(device::omp{}, view_of(s, bs), view_of(y, bt), device::row_major(grad.data(), 60, 4),
                                         device::loss_slot<double>{&value, &status});
                    const bool zero_gradient = std::all_of(grad.begin(), grad.end(), [](double g) { return g == 0.0; });
                    return std::isnan(value) && status == device::loss_not_finite && zero_gradient ? 1.0 : 0.0;
                  }, outcome::value, 1.0, 0.0});
  rows.push_back({"device sample_relation_loss, a constant student: skipped, zero gradient", [] {
                    const mat<double> s = mat<double>::Constant(60, 4, 2.0);
                    std::vector<double> bs, bt;
                    std::vector<double> grad(60 * 4, 1.0);
                    const auto r = cka::rcka::sample_relation_loss(device::omp{}, view_of(s, bs), view_of(y, bt),
                                                                   device::row_major(grad.data(), 60, 4));
                    const bool zero_gradient = std::all_of(grad.begin(), grad.end(), [](double g) { return g == 0.0; });
                    return r.value == 0.0 && r.skipped == 1 && zero_gradient ? 1.0 : 0.0;
                  }, outcome::value, 1.0, 0.0});
  // Issue 25, item 4: element offsets that fit in 64 bits but byte offsets that do not (2 rows of doubles,
  // row stride 2^61 + 1): the pointer arithmetic wrapped and read other memory.
  rows.push_back({"device linear_cka, a row stride whose byte offset overflows", [] {
                    const mat<double> a = x.topRows(2), b = y.topRows(2);
                    std::vector<double> ba, bb;
                    auto v = view_of(a, ba);
                    v.row_stride = (std::int64_t(1) << 61) + 1;
                    return cka::linear_cka(device::cpp{}, v, view_of(b, bb));
                  }, outcome::invalid_argument, 0, 0, {"cka::linear_cka", "beyond 64-bit byte offsets"}});
  // Issue 25, item 10: a gradient view that overlaps itself, the student or the teacher was written while
  // it was read, giving a wrong value and gradient; refused.
  struct grad_case {
    const char* name;
    int kind;  // 0: row stride 0; 1: rows that overlap; 2: the student itself; 3: the teacher's memory
    const char* message;
  };
  static const grad_case grad_cases[] = {
      {"device rcka_loss, a gradient with row stride 0", 0, "overlaps itself"},
      {"device rcka_loss, a gradient whose rows overlap", 1, "overlaps itself"},
      {"device rcka_loss, the gradient written over the student", 2, "shares memory with the student"},
      {"device rcka_loss, the gradient written over the teacher", 3, "shares memory with the teacher"},
  };
  for (const grad_case& c : grad_cases) {
    rows.push_back({c.name, [kind = c.kind] {
                      std::vector<double> bs, bt;
                      std::vector<double> grad(60 * 4);
                      const auto s = view_of(y, bs);
                      const auto t = view_of(mat<double>(y * 2.0 + mat<double>::Ones(60, 4)), bt);
                      device::matrix_view<double> g = device::row_major(grad.data(), 60, 4);
                      if (kind == 0) g.row_stride = 0;
                      if (kind == 1) g.row_stride = 2;
                      if (kind == 2) g.ptr = bs.data();
                      if (kind == 3) g.ptr = bt.data();
                      return cka::rcka::rcka_loss(device::omp{}, s, t, g).value;
                    }, outcome::invalid_argument, 0, 0, {"rcka_loss", c.message}});
  }
  // A B×0 gradient view (logits of no classes) has no two elements to overlap; it was refused as one that
  // "overlaps itself" (its row stride is 0), where the host gives the loss.
  rows.push_back({"device rcka_loss on 60x0 logits: the host's value, not an overlapping gradient", [] {
                    std::vector<double> bs(1), bt(1), grad(1);
                    const auto s = device::row_major(static_cast<const double*>(bs.data()), 60, 0);
                    const auto t = device::row_major(static_cast<const double*>(bt.data()), 60, 0);
                    const auto r = cka::rcka::rcka_loss(device::cpp{}, s, t, device::row_major(grad.data(), 60, 0));
                    const auto h = cka::rcka::rcka_loss(mat<double>(60, 0), mat<double>(60, 0));
                    return r.value == h.value && r.skipped == h.skipped ? 1.0 : 0.0;
                  }, outcome::value, 1.0, 0.0});
  rows.push_back({"device rcka_loss, a column-major gradient beside a row-major student: the host's value", [] {
                    std::vector<double> bs, bt;
                    std::vector<double> grad(60 * 4);
                    const mat<double> teacher = y * 2.0 + x.leftCols(4);
                    const double v = cka::rcka::rcka_loss(device::omp{}, view_of(y, bs), view_of(teacher, bt),
                                                          device::column_major(grad.data(), 60, 4)).value;
                    return test::rel_err(v, cka::rcka::rcka_loss(y, teacher).value);
                  }, outcome::value, 0.0, -1e-12});
  // The losses on the device summed the squares of unscaled Grams, as the host's separate losses did:
  // logits near 1e100 raised an overflow, near 1e-100 a term was skipped as if the student were constant.
  // Each row: the larger relative error of the value and of the gradient times the scale, against the
  // host at scale 1.
  const auto at_scale = [](int which, double a, const cka::rcka::relation_options& o) {
    const mat<double> student = y * a, teacher = y * 2.0 + x.leftCols(4);
    std::vector<double> bs, bt, grad(60 * 4);
    const auto g = device::row_major(grad.data(), 60, 4);
    const auto vs = view_of(student, bs), vt = view_of(teacher, bt);
    const auto got = which == 0   ? cka::rcka::sample_relation_loss(device::omp{}, vs, vt, g, o)
                     : which == 1 ? cka::rcka::class_relation_loss(device::cpp{}, vs, vt, g, o)
                                  : cka::rcka::rcka_loss(device::omp{}, vs, vt, g, {1.0, 2.0}, o);
    const auto host = which == 0   ? cka::rcka::sample_relation_loss(y, teacher, o)
                      : which == 1 ? cka::rcka::class_relation_loss(y, teacher, o)
                                   : cka::rcka::rcka_loss(y, teacher, {1.0, 2.0}, o);
    if (got.skipped != 0) return 1.0;
    const mat<double> unscaled = Eigen::Map<const Eigen::Matrix<double, 60, 4, Eigen::RowMajor>>(grad.data()) * a;
    return std::max(test::rel_err(got.value, host.value), (unscaled - host.grad).norm() / host.grad.norm());
  };
  cka::rcka::relation_options unbiased, normalized, uncentered;
  unbiased.est = estimator::unbiased;
  normalized.row_normalize = true;
  uncentered.centered = false;
  uncentered.row_normalize = true;
  rows.push_back({"device sample_relation_loss on logits*1e100", [=] { return at_scale(0, 1e100, {}); },
                  outcome::value, 0.0, -1e-12});
  rows.push_back({"device class_relation_loss row_normalize on logits*1e-100", [=] { return at_scale(1, 1e-100, normalized); },
                  outcome::value, 0.0, -1e-12});
  rows.push_back({"device rcka_loss unbiased on logits*1e-160", [=] { return at_scale(2, 1e-160, unbiased); },
                  outcome::value, 0.0, -1e-12});
  rows.push_back({"device sample_relation_loss uncentered on logits*1e160", [=] { return at_scale(0, 1e160, uncentered); },
                  outcome::value, 0.0, -1e-12});
  return rows;
}

}  // namespace

TEST_CASE("hostile input to the device backend: every row gets its documented outcome", "[hostile][device]") {
  hostile::check(device_table());
}
