#pragma once
/// \file device.hpp
/// The Thrust backend: CKA, HSIC, MMD and the RCKA losses with their gradients on memory that belongs to an
/// execution context, described by views (pointer, shape, strides) and never copied into Eigen matrices.
/// This version has the host systems of Thrust — `cka::device::omp` and `cka::device::cpp` — on which the
/// views' memory is host memory: the checks run as Thrust algorithms with the context's explicit policy
/// (the code the CUDA system shares), HSIC and linear CKA as Thrust passes around symmetric products, kernel
/// CKA and MMD with linear, polynomial and RBF kernels by the device tile engine
/// (device/detail/kernel_sums.hpp), the losses by the relation engine (device/detail/relation.hpp), and
/// every result equals the host function's on the same values to rounding. Generic kernels run the host
/// functions on Eigen maps over the views (strided, no copy). The CUDA context is in cka/device/cuda.hpp; see
/// docs/device.md.
/// Link the CMake target cka::device (the toolkit's CCCL headers, and OpenMP for the omp system).

#include <cka/device/detail/checks.hpp>
#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/linear.hpp>
#include <cka/device/detail/kernel_sums.hpp>
#include <cka/device/detail/relation.hpp>
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

template <class Context>
constexpr bool host = is_host_system<Context>::value;

/// Symmetric products into their lower triangles, as DSYRK writes them: G = ZᵀZ (cols×cols) and K = ZZᵀ
/// (rows×rows) of a column-major rows×cols Z, by Eigen's rank updates.
struct eigen_product {
  void operator()(const double* z, std::int64_t rows, std::int64_t cols, double* g) const {
    const Eigen::Map<const matrix<double>> zm(z, Eigen::Index(rows), Eigen::Index(cols));
    Eigen::Map<matrix<double>> gm(g, Eigen::Index(cols), Eigen::Index(cols));
    gm.setZero();
    gm.selfadjointView<Eigen::Lower>().rankUpdate(zm.transpose());
  }
};
struct eigen_gram {
  void operator()(const double* z, std::int64_t rows, std::int64_t cols, double* k) const {
    const Eigen::Map<const matrix<double>> zm(z, Eigen::Index(rows), Eigen::Index(cols));
    Eigen::Map<matrix<double>> km(k, Eigen::Index(rows), Eigen::Index(rows));
    km.setZero();
    km.selfadjointView<Eigen::Lower>().rankUpdate(zm);
  }
};
/// out = W·X for a column-major n×n W and n×d X.
struct eigen_multiply {
  void operator()(const double* w, std::int64_t n, const double* x, std::int64_t d, double* out) const {
    Eigen::Map<matrix<double>>(out, Eigen::Index(n), Eigen::Index(d)).noalias() =
        Eigen::Map<const matrix<double>>(w, Eigen::Index(n), Eigen::Index(n)) *
        Eigen::Map<const matrix<double>>(x, Eigen::Index(n), Eigen::Index(d));
  }
};

/// The device tile engine on a host system: G = A·Bᵀ of two row blocks of Z by Eigen maps (no copy), scratch
/// in host vectors.
struct eigen_tile_gemm {
  void operator()(const double* a, const double* b, std::int64_t h, std::int64_t w, std::int64_t d, std::int64_t lda,
                  double* g) const {
    using rows_map = Eigen::Map<const matrix<double>, 0, Eigen::OuterStride<>>;
    Eigen::Map<matrix<double>> gm(g, Eigen::Index(h), Eigen::Index(w));
    gm.noalias() = rows_map(a, Eigen::Index(h), Eigen::Index(d), Eigen::OuterStride<>(lda)) *
                   rows_map(b, Eigen::Index(w), Eigen::Index(d), Eigen::OuterStride<>(lda)).transpose();
  }
};
struct host_copy {
  void operator()(double* dst, const double* src, std::int64_t count) const { std::copy(src, src + count, dst); }
};
template <class Context>
auto host_tile_engine(const Context& ctx, const char* fn, const tile_plan& plan) {
  return make_tile_engine(policy(ctx), eigen_tile_gemm{}, host_copy{}, make_host_scratch, fn, plan);
}

/// Kernel CKA by the device tile engine (kernel_sums.hpp) on a host system, for kernels it evaluates
/// (is_tile_kernel), with its plan (tile side, the median's limits: tests choose small ones).
template <class Context, class TX, class TY, class KX, class KY, class T = scalar_of<TX, TY>>
T tile_kernel_cka(const Context& ctx, matrix_view<TX> x, matrix_view<TY> y, const KX& kx, const KY& ky, estimator est,
                  const tile_plan& plan = {}) {
  const char* fn = "kernel_cka";
  const auto sx = strided_of(x), sy = strided_of(y);
  require_pair(policy(ctx), host_read{}, fn, sx, sy, min_samples(est));
  const tile_request rx = tile_request_of(kx), ry = tile_request_of(ky);
  std::vector<double> scratch(std::size_t(kernel_cka_scratch(x.rows, x.cols, y.cols)));
  const auto s = kernel_cka_sums(host_tile_engine(ctx, fn, plan), sx, sy, rx, ry, est == estimator::unbiased, scratch.data());
  return T(cka::detail::cka_ratio(fn, cka::detail::centered_sums<double>{s.kl, s.kk, s.ll, s.ref_k, s.ref_l}));
}

