#pragma once
/// \file inference.hpp
/// Is this similarity significant, and how precise is it? A permutation test, the closed-form
/// permutation null (an independence test in O(1) after the CKA itself), and jackknife intervals.
/// docs/inference.md derives the formulas.
///
/// All three work on the centered Grams A = C(K), B = C(L) (HKH for the biased estimator, the U-centered
/// K̃ for the unbiased one), so CKA = ⟨A, B⟩/(‖A‖‖B‖). Permuting the samples of Y maps B to P B Pᵀ and
/// leaves ‖B‖ alone: only the cross term changes.
///
/// The options and results are in inference_types.hpp; the engines in detail/gram_tests.hpp (any kernel,
/// on centered Grams) and detail/feature_tests.hpp (the linear kernel in feature space).

#include <cka/detail/centering.hpp>
#include <cka/detail/feature_tests.hpp>
#include <cka/detail/gram_tests.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/interrupt.hpp>
#include <cka/detail/null_moments.hpp>
#include <cka/detail/permutations.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/compute.hpp>
#include <cka/estimator.hpp>
#include <cka/gram.hpp>
#include <cka/kernels.hpp>
#include <cka/inference_types.hpp>
#include <cka/undefined_layer.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cka {

namespace detail {

/// The centered Grams of X and Y under their kernels (memory 2n²), checked, and their self-products.
template <class A>
struct centered_pair {
  matrix<A> a, b;
  A aa, bb, ab;
};

template <class A, class VX, class VY, class KX, class KY>
centered_pair<A> centered_grams(const char* fn, const VX& x, const VY& y, const KX& kx, const KY& ky, estimator est) {
  require_same_samples(fn, "X", x, "Y", y);
  require_samples(fn, "X", x.rows(), est == estimator::biased ? 4 : 5, "a test on the estimator");
  require_finite(fn, "X", x);
  require_finite(fn, "Y", y);
  centered_pair<A> c;
  A ref_k(0), ref_l(0);
  c.a = centered_gram<A>(fn, x, kx, est, ref_k);
  c.b = centered_gram<A>(fn, y, ky, est, ref_l);
  c.aa = c.a.squaredNorm();
  c.bb = c.b.squaredNorm();
  c.ab = c.a.cwiseProduct(c.b).sum();
  // The library's one rule for zero variance and overflow (cka::domain_error).
  cka_ratio(fn, centered_sums<A>{c.ab, c.aa, c.bb, ref_k, ref_l});
  return c;
}

}  // namespace detail


/// Permutation test of CKA(X, Y) against independence: the samples of Y are permuted `count` times
/// (reproducibly: permutation k depends only on the seed and k), and p = (1 + #{CKA_π ≥ CKA})/(1 + count).
/// The Grams are formed and centered once; each permutation redoes only ⟨A, P B Pᵀ⟩ — O(n²) —, spread
/// over the threads (the p-value does not depend on their number). Memory 2n². With the linear kernel on
/// both sides, feature space where it is cheaper (d1·d2 ≤ 40n, or Grams beyond 2 GiB): ‖Xcᵀ·P·Yc‖² for
/// batches of permutations in one GEMM, O(n·d1·d2) per permutation, memory O(n(d1 + d2)).
/// Throws as kernel_cka (n ≥ 4, biased; ≥ 5, unbiased), and cka::invalid_argument for a count of 0 or above
/// permutation_options::max_count.
template <class DX, class DY, class KX, class KY>
permutation_result permutation_test(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx,
                                    const KY& ky, estimator est = estimator::biased, const permutation_options& o = {}) {
  using A = accumulator_t<typename DX::Scalar>;
  const char* fn = "permutation_test";
  detail::require_permutation_count(fn, "count", o.count);
  const detail::view_t<DX> xv(x.derived());
  const detail::view_t<DY> yv(y.derived());
  using std::sqrt;
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    if (detail::prefer_features(xv.rows(), xv.cols(), yv.cols())) {
      const auto f = detail::features_of<A>(fn, xv, yv, est);
      const A aa = f.self_x(), bb = f.self_y();
      const A ab = f.cross(A((f.xc.transpose() * f.yc).squaredNorm()), A(f.k.dot(f.l)));
      f.check(fn, ab, aa, bb);
      return {double(ab / sqrt(aa) / sqrt(bb)), detail::permutation_p_value(f, o), o.count};
    }
  }
  const auto c = detail::centered_grams<A>(fn, xv, yv, kx, ky, est);
  return {double(c.ab / sqrt(c.aa) / sqrt(c.bb)), detail::permutation_p_value(c.a, c.b, o), o.count};
}

