// RCKA losses: finite-difference gradient checks (double and 50 digits), the official code's alignment,
// zero loss at the teacher, invariances, and bad input.
#include "support.hpp"

#include <cka/rcka.hpp>

#include <Eigen/QR>
#if CKA_TEST_HAVE_BOOST
#include <boost/multiprecision/cpp_bin_float.hpp>
#include <boost/multiprecision/eigen.hpp>
#endif
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <tuple>
#include <vector>

using cka::estimator;
using cka::rcka::relation_options;
using Catch::Matchers::Contains;

namespace {

// Every valid option combination (row_normalize with centered unbiased CKA is an error, tested below).
std::vector<relation_options> all_options() {
  std::vector<relation_options> v;
  for (bool centered : {true, false})
    for (bool row_normalize : {false, true})
      for (estimator est : {estimator::biased, estimator::unbiased}) {
        if (centered && row_normalize && est == estimator::unbiased) continue;
        if (!centered && est == estimator::unbiased) continue;  // est only matters when centered
        v.push_back({centered, row_normalize, est});
      }
  return v;
}

std::string describe(const relation_options& o) {
  return std::string(o.centered ? "centered" : "uncentered") + (o.row_normalize ? "+row_normalize" : "") +
         (o.est == estimator::unbiased ? "+unbiased" : "");
}

// Central finite differences of f at s, entry by entry.
template <class T, class F>
test::mat<T> numeric_gradient(F f, test::mat<T> s, const T& h) {
  test::mat<T> g(s.rows(), s.cols());
  for (Eigen::Index j = 0; j < s.cols(); ++j)
    for (Eigen::Index i = 0; i < s.rows(); ++i) {
      const T keep = s(i, j);
      s(i, j) = keep + h;
      const T up = f(s);
      s(i, j) = keep - h;
      const T down = f(s);
      s(i, j) = keep;
      g(i, j) = (up - down) / (T(2) * h);
    }
  return g;
}

template <class T>
double rel_norm(const test::mat<T>& a, const test::mat<T>& b) {
  return static_cast<double>(T((a - b).norm() / b.norm()));
}

}  // namespace

TEST_CASE("gradients of every loss match central differences", "[rcka][gradient]") {
  const auto s = test::normal<double>(7, 5, 1);
  const auto t = test::related<double>(s, 9, 2);        // a wider teacher
  const auto tc = test::related<double>(s, 5, 3);       // same classes, for the class relation
  const auto maps_s = test::normal<double>(2 * 3 * 9 * 7, 1, 4);  // B=2, C=3, H=9, W=7: padded 4x4 patches
  const auto maps_t = (maps_s + 0.7 * test::normal<double>(2 * 3 * 9 * 7, 1, 5)).eval();
  const cka::rcka::map_shape shape{2, 3, 9, 7};
  for (const relation_options& o : all_options()) {
    CAPTURE(describe(o));
    using L = std::function<double(const test::mat<double>&)>;
    const std::vector<std::tuple<const char*, L, test::mat<double>, test::mat<double>>> cases = {
        {"sample", [&](const test::mat<double>& x) { return cka::rcka::sample_relation_loss(x, t, o).value; },
         cka::rcka::sample_relation_loss(s, t, o).grad, s},
        {"class", [&](const test::mat<double>& x) { return cka::rcka::class_relation_loss(x, tc, o).value; },
         cka::rcka::class_relation_loss(s, tc, o).grad, s},
        {"feature", [&](const test::mat<double>& x) { return cka::rcka::feature_loss(x, t, o).value; },
         cka::rcka::feature_loss(s, t, o).grad, s},
        {"rcka", [&](const test::mat<double>& x) { return cka::rcka::rcka_loss(x, tc, {2.0, 0.5}, o).value; },
         cka::rcka::rcka_loss(s, tc, {2.0, 0.5}, o).grad, s},
        {"patch", [&](const test::mat<double>& x) { return cka::rcka::patch_loss(x, maps_t, shape, 4, 4, o).value; },
         cka::rcka::patch_loss(maps_s, maps_t, shape, 4, 4, o).grad, maps_s},
    };
    for (const auto& [name, f, analytic, at] : cases) {
      CAPTURE(name);
      REQUIRE(analytic.rows() == at.rows());
      REQUIRE(analytic.cols() == at.cols());
      CHECK(rel_norm(analytic, numeric_gradient<double>(f, at, 1e-6)) <= 1e-6);
    }
  }
}

TEST_CASE("the feature-space form (fewer features than rows) has the same values and exact gradients",
          "[rcka][gradient]") {
  // Sample relation of narrow logits (2 + 3 < 12 rows) and class relation with C = 11 > 2B = 6.
  const auto s = test::normal<double>(12, 2, 71), t = test::related<double>(s, 3, 72);
  const auto sc = test::normal<double>(3, 11, 73), tc = (sc + 0.4 * test::normal<double>(3, 11, 74)).eval();
  test::mat<double> s_flat_col = s;
  s_flat_col.col(1).setConstant(0.5);  // a constant column contributes nothing, exactly
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    const relation_options o{true, false, est};
    CAPTURE(est == estimator::unbiased);
    const auto r = cka::rcka::sample_relation_loss(s, t, o);
    CHECK(test::rel_err(r.value, 1.0 - cka::linear_cka(s, t, est)) < 1e-12);
    auto fs = [&](const test::mat<double>& x) { return cka::rcka::sample_relation_loss(x, t, o).value; };
    CHECK(rel_norm(r.grad, numeric_gradient<double>(fs, s, 1e-6)) <= 1e-6);
    const auto c = cka::rcka::class_relation_loss(sc, tc, o);
    CHECK(test::rel_err(c.value, 1.0 - cka::linear_cka(sc.transpose(), tc.transpose(), est)) < 1e-12);
    auto fc = [&](const test::mat<double>& x) { return cka::rcka::class_relation_loss(x, tc, o).value; };
    CHECK(rel_norm(c.grad, numeric_gradient<double>(fc, sc, 1e-6)) <= 1e-6);
    const auto rf = cka::rcka::sample_relation_loss(s_flat_col, t, o);
    auto ff = [&](const test::mat<double>& x) { return cka::rcka::sample_relation_loss(x, t, o).value; };
    CHECK(rel_norm(rf.grad, numeric_gradient<double>(ff, s_flat_col, 1e-6)) <= 1e-6);
    CHECK(std::abs(cka::rcka::sample_relation_loss(t, t, o).value) < 1e-14);
  }
  const test::mat<double> flat = test::mat<double>::Constant(12, 2, 0.3);
  cka::rcka::relation_options raise;
  raise.on_undefined = cka::rcka::undefined_policy::raise;
  CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(flat, t, raise), Contains("constant student"));
}

