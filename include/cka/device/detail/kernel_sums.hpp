#pragma once
// Private: kernel CKA and the squared MMD with the kernels the device tile engine evaluates from G — linear
// (g on centered rows), polynomial ((γg + c₀)^degree on the raw rows) and Gaussian RBF (exp(−d/(2σ²)) of
// the squared distance d, on centered rows) — without an n×n buffer. Each tile's kernel values are read
// off G inside the pass that consumes them (tile_value), never written back:
// - the RBF bandwidth of a median rule: median.hpp;
// - pass A: the row sums of K and L (the diagonal left out for the unbiased estimator), and per row the
//   squares Σ K_ij², Σ L_ij² (the references for a vanishing centered Gram), summed over chunks of a tile's
//   columns (and, above the diagonal, chunks of its rows for the column sums) and then over the chunks;
// - pass B: Σ C(K)∘C(L), Σ C(K)², Σ C(L)² with the centering of hsic.hpp, a tile I < J counted twice;
// - MMD: the pooled sample [X; Y] written once, then one pass of block sums; the linear kernel takes its
//   closed form instead (‖x̄ − ȳ‖² and the unbiased terms from the column sums, O((m+n)d)).
// Passes run tile after tile and add the tiles' sums in tile order. Memory: Z (8·n·d bytes per
// representation), 6n doubles, one or two tiles, pass A's chunk sums (2·tile²/chunk doubles), and the
// median's collected bracket.

#include <cka/detail/mmd_sums.hpp>
#include <cka/device/detail/median.hpp>
#include <cka/inner_product_kernels.hpp>  // Eigen-free, as rbf_parameters.hpp
#include <cka/rbf_parameters.hpp>

#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>
#include <thrust/transform_reduce.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace cka::device::detail {

/// exp(−d/(2σ²)) in the form rbf_parameters::exponent_for chose: exp(d·scale), or where 1/(2σ²)
/// overflows exp((d/root)·half) with 1 at d = 0.
struct rbf_exponent {
  double scale = 0, root = 0, half = 0;
  bool split = false;
  CKA_HD double operator()(double d) const {
    if (!split) return exp(d * scale);
    return d == 0.0 ? 1.0 : exp((d / root) * half);
  }
};

/// The kernels of the tile engine.
enum class tile_form { linear, polynomial, rbf };

/// A kernel as the caller gave it (a median-rule bandwidth still to resolve).
struct tile_request {
  tile_form form = tile_form::linear;
  polynomial_kernel polynomial{};
  rbf_parameters rbf{1.0};
  /// Whether the rows are column-centered first: centering the features changes neither an RBF value nor
  /// the linear kernel's centered Gram (or its MMD), but it changes the polynomial kernel's values.
  bool centered() const { return form != tile_form::polynomial; }
};
inline tile_request tile_request_of(const linear_kernel&) { return {}; }
inline tile_request tile_request_of(const polynomial_kernel& k) {
  k.require_valid();
  tile_request r;
  r.form = tile_form::polynomial;
  r.polynomial = k;
  return r;
}
inline tile_request tile_request_of(const rbf_parameters& k) {
  tile_request r;
  r.form = tile_form::rbf;
  r.rbf = k;
  return r;
}

/// Whether the tile engine evaluates kernel type K (rbf_kernel is an rbf_parameters).
template <class K>
constexpr bool is_tile_kernel = std::is_same_v<K, linear_kernel> || std::is_same_v<K, polynomial_kernel> ||
                                std::is_base_of_v<rbf_parameters, K>;

/// A resolved kernel: its value from g (inner product) or d (squared distance).
struct tile_kernel {
  tile_form form = tile_form::linear;
  polynomial_kernel polynomial{};
  rbf_exponent rbf;
};

/// The kernel value at flat index k of a tile holding G; NaN where a distance overflowed.
struct tile_value {
  tile_distance dist;
  tile_kernel kernel;
  CKA_HD double operator()(std::int64_t k) const {
    if (kernel.form == tile_form::rbf) {
      const double d = dist(k);
      return d - d == 0.0 ? kernel.rbf(d) : d - d;
    }
    const double g = dist.g[k];
    return kernel.form == tile_form::linear ? g : kernel.polynomial.from_inner_product(g);
  }
};

