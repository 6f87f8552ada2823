#pragma once
// Private: kernel CKA and the squared MMD with the kernels the device tile engine evaluates from G — linear
// (g on centered rows), polynomial ((γg + c₀)^degree on the raw rows) and Gaussian RBF (exp(−d/(2σ²)) of
// the squared distance d, on centered rows) — without an n×n buffer. Each tile's kernel values are read
// off G inside the pass that consumes them (tile_value), never written back:
// - the RBF bandwidth of a median rule: median.hpp;
// - pass A: the row sums of K and L (the diagonal left out for the unbiased estimator) and each row's
//   largest magnitude, over chunks of a tile's columns (and, above the diagonal, interleaved sets of its
//   rows for the column sums), then over those; from the largest magnitudes, each Gram's power-of-two
//   scale (detail/scale.hpp), computed on the device as the host's tile engine computes it;
// - pass B: Σ C(K)∘C(L), Σ C(K)², Σ C(L)² with the centering of hsic.hpp and the squares Σ K_ij², Σ L_ij²
//   (the references for a vanishing centered Gram), of the scaled Grams, a tile I < J counted twice;
// - MMD (mmd.hpp): the pooled sample [X; Y] written once, then one pass of block sums.
// Passes run tile after tile and add the tiles' sums in tile order. Memory: Z (8·n·d bytes per
// representation), 6n doubles, one or two tiles, pass A's chunk sums (2·tile²/chunk doubles), and the
// median's collected bracket.

#include <cka/detail/kernel_id.hpp>
#include <cka/detail/scale.hpp>
#include <cka/device/detail/median.hpp>
#include <cka/inner_product_kernels.hpp>  // Eigen-free, as rbf_parameters.hpp
#include <cka/rbf_parameters.hpp>

#include <thrust/iterator/zip_iterator.h>
#include <thrust/tuple.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

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

/// Whether the tile engine evaluates kernel type K: the library's own kernels (kernel_traits' builtin),
/// and rbf_parameters, the RBF kernel's Eigen-free parameters that device callers may pass instead.
template <class K>
constexpr bool is_tile_kernel = cka::detail::builtin_kernel_of<K> != builtin_kernel::none || std::is_same_v<K, rbf_parameters>;

/// A resolved kernel: its value from g (inner product) or d (squared distance).
struct tile_kernel {
  tile_form form = tile_form::linear;
  polynomial_kernel polynomial{};
  rbf_exponent rbf;
};

/// The kernel value at (i, j) of a tile holding G; NaN where a distance overflowed.
struct tile_value {
  tile_distance dist;
  tile_kernel kernel;
  CKA_HD double at(std::int64_t i, std::int64_t j) const {
    if (kernel.form == tile_form::rbf) {
      const double d = dist.at(i, j);
      return d - d == 0.0 ? kernel.rbf(d) : d - d;
    }
    const double g = dist.g[j * dist.h + i];
    return kernel.form == tile_form::linear ? g : kernel.polynomial.from_inner_product(g);
  }
};

/// The larger of two magnitudes, NaN if either is (a NaN kernel value must not vanish from the top).
CKA_HD inline double top_of(double a, double b) { return a != a || a > b ? a : b; }