#if CKA_TEST_HAVE_BOOST
TEST_CASE("gradients in cpp_bin_float_50 match central differences tightly", "[rcka][gradient][precision]") {
  using mp = boost::multiprecision::cpp_bin_float_50;
  const test::mat<mp> s = test::normal<double>(6, 4, 11).cast<mp>();
  const test::mat<mp> t = test::related<double>(test::normal<double>(6, 4, 11), 4, 12).cast<mp>();
  const mp h("1e-17");  // ~ε^(1/3) for 50 digits: truncation and rounding both ~1e-33
  for (const relation_options& o : all_options()) {
    CAPTURE(describe(o));
    auto fs = [&](const test::mat<mp>& x) { return cka::rcka::sample_relation_loss(x, t, o).value; };
    auto fc = [&](const test::mat<mp>& x) { return cka::rcka::class_relation_loss(x, t, o).value; };
    CHECK(rel_norm(cka::rcka::sample_relation_loss(s, t, o).grad, numeric_gradient<mp>(fs, s, h)) < 1e-28);
    CHECK(rel_norm(cka::rcka::class_relation_loss(s, t, o).grad, numeric_gradient<mp>(fc, s, h)) < 1e-28);
  }
  // rcka_loss's joint form (default options), with more rows than columns (transposed) and fewer.
  for (const test::mat<mp>& x : {s, test::mat<mp>(s.transpose())}) {
    const test::mat<mp> y = x.rows() == t.rows() ? t : test::mat<mp>(t.transpose());
    auto fr = [&](const test::mat<mp>& v) { return cka::rcka::rcka_loss(v, y, {2.0, 0.5}).value; };
    CHECK(rel_norm(cka::rcka::rcka_loss(x, y, {2.0, 0.5}).grad, numeric_gradient<mp>(fr, x, h)) < 1e-28);
  }
}
#endif

TEST_CASE("the gradients' large products (the BLAS's in a build with one) agree with long double", "[rcka][products]") {
  // B = 96, C = 480: every gradient product is above the BLAS's threshold of 2^22 multiply-adds — the
  // sample relation's (96² × 480, from its Grams), the class relation's (480 × 96 × 192, feature space) and
  // rcka_loss's one product (96 × 195 × 480) — while long double always takes Eigen's.
  const auto s = test::normal<double>(96, 480, 81), t = (s + 0.6 * test::normal<double>(96, 480, 82)).eval();
  const test::mat<long double> sl = s.cast<long double>(), tl = t.cast<long double>();
  auto agree = [](const test::mat<double>& g, const test::mat<long double>& ref) {
    const test::mat<double> r = ref.cast<double>();
    REQUIRE(r.norm() > 0.0);
    return (g - r).norm() / r.norm();
  };
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CAPTURE(est == estimator::unbiased);
    const relation_options o{true, false, est};
    CHECK(agree(cka::rcka::sample_relation_loss(s, t, o).grad, cka::rcka::sample_relation_loss(sl, tl, o).grad) < 1e-12);
    CHECK(agree(cka::rcka::class_relation_loss(s, t, o).grad, cka::rcka::class_relation_loss(sl, tl, o).grad) < 1e-12);
    CHECK(agree(cka::rcka::rcka_loss(s, t, {1.5, 0.7}, o).grad, cka::rcka::rcka_loss(sl, tl, {1.5, 0.7}, o).grad) < 1e-12);
  }
  const relation_options scaled{true, true, estimator::biased};
  CHECK(agree(cka::rcka::sample_relation_loss(s, t, scaled).grad, cka::rcka::sample_relation_loss(sl, tl, scaled).grad) <
        1e-12);
}

