#pragma once
/// \file device.hpp
/// The Thrust backend: CKA, HSIC, MMD and the RCKA losses with their gradients on memory that belongs to an
/// execution context, described by views (pointer, shape, strides) and never copied into Eigen matrices.
/// This version has the host systems of Thrust — `cka::device::omp` and `cka::device::cpp` — on which the
/// views' memory is host memory: the checks run as Thrust algorithms with the context's explicit policy
/// (the code the CUDA system will share), the products through Eigen maps over the views (strided, no
/// copy), and every result equals the host function's on the same values. The CUDA context (cuBLAS and
/// fused tile kernels) is the next step; see docs/device.md.
/// Link the CMake target cka::device (the toolkit's CCCL headers, and OpenMP for the omp system).

#include <cka/device/detail/checks.hpp>
#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/linear.hpp>
#include <cka/device/view.hpp>
#include <cka/hsic.hpp>
#include <cka/mmd.hpp>
#include <cka/rcka.hpp>
#include <cka/similarity.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace cka {
namespace device {

/// True for the contexts whose memory is host memory.
template <class Context>
struct is_host_system : std::false_type {};
template <>
struct is_host_system<omp> : std::true_type {};
template <>
struct is_host_system<cpp> : std::true_type {};

/// A loss value and the number of undefined terms skipped (rcka::loss_result without the gradient, which
/// the device functions write into the caller's view).
template <class T>
struct loss_value {
  T value;
  Eigen::Index skipped;
};

namespace detail {

/// An Eigen map of scalar T over a strided view (const T: read-only).
template <class T>
using strided_map = Eigen::Map<std::conditional_t<std::is_const_v<T>,
                                                  const Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, Eigen::Dynamic>,
                                                  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>>,
                               0, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

/// The scalar of two input views (const or not), which must agree.
template <class TX, class TY>
using scalar_of = std::enable_if_t<std::is_same_v<std::remove_const_t<TX>, std::remove_const_t<TY>>, std::remove_const_t<TX>>;

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

/// Calls f with read-only maps over two input views.
template <class TX, class TY, class F>
decltype(auto) visit_inputs(const matrix_view<TX>& x, const matrix_view<TY>& y, F&& f) {
  return visit_input(x, [&](const auto& mx) { return visit_input(y, [&](const auto& my) { return f(mx, my); }); });
}

/// Layout and finiteness of an input view, checked through the context's policy.
template <class Context, class T>
void require_input(const Context& ctx, const char* fn, const char* what, const matrix_view<T>& v) {
  require_layout(fn, what, v.ptr, v.rows, v.cols, v.row_stride, v.col_stride);
  require_finite(policy(ctx), host_read{}, fn, what, v.ptr, v.rows, v.cols, v.row_stride, v.col_stride);
}

/// The gradient view must have the student's shape (its own strides).
template <class T, class S>
void require_gradient(const char* fn, const matrix_view<T>& grad, const matrix_view<S>& student) {
  require_layout(fn, "grad", grad.ptr, grad.rows, grad.cols, grad.row_stride, grad.col_stride);
  if (grad.rows != student.rows || grad.cols != student.cols) {
    cka::detail::fail_argument(fn, "grad is ", grad.rows, "x", grad.cols, " but student is ", student.rows, "x",
                               student.cols, "; the gradient has the student's shape");
  }
}

template <class Context>
constexpr bool host = is_host_system<Context>::value;

}  // namespace detail
}  // namespace device

/// Linear CKA of two views on a context's memory; as linear_cka(X, Y, est) (same errors; values to
/// rounding). Computed as the device backend computes it (device/detail/linear.hpp): column means, the
/// centered features written once into a scratch [Xc Yc] (8·n·(d1+d2) bytes), then symmetric products
/// (Eigen here, cuBLAS on CUDA) in the cheaper form, as on the host: ZᵀZ — n·(d1+d2)² flops — or, with
/// fewer samples than features (a batch of wide layers), the two n×n Grams — n²·(d1+d2) flops.
template <class Context, class TX, class TY, class T = device::detail::scalar_of<TX, TY>,
          class = std::enable_if_t<device::detail::host<Context>>>
