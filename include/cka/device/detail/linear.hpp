#pragma once
// Private: the sums of linear CKA of two strided views as Thrust algorithms around symmetric products, in
// the context's memory: column means (constant columns kept exactly zero) and each view's first row, the
// centered features written once into Z = [Xc Yc] (n×D, column-major, double, times a power-of-two scale
// per view), then by the cheaper of the two forms (the host's rule, D = d1 + d2 < n for features):
// - feature space: G = ZᵀZ (D×D) by the caller's product (Eigen on the host systems; cuBLAS DSYRK on
//   CUDA), then its block sums and references as one transform-reduce over G and, for the unbiased
//   estimator, the row-norm terms as another — n·D² flops, nothing copied back but the sums;
// - sample space (fewer samples than features, as a training batch of wide layers): K = XcXcᵀ and
//   L = YcYcᵀ (n×n each) by the caller's gram, then the centered products of hsic.hpp — n²·D flops.

#include <cka/device/detail/hsic.hpp>

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform_reduce.h>
#include <thrust/tuple.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace cka::device::detail {

/// The column statistics of a view run in two steps with full parallelism on a GPU: chunks of rows ×
/// columns, then the chunks of each column in order. Rows per chunk: at least 256, at most 1024 chunks.
inline std::int64_t moment_chunk(std::int64_t rows) { return std::max<std::int64_t>(256, (rows + 1023) / 1024); }
inline std::int64_t moment_chunks(std::int64_t rows) { return std::max<std::int64_t>(1, (rows + moment_chunk(rows) - 1) / moment_chunk(rows)); }
/// Scratch doubles of column_moments for that many rows and columns: a sum and a count per chunk and column.
inline std::int64_t moments_scratch(std::int64_t rows, std::int64_t cols) { return 2 * moment_chunks(rows) * cols; }

/// Item c·d + j: the sum of column j over chunk c of the pooled rows (m's, then more's), and how many of
/// them differ from m's first row.
template <class T>
struct column_chunk {
  strided<T> m, more;
  std::int64_t chunk;
  double* sum;
  double* differ;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t d = m.cols, j = item % d, c = item / d, total = m.rows + more.rows;
    const std::int64_t r0 = c * chunk, r1 = r0 + chunk < total ? r0 + chunk : total;
    const T first = m.ptr[j * m.col_stride];
    double s = 0, k = 0;
    for (std::int64_t r = r0; r < r1; ++r) {
      const T e = r < m.rows ? m.ptr[r * m.row_stride + j * m.col_stride]
                             : more.ptr[(r - m.rows) * more.row_stride + j * more.col_stride];
      s += double(e);
      k += e != first ? 1.0 : 0.0;
    }
    sum[item] = s;
    differ[item] = k;
  }
};

/// Each column's mean, and in `keep` how many of its values differ from its first (0: a constant column,
/// centered to exact zeros), over the rows of m and then those of `more` (a pooled sample; none by
/// default); m has at least one row.
/// partial: moments_scratch(m.rows + more.rows, m.cols) doubles of the context's memory.
template <class Policy, class T>
void column_moments(const Policy& policy, const strided<T>& m, double* mean, double* keep, double* partial,
                    const strided<T>& more = {nullptr, 0, 0, 0, 0}) {
  const std::int64_t total = m.rows + more.rows, d = m.cols, chunks = moment_chunks(total);
  double* sum = partial;
  double* differ = partial + chunks * d;
  const thrust::counting_iterator<std::int64_t> first(0);
  thrust::for_each(policy, first, first + chunks * d, column_chunk<T>{m, more, moment_chunk(total), sum, differ});
  thrust::for_each(policy, first, first + d, add_chunks{sum, differ, d, chunks, 1.0 / double(total), 1.0, false, mean, keep});
}

/// Z(row0 + i, col0 + j) = (x_ij − mean_j)·scale, or 0 where keep_j = 0 (a constant column), in a
/// column-major Z with leading dimension ld:
/// a view's rows written as a block of columns (col0) or of rows (row0, a pooled sample).
template <class T>
struct center_into {
  strided<T> m;
  const double* mean;
  const double* keep;
  double scale;
  double* z;
  std::int64_t ld, row0, col0;
  CKA_HD void operator()(std::int64_t flat) const {
    const std::int64_t i = flat % m.rows, j = flat / m.rows;
    const double v = double(m.ptr[i * m.row_stride + j * m.col_stride]) - mean[j];
    z[(col0 + j) * ld + row0 + i] = keep[j] > 0 ? v * scale : 0.0;
  }
};

using sums5 = thrust::tuple<double, double, double, double, double>;