/// The same with one kernel for X and Y.
template <class DX, class DY, class Kernel>
permutation_result permutation_test(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const Kernel& kernel,
                                    estimator est = estimator::biased, const permutation_options& o = {}) {
  return permutation_test(x, y, kernel, kernel, est, o);
}

/// Independence test from the exact mean and variance of CKA under random permutation of the samples:
/// debiased CKA (estimator::unbiased) has mean 0 and variance 2/(n(n−3)) exactly, so z = CKA·√(n(n−3)/2)
/// and p = P(Z ≥ z) (normal); the biased estimator's null is skewed, so p comes from a gamma distribution
/// with the exact permutation mean and variance (the moment match of Gretton et al., NeurIPS 2008).
/// Cost O(n²) beyond the Grams (memory 2n²); with the linear kernel on both sides O(n(d1 + d2)²) in
/// feature space, without a Gram (the moments need only tr A, Σ A_ii² and ‖A‖²). Throws as permutation_test.
template <class DX, class DY, class KX, class KY>
independence_result independence_test(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx,
                                      const KY& ky, estimator est = estimator::biased) {
  using A = accumulator_t<typename DX::Scalar>;
  const char* fn = "independence_test";
  const detail::view_t<DX> xv(x.derived());
  const detail::view_t<DY> yv(y.derived());
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    // In feature space, O(n(d1 + d2)²): the moments need only tr A, Σ A_ii² and ‖A‖².
    const auto f = detail::features_of<A>(fn, xv, yv, est);
    const A aa = f.self_x(), bb = f.self_y();
    const A ab = f.cross(A((f.xc.transpose() * f.yc).squaredNorm()), A(f.k.dot(f.l)));
    f.check(fn, ab, aa, bb);
    return detail::independence_from(detail::feature_null_sums(f.k, aa, est), detail::feature_null_sums(f.l, bb, est),
                                      ab, aa, bb, double(xv.rows()), est);
  }
  const auto c = detail::centered_grams<A>(fn, xv, yv, kx, ky, est);
  return detail::independence_of(c.a, c.b, c.ab, c.aa, c.bb, est);
}

/// The same with one kernel for X and Y.
template <class DX, class DY, class Kernel>
independence_result independence_test(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                                      const Kernel& kernel, estimator est = estimator::biased) {
  return independence_test(x, y, kernel, kernel, est);
}

/// Jackknife standard error and interval of CKA(X, Y): all n leave-one-out values in O(n²) in all, from
/// the centered Grams and their row products c_i = Σ_j A_ij B_ij (centering the Grams of n − 1 samples is
/// centering the rows and columns of A and B that remain: docs/inference.md), not n recomputations.
/// Memory 2n²; with the linear kernel on both sides and d1 + d2 < n, in feature space instead:
/// O(n(d1 + d2)²) time and O(n(d1 + d2)) memory. Throws as permutation_test (n ≥ 4 biased, ≥ 6 unbiased),
/// cka::invalid_argument for a level outside (0, 1), and cka::domain_error (naming the sample) where a
/// leave-one-out CKA is undefined: a representation whose samples are all equal but one. (similarity_tests
/// gives that cell a NaN interval instead.)
template <class DX, class DY, class KX, class KY>
jackknife_result jackknife(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const KX& kx, const KY& ky,
                           estimator est = estimator::biased, const jackknife_options& o = {}) {
  using A = accumulator_t<typename DX::Scalar>;
  const char* fn = "jackknife";
  if (!(o.level > 0 && o.level < 1)) detail::fail_argument(fn, "level = ", o.level, " must lie in (0, 1)");
  const detail::view_t<DX> xv(x.derived());
  const detail::view_t<DY> yv(y.derived());
  if (est == estimator::unbiased) detail::require_samples(fn, "X", xv.rows(), 6, "a leave-one-out unbiased estimate");
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    if (xv.cols() + yv.cols() < xv.rows()) {  // feature space: O(n(d1 + d2)²) and no Gram
      const auto f = detail::features_of<A>(fn, xv, yv, est);
      f.check(fn, f.cross(A((f.xc.transpose() * f.yc).squaredNorm()), A(f.k.dot(f.l))), f.self_x(), f.self_y());
      return detail::defined_jackknife(fn, detail::jackknife_of(f, o.level));
    }
  }
  const auto c = detail::centered_grams<A>(fn, xv, yv, kx, ky, est);
  return detail::defined_jackknife(fn, detail::jackknife_of(c.a, c.b, c.ab, c.aa, c.bb, est, o.level));
}

