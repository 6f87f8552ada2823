#pragma once
// Private: one read of two input views for everything the engines need before their products — the
// checks (the first non-finite element of each, in row-major order), each column's mean and whether it is
// constant, and each view's largest magnitude with the power-of-two scale it implies — as chunked passes
// with full parallelism on a GPU (a thread sums a chunk of rows of one column; adjacent threads read
// adjacent columns, coalesced for PyTorch's row-major layout), and nothing read back: the verdict and the
// scales stay in the context's memory (input_slots) for the engine to read with its results. Then the
// centered (or not) rows written once into a column-major double Z, scaled, for the products.

#include <cka/detail/scale.hpp>
#include <cka/device/detail/backend.hpp>
#include <cka/device/detail/checks.hpp>

#include <thrust/tuple.h>

#include <algorithm>
#include <cstdint>

namespace cka::device::detail {

/// Two views read as one block: side by side, [a b] (the same rows: two representations for CKA), or
/// stacked, [a; b] (the same columns: MMD's pooled sample). b may be empty (one view).
template <class T>
struct view_pair {
  strided<T> a, b;
  bool stacked;
  CKA_HD std::int64_t rows() const { return stacked ? a.rows + b.rows : a.rows; }
  CKA_HD std::int64_t cols() const { return stacked ? a.cols : a.cols + b.cols; }
  CKA_HD T at(std::int64_t r, std::int64_t j) const {
    if (stacked) return r < a.rows ? a.ptr[r * a.row_stride + j * a.col_stride] : b.ptr[(r - a.rows) * b.row_stride + j * b.col_stride];
    return j < a.cols ? a.ptr[r * a.row_stride + j * a.col_stride] : b.ptr[r * b.row_stride + (j - a.cols) * b.col_stride];
  }
  /// Whether element (r, j) belongs to b.
  CKA_HD bool in_b(std::int64_t r, std::int64_t j) const { return stacked ? r >= a.rows : j >= a.cols; }
};

template <class T>
view_pair<T> side_by_side(const strided<T>& a, const strided<T>& b) {
  return {a, b, false};
}
template <class T>
view_pair<T> stacked(const strided<T>& a, const strided<T>& b) {
  return {a, b, true};
}
template <class T>
view_pair<T> alone(const strided<T>& a) {
  return {a, strided<T>{a.ptr, a.rows, 0, 0, 0}, false};
}

/// Rows per chunk of the column statistics: at least 256, at most 1024 chunks.
inline std::int64_t moment_chunk(std::int64_t rows) { return std::max<std::int64_t>(256, (rows + 1023) / 1024); }
inline std::int64_t moment_chunks(std::int64_t rows) {
  return std::max<std::int64_t>(1, (rows + moment_chunk(rows) - 1) / moment_chunk(rows));
}
/// Scratch doubles of scan_columns for rows×cols: five numbers per chunk and column, three per column.
inline std::int64_t moments_scratch(std::int64_t rows, std::int64_t cols) { return 5 * moment_chunks(rows) * cols + 3 * cols; }

/// A row index that no view has (a column without a non-finite element).
constexpr double no_row = 9.0e18;

/// Item c·D + j: over the c-th chunk of rows of column j, the sum and the count of values that differ
/// from the column's first (0: a constant column) of the finite values, the largest magnitude among a's
/// and among b's, and the first row holding a non-finite value (no_row if none). part: five arrays of
/// `stride` = chunks·D.
template <class T>
struct column_chunk {
  view_pair<T> m;
  std::int64_t chunk, stride;
  double* part;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t d = m.cols(), j = item % d, c = item / d, total = m.rows();
    const std::int64_t r0 = c * chunk, r1 = r0 + chunk < total ? r0 + chunk : total;
    const T first = m.at(0, j);
    double s = 0, k = 0, top_a = 0, top_b = 0, bad = no_row;
    for (std::int64_t r = r0; r < r1; ++r) {
      const T e = m.at(r, j);
      const double v = double(e), mag = v < 0 ? -v : v;
      if (!(v - v == 0.0)) {
        if (bad == no_row) bad = double(r);
        continue;
      }
      s += v;
      k += e != first ? 1.0 : 0.0;
      if (m.in_b(r, j)) {
        top_b = mag > top_b ? mag : top_b;
      } else {
        top_a = mag > top_a ? mag : top_a;
      }
    }
    part[item] = s;
    part[stride + item] = k;
    part[2 * stride + item] = top_a;
    part[3 * stride + item] = top_b;
    part[4 * stride + item] = bad;
  }
};