/// Squared MMD by the device tile engine on a host system (mmd2's checks first); the linear kernel by its
/// closed form.
template <class Context, class TX, class TY, class K, class T = scalar_of<TX, TY>>
T tile_mmd2(const Context& ctx, matrix_view<TX> x, matrix_view<TY> y, const K& k, estimator est,
            const tile_plan& plan = {}) {
  const char* fn = "mmd2";
  const auto sx = strided_of(x), sy = strided_of(y);
  require_samples_pair(policy(ctx), host_read{}, fn, sx, sy, est == estimator::biased ? 1 : 2);
  const tile_request r = tile_request_of(k);
  if (r.form == tile_form::linear) {
    std::vector<double> scratch(std::size_t(linear_mmd2_scratch(x.rows, y.rows, x.cols)));
    return T(linear_mmd2(policy(ctx), fn, sx, sy, est, scratch.data()));
  }
  std::vector<double> scratch(std::size_t(kernel_mmd2_scratch(x.rows, y.rows, x.cols)));
  return T(kernel_mmd2(host_tile_engine(ctx, fn, plan), sx, sy, r, est, scratch.data()));
}

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
  const auto sx = device::detail::strided_of(x), sy = device::detail::strided_of(y);
  device::detail::require_pair(device::detail::policy(ctx), device::detail::host_read{}, fn, sx, sy, min_samples(est));
  const std::int64_t n = x.rows, dd = x.cols + y.cols;
  std::vector<double> scratch(std::size_t(device::detail::linear_scratch(n, dd)));  // host systems: on the host
  const auto s = device::detail::linear_sums(device::detail::policy(ctx), device::detail::eigen_product{},
                                             device::detail::eigen_gram{}, scratch.data(), sx, sy, est == estimator::unbiased);
  return T(cka::detail::cka_ratio(fn, cka::detail::centered_sums<double>{s.kl, s.kk, s.ll, s.ref_k, s.ref_l}));
}

/// Kernel CKA of two views; as kernel_cka(X, Y, kx, ky, est, co) (same errors; values to rounding). Two
/// linear kernels: linear_cka(ctx, X, Y, est). Other pairs of linear_kernel, polynomial_kernel and RBF
/// kernels (rbf_kernel or rbf_parameters): the device tile engine (device/detail/kernel_sums.hpp) — the
/// code the CUDA system runs: the rows written once (8·n·(d1+d2) bytes; centered but for the polynomial
/// kernel), then tiles of G = Z_I·Z_Jᵀ (Eigen here, cuBLAS on CUDA) whose kernel values the passes read off
/// G: the exact median by bit-pattern selection where a median rule asks for it (two passes for typical
/// data), pass A (row sums), pass B (centered products); 2·n²·(d1+d2) flops per pass, no n×n buffer.
/// Other kernels (generic ones): the host function on maps of the views. compute_options apply to the host
/// function only.
template <class Context, class TX, class TY, class KX, class KY, class T = device::detail::scalar_of<TX, TY>,
          class = std::enable_if_t<device::detail::host<Context>>>
T kernel_cka(const Context& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y, const KX& kx,
             const KY& ky, estimator est = estimator::biased, const compute_options& co = {}) {
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    return linear_cka(ctx, x, y, est);
  } else if constexpr (device::detail::is_tile_kernel<KX> && device::detail::is_tile_kernel<KY>) {
    return device::detail::tile_kernel_cka(ctx, x, y, kx, ky, est);
  } else {
    device::detail::require_input(ctx, "kernel_cka", "X", x);
    device::detail::require_input(ctx, "kernel_cka", "Y", y);
    return device::detail::visit_inputs(x, y, [&](const auto& mx, const auto& my) { return kernel_cka(mx, my, kx, ky, est, co); });
  }
}

/// HSIC of two n×n Gram views; as hsic(K, L, est) (same errors). Computed by Thrust algorithms with the
/// context's policy (device/detail/hsic.hpp: row sums, then one transform-reduce over the n² entries) —
/// the code the CUDA system shares — in double; it agrees with the host function to rounding.
/// Cost O(n²): two passes over each matrix plus the symmetry check; scratch 2n doubles.
template <class Context, class TK, class TL, class T = device::detail::scalar_of<TK, TL>,
          class = std::enable_if_t<device::detail::host<Context>>>
