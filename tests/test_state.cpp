// Accumulation states: linear_state and layers_state against the in-memory estimators for any chunking,
// any merge tree and flat-array sums; save/load; large offsets; bad input. (The 50-digit state test is in
// test_precision.cpp, with the other Boost tests.)
#include "oracle.hpp"
#include "support.hpp"

#include <cka/cka.hpp>
#include <cka/similarity_matrix.hpp>
#include <cka/state.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

using cka::estimator;
using Catch::Matchers::Contains;

namespace {

/// Random cut points 0 = c0 < c1 < … < ck = n (pieces of 1 row included).
std::vector<Eigen::Index> random_cuts(Eigen::Index n, int pieces, std::mt19937& rng) {
  std::vector<Eigen::Index> cuts = {0, n};
  std::uniform_int_distribution<Eigen::Index> pick(1, n - 1);
  for (int i = 1; i < pieces && n > 1; ++i) cuts.push_back(pick(rng));
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  return cuts;
}

const std::tuple<int, int, int> shapes[] = {{40, 3, 5}, {200, 12, 7}, {30, 25, 40}, {9, 2, 2}};

}  // namespace

TEST_CASE("linear_state over any chunking equals linear_cka and hsic", "[state]") {
  std::mt19937 rng(7);
  for (auto [n, d1, d2] : shapes) {
    const auto x = test::normal<double>(n, d1, 100 + n);
    const auto y = test::related<double>(x, d2, 200 + n);
    for (int pieces : {1, 2, 5, 17}) {
      const auto cuts = random_cuts(n, pieces, rng);
      cka::linear_state s(d1, d2);
      for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
        s.add(x.middleRows(cuts[i], cuts[i + 1] - cuts[i]), y.middleRows(cuts[i], cuts[i + 1] - cuts[i]));
      }
      REQUIRE(s.samples() == n);
      for (estimator est : {estimator::biased, estimator::unbiased}) {
        CAPTURE(n, d1, d2, pieces, est == estimator::unbiased);
        CHECK(test::rel_err(s.cka(est), cka::linear_cka(x, y, est)) < 1e-12);
        const test::mat<double> k = x * x.transpose(), l = y * y.transpose();
        CHECK(test::rel_err(s.hsic(est), cka::hsic(k, l, est)) < 1e-12);
      }
    }
  }
}

TEST_CASE("linear_state merge trees and flat-array sums", "[state][merge]") {
  std::mt19937 rng(11);
  const Eigen::Index n = 300, d1 = 9, d2 = 6;
  // A common offset of 1000 makes the shift matter: the parts' shifts differ and are moved exactly.
  const test::mat<double> x = (test::normal<double>(n, d1, 1).array() + 1000.0).matrix();
  const test::mat<double> y = (test::related<double>(x, d2, 2).array() - 500.0).matrix();
  const auto cuts = random_cuts(n, 8, rng);
  const std::size_t parts = cuts.size() - 1;
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    const double expected = cka::linear_cka(x, y, est);
    for (int tree = 0; tree < 5; ++tree) {
      // Each part gets its own state (and so its own first-chunk shift); merge them in a random order,
      // pairing random survivors, until one is left.
      std::vector<cka::linear_state> states;
      for (std::size_t i = 0; i < parts; ++i) {
        states.emplace_back(d1, d2);
        states.back().add(x.middleRows(cuts[i], cuts[i + 1] - cuts[i]), y.middleRows(cuts[i], cuts[i + 1] - cuts[i]));
      }
      while (states.size() > 1) {
        std::uniform_int_distribution<std::size_t> pick(0, states.size() - 1);
        const std::size_t a = pick(rng);
        std::size_t b = pick(rng);
        if (a == b) b = (a + 1) % states.size();
        states[a].merge(states[b]);
        states.erase(states.begin() + std::ptrdiff_t(b));
      }
      CAPTURE(tree, est == estimator::unbiased);
      CHECK(states[0].samples() == n);
      CHECK(test::rel_err(states[0].cka(est), expected) < 1e-12);
    }
    // Flat arrays: every part is made with rank 0's shift; the elementwise sum of the arrays is the merge.
    cka::linear_state first(d1, d2);
    first.add(x.topRows(cuts[1]), y.topRows(cuts[1]));
    const cka::vector<double> mx = first.shift_x(), my = first.shift_y();
    cka::linear_state total(mx, my);
    std::vector<double> sum(total.size(), 0.0);
    for (std::size_t i = 0; i < parts; ++i) {
      cka::linear_state part(mx, my);
      part.add(x.middleRows(cuts[i], cuts[i + 1] - cuts[i]), y.middleRows(cuts[i], cuts[i + 1] - cuts[i]));
      REQUIRE(part.size() == total.size());
      for (std::size_t k = 0; k < part.size(); ++k) sum[k] += part.data()[k];
    }
    std::copy(sum.begin(), sum.end(), total.data());
    CHECK(total.samples() == n);
    CHECK(test::rel_err(total.cka(est), expected) < 1e-12);
  }
}