struct add5 {
  CKA_HD sums5 operator()(const sums5& a, const sums5& b) const {
    return sums5(thrust::get<0>(a) + thrust::get<0>(b), thrust::get<1>(a) + thrust::get<1>(b),
                 thrust::get<2>(a) + thrust::get<2>(b), thrust::get<3>(a) + thrust::get<3>(b),
                 thrust::get<4>(a) + thrust::get<4>(b));
  }
};

/// Row i's squared norms k = ‖x̃_i‖², l = ‖ỹ_i‖² in Z, as (k, l, k·l, k², l²).
struct row_norm_terms {
  const double* z;
  std::int64_t n, d1, d2;
  CKA_HD sums5 operator()(std::int64_t i) const {
    double k = 0, l = 0;
    for (std::int64_t c = 0; c < d1; ++c) k += z[c * n + i] * z[c * n + i];
    for (std::int64_t c = d1; c < d1 + d2; ++c) l += z[c * n + i] * z[c * n + i];
    return sums5(k, l, k * l, k * k, l * l);
  }
};

/// |x_ij| at flat index k (row-major over the view).
template <class T>
struct abs_at {
  strided<T> m;
  CKA_HD double operator()(std::int64_t k) const {
    const double v = double(m.ptr[(k / m.cols) * m.row_stride + (k % m.cols) * m.col_stride]);
    return v < 0 ? -v : v;
  }
};

/// The largest magnitude of a view.
template <class Policy, class T>
double magnitude_top(const Policy& policy, const strided<T>& m) {
  const thrust::counting_iterator<std::int64_t> first(0);
  return thrust::transform_reduce(policy, first, first + m.rows * m.cols, abs_at<T>{m}, 0.0, thrust::maximum<double>());
}

/// The power-of-two scale that keeps the fourth powers of a largest magnitude `top` in range (as the
/// host's safe_scale_for: 2^−e outside [2^−200, 2^200], else 1).
inline double scale_for_top(double top) {
  if (top == 0.0 || (top < std::ldexp(1.0, 200) && top > std::ldexp(1.0, -200))) return 1.0;
  int e = 0;
  std::frexp(top, &e);
  return std::ldexp(1.0, -e);
}

/// That scale for a view (as the host's safe_scale).
template <class Policy, class T>
double magnitude_scale(const Policy& policy, const strided<T>& m) {
  return scale_for_top(magnitude_top(policy, m));
}

/// The five sums of linear CKA: kl = ‖C_xy‖², kk = ‖C_xx‖², ll = ‖C_yy‖² (plus the unbiased estimator's
/// row-norm terms), and the references: in feature space ‖S_xx‖², ‖S_yy‖² of the second moments about
/// each view's first row, in sample space Σ K'², Σ L'² (K' = K, or K̃ for the unbiased estimator) — the
/// host's rules for a vanishing self-product in each form.
struct centered_totals {
  double kl, kk, ll, ref_k, ref_l;
};

/// Whether the sample-space form is the cheaper (n²·D against n·D² flops), and the scratch doubles either
/// form needs: n·D for Z, 2·D for the column statistics (and their chunks), and D² (G) or 2n² plus
/// centered_sums' scratch (K, L and their row sums).
inline bool linear_by_grams(std::int64_t n, std::int64_t dd) { return n < dd; }
/// The form's own part of that scratch: G, or K, L and centered_sums' scratch.
inline std::int64_t form_scratch(std::int64_t n, std::int64_t dd) {
  return linear_by_grams(n, dd) ? 2 * n * n + centered_sums_scratch(n) : dd * dd;
}
inline std::int64_t linear_scratch(std::int64_t n, std::int64_t dd) {
  return n * dd + 2 * dd + form_scratch(n, dd) + moments_scratch(n, dd);
}

/// M(i, j) = M(j, i) above the diagonal of a column-major n×n matrix whose lower triangle is written.
struct mirror_lower {
  double* m;
  std::int64_t n;
  CKA_HD void operator()(std::int64_t flat) const {
    const std::int64_t i = flat % n, j = flat / n;
    if (i < j) m[j * n + i] = m[i * n + j];
  }
};

/// K_ij², L_ij² at flat index k (the diagonal left out for the unbiased estimator).
struct raw_squares_at {
  square<double> k, l;
  bool unbiased;
  CKA_HD sums3 operator()(std::int64_t flat) const {
    const std::int64_t i = flat / k.n, j = flat % k.n;
    if (unbiased && i == j) return sums3(0.0, 0.0, 0.0);
    const double a = k.at(i, j), b = l.at(i, j);
    return sums3(a * a, b * b, 0.0);
  }
};