T hsic(const Context& ctx, device::matrix_view<TK> k, device::matrix_view<TL> l,
       estimator est = estimator::biased) {
  const auto sk = device::detail::strided_of(k), sl = device::detail::strided_of(l);
  return T(device::detail::gram_hsic(device::detail::policy(ctx), device::detail::host_read{},
                                     device::detail::make_host_scratch, "hsic", sk, sl, est == estimator::unbiased,
                                     double(Eigen::NumTraits<T>::epsilon())));
}

/// Squared MMD of two sample views; as mmd2(X, Y, kernel, est, co) (same errors; values to rounding). The
/// linear kernel by its closed form on the context (one transform-reduce over the columns, O((m+n)d));
/// polynomial and RBF kernels by the device tile engine over the pooled sample (kernel_sums.hpp; the code
/// the CUDA system runs): its exact median where a median rule asks for it, then one pass of block sums;
/// (m+n)²·d flops per pass, no (m+n)² buffer. Other kernels: the host function on maps of the views.
template <class Context, class TX, class TY, class Kernel, class T = device::detail::scalar_of<TX, TY>,
          class = std::enable_if_t<device::detail::host<Context>>>
T mmd2(const Context& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y, const Kernel& kernel,
       estimator est = estimator::biased, const compute_options& co = {}) {
  if constexpr (device::detail::is_tile_kernel<Kernel>) {
    return device::detail::tile_mmd2(ctx, x, y, kernel, est);
  } else {
    device::detail::require_input(ctx, "mmd2", "X", x);
    device::detail::require_input(ctx, "mmd2", "Y", y);
    return device::detail::visit_inputs(x, y, [&](const auto& mx, const auto& my) { return mmd2(mx, my, kernel, est, co); });
  }
}