TEST_CASE("linear_state save and load", "[state][io]") {
  const auto x = test::normal<double>(50, 4, 31);
  const auto y = test::related<double>(x, 3, 32);
  cka::linear_state s(4, 3);
  s.add(x.topRows(20), y.topRows(20));
  const std::string path = "test_state_saved.npy";
  s.save(path);
  cka::linear_state back = cka::linear_state::load(path);
  CHECK(back.samples() == 20);
  CHECK(back.shift_x() == s.shift_x());
  CHECK(std::equal(s.data(), s.data() + s.size(), back.data()));
  back.add(x.bottomRows(30), y.bottomRows(30));  // continue streaming after a reload
  CHECK(test::rel_err(back.cka(), cka::linear_cka(x, y)) < 1e-12);
  // An empty state (no shift yet) also round-trips, and a file that is not a state is refused.
  cka::linear_state empty(4, 3);
  empty.save(path);
  CHECK_FALSE(cka::linear_state::load(path).has_shift());
  cka::npy::save(path, x);
  CHECK_THROWS_WITH(cka::linear_state::load(path), Contains(path) && Contains("not a saved cka::linear_state"));
  std::remove(path.c_str());
}

// The record (what save writes, what Python's pickling carries) rebuilds the state exactly, with a source
// named in its errors; it is the same values as the saved file.
TEST_CASE("state records round-trip and are what save writes", "[state][io]") {
  const auto x = test::normal<double>(60, 4, 51);
  const auto y = test::related<double>(x, 3, 52);
  cka::linear_state s(4, 3);
  s.add(x.topRows(35), y.topRows(35));
  const cka::vector<double> r = s.record();
  CHECK(r.size() == 7 + 7 + 10 * 10);  // tag, widths, flags, shift, scales; then (3 + d1 + d2)²
  cka::linear_state back = cka::linear_state::from_record(r);
  CHECK(back.record() == r);
  CHECK(back.cka(estimator::unbiased) == s.cka(estimator::unbiased));
  back.add(x.bottomRows(25), y.bottomRows(25));
  CHECK(test::rel_err(back.cka(), cka::linear_cka(x, y)) < 1e-12);
  const std::string path = "test_state_record.npy";
  s.save(path);
  CHECK(cka::vector<double>(cka::npy::load(path).values.row(0).transpose()) == r);
  std::remove(path.c_str());
  cka::vector<double> bad = r;
  bad(2) = 4;  // a width its length does not hold
  CHECK_THROWS_WITH(cka::linear_state::from_record(bad, "pickle"), Contains("pickle: not a saved cka::linear_state") && Contains("length"));
  CHECK_THROWS_AS(cka::linear_state::from_record(cka::vector<double>()), cka::invalid_argument);
  cka::layers_state l({4, 3});
  l.add(std::vector<test::mat<double>>{x, y});
  const cka::layers_state lb = cka::layers_state::from_record(l.record());
  CHECK(lb.cka() == l.cka());
  CHECK_THROWS_WITH(cka::layers_state::from_record(r), Contains("not a saved cka::layers_state") && Contains("no state header"));
}