/// Column j's chunks in order: its mean (over all rows) and differ count into mean[j], keep[j]; its
/// largest magnitudes and first non-finite row into col[j], col[D + j], col[2D + j].
struct finish_column {
  const double* part;
  std::int64_t d, chunks;
  double inv_rows;
  double* mean;
  double* keep;
  double* col;
  CKA_HD void operator()(std::int64_t j) const {
    const std::int64_t stride = chunks * d;
    double s = 0, k = 0, ta = 0, tb = 0, bad = no_row;
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t at = c * d + j;
      s += part[at];
      k += part[stride + at];
      ta = part[2 * stride + at] > ta ? part[2 * stride + at] : ta;
      tb = part[3 * stride + at] > tb ? part[3 * stride + at] : tb;
      bad = part[4 * stride + at] < bad ? part[4 * stride + at] : bad;
    }
    mean[j] = s * inv_rows;
    keep[j] = k;
    col[j] = ta;
    col[d + j] = tb;
    col[2 * d + j] = bad;
  }
};

/// The verdict of a scan, in the context's memory until the engine reads it with its results: the first
/// non-finite element of a and of b as a row-major flat index into that view (no_row if none), their
/// largest magnitudes, and the scales applied to them.
struct input_slots {
  static constexpr std::int64_t count = 6;
  double* at;
  CKA_HD double* key() const { return at; }       // [a, b]
  CKA_HD double* top() const { return at + 2; }   // [a, b]
  CKA_HD double* scale() const { return at + 4; } // [a, b]
};

using quad = thrust::tuple<double, double, double, double>;

/// Column j's contribution to the verdict: (key in a, key in b, top of a, top of b).
template <class T>
struct column_verdict {
  view_pair<T> m;
  const double* col;
  CKA_HD quad operator()(std::int64_t j) const {
    const std::int64_t d = m.cols();
    const double bad = col[2 * d + j];
    double ka = no_row, kb = no_row;
    if (bad != no_row) {
      const std::int64_t r = std::int64_t(bad);
      if (m.stacked) {
        if (r < m.a.rows) ka = double(r * d + j);
        else kb = double((r - m.a.rows) * d + j);
      } else if (j < m.a.cols) {
        ka = double(r * m.a.cols + j);
      } else {
        kb = double(r * m.b.cols + (j - m.a.cols));
      }
    }
    return quad(ka, kb, col[j], col[d + j]);
  }
};
struct merge_verdict {
  CKA_HD quad operator()(const quad& x, const quad& y) const {
    using thrust::get;
    return quad(get<0>(x) < get<0>(y) ? get<0>(x) : get<0>(y), get<1>(x) < get<1>(y) ? get<1>(x) : get<1>(y),
                get<2>(x) > get<2>(y) ? get<2>(x) : get<2>(y), get<3>(x) > get<3>(y) ? get<3>(x) : get<3>(y));
  }
};

/// The scales of a scan from its tops (one thread): the power-of-two scale of a's top and of b's where
/// asked (else 1); for a stacked pair one scale, of the larger top, for both.
struct scales_from_tops {
  input_slots slots;
  bool scale_a, scale_b, stacked;
  CKA_HD void operator()(std::int64_t) const {
    const double ta = slots.top()[0], tb = slots.top()[1];
    if (stacked) {
      const double s = scale_a ? cka::detail::power_of_two_scale(ta > tb ? ta : tb) : 1.0;
      slots.scale()[0] = s;
      slots.scale()[1] = s;
    } else {
      slots.scale()[0] = scale_a ? cka::detail::power_of_two_scale(ta) : 1.0;
      slots.scale()[1] = scale_b ? cka::detail::power_of_two_scale(tb) : 1.0;
    }
  }
};