TEST_CASE("products = input: float products within their bound of the double ones, double input unchanged",
          "[rcka][products][float]") {
  // The float products' rounding: the alignment within 4·√k·2⁻²⁴ (absolute; it lies in [−1, 1]) and the
  // gradient within 4·√k·2⁻²⁴/√loss of its norm, k the products' depth (rcka_options.hpp; measured at
  // k = 1000 the alignment moves by ≤ 3e-8 and the gradient by ≈ 5e-7/√loss). The reference is the exact
  // loss of the same float values in double. 96 × 480 takes the BLAS's products (above its threshold of
  // 2^22 multiply-adds), 24 × 60 Eigen's; 480 × 96 puts the class relation in its Gram route and the
  // sample relation in feature space. Inputs scaled by 2^±100 (float's range) take the same path.
  using fmat = test::mat<float>;
  for (auto [b, c, scale] : {std::tuple{96, 480, 1.0f}, std::tuple{24, 60, 1.0f}, std::tuple{480, 96, 1.0f},
                             std::tuple{96, 480, 0x1p100f}, std::tuple{24, 60, 0x1p-100f}}) {
    CAPTURE(b, c, scale);
    const fmat s = (test::normal<double>(b, c, 91).cast<float>() * scale).eval();
    const fmat t = ((test::normal<double>(b, c, 92) * 0.6 + test::normal<double>(b, c, 91)).cast<float>() * scale).eval();
    const test::mat<double> sd = s.cast<double>(), td = t.cast<double>();
    const double k = std::max(b, c), bound = 4.0 * std::sqrt(k) * 0x1p-24;
    using result = cka::rcka::loss_result<float>;
    using exact_result = cka::rcka::loss_result<double>;
    bool float_route = false;  // the large case, where the float products are taken (all but unbiased
                               // CKA in feature space, which keeps double products)
    auto check = [&](const char* name, const result& in, const result& ex, const exact_result& ref) {
      CAPTURE(name, ref.value);
      REQUIRE(ref.value > 0.0);
      CHECK(std::abs(double(in.value) - ref.value) <= bound);
      CHECK(rel_norm<double>(in.grad.cast<double>(), ref.grad) <= bound / std::sqrt(ref.value));
      CHECK(rel_norm<double>(ex.grad.cast<double>(), ref.grad) <= 1e-6);  // products = exact: float rounding only
      if (float_route) CHECK(in.grad != ex.grad);  // the float products were taken
    };
    for (relation_options o : all_options()) {
      CAPTURE(describe(o));
      relation_options fast = o;
      fast.products = cka::rcka::product_precision::input;
      const bool unbiased_features = o.centered && !o.row_normalize && o.est == estimator::unbiased;
      float_route = b * c >= 96 * 480 && !(unbiased_features && 2 * c < b);
      check("sample", cka::rcka::sample_relation_loss(s, t, fast), cka::rcka::sample_relation_loss(s, t, o),
            cka::rcka::sample_relation_loss(sd, td, o));
      float_route = b * c >= 96 * 480 && !(unbiased_features && 2 * b < c);
      check("class", cka::rcka::class_relation_loss(s, t, fast), cka::rcka::class_relation_loss(s, t, o),
            cka::rcka::class_relation_loss(sd, td, o));
      float_route = b * c >= 96 * 480 && !(unbiased_features && (2 * c < b || 2 * b < c));
      check("rcka", cka::rcka::rcka_loss(s, t, {1.5, 0.7}, fast), cka::rcka::rcka_loss(s, t, {1.5, 0.7}, o),
            cka::rcka::rcka_loss(sd, td, {1.5, 0.7}, o));
      // Double input computes in double whatever `products` says: the same bits.
      const auto d_fast = cka::rcka::rcka_loss(sd, td, {1.5, 0.7}, fast), d_exact = cka::rcka::rcka_loss(sd, td, {1.5, 0.7}, o);
      CHECK(d_fast.value == d_exact.value);
      CHECK(d_fast.grad == d_exact.grad);
    }
  }
  // PCKA: every channel's relation with float products.
  const cka::rcka::map_shape shape{3, 5, 20, 24};
  const fmat ps = test::normal<double>(3 * 5, 20 * 24, 93).cast<float>();
  const fmat pt = (ps.cast<double>() + test::normal<double>(3 * 5, 20 * 24, 94)).cast<float>();
  relation_options fast;
  fast.products = cka::rcka::product_precision::input;
  const auto in = cka::rcka::patch_loss(ps, pt, shape, 4, 6, fast);
  const auto ref = cka::rcka::patch_loss(test::mat<double>(ps.cast<double>()), test::mat<double>(pt.cast<double>()), shape, 4, 6);
  const double bound = 4.0 * std::sqrt(3.0 * 4 * 6) * 0x1p-24;
  CHECK(std::abs(double(in.value) - ref.value) <= bound);
  CHECK(rel_norm<double>(in.grad.cast<double>(), ref.grad) <= bound / std::sqrt(ref.value));
}

