#pragma once
// Private: the centered sums of two n×n Gram views on a backend, in two passes over each matrix:
// 1. line sums — with the checks folded in where asked: the first non-finite entry, the largest
//    magnitude and the largest asymmetry |P_ij − P_ji| (which reads the transposed entry too);
// 2. one reduction that centers both on the fly and sums C(K)∘C(L), C(K)² and C(L)² over half of each
//    matrix (each pair once, twice off the diagonal).
// A thread sums a chunk of one line; lines run along each matrix's unit-stride dimension, so adjacent
// threads read adjacent entries whatever the layout (a symmetric matrix's row sums are its column sums).
// The totals, the verdict and the sums stay in the context's memory until one read-back. Double throughout.

#include <cka/device/detail/backend.hpp>
#include <cka/device/detail/checks.hpp>
#include <cka/estimator.hpp>

#include <thrust/functional.h>
#include <thrust/iterator/zip_iterator.h>
#include <thrust/tuple.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace cka::device::detail {

/// A strided square matrix of scalar T on the context's memory.
template <class T>
struct square {
  const T* ptr;
  std::int64_t n, row_stride, col_stride;
  CKA_HD double at(std::int64_t i, std::int64_t j) const { return double(ptr[i * row_stride + j * col_stride]); }
  /// Entry t of line l, along the unit-stride dimension: (t, l) for a row-major matrix, else (l, t).
  CKA_HD bool by_columns() const { return col_stride == 1 && row_stride != 1; }
  CKA_HD double line(std::int64_t l, std::int64_t t) const { return by_columns() ? at(t, l) : at(l, t); }
};

constexpr std::int64_t line_chunk = 64;
inline std::int64_t line_chunks(std::int64_t length) { return length > line_chunk ? (length + line_chunk - 1) / line_chunk : 1; }

inline std::int64_t line_sums_scratch(std::int64_t lines, std::int64_t length) { return lines * line_chunks(length); }

/// Sums along the lines of a matrix in two steps, so that a GPU runs them with full parallelism whatever
/// the shape: item c·lines + l adds f(l, t) over the c-th chunk of `chunk` indices t, then each line's
/// chunks are added in order.
template <class F>
struct line_chunk_sum {
  F f;
  std::int64_t lines, length, chunk;
  double* partial;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t l = item % lines, c = item / lines, t0 = c * chunk, t1 = t0 + chunk < length ? t0 + chunk : length;
    double s = 0;
    for (std::int64_t t = t0; t < t1; ++t) s += f(l, t);
    partial[item] = s;
  }
};
/// Entry k's chunks (k + c·stride for c < chunks) added in order, times `scale`, into r[k] — or onto it
/// when `accumulate` — and, when q is given, those of a second array times `weight` into q[k] likewise.
struct add_chunks {
  const double* rs;
  const double* qs;
  std::int64_t stride, chunks;
  double scale, weight;
  bool accumulate;
  double* r;
  double* q;
  CKA_HD void operator()(std::int64_t k) const {
    double s = 0, s2 = 0;
    for (std::int64_t c = 0; c < chunks; ++c) {
      s += rs[c * stride + k];
      if (q != nullptr) s2 += qs[c * stride + k];
    }
    r[k] = (accumulate ? r[k] : 0.0) + scale * s;
    if (q != nullptr) q[k] = (accumulate ? q[k] : 0.0) + weight * s2;
  }
};

/// out[l] = scale·Σ_t f(l, t) for l < lines, t < length (f(l, t) a double); partial:
/// line_sums_scratch(lines, length) doubles of the context's memory. Two launches.
template <class Backend, class F>
void line_sums(const Backend& be, F f, std::int64_t lines, std::int64_t length, double scale, double* partial, double* out) {
  const std::int64_t chunks = line_chunks(length);
  be.launch(chunks * lines, line_chunk_sum<F>{f, lines, length, line_chunk, partial});
  be.launch(lines, add_chunks{partial, nullptr, lines, chunks, scale, 0.0, false, out, nullptr});
}

/// Entry (i, j) of a square view as a row's term, the diagonal left out for the unbiased estimator.
template <class T>
struct row_entry {
  square<T> m;
  bool skip_diagonal;
  CKA_HD double operator()(std::int64_t i, std::int64_t j) const { return skip_diagonal && i == j ? 0.0 : m.at(i, j); }
};