// Issue 25, item 5: a file that no state could have written is refused, naming the file and the fault —
// never an undefined float-to-integer conversion or a state that returns a wrong value. Layout of the file:
// [tag, d1, d2, has_shift, shift (d1 + d2), has_scale, scale_x, scale_y, S (p×p, column-major, lower
// triangle), p = 3 + d1 + d2].
TEST_CASE("linear_state::load refuses inconsistent files", "[state][io][errors]") {
  const auto x = test::normal<double>(40, 3, 41);
  const auto y = test::related<double>(x, 2, 42);
  cka::linear_state s(3, 2);
  s.add(x, y);
  const std::string path = "test_state_hostile.npy";
  s.save(path);
  const cka::matrix<double> good = cka::npy::load(path).values;
  const Eigen::Index p = 8, at = 4 + 5 + 3;  // S starts after the header, the shift and the scales
  auto entry = [&](Eigen::Index i, Eigen::Index j) { return at + j * p + i; };
  struct edit {
    const char* name;
    std::function<void(cka::matrix<double>&)> apply;
    const char* message;
  };
  const std::vector<edit> edits = {
      {"count 1e300", [&](auto& v) { v(0, entry(0, 0)) = 1e300; }, "sample count"},
      {"negative count", [&](auto& v) { v(0, entry(0, 0)) = -40; }, "sample count"},
      {"fractional count", [&](auto& v) { v(0, entry(0, 0)) = 40.5; }, "sample count"},
      {"shift flag 0.5", [](auto& v) { v(0, 3) = 0.5; }, "shift flag"},
      {"no shift but rows", [](auto& v) { v(0, 3) = 0; }, "shift"},
      {"negative diagonal", [&](auto& v) { v(0, entry(2, 2)) = -1; }, "negative"},
      {"upper triangle", [&](auto& v) { v(0, entry(1, 2)) = 1; }, "upper triangle"},
      {"Cauchy-Schwarz", [&](auto& v) { v(0, entry(2, 1)) = 1e6; }, "Cauchy-Schwarz"},
      {"norm sum", [&](auto& v) { v(0, entry(6, 0)) *= 1.001; }, "squared-norm sum"},
      {"widths", [](auto& v) { v(0, 1) = 4; }, "length"},
      // Widths that a short file claims: checked against its length before the state (5 TB) is allocated.
      {"widths 400000 in a short file", [](auto& v) { v(0, 1) = v(0, 2) = 400000; }, "length"},
      {"fractional width", [](auto& v) { v(0, 1) = 2.5; }, "widths"},
      {"huge width", [](auto& v) { v(0, 2) = 1e300; }, "widths"},
      {"infinity", [&](auto& v) { v(0, entry(3, 3)) = std::numeric_limits<double>::infinity(); }, "non-finite"},
      {"scale 3", [](auto& v) { v(0, 10) = 3; }, "power of two"},
      {"scale flag 2", [](auto& v) { v(0, 9) = 2; }, "scale flag"},
      {"rows without a scale", [](auto& v) { v(0, 9) = 0; }, "scale"},
  };
  for (const edit& e : edits) {
    SECTION(e.name) {
      cka::matrix<double> v = good;
      e.apply(v);
      cka::npy::save(path, v);
      CHECK_THROWS_WITH(cka::linear_state::load(path), Contains(path) && Contains("not a saved cka::linear_state") && Contains(e.message));
    }
  }
  cka::npy::save(path, good);
  CHECK(cka::linear_state::load(path).cka() == s.cka());
  std::remove(path.c_str());
}

TEST_CASE("linear_state: float32 rows with a +1e4 offset, streamed", "[state][offset]") {
  const Eigen::Index n = 2000, d1 = 16, d2 = 8;
  const test::mat<float> x = (test::normal<float>(n, d1, 51).array() + 1e4f).matrix();
  const test::mat<float> y = (test::related<float>(test::normal<float>(n, d1, 51), d2, 52).array() + 1e4f).matrix();
  const test::mat<double> xd = x.cast<double>(), yd = y.cast<double>();
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    cka::linear_state s(d1, d2);
    for (Eigen::Index r0 = 0; r0 < n; r0 += 128) {
      const Eigen::Index h = std::min<Eigen::Index>(128, n - r0);
      s.add(x.middleRows(r0, h), y.middleRows(r0, h));
    }
    CHECK(test::rel_err(s.cka(est), cka::linear_cka(xd, yd, est)) < 1e-6);
  }
}