TEST_CASE("rcka_loss from one product equals its two relations, to the last digits", "[rcka][joint]") {
  // The reference: the two relation losses computed separately in 50 digits (long double without Boost).
#if CKA_TEST_HAVE_BOOST
  using ref = boost::multiprecision::cpp_bin_float_50;
#else
  using ref = long double;
#endif
  const cka::rcka::rcka_weights w{1.5, 0.7};
  // Relative errors of rcka_loss and of the two losses in double, against the reference.
  struct errors {
    double value, grad, separate_grad;
  };
  auto measure = [&](const test::mat<double>& s, const test::mat<double>& t) {
    const test::mat<ref> sr = s.cast<ref>(), tr = t.cast<ref>();
    const auto a = cka::rcka::sample_relation_loss(sr, tr), b = cka::rcka::class_relation_loss(sr, tr);
    const double expected = static_cast<double>(ref(ref(1.5) * a.value + ref(0.7) * b.value));
    const test::mat<ref> gr = ref(1.5) * a.grad + ref(0.7) * b.grad;
    test::mat<double> grad(gr.rows(), gr.cols());
    for (Eigen::Index i = 0; i < grad.size(); ++i) grad.data()[i] = static_cast<double>(gr.data()[i]);
    const auto r = cka::rcka::rcka_loss(s, t, w);
    CHECK(r.skipped == a.skipped + b.skipped);
    const test::mat<double> separate =
        1.5 * cka::rcka::sample_relation_loss(s, t).grad + 0.7 * cka::rcka::class_relation_loss(s, t).grad;
    const double norm = grad.norm();
    if (norm == 0.0) CHECK(r.grad.norm() == 0.0);
    return errors{expected == 0.0 ? std::abs(r.value) : test::rel_err(r.value, expected),
                  norm == 0.0 ? 0.0 : (r.grad - grad).norm() / norm, norm == 0.0 ? 0.0 : (separate - grad).norm() / norm};
  };
  auto check_joint = [&](const test::mat<double>& s, const test::mat<double>& t, const char* what) {
    CAPTURE(what, s.rows(), s.cols());
    const errors e = measure(s, t);
    CHECK(e.value < 1e-13);
    CHECK(e.grad < 1e-13);
    // A row-major view and a strided column slice: the same bits as the plain matrix.
    const auto r = cka::rcka::rcka_loss(s, t, w);
    const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> sr = s, tr = t;
    const auto rr = cka::rcka::rcka_loss(sr, tr, w);
    CHECK(rr.value == r.value);
    CHECK(rr.grad == r.grad);
    test::mat<double> wide = test::mat<double>::Zero(s.rows(), 2 * s.cols());
    for (Eigen::Index j = 0; j < s.cols(); ++j) wide.col(2 * j) = s.col(j);
    const Eigen::Map<const test::mat<double>, 0, Eigen::OuterStride<>> slice(wide.data(), s.rows(), s.cols(),
                                                                           Eigen::OuterStride<>(2 * s.rows()));
    const auto rs = cka::rcka::rcka_loss(slice, t, w);
    CHECK(rs.value == r.value);
    CHECK(rs.grad == r.grad);
  };
  for (const auto& [b, c] : {std::pair<int, int>{20, 50}, {50, 20}, {7, 7}, {2, 9}, {9, 2}, {48, 120}}) {
    check_joint(test::normal<double>(b, c, 81), test::normal<double>(b, c, 82), "random");
    const auto s = test::normal<double>(b, c, 83);
    check_joint(s, (s + 0.3 * test::normal<double>(b, c, 84)).eval(), "related");
  }
  // Constants give exactly vanishing relations, skipped and counted as by the separate losses.
  const auto s = test::normal<double>(30, 40, 85), t = test::normal<double>(30, 40, 86);
  const auto by_class = test::normal<double>(1, 40, 87), by_sample = test::normal<double>(30, 1, 88);
  check_joint((by_sample * test::mat<double>::Ones(1, 40)).eval(), t, "every row one value");
  check_joint((test::mat<double>::Ones(30, 1) * by_class).eval(), t, "every row the same");
  check_joint(s, (test::mat<double>::Ones(30, 1) * by_class).eval(), "teacher rows the same");
  check_joint(test::mat<double>::Constant(30, 40, 3.0), t, "a constant");
#if CKA_TEST_HAVE_BOOST
  // Offsets far above the spread, shared, per class, per sample and both: the value stays exact, and the
  // gradient is within twice the separate losses' error (they lose up to 1e-8 at 1e8, mostly in the sample
  // term, which is exact here; the class term's gradient is itself conditioned by offset / spread, and
  // both routes carry that error, ~1e-12 at 1e4).
  for (const double offset : {1e4, 1e8}) {
    CAPTURE(offset);
    const std::vector<std::pair<test::mat<double>, test::mat<double>>> cases = {
        {(s.array() + offset).matrix(), (t.rowwise() + offset * by_class.row(0)).eval()},
        {(s.colwise() + offset * by_sample.col(0)).eval(), (t.array() - offset).matrix()},
        {((s.colwise() + offset * by_sample.col(0)).rowwise() + 0.01 * offset * by_class.row(0)).eval(),
         (t.rowwise() + offset * by_class.row(0)).eval()}};
    for (const auto& [so, to] : cases) {
      const errors e = measure(so, to);
      CHECK(e.value < 1e-13);
      CAPTURE(e.grad * 1e16, e.separate_grad * 1e16);
      CHECK(e.grad <= std::max(1e-13, 2 * e.separate_grad));
    }
  }
#endif
  // Float logits follow the double computation to float rounding.
  const test::mat<float> sf = s.cast<float>(), tf = t.cast<float>();
  const auto rf = cka::rcka::rcka_loss(sf, tf);
  const auto rd = cka::rcka::rcka_loss(sf.cast<double>().eval(), tf.cast<double>().eval());
  CHECK(test::rel_err(rf.value, rd.value) < 1e-6);
  CHECK(rel_norm<double>(rf.grad.cast<double>(), rd.grad) < 1e-6);
  // A term under the raise policy: the message names the term, as the separate losses do.
  cka::rcka::relation_options raise;
  raise.on_undefined = cka::rcka::undefined_policy::raise;
  CHECK_THROWS_WITH(cka::rcka::rcka_loss(test::mat<double>::Constant(30, 40, 3.0), t, {}, raise),
                    Contains("rcka::sample_relation_loss") && Contains("constant student"));
  CHECK_THROWS_WITH(cka::rcka::rcka_loss((by_sample * test::mat<double>::Ones(1, 40)).eval(), t, {}, raise),
                    Contains("rcka::class_relation_loss") && Contains("constant student"));
}

TEST_CASE("centered losses are invariant to orthogonal maps, scaling and translation", "[rcka][identity]") {
  const auto s = test::normal<double>(9, 5, 41);
  const auto t = test::related<double>(s, 7, 42);
  const test::mat<double> q = Eigen::HouseholderQR<test::mat<double>>(test::normal<double>(5, 5, 43)).householderQ();
  const test::mat<double> moved = ((3.0 * s * q).rowwise() + test::normal<double>(1, 5, 44).row(0)).eval();
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    const relation_options o{true, false, est};
    CHECK(test::rel_err(cka::rcka::sample_relation_loss(moved, t, o).value, cka::rcka::sample_relation_loss(s, t, o).value) <
          1e-12);
  }
  // Student and teacher of different widths, in float: value and gradient follow double.
  const test::mat<float> sf = s.cast<float>(), tf = t.cast<float>();
  const auto rf = cka::rcka::sample_relation_loss(sf, tf);
  const auto rd = cka::rcka::sample_relation_loss(sf.cast<double>().eval(), tf.cast<double>().eval());
  CHECK(test::rel_err(rf.value, rd.value) < 1e-6);
  CHECK(rel_norm<double>(rf.grad.cast<double>(), rd.grad) < 1e-6);
}