/// Pass A's partial sums over a tile, items spread over the whole tile (a GPU thread per row or column
/// alone would leave most of the device idle): item c·h + i sums row i over the c-th chunk of `chunk`
/// columns into rs, and its squares into qs; the entry on the matrix diagonal is left out when
/// skip_diagonal (a diagonal tile's i = j).
struct tile_row_chunk {
  tile_value v;
  std::int64_t w, chunk;
  bool skip_diagonal;
  double* rs;
  double* qs;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t h = v.dist.h, i = item % h, c = item / h;
    const std::int64_t j0 = c * chunk, j1 = j0 + chunk < w ? j0 + chunk : w;
    double s = 0, s2 = 0;
    for (std::int64_t j = j0; j < j1; ++j) {
      if (v.dist.diagonal && skip_diagonal && i == j) continue;
      const double a = v(j * h + i);
      s += a;
      s2 += a * a;
    }
    rs[item] = s;
    qs[item] = s2;
  }
};

/// Item c·w + j: column j of a tile summed over the c-th chunk of `chunk` rows, into cs.
struct tile_column_chunk {
  tile_value v;
  std::int64_t w, chunk;
  double* cs;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t h = v.dist.h, j = item % w, c = item / w;
    const std::int64_t i0 = c * chunk, i1 = i0 + chunk < h ? i0 + chunk : h;
    double s = 0;
    for (std::int64_t i = i0; i < i1; ++i) s += v(j * h + i);
    cs[item] = s;
  }
};

/// The centered products of a tile of K and L (pass B), a tile above the diagonal counted twice.
struct tile_centered_products {
  tile_value k, l;
  const double* rki;
  const double* rkj;
  const double* rli;
  const double* rlj;
  centering_scale ck, cl;
  bool unbiased;
  CKA_HD sums3 operator()(std::int64_t flat) const {
    const std::int64_t h = k.dist.h, i = flat % h, j = flat / h;
    const bool diagonal = k.dist.diagonal;
    if (diagonal && unbiased && i == j) return sums3(0.0, 0.0, 0.0);
    const double a = k(flat) - ck.u * (rki[i] + rkj[j]) + ck.c;
    const double b = l(flat) - cl.u * (rli[i] + rlj[j]) + cl.c;
    const double wgt = diagonal ? 1.0 : 2.0;
    return sums3(wgt * a * b, wgt * a * a, wgt * b * b);
  }
};

/// The block sums of a pooled tile (rows before m are X's): Σ Kxx, Σ Kyy, Σ Kxy over the full symmetric
/// matrix (each mixed pair twice), and the diagonals of Kxx and Kyy; a tile above the diagonal counted twice.
struct tile_block_terms {
  tile_value k;
  std::int64_t i0, j0, m;
  CKA_HD sums5 operator()(std::int64_t flat) const {
    const std::int64_t h = k.dist.h, i = i0 + flat % h, j = j0 + flat / h;
    const double v = k(flat), wgt = k.dist.diagonal ? 1.0 : 2.0;
    const bool xi = i < m, xj = j < m;
    const double on_diagonal = i == j ? v : 0.0;
    if (xi && xj) return sums5(wgt * v, 0.0, 0.0, on_diagonal, 0.0);
    if (!xi && !xj) return sums5(0.0, wgt * v, 0.0, 0.0, on_diagonal);
    return sums5(0.0, 0.0, wgt * v, 0.0, 0.0);
  }
};

/// The request resolved for the rows t (as the engine wrote them): a median-rule σ² from the median of
/// their distances, then the exponent's form.
template <class Engine>
tile_kernel resolve_kernel(const Engine& e, const tile_rows& t, const tile_request& r) {
  tile_kernel k;
  k.form = r.form;
  if (r.form == tile_form::polynomial) {
    k.polynomial = r.polynomial;
  } else if (r.form == tile_form::rbf) {
    const rbf_parameters& p = r.rbf;
    const double s2 = p.uses_median() ? p.bandwidth_from_median(tile_median(e, t, p.rule())) : p.sigma() * p.sigma();
    const cka::detail::rbf_exponent_form<double> f = p.exponent_for(s2);
    k.rbf = rbf_exponent{f.scale, f.root, f.half, f.split};
  }
  return k;
}