TEST_CASE("linear_state errors", "[state][errors]") {
  const auto x = test::normal<double>(10, 3, 61);
  const auto y = test::normal<double>(10, 2, 62);
  cka::linear_state s(3, 2);
  CHECK_THROWS_AS(cka::linear_state(0, 2), cka::invalid_argument);
  CHECK_THROWS_WITH(s.add(x, y.topRows(9)), Contains("linear_state::add") && Contains("10") && Contains("9"));
  CHECK_THROWS_WITH(s.add(y, y), Contains("features"));
  test::mat<double> bad = x;
  bad(4, 1) = std::numeric_limits<double>::quiet_NaN();
  s.add(x.topRows(3), y.topRows(3));
  CHECK_THROWS_WITH(s.add(bad, y), Contains("X(4, 1)") && Contains("not finite"));
  CHECK(s.samples() == 3);  // unchanged
  CHECK_THROWS_WITH(s.cka(estimator::unbiased), Contains("3 samples") && Contains("at least 4"));
  cka::linear_state one(3, 2);
  one.add(x.topRows(1), y.topRows(1));
  CHECK_THROWS_AS(one.cka(), cka::invalid_argument);
  // A constant representation: zero variance, as linear_cka says.
  cka::linear_state flat(3, 2);
  const test::mat<double> c = test::mat<double>::Constant(10, 2, 0.1);
  flat.add(x.topRows(4), c.topRows(4));
  flat.add(x.bottomRows(6), c.bottomRows(6));
  CHECK_THROWS_WITH(flat.cka(), Contains("second representation") && Contains("zero variance"));
  CHECK_THROWS_AS(flat.cka(estimator::unbiased), cka::domain_error);
  // Merging states of different widths is refused.
  cka::linear_state other(2, 2);
  other.add(y, y);
  CHECK_THROWS_AS(s.merge(other), cka::invalid_argument);
  // A non-finite agreed shift is refused.
  cka::vector<double> inf_shift = cka::vector<double>::Zero(3);
  inf_shift(1) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(cka::linear_state(inf_shift, cka::vector<double>::Zero(2)), cka::invalid_argument);
}

// The moment engine loads, shifts, scales and takes the norms of its rows strip by strip on OpenMP threads
// (detail/moments.hpp): each row is finished alone, so the flat array is the same bits for any number of
// threads, and a squared row norm that overflows in a later chunk names its representation.
TEST_CASE("linear_state: strips on threads give the same bits, an overflowing later chunk is named", "[state][threads]") {
  const int threads = Eigen::nbThreads();
  const auto x = test::normal<double>(1500, 160, 81);  // p = 1 + 160 + 90 + 2: strips of 129 rows
  const auto y = test::related<double>(x, 90, 82);
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xr = x, yr = y;
  std::vector<std::vector<double>> flats;
  for (int t : {1, 2, 3}) {
    Eigen::setNbThreads(t);
    for (int layout = 0; layout < 2; ++layout) {
      cka::linear_state s(160, 90);
      if (layout == 0) {
        s.add(x.topRows(700), y.topRows(700));
        s.add(x.bottomRows(800), y.bottomRows(800));
      } else {
        s.add(xr.topRows(700), yr.topRows(700));
        s.add(xr.bottomRows(800), yr.bottomRows(800));
      }
      flats.emplace_back(s.data(), s.data() + s.size());
      CHECK(test::rel_err(s.cka(), cka::linear_cka(x, y)) < 1e-12);
    }
  }
  Eigen::setNbThreads(threads);
  for (std::size_t k = 2; k < flats.size(); ++k) {
    CAPTURE(k);
    CHECK(flats[k] == flats[k % 2]);  // the same layout on 1, 2 or 3 threads
  }
  cka::linear_state s(160, 90);
  s.add(x.topRows(700), y.topRows(700));
  test::mat<double> big = y.bottomRows(800);
  big.row(500) *= 1e200;  // the scales were fixed by the first rows
  CHECK_THROWS_WITH(s.add(x.bottomRows(800), big), Contains("linear_state::add") && Contains("representation 2") &&
                                                        Contains("overflow"));
  CHECK_THROWS_AS(s.add(x.bottomRows(800), big), cka::domain_error);
}

TEST_CASE("linear_state takes views of any layout and float chunks", "[state][views]") {
  const auto x = test::normal<double>(60, 5, 71);
  const auto y = test::related<double>(x, 4, 72);
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xr = x;
  cka::linear_state s(5, 4);
  s.add(xr.topRows(25), y.topRows(25));                          // row-major block
  s.add(x.bottomRows(35).transpose().transpose(), y.bottomRows(35));  // an expression
  CHECK(test::rel_err(s.cka(), cka::linear_cka(x, y)) < 1e-12);
  const test::mat<float> xf = x.cast<float>(), yf = y.cast<float>();
  cka::linear_state f(5, 4);
  f.add(xf, yf);
  CHECK(test::rel_err(f.cka(), cka::linear_cka(xf.cast<double>(), yf.cast<double>())) < 1e-12);
}