/// The centering C_ij = P_ij − u(r_i + r_j) + c of a symmetric matrix from its row sums r (without the
/// diagonal for the unbiased estimator, whose C has a zero diagonal): u = 1/n, c = Σr/n² (biased);
/// u = 1/(n−2), c = Σr/((n−1)(n−2)) (unbiased).
struct centering_scale {
  double u, c;
};
CKA_HD inline centering_scale centering_scales(std::int64_t n, double total, estimator est) {
  const double nn = double(n);
  return est == estimator::unbiased ? centering_scale{1.0 / (nn - 2), total / ((nn - 1) * (nn - 2))} : centering_scale{1.0 / nn, total / (nn * nn)};
}

using sums3 = thrust::tuple<double, double, double>;
using sums8 = thrust::tuple<double, double, double, double, double, double, double, double>;

struct add3 {
  CKA_HD sums3 operator()(const sums3& a, const sums3& b) const {
    return sums3(thrust::get<0>(a) + thrust::get<0>(b), thrust::get<1>(a) + thrust::get<1>(b),
                 thrust::get<2>(a) + thrust::get<2>(b));
  }
};

/// A row-major flat index that no n×n matrix has.
constexpr double no_entry = 9.0e18;

/// Item c·2n + l: over the c-th chunk of line l of K (l < n) or of L (l − n), the sum (the diagonal left
/// out for the unbiased estimator) and, when checking, the largest magnitude, the largest asymmetry
/// against the transposed entry (each pair once) and the first non-finite entry's row-major index.
/// part: four arrays of chunks·2n.
template <class T>
struct gram_line_chunk {
  square<T> k, l;
  estimator est;
  bool check;
  std::int64_t stride;
  double* part;
  CKA_HD void operator()(std::int64_t item) const {
    const std::int64_t n = k.n, lines = 2 * n, line = item % lines, c = item / lines;
    const square<T>& m = line < n ? k : l;
    const std::int64_t at = line < n ? line : line - n, t0 = c * line_chunk;
    const std::int64_t t1 = t0 + line_chunk < n ? t0 + line_chunk : n;
    const bool cols = m.by_columns();
    double s = 0, top = 0, gap = 0, bad = no_entry;
    for (std::int64_t t = t0; t < t1; ++t) {
      const double v = m.line(at, t);
      if (!(est == estimator::unbiased && t == at)) s += v;
      if (!check) continue;
      const double mag = v < 0 ? -v : v;
      if (!(v - v == 0.0)) {
        const double key = cols ? double(t * n + at) : double(at * n + t);
        bad = key < bad ? key : bad;
        continue;
      }
      top = mag > top ? mag : top;
      if (t < at) {
        const double d = v - m.line(t, at), g = d < 0 ? -d : d;
        gap = g > gap ? g : gap;
      }
    }
    part[item] = s;
    part[stride + item] = top;
    part[2 * stride + item] = gap;
    part[3 * stride + item] = bad;
  }
};

/// Line l's chunks in order: its sum into r[l] (K's lines, then L's), its check numbers into line_stats
/// (three arrays of 2n).
struct finish_line {
  const double* part;
  std::int64_t lines, chunks;
  double* r;
  double* stats;
  CKA_HD void operator()(std::int64_t l) const {
    const std::int64_t stride = chunks * lines;
    double s = 0, top = 0, gap = 0, bad = no_entry;
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t at = c * lines + l;
      s += part[at];
      top = part[stride + at] > top ? part[stride + at] : top;
      gap = part[2 * stride + at] > gap ? part[2 * stride + at] : gap;
      bad = part[3 * stride + at] < bad ? part[3 * stride + at] : bad;
    }
    r[l] = s;
    stats[l] = top;
    stats[lines + l] = gap;
    stats[2 * lines + l] = bad;
  }
};