/// The rows of a view (and of a second, stacked, for a pooled sample) written for kernel r: centered unless
/// polynomial, scaled by a power of two (from the larger magnitude, as the host scales) for a median rule
/// and for the linear kernel of one representation (CKA does not depend on its scale, and 1e300 would
/// overflow its inner products).
template <class Engine, class T>
tile_rows write_for(const Engine& e, const strided<T>& x, const strided<T>& y, const tile_request& r, double* z,
                    double* norms, double* stats) {
  double scale = 1.0;
  if ((r.form == tile_form::rbf && r.rbf.uses_median()) || (r.form == tile_form::linear && y.rows == 0)) {
    scale = scale_for_top(y.rows > 0 ? std::max(magnitude_top(e.policy, x), magnitude_top(e.policy, y)) : magnitude_top(e.policy, x));
  }
  e.write_rows(x, y, r.centered(), scale, z, norms, stats);
  return tile_rows{z, norms, x.rows + y.rows, x.cols};
}

/// The centered sums of the kernel matrices K of x and L of y (pass A, then pass B): kl, kk, ll and the
/// references Σ K_ij², Σ L_ij² (off the diagonal for the unbiased estimator). rows: 4n doubles.
template <class Engine>
centered_totals tile_cka_sums(const Engine& e, const tile_rows& x, const tile_kernel& fx, const tile_rows& y,
                              const tile_kernel& fy, bool unbiased, double* rows) {
  const std::int64_t n = x.n;
  double* rk = rows;
  double* rl = rows + n;
  double* qk = rows + 2 * n;
  double* ql = rows + 3 * n;
  const thrust::counting_iterator<std::int64_t> first(0);
  thrust::fill(e.policy, rows, rows + 4 * n, 0.0);
  auto bk = e.make(std::size_t(e.plan.tile * e.plan.tile));
  auto bl = e.make(std::size_t(e.plan.tile * e.plan.tile));
  double* gk = bk.get();
  double* gl = bl.get();
  auto values = [&](const tile_rows& t, const tile_kernel& f, const tile_place& p, double* g) {
    e.product(t, p, g);
    return tile_value{e.distances(t, p, g), f};
  };
  // Pass A's chunk sums: for rows, (tile/chunk rounded up) chunks of h; for columns, as many of w.
  const std::int64_t chunk = std::max<std::int64_t>(1, e.plan.chunk), most = (e.plan.tile + chunk - 1) / chunk;
  auto partial = e.make(std::size_t(2 * most * e.plan.tile));
  double* ps = partial.get();
  double* pq = ps + most * e.plan.tile;
  auto row_and_column_sums = [&](const tile_value& v, const tile_place& p, double* r, double* q) {
    const std::int64_t across = (p.w + chunk - 1) / chunk, down = (p.h + chunk - 1) / chunk;
    thrust::for_each(e.policy, first, first + across * p.h, tile_row_chunk{v, p.w, chunk, unbiased, ps, pq});
    thrust::for_each(e.policy, first, first + p.h,
                     add_chunks{ps, pq, p.h, across, 1.0, p.diagonal() ? 1.0 : 2.0, true, r + p.i0, q + p.i0});
    if (p.diagonal()) return;  // a tile above the diagonal also holds the sums of the rows below it
    thrust::for_each(e.policy, first, first + down * p.w, tile_column_chunk{v, p.w, chunk, ps});
    thrust::for_each(e.policy, first, first + p.w, add_chunks{ps, nullptr, p.w, down, 1.0, 0.0, true, r + p.j0, nullptr});
  };
  for_upper_tiles(n, e.plan.tile, [&](const tile_place& p) {
    row_and_column_sums(values(x, fx, p, gk), p, rk, qk);
    row_and_column_sums(values(y, fy, p, gl), p, rl, ql);
  });
  const double tk = thrust::reduce(e.policy, rk, rk + n, 0.0), tl = thrust::reduce(e.policy, rl, rl + n, 0.0);
  if (!(tk - tk == 0.0)) fail_tile_overflow(e.fn, fx.form == tile_form::rbf);
  if (!(tl - tl == 0.0)) fail_tile_overflow(e.fn, fy.form == tile_form::rbf);
  const double refk = thrust::reduce(e.policy, qk, qk + n, 0.0), refl = thrust::reduce(e.policy, ql, ql + n, 0.0);
  const centering_scale ck = centering_scales(n, tk, unbiased), cl = centering_scales(n, tl, unbiased);
  double kl = 0, kk = 0, ll = 0;
  for_upper_tiles(n, e.plan.tile, [&](const tile_place& p) {
    const tile_centered_products f{values(x, fx, p, gk), values(y, fy, p, gl), rk + p.i0, rk + p.j0, rl + p.i0, rl + p.j0,
                                   ck, cl, unbiased};
    const sums3 s = thrust::transform_reduce(e.policy, first, first + p.h * p.w, f, sums3(0.0, 0.0, 0.0), add3{});
    kl += thrust::get<0>(s);
    kk += thrust::get<1>(s);
    ll += thrust::get<2>(s);
  });
  return {kl, kk, ll, refk, refl};
}

