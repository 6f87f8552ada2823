#pragma once
// Private: the steps of the relation engine (relation.hpp) — its slots and status codes, and the
// elementwise passes it launches (U-centering, double centering, row scaling, the gradient's factors and
// its scatter into the caller's view) — as small functors for the backend's launch and reduce.

#include <cka/detail/ratio.hpp>
#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/linear.hpp>
#include <cka/device/detail/moments.hpp>

#include <thrust/functional.h>

#include <algorithm>
#include <cfloat>
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

/// ⟨A, M⟩, ‖A‖², ‖M‖² at flat index k.
struct products_at {
  const double* a;
  const double* m;
  CKA_HD sums3 operator()(std::int64_t k) const { return sums3(a[k] * m[k], a[k] * a[k], m[k] * m[k]); }
};

/// The scalars of one term, kept in the context's memory so that nothing waits for the stream: the
/// reductions' results, then what finish_term derives from them.
struct term_slots {
  double* at;  // term_slots::count doubles
  static constexpr std::int64_t count = 15;
  CKA_HD double* bad() const { return at; }         // non-finite input elements
  CKA_HD double* sums() const { return at + 1; }    // ⟨A, M⟩, ‖A‖², ‖M‖²
  CKA_HD double* raw() const { return at + 4; }     // ‖K‖², ‖L‖² (the references), and a spare
  CKA_HD double* total() const { return at + 7; }   // a Gram's row-sum total (U-centering)
  CKA_HD double* scales() const { return at + 8; }  // W = M·scales[0] − A·scales[1]
  CKA_HD double* value() const { return at + 10; }  // 1 − a, or 0 (skipped), or NaN (an error)
  CKA_HD double* status() const { return at + 11; } // term_status
  CKA_HD double* zero_rows() const { return at + 12; }  // the first zero diagonal of K and of L (n: none)
  CKA_HD double* grad_bad() const { return at + 14; }   // non-finite gradient elements after the scatter
};

/// How a term compares the two Grams (rcka::relation_options): centered CKA (U-centered for the unbiased
/// estimator), or the uncentered cosine; row_normalize scales each Gram row i by 1/√G_ii first (then, when
/// centered, the biased double centering of the row-scaled Gram); skip: an undefined term is skipped.
struct relation_mode {
  bool centered = true;
  bool row_normalize = false;
  estimator est = estimator::biased;
  bool skip = true;
  /// The term compares the columns (the class relation: the engine sees the views transposed).
  bool transposed = false;
  /// Features centered before the Grams (H·K·H = Xc·Xcᵀ): centered CKA without row scaling.
  bool center_features() const { return centered && !row_normalize; }
};

/// What became of a term, in the context's memory (as a double in term_slots, as an int64 in a loss_slot):
/// the host loss's skip count when non-negative, else an error the host function would have thrown.
/// term_gradient_overflow: the loss or its gradient beyond the result type (set for the whole loss).
enum term_status : int {
  term_defined = 0,
  term_skipped = 1,
  term_not_finite = -1,
  term_overflow = -2,
  term_undefined = -3,
  term_gradient_overflow = -4
};

/// 1 where an element of s (items below s's size) or of t is NaN or ±Inf (counted into the term's slots).
template <class T>
struct not_finite_count {
  not_finite_at<T> s, t;
  std::int64_t size_s;
  CKA_HD double operator()(std::int64_t k) const { return (k < size_s ? s(k) : t(k - size_s)) ? 1.0 : 0.0; }
};

/// p[i].
struct value_at {
  const double* p;
  CKA_HD double operator()(std::int64_t i) const { return p[i]; }
};

/// U-centering in place of a symmetric n×n matrix from its row sums r without the diagonal and their total
/// (in the slots): K_ij − (r_i + r_j)/(n−2) + Σr/((n−1)(n−2)) off the diagonal, 0 on it.
struct u_center_from_total {
  double* k;
  const double* r;
  const double* total;
  std::int64_t n;
  CKA_HD void operator()(std::int64_t flat) const {
    const flat_index f = divide(flat, n);
    const std::int64_t i = f.r, j = f.q;
    const double nn = double(n), u = 1.0 / (nn - 2), c = *total / ((nn - 1) * (nn - 2));
    k[flat] = i == j ? 0.0 : k[flat] - u * (r[i] + r[j]) + c;
  }
};

/// The term's outcome from its sums, with the host's rules (cka::detail::cka_ratio): non-finite input, then
/// a zero row under row scaling, then overflow, then a vanishing self-product (relative (64ε)² of its
/// reference: cka::detail::vanishes_at) — skipped or an error under the policy — else a = ⟨A, M⟩/(‖A‖‖M‖) and W's scales
/// M/(‖A‖‖M‖), a/‖A‖².
struct finish_term {
  term_slots slots;
  bool skip;
  bool row_normalize;
  std::int64_t n;
  CKA_HD void operator()(std::int64_t) const {
    const double* p = slots.sums();
    const double* raw = slots.raw();
    double status = term_defined, value = 0, scale_m = 0, scale_a = 0;
    const bool finite = p[0] - p[0] == 0.0 && p[1] - p[1] == 0.0 && p[2] - p[2] == 0.0;
    if (*slots.bad() > 0) {
      status = term_not_finite;
    } else if (row_normalize && (slots.zero_rows()[0] < double(n) || slots.zero_rows()[1] < double(n))) {
      status = skip ? term_skipped : term_undefined;  // a zero row: row scaling would divide by zero
    } else if (!finite) {
      status = term_overflow;
    } else if (cka::detail::vanishes_at(p[1], raw[0], DBL_EPSILON) || cka::detail::vanishes_at(p[2], raw[1], DBL_EPSILON)) {
      status = skip ? term_skipped : term_undefined;
    } else {
      const double na = sqrt(p[1]), nm = sqrt(p[2]);
      const double a = p[0] / na / nm;
      value = 1.0 - a;
      scale_m = 1.0 / (na * nm);
      scale_a = a / p[1];
    }
    slots.scales()[0] = scale_m;
    slots.scales()[1] = scale_a;
    slots.value()[0] = status < 0 ? quiet_nan() : value;
    slots.status()[0] = status;
  }
};