/// The scan of a pair: each column's mean and constancy into mean, keep (D each, the context's memory),
/// the verdict and scales into slots (scale_a, scale_b: whether a's and b's values are to be scaled).
/// partial: moments_scratch(rows, D) doubles. Four launches, nothing read back; rows ≥ 1.
template <class Backend, class T>
void scan_columns(const Backend& be, const view_pair<T>& m, double* mean, double* keep, double* partial,
                  input_slots slots, bool scale_a, bool scale_b) {
  const std::int64_t rows = m.rows(), d = m.cols(), chunks = moment_chunks(rows);
  double* col = partial + 5 * chunks * d;
  be.launch(chunks * d, column_chunk<T>{m, moment_chunk(rows), chunks * d, partial});
  be.launch(d, finish_column{partial, d, chunks, 1.0 / double(rows), mean, keep, col});
  be.reduce_into(d, column_verdict<T>{m, col}, quad(no_row, no_row, 0.0, 0.0), merge_verdict{},
                 thrust::make_zip_iterator(thrust::make_tuple(slots.at, slots.at + 1, slots.at + 2, slots.at + 3)));
  be.launch(1, scales_from_tops{slots, scale_a, scale_b, m.stacked});
}

/// Throws cka::invalid_argument for the first non-finite element a scan found (its slots read back into
/// `host`): names[0] for a, names[1] for b, the element read back for the message.
template <class Backend, class T>
void require_scanned_finite(const Backend& be, const view_pair<T>& m, const double* host, const char* name_a,
                            const char* name_b) {
  for (int side = 0; side < 2; ++side) {
    if (host[side] == no_row) continue;
    const strided<T>& v = side == 0 ? m.a : m.b;
    const std::int64_t k = std::int64_t(host[side]), i = k / v.cols, j = k % v.cols;
    cka::detail::fail_argument(be.fn, side == 0 ? name_a : name_b, "(", i, ", ", j, ") = ",
                               be.read(v.ptr + i * v.row_stride + j * v.col_stride), " is not finite");
  }
}

/// Columns a thread of a writer handles in one row: 32 bytes of T. Adjacent threads take adjacent rows, so
/// the writes to a column-major buffer are coalesced, and in a row-major input a thread's values share one
/// or two 32-byte sectors, each read in full (a thread per element would read a sector per value).
template <class T>
constexpr std::int64_t column_group = 32 / std::int64_t(sizeof(T));

/// Z(r, j) = (m(r, j) − mean_j)·scale of its view for the pair's rows r and columns j, or 0 where
/// keep_j = 0 (a constant column), in a column-major Z (leading dimension: the pair's rows); a's values
/// (center_a false) or b's (center_b false) as they are, scaled. scale: the scan's slots (null: 1).
/// Item g·rows + r writes row r's columns in group g (column_group).
template <class T>
struct center_into {
  view_pair<T> m;
  const double* mean;
  const double* keep;
  const double* scale;
  bool center_a, center_b;
  double* z;
  CKA_HD void operator()(std::int64_t item) const {
    const flat_index f = divide(item, m.rows());
    const std::int64_t i = f.r, j0 = f.q * column_group<T>, cols = m.cols();
    const std::int64_t j1 = j0 + column_group<T> < cols ? j0 + column_group<T> : cols;
    for (std::int64_t j = j0; j < j1; ++j) {
      const bool b = m.in_b(i, j);
      const double s = scale == nullptr ? 1.0 : scale[b ? 1 : 0];
      double v = double(m.at(i, j));
      if (b ? center_b : center_a) v = keep[j] > 0 ? v - mean[j] : 0.0;
      z[j * m.rows() + i] = v * s;
    }
  }
};

/// The items of a writer over rows × cols (column_group columns per item).
template <class T>
std::int64_t group_items(std::int64_t rows, std::int64_t cols) {
  return rows * ((cols + column_group<T> - 1) / column_group<T>);
}

/// Writes the pair into Z (rows×D, column-major): centered by the scan's means (for a, b as asked),
/// scaled by its slots' scales (when given). One launch.
template <class Backend, class T>
void write_centered(const Backend& be, const view_pair<T>& m, const double* mean, const double* keep, const double* scale,
                    double* z, bool center_a = true, bool center_b = true) {
  be.launch(group_items<T>(m.rows(), m.cols()), center_into<T>{m, mean, keep, scale, center_a, center_b, z});
}

}  // namespace cka::device::detail