/// Scratch doubles of kernel_cka_sums: Z of both (n·(d1 + d2)), their norms (2n), the row sums and squares
/// (4n), column statistics (rows_scratch).
inline std::int64_t kernel_cka_scratch(std::int64_t n, std::int64_t d1, std::int64_t d2) {
  return n * (d1 + d2) + 6 * n + rows_scratch(n, std::max(d1, d2));
}

/// The centered sums of kernel CKA with kernels kx on x and ky on y (checked views, same rows) on the
/// engine's context: the rows written, the bandwidths resolved, then passes A and B.
/// scratch: kernel_cka_scratch(n, d1, d2) doubles.
template <class Engine, class T>
centered_totals kernel_cka_sums(const Engine& e, const strided<T>& x, const strided<T>& y, const tile_request& kx,
                                const tile_request& ky, bool unbiased, double* scratch) {
  const std::int64_t n = x.rows, d1 = x.cols, d2 = y.cols;
  double* zx = scratch;
  double* zy = zx + n * d1;
  double* nx = zy + n * d2;
  double* ny = nx + n;
  double* rows = ny + n;  // 4n
  double* stats = rows + 4 * n;
  const tile_rows tx = write_for(e, x, strided<T>{x.ptr, 0, d1, 0, 0}, kx, zx, nx, stats);
  const tile_rows ty = write_for(e, y, strided<T>{y.ptr, 0, d2, 0, 0}, ky, zy, ny, stats);
  const tile_kernel fx = resolve_kernel(e, tx, kx), fy = resolve_kernel(e, ty, ky);
  return tile_cka_sums(e, tx, fx, ty, fy, unbiased, rows);
}

/// Scratch doubles of kernel_mmd2: Z of the pooled sample ((m+n)·d), its norms, its column statistics.
inline std::int64_t kernel_mmd2_scratch(std::int64_t m, std::int64_t n, std::int64_t d) {
  return (m + n) * (d + 1) + rows_scratch(m + n, d);
}

/// Squared MMD with kernel k between the rows of x (m) and y (n) (checked views, same width) on the
/// engine's context: the pooled sample written once, the bandwidth from its (m+n)² distances for a median
/// rule, then one pass of block sums. scratch: kernel_mmd2_scratch(m, n, d) doubles.
template <class Engine, class T>
double kernel_mmd2(const Engine& e, const strided<T>& x, const strided<T>& y, const tile_request& k, estimator est,
                   double* scratch) {
  const std::int64_t m = x.rows, n = y.rows, total = m + n, d = x.cols;
  double* z = scratch;
  double* norms = z + total * d;
  double* stats = norms + total;
  const tile_rows t = write_for(e, x, y, k, z, norms, stats);
  const tile_kernel f = resolve_kernel(e, t, k);
  auto buffer = e.make(std::size_t(e.plan.tile * e.plan.tile));
  double* g = buffer.get();
  double xx = 0, yy = 0, xy = 0, dx = 0, dy = 0;
  for_upper_tiles(total, e.plan.tile, [&](const tile_place& p) {
    e.product(t, p, g);
    const thrust::counting_iterator<std::int64_t> first(0);
    const sums5 s = thrust::transform_reduce(e.policy, first, first + p.h * p.w,
                                             tile_block_terms{tile_value{e.distances(t, p, g), f}, p.i0, p.j0, m},
                                             sums5(0.0, 0.0, 0.0, 0.0, 0.0), add5{});
    xx += thrust::get<0>(s);
    yy += thrust::get<1>(s);
    xy += thrust::get<2>(s);
    dx += thrust::get<3>(s);
    dy += thrust::get<4>(s);
  });
  const double all = xx + yy + xy;  // NaN where a distance overflowed, ±Inf where a kernel value did
  if (!(all - all == 0.0)) fail_tile_overflow(e.fn, f.form == tile_form::rbf);
  return cka::detail::mmd2_from_sums<double>(xx, yy, xy / 2, dx, dy, m, n, est);
}