/// Pass A's chunk sums of one tile of K and one of L in one launch, items spread over both tiles (a GPU
/// thread per row or column alone would leave most of the device idle). Per side (K, then L): item
/// c·h + i sums row i over the c-th chunk of `chunk` columns — the entry on the matrix diagonal left out
/// when skip_diagonal (a diagonal tile's i = j) — and finds its largest magnitude (every entry), then, off
/// the diagonal, item j·down + c sums column j over the rows c, c + down, c + 2·down, … (the sums of the
/// rows below the diagonal that the tile stands for). Neighbouring items read neighbouring entries of G in
/// both kinds (coalesced on a GPU), and no item divides per entry. part, per side: the rows' sums
/// (across·h), their largest magnitudes (across·h), the columns' sums (down·w, lane c of column j at c·w + j).
struct tile_line_chunks {
  tile_value v[2];
  std::int64_t w, chunk, across, down;
  bool skip_diagonal;
  double* part;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t h = v[0].dist.h, rows = across * h, per_side = rows + (v[0].dist.diagonal ? 0 : down * w);
    const int side = item < per_side ? 0 : 1;
    const std::int64_t k = item - side * per_side;
    const tile_value& t = v[side];
    double* p = part + side * (per_side + rows);
    double s = 0, top = 0;
    if (k < rows) {
      const flat_index f = divide(k, h);
      const std::int64_t i = f.r, c = f.q, j0 = c * chunk, j1 = j0 + chunk < w ? j0 + chunk : w;
      for (std::int64_t j = j0; j < j1; ++j) {
        const double a = t.at(i, j);
        top = top_of(a < 0 ? -a : a, top);
        if (!(t.dist.diagonal && skip_diagonal && i == j)) s += a;
      }
      p[k] = s;
      p[rows + k] = top;
      return;
    }
    const flat_index f = divide(k - rows, down);
    const std::int64_t j = f.q, c = f.r;
    for (std::int64_t i = c; i < h; i += down) s += t.at(i, j);
    p[2 * rows + c * w + j] = s;
  }
};

/// Pass A's chunks of one tile of K and of L added in order onto the row sums (rows: rk, rl, tk, tl, n
/// each; t the rows' largest magnitudes): per side, item i < h onto row i0 + i's sum and top (the rows
/// below the diagonal hold the same entries), then off the diagonal item h + j onto row j0 + j's sum.
struct tile_line_totals {
  const double* part;
  std::int64_t h, w, across, down, i0, j0, n;
  bool diagonal;
  double* rows;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t cols = diagonal ? 0 : w, per_side = h + cols, row_items = across * h;
    const int side = item < per_side ? 0 : 1;
    const std::int64_t k = item - side * per_side;
    const double* p = part + side * (2 * row_items + (diagonal ? 0 : down * w));
    double* r = rows + side * n;
    double* q = rows + (2 + side) * n;
    double s = 0;
    if (k < h) {
      double top = q[i0 + k];
      for (std::int64_t c = 0; c < across; ++c) {
        s += p[c * h + k];
        top = top_of(p[row_items + c * h + k], top);
      }
      r[i0 + k] += s;
      q[i0 + k] = top;
      return;
    }
    const std::int64_t j = k - h;
    for (std::int64_t c = 0; c < down; ++c) s += p[2 * row_items + c * w + j];
    r[j0 + j] += s;
  }
};

/// Squared row norms of two blocks of rows (Z_x: n×d1, Z_y: n×d2, column-major): item i < n is Z_x's row i,
/// else Z_y's row i − n.
struct two_row_norms {
  const double* zx;
  const double* zy;
  std::int64_t n, d1, d2;
  CKA_HD double operator()(std::int64_t item) const {
    const bool y = item >= n;
    const double* z = y ? zy : zx;
    const std::int64_t i = y ? item - n : item, d = y ? d2 : d1;
    double s = 0;
    for (std::int64_t c = 0; c < d; ++c) s += z[c * n + i] * z[c * n + i];
    return s;
  }
};