/// Line l's share of the verdict and totals: (bad K, bad L, top K, top L, gap K, gap L, Σr_K, Σr_L).
struct line_verdict {
  const double* r;
  const double* stats;
  std::int64_t n;
  CKA_HD sums8 operator()(std::int64_t l) const {
    const std::int64_t lines = 2 * n;
    const double top = stats[l], gap = stats[lines + l], bad = stats[2 * lines + l];
    const double none = no_entry;  // a value: the tuple takes references, which device code cannot bind to a host constant
    return l < n ? sums8(bad, none, top, 0.0, gap, 0.0, r[l], 0.0) : sums8(none, bad, 0.0, top, 0.0, gap, 0.0, r[l]);
  }
};
struct merge_line_verdict {
  CKA_HD sums8 operator()(const sums8& a, const sums8& b) const {
    using thrust::get;
    return sums8(get<0>(a) < get<0>(b) ? get<0>(a) : get<0>(b), get<1>(a) < get<1>(b) ? get<1>(a) : get<1>(b),
                 get<2>(a) > get<2>(b) ? get<2>(a) : get<2>(b), get<3>(a) > get<3>(b) ? get<3>(a) : get<3>(b),
                 get<4>(a) > get<4>(b) ? get<4>(a) : get<4>(b), get<5>(a) > get<5>(b) ? get<5>(a) : get<5>(b),
                 get<6>(a) + get<6>(b), get<7>(a) + get<7>(b));
  }
};

/// Item c·n + l: the centered products over the c-th chunk of line l (K and L each read along its own
/// unit-stride dimension), the totals read from the context's memory. Each pair {i, j} once — at t ≥ l,
/// counted twice off the diagonal — so the pass reads half of each matrix (an item whose chunk ends at or
/// before the diagonal has nothing to do).
template <class T>
struct centered_line_products {
  square<T> k, l;
  const double* rk;
  const double* rl;
  const double* totals;  // Σr_K, Σr_L
  estimator est;
  CKA_HD sums3 operator()(std::int64_t item) const {
    const flat_index f = divide(item, k.n);
    const std::int64_t n = k.n, line = f.r, c = f.q, t0 = c * line_chunk;
    const std::int64_t t1 = t0 + line_chunk < n ? t0 + line_chunk : n;
    if (t1 <= line) return sums3(0.0, 0.0, 0.0);
    const centering_scale ck = centering_scales(n, totals[0], est), cl = centering_scales(n, totals[1], est);
    double ab = 0, aa = 0, bb = 0, ab_on = 0, aa_on = 0, bb_on = 0;
    for (std::int64_t t = t0 > line ? t0 : line; t < t1; ++t) {
      if (est == estimator::unbiased && t == line) continue;
      const double a = k.line(line, t) - ck.u * (rk[line] + rk[t]) + ck.c;
      const double b = l.line(line, t) - cl.u * (rl[line] + rl[t]) + cl.c;
      if (t == line) {
        ab_on = a * b;
        aa_on = a * a;
        bb_on = b * b;
        continue;
      }
      ab += a * b;
      aa += a * a;
      bb += b * b;
    }
    return sums3(2.0 * ab + ab_on, 2.0 * aa + aa_on, 2.0 * bb + bb_on);
  }
};

/// Scratch doubles of centered_sums_into for n×n views: the row sums (2n), the line statistics (6n), the
/// chunks (4 per chunk and line).
inline std::int64_t centered_sums_scratch(std::int64_t n) { return 8 * n + 4 * line_chunks(n) * 2 * n; }