T linear_cka(const Context& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y,
             estimator est = estimator::biased) {
  const char* fn = "linear_cka";
  device::detail::require_input(ctx, fn, "X", x);
  device::detail::require_input(ctx, fn, "Y", y);
  if (x.rows != y.rows) {
    cka::detail::fail_argument(fn, "X has ", x.rows, " samples (rows) but Y has ", y.rows,
                               "; both representations must hold the same samples");
  }
  cka::detail::require_samples(fn, "X", Eigen::Index(x.rows), min_samples(est), cka::detail::estimator_name(est));
  const std::int64_t n = x.rows, dd = x.cols + y.cols;
  std::vector<double> scratch(std::size_t(device::detail::linear_scratch(n, dd)));  // host systems: on the host
  // Symmetric products into their lower triangles, as DSYRK writes them: ZᵀZ, and ZZᵀ.
  auto product = [](const double* z, std::int64_t rows, std::int64_t cols, double* g) {
    const Eigen::Map<const matrix<double>> zm(z, Eigen::Index(rows), Eigen::Index(cols));
    Eigen::Map<matrix<double>> gm(g, Eigen::Index(cols), Eigen::Index(cols));
    gm.setZero();
    gm.selfadjointView<Eigen::Lower>().rankUpdate(zm.transpose());
  };
  auto gram = [](const double* z, std::int64_t rows, std::int64_t cols, double* k) {
    const Eigen::Map<const matrix<double>> zm(z, Eigen::Index(rows), Eigen::Index(cols));
    Eigen::Map<matrix<double>> km(k, Eigen::Index(rows), Eigen::Index(rows));
    km.setZero();
    km.selfadjointView<Eigen::Lower>().rankUpdate(zm);
  };
  auto to_host = [](double* dst, const double* src, std::int64_t count) { std::copy(src, src + count, dst); };
  const device::detail::strided<T> sx{x.ptr, x.rows, x.cols, x.row_stride, x.col_stride};
  const device::detail::strided<T> sy{y.ptr, y.rows, y.cols, y.row_stride, y.col_stride};
  const auto s = device::detail::linear_sums(device::detail::policy(ctx), product, gram, to_host, scratch.data(), sx, sy,
                                             est == estimator::unbiased);
  return T(cka::detail::cka_ratio(fn, cka::detail::centered_sums<double>{s.kl, s.kk, s.ll, s.ref_k, s.ref_l}));
}

/// Kernel CKA of two views; as kernel_cka(X, Y, kx, ky, est, co) — for two RBF kernels the tile engine.
template <class Context, class TX, class TY, class KX, class KY, class T = device::detail::scalar_of<TX, TY>,
          class = std::enable_if_t<device::detail::host<Context>>>
T kernel_cka(const Context& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y, const KX& kx,
             const KY& ky, estimator est = estimator::biased, const compute_options& co = {}) {
  device::detail::require_input(ctx, "kernel_cka", "X", x);
  device::detail::require_input(ctx, "kernel_cka", "Y", y);
  return device::detail::visit_inputs(x, y, [&](const auto& mx, const auto& my) { return kernel_cka(mx, my, kx, ky, est, co); });
}

/// HSIC of two n×n Gram views; as hsic(K, L, est) (same errors). Computed by Thrust algorithms with the
/// context's policy (device/detail/hsic.hpp: row sums, then one transform-reduce over the n² entries) —
/// the code the CUDA system shares — in double; it agrees with the host function to rounding.
/// Cost O(n²): two passes over each matrix plus the symmetry check; scratch 2n doubles.
template <class Context, class TK, class TL, class T = device::detail::scalar_of<TK, TL>,
          class = std::enable_if_t<device::detail::host<Context>>>