/// The centered products of a tile of sk·K and sl·L (pass B) and their squares, a tile above the diagonal
/// counted twice: Σ C∘C', Σ C², Σ C'², Σ (sk·K_ij)², Σ (sl·L_ij)² (the diagonal left out for the unbiased
/// estimator).
struct tile_centered_products {
  tile_value k, l;
  const double* rki;
  const double* rkj;
  const double* rli;
  const double* rlj;
  const double* scales;  // K's and L's centering (u, c) of the scaled Grams, then sk and sl, in the context's memory
  estimator est;
  CKA_HD sums5 operator()(std::int64_t flat) const {
    const flat_index f = divide(flat, k.dist.h);
    const std::int64_t i = f.r, j = f.q;
    const bool diagonal = k.dist.diagonal;
    if (diagonal && est == estimator::unbiased && i == j) return sums5(0.0, 0.0, 0.0, 0.0, 0.0);
    const centering_scale ck{scales[0], scales[1]}, cl{scales[2], scales[3]};
    const double sk = scales[4], sl = scales[5], kij = sk * k.at(i, j), lij = sl * l.at(i, j);
    const double a = kij - ck.u * sk * (rki[i] + rkj[j]) + ck.c;
    const double b = lij - cl.u * sl * (rli[i] + rlj[j]) + cl.c;
    const double wgt = diagonal ? 1.0 : 2.0;
    return sums5(wgt * a * b, wgt * a * a, wgt * b * b, wgt * kij * kij, wgt * lij * lij);
  }
};

/// The block sums of a pooled tile (rows before m are X's): Σ Kxx, Σ Kyy, Σ Kxy over the full symmetric
/// matrix (each mixed pair twice), and the diagonals of Kxx and Kyy; a tile above the diagonal counted twice.
struct tile_block_terms {
  tile_value k;
  std::int64_t i0, j0, m;
  CKA_HD sums5 operator()(std::int64_t flat) const {
    const flat_index f = divide(flat, k.dist.h);
    const std::int64_t i = i0 + f.r, j = j0 + f.q;
    const double v = k.at(f.r, f.q), wgt = k.dist.diagonal ? 1.0 : 2.0;
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
    const cka::rbf_parameters::exponent_form<double> f = p.exponent_for(s2);
    k.rbf = rbf_exponent{f.scale, f.root, f.half, f.split};
  }
  return k;
}

/// Whether the rows for kernel r are scaled by their power of two (from the larger magnitude of a pooled
/// sample, as the host scales): for a median rule, and for the linear kernel (CKA does not depend on its
/// scale, and 1e300 would overflow its inner products).
inline bool scaled_for(const tile_request& r) {
  return (r.form == tile_form::rbf && r.rbf.uses_median()) || r.form == tile_form::linear;
}

/// Pass A's totals (Σ rk, Σ rl, and the largest magnitudes of K and L) and the scales they give, in the
/// context's memory: totals (4), then the two centering_scale of the scaled Grams and sk, sl (6 doubles).
struct row_totals {
  const double* r;
  std::int64_t n;
  CKA_HD quad operator()(std::int64_t i) const { return quad(r[i], r[n + i], r[2 * n + i], r[3 * n + i]); }
};
struct merge_row_totals {
  CKA_HD quad operator()(const quad& a, const quad& b) const {
    using thrust::get;
    return quad(get<0>(a) + get<0>(b), get<1>(a) + get<1>(b), top_of(get<2>(a), get<2>(b)), top_of(get<3>(a), get<3>(b)));
  }
};
struct scales_from_totals {
  double* at;  // totals (4), then the scales (6)
  std::int64_t n;
  estimator est;
  CKA_HD void operator()(std::int64_t) const {
    // A non-finite top is an overflowed kernel value, whose row sums report it: no scale.
    const double sk = at[2] - at[2] == 0.0 ? cka::detail::power_of_two_scale(at[2]) : 1.0;
    const double sl = at[3] - at[3] == 0.0 ? cka::detail::power_of_two_scale(at[3]) : 1.0;
    const centering_scale ck = centering_scales(n, sk * at[0], est), cl = centering_scales(n, sl * at[1], est);
    at[4] = ck.u;
    at[5] = ck.c;
    at[6] = cl.u;
    at[7] = cl.c;
    at[8] = sk;
    at[9] = sl;
  }
};

/// Scratch doubles of tile_cka_sums beyond its 4n: the totals and scales (10), five sums per tile.
inline std::int64_t tile_cka_slots(std::int64_t n, std::int64_t b) { return 10 + 5 * upper_tiles(n, b); }

