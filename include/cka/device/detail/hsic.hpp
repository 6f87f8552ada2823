#pragma once
// Private: the centered sums of two n×n Gram views as Thrust algorithms over an explicit policy — row sums
// (one element per row), then one transform-reduce over the n² entries that centers both on the fly and
// sums C(K)∘C(L), C(K)² and C(L)². The same code runs on the OMP and CPP systems (host memory) and, compiled
// by nvcc, on CUDA (device memory); the functors are __host__ __device__ there. Accumulates in double.

#include <cka/device/detail/checks.hpp>

#include <thrust/find.h>
#include <thrust/for_each.h>
#include <thrust/functional.h>
#include <thrust/reduce.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform.h>
#include <thrust/transform_reduce.h>
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
};

/// Sums along the lines (rows or columns) of a matrix in two steps, so that a GPU runs them with full
/// parallelism whatever the shape: item c·lines + l adds f(l, t) over the c-th chunk of `chunk` indices t,
/// then each line's chunks are added in order. line_sums_scratch(lines, length) doubles of partial sums.
constexpr std::int64_t line_chunk = 64;
inline std::int64_t line_chunks(std::int64_t length) { return length > line_chunk ? (length + line_chunk - 1) / line_chunk : 1; }
inline std::int64_t line_sums_scratch(std::int64_t lines, std::int64_t length) { return lines * line_chunks(length); }

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
/// line_sums_scratch(lines, length) doubles of the context's memory.
template <class Policy, class F>
void line_sums(const Policy& policy, F f, std::int64_t lines, std::int64_t length, double scale, double* partial,
               double* out) {
  const std::int64_t chunks = line_chunks(length);
  const thrust::counting_iterator<std::int64_t> first(0);
  thrust::for_each(policy, first, first + chunks * lines, line_chunk_sum<F>{f, lines, length, line_chunk, partial});
  thrust::for_each(policy, first, first + lines, add_chunks{partial, nullptr, lines, chunks, scale, 0.0, false, out, nullptr});
}

/// Entry (i, j) of a square view as a row's term, the diagonal left out for the unbiased estimator.
template <class T>
struct row_entry {
  square<T> m;
  bool skip_diagonal;
  CKA_HD double operator()(std::int64_t i, std::int64_t j) const { return skip_diagonal && i == j ? 0.0 : m.at(i, j); }
};

/// The centering C_ij = P_ij − u_i − u_j + c of a symmetric matrix from its row sums r (without the
/// diagonal for the unbiased estimator, whose C has a zero diagonal): u = r/n, c = Σr/n² (biased);
/// u = r/(n−2), c = Σr/((n−1)(n−2)) (unbiased).
struct centering_scale {
  double u, c;
};
inline centering_scale centering_scales(std::int64_t n, double total, bool unbiased) {
  const double nn = double(n);
  return unbiased ? centering_scale{1.0 / (nn - 2), total / ((nn - 1) * (nn - 2))} : centering_scale{1.0 / nn, total / (nn * nn)};
}

using sums3 = thrust::tuple<double, double, double>;

struct add3 {
  CKA_HD sums3 operator()(const sums3& a, const sums3& b) const {
    return sums3(thrust::get<0>(a) + thrust::get<0>(b), thrust::get<1>(a) + thrust::get<1>(b),
                 thrust::get<2>(a) + thrust::get<2>(b));
  }
};

/// The centered products at flat index k = i·n + j.
template <class T>
struct centered_products_at {
  square<T> k, l;
  const double* rk;
  const double* rl;
  centering_scale ck, cl;
  bool unbiased;
  CKA_HD sums3 operator()(std::int64_t flat) const {
    const std::int64_t i = flat / k.n, j = flat % k.n;
    if (unbiased && i == j) return sums3(0.0, 0.0, 0.0);
    const double a = k.at(i, j) - ck.u * (rk[i] + rk[j]) + ck.c;
    const double b = l.at(i, j) - cl.u * (rl[i] + rl[j]) + cl.c;
    return sums3(a * b, a * a, b * b);
  }
};

/// |P_ij| at flat index k, and |P_ij − P_ji| (0 on and above the diagonal).
template <class T>
struct magnitude_at {
  square<T> m;
  CKA_HD double operator()(std::int64_t flat) const {
    const double v = m.at(flat / m.n, flat % m.n);
    return v < 0 ? -v : v;
  }
};
template <class T>
struct asymmetry_at {
  square<T> m;
  CKA_HD double operator()(std::int64_t flat) const {
    const std::int64_t i = flat / m.n, j = flat % m.n;
    if (i <= j) return 0.0;
    const double d = m.at(i, j) - m.at(j, i);
    return d < 0 ? -d : d;
  }
};
template <class T>
struct asymmetric_beyond {
  asymmetry_at<T> gap;
  double tolerance;
  CKA_HD bool operator()(std::int64_t flat) const { return gap(flat) > tolerance; }
};