TEST_CASE("RCKA bad input", "[rcka][errors]") {
  const auto s = test::normal<double>(8, 5, 51), t = test::normal<double>(8, 5, 52);
  const auto t7 = test::normal<double>(7, 5, 53), t6c = test::normal<double>(8, 6, 54);
  CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(s, t7), Contains("rcka::sample_relation_loss") && Contains("7"));
  CHECK_THROWS_WITH(cka::rcka::class_relation_loss(s, t6c), Contains("5 classes") && Contains("6"));
  cka::rcka::relation_options raise;
  raise.on_undefined = cka::rcka::undefined_policy::raise;
  cka::rcka::relation_options raise_unbiased = raise;
  raise_unbiased.est = estimator::unbiased;
  CHECK_THROWS_AS(cka::rcka::sample_relation_loss(s.topRows(1), t.topRows(1), raise), std::invalid_argument);
  CHECK_THROWS_AS(cka::rcka::sample_relation_loss(s.topRows(3), t.topRows(3), raise_unbiased), std::invalid_argument);
  CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(s, t, {true, true, estimator::unbiased}),
                    Contains("row_normalize"));
  test::mat<double> bad = s;
  bad(2, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(cka::rcka::feature_loss(bad, t), Contains("student(2, 2)"));
  CHECK_THROWS_AS(cka::rcka::rcka_loss(s, bad), std::invalid_argument);
  // Undefined alignments: a constant student, a zero row under row_normalize.
  const test::mat<double> flat = test::mat<double>::Constant(8, 5, 0.3);
  CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(flat, t, raise), Contains("constant student"));
  CHECK_THROWS_AS(cka::rcka::class_relation_loss(t, flat, raise), std::domain_error);
  test::mat<double> zero_row = s;
  zero_row.row(4).setZero();
  cka::rcka::relation_options raise_official = raise;
  raise_official.centered = false;
  raise_official.row_normalize = true;
  CHECK_THROWS_WITH(cka::rcka::sample_relation_loss(zero_row, t, raise_official), Contains("row 4"));
  // Patch grids.
  const auto maps = test::normal<double>(2 * 3 * 8 * 8, 1, 55);
  CHECK_THROWS_WITH(cka::rcka::patch_loss(maps, maps, {2, 3, 8, 8}, 16, 16), Contains("at least 2"));
  CHECK_THROWS_WITH(cka::rcka::patch_loss(maps, maps, {2, 3, 8, 9}, 4, 4), Contains("needs 432"));
  CHECK_THROWS_AS(cka::rcka::patch_loss(maps, maps, {2, 3, 8, 8}, 0, 4), std::invalid_argument);
}

TEST_CASE("patch_loss pads, reads row-major maps, and averages channels", "[rcka][patch]") {
  // A row-major B×(C·H·W) matrix holds the same NCHW values as the vector: same loss, same gradient.
  const auto vs = test::normal<double>(2 * 2 * 6 * 6, 1, 61);
  const auto vt = (vs + 0.5 * test::normal<double>(2 * 2 * 6 * 6, 1, 62)).eval();
  const Eigen::Map<const Eigen::Matrix<double, 2, 72, Eigen::RowMajor>> ms(vs.data()), mt(vt.data());
  const cka::rcka::map_shape shape{2, 2, 6, 6};
  const auto a = cka::rcka::patch_loss(vs, vt, shape, 3, 3);
  const auto b = cka::rcka::patch_loss(ms, mt, shape, 3, 3);
  CHECK(test::rel_err(b.value, a.value) < 1e-15);
  for (Eigen::Index i = 0; i < 144; ++i) CHECK(b.grad(i / 72, i % 72) == a.grad(i, 0));
  // Storage lines that are not whole map rows (a map row of 6 runs across lines of 16), the student and the
  // teacher in different shapes: the values are still read, and the gradient written, in storage order.
  const Eigen::Map<const Eigen::Matrix<double, 9, 16, Eigen::RowMajor>> rs(vs.data());
  const Eigen::Map<const Eigen::Matrix<double, 16, 9>> ct(vt.data());
  const auto c = cka::rcka::patch_loss(rs, ct, shape, 3, 3);
  CHECK(test::rel_err(c.value, a.value) < 1e-15);
  for (Eigen::Index i = 0; i < 144; ++i) CHECK(c.grad(i / 16, i % 16) == a.grad(i, 0));
  // With 2x2 patches on 6x6 maps per channel, the loss is the mean of two per-channel sample losses on
  // explicitly gathered patch matrices.
  double expected = 0;
  for (int c = 0; c < 2; ++c) {
    test::mat<double> ps(9, 2 * 4), pt(9, 2 * 4);
    for (int b2 = 0; b2 < 2; ++b2)
      for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 6; ++x) {
          const int i = ((b2 * 2 + c) * 6 + y) * 6 + x;
          ps((y / 2) * 3 + x / 2, b2 * 4 + (y % 2) * 2 + x % 2) = vs(i);
          pt((y / 2) * 3 + x / 2, b2 * 4 + (y % 2) * 2 + x % 2) = vt(i);
        }
    expected += cka::rcka::sample_relation_loss(ps, pt).value / 2;
  }
  CHECK(test::rel_err(cka::rcka::patch_loss(vs, vt, shape, 2, 2).value, expected) < 1e-13);
}