/// Σ C(K)∘C(L), Σ C(K)², Σ C(L)² for two n×n views into out[0 … 2] and the verdict (bad K, bad L, top K,
/// top L, gap K, gap L — found only when `check` — and the totals Σr_K, Σr_L) into verdict[0 … 7], both in
/// the context's memory. rows: centered_sums_scratch(n) doubles. Four launches, nothing read back.
template <class Backend, class T>
void centered_sums_into(const Backend& be, const square<T>& k, const square<T>& l, estimator est, double* rows, double* out,
                        double* verdict, bool check = false) {
  const std::int64_t n = k.n, lines = 2 * n, chunks = line_chunks(n);
  double* r = rows;           // 2n
  double* stats = r + lines;  // 6n
  double* part = stats + 3 * lines;
  be.launch(chunks * lines, gram_line_chunk<T>{k, l, est, check, chunks * lines, part});
  be.launch(lines, finish_line{part, lines, chunks, r, stats});
  be.reduce_into(lines, line_verdict{r, stats, n}, sums8(no_entry, no_entry, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
                 merge_line_verdict{},
                 thrust::make_zip_iterator(thrust::make_tuple(verdict, verdict + 1, verdict + 2, verdict + 3, verdict + 4,
                                                              verdict + 5, verdict + 6, verdict + 7)));
  be.reduce_into(chunks * n, centered_line_products<T>{k, l, r, r + n, verdict + 6, est}, sums3(0.0, 0.0, 0.0), add3{},
                 thrust::make_zip_iterator(thrust::make_tuple(out, out + 1, out + 2)));
}

/// Scratch doubles in host memory (the host systems' scratch).
struct host_scratch {
  std::vector<double> values;
  double* get() { return values.data(); }
};
inline host_scratch make_host_scratch(std::size_t count) { return {std::vector<double>(count)}; }

/// The first row-major entry (i > j) of an n×n view whose asymmetry exceeds a tolerance: i·n + j.
template <class T>
struct asymmetric_key {
  square<T> m;
  double tolerance;
  CKA_HD double operator()(std::int64_t flat) const {
    const std::int64_t i = flat / m.n, j = flat % m.n;
    if (i <= j) return no_entry;
    const double d = m.at(i, j) - m.at(j, i);
    return (d < 0 ? -d : d) > tolerance ? double(flat) : no_entry;
  }
};

/// HSIC of two Gram views after everything the host hsic checks — layout, square, the same size, enough
/// samples (on the host, before any launch); finiteness and symmetry up to √epsilon of the largest
/// magnitude (folded into the line sums, read back with the result) — on a backend. Returns the sum over
/// (n−1)² or n(n−3). Four launches, one synchronisation (two more to name a culprit).
template <class Backend, class T>
double gram_hsic(const Backend& be, const strided<T>& k, const strided<T>& l, estimator est, double epsilon) {
  const char* fn = be.fn;
  for (const auto* m : {&k, &l}) {
    const char* what = m == &k ? "K" : "L";
    require_layout(fn, what, m->ptr, m->rows, m->cols, m->row_stride, m->col_stride);
    if (m->rows != m->cols) cka::detail::fail_argument(fn, what, " is ", m->rows, "x", m->cols, "; a Gram matrix must be square");
  }
  if (k.rows != l.rows) {
    cka::detail::fail_argument(fn, "K is ", k.rows, "x", k.cols, " but L is ", l.rows, "x", l.cols,
                               "; both Grams must be over the same samples");
  }
  const std::int64_t n = k.rows, needed = min_samples(est);
  if (n < needed) {
    cka::detail::fail_argument(fn, "K has ", n, " samples but ", est == estimator::unbiased ? "the unbiased estimator" : "the biased estimator",
                               " needs at least ", needed);
  }
  const square<T> sk{k.ptr, n, k.row_stride, k.col_stride}, sl{l.ptr, n, l.row_stride, l.col_stride};
  auto scratch = be.scratch(std::size_t(11 + centered_sums_scratch(n)));
  double* out = scratch.get();  // the sums, then the verdict: one read-back
  centered_sums_into(be, sk, sl, est, out + 11, out, out + 3, true);
  double h[11];
  be.to_host(h, out, 11);
  const double* v = h + 3;
  for (int side = 0; side < 2; ++side) {
    if (v[side] == no_entry) continue;
    const square<T>& m = side == 0 ? sk : sl;
    const std::int64_t key = std::int64_t(v[side]), i = key / n, j = key % n;
    cka::detail::fail_argument(fn, side == 0 ? "K" : "L", "(", i, ", ", j, ") = ", be.read(m.ptr + i * m.row_stride + j * m.col_stride),
                               " is not finite");
  }
  for (int side = 0; side < 2; ++side) {
    const double tolerance = std::sqrt(epsilon) * v[2 + side];
    if (!(v[4 + side] > tolerance)) continue;
    const square<T>& m = side == 0 ? sk : sl;
    const double first = be.reduce(n * n, asymmetric_key<T>{m, tolerance}, no_entry, thrust::minimum<double>());
    const std::int64_t key = std::int64_t(first), i = key / n, j = key % n;
    cka::detail::fail_argument(fn, side == 0 ? "K" : "L", " is not symmetric: (", i, ", ", j, ") = ",
                               be.read(m.ptr + i * m.row_stride + j * m.col_stride), " but (", j, ", ", i, ") = ",
                               be.read(m.ptr + j * m.row_stride + i * m.col_stride));
  }
  const double nn = double(n);
  return h[0] / (est == estimator::unbiased ? nn * (nn - 3) : (nn - 1) * (nn - 1));
}

}  // namespace cka::device::detail