/// The centered sums of the kernel matrices sk·K of x and sl·L of y (pass A, then pass B; sk, sl their
/// powers of two, 1 unless an entry's magnitude lies beyond 2^±200): kl, kk, ll and the references
/// Σ (sk·K_ij)², Σ (sl·L_ij)² (off the diagonal for the unbiased estimator) — CKA's ratios, which do not
/// depend on the scales. rows: 4n doubles; slots: tile_cka_slots(n, tile) doubles, both of the context's
/// memory. Per tile: two products and two launches in pass A, two products and a reduction in pass B; one
/// read-back. An overflowed kernel value (or a row sum beyond the largest double) is an overflow error.
template <class Engine>
centered_totals tile_cka_sums(const Engine& e, const tile_rows& x, const tile_kernel& fx, const tile_rows& y,
                              const tile_kernel& fy, estimator est, double* rows, double* slots) {
  const auto& be = e.be;
  const std::int64_t n = x.n;
  double* rk = rows;  // then rl, and the squares qk, ql
  double* rl = rows + n;
  be.fill(rows, 4 * n, 0.0);
  auto bk = be.scratch(std::size_t(e.plan.tile * e.plan.tile));
  auto bl = be.scratch(std::size_t(e.plan.tile * e.plan.tile));
  double* gk = bk.get();
  double* gl = bl.get();
  auto values = [&](const tile_rows& t, const tile_kernel& f, const tile_place& p, double* g) {
    e.product(t, p, g);
    return tile_value{e.distances(t, p, g), f};
  };
  // Pass A's chunk sums, both sides in one launch and added in one: for rows, (tile/chunk rounded up) chunks
  // of h; for columns, as many of w.
  const std::int64_t chunk = std::max<std::int64_t>(1, e.plan.chunk), most = (e.plan.tile + chunk - 1) / chunk;
  auto partial = be.scratch(std::size_t(6 * most * e.plan.tile));
  for_upper_tiles(n, e.plan.tile, [&](const tile_place& p) {
    const std::int64_t across = (p.w + chunk - 1) / chunk, down = (p.h + chunk - 1) / chunk;
    const std::int64_t cols = p.diagonal() ? 0 : p.w;
    const tile_line_chunks sums{{values(x, fx, p, gk), values(y, fy, p, gl)}, p.w, chunk, across, down, est == estimator::unbiased,
                                partial.get()};
    be.launch(2 * (across * p.h + (p.diagonal() ? 0 : down * p.w)), sums);
    be.launch(2 * (p.h + cols), tile_line_totals{partial.get(), p.h, p.w, across, down, p.i0, p.j0, n, p.diagonal(), rows});
  });
  double* totals = slots;  // Σrk, Σrl, top K, top L, then the scales
  double* tiles = slots + 10;
  be.reduce_into(n, row_totals{rows, n}, quad(0.0, 0.0, 0.0, 0.0), merge_row_totals{},
                 thrust::make_zip_iterator(thrust::make_tuple(totals, totals + 1, totals + 2, totals + 3)));
  be.launch(1, scales_from_totals{totals, n, est});
  const double* scales = totals + 4;
  std::int64_t at = 0;
  for_upper_tiles(n, e.plan.tile, [&](const tile_place& p) {
    const tile_centered_products f{values(x, fx, p, gk), values(y, fy, p, gl), rk + p.i0, rk + p.j0, rl + p.i0, rl + p.j0,
                                   scales, est};
    be.reduce_into(p.h * p.w, f, sums5(0.0, 0.0, 0.0, 0.0, 0.0), add5{},
                   thrust::make_zip_iterator(thrust::make_tuple(tiles + 5 * at, tiles + 5 * at + 1, tiles + 5 * at + 2,
                                                                tiles + 5 * at + 3, tiles + 5 * at + 4)));
    ++at;
  });
  std::vector<double> h(std::size_t(10 + 5 * at));
  be.to_host(h.data(), slots, std::int64_t(h.size()));
  if (!(h[0] - h[0] == 0.0)) fail_tile_overflow(be.fn, fx.form == tile_form::rbf);
  if (!(h[1] - h[1] == 0.0)) fail_tile_overflow(be.fn, fy.form == tile_form::rbf);
  double s[5] = {0, 0, 0, 0, 0};
  for (std::int64_t t = 0; t < at; ++t)  // in tile order
    for (int q = 0; q < 5; ++q) s[q] += h[std::size_t(10 + 5 * t + q)];
  return {s[0], s[1], s[2], s[3], s[4]};
}

