#pragma once
// Private: the backend trait of the device functions. One object carries everything an engine needs from a
// context — the Thrust execution policy, the products (Eigen on the host systems, cuBLAS on CUDA), scratch
// in the context's memory, copies back to the host — and counts what it runs: launches (each algorithm or
// product call) and synchronisations (each value read back to the host). Every engine
// (device/detail/*.hpp) runs only through it, so the counts are a function's pass budget, and a test on the
// CPP system holds them (docs/device.md has the table). `Ops` is the system's part:
//   gram(fn, z, rows, cols, k)          K = ZZᵀ (rows×rows, lower triangle) of a column-major rows×cols Z
//   cross(fn, z, rows, cols, g, add)    G = ZᵀZ (cols×cols, lower triangle), or G += ZᵀZ when add
//   multiply(fn, w, n, x, d, out)       out = W·X (n×n times n×d, column-major)
//   tile_gemm(fn, a, b, h, w, d, lda, g)  G = A·Bᵀ of two row blocks (leading dimension lda), h×w
//   reduce_into(policy, fn, n, f, init, op, out)  a transform-reduction left in the context's memory
//   to_host(fn, dst, src, count)        count doubles copied back, waiting for them
//   scratch(fn, count)                  count doubles of the context's memory (an owner with get())

#include <cka/detail/host_device.hpp>
#include <cka/device/detail/work_counts.hpp>

#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/sort.h>
#include <thrust/transform.h>
#include <thrust/transform_reduce.h>

#include <cstdint>

namespace cka::device::detail {

/// Quotient and remainder of a flat index k by a side h (both non-negative): in 32 bits where both fit
/// — a GPU divides 32-bit integers several times faster than 64-bit ones, and a tile, a chunk or most
/// views index below 2³² — else in 64. The per-element division of the passes that walk a flat index.
struct flat_index {
  std::int64_t q, r;
};
CKA_HD inline flat_index divide(std::int64_t k, std::int64_t h) {
  if (k < (std::int64_t(1) << 32) && h < (std::int64_t(1) << 32)) {
    const std::uint32_t a = std::uint32_t(k), b = std::uint32_t(h);
    return {std::int64_t(a / b), std::int64_t(a % b)};
  }
  return {k / h, k % h};
}

/// A context's part of the backend, specialised by the context's header (cka/device.hpp, cka/device/cuda.hpp):
/// backend(ctx, fn), the tile plan for n rows, host_memory, and — for host memory — generic_kernel_cka and
/// generic_mmd2 for kernels the tile engine does not evaluate.
template <class Context>
struct context_traits;

template <class Policy, class Ops>
struct backend {
  Policy policy;
  Ops ops;
  work_counts* counts;
  const char* fn;

  void tally(std::int64_t launches, std::int64_t syncs) const {
    if (counts != nullptr) {
      counts->launches += launches;
      counts->syncs += syncs;
    }
  }

  /// f(i) for every i in [0, n): one launch (none for n ≤ 0).
  template <class F>
  void launch(std::int64_t n, F f) const {
    if (n <= 0) return;
    tally(1, 0);
    const thrust::counting_iterator<std::int64_t> first(0);
    thrust::for_each(policy, first, first + n, f);
  }
  /// The transform-reduction of f over [0, n) read back: one launch, one synchronisation.
  template <class F, class V, class Op>
  V reduce(std::int64_t n, F f, V init, Op op) const {
    tally(1, 1);
    const thrust::counting_iterator<std::int64_t> first(0);
    return thrust::transform_reduce(policy, first, first + n, f, init, op);
  }
  /// The same left in the context's memory through out (a pointer, or a zip iterator of pointers for a
  /// tuple): one launch, nothing waited for.
  template <class F, class V, class Op, class Out>
  void reduce_into(std::int64_t n, F f, V init, Op op, Out out) const {
    tally(1, 0);
    ops.reduce_into(policy, fn, n, f, init, op, out);
  }
  /// out[i] = f(i) for i in [0, n): one launch.
  template <class F>
  void transform(std::int64_t n, double* out, F f) const {
    if (n <= 0) return;
    tally(1, 0);
    const thrust::counting_iterator<std::int64_t> first(0);
    thrust::transform(policy, first, first + n, out, f);
  }
  void fill(double* p, std::int64_t n, double v) const {
    if (n <= 0) return;
    tally(1, 0);
    thrust::fill(policy, p, p + n, v);
  }
  /// Sorts n doubles in place: one launch (one algorithm; CUDA runs it as several kernels).
  void sort(double* p, std::int64_t n) const {
    if (n <= 1) return;
    tally(1, 0);
    thrust::sort(policy, p, p + n);
  }

  void gram(const double* z, std::int64_t rows, std::int64_t cols, double* k) const {
    tally(1, 0);
    ops.gram(fn, z, rows, cols, k);
  }
  void cross(const double* z, std::int64_t rows, std::int64_t cols, double* g, bool add = false) const {
    tally(1, 0);
    ops.cross(fn, z, rows, cols, g, add);
  }
  void multiply(const double* w, std::int64_t n, const double* x, std::int64_t d, double* out) const {
    tally(1, 0);
    ops.multiply(fn, w, n, x, d, out);
  }
  void tile_gemm(const double* a, const double* b, std::int64_t h, std::int64_t w, std::int64_t d, std::int64_t lda,
                 double* g) const {
    tally(1, 0);
    ops.tile_gemm(fn, a, b, h, w, d, lda, g);
  }

  /// count doubles copied back to the host: one synchronisation.
  void to_host(double* dst, const double* src, std::int64_t count) const {
    tally(0, 1);
    ops.to_host(fn, dst, src, count);
  }
  /// One element read back (for an error message): one synchronisation.
  template <class T>
  double read(const T* p) const {
    tally(0, 1);
    return ops.read(fn, p);
  }
  /// count doubles of the context's memory, freed with the owner.
  auto scratch(std::size_t count) const { return ops.scratch(fn, count); }

  /// The same backend reporting errors as another function.
  backend named(const char* name) const { return {policy, ops, counts, name}; }
};

template <class Policy, class Ops>
backend<Policy, Ops> make_backend(const Policy& policy, const Ops& ops, work_counts* counts, const char* fn) {
  return {policy, ops, counts, fn};
}

}  // namespace cka::device::detail
