#pragma once
// Private: the centered alignment of the row-relation Grams of a student and a teacher, and its gradient —
// the RCKA losses (sample relation, class relation on the transposed views, FCKA) — as Thrust passes around
// the caller's products, on the context's memory. The twin of cka/detail/relation.hpp's Gram form for
// centered CKA (no row scaling):
//   Xs, Xt the column-centered inputs (Z = [Xs Xt], n×(ds+dt)), K = XsXsᵀ, L = XtXtᵀ by the caller's gram;
//   A = K (biased: H K H = K for centered features) or its U-centering (unbiased), M likewise from L;
//   a = ⟨A, M⟩/(‖A‖‖M‖), W = M/(‖A‖‖M‖) − a·A/‖A‖² (written over A), ∂a/∂S = (W + Wᵀ)·Xs = 2·W·Xs by the
//   caller's multiply; the loss 1 − a and its gradient −2·W·Xs scattered into the caller's strided view.
// Cost: two n×n Grams (n²(ds+dt) flops), one n×n×ds product, O(n²) passes. Scratch: relation_scratch.

#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/linear.hpp>

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform.h>
#include <thrust/reduce.h>
#include <thrust/transform_reduce.h>

#include <cmath>
#include <cstdint>

namespace cka::device::detail {

/// A writable strided view of the gradient (scalar T).
template <class T>
struct strided_out {
  T* ptr;
  std::int64_t rows, cols, row_stride, col_stride;
  /// The same memory as its transpose.
  strided_out transposed() const { return {ptr, cols, rows, col_stride, row_stride}; }
};

/// The transpose of a strided input.
template <class T>
strided<T> transposed(const strided<T>& m) {
  return {m.ptr, m.cols, m.rows, m.col_stride, m.row_stride};
}

/// U-centering in place of a symmetric n×n matrix from its row sums without the diagonal: K̃_ij − u(r_i +
/// r_j) + c off the diagonal, 0 on it (centering_scales, unbiased).
struct u_center_in_place {
  double* k;
  const double* r;
  centering_scale c;
  std::int64_t n;
  CKA_HD void operator()(std::int64_t flat) const {
    const std::int64_t i = flat % n, j = flat / n;
    k[flat] = i == j ? 0.0 : k[flat] - c.u * (r[i] + r[j]) + c.c;
  }
};

/// ⟨A, M⟩, ‖A‖², ‖M‖² at flat index k.
struct products_at {
  const double* a;
  const double* m;
  CKA_HD sums3 operator()(std::int64_t k) const { return sums3(a[k] * m[k], a[k] * a[k], m[k] * m[k]); }
};

/// W = M·scale_m − A·scale_a over A.
struct alignment_gradient {
  double* a;
  const double* m;
  double scale_m, scale_a;
  CKA_HD void operator()(std::int64_t k) const { a[k] = m[k] * scale_m - a[k] * scale_a; }
};

/// grad(i, j) = factor·g(i, j) (+ grad(i, j) when accumulating), g column-major rows×cols.
template <class T>
struct scatter_gradient {
  strided_out<T> out;
  const double* g;
  double factor;
  bool accumulate;
  CKA_HD void operator()(std::int64_t flat) const {
    const std::int64_t i = flat % out.rows, j = flat / out.rows;
    T& at = out.ptr[i * out.row_stride + j * out.col_stride];
    const double v = g == nullptr ? 0.0 : factor * g[flat];
    at = accumulate ? T(double(at) + v) : T(v);
  }
};

/// Scratch doubles of relation_alignment for n rows and ds + dt = dd features.
inline std::int64_t relation_scratch(std::int64_t n, std::int64_t ds, std::int64_t dd) {
  return n * dd + 2 * dd + 2 * n * n + n + n * ds;
}

/// The alignment (or NaN where `ratio` finds it undefined) of the centered row Grams of s and t, and the
/// loss gradient `factor`·∂a/∂s·(−1) written (or added, `accumulate`) into grad — zeros where undefined.
/// gram(z, n, d, k): K = ZZᵀ (n×n, column-major, the lower triangle at least) for an n×d block Z;
/// multiply(w, n, x, d, out): out = W·X (n×d) for an n×n W and an n×d X, all column-major;
/// ratio(centered_totals) → the alignment, NaN when undefined under the skip policy (else it throws).
template <class Policy, class Gram, class Multiply, class Ratio, class T, class G>
double relation_alignment(const Policy& policy, Gram&& gram, Multiply&& multiply, Ratio&& ratio, double* scratch,
                          const strided<T>& s, const strided<T>& t, bool unbiased, const strided_out<G>& grad,
                          double factor, bool accumulate) {
  const std::int64_t n = s.rows, ds = s.cols, dt = t.cols, dd = ds + dt;
  double* z = scratch;
  double* mean = z + n * dd;
  double* keep = mean + dd;
  double* k = keep + dd;
  double* l = k + n * n;
  double* rows = l + n * n;
  double* out = rows + n;
  const thrust::counting_iterator<std::int64_t> first(0);
  thrust::for_each(policy, first, first + ds, column_moments<T>{s, mean, keep});
  thrust::for_each(policy, first, first + dt, column_moments<T>{t, mean + ds, keep + ds});
  thrust::for_each(policy, first, first + n * ds, center_into<T>{s, mean, keep, 1.0, z, 0});
  thrust::for_each(policy, first, first + n * dt, center_into<T>{t, mean + ds, keep + ds, 1.0, z, ds});
  gram(static_cast<const double*>(z), n, ds, k);
  gram(static_cast<const double*>(z + n * ds), n, dt, l);
  thrust::for_each(policy, first, first + n * n, mirror_lower{k, n});
  thrust::for_each(policy, first, first + n * n, mirror_lower{l, n});
  const square<double> sk{k, n, 1, n}, sl{l, n, 1, n};
  const sums3 raw = thrust::transform_reduce(policy, first, first + n * n, raw_squares_at{sk, sl, false},
                                             sums3(0.0, 0.0, 0.0), add3{});
  if (unbiased) {
    for (double* m : {k, l}) {
      const square<double> sm{m, n, 1, n};
      thrust::transform(policy, first, first + n, rows, row_sum<double>{sm, true});
      const double total = thrust::reduce(policy, rows, rows + n, 0.0);
      thrust::for_each(policy, first, first + n * n, u_center_in_place{m, rows, centering_scales(n, total, true), n});
    }
  }
  const sums3 p = thrust::transform_reduce(policy, first, first + n * n, products_at{k, l}, sums3(0.0, 0.0, 0.0), add3{});
  const double na2 = thrust::get<1>(p), nm2 = thrust::get<2>(p);
  const double a = ratio(centered_totals{thrust::get<0>(p), na2, nm2, thrust::get<0>(raw), thrust::get<1>(raw)});
  if (!(a == a)) {  // undefined, skipped: a zero gradient
    if (!accumulate) thrust::for_each(policy, first, first + n * ds, scatter_gradient<G>{grad, nullptr, 0.0, false});
    return a;
  }
  const double na = std::sqrt(na2), nm = std::sqrt(nm2);
  thrust::for_each(policy, first, first + n * n, alignment_gradient{k, l, 1.0 / (na * nm), a / na2});
  multiply(static_cast<const double*>(k), n, static_cast<const double*>(z), ds, out);
  thrust::for_each(policy, first, first + n * ds, scatter_gradient<G>{grad, out, -2.0 * factor, accumulate});
  return a;
}

/// A loss term's value and whether it was undefined (and skipped).
struct relation_term_value {
  double value;
  std::int64_t skipped;
};

/// One RCKA term, 1 − alignment of the row Grams of s and t (callers pass transposed views for the class
/// relation), on a context: make(count) allocates scratch there; the other callables as for
/// relation_alignment. Too few rows for the estimator: skipped (value 0, a zero gradient) under the skip
/// policy, else cka::invalid_argument as the host's. The gradient times `weight` is written (or added).
template <class Policy, class Gram, class Multiply, class Ratio, class Make, class T, class G>
relation_term_value relation_term(const Policy& policy, Gram&& gram, Multiply&& multiply, Ratio&& ratio, Make&& make,
                                  const char* fn, const strided<T>& s, const strided<T>& t, const strided_out<G>& grad,
                                  bool unbiased, bool skip, double weight, bool accumulate) {
  const std::int64_t n = s.rows, needed = unbiased ? 4 : 2;
  const thrust::counting_iterator<std::int64_t> first(0);
  if (n < needed) {
    if (!skip) {
      cka::detail::fail_argument(fn, "the student has ", n, " samples but ", unbiased ? "the unbiased estimator" : "the biased estimator",
                                 " needs at least ", needed);
    }
    if (!accumulate) thrust::for_each(policy, first, first + n * s.cols, scatter_gradient<G>{grad, nullptr, 0.0, false});
    return {0.0, 1};
  }
  auto scratch = make(std::size_t(relation_scratch(n, s.cols, s.cols + t.cols)));
  const double a = relation_alignment(policy, gram, multiply, ratio, scratch.get(), s, t, unbiased, grad, weight, accumulate);
  if (!(a == a)) return {0.0, 1};
  return {1.0 - a, 0};
}

/// The checks of a relation loss on views, in the context's memory: layouts, finiteness, the gradient's
/// shape, the same samples, and (class relation) the same classes.
template <class Policy, class Read, class TS, class TT, class G>
void require_relation_inputs(const Policy& policy, Read&& read, const char* fn, const strided<TS>& s, const strided<TT>& t,
                             const strided_out<G>& g, bool same_columns) {
  require_layout(fn, "student", s.ptr, s.rows, s.cols, s.row_stride, s.col_stride);
  require_layout(fn, "teacher", t.ptr, t.rows, t.cols, t.row_stride, t.col_stride);
  require_finite(policy, read, fn, "student", s.ptr, s.rows, s.cols, s.row_stride, s.col_stride);
  require_finite(policy, read, fn, "teacher", t.ptr, t.rows, t.cols, t.row_stride, t.col_stride);
  require_layout(fn, "grad", g.ptr, g.rows, g.cols, g.row_stride, g.col_stride);
  if (g.rows != s.rows || g.cols != s.cols) {
    cka::detail::fail_argument(fn, "grad is ", g.rows, "x", g.cols, " but student is ", s.rows, "x", s.cols,
                               "; the gradient has the student's shape");
  }
  if (s.rows != t.rows) {
    cka::detail::fail_argument(fn, "student has ", s.rows, " samples (rows) but teacher has ", t.rows,
                               "; both representations must hold the same samples");
  }
  if (same_columns && s.cols != t.cols) {
    cka::detail::fail_argument(fn, "the student has ", s.cols, " classes (columns) but the teacher has ", t.cols,
                               "; the class relation compares the same classes");
  }
}

}  // namespace cka::device::detail