/// Throws cka::invalid_argument (as the host check does) unless the n×n view is symmetric up to
/// √ε·max|P_ij|: two max-reductions over the n² entries, and a search for the culprit on failure.
template <class Policy, class Read, class T>
void require_symmetric(const Policy& policy, Read&& read, const char* fn, const char* what, const square<T>& m,
                       double epsilon) {
  const thrust::counting_iterator<std::int64_t> first(0), last(m.n * m.n);
  const double scale = thrust::transform_reduce(policy, first, last, magnitude_at<T>{m}, 0.0, thrust::maximum<double>());
  const double worst = thrust::transform_reduce(policy, first, last, asymmetry_at<T>{m}, 0.0, thrust::maximum<double>());
  const double tolerance = std::sqrt(epsilon) * scale;
  if (!(worst > tolerance)) return;
  const std::int64_t k = *thrust::find_if(policy, first, last, asymmetric_beyond<T>{{m}, tolerance});
  const std::int64_t i = k / m.n, j = k % m.n;
  cka::detail::fail_argument(fn, what, " is not symmetric: (", i, ", ", j, ") = ",
                             read(m.ptr + i * m.row_stride + j * m.col_stride), " but (", j, ", ", i, ") = ",
                             read(m.ptr + j * m.row_stride + i * m.col_stride));
}

/// Scratch doubles of centered_sums for n×n views: the row sums of both, and their chunks.
inline std::int64_t centered_sums_scratch(std::int64_t n) { return 2 * n + line_sums_scratch(n, n); }

/// Σ C(K)∘C(L), Σ C(K)², Σ C(L)² for two n×n views. `rows` is scratch for centered_sums_scratch(n) doubles
/// on the context's memory. O(n²) reads of each matrix, in two passes.
template <class Policy, class T>
sums3 centered_sums(const Policy& policy, const square<T>& k, const square<T>& l, bool unbiased, double* rows) {
  const std::int64_t n = k.n;
  const thrust::counting_iterator<std::int64_t> first(0);
  double* rk = rows;
  double* rl = rows + n;
  line_sums(policy, row_entry<T>{k, unbiased}, n, n, 1.0, rows + 2 * n, rk);
  line_sums(policy, row_entry<T>{l, unbiased}, n, n, 1.0, rows + 2 * n, rl);
  const double tk = thrust::reduce(policy, rk, rk + n, 0.0);
  const double tl = thrust::reduce(policy, rl, rl + n, 0.0);
  const centered_products_at<T> f{k, l, rk, rl, centering_scales(n, tk, unbiased), centering_scales(n, tl, unbiased), unbiased};
  return thrust::transform_reduce(policy, first, first + n * n, f, sums3(0.0, 0.0, 0.0), add3{});
}

/// Scratch doubles in host memory (the host systems' scratch(count) of gram_hsic).
struct host_scratch {
  std::vector<double> values;
  double* get() { return values.data(); }
};
inline host_scratch make_host_scratch(std::size_t count) { return {std::vector<double>(count)}; }

/// HSIC of two Gram views after everything the host hsic checks — layout, finiteness, square, symmetric
/// (up to √epsilon of the largest magnitude), same size, enough samples — in the context's memory: policy
/// runs the algorithms, read(const T*) fetches one element for a message, scratch(count) allocates count
/// doubles there (after the checks) and returns an owner with get(). Returns HSIC (the sum over (n−1)² or
/// n(n−3)).
template <class Policy, class Read, class Scratch, class T>
double gram_hsic(const Policy& policy, Read&& read, Scratch&& scratch, const char* fn, const strided<T>& k,
                 const strided<T>& l, bool unbiased, double epsilon) {
  for (const auto* m : {&k, &l}) {
    const char* what = m == &k ? "K" : "L";
    require_layout(fn, what, m->ptr, m->rows, m->cols, m->row_stride, m->col_stride);
    require_finite(policy, read, fn, what, m->ptr, m->rows, m->cols, m->row_stride, m->col_stride);
    if (m->rows != m->cols) cka::detail::fail_argument(fn, what, " is ", m->rows, "x", m->cols, "; a Gram matrix must be square");
  }
  const square<T> sk{k.ptr, k.rows, k.row_stride, k.col_stride}, sl{l.ptr, l.rows, l.row_stride, l.col_stride};
  require_symmetric(policy, read, fn, "K", sk, epsilon);
  require_symmetric(policy, read, fn, "L", sl, epsilon);
  if (k.rows != l.rows) {
    cka::detail::fail_argument(fn, "K is ", k.rows, "x", k.cols, " but L is ", l.rows, "x", l.cols,
                               "; both Grams must be over the same samples");
  }
  const std::int64_t n = k.rows, needed = unbiased ? 4 : 2;
  if (n < needed) {
    cka::detail::fail_argument(fn, "K has ", n, " samples but ", unbiased ? "the unbiased estimator" : "the biased estimator",
                               " needs at least ", needed);
  }
  auto rows = scratch(std::size_t(centered_sums_scratch(n)));
  const sums3 s = centered_sums(policy, sk, sl, unbiased, rows.get());
  const double nn = double(n);
  return thrust::get<0>(s) / (unbiased ? nn * (nn - 3) : (nn - 1) * (nn - 1));
}

}  // namespace cka::device::detail
