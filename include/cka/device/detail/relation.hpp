#pragma once
// Private: the alignment of the row-relation Grams of a student and a teacher, and its gradient — the RCKA
// losses (sample relation, class relation on the transposed views, FCKA) for every relation_options — as
// Thrust passes around the caller's products, on the context's memory. The twin of
// cka/detail/relation.hpp's Gram form. For centered CKA without row scaling:
//   Xs, Xt the column-centered inputs (Z = [Xs Xt], n×(ds+dt)), K = XsXsᵀ, L = XtXtᵀ by the caller's gram;
//   A = K (biased: H K H = K for centered features) or its U-centering (unbiased), M likewise from L;
//   a = ⟨A, M⟩/(‖A‖‖M‖), W = M/(‖A‖‖M‖) − a·A/‖A‖² (written over A), ∂a/∂S = (W + Wᵀ)·Xs = 2·W·Xs by the
//   caller's multiply; the loss 1 − a and its gradient −2·W·Xs scattered into the caller's strided view.
// Uncentered, the raw inputs and Grams; with row_normalize, P = diag(K_ii^−½)·K (double-centered when
// centered) and the row scaling's share of the gradient (relation_core).
// Every scalar (the sums, a, W's scales, the term's status) stays in the context's memory (term_slots), so
// the loss_slot variants never wait for the context; the waiting functions read the sums back and apply the
// host's ratio with its messages. Cost: two n×n Grams (n²(ds+dt) flops), one n×n×ds product, O(n²)
// passes. Scratch: relation_scratch.

#include <cka/detail/ratio.hpp>
#include <cka/device/detail/relation_steps.hpp>
#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/linear.hpp>
#include <cka/device/detail/moments.hpp>

#include <thrust/functional.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