TEST_CASE("layers_state equals pairwise linear CKA", "[state][layers]") {
  const auto x = test::normal<double>(120, 6, 81);
  const std::vector<test::mat<double>> layers = {x, test::related<double>(x, 9, 82), test::related<double>(x, 4, 83),
                                                 test::mat<double>::Constant(120, 2, 3.0)};
  cka::layers_state s({6, 9, 4, 2});
  for (Eigen::Index r0 = 0; r0 < 120; r0 += 50) {
    const Eigen::Index h = std::min<Eigen::Index>(50, 120 - r0);
    std::vector<Eigen::Ref<const test::mat<double>>> chunk;
    for (const auto& l : layers) chunk.emplace_back(l.middleRows(r0, h));
    s.add(chunk);
  }
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    const auto v = s.cka(est);
    for (Eigen::Index a = 0; a < 3; ++a)
      for (Eigen::Index b = 0; b < 3; ++b) {
        CAPTURE(a, b);
        CHECK(test::rel_err(v(a, b), cka::linear_cka(layers[std::size_t(a)], layers[std::size_t(b)], est)) < 1e-12);
      }
    CHECK(std::isnan(v(3, 0)));
    CHECK(std::isnan(v(3, 3)));
  }
}

TEST_CASE("set_shift brings states to one shift, then their flat arrays add up", "[state][merge]") {
  // What cka::mpi::allreduce does: each part keeps its own first-chunk shift while adding rows; then all
  // are moved to the first part's shift exactly, and the elementwise sum is the state of all rows.
  const Eigen::Index n = 240, d1 = 6, d2 = 5;
  const test::mat<double> x = (test::normal<double>(n, d1, 71).array() + 1000.0).matrix();
  const test::mat<double> y = (test::related<double>(x, d2, 72).array() - 300.0).matrix();
  std::vector<cka::linear_state> parts;
  for (Eigen::Index r0 : {0, 70, 150}) {
    parts.emplace_back(d1, d2);
    const Eigen::Index h = r0 == 150 ? n - 150 : r0 == 70 ? 80 : 70;
    parts.back().add(x.middleRows(r0, h), y.middleRows(r0, h));
  }
  parts.emplace_back(d1, d2);  // a part with no rows and no shift takes the shift given
  const cka::vector<double> shift = parts[0].shift();
  REQUIRE(shift.size() == d1 + d2);
  REQUIRE(parts[1].shift() != shift);
  cka::linear_state total(shift.head(d1), shift.tail(d2));
  std::vector<double> sum(total.size(), 0.0);
  for (auto& p : parts) {
    p.set_shift(shift);
    CHECK(p.shift() == shift);
    for (std::size_t k = 0; k < p.size(); ++k) sum[k] += p.data()[k];
  }
  std::copy(sum.begin(), sum.end(), total.data());
  CHECK(total.samples() == n);
  for (estimator est : {estimator::biased, estimator::unbiased}) {
    CHECK(test::rel_err(total.cka(est), cka::linear_cka(x, y, est)) < 1e-12);
  }
  // layers_state: the same through its own shift.
  cka::layers_state a({d1, d2}), b({d1, d2});
  a.add(std::vector<test::mat<double>>{x.topRows(100), y.topRows(100)});
  b.add(std::vector<test::mat<double>>{x.bottomRows(n - 100), y.bottomRows(n - 100)});
  b.set_shift(a.shift());
  for (std::size_t k = 0; k < a.size(); ++k) a.data()[k] += b.data()[k];
  CHECK(test::rel_err(a.cka()(0, 1), cka::linear_cka(x, y)) < 1e-12);
  CHECK_THROWS_AS(a.set_shift(cka::vector<double>::Zero(3)), cka::invalid_argument);
}