/// Scratch doubles of kernel_cka_sums for tiles of side b: the scan's slots, Z of both (n·(d1 + d2)), their
/// norms (2n), the row sums and squares (4n), tile_cka_slots, the means and flags (2D), the scan's chunks.
inline std::int64_t kernel_cka_scratch(std::int64_t n, std::int64_t d1, std::int64_t d2, std::int64_t b) {
  const std::int64_t dd = d1 + d2;
  return input_slots::count + n * dd + 6 * n + tile_cka_slots(n, b) + 2 * dd + moments_scratch(n, dd);
}

/// The rows of a pair (X beside Y, or the pooled [X; Y]) written for the tile engine into Z after one
/// scan: centered unless polynomial, scaled where scaled_for (a's kernel ra, b's rb); the scan's verdict
/// then read back (one synchronisation) — non-finite rows must not reach the median or the passes — and a
/// non-finite element thrown. stats: 2D + moments_scratch(rows, D) doubles.
template <class Backend, class T>
void write_tile_rows(const Backend& be, const view_pair<T>& m, const tile_request& ra, const tile_request& rb, input_slots in,
                     double* stats, double* z) {
  const std::int64_t d = m.cols();
  scan_columns(be, m, stats, stats + d, stats + 2 * d, in, scaled_for(ra), scaled_for(rb));
  write_centered(be, m, stats, stats + d, in.scale(), z, ra.centered(), rb.centered());
  double h[input_slots::count];
  be.to_host(h, in.at, input_slots::count);
  require_scanned_finite(be, m, h, "X", "Y");
}

/// The centered sums of kernel CKA with kernels kx on x and ky on y (views of checked shapes, the same
/// rows) on the engine's backend: one scan of both (moments.hpp), the rows written once (centered but for
/// the polynomial kernel; scaled where scaled_for), its verdict read back, the bandwidths resolved, then
/// passes A and B. scratch: kernel_cka_scratch(n, d1, d2, tile) doubles.
template <class Engine, class T>
centered_totals kernel_cka_sums(const Engine& e, const strided<T>& x, const strided<T>& y, const tile_request& kx,
                                const tile_request& ky, estimator est, double* scratch) {
  const auto& be = e.be;
  const std::int64_t n = x.rows, d1 = x.cols, d2 = y.cols;
  const input_slots in{scratch};
  double* zx = scratch + input_slots::count;
  double* zy = zx + n * d1;
  double* nx = zy + n * d2;
  double* ny = nx + n;
  double* rows = ny + n;  // 4n
  double* slots = rows + 4 * n;
  write_tile_rows(be, side_by_side(x, y), kx, ky, in, slots + tile_cka_slots(n, e.plan.tile), zx);
  be.transform(2 * n, nx, two_row_norms{zx, zy, n, d1, d2});
  const tile_rows tx{zx, nx, n, d1}, ty{zy, ny, n, d2};
  const tile_kernel fx = resolve_kernel(e, tx, kx), fy = resolve_kernel(e, ty, ky);
  return tile_cka_sums(e, tx, fx, ty, fy, est, rows, slots);
}

}  // namespace cka::device::detail
