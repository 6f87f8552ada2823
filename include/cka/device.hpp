#pragma once
/// \file device.hpp
/// The device backend on the host systems of Thrust — `cka::device::omp` and `cka::device::cpp` — where the
/// views' memory is host memory: the functions of cka/device/functions.hpp (HSIC, linear and kernel CKA,
/// MMD, the RCKA losses with their gradients, on views described by pointer, shape and strides, never
/// copied into Eigen matrices) run the code the CUDA system runs, with Thrust's explicit policy for the
/// passes and Eigen maps for the products; every result equals the host function's on the same values to
/// rounding. Generic kernels run the host functions on Eigen maps over the views (strided, no copy). The
/// CUDA context is in cka/device/cuda.hpp; see docs/device.md.
/// Link the CMake target cka::device (the toolkit's CCCL headers, and OpenMP for the omp system).

#include <cka/device/detail/backend.hpp>
#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/tiles.hpp>
#include <cka/device/view.hpp>
#include <cka/hsic.hpp>
#include <cka/mmd.hpp>
#include <cka/rcka.hpp>
#include <cka/similarity.hpp>

#include <Eigen/Core>

#include <thrust/system/cpp/execution_policy.h>
#if defined(_OPENMP)
#include <thrust/system/omp/execution_policy.h>
#endif

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace cka {
namespace device {

/// True for the contexts whose memory is host memory.
template <class Context>
struct is_host_system : std::false_type {};
template <>
struct is_host_system<omp> : std::true_type {};
template <>
struct is_host_system<cpp> : std::true_type {};

namespace detail {

/// An Eigen map of scalar T over a strided view (const T: read-only).
template <class T>
using strided_map = Eigen::Map<std::conditional_t<std::is_const_v<T>,
                                                  const Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, Eigen::Dynamic>,
                                                  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>>,
                               0, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

/// A writable Eigen map over a host view (any strides).
template <class T>
strided_map<T> map(const matrix_view<T>& v) {
  return strided_map<T>(v.ptr, Eigen::Index(v.rows), Eigen::Index(v.cols),
                        Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(Eigen::Index(v.col_stride), Eigen::Index(v.row_stride)));
}

/// Calls f with a read-only Eigen map over a host input view: row-major when its columns are adjacent
/// (col_stride 1, PyTorch's layout), column-major when its rows are (row_stride 1), so that the host
/// functions view it without a copy; any other view (neither stride 1, or overlapping rows or columns such
/// as a broadcast with stride 0) is mapped with both strides as it is (the host functions then copy it once).
template <class T, class F>
decltype(auto) visit_input(const matrix_view<T>& v, F&& f) {
  using S = std::remove_const_t<T>;
  using dyn = Eigen::Index;
  using row_map = Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;
  using col_map = Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>, 0, Eigen::OuterStride<>>;
  const dyn rows = dyn(v.rows), cols = dyn(v.cols);
  // Rows that do not overlap (a broadcast view, stride 0, does) can be mapped with one outer stride.
  if ((v.col_stride == 1 || cols <= 1) && (rows <= 1 || dyn(v.row_stride) >= cols)) {
    return f(row_map(v.ptr, rows, cols, Eigen::OuterStride<>(rows <= 1 ? cols : dyn(v.row_stride))));
  }
  if ((v.row_stride == 1 || rows <= 1) && (cols <= 1 || dyn(v.col_stride) >= rows)) {
    return f(col_map(v.ptr, rows, cols, Eigen::OuterStride<>(cols <= 1 ? rows : dyn(v.col_stride))));
  }
  return f(map(matrix_view<const S>{v.ptr, v.rows, v.cols, v.row_stride, v.col_stride}));
}

/// Calls f with read-only maps over two input views, after their layouts are checked.
template <class TX, class TY, class F>
decltype(auto) visit_inputs(const char* fn, const matrix_view<TX>& x, const matrix_view<TY>& y, F&& f) {
  require_layout(fn, "X", x.ptr, x.rows, x.cols, x.row_stride, x.col_stride);
  require_layout(fn, "Y", y.ptr, y.rows, y.cols, y.row_stride, y.col_stride);
  return visit_input(x, [&](const auto& mx) { return visit_input(y, [&](const auto& my) { return f(mx, my); }); });
}

/// The host systems' part of the backend: products by Eigen (maps, no copies; symmetric products into
/// their lower triangles, as DSYRK writes them), reductions stored through a host pointer, host scratch.
struct eigen_ops {
  using rows_map = Eigen::Map<const matrix<double>, 0, Eigen::OuterStride<>>;
  void gram(const char*, const double* z, std::int64_t rows, std::int64_t cols, double* k) const {
    Eigen::Map<matrix<double>> km(k, Eigen::Index(rows), Eigen::Index(rows));
    km.setZero();
    if (cols == 0) return;  // Eigen's rank update divides by its depth
    km.selfadjointView<Eigen::Lower>().rankUpdate(Eigen::Map<const matrix<double>>(z, Eigen::Index(rows), Eigen::Index(cols)));
  }
  void cross(const char*, const double* z, std::int64_t rows, std::int64_t cols, double* g, bool add) const {
    Eigen::Map<matrix<double>> gm(g, Eigen::Index(cols), Eigen::Index(cols));
    if (!add) gm.setZero();
    if (rows == 0) return;
    gm.selfadjointView<Eigen::Lower>().rankUpdate(
        Eigen::Map<const matrix<double>>(z, Eigen::Index(rows), Eigen::Index(cols)).transpose());
  }
  void multiply(const char*, const double* w, std::int64_t n, const double* x, std::int64_t d, double* out) const {
    Eigen::Map<matrix<double>>(out, Eigen::Index(n), Eigen::Index(d)).noalias() =
        Eigen::Map<const matrix<double>>(w, Eigen::Index(n), Eigen::Index(n)) *
        Eigen::Map<const matrix<double>>(x, Eigen::Index(n), Eigen::Index(d));
  }
  void tile_gemm(const char*, const double* a, const double* b, std::int64_t h, std::int64_t w, std::int64_t d,
                 std::int64_t lda, double* g) const {
    Eigen::Map<matrix<double>>(g, Eigen::Index(h), Eigen::Index(w)).noalias() =
        rows_map(a, Eigen::Index(h), Eigen::Index(d), Eigen::OuterStride<>(lda)) *
        rows_map(b, Eigen::Index(w), Eigen::Index(d), Eigen::OuterStride<>(lda)).transpose();
  }
  template <class Policy, class F, class V, class Op, class Out>
  void reduce_into(const Policy& policy, const char*, std::int64_t n, F f, V init, Op op, Out out) const {
    const thrust::counting_iterator<std::int64_t> first(0);
    *out = thrust::transform_reduce(policy, first, first + n, f, init, op);
  }
  void to_host(const char*, double* dst, const double* src, std::int64_t count) const { std::copy(src, src + count, dst); }
  template <class T>
  double read(const char*, const T* p) const {
    return double(*p);
  }
  host_scratch scratch(const char*, std::size_t count) const { return make_host_scratch(count); }
};

/// The explicit Thrust execution policy of a host context.
inline auto policy(const cpp&) { return thrust::cpp::par; }
inline auto policy(const omp&) {
#if defined(_OPENMP)
  return thrust::omp::par;
#else
  static_assert(sizeof(omp) == 0, "cka::device::omp needs OpenMP (-fopenmp, or link cka::device)");
  return thrust::cpp::par;
#endif
}

/// The host systems' traits: the backend, the tile plan (256-row tiles), the generic kernels' host route.
template <class Context>
struct host_context_traits {
  static constexpr bool host_memory = true;
  static auto backend(const Context& ctx, const char* fn) { return make_backend(policy(ctx), eigen_ops{}, ctx.counts, fn); }
  static tile_plan plan(std::int64_t) { return {}; }
  template <class TX, class TY, class KX, class KY>
  static std::remove_const_t<TX> generic_kernel_cka(const Context&, matrix_view<TX> x, matrix_view<TY> y, const KX& kx,
                                                    const KY& ky, estimator est, const compute_options& co) {
    return visit_inputs("kernel_cka", x, y, [&](const auto& mx, const auto& my) { return cka::kernel_cka(mx, my, kx, ky, est, co); });
  }
  template <class TX, class TY, class K>
  static std::remove_const_t<TX> generic_mmd2(const Context&, matrix_view<TX> x, matrix_view<TY> y, const K& k,
                                              estimator est, const compute_options& co) {
    return visit_inputs("mmd2", x, y, [&](const auto& mx, const auto& my) { return cka::mmd2(mx, my, k, est, co); });
  }
};
template <>
struct context_traits<cpp> : host_context_traits<cpp> {};
template <>
struct context_traits<omp> : host_context_traits<omp> {};

}  // namespace detail
}  // namespace device
}  // namespace cka

#include <cka/device/functions.hpp>