/// Item c·d + j: column j's deviations v = x·scale − μ·scale (μ the pooled mean; constant columns exactly
/// zero) over the c-th chunk of the pooled rows (X's, then Y's), summed and squared-summed for X's rows and
/// for Y's apart, into part[0 … 3] (each chunks·d long).
template <class T>
struct linear_mmd_chunk {
  strided<T> x, y;
  const double* mean;
  const double* keep;
  double scale;
  std::int64_t chunk, stride;  // stride: chunks·d, the length of each part
  double* part;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t d = x.cols, j = item % d, c = item / d, total = x.rows + y.rows;
    const std::int64_t r0 = c * chunk, r1 = r0 + chunk < total ? r0 + chunk : total;
    const double mu = mean[j] * scale;
    double s[2] = {0, 0}, q[2] = {0, 0};
    for (std::int64_t r = r0; r < r1; ++r) {
      const int side = r < x.rows ? 0 : 1;
      const T e = side == 0 ? x.ptr[r * x.row_stride + j * x.col_stride]
                            : y.ptr[(r - x.rows) * y.row_stride + j * y.col_stride];
      const double v = keep[j] > 0 ? double(e) * scale - mu : 0.0;
      s[side] += v;
      q[side] += v * v;
    }
    part[item] = s[0];
    part[stride + item] = q[0];
    part[2 * stride + item] = s[1];
    part[3 * stride + item] = q[1];
  }
};

/// Column j's contribution to the linear kernel's squared MMD from its chunks: with s_x, q_x the sums of
/// its deviations and of their squares over X's rows, and s_y, q_y over Y's, (s_x/m − s_y/n)² (biased) or
/// (s_x² − q_x)/(m(m−1)) + (s_y² − q_y)/(n(n−1)) − 2·s_x·s_y/(mn) (unbiased).
struct linear_mmd_column {
  const double* part;
  std::int64_t d, chunks, m, n;
  bool unbiased;
  CKA_HD double operator()(std::int64_t j) const {
    const std::int64_t stride = chunks * d;
    double t[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4; ++k)
      for (std::int64_t c = 0; c < chunks; ++c) t[k] += part[k * stride + c * d + j];
    const double mm = double(m), nn = double(n);
    if (!unbiased) {
      const double diff = t[0] / mm - t[2] / nn;
      return diff * diff;
    }
    return (t[0] * t[0] - t[1]) / (mm * (mm - 1)) + (t[2] * t[2] - t[3]) / (nn * (nn - 1)) - 2.0 * t[0] * t[2] / (mm * nn);
  }
};

/// Scratch doubles of linear_mmd2: the pooled means and flags (2d), then the four sums per chunk of rows
/// and column (the column statistics' chunks use the same space first).
inline std::int64_t linear_mmd2_scratch(std::int64_t m, std::int64_t n, std::int64_t d) {
  return 2 * d + 4 * moment_chunks(m + n) * d;
}

/// Squared MMD with the linear kernel in closed form, O((m+n)·d): the host's linear_mmd2 (the pooled sample
/// shifted to its mean, scaled by the power of two of the larger magnitude) as sums over chunks of rows
/// and columns, then one transform-reduce over the columns. scratch: linear_mmd2_scratch(m, n, d) doubles
/// of the context's memory. Throws cka::domain_error naming fn on overflow.
template <class Policy, class T>
double linear_mmd2(const Policy& policy, const char* fn, const strided<T>& x, const strided<T>& y, estimator est,
                   double* scratch) {
  const std::int64_t d = x.cols, total = x.rows + y.rows, chunks = moment_chunks(total);
  double* mean = scratch;
  double* keep = mean + d;
  double* part = keep + d;
  const double c = std::min(magnitude_scale(policy, x), magnitude_scale(policy, y));
  column_moments(policy, x, mean, keep, part, y);
  const thrust::counting_iterator<std::int64_t> first(0);
  thrust::for_each(policy, first, first + chunks * d,
                   linear_mmd_chunk<T>{x, y, mean, keep, c, moment_chunk(total), chunks * d, part});
  const double sum = thrust::transform_reduce(policy, first, first + d,
                                              linear_mmd_column{part, d, chunks, x.rows, y.rows, est == estimator::unbiased},
                                              0.0, thrust::plus<double>());
  const double value = sum / c / c;
  if (!(value - value == 0.0)) {
    cka::detail::fail_domain(fn, "overflow: the squared MMD exceeds the range of the accumulation type; rescale the inputs");
  }
  return value;
}

}  // namespace cka::device::detail
