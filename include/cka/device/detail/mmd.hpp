#pragma once
// Private: the squared MMD on a backend — with a tile-engine kernel, the pooled sample [X; Y] written once
// and one pass of block sums over its tiles (the tiles of kernel_sums.hpp); with the linear kernel, its
// closed form (‖x̄ − ȳ‖² and the unbiased terms from the column sums, O((m+n)d)).

#include <cka/detail/mmd_sums.hpp>
#include <cka/device/detail/kernel_sums.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace cka::device::detail {

/// Scratch doubles of kernel_mmd2 for tiles of side b: the scan's slots, Z of the pooled sample
/// ((m+n)·d), its norms, five sums per tile, the means and flags (2d), the scan's chunks.
inline std::int64_t kernel_mmd2_scratch(std::int64_t m, std::int64_t n, std::int64_t d, std::int64_t b) {
  return input_slots::count + (m + n) * (d + 1) + 5 * upper_tiles(m + n, b) + 2 * d + moments_scratch(m + n, d);
}

/// Squared MMD with kernel k between the rows of x (m) and y (n) (views of checked shapes, the same
/// width) on the engine's backend: the pooled sample scanned and written once, the bandwidth from its
/// (m+n)² distances for a median rule, then one pass of block sums (a product and a reduction per tile)
/// and one read-back. scratch: kernel_mmd2_scratch(m, n, d, tile) doubles.
template <class Engine, class T>
double kernel_mmd2(const Engine& e, const strided<T>& x, const strided<T>& y, const tile_request& k, estimator est,
                   double* scratch) {
  const auto& be = e.be;
  const std::int64_t m = x.rows, n = y.rows, total = m + n, d = x.cols;
  const input_slots in{scratch};
  double* z = scratch + input_slots::count;
  double* norms = z + total * d;
  double* tiles = norms + total;
  write_tile_rows(be, stacked(x, y), k, k, in, tiles + 5 * upper_tiles(total, e.plan.tile), z);
  be.transform(total, norms, row_norm{z, total, d});
  const tile_rows t{z, norms, total, d};
  const tile_kernel f = resolve_kernel(e, t, k);
  auto buffer = be.scratch(std::size_t(e.plan.tile * e.plan.tile));
  double* g = buffer.get();
  std::int64_t at = 0;
  for_upper_tiles(total, e.plan.tile, [&](const tile_place& p) {
    e.product(t, p, g);
    be.reduce_into(p.h * p.w, tile_block_terms{tile_value{e.distances(t, p, g), f}, p.i0, p.j0, m},
                   sums5(0.0, 0.0, 0.0, 0.0, 0.0), add5{},
                   thrust::make_zip_iterator(thrust::make_tuple(tiles + 5 * at, tiles + 5 * at + 1, tiles + 5 * at + 2,
                                                                tiles + 5 * at + 3, tiles + 5 * at + 4)));
    ++at;
  });
  std::vector<double> h(std::size_t(5 * at));
  be.to_host(h.data(), tiles, std::int64_t(h.size()));
  double xx = 0, yy = 0, xy = 0, dx = 0, dy = 0;
  for (std::int64_t q = 0; q < at; ++q) {  // in tile order
    xx += h[std::size_t(5 * q)];
    yy += h[std::size_t(5 * q + 1)];
    xy += h[std::size_t(5 * q + 2)];
    dx += h[std::size_t(5 * q + 3)];
    dy += h[std::size_t(5 * q + 4)];
  }
  const double all = xx + yy + xy;  // NaN where a distance overflowed, ±Inf where a kernel value did
  if (!(all - all == 0.0)) fail_tile_overflow(be.fn, f.form == tile_form::rbf);
  return cka::detail::mmd2_from_sums<double>(xx, yy, xy / 2, dx, dy, m, n, est);
}

