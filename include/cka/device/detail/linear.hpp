#pragma once
// Private: the sums of linear CKA of two strided views on a backend. The inputs are read once for their
// checks, column means and scales (moments.hpp), then by the cheaper of the two forms (the host's rule:
// features when D = d1 + d2 < n):
// - feature space: chunks of rows, shifted by each view's first row and scaled, with a column of ones,
//   accumulated into S ((D+1)×(D+1)) by the backend's symmetric product (Eigen on the host systems; cuBLAS
//   DSYRK with β = 1 on CUDA) — n·D² flops, a chunk that stays in L2, no n×D copy — then the exact
//   centering from S's column sums, the block sums and references as one reduction;
// - sample space (fewer samples than features, as a training batch of wide layers): the centered features
//   written once into Z = [Xc Yc], K = XcXcᵀ and L = YcYcᵀ (n×n each) by the backend's gram, then the
//   centered products of hsic.hpp — n²·D flops.
// Everything stays in the context's memory until one read-back of the verdict and the sums at the end.

#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/moments.hpp>

#include <thrust/iterator/zip_iterator.h>
#include <thrust/tuple.h>

#include <algorithm>
#include <cstdint>

namespace cka::device::detail {

using sums5 = thrust::tuple<double, double, double, double, double>;

struct add5 {
  CKA_HD sums5 operator()(const sums5& a, const sums5& b) const {
    return sums5(thrust::get<0>(a) + thrust::get<0>(b), thrust::get<1>(a) + thrust::get<1>(b),
                 thrust::get<2>(a) + thrust::get<2>(b), thrust::get<3>(a) + thrust::get<3>(b),
                 thrust::get<4>(a) + thrust::get<4>(b));
  }
};

/// The five sums of linear CKA: kl = ‖C_xy‖², kk = ‖C_xx‖², ll = ‖C_yy‖² (plus the unbiased estimator's
/// row-norm terms), and the references: in feature space ‖S_xx‖², ‖S_yy‖² of the second moments about
/// each view's first row, in sample space Σ K'², Σ L'² (K' = K, or K̃ for the unbiased estimator) — the
/// host's rules for a vanishing self-product in each form.
struct centered_totals {
  double kl, kk, ll, ref_k, ref_l;
};

/// Whether the sample-space form is the cheaper (n²·D against n·D² flops).
inline bool linear_by_grams(std::int64_t n, std::int64_t dd) { return n < dd; }
/// Rows per chunk of the feature form: R×(D+1) doubles within 16 MiB (an H100's or H200's L2 holds it), at
/// least 256 rows, at most n.
inline std::int64_t feature_chunk(std::int64_t n, std::int64_t dd) {
  return std::min(n, std::max<std::int64_t>(256, (std::int64_t(1) << 21) / (dd + 1)));
}
/// The form's own scratch: a chunk of `rows` rows and S ((D+1)², features), or Z, K, L and centered_sums'
/// scratch (Grams).
inline std::int64_t form_scratch(std::int64_t n, std::int64_t dd, std::int64_t rows) {
  return linear_by_grams(n, dd) ? n * dd + 2 * n * n + centered_sums_scratch(n) : rows * (dd + 1) + (dd + 1) * (dd + 1);
}
/// Scratch doubles of linear_sums with chunks of `rows` rows (0: feature_chunk): the slots (the scan's
/// verdict, ten sums, the sample form's verdict), the means and flags (2D), the scan's chunks, the form's.
constexpr std::int64_t linear_slots = input_slots::count + 10 + 8;
inline std::int64_t linear_scratch(std::int64_t n, std::int64_t dd, std::int64_t rows = 0) {
  return linear_slots + 2 * dd + moments_scratch(n, dd) + form_scratch(n, dd, rows > 0 ? rows : feature_chunk(n, dd));
}

/// A chunk W = [1 | x̃ | ỹ] (h×(D+1), column-major) of rows r0 … r0 + h − 1: 1 in column 0, then each
/// view's values scaled by its power of two and shifted by its first row, x·s − x₀·s (scaled first, so
/// that neither overflows; a constant column is exactly 0). Item g·h + i writes row i's features in group
/// g (column_group, moments.hpp), and group 0 its 1.
template <class T>
struct shifted_chunk {
  view_pair<T> m;
  const double* scale;
  std::int64_t r0, h;
  double* w;
  CKA_HD void operator()(std::int64_t item) const {
    const flat_index f = divide(item, h);
    const std::int64_t i = f.r, j0 = f.q * column_group<T>, cols = m.cols();
    const std::int64_t j1 = j0 + column_group<T> < cols ? j0 + column_group<T> : cols;
    if (j0 == 0) w[i] = 1.0;
    for (std::int64_t j = j0; j < j1; ++j) {
      const double sc = scale[m.in_b(0, j) ? 1 : 0];
      w[(j + 1) * h + i] = double(m.at(r0 + i, j)) * sc - double(m.at(0, j)) * sc;
    }
  }
};

/// The feature form's sums at item k = a + D·b of S = Σ wwᵀ ((D+1)×(D+1), column-major, its lower triangle
/// read; index 0 the ones column): n = S₀₀, the shifted column sums s_a = S_a0, the shifted second moments
/// G_ab, and the centered C_ab = G_ab − s_a·s_b/n — C_ab² into its block (‖C_xy‖² for a ≥ d1 > b, each pair
/// once; ‖C_xx‖², ‖C_yy‖²) and G_ab² into the references ‖S_xx‖², ‖S_yy‖² (the second moments about each
/// view's first row: the host's rule for a vanishing self-product).
struct shifted_feature_terms {
  const double* s;
  std::int64_t dd, d1;
  CKA_HD sums5 operator()(std::int64_t k) const {
    const std::int64_t p = dd + 1, a = k % dd + 1, b = k / dd + 1;
    const double g = a >= b ? s[b * p + a] : s[a * p + b];
    const double c = g - s[a] * (s[b] / s[0]);
    const bool xa = a <= d1, xb = b <= d1;
    if (xa != xb) return xa ? sums5(0.0, 0.0, 0.0, 0.0, 0.0) : sums5(c * c, 0.0, 0.0, 0.0, 0.0);
    return xa ? sums5(0.0, c * c, 0.0, g * g, 0.0) : sums5(0.0, 0.0, c * c, 0.0, g * g);
  }
};

/// Row i's squared norms about the means, k = ‖x_i − μ‖², l = ‖y_i − ν‖² (scaled; the means from S's
/// shifted column sums), as (k, l, k·l, k², l²): the unbiased estimator's terms.
template <class T>
struct centered_row_norms {
  view_pair<T> m;
  const double* scale;
  const double* s;
  CKA_HD sums5 operator()(std::int64_t i) const {
    const std::int64_t d = m.cols();
    double k = 0, l = 0;
    for (std::int64_t j = 0; j < d; ++j) {
      const bool b = m.in_b(0, j);
      const double sc = scale[b ? 1 : 0];
      const double v = (double(m.at(i, j)) * sc - double(m.at(0, j)) * sc) - s[j + 1] / s[0];
      (b ? l : k) += v * v;
    }
    return sums5(k, l, k * l, k * k, l * l);
  }
};

/// M(i, j) = M(j, i) above the diagonal of column-major n×n matrices whose lower triangles are written
/// (two at once: item k < n² is the first's, else the second's).
struct mirror_lower {
  double* m0;
  double* m1;
  std::int64_t n;
  CKA_HD void operator()(std::int64_t flat) const {
    double* m = flat < n * n ? m0 : m1;
    const flat_index f = divide(flat < n * n ? flat : flat - n * n, n);
    const std::int64_t i = f.r, j = f.q;
    if (i < j) m[j * n + i] = m[i * n + j];
  }
};

/// K_ij², L_ij² at flat index k (the diagonal left out for the unbiased estimator).
struct raw_squares_at {
  square<double> k, l;
  estimator est;
  CKA_HD sums3 operator()(std::int64_t flat) const {
    const flat_index f = divide(flat, k.n);
    const std::int64_t i = f.q, j = f.r;
    if (est == estimator::unbiased && i == j) return sums3(0.0, 0.0, 0.0);
    const double a = k.at(i, j), b = l.at(i, j);
    return sums3(a * a, b * b, 0.0);
  }
};

/// A zip iterator over consecutive doubles p, p + 1, … (the slots a tuple reduction writes).
inline auto slots3(double* p) { return thrust::make_zip_iterator(thrust::make_tuple(p, p + 1, p + 2)); }

/// The sums of linear CKA of checked-shape views x, y (the same n rows, n ≥ 2) on a backend: the scan,
/// then the cheaper form, then one read-back (the verdict and the sums) — which throws cka::invalid_argument
/// for a non-finite element. Features: chunks of rows [1 | x̃ | ỹ] written and accumulated into S by the
/// backend's symmetric product (DSYRK with β = 1), the centering exact from S's shifted column sums at the
/// end (the host moments engine's mathematics: no n×D copy); the unbiased estimator adds one pass over the
/// rows for their centered norms. Grams (n < D): Z = [Xc Yc] written once, K and L, their centered sums.
/// scratch: linear_scratch(n, D, rows) doubles of the context's memory (rows: the chunk's, 0 for
/// feature_chunk; tests choose small ones). Launches: 4 (scan) + 2 per chunk + 1 (+1 unbiased) for
/// features, 13 for Grams; one synchronisation.
template <class Backend, class T>
centered_totals linear_sums(const Backend& be, double* scratch, const strided<T>& x, const strided<T>& y, estimator est,
                            std::int64_t rows = 0) {
  const std::int64_t n = x.rows, d1 = x.cols, d2 = y.cols, dd = d1 + d2;
  const input_slots in{scratch};
  double* sums = scratch + input_slots::count;  // 10, then the sample form's verdict (8)
  double* mean = scratch + linear_slots;
  double* keep = mean + dd;
  double* partial = keep + dd;
  double* form = partial + moments_scratch(n, dd);
  const view_pair<T> m = side_by_side(x, y);
  scan_columns(be, m, mean, keep, partial, in, true, true);
  if (linear_by_grams(n, dd)) {
    double* z = form;
    double* k = z + n * dd;
    double* l = k + n * n;
    write_centered(be, m, mean, keep, in.scale(), z);
    be.gram(z, n, d1, k);
    be.gram(z + n * d1, n, d2, l);
    be.launch(2 * n * n, mirror_lower{k, l, n});
    const square<double> sk{k, n, 1, n}, sl{l, n, 1, n};
    centered_sums_into(be, sk, sl, est, l + n * n, sums, sums + 10);
    be.reduce_into(n * n, raw_squares_at{sk, sl, est}, sums3(0.0, 0.0, 0.0), add3{}, slots3(sums + 3));
  } else {
    if (rows <= 0) rows = feature_chunk(n, dd);
    const std::int64_t p = dd + 1;
    double* w = form;
    double* sm = w + rows * p;
    for (std::int64_t r0 = 0; r0 < n; r0 += rows) {
      const std::int64_t h = std::min(rows, n - r0);
      be.launch(group_items<T>(h, std::max<std::int64_t>(dd, 1)), shifted_chunk<T>{m, in.scale(), r0, h, w});
      be.cross(w, h, p, sm, r0 > 0);
    }
    be.reduce_into(dd * dd, shifted_feature_terms{sm, dd, d1}, sums5(0.0, 0.0, 0.0, 0.0, 0.0), add5{},
                   thrust::make_zip_iterator(thrust::make_tuple(sums, sums + 1, sums + 2, sums + 3, sums + 4)));
    if (est == estimator::unbiased) {
      be.reduce_into(n, centered_row_norms<T>{m, in.scale(), sm}, sums5(0.0, 0.0, 0.0, 0.0, 0.0), add5{},
                     thrust::make_zip_iterator(thrust::make_tuple(sums + 5, sums + 6, sums + 7, sums + 8, sums + 9)));
    }
  }
  double h[linear_slots];
  be.to_host(h, scratch, linear_slots);
  require_scanned_finite(be, m, h, "X", "Y");
  const double* s = h + input_slots::count;
  centered_totals r{s[0], s[1], s[2], s[3], s[4]};
  if (est == estimator::unbiased && !linear_by_grams(n, dd)) {
    const double nn = double(n), c1 = nn / (nn - 2), c2 = 1.0 / ((nn - 1) * (nn - 2));
    r.kl += c2 * s[5] * s[6] - c1 * s[7];
    r.kk += c2 * s[5] * s[5] - c1 * s[8];
    r.ll += c2 * s[6] * s[6] - c1 * s[9];
  }
  return r;
}

}  // namespace cka::device::detail