/// The same with one kernel for X and Y.
template <class DX, class DY, class Kernel>
jackknife_result jackknife(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const Kernel& kernel,
                           estimator est = estimator::biased, const jackknife_options& o = {}) {
  return jackknife(x, y, kernel, kernel, est, o);
}

namespace detail {
/// Whether similarity_tests runs a pair of layers of widths d1, d2 in feature space: the linear kernel
/// where prefer_features says a permutation's GEMM beats a Gram gather.
template <class Kernel>
bool tests_in_features(Eigen::Index n, Eigen::Index d1, Eigen::Index d2) {
  return std::is_same_v<Kernel, linear_kernel> && prefer_features(n, d1, d2);
}

/// The memory similarity_tests holds for layers of n samples and these widths (rows, then the columns
/// of the rectangular form; cols null for the square form): per layer its centered columns and their
/// row norms, 8·(n·d + n) bytes, where one of its pairs runs in feature space (the linear kernel,
/// prefer_features), and its centered Gram, 8·n² bytes, where one does not; with permutations, the
/// stacked columns of the row layers, 8·n·Σd. The permutation batches add a few MB per thread.
template <class Kernel>
double similarity_tests_bytes_impl(Eigen::Index n, const std::vector<Eigen::Index>& rows,
                                   const std::vector<Eigen::Index>* cols, const similarity_tests_options& o) {
  const double nn = double(n), word = 8.0;
  auto prepared = [&](const std::vector<Eigen::Index>& mine, const std::vector<Eigen::Index>& others) {
    double bytes = 0;
    for (const Eigen::Index d : mine) {
      bool features = false, grams = false;
      for (const Eigen::Index e : others) (tests_in_features<Kernel>(n, d, e) ? features : grams) = true;
      if (features) bytes += word * (nn * double(d) + nn);
      if (grams) bytes += word * nn * nn;
    }
    return bytes;
  };
  double bytes = cols ? prepared(rows, *cols) + prepared(*cols, rows) : prepared(rows, rows);
  if (o.permutations > 0 && std::is_same_v<Kernel, linear_kernel>) {
    double width = 0;
    for (const Eigen::Index d : rows) width += double(d);
    bytes += word * nn * width;
  }
  return bytes;
}

/// Throws the refusal of a computation that would hold `bytes` under a budget of `budget` bytes.
[[noreturn]] inline void fail_memory_budget(const char* fn, const char* what, double bytes, double budget, bool by_default) {
  auto gb = [](double b) {
    std::ostringstream text;
    text << std::setprecision(3) << b / 1e9 << " GB";
    return text.str();
  };
  fail_argument(fn, what, " need ", gb(bytes), ", more than ", by_default ? "half of the physical memory (" : "max_bytes (",
                gb(budget), "); raise max_bytes to allow it, or use fewer samples or layers");
}

template <class M, class N, class Kernel>
similarity_tests_result similarity_tests_impl(const std::vector<M>& rows, const std::vector<N>* cols_or_square,
                                              const Kernel& kernel, const similarity_tests_options& o) {
  using A = accumulator_t<typename M::Scalar>;
  const char* fn = "similarity_tests";
  const bool square = cols_or_square == nullptr;
  if (rows.empty() || (!square && cols_or_square->empty())) detail::fail_argument(fn, "needs at least one layer on each side");
  if (!(o.level >= 0 && o.level < 1)) detail::fail_argument(fn, "level = ", o.level, " must lie in [0, 1)");
  if (o.permutations > 0) detail::require_permutation_count(fn, "permutations", o.permutations);
  const Eigen::Index n = rows[0].rows();
  const Eigen::Index needed = min_samples(o);
  auto same_samples = [&](const auto& layers) {
    for (const auto& x : layers)
      if (x.rows() != n) detail::fail_argument(fn, "a layer has ", x.rows(), " samples but the first has ", n);
  };
  same_samples(rows);
  if (!square) same_samples(*cols_or_square);
  // The pairs: with the linear kernel, feature space where a permutation's GEMM beats a Gram gather
  // (prefer_features); a layer keeps its centered columns, its centered Gram, or both, as its pairs need.
  std::vector<Eigen::Index> row_width, col_width;
  for (const auto& x : rows) row_width.push_back(x.cols());
  if (!square)
    for (const auto& y : *cols_or_square) col_width.push_back(y.cols());
  const std::vector<Eigen::Index>& cw = square ? row_width : col_width;
  {
    const double bytes = similarity_tests_bytes_impl<Kernel>(n, row_width, square ? nullptr : &col_width, o);
    compute_options budget;
    budget.max_bytes = o.max_bytes;
    if (bytes > memory_budget(budget)) {
      const std::string what = std::to_string(rows.size() + (square ? 0 : cols_or_square->size())) + " layers of n = " +
                               std::to_string(n) + " samples (their centered Grams or columns)";
      fail_memory_budget(fn, what.c_str(), bytes, memory_budget(budget), o.max_bytes == 0);
    }
  }
  auto in_features = [&](Eigen::Index di, Eigen::Index dj) { return tests_in_features<Kernel>(n, di, dj); };
  struct layer {
    matrix<A> g, xc;  ///< the centered Gram, the centered columns (each where a pair needs it)
    vector<A> k;      ///< the squared row norms of xc
    bool defined = true, degenerate = false;  ///< degenerate: permutation-invariant (its null with any layer has no spread)
  };
  auto prepare = [&](const auto& x, const std::vector<Eigen::Index>& others) {
    const detail::view_t<std::decay_t<decltype(x)>> v(x);
    detail::require_samples(fn, "each layer", n, needed, "the tests");
    detail::require_finite(fn, "a layer", v);
    bool features = false, grams = false;
    for (const Eigen::Index d : others) (in_features(v.cols(), d) ? features : grams) = true;
    layer l;
    null_sums ns;
    A self(0);
    if (features) {
      l.xc = scaled_centered_columns<A>(v);
      l.k = l.xc.rowwise().squaredNorm();
      const linear_features<A> f{l.xc, l.xc, l.k, l.k, o.est};
      self = f.self_x();
      l.defined = !vanishes(self, f.sums(self, self, self).ref_k);
      ns = feature_null_sums(l.k, self, o.est);
    }
    if (grams) {
      A ref(0);
      l.g = detail::centered_gram<A>(fn, v, kernel, o.est, ref);
      self = l.g.squaredNorm();
      l.defined = !detail::vanishes(self, ref);
      ns = sums_of(l.g);
    }
    l.degenerate = l.defined && independence_from(ns, ns, self, self, self, double(n), o.est).degenerate;
    return l;
  };
  std::vector<layer> r, c;
  for (const auto& x : rows) r.push_back(prepare(x, square ? row_width : col_width));
  if (!square)
    for (const auto& y : *cols_or_square) c.push_back(prepare(y, row_width));
  const std::vector<layer>& cl = square ? r : c;  // the square form prepares each layer once
  const double nan = std::numeric_limits<double>::quiet_NaN();
  similarity_tests_result out;
  const Eigen::Index nr = Eigen::Index(r.size()), nc = Eigen::Index(cl.size());
  out.values = out.p_value = out.lower = out.upper = matrix<double>::Constant(nr, nc, nan);
  for (std::size_t i = 0; i < r.size(); ++i)
    if (!r[i].defined) out.undefined.push_back({i, zero_variance_cause(o.est)});
  for (std::size_t j = 0; j < c.size(); ++j)
    if (!c[j].defined) out.undefined.push_back({r.size() + j, zero_variance_cause(o.est)});
  permutation_options po;
  po.count = o.permutations;
  po.seed = o.seed;
  // One pair: its value, p-value (a feature-space permutation p-value comes precomputed: `drawn`) and interval.
  auto pair = [&](Eigen::Index i, Eigen::Index j, double drawn) {
    const layer &a = r[std::size_t(i)], &b = cl[std::size_t(j)];
    independence_result t{};
    // A layer against itself (the square form's diagonal): T_π = ⟨A, PAPᵀ⟩ ≤ ‖A‖² = T, with equality only
    // where PAPᵀ = A (Cauchy–Schwarz). So no permutation reaches T unless the layer is permutation-
    // invariant (then all do) — save those that only exchange duplicated samples, with probability
    // Π mₖ!/n! — and the p-value is known without drawing any: 1/(1 + count), or 1.
    const bool self_pair = square && i == j;
    double p = self_pair ? (a.degenerate ? 1.0 : 1.0 / (1.0 + double(o.permutations))) : nan;
    jackknife_result jr{};
    if (in_features(row_width[std::size_t(i)], cw[std::size_t(j)])) {
      const linear_features<A> f{a.xc, b.xc, a.k, b.k, o.est};
      const A aa = f.self_x(), bb = f.self_y(), ab = f.cross(A((f.xc.transpose() * f.yc).squaredNorm()), A(f.k.dot(f.l)));
      cka_ratio(fn, f.sums(ab, aa, bb), when_undefined::nan);  // overflow is an error
      t = independence_from(feature_null_sums(f.k, aa, o.est), feature_null_sums(f.l, bb, o.est), ab, aa, bb, double(n), o.est);
      if (o.permutations > 0 && !self_pair) p = drawn;
      if (o.level > 0) jr = jackknife_of(f, o.level);
    } else {
      const A ab = a.g.cwiseProduct(b.g).sum(), aa = a.g.squaredNorm(), bb = b.g.squaredNorm();
      t = independence_of(a.g, b.g, ab, aa, bb, o.est);
      if (o.permutations > 0 && !self_pair) p = permutation_p_value(a.g, b.g, po);
      if (o.level > 0) jr = jackknife_of(a.g, b.g, ab, aa, bb, o.est, o.level);
    }
    out.values(i, j) = t.value;
    out.p_value(i, j) = o.permutations > 0 ? p : t.p_value;
    if (o.level > 0) {
      out.lower(i, j) = jr.lower;
      out.upper(i, j) = jr.upper;
    }
  };
  const std::size_t total = square ? std::size_t(nr * (nr + 1) / 2) : std::size_t(nr * nc);
  std::size_t done = 0;
  for (Eigen::Index j = 0; j < nc; ++j) {
    const layer& b = cl[std::size_t(j)];
    // The feature-space permutation p-values of column j's pairs, all under one gather of its permutations.
    std::vector<double> drawn(static_cast<std::size_t>(nr), nan);
    if (o.permutations > 0 && b.defined) {
      std::vector<centered_side<A>> sides;
      std::vector<Eigen::Index> which;
      for (Eigen::Index i = 0; i < (square ? j : nr); ++i) {
        const layer& a = r[std::size_t(i)];
        if (!a.defined || !in_features(row_width[std::size_t(i)], cw[std::size_t(j)])) continue;
        sides.push_back({&a.xc, &a.k});
        which.push_back(i);
      }
      if (!sides.empty()) {
        const std::vector<double> p = permutation_p_values(sides, b.xc, b.k, o.est, po);
        for (std::size_t q = 0; q < which.size(); ++q) drawn[std::size_t(which[q])] = p[q];
      }
    }
    for (Eigen::Index i = 0; i < (square ? j + 1 : nr); ++i) {
      if (r[std::size_t(i)].defined && b.defined) pair(i, j, drawn[std::size_t(i)]);
      if (square && j != i) {  // the same pair: the same numbers
        out.values(j, i) = out.values(i, j);
        out.p_value(j, i) = out.p_value(i, j);
        out.lower(j, i) = out.lower(i, j);
        out.upper(j, i) = out.upper(i, j);
      }
      poll_interrupt();
      if (o.progress) o.progress(++done, total);
    }
  }
  for (std::size_t i = 0; i < r.size(); ++i)
    if (r[i].degenerate) out.degenerate.push_back(i);
  for (std::size_t j = 0; j < c.size(); ++j)
    if (c[j].degenerate) out.degenerate.push_back(r.size() + j);
  return out;
}
}  // namespace detail