/// Item c·d + j: column j's deviations v = x·scale − μ·scale (μ the pooled mean; constant columns exactly
/// zero) over the c-th chunk of the pooled rows (X's, then Y's), summed and squared-summed for X's rows and
/// for Y's apart, into part[0 … 3] (each chunks·d long).
template <class T>
struct linear_mmd_chunk {
  view_pair<T> m;
  const double* mean;
  const double* keep;
  const double* scale;  // the scan's (one for the pooled sample)
  std::int64_t chunk, stride;  // stride: chunks·d, the length of each part
  double* part;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t d = m.cols(), j = item % d, c = item / d, total = m.rows();
    const std::int64_t r0 = c * chunk, r1 = r0 + chunk < total ? r0 + chunk : total;
    const double sc = *scale, mu = mean[j] * sc;
    double s[2] = {0, 0}, q[2] = {0, 0};
    for (std::int64_t r = r0; r < r1; ++r) {
      const int side = m.in_b(r, j) ? 1 : 0;
      const double v = keep[j] > 0 ? double(m.at(r, j)) * sc - mu : 0.0;
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
  estimator est;
  CKA_HD double operator()(std::int64_t j) const {
    const std::int64_t stride = chunks * d;
    double t[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4; ++k)
      for (std::int64_t c = 0; c < chunks; ++c) t[k] += part[k * stride + c * d + j];
    const double mm = double(m), nn = double(n);
    if (est == estimator::biased) {
      const double diff = t[0] / mm - t[2] / nn;
      return diff * diff;
    }
    return (t[0] * t[0] - t[1]) / (mm * (mm - 1)) + (t[2] * t[2] - t[3]) / (nn * (nn - 1)) - 2.0 * t[0] * t[2] / (mm * nn);
  }
};

/// Scratch doubles of linear_mmd2: the scan's slots and the sum, the pooled means and flags (2d), then the
/// scan's chunks (whose space the four sums per chunk and column reuse).
inline std::int64_t linear_mmd2_scratch(std::int64_t m, std::int64_t n, std::int64_t d) {
  return input_slots::count + 1 + 2 * d + std::max(moments_scratch(m + n, d), 4 * moment_chunks(m + n) * d);
}

/// Squared MMD with the linear kernel in closed form, O((m+n)·d): the host's linear_mmd2 (the pooled sample
/// shifted to its mean, scaled by the power of two of the larger magnitude) as one scan, sums over chunks
/// of rows and columns, one reduction over the columns and one read-back. scratch: linear_mmd2_scratch(m,
/// n, d) doubles of the context's memory. Throws cka::invalid_argument for a non-finite element and
/// cka::domain_error naming the function on overflow.
template <class Backend, class T>
double linear_mmd2(const Backend& be, const strided<T>& x, const strided<T>& y, estimator est, double* scratch) {
  const std::int64_t d = x.cols, total = x.rows + y.rows, chunks = moment_chunks(total);
  const input_slots in{scratch};
  double* sum = scratch + input_slots::count;
  double* mean = sum + 1;
  double* keep = mean + d;
  double* part = keep + d;
  const view_pair<T> pooled = stacked(x, y);
  scan_columns(be, pooled, mean, keep, part, in, true, true);
  be.launch(chunks * d, linear_mmd_chunk<T>{pooled, mean, keep, in.scale(), moment_chunk(total), chunks * d, part});
  be.reduce_into(d, linear_mmd_column{part, d, chunks, x.rows, y.rows, est}, 0.0,
                 thrust::plus<double>(), sum);
  double h[input_slots::count + 1];
  be.to_host(h, scratch, input_slots::count + 1);
  require_scanned_finite(be, pooled, h, "X", "Y");
  const double c = h[4];  // the scale of the pooled sample
  const double value = h[input_slots::count] / c / c;
  if (!(value - value == 0.0)) {
    cka::detail::fail_domain(be.fn, "overflow: the squared MMD exceeds the range of the accumulation type; rescale the inputs");
  }
  return value;
}

}  // namespace cka::device::detail