/// The feature form's sums at flat index k of G = ZᵀZ (D×D, column-major, only its lower triangle read):
/// for a = k mod D, b = k div D, G_ab² into the block it belongs to — ‖C_xx‖² (a, b < d1), ‖C_yy‖²
/// (a, b ≥ d1), ‖C_xy‖² (a ≥ d1 > b; each pair once) — and the references ‖S_xx‖², ‖S_yy‖² of the second
/// moments about each view's first row, S = C + n·δδᵀ with δ = −(row 0 of Z). As (kl, kk, ll, ref_k, ref_l).
struct feature_block_terms {
  const double* g;
  const double* z;  // Z (n×D, column-major): row 0 gives δ
  std::int64_t n, dd, d1;
  CKA_HD sums5 operator()(std::int64_t k) const {
    const std::int64_t a = k % dd, b = k / dd;
    const double v = a >= b ? g[b * dd + a] : g[a * dd + b];
    const bool xa = a < d1, xb = b < d1;
    if (xa != xb) return xa ? sums5(0.0, 0.0, 0.0, 0.0, 0.0) : sums5(v * v, 0.0, 0.0, 0.0, 0.0);
    const double s = v + double(n) * z[a * n] * z[b * n];
    return xa ? sums5(0.0, v * v, 0.0, s * s, 0.0) : sums5(0.0, 0.0, v * v, 0.0, s * s);
  }
};

/// Device buffers: `scratch` holds at least linear_scratch(n, D) doubles in the context's memory;
/// product(z, n, D, g) writes G = ZᵀZ (D×D, column-major, its lower triangle at least) there, and gram(z,
/// n, d, k) K = ZZᵀ (n×n, column-major, the lower triangle at least) for an n×d block Z.
template <class Policy, class Product, class Gram, class T>
centered_totals linear_sums(const Policy& policy, Product&& product, Gram&& gram, double* scratch, const strided<T>& x,
                            const strided<T>& y, bool unbiased) {
  const std::int64_t n = x.rows, d1 = x.cols, d2 = y.cols, dd = d1 + d2;
  double* z = scratch;
  double* mean = z + n * dd;  // D means, then D keep flags
  double* keep = mean + dd;
  double* g = keep + dd;  // G, or K, L and their row sums
  const double sx = magnitude_scale(policy, x), sy = magnitude_scale(policy, y);
  const thrust::counting_iterator<std::int64_t> first(0);
  double* partial = g + form_scratch(n, dd);
  column_moments(policy, x, mean, keep, partial);
  column_moments(policy, y, mean + d1, keep + d1, partial);
  thrust::for_each(policy, first, first + n * d1, center_into<T>{x, mean, keep, sx, z, n, 0, 0});
  thrust::for_each(policy, first, first + n * d2, center_into<T>{y, mean + d1, keep + d1, sy, z, n, 0, d1});
  if (linear_by_grams(n, dd)) {
    double* k = g;
    double* l = g + n * n;
    gram(static_cast<const double*>(z), n, d1, k);
    gram(static_cast<const double*>(z + n * d1), n, d2, l);
    thrust::for_each(policy, first, first + n * n, mirror_lower{k, n});
    thrust::for_each(policy, first, first + n * n, mirror_lower{l, n});
    const square<double> sk{k, n, 1, n}, sl{l, n, 1, n};
    const sums3 c = centered_sums(policy, sk, sl, unbiased, l + n * n);
    const sums3 raw = thrust::transform_reduce(policy, first, first + n * n, raw_squares_at{sk, sl, unbiased},
                                               sums3(0.0, 0.0, 0.0), add3{});
    return {thrust::get<0>(c), thrust::get<1>(c), thrust::get<2>(c), thrust::get<0>(raw), thrust::get<1>(raw)};
  }
  product(static_cast<const double*>(z), n, dd, g);

  const sums5 f = thrust::transform_reduce(policy, first, first + dd * dd, feature_block_terms{g, z, n, dd, d1},
                                           sums5(0.0, 0.0, 0.0, 0.0, 0.0), add5{});
  centered_totals r{thrust::get<0>(f), thrust::get<1>(f), thrust::get<2>(f), thrust::get<3>(f), thrust::get<4>(f)};
  if (unbiased) {
    const sums5 t = thrust::transform_reduce(policy, first, first + n, row_norm_terms{z, n, d1, d2},
                                             sums5(0.0, 0.0, 0.0, 0.0, 0.0), add5{});
    const double nn = double(n), c1 = nn / (nn - 2), c2 = 1.0 / ((nn - 1) * (nn - 2));
    const double sk = thrust::get<0>(t), sl = thrust::get<1>(t);
    r.kl += c2 * sk * sl - c1 * thrust::get<2>(t);
    r.kk += c2 * sk * sk - c1 * thrust::get<3>(t);
    r.ll += c2 * sl * sl - c1 * thrust::get<4>(t);
  }
  return r;
}

}  // namespace cka::device::detail