/// Significance (and intervals) for every pair of layers: the matrix form of independence_test or
/// permutation_test, and of jackknife, with their values. The square form computes each unordered pair
/// once (its matrices are symmetric by construction: the p-value of (i, j) is that of (j, i)). With the
/// linear kernel, a pair of narrow layers (d_i·d_j ≤ 40n) runs in feature space: a permutation costs
/// O(n·d_i·d_j) in batched GEMMs, the analytic test and the jackknife O(n(d_i + d_j)²). Other pairs use
/// the layers' centered Grams: a permutation costs O(n²). Each layer is prepared once, as its pairs need it
/// (centered columns, n·d; a centered Gram, n²). `progress` is called once per pair computed.
/// Throws cka::invalid_argument for layers with different sample counts, too few samples, NaN/Inf, a level
/// outside [0, 1), a permutation count above permutation_options::max_count, or prepared layers beyond
/// `o.max_bytes` (similarity_tests_bytes; default half the physical memory); cka::domain_error for
/// overflow.
/// This is the rectangular form: `rows` × `cols` layers.
template <class M, class N, class Kernel>
similarity_tests_result similarity_tests(const std::vector<M>& rows, const std::vector<N>& cols, const Kernel& kernel,
                                         const similarity_tests_options& o = {}) {
  return detail::similarity_tests_impl(rows, &cols, kernel, o);
}