TEST_CASE("patch_loss deals its channels to threads: the same bits on any number, the first bad channel named",
          "[rcka][patch][threads]") {
  const int threads = Eigen::nbThreads();
  const Eigen::Index nb = 3, nc = 40, nh = 8, nw = 8, hw = nh * nw;
  const auto vs = test::normal<double>(nb * nc * hw, 1, 91);
  const test::mat<double> vt = vs + 0.5 * test::normal<double>(nb * nc * hw, 1, 92);
  const test::mat<float> fs = vs.cast<float>(), ft = vt.cast<float>();
  // Channel 5's teacher and channel 9's student constant: raised as channel 5's, whoever computes it first.
  test::mat<double> bad_s = vs, bad_t = vt;
  for (Eigen::Index b = 0; b < nb; ++b) {
    bad_t.middleRows((b * nc + 5) * hw, hw).setConstant(2.0);
    bad_s.middleRows((b * nc + 9) * hw, hw).setConstant(-1.0);
  }
  cka::rcka::relation_options raise;
  raise.on_undefined = cka::rcka::undefined_policy::raise;
  std::vector<cka::rcka::loss_result<double>> doubles;
  std::vector<cka::rcka::loss_result<float>> floats;
  for (int t : {1, 2, 3}) {
    CAPTURE(t);
    Eigen::setNbThreads(t);
    doubles.push_back(cka::rcka::patch_loss(vs, vt, {nb, nc, nh, nw}, 3, 3));
    floats.push_back(cka::rcka::patch_loss(fs, ft, {nb, nc, nh, nw}, 4, 4));
    CHECK_THROWS_WITH(cka::rcka::patch_loss(bad_s, bad_t, {nb, nc, nh, nw}, 2, 2, raise),
                      Contains("rcka::patch_loss, channel 5:") && Contains("constant teacher"));
    const auto skipped = cka::rcka::patch_loss(bad_s, bad_t, {nb, nc, nh, nw}, 2, 2);  // no padding: constant
    CHECK(skipped.skipped == 2);
  }
  Eigen::setNbThreads(threads);
  CHECK(doubles[0].value > 0.01);
  for (std::size_t k = 1; k < doubles.size(); ++k) {
    CAPTURE(k);
    CHECK(doubles[k].value == doubles[0].value);
    CHECK(doubles[k].grad == doubles[0].grad);
    CHECK(floats[k].value == floats[0].value);
    CHECK(floats[k].grad == floats[0].grad);
  }
}

TEST_CASE("losses skip undefined terms by default: value 0, zero gradient, counted", "[rcka][undefined]") {
  const auto s = test::normal<double>(8, 5, 71), t = test::normal<double>(8, 5, 72);
  const test::mat<double> zero = test::mat<double>::Zero(8, 5);
  auto check_skipped = [](const cka::rcka::loss_result<double>& r, Eigen::Index rows, Eigen::Index cols) {
    CHECK(r.skipped == 1);
    CHECK(r.value == 0.0);
    CHECK(r.grad.rows() == rows);
    CHECK(r.grad.cols() == cols);
    CHECK(r.grad.cwiseAbs().maxCoeff() == 0.0);
  };
  // A zero-initialised student, a constant teacher, a last batch of 1, a batch of 3 under the unbiased estimator.
  check_skipped(cka::rcka::sample_relation_loss(zero, t), 8, 5);
  check_skipped(cka::rcka::sample_relation_loss(s, zero), 8, 5);
  check_skipped(cka::rcka::feature_loss(s.topRows(1), t.topRows(1)), 1, 5);
  cka::rcka::relation_options unbiased;
  unbiased.est = estimator::unbiased;
  check_skipped(cka::rcka::sample_relation_loss(s.topRows(3), t.topRows(3), unbiased), 3, 5);
  cka::rcka::relation_options official;
  official.centered = false;
  official.row_normalize = true;
  test::mat<double> zero_row = s;
  zero_row.row(4).setZero();
  check_skipped(cka::rcka::sample_relation_loss(zero_row, t, official), 8, 5);
  // Both RCKA terms of zero logits are undefined.
  const auto both = cka::rcka::rcka_loss(zero, t);
  CHECK(both.skipped == 2);
  CHECK(both.value == 0.0);
  // A defined term is not counted; a batch of 2 is aligned by construction: loss 0, zero gradient.
  CHECK(cka::rcka::sample_relation_loss(s, t).skipped == 0);
  const auto two = cka::rcka::sample_relation_loss(s.topRows(2), t.topRows(2));
  CHECK(two.skipped == 0);
  CHECK(std::abs(two.value) < 1e-15);
  CHECK(two.grad.cwiseAbs().maxCoeff() < 1e-14 * s.topRows(2).cwiseAbs().maxCoeff());
}