/// inv[i] = 1/√K_ii (0 for a zero row, which finish_term reports).
struct inverse_root_diagonal {
  const double* k;
  std::int64_t n;
  double* inv;
  CKA_HD void operator()(std::int64_t i) const {
    const double d = k[i * n + i];
    inv[i] = d > 0 ? 1.0 / sqrt(d) : 0.0;
  }
};
/// i where K_ii is not positive, else n (a minimum over the rows finds the first zero row).
struct zero_row_index {
  const double* k;
  std::int64_t n;
  CKA_HD double operator()(std::int64_t i) const { return k[i * n + i] > 0 ? double(n) : double(i); }
};
/// out(i, j) = inv_i·m(i, j) (a row scaling; out may be m).
struct scale_rows {
  const double* m;
  const double* inv;
  std::int64_t n;
  double* out;
  CKA_HD void operator()(std::int64_t flat) const { out[flat] = inv[divide(flat, n).r] * m[flat]; }
};
/// Entry (i, j) of a column-major n×n matrix as a term of column j's sum (line_sums' f: the line first).
struct column_entry {
  const double* m;
  std::int64_t n;
  CKA_HD double operator()(std::int64_t j, std::int64_t i) const { return m[j * n + i]; }
};
/// H·P·H in place for a general (not symmetric) P: P_ij − r_i − c_j + g, g the mean of the row means
/// (total holds their sum).
struct double_center {
  double* m;
  const double* r;
  const double* c;
  const double* total;
  std::int64_t n;
  CKA_HD void operator()(std::int64_t flat) const {
    const flat_index f = divide(flat, n);
    m[flat] = m[flat] - r[f.r] - c[f.q] + *total / double(n);
  }
};
/// The row scaling's share of ∂a/∂K: d_i = (Σ_l W_il·K_il)·inv_i³/2, taken from W's diagonal below; the
/// sums by line_sums of these products, then the factor.
struct product_entry {
  const double* w;
  const double* k;
  std::int64_t n;
  CKA_HD double operator()(std::int64_t i, std::int64_t l) const { return w[l * n + i] * k[l * n + i]; }
};
struct times_half_cube {
  const double* inv;
  double* d;
  CKA_HD void operator()(std::int64_t i) const { d[i] = d[i] * inv[i] * inv[i] * inv[i] / 2; }
};
struct subtract_diagonal {
  double* m;
  const double* d;
  std::int64_t n;
  CKA_HD void operator()(std::int64_t i) const { m[i * n + i] -= d[i]; }
};
/// G + Gᵀ in place (each pair i ≤ j by one thread).
struct symmetrize {
  double* m;
  std::int64_t n;
  CKA_HD void operator()(std::int64_t flat) const {
    const flat_index f = divide(flat, n);
    const std::int64_t i = f.r, j = f.q;
    if (i > j) return;
    const double v = m[j * n + i] + m[i * n + j];
    m[j * n + i] = v;
    m[i * n + j] = v;
  }
};

/// W = M·scale_m − A·scale_a over A (the scales in the term's slots).
struct alignment_gradient {
  double* a;
  const double* m;
  const double* scales;
  CKA_HD void operator()(std::int64_t k) const { a[k] = m[k] * scales[0] - a[k] * scales[1]; }
};

/// grad(i, j) = factor·g(i, j) (+ grad(i, j) when accumulating), g column-major rows×cols; a zero
/// contribution where the term's status (if given) is not term_defined, or g is null.
template <class T>
struct scatter_gradient {
  strided_out<T> out;
  const double* g;
  double factor;
  bool accumulate;
  const double* status = nullptr;
  const double* unscale = nullptr;  ///< a factor in the context's memory (the student's power of two), or none
  CKA_HD void operator()(std::int64_t flat) const {
    const flat_index f = divide(flat, out.rows);  // f.r the row, f.q the column
    T& at = out.ptr[f.r * out.row_stride + f.q * out.col_stride];
    const bool zero = g == nullptr || (status != nullptr && *status != double(term_defined));
    const double v = zero ? 0.0 : factor * (unscale == nullptr ? 1.0 : *unscale) * g[flat];
    at = accumulate ? T(double(at) + v) : T(v);
  }
};

/// 1 where the gradient element at column-major flat index k is NaN or ±Inf (a value beyond T's range
/// after the scatter's conversion: float logits near 1e-40 give a gradient beyond float).
template <class T>
struct gradient_not_finite {
  strided_out<T> out;
  CKA_HD double operator()(std::int64_t flat) const {
    const flat_index f = divide(flat, out.rows);
    const T v = out.ptr[f.r * out.row_stride + f.q * out.col_stride];
    return v - v == T(0) ? 0.0 : 1.0;
  }
};

/// Zeros the gradient where the loss's status (in the context's memory) is an error: a loss_slot's
/// contract is NaN, a zero gradient and a negative status, whichever term failed.
template <class T>
struct zero_gradient_on_error {
  strided_out<T> out;
  const double* status;
  CKA_HD void operator()(std::int64_t flat) const {
    if (*status >= 0.0) return;
    const flat_index f = divide(flat, out.rows);
    out.ptr[f.r * out.row_stride + f.q * out.col_stride] = T(0);
  }
};

}  // namespace cka::device::detail