/// The square form: every pair of `layers` (`undefined` indexes them once).
template <class M, class Kernel>
similarity_tests_result similarity_tests(const std::vector<M>& layers, const Kernel& kernel,
                                         const similarity_tests_options& o = {}) {
  return detail::similarity_tests_impl<M, M>(layers, nullptr, kernel, o);
}

/// Bytes similarity_tests holds for layers of n samples and these widths (the square form's layers; or
/// `rows` and `cols` of the rectangular one), before any layer is read: per layer its centered columns
/// (8·(n·d + n)) where one of its pairs runs in feature space, its centered Gram (8·n²) where one does
/// not, and with permutations of the linear kernel the stacked row layers (8·n·Σd). Throws
/// cka::invalid_argument for a negative n or a width below 1.
template <class Kernel = linear_kernel>
double similarity_tests_bytes(Eigen::Index n, const std::vector<Eigen::Index>& rows, const std::vector<Eigen::Index>& cols = {},
                              const Kernel& = {}, const similarity_tests_options& o = {}) {
  if (n < 0) detail::fail_argument("similarity_tests_bytes", "n = ", n, " samples; it must not be negative");
  for (const auto* side : {&rows, &cols})
    for (std::size_t a = 0; a < side->size(); ++a)
      if ((*side)[a] < 1) detail::fail_argument("similarity_tests_bytes", "layer ", a, " has width ", (*side)[a], "; it must be at least 1");
  return detail::similarity_tests_bytes_impl<Kernel>(n, rows, cols.empty() ? nullptr : &cols, o);
}

}  // namespace cka