namespace rcka {
namespace detail {

/// The engine's mode for the options (device/detail/relation.hpp).
inline device::detail::relation_mode mode_of(const relation_options& opts) {
  return {opts.centered, opts.row_normalize, opts.est == estimator::unbiased, opts.on_undefined == undefined_policy::skip};
}

/// The strided forms of a loss's three views.
template <class TS, class TT, class T>
struct loss_views {
  device::detail::strided<std::remove_const_t<TS>> s;
  device::detail::strided<std::remove_const_t<TS>> t;
  device::detail::strided_out<T> g;
  loss_views(device::matrix_view<TS> student, device::matrix_view<TT> teacher, device::matrix_view<T> grad)
      : s{student.ptr, student.rows, student.cols, student.row_stride, student.col_stride},
        t{teacher.ptr, teacher.rows, teacher.cols, teacher.row_stride, teacher.col_stride},
        g{grad.ptr, grad.rows, grad.cols, grad.row_stride, grad.col_stride} {
    static_assert(std::is_same_v<device::detail::scalar_of<TS, TT>, T>, "cka::rcka: student, teacher and grad need one scalar type");
  }
};

/// A loss of one or both relations by the device relation engine on a host system, waiting for it: the
/// checks (the elements' finiteness included), then each term; the gradient of the rows term times
/// w_rows written into grad, the columns term's (times w_columns) written or added.
template <class Context, class TS, class TT, class T>
device::loss_value<T> engine_loss(const Context& ctx, const char* fn, device::matrix_view<TS> student,
                                  device::matrix_view<TT> teacher, device::matrix_view<T> grad, const relation_options& opts,
                                  device::detail::relations which, double w_rows = 1.0, double w_columns = 1.0) {
  const loss_views<TS, TT, T> v(student, teacher, grad);
  const auto policy = device::detail::policy(ctx);
  device::detail::require_relation_inputs(policy, device::detail::host_read{}, fn, v.s, v.t, v.g,
                                          which != device::detail::relations::rows);
  const device::detail::relation_mode mode = mode_of(opts);
  cka::detail::side_names sides = cka::detail::relation_sides();
  if (!opts.centered) sides.condition = "vanishes";
  auto ratio = [&](const device::detail::centered_totals& c) {
    return cka::detail::cka_ratio(fn, cka::detail::centered_sums<double>{c.kl, c.kk, c.ll, c.ref_k, c.ref_l},
                                  mode.skip ? cka::detail::when_undefined::nan : cka::detail::when_undefined::raise, sides);
  };
  auto term = [&](bool columns, double weight, bool accumulate) {
    return device::detail::relation_term(
        policy, device::detail::eigen_gram{}, device::detail::eigen_multiply{}, device::detail::host_reduce<decltype(policy)>{policy},
        ratio, device::detail::make_host_scratch, device::detail::host_copy{}, fn, columns ? device::detail::transposed(v.s) : v.s,
        columns ? device::detail::transposed(v.t) : v.t, columns ? v.g.transposed() : v.g, mode, weight, accumulate);
  };
  if (which == device::detail::relations::both) {
    const auto a = term(false, w_rows, false), b = term(true, w_columns, true);
    return {T(T(w_rows) * T(a.value) + T(w_columns) * T(b.value)), a.skipped + b.skipped};
  }
  const auto r = term(which == device::detail::relations::columns, 1.0, false);
  return {T(r.value), r.skipped};
}

/// A loss left in the context's memory (the loss_slot variants) by the device relation engine.
template <class Context, class TS, class TT, class T>
void slot_loss(const Context& ctx, const char* fn, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
               device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts,
               device::detail::relations which, double w_rows = 1.0, double w_columns = 1.0) {
  const loss_views<TS, TT, T> v(student, teacher, grad);
  const auto policy = device::detail::policy(ctx);
  device::detail::relation_loss_async(policy, device::detail::eigen_gram{}, device::detail::eigen_multiply{},
                                      device::detail::host_reduce<decltype(policy)>{policy}, device::detail::make_host_scratch, fn,
                                      v.s, v.t, v.g, mode_of(opts), which, w_rows, w_columns, out.value, out.status);
}

}  // namespace detail

/// sample_relation_loss on views: the value (and skipped count) returned, the gradient with respect to the
/// student written into grad (the student's shape, any strides; only its elements are written). Computed
/// by the device relation engine (device/detail/relation.hpp, the code the CUDA system runs) for every
/// relation_options; values and gradients as the host function's to rounding. Same errors as the host
/// function, plus cka::invalid_argument for a bad layout or a gradient view of the wrong shape.
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
device::loss_value<T> sample_relation_loss(const Context& ctx, device::matrix_view<TS> student,
                                           device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                           const relation_options& opts = {}) {
  return detail::engine_loss(ctx, "rcka::sample_relation_loss", student, teacher, grad, opts, device::detail::relations::rows);
}

/// class_relation_loss on views; as sample_relation_loss(ctx, …).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
device::loss_value<T> class_relation_loss(const Context& ctx, device::matrix_view<TS> student,
                                          device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                          const relation_options& opts = {}) {
  return detail::engine_loss(ctx, "rcka::class_relation_loss", student, teacher, grad, opts, device::detail::relations::columns);
}

/// feature_loss on views; as sample_relation_loss(ctx, …).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
device::loss_value<T> feature_loss(const Context& ctx, device::matrix_view<TS> student,
                                   device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                   const relation_options& opts = {}) {
  return detail::engine_loss(ctx, "rcka::feature_loss", student, teacher, grad, opts, device::detail::relations::rows);
}

/// rcka_loss on views; as sample_relation_loss(ctx, …).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
device::loss_value<T> rcka_loss(const Context& ctx, device::matrix_view<TS> student,
                                device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                const rcka_weights& weights = {}, const relation_options& opts = {}) {
  return detail::engine_loss(ctx, "rcka::rcka_loss", student, teacher, grad, opts, device::detail::relations::both,
                             weights.sample, weights.cls);
}

/// The loss_slot variants: the loss left in out (the context's memory; on these systems host memory) with
/// a status instead of a returned value, nothing read back — the form a CUDA training loop uses without
/// waiting for its stream (cka/device/cuda.hpp has the same functions). Shape errors throw at once; an
/// error found in the data (a non-finite element, a zero row under row_normalize or a constant student or
/// teacher under the raise policy, an overflow) leaves value NaN, a zero gradient and a negative status
/// (device::check_loss_status).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
void sample_relation_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                          device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts = {}) {
  detail::slot_loss(ctx, "rcka::sample_relation_loss", student, teacher, grad, out, opts, device::detail::relations::rows);
}

/// class_relation_loss left in a loss_slot; as sample_relation_loss(ctx, …, out, opts).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
void class_relation_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                         device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts = {}) {
  detail::slot_loss(ctx, "rcka::class_relation_loss", student, teacher, grad, out, opts, device::detail::relations::columns);
}

/// feature_loss left in a loss_slot; as sample_relation_loss(ctx, …, out, opts).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
void feature_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                  device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts = {}) {
  detail::slot_loss(ctx, "rcka::feature_loss", student, teacher, grad, out, opts, device::detail::relations::rows);
}

/// rcka_loss left in a loss_slot; as sample_relation_loss(ctx, …, out, opts).
template <class Context, class TS, class TT, class T, class = std::enable_if_t<device::detail::host<Context>>>
void rcka_loss(const Context& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
               device::matrix_view<T> grad, device::loss_slot<T> out, const rcka_weights& weights = {},
               const relation_options& opts = {}) {
  detail::slot_loss(ctx, "rcka::rcka_loss", student, teacher, grad, out, opts, device::detail::relations::both,
                    weights.sample, weights.cls);
}

}  // namespace rcka
}  // namespace cka