// Issue 25, item 13: one rescaling rule for every route. Rows scaled by 1e-100 (whose fourth moments
// underflow) or 1e100 (overflow) enter the state scaled by a power of two fixed by the first rows: CKA is
// that of the unscaled rows, HSIC scales back; states with different scales merge, save and load exactly.
TEST_CASE("linear_state and layers_state at extreme magnitudes", "[state][scale]") {
  const auto x = test::normal<double>(300, 4, 91);
  const auto y = test::related<double>(x, 3, 92);
  for (double factor : {1e-100, 1e-80, 1e100, 1e150}) {
    CAPTURE(factor);
    for (estimator est : {estimator::biased, estimator::unbiased}) {
      cka::linear_state s(4, 3);
      s.add(x.topRows(100) * factor, y.topRows(100) * factor);
      s.add(x.bottomRows(200) * factor, y.bottomRows(200) * factor);
      CHECK(test::rel_err(s.cka(est), cka::linear_cka(x, y, est)) < 1e-12);
      cka::layers_state l({4, 3});
      l.add(std::vector<test::mat<double>>{x * factor, y * factor});
      CHECK(test::rel_err(l.cka(est)(0, 1), cka::linear_cka(x, y, est)) < 1e-12);
    }
  }
  // HSIC scales back: HSIC(aK, bL) = ab·HSIC(K, L).
  cka::linear_state tiny(4, 3);
  tiny.add(x * 1e-100, y);
  CHECK(test::rel_err(tiny.hsic(), 1e-200 * cka::hsic(cka::gram(x, cka::linear_kernel{}), cka::gram(y, cka::linear_kernel{}))) < 1e-12);
  CHECK(tiny.scale()(0) != 1.0);
  CHECK(tiny.scale()(1) == 1.0);
  // A merge of states with different scales (and shifts), and a save/load round trip.
  cka::linear_state a(4, 3), b(4, 3);
  a.add(x.topRows(150) * 1e-120, y.topRows(150));
  b.add(x.bottomRows(150) * 1e-120 * 1024.0, y.bottomRows(150));  // another first-row magnitude: another scale
  a.merge(b);
  test::mat<double> xs = x * 1e-120;
  xs.bottomRows(150) *= 1024.0;
  CHECK(test::rel_err(a.cka(), cka::linear_cka(xs, y)) < 1e-12);
  const std::string path = "test_state_scaled.npy";
  a.save(path);
  const auto back = cka::linear_state::load(path);
  CHECK(back.scale() == a.scale());
  CHECK(back.cka() == a.cka());
  std::remove(path.c_str());
  CHECK_THROWS_WITH(a.set_scale(cka::vector<double>::Constant(2, 3.0)), Contains("powers of two"));
}

// layers_state save/load: an exact round trip, streaming on after a reload, and the same checks as
// linear_state::load (the shared reader) for a file that no state could have written.
TEST_CASE("layers_state save and load", "[state][io]") {
  const auto x = test::normal<double>(80, 4, 101);
  const auto y = test::related<double>(x, 3, 102);
  const test::mat<double> z = (x.leftCols(2).array() * y.leftCols(2).array()).matrix();
  const std::vector<test::mat<double>> layers = {x, y * 1e-100, z};
  cka::layers_state s({4, 3, 2});
  s.add(std::vector<test::mat<double>>{x.topRows(50), test::mat<double>(y.topRows(50) * 1e-100), z.topRows(50)});
  const std::string path = "test_layers_state_saved.npy";
  s.save(path);
  cka::layers_state back = cka::layers_state::load(path);
  CHECK(back.samples() == 50);
  CHECK(back.scale() == s.scale());
  CHECK(back.cka(estimator::unbiased) == s.cka(estimator::unbiased));
  back.add(std::vector<test::mat<double>>{x.bottomRows(30), test::mat<double>(y.bottomRows(30) * 1e-100), z.bottomRows(30)});
  const cka::matrix<double> expected = cka::similarity_matrix(std::vector<test::mat<double>>{x, y, z}).values;
  CHECK((back.cka() - expected).cwiseAbs().maxCoeff() < 1e-12);
  cka::matrix<double> v = cka::npy::load(path).values;
  v(0, v.cols() - 2) = 1.0;  // S(p - 2, p - 1): in the upper triangle
  cka::npy::save(path, v);
  CHECK_THROWS_WITH(cka::layers_state::load(path), Contains(path) && Contains("not a saved cka::layers_state") && Contains("upper triangle"));
  cka::linear_state(4, 3).save(path);
  CHECK_THROWS_WITH(cka::layers_state::load(path), Contains("no state header"));
  std::remove(path.c_str());
}