namespace cka::device::detail {

/// Scratch doubles of relation_core for n rows and ds + dt = dd features (its slots and the scan's included).
inline std::int64_t relation_scratch(std::int64_t n, std::int64_t ds, std::int64_t dd) {
  return n * dd + 2 * dd + 3 * n * n + 4 * n + n * ds + term_slots::count + input_slots::count +
         std::max(moments_scratch(n, dd), line_sums_scratch(n, n));
}

/// One term of the loss on the context without waiting for it: the Grams of the rows of s and t compared
/// under `mode` (n rows, enough for it), the term's value and status into its slots (the end of scratch),
/// and the gradient `factor`·(−∂a/∂s) written (or added, `accumulate`) into grad — zeros unless the term
/// is defined —, then the count of grad's non-finite elements (a gradient beyond G's range). As
/// cka/detail/relation.hpp's Gram form: with P the (row-scaled) student Gram and A its centering (or P),
/// M the teacher's, W = M/(‖A‖‖M‖) − a·A/‖A‖²; row scaling turns W into
/// G = diag(inv)·W − diag(d); ∂a/∂s = (G + Gᵀ)·Xs. gram(z, n, d, k): K = ZZᵀ (n×n, column-major, the lower
/// triangle at least) by the backend's gram, W·Xs by its multiply, all column-major. Nothing read back.
template <class Backend, class T, class G>
term_slots relation_core(const Backend& be, double* scratch, const strided<T>& s, const strided<T>& t,
                         const relation_mode& mode, const strided_out<G>& grad, double factor, bool accumulate) {
  const std::int64_t n = s.rows, ds = s.cols, dt = t.cols, dd = ds + dt;
  double* z = scratch;
  double* mean = z + n * dd;
  double* keep = mean + dd;
  double* k = keep + dd;       // the student's Gram K
  double* l = k + n * n;       // the teacher's, then M
  double* a = l + n * n;       // A (row scaling), else A is K itself
  double* rows = a + n * n;    // n: row sums, row means, the row scaling's diagonal
  double* cols = rows + n;     // n: column means
  double* inv_s = cols + n;    // n: 1/√K_ii
  double* inv_t = inv_s + n;   // n: 1/√L_ii
  double* out = inv_t + n;     // n×ds: the gradient before its scatter
  const term_slots slots{out + n * ds};
  const input_slots scan{slots.at + term_slots::count};
  double* partial = scan.at + input_slots::count;  // the chunks of column statistics, then of line sums
  // Non-finite input elements: a status, and for the waiting callers an error.
  be.reduce_into(n * (ds + dt),
                 not_finite_count<T>{{s.ptr, s.cols, s.row_stride, s.col_stride}, {t.ptr, t.cols, t.row_stride, t.col_stride}, n * ds},
                 0.0, thrust::plus<double>(), slots.bad());
  // The features: column-centered for centered CKA without row scaling, else as they are; each side times
  // the power of two of its largest magnitude (the alignment does not depend on either side's scale, and
  // the Grams' squares stay in range), found by the same scan. The gradient is scaled back by the
  // student's: ∂a/∂s = c·(∂a/∂s')(c·s).
  const view_pair<T> pair = side_by_side(s, t);
  const bool centered = mode.center_features();
  scan_columns(be, pair, mean, keep, partial, scan, true, true);
  write_centered(be, pair, mean, keep, scan.scale(), z, centered, centered);
  be.gram(z, n, ds, k);
  be.gram(z + n * ds, n, dt, l);
  be.launch(2 * n * n, mirror_lower{k, l, n});
  const square<double> sk{k, n, 1, n}, sl{l, n, 1, n};
  be.reduce_into(n * n, raw_squares_at{sk, sl, estimator::biased}, sums3(0.0, 0.0, 0.0), add3{}, slots3(slots.raw()));
  double* am = k;
  if (mode.row_normalize) {
    be.launch(n, inverse_root_diagonal{k, n, inv_s});
    be.launch(n, inverse_root_diagonal{l, n, inv_t});
    be.reduce_into(n, zero_row_index{k, n}, double(n), thrust::minimum<double>(), slots.zero_rows());
    be.reduce_into(n, zero_row_index{l, n}, double(n), thrust::minimum<double>(), slots.zero_rows() + 1);
    be.launch(n * n, scale_rows{k, inv_s, n, a});
    be.launch(n * n, scale_rows{l, inv_t, n, l});
    am = a;
    if (mode.centered) {  // the biased centering of a general matrix
      for (double* m : {a, l}) {
        line_sums(be, row_entry<double>{square<double>{m, n, 1, n}, false}, n, n, 1.0 / double(n), partial, rows);
        line_sums(be, column_entry{m, n}, n, n, 1.0 / double(n), partial, cols);
        be.reduce_into(n, value_at{rows}, 0.0, thrust::plus<double>(), slots.total());
        be.launch(n * n, double_center{m, rows, cols, slots.total(), n});
      }
    }
  } else if (mode.centered && mode.est == estimator::unbiased) {
    for (double* m : {k, l}) {
      const square<double> sm{m, n, 1, n};
      line_sums(be, row_entry<double>{sm, true}, n, n, 1.0, partial, rows);
      be.reduce_into(n, value_at{rows}, 0.0, thrust::plus<double>(), slots.total());
      be.launch(n * n, u_center_from_total{m, rows, slots.total(), n});
    }
  }
  be.reduce_into(n * n, products_at{am, l}, sums3(0.0, 0.0, 0.0), add3{}, slots3(slots.sums()));
  be.launch(1, finish_term{slots, mode.skip, mode.row_normalize, n});
  be.launch(n * n, alignment_gradient{am, l, slots.scales()});
  double scale = -2.0;  // W is symmetric: W + Wᵀ = 2W
  if (mode.row_normalize) {
    line_sums(be, product_entry{am, k, n}, n, n, 1.0, partial, rows);
    be.launch(n, times_half_cube{inv_s, rows});
    be.launch(n * n, scale_rows{am, inv_s, n, am});
    be.launch(n, subtract_diagonal{am, rows, n});
    be.launch(n * n, symmetrize{am, n});
    scale = -1.0;
  }
  be.multiply(am, n, z, ds, out);
  be.launch(n * ds, scatter_gradient<G>{grad, out, scale * factor, accumulate, slots.status(), scan.scale()});
  be.reduce_into(n * ds, gradient_not_finite<G>{grad}, 0.0, thrust::plus<double>(), slots.grad_bad());
  return slots;
}

/// A loss term's value and whether it was undefined (and skipped).
struct relation_term_value {
  double value;
  std::int64_t skipped;
};

/// Throws, as the host loss does, for a mode the host refuses and for too few rows under the raise policy;
/// true if the term is skipped for too few rows (value 0, a zero gradient).
inline bool too_few_rows(const char* fn, std::int64_t n, const relation_mode& mode) {
  if (mode.row_normalize && mode.centered && mode.est == estimator::unbiased) {
    cka::detail::fail_argument(fn, "row_normalize with centered = true needs estimator::biased (U-centering is defined "
                                   "for symmetric Grams only)");
  }
  const std::int64_t needed = mode.centered && mode.est == estimator::unbiased ? 4 : 2;
  if (n >= needed) return false;
  if (!mode.skip) {
    cka::detail::fail_argument(fn, "the student has ", n, " samples but ",
                               !mode.centered ? "an uncentered alignment" : mode.est == estimator::unbiased ? "the unbiased estimator" : "the biased estimator",
                               " needs at least ", needed);
  }
  return true;
}

/// One RCKA term, 1 − alignment of the row Grams of s and t (callers pass transposed views for the class
/// relation), on a context, waiting for it: relation_core, then its sums read back (to_host) and the
/// host's ratio(centered_totals) — which throws for an overflow or, under the raise policy, an undefined
/// alignment, with the host's messages, and gives NaN for a skipped one. A non-finite element is
/// cka::invalid_argument naming it (found on that error path only); a gradient beyond G's range (after
/// this term's scatter, which adds to the earlier term's) the host's overflow error. One read-back.
template <class Backend, class Ratio, class T, class G>
relation_term_value relation_term(const Backend& be, Ratio&& ratio, const strided<T>& s, const strided<T>& t,
                                  const strided_out<G>& grad, const relation_mode& mode, double weight, bool accumulate) {
  const char* fn = be.fn;
  if (too_few_rows(fn, s.rows, mode)) {
    if (!accumulate) be.launch(s.rows * s.cols, scatter_gradient<G>{grad, nullptr, 0.0, false});
    return {0.0, 1};
  }
  auto scratch = be.scratch(std::size_t(relation_scratch(s.rows, s.cols, s.cols + t.cols)));
  const term_slots slots = relation_core(be, scratch.get(), s, t, mode, grad, weight, accumulate);
  double h[term_slots::count];
  be.to_host(h, slots.at, term_slots::count);
  const term_slots read{h};  // the same layout, read on the host
  if (*read.bad() > 0) {
    // The views as the caller passed them (a class relation's are transposed back): row-major indices.
    require_finite(be, "student", mode.transposed ? transposed(s) : s);
    require_finite(be, "teacher", mode.transposed ? transposed(t) : t);
    cka::detail::fail_argument(fn, "an element of the student or the teacher is not finite");
  }
  if (mode.row_normalize) {
    for (int side = 0; side < 2; ++side) {
      const double zero_row = read.zero_rows()[side];
      if (zero_row >= double(s.rows)) continue;
      if (mode.skip) return {0.0, 1};
      cka::detail::fail_domain(fn, side == 0 ? "the student's" : "the teacher's", " row ", std::int64_t(zero_row),
                               " is zero, so row_normalize would divide by zero");
    }
  }
  const double* sums = read.sums();
  const double a = ratio(centered_totals{sums[0], sums[1], sums[2], read.raw()[0], read.raw()[1]});
  if (*read.grad_bad() > 0) cka::detail::fail_loss_overflow(fn);
  if (!(a == a)) return {0.0, 1};
  return {1.0 - a, 0};
}

/// A term's value, status and count of non-finite gradient elements copied out of its slots (before its
/// scratch goes), or set for a skipped one (slots null).
struct keep_term {
  term_slots slots;  // at null: a skipped term
  double* out;       // value, status, non-finite gradient elements
  CKA_HD void operator()(std::int64_t) const {
    const bool skipped = slots.at == nullptr;
    out[0] = skipped ? 0.0 : *slots.value();
    out[1] = skipped ? double(term_skipped) : *slots.status();
    out[2] = skipped ? 0.0 : *slots.grad_bad();
  }
};

/// One RCKA term without waiting: relation_core, its value, status and count of non-finite gradient
/// elements left in out[0..2] (the context's memory). Too few rows: skipped, or cka::invalid_argument
/// under the raise policy (the shapes are known on the host).
template <class Backend, class T, class G>
void relation_term_async(const Backend& be, const strided<T>& s, const strided<T>& t, const strided_out<G>& grad,
                         const relation_mode& mode, double weight, bool accumulate, double* out) {
  if (too_few_rows(be.fn, s.rows, mode)) {
    if (!accumulate) be.launch(s.rows * s.cols, scatter_gradient<G>{grad, nullptr, 0.0, false});
    be.launch(1, keep_term{term_slots{nullptr}, out});
    return;
  }
  auto scratch = be.scratch(std::size_t(relation_scratch(s.rows, s.cols, s.cols + t.cols)));
  const term_slots slots = relation_core(be, scratch.get(), s, t, mode, grad, weight, accumulate);
  be.launch(1, keep_term{slots, out});
}

/// The loss of one or two terms (value, status, non-finite gradient elements at `terms`, three doubles
/// each) into the caller's slot: the weighted sum of the values and the sum of the skip counts; or NaN and
/// the first term's error; or NaN and term_gradient_overflow where the gradient or the weighted value left
/// T's range. The loss's status also goes to terms[3·count] for zero_gradient_on_error.
template <class T>
struct store_loss {
  double* terms;
  int count;
  double w0, w1;
  T* value;
  std::int64_t* status;
  CKA_HD void operator()(std::int64_t) const {
    std::int64_t st = 0;
    double v = 0, bad = 0;
    for (int q = 0; q < count; ++q) {
      const std::int64_t code = std::int64_t(terms[3 * q + 1]);
      if (st >= 0) st = code < 0 ? code : st + code;
      v += (q == 0 ? w0 : w1) * terms[3 * q];
      bad += terms[3 * q + 2];
    }
    const T out = T(v);
    if (st >= 0 && (bad > 0 || !(out - out == T(0)))) st = term_gradient_overflow;
    *value = st < 0 ? T(quiet_nan()) : out;
    if (status != nullptr) *status = st;
    terms[3 * count] = double(st);
  }
};

/// The checks of a relation loss on views that need no data: layouts, the gradient's shape, a gradient
/// that overlaps neither itself nor the student or the teacher, the same samples, and (class relation) the
/// same classes.
template <class TS, class TT, class G>
void require_relation_shapes(const char* fn, const strided<TS>& s, const strided<TT>& t, const strided_out<G>& g,
                             bool same_columns) {
  require_layout(fn, "student", s.ptr, s.rows, s.cols, s.row_stride, s.col_stride);
  require_layout(fn, "teacher", t.ptr, t.rows, t.cols, t.row_stride, t.col_stride);
  require_layout(fn, "grad", g.ptr, g.rows, g.cols, g.row_stride, g.col_stride);
  using cka::detail::placement_of;
  cka::detail::require_gradient_view(fn, placement_of(g.ptr, g.rows, g.cols, g.row_stride, g.col_stride),
                                     placement_of(s.ptr, s.rows, s.cols, s.row_stride, s.col_stride),
                                     placement_of(t.ptr, t.rows, t.cols, t.row_stride, t.col_stride));
  if (s.rows != t.rows) {
    cka::detail::fail_argument(fn, "student has ", s.rows, " samples (rows) but teacher has ", t.rows,
                               "; both representations must hold the same samples");
  }
  if (same_columns && s.cols != t.cols) {
    cka::detail::fail_argument(fn, "the student has ", s.cols, " classes (columns) but the teacher has ", t.cols,
                               "; the class relation compares the same classes");
  }
}

/// Which relations a loss sums: the rows (sample relation, FCKA), the columns (class relation), or both
/// (rcka_loss, weighted).
enum class relations { rows, columns, both };

/// A loss of one or both relations without waiting for the context: shapes checked on the host (and too
/// few rows under the raise policy thrown), everything that reads the data left as a status with the value
/// in the caller's slot (value, status: pointers in the context's memory), the gradient zeroed where the
/// status is an error. Nothing read back.
template <class Backend, class T, class G>
void relation_loss_async(const Backend& be, const strided<T>& s, const strided<T>& t, const strided_out<G>& grad,
                         relation_mode mode, relations which, double w_rows, double w_columns, G* value,
                         std::int64_t* status) {
  const char* fn = be.fn;
  require_relation_shapes(fn, s, t, grad, which != relations::rows);
  if (value == nullptr) cka::detail::fail_argument(fn, "the loss slot's value pointer is null");
  auto terms = be.scratch(7);
  double* out = terms.get();
  if (which != relations::columns) relation_term_async(be, s, t, grad, mode, w_rows, false, out);
  if (which != relations::rows) {
    const bool both = which == relations::both;
    mode.transposed = true;
    relation_term_async(be, transposed(s), transposed(t), grad.transposed(), mode, both ? w_columns : 1.0, both,
                        both ? out + 3 : out);
  }
  const int count = which == relations::both ? 2 : 1;
  be.launch(1, store_loss<G>{out, count, which == relations::columns ? 1.0 : w_rows, w_columns, value, status});
  be.launch(grad.rows * grad.cols, zero_gradient_on_error<G>{grad, out + 3 * count});
}

}  // namespace cka::device::detail