TEST_CASE("patch_loss leaves dead channels out of the mean", "[rcka][undefined][patch]") {
  // Three channels, the teacher's channel 1 dead (all zero, as after a ReLU): the loss and gradient equal
  // those of the two live channels alone, and the student's channel 1 gets no gradient.
  const Eigen::Index nb = 2, nh = 6, nw = 6, hw = nh * nw;
  const auto vs = test::normal<double>(nb * 3 * hw, 1, 81);
  test::mat<double> vt = vs + 0.5 * test::normal<double>(nb * 3 * hw, 1, 82);
  for (Eigen::Index b = 0; b < nb; ++b) vt.middleRows((b * 3 + 1) * hw, hw).setZero();
  test::mat<double> ls(nb * 2 * hw, 1), lt(nb * 2 * hw, 1);  // channels 0 and 2 only
  for (Eigen::Index b = 0; b < nb; ++b)
    for (Eigen::Index c = 0; c < 2; ++c) {
      ls.middleRows((b * 2 + c) * hw, hw) = vs.middleRows((b * 3 + 2 * c) * hw, hw);
      lt.middleRows((b * 2 + c) * hw, hw) = vt.middleRows((b * 3 + 2 * c) * hw, hw);
    }
  // The gradient is not cleared before the channels write it, so the dead channel's zeros are written: a
  // freed block of NaN of the gradient's size (which the allocator tends to hand out next) must not show.
  test::mat<double>(vs.rows(), 1).setConstant(std::numeric_limits<double>::quiet_NaN());
  const auto all = cka::rcka::patch_loss(vs, vt, {nb, 3, nh, nw}, 3, 3);
  const auto live = cka::rcka::patch_loss(ls, lt, {nb, 2, nh, nw}, 3, 3);
  CHECK(all.skipped == 1);
  CHECK(live.skipped == 0);
  CHECK(test::rel_err(all.value, live.value) < 1e-14);
  for (Eigen::Index b = 0; b < nb; ++b) {
    CHECK(all.grad.middleRows((b * 3 + 1) * hw, hw).cwiseAbs().maxCoeff() == 0.0);
    for (Eigen::Index c = 0; c < 2; ++c) {
      CHECK(rel_norm<double>(all.grad.middleRows((b * 3 + 2 * c) * hw, hw), live.grad.middleRows((b * 2 + c) * hw, hw)) <
            1e-14);
    }
  }
  cka::rcka::relation_options raise;
  raise.on_undefined = cka::rcka::undefined_policy::raise;
  CHECK_THROWS_AS(cka::rcka::patch_loss(vs, vt, {nb, 3, nh, nw}, 3, 3, raise), std::domain_error);
  // Every channel dead: value 0, zero gradient, all counted.
  const auto none = cka::rcka::patch_loss(vs, test::mat<double>::Zero(vs.rows(), 1).eval(), {nb, 3, nh, nw}, 3, 3);
  CHECK(none.skipped == 3);
  CHECK(none.value == 0.0);
  CHECK(none.grad.cwiseAbs().maxCoeff() == 0.0);
  // A patch far larger than the map is one patch of the map (and the grid then needs 2).
  CHECK_THROWS_WITH(cka::rcka::patch_loss(vs, vt, {nb, 3, nh, nw}, Eigen::Index(1) << 40, Eigen::Index(1) << 40),
                    Contains("at least 2"));
  const auto wide = cka::rcka::patch_loss(vs, vt, {nb, 3, nh, nw}, 2, Eigen::Index(1) << 40);
  const auto exact = cka::rcka::patch_loss(vs, vt, {nb, 3, nh, nw}, 2, nw);
  CHECK(exact.value > 0.01);
  CHECK(test::rel_err(wide.value, exact.value) < 1e-14);
}

TEST_CASE("the forms with a gradient argument write the same bits into any layout and nothing else", "[rcka][into]") {
  using rmat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using strided = Eigen::Map<rmat, 0, Eigen::OuterStride<>>;
  const cka::rcka::rcka_weights w{1.5, -0.7};
  // Loss k of the four on (s, t): its form with a gradient argument, and the form that allocates.
  auto into = [&](int k, const test::mat<double>& s, const test::mat<double>& t, const relation_options& o, auto& g) {
    switch (k) {
      case 0: return cka::rcka::sample_relation_loss(s, t, g, o);
      case 1: return cka::rcka::class_relation_loss(s, t, g, o);
      case 2: return cka::rcka::feature_loss(s, t, g, o);
      default: return cka::rcka::rcka_loss(s, t, g, w, o);
    }
  };
  auto allocated = [&](int k, const test::mat<double>& s, const test::mat<double>& t, const relation_options& o) {
    switch (k) {
      case 0: return cka::rcka::sample_relation_loss(s, t, o);
      case 1: return cka::rcka::class_relation_loss(s, t, o);
      case 2: return cka::rcka::feature_loss(s, t, o);
      default: return cka::rcka::rcka_loss(s, t, w, o);
    }
  };
  const double sentinel = -12345.0;
  for (const auto& [b, c] : {std::pair<int, int>{20, 50}, {50, 20}, {2, 9}, {6, 6}}) {
    const test::mat<double> s = test::normal<double>(b, c, 91), t = test::normal<double>(b, c, 92);
    const test::mat<double> constant = test::mat<double>::Constant(b, c, 2.0);
    for (const relation_options& o : all_options()) {
      for (int k = 0; k < 4; ++k) {
        for (const test::mat<double>* student : {&s, &constant}) {
          CAPTURE(b, c, describe(o), k, student == &constant);
          const auto r = allocated(k, *student, t, o);
          // A column-major matrix, a row-major one, and a row-major view with a gap after each row.
          test::mat<double> g1(b, c);
          rmat g2(b, c);
          std::vector<double> buffer(std::size_t(b) * std::size_t(c + 3), sentinel);
          strided g3(buffer.data(), b, c, Eigen::OuterStride<>(c + 3));
          const auto v1 = into(k, *student, t, o, g1);
          const auto v2 = into(k, *student, t, o, g2);
          const auto v3 = into(k, *student, t, o, g3);
          CHECK(v1.value == r.value);
          CHECK(v2.value == r.value);
          CHECK(v3.value == r.value);
          CHECK(v1.skipped == r.skipped);
          CHECK(v3.skipped == r.skipped);
          CHECK(g1 == r.grad);
          CHECK(rmat(g2) == rmat(r.grad));
          CHECK(rmat(g3) == rmat(r.grad));
          bool gaps_kept = true;
          for (Eigen::Index i = 0; i < b; ++i)
            for (int j = c; j < c + 3; ++j) gaps_kept = gaps_kept && buffer[std::size_t(i * (c + 3) + j)] == sentinel;
          CHECK(gaps_kept);
        }
      }
    }
  }
  // Float logits into a float row-major block, float products included.
  const test::mat<float> sf = test::normal<double>(30, 12, 93).cast<float>(), tf = test::normal<double>(30, 12, 94).cast<float>();
  relation_options fp;
  fp.products = cka::rcka::product_precision::input;
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> big(40, 20);
  big.setConstant(7.0f);
  const auto rf = cka::rcka::rcka_loss(sf, tf, w, fp);
  const auto vf = cka::rcka::rcka_loss(sf, tf, big.block(5, 3, 30, 12), w, fp);
  CHECK(vf.value == rf.value);
  CHECK(test::mat<float>(big.block(5, 3, 30, 12)) == rf.grad);
  CHECK(big.topRows(5).cwiseEqual(7.0f).all());
  CHECK(big.rightCols(5).cwiseEqual(7.0f).all());
  // A gradient of another shape, in the student's memory or the teacher's, or overlapping itself.
  test::mat<double> s = test::normal<double>(8, 5, 95), t = test::normal<double>(8, 5, 96), g(5, 8);
  CHECK_THROWS_MATCHES(cka::rcka::sample_relation_loss(s, t, g), std::invalid_argument,
                       Catch::Matchers::Message("cka::rcka::sample_relation_loss: grad is 5x8 but student is 8x5; "
                                                "the gradient has the student's shape"));
  CHECK_THROWS_WITH(cka::rcka::rcka_loss(s, t, s), Contains("rcka::rcka_loss") && Contains("shares memory with the student"));
  CHECK_THROWS_WITH(cka::rcka::class_relation_loss(s, t, g.leftCols(1)), Contains("grad is 5x1 but student is 8x5"));
  CHECK_THROWS_WITH(cka::rcka::feature_loss(s, t, t), Contains("shares memory with the teacher"));
  Eigen::Map<test::mat<double>, 0, Eigen::OuterStride<>> folded(g.data(), 8, 5, Eigen::OuterStride<>(2));
  CHECK_THROWS_WITH(cka::rcka::rcka_loss(s, t, folded), Contains("overlaps itself"));
}