T hsic(const Context& ctx, device::matrix_view<TK> k, device::matrix_view<TL> l,
       estimator est = estimator::biased) {
  const device::detail::strided<T> sk{k.ptr, k.rows, k.cols, k.row_stride, k.col_stride};
  const device::detail::strided<T> sl{l.ptr, l.rows, l.cols, l.row_stride, l.col_stride};
  return T(device::detail::gram_hsic(device::detail::policy(ctx), device::detail::host_read{},
                                     device::detail::make_host_scratch, "hsic", sk, sl, est == estimator::unbiased,
                                     double(Eigen::NumTraits<T>::epsilon())));
}

/// Squared MMD of two sample views; as mmd2(X, Y, kernel, est, co).
template <class Context, class TX, class TY, class Kernel, class T = device::detail::scalar_of<TX, TY>,
          class = std::enable_if_t<device::detail::host<Context>>>
T mmd2(const Context& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y, const Kernel& kernel,
       estimator est = estimator::biased, const compute_options& co = {}) {
  device::detail::require_input(ctx, "mmd2", "X", x);
  device::detail::require_input(ctx, "mmd2", "Y", y);
  return device::detail::visit_inputs(x, y, [&](const auto& mx, const auto& my) { return mmd2(mx, my, kernel, est, co); });
}

namespace rcka {
namespace detail {

/// Runs a host loss on the mapped views and writes its gradient into grad (strided, the student's shape).
template <class Context, class TS, class TT, class T, class Loss>
device::loss_value<T> device_loss(const Context& ctx, const char* fn, device::matrix_view<TS> student,
                                  device::matrix_view<TT> teacher, device::matrix_view<T> grad, Loss&& loss) {
  static_assert(std::is_same_v<device::detail::scalar_of<TS, TT>, T>, "cka::rcka: student, teacher and grad need one scalar type");
  device::detail::require_input(ctx, fn, "student", student);
  device::detail::require_input(ctx, fn, "teacher", teacher);
  device::detail::require_gradient(fn, grad, student);
  const loss_result<T> r = device::detail::visit_inputs(student, teacher, loss);
  device::detail::map(grad) = r.grad;
  return {r.value, r.skipped};
}

}  // namespace detail

/// sample_relation_loss on views: the value (and skipped count) returned, the gradient with respect to the
/// student written into grad (the student's shape, any strides). Same errors as the host function, plus
/// cka::invalid_argument for a bad layout or a gradient view of the wrong shape.
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
device::loss_value<T> sample_relation_loss(const Context& ctx, device::matrix_view<TS> student,
                                           device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                           const relation_options& opts = {}) {
  return detail::device_loss(ctx, "rcka::sample_relation_loss", student, teacher, grad,
                             [&](const auto& s, const auto& t) { return sample_relation_loss(s, t, opts); });
}

/// class_relation_loss on views; as sample_relation_loss(ctx, …).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
device::loss_value<T> class_relation_loss(const Context& ctx, device::matrix_view<TS> student,
                                          device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                          const relation_options& opts = {}) {
  return detail::device_loss(ctx, "rcka::class_relation_loss", student, teacher, grad,
                             [&](const auto& s, const auto& t) { return class_relation_loss(s, t, opts); });
}

/// feature_loss on views; as sample_relation_loss(ctx, …).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
device::loss_value<T> feature_loss(const Context& ctx, device::matrix_view<TS> student,
                                   device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                   const relation_options& opts = {}) {
  return detail::device_loss(ctx, "rcka::feature_loss", student, teacher, grad,
                             [&](const auto& s, const auto& t) { return feature_loss(s, t, opts); });
}

/// rcka_loss on views; as sample_relation_loss(ctx, …).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
device::loss_value<T> rcka_loss(const Context& ctx, device::matrix_view<TS> student,
                                device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                const rcka_weights& weights = {}, const relation_options& opts = {}) {
  return detail::device_loss(ctx, "rcka::rcka_loss", student, teacher, grad,
                             [&](const auto& s, const auto& t) { return rcka_loss(s, t, weights, opts); });
}

}  // namespace rcka
}  // namespace cka