TEST_CASE("patch_loss's form with a gradient argument writes the same bits into any layout and nothing else",
          "[rcka][into][patch]") {
  using rmat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using strided = Eigen::Map<rmat, 0, Eigen::OuterStride<>>;
  const cka::rcka::map_shape shape{3, 4, 6, 5};  // 5 is not a multiple of the patch width: padding
  const Eigen::Index size = 3 * 4 * 6 * 5, b = 3, cols = size / 3;
  const test::mat<double> vs = test::normal<double>(size, 1, 71), vt = test::normal<double>(size, 1, 72);
  // The maps as a vector and as a row-major B×(C·H·W) matrix; one channel dead in the student (skipped).
  test::mat<double> dead = vs;
  for (Eigen::Index i = 0; i < b; ++i) dead.middleRows((i * 4 + 2) * 30, 30).setZero();
  const double sentinel = -12345.0;
  for (const relation_options& o : all_options()) {
    for (const test::mat<double>* student : {&vs, static_cast<const test::mat<double>*>(&dead)}) {
      CAPTURE(describe(o), student == &dead);
      const auto r = cka::rcka::patch_loss(*student, vt, shape, 2, 2, o);
      test::mat<double> g1(size, 1);
      const auto v1 = cka::rcka::patch_loss(*student, vt, g1, shape, 2, 2, o);
      CHECK(v1.value == r.value);
      CHECK(v1.skipped == r.skipped);
      CHECK(r.skipped == (student == &dead ? 1 : 0));
      CHECK(g1 == r.grad);
      // Row-major maps, their gradient into a column-major matrix and into a row-major view with gaps.
      const Eigen::Map<const rmat> ms(student->data(), b, cols), mt(vt.data(), b, cols);
      test::mat<double> g2(b, cols);
      std::vector<double> buffer(std::size_t(b * (cols + 3)), sentinel);
      strided g3(buffer.data(), b, cols, Eigen::OuterStride<>(cols + 3));
      const auto v2 = cka::rcka::patch_loss(ms, mt, g2, shape, 2, 2, o);
      const auto v3 = cka::rcka::patch_loss(ms, mt, g3, shape, 2, 2, o);
      CHECK(v2.value == r.value);
      CHECK(v3.value == r.value);
      CHECK(v3.skipped == r.skipped);
      bool same = true, gaps_kept = true;
      for (Eigen::Index i = 0; i < size; ++i) {
        same = same && g2(i / cols, i % cols) == r.grad(i, 0) && g3(i / cols, i % cols) == r.grad(i, 0);
      }
      for (Eigen::Index i = 0; i < b; ++i)
        for (Eigen::Index j = cols; j < cols + 3; ++j) gaps_kept = gaps_kept && buffer[std::size_t(i * (cols + 3) + j)] == sentinel;
      CHECK(same);
      CHECK(gaps_kept);
    }
  }
  // Float maps into a float block, float products included; the rest of the matrix untouched.
  const test::mat<float> fs = vs.cast<float>(), ft = vt.cast<float>();
  relation_options fp;
  fp.products = cka::rcka::product_precision::input;
  test::mat<float> big(size + 4, 3);
  big.setConstant(7.0f);
  const auto rf = cka::rcka::patch_loss(fs, ft, shape, 3, 3, fp);
  const auto vf = cka::rcka::patch_loss(fs, ft, big.block(2, 1, size, 1), shape, 3, 3, fp);
  CHECK(vf.value == rf.value);
  CHECK(test::mat<float>(big.block(2, 1, size, 1)) == rf.grad);
  CHECK(big.col(0).cwiseEqual(7.0f).all());
  CHECK(big.col(2).cwiseEqual(7.0f).all());
  CHECK(big.topRows(2).cwiseEqual(7.0f).all());
  // A gradient of another shape, or in an input's memory.
  test::mat<double> wrong(b, cols), s = vs;
  CHECK_THROWS_MATCHES(cka::rcka::patch_loss(vs, vt, wrong, shape, 2, 2), std::invalid_argument,
                       Catch::Matchers::Message("cka::rcka::patch_loss: grad is 3x120 but student is 360x1; "
                                                "the gradient has the student's shape"));
  CHECK_THROWS_WITH(cka::rcka::patch_loss(s, vt, s, shape, 2, 2), Contains("shares memory with the student"));
}
