#pragma once
/// \file device/cuda.hpp
/// The CUDA context of the device backend, for CUDA translation units (nvcc; no Eigen here): views of device
/// memory (a CUDA tensor's data_ptr, sizes, strides) and a stream. This version has HSIC of two Gram views,
/// linear CKA, kernel CKA and MMD with linear, polynomial and RBF kernels, computed by the same Thrust code
/// as on the host systems (device/detail/hsic.hpp, linear.hpp, kernel_sums.hpp) with
/// thrust::cuda::par.on(stream),
/// the products by cuBLAS DSYRK / DGEMM (64-bit API), and the centered RCKA losses with their gradients —
/// also as loss_slot variants that leave the value in device memory without waiting. Results returned as
/// host values synchronise the stream. Link CUDA::cublas; build with CKA_CUDA=ON
/// (docs/device.md).

#if !defined(__CUDACC__)
#error "cka/device/cuda.hpp is for CUDA translation units (compile with nvcc); host code uses cka/device.hpp"
#endif

#include <cka/detail/fail.hpp>
#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/linear.hpp>
#include <cka/device/detail/kernel_sums.hpp>
#include <cka/device/detail/relation.hpp>
#include <cka/device/view.hpp>
#include <cka/estimator.hpp>
#include <cka/inner_product_kernels.hpp>
#include <cka/rbf_parameters.hpp>
#include <cka/rcka_options.hpp>

#include <cub/device/device_reduce.cuh>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <thrust/system/cuda/execution_policy.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

namespace cka::device {

/// Device memory and the stream the work is queued on (nullptr: the default stream), with a cuBLAS handle
/// bound to that stream, created on first use and shared by copies of the context.
struct cuda {
  cuda() = default;
  explicit cuda(cudaStream_t s) : stream(s) {}
  cudaStream_t stream = nullptr;
  /// The cuBLAS handle (created lazily, bound to `stream`). Throws cka::domain_error if cuBLAS fails.
  cublasHandle_t blas() const {
    if (!blas_) {
      cublasHandle_t h = nullptr;
      if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) cka::detail::fail_domain("device::cuda", "cublasCreate failed");
      blas_ = std::shared_ptr<cublasContext>(h, [](cublasHandle_t p) { cublasDestroy(p); });
      cublasSetStream(h, stream);
    }
    return blas_.get();
  }

 private:
  mutable std::shared_ptr<cublasContext> blas_;
};

namespace detail {

/// Throws cka::domain_error naming fn for a failed CUDA call.
inline void check_cuda(const char* fn, cudaError_t e, const char* what) {
  if (e != cudaSuccess) cka::detail::fail_domain(fn, "CUDA error in ", what, ": ", cudaGetErrorString(e));
}

/// One element copied back to the host (for an error message).
struct cuda_read {
  cudaStream_t stream;
  template <class T>
  double operator()(const T* p) const {
    T v{};
    check_cuda("device", cudaMemcpyAsync(&v, p, sizeof(T), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
    check_cuda("device", cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    return double(v);
  }
};

/// Scratch doubles in device memory, freed on scope exit (stream-ordered).
class cuda_scratch {
 public:
  cuda_scratch(const char* fn, std::size_t count, cudaStream_t stream) : stream_(stream) {
    check_cuda(fn, cudaMallocAsync(reinterpret_cast<void**>(&ptr_), (count > 0 ? count : 1) * sizeof(double), stream),
               "cudaMallocAsync");
  }
  cuda_scratch(const cuda_scratch&) = delete;
  cuda_scratch& operator=(const cuda_scratch&) = delete;
  ~cuda_scratch() { cudaFreeAsync(ptr_, stream_); }
  double* get() const { return ptr_; }

 private:
  double* ptr_ = nullptr;
  cudaStream_t stream_;
};

/// The CKA ratio of centered totals with the host's rules (cka::detail::cka_ratio, in double): overflow
/// first, then a vanishing self-product (relative (64ε)² of its reference) — an error naming the side, or
/// NaN when `nan_if_undefined` — then (kl/√kk)/√ll.
inline double cka_of(const char* fn, const centered_totals& s, bool nan_if_undefined = false,
                     const char* first = "the first representation", const char* second = "the second representation",
                     const char* condition = "has zero variance after centering") {
  if (!std::isfinite(s.kl) || !std::isfinite(s.kk) || !std::isfinite(s.ll)) {
    cka::detail::fail_domain(fn, "overflow: the centered products exceed the range of the accumulation type (HSIC(K, L) = ",
                             s.kl, ", HSIC(K, K) = ", s.kk, ", HSIC(L, L) = ", s.ll, "); rescale the inputs");
  }
  const double tiny = (64 * DBL_EPSILON) * (64 * DBL_EPSILON);
  const bool first_flat = !(s.kk > tiny * s.ref_k), second_flat = !(s.ll > tiny * s.ref_l);
  if (first_flat || second_flat) {
    if (nan_if_undefined) return NAN;
    const double self = first_flat ? s.kk : s.ll, ref = first_flat ? s.ref_k : s.ref_l;
    cka::detail::fail_domain(fn, first_flat ? first : second, " ", condition, " (its self-product is ",
                             self / (ref > 0 ? ref : 1.0), " relative to its uncentered one), so the alignment is undefined");
  }
  return s.kl / std::sqrt(s.kk) / std::sqrt(s.ll);
}

/// The device tile engine on CUDA: tiles of G by cublasDgemm_64, Thrust on the stream, scratch from
/// cudaMallocAsync. Tiles of up to 4096 rows (two of 128 MiB).
struct cublas_tile_gemm {
  cublasHandle_t blas;
  const char* fn;
  void operator()(const double* a, const double* b, std::int64_t h, std::int64_t w, std::int64_t d, std::int64_t lda,
                  double* g) const {
    const double one = 1.0, zero = 0.0;
    if (cublasDgemm_64(blas, CUBLAS_OP_N, CUBLAS_OP_T, h, w, d, &one, a, lda, b, lda, &zero, g, h) != CUBLAS_STATUS_SUCCESS) {
      cka::detail::fail_domain(fn, "cublasDgemm_64 failed");
    }
  }
};
struct cuda_copy {
  cudaStream_t stream;
  const char* fn;
  void operator()(double* dst, const double* src, std::int64_t count) const {
    check_cuda(fn, cudaMemcpyAsync(dst, src, std::size_t(count) * sizeof(double), cudaMemcpyDeviceToHost, stream),
               "cudaMemcpyAsync");
    check_cuda(fn, cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }
};
struct cuda_make {
  cudaStream_t stream;
  const char* fn;
  cuda_scratch operator()(std::size_t count) const { return cuda_scratch(fn, count, stream); }
};
inline auto cuda_tile_engine(const cuda& ctx, const char* fn, std::int64_t n) {
  tile_plan plan;
  plan.tile = std::min<std::int64_t>(4096, std::max<std::int64_t>(n, 1));
  return make_tile_engine(thrust::cuda::par.on(ctx.stream), cublas_tile_gemm{ctx.blas(), fn}, cuda_copy{ctx.stream, fn},
                         cuda_make{ctx.stream, fn}, fn, plan);
}

/// K = ZZᵀ (lower triangle) of a column-major n×d block by cublasDsyrk_64, and out = W·X by cublasDgemm_64:
/// the products of the relation losses.
struct cublas_gram {
  cublasHandle_t blas;
  const char* fn;
  void operator()(const double* z, std::int64_t rows, std::int64_t cols, double* k) const {
    const double one = 1.0, zero = 0.0;
    if (cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, rows, cols, &one, z, rows, &zero, k, rows) !=
        CUBLAS_STATUS_SUCCESS) {
      cka::detail::fail_domain(fn, "cublasDsyrk_64 failed");
    }
  }
};
struct cublas_multiply {
  cublasHandle_t blas;
  const char* fn;
  void operator()(const double* w, std::int64_t n, const double* x, std::int64_t d, double* out) const {
    const double one = 1.0, zero = 0.0;
    if (cublasDgemm_64(blas, CUBLAS_OP_N, CUBLAS_OP_N, n, d, n, &one, w, n, x, n, &zero, out, n) != CUBLAS_STATUS_SUCCESS) {
      cka::detail::fail_domain(fn, "cublasDgemm_64 failed");
    }
  }
};

/// A transform-reduction into the context's memory by CUB on the stream (no wait): the `reduce` callable of
/// the relation engine. out is a device pointer, or a zip iterator of device pointers for a tuple.
struct cub_reduce {
  cudaStream_t stream;
  const char* fn;
  template <class F, class V, class Op, class Out>
  void operator()(std::int64_t count, F f, V init, Op op, Out out) const {
    const thrust::counting_iterator<std::int64_t> first(0);
    std::size_t bytes = 0;
    check_cuda(fn, cub::DeviceReduce::TransformReduce(nullptr, bytes, first, out, count, op, f, init, stream),
               "cub::DeviceReduce::TransformReduce");
    const cuda_scratch temp(fn, (bytes + sizeof(double) - 1) / sizeof(double), stream);
    check_cuda(fn, cub::DeviceReduce::TransformReduce(temp.get(), bytes, first, out, count, op, f, init, stream),
               "cub::DeviceReduce::TransformReduce");
  }
};

/// The engine's mode for the options.
inline relation_mode mode_of(const rcka::relation_options& opts) {
  return {opts.centered, opts.row_normalize, opts.est == estimator::unbiased, opts.on_undefined == rcka::undefined_policy::skip};
}

/// One relation term on CUDA (see device/detail/relation.hpp), waiting for it; by_columns: the class relation.
template <class TS, class TT, class T>
relation_term_value cuda_relation(const cuda& ctx, const char* fn, matrix_view<TS> student, matrix_view<TT> teacher,
                                  matrix_view<T> grad, const rcka::relation_options& opts, bool by_columns,
                                  double weight, bool accumulate) {
  static_assert(std::is_same_v<std::remove_const_t<TS>, T> && std::is_same_v<std::remove_const_t<TT>, T>,
                "cka::rcka: student, teacher and grad need one scalar type");
  strided<T> s{student.ptr, student.rows, student.cols, student.row_stride, student.col_stride};
  strided<T> t{teacher.ptr, teacher.rows, teacher.cols, teacher.row_stride, teacher.col_stride};
  strided_out<T> g{grad.ptr, grad.rows, grad.cols, grad.row_stride, grad.col_stride};
  if (by_columns) s = transposed(s), t = transposed(t), g = g.transposed();
  const relation_mode mode = mode_of(opts);
  auto ratio = [&](const centered_totals& c) {
    return cka_of(fn, c, mode.skip, "the student's relation Gram (a constant student)",
                  "the teacher's relation Gram (a constant teacher)",
                  opts.centered ? "has zero variance after centering" : "vanishes");
  };
  const cublasHandle_t blas = ctx.blas();
  return relation_term(thrust::cuda::par.on(ctx.stream), cublas_gram{blas, fn}, cublas_multiply{blas, fn},
                       cub_reduce{ctx.stream, fn}, ratio, cuda_make{ctx.stream, fn}, cuda_copy{ctx.stream, fn}, fn, s, t, g,
                       mode, weight, accumulate);
}

/// A loss left in a loss_slot on CUDA, nothing waited for: Thrust with par_nosync on the stream, CUB
/// reductions into device memory, cuBLAS.
template <class TS, class TT, class T>
void cuda_slot_loss(const cuda& ctx, const char* fn, matrix_view<TS> student, matrix_view<TT> teacher, matrix_view<T> grad,
                    loss_slot<T> out, const rcka::relation_options& opts, relations which, double w_rows = 1.0,
                    double w_columns = 1.0) {
  static_assert(std::is_same_v<std::remove_const_t<TS>, T> && std::is_same_v<std::remove_const_t<TT>, T>,
                "cka::rcka: student, teacher and grad need one scalar type");
  const cublasHandle_t blas = ctx.blas();
  relation_loss_async(thrust::cuda::par_nosync.on(ctx.stream), cublas_gram{blas, fn}, cublas_multiply{blas, fn},
                      cub_reduce{ctx.stream, fn}, cuda_make{ctx.stream, fn}, fn,
                      strided<T>{student.ptr, student.rows, student.cols, student.row_stride, student.col_stride},
                      strided<T>{teacher.ptr, teacher.rows, teacher.cols, teacher.row_stride, teacher.col_stride},
                      strided_out<T>{grad.ptr, grad.rows, grad.cols, grad.row_stride, grad.col_stride}, mode_of(opts), which,
                      w_rows, w_columns, out.value, out.status);
}

/// The checks of a relation loss on CUDA views.
template <class TS, class TT, class T>
void require_cuda_relation(const cuda& ctx, const char* fn, matrix_view<TS> student, matrix_view<TT> teacher,
                           matrix_view<T> grad, bool same_columns) {
  using S = std::remove_const_t<TS>;
  require_relation_inputs(thrust::cuda::par.on(ctx.stream), cuda_read{ctx.stream}, fn,
                          strided<S>{student.ptr, student.rows, student.cols, student.row_stride, student.col_stride},
                          strided<S>{teacher.ptr, teacher.rows, teacher.cols, teacher.row_stride, teacher.col_stride},
                          strided_out<T>{grad.ptr, grad.rows, grad.cols, grad.row_stride, grad.col_stride}, same_columns);
}

/// A one-term loss on CUDA views (the sample or class relation, FCKA): checked, computed, its value.
template <class TS, class TT, class T>
loss_value<T> cuda_loss(const cuda& ctx, const char* fn, matrix_view<TS> student, matrix_view<TT> teacher,
                        matrix_view<T> grad, const rcka::relation_options& opts, bool by_columns) {
  require_cuda_relation(ctx, fn, student, teacher, grad, by_columns);
  const relation_term_value r = cuda_relation(ctx, fn, student, teacher, grad, opts, by_columns, 1.0, false);
  return {T(r.value), r.skipped};
}

}  // namespace detail
}  // namespace cka::device

namespace cka {

/// HSIC of two n×n Gram views in device memory; as hsic(K, L, est) on the host (same checks, same
/// errors), by Thrust algorithms on ctx.stream. Cost O(n²); scratch 2n doubles. Synchronises the stream.
template <class TK, class TL, class T = std::remove_const_t<TK>,
          class = std::enable_if_t<std::is_same_v<std::remove_const_t<TK>, std::remove_const_t<TL>>>>
T hsic(const device::cuda& ctx, device::matrix_view<TK> k, device::matrix_view<TL> l, estimator est = estimator::biased) {
  const auto sk = device::detail::strided_of(k), sl = device::detail::strided_of(l);
  const double epsilon = std::is_same_v<T, float> ? double(FLT_EPSILON) : double(DBL_EPSILON);
  auto scratch = [&](std::size_t count) { return device::detail::cuda_scratch("hsic", count, ctx.stream); };
  return T(device::detail::gram_hsic(thrust::cuda::par.on(ctx.stream), device::detail::cuda_read{ctx.stream}, scratch,
                                     "hsic", sk, sl, est == estimator::unbiased, epsilon));
}

/// Linear CKA of two views in device memory; as linear_cka(X, Y, est) on the host (same checks, same
/// errors; values to rounding). Centered features in a device scratch [Xc Yc] (8·n·(d1+d2) bytes), then
/// cublasDsyrk_64 in the cheaper form: ZᵀZ (n·(d1+d2)² flops, its sums reduced on the device), or with fewer samples
/// than features the two n×n Grams (n²·(d1+d2) flops, their centered products reduced on the device).
/// Synchronises the stream.
template <class TX, class TY, class T = std::remove_const_t<TX>,
          class = std::enable_if_t<std::is_same_v<std::remove_const_t<TX>, std::remove_const_t<TY>>>>
T linear_cka(const device::cuda& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y,
             estimator est = estimator::biased) {
  const char* fn = "linear_cka";
  const device::detail::cuda_read read{ctx.stream};
  const auto policy = thrust::cuda::par.on(ctx.stream);
  const auto sx = device::detail::strided_of(x), sy = device::detail::strided_of(y);
  device::detail::require_pair(policy, read, fn, sx, sy, min_samples(est));
  const std::int64_t n = x.rows, dd = x.cols + y.cols;
  const device::detail::cuda_scratch scratch(fn, std::size_t(device::detail::linear_scratch(n, dd)), ctx.stream);
  const cublasHandle_t blas = ctx.blas();
  auto product = [&](const double* z, std::int64_t rows, std::int64_t cols, double* g) {
    const double one = 1.0, zero = 0.0;
    if (cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, cols, rows, &one, z, rows, &zero, g, cols) !=
        CUBLAS_STATUS_SUCCESS) {
      cka::detail::fail_domain(fn, "cublasDsyrk_64 failed");
    }
  };
  const auto s = device::detail::linear_sums(policy, product, device::detail::cublas_gram{blas, fn}, scratch.get(), sx, sy,
                                             est == estimator::unbiased);
  return T(device::detail::cka_of(fn, s));
}

/// Kernel CKA of two views in device memory with kernels kx, ky among linear_kernel, polynomial_kernel and
/// the Gaussian RBF kernels (fixed σ or a median rule; rbf_parameters, which cka::rbf_kernel is); as
/// kernel_cka(X, Y, kx, ky, est) on the host (same checks, same errors; values to rounding). Two linear
/// kernels: linear_cka(ctx, X, Y, est). Otherwise the device tile engine (device/detail/kernel_sums.hpp):
/// the rows written once (8·n·(d1+d2) bytes; centered but for the polynomial kernel), tiles of
/// G = Z_I·Z_Jᵀ by cublasDgemm_64 (up to 4096 rows a side, two 128 MiB buffers) whose kernel values the
/// Thrust passes read off G — the exact median by bit-pattern selection (a median rule: two passes for
/// typical data), pass A (row sums), pass B (centered products); 2·n²·(d1+d2) flops per pass, no n×n
/// buffer. Synchronises the stream.
template <class TX, class TY, class KX, class KY, class T = std::remove_const_t<TX>,
          class = std::enable_if_t<std::is_same_v<std::remove_const_t<TX>, std::remove_const_t<TY>>>>
T kernel_cka(const device::cuda& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y, const KX& kx,
             const KY& ky, estimator est = estimator::biased) {
  static_assert(device::detail::is_tile_kernel<KX> && device::detail::is_tile_kernel<KY>,
                "cka::kernel_cka on CUDA takes linear_kernel, polynomial_kernel and RBF kernels (rbf_parameters); for "
                "another kernel, form its Gram matrices and call cka::hsic(ctx, K, L, est)");
  if constexpr (std::is_same_v<KX, linear_kernel> && std::is_same_v<KY, linear_kernel>) {
    return linear_cka(ctx, x, y, est);
  } else {
    const char* fn = "kernel_cka";
    const device::detail::cuda_read read{ctx.stream};
    const auto policy = thrust::cuda::par.on(ctx.stream);
    const auto sx = device::detail::strided_of(x), sy = device::detail::strided_of(y);
    device::detail::require_pair(policy, read, fn, sx, sy, min_samples(est));
    const device::detail::tile_request rx = device::detail::tile_request_of(kx), ry = device::detail::tile_request_of(ky);
    const device::detail::cuda_scratch scratch(fn, std::size_t(device::detail::kernel_cka_scratch(x.rows, x.cols, y.cols)),
                                               ctx.stream);
    const auto s = device::detail::kernel_cka_sums(device::detail::cuda_tile_engine(ctx, fn, x.rows), sx, sy, rx, ry,
                                                   est == estimator::unbiased, scratch.get());
    return T(device::detail::cka_of(fn, s));
  }
}

/// Squared MMD between the rows of two views in device memory with a linear_kernel, polynomial_kernel or
/// Gaussian RBF kernel (fixed σ or a median rule); as mmd2(X, Y, kernel, est) on the host (same checks, same
/// errors; values to rounding). The linear kernel by its closed form (O((m+n)d), one transform-reduce over
/// the columns); the others by the device tile engine over the pooled sample: Z = [X; Y] written once
/// (8·(m+n)·d bytes), its exact median where a median rule asks for it, then one pass of block sums over
/// DGEMM tiles; no (m+n)² buffer. Synchronises the stream.
template <class TX, class TY, class Kernel, class T = std::remove_const_t<TX>,
          class = std::enable_if_t<std::is_same_v<std::remove_const_t<TX>, std::remove_const_t<TY>>>>
T mmd2(const device::cuda& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y, const Kernel& kernel,
       estimator est = estimator::biased) {
  static_assert(device::detail::is_tile_kernel<Kernel>,
                "cka::mmd2 on CUDA takes linear_kernel, polynomial_kernel and RBF kernels (rbf_parameters)");
  const char* fn = "mmd2";
  const device::detail::cuda_read read{ctx.stream};
  const auto policy = thrust::cuda::par.on(ctx.stream);
  const auto sx = device::detail::strided_of(x), sy = device::detail::strided_of(y);
  device::detail::require_samples_pair(policy, read, fn, sx, sy, est == estimator::biased ? 1 : 2);
  const device::detail::tile_request r = device::detail::tile_request_of(kernel);
  if (r.form == device::detail::tile_form::linear) {
    const device::detail::cuda_scratch scratch(fn, std::size_t(device::detail::linear_mmd2_scratch(x.rows, y.rows, x.cols)),
                                               ctx.stream);
    return T(device::detail::linear_mmd2(policy, fn, sx, sy, est, scratch.get()));
  }
  const device::detail::cuda_scratch scratch(fn, std::size_t(device::detail::kernel_mmd2_scratch(x.rows, y.rows, x.cols)),
                                             ctx.stream);
  return T(device::detail::kernel_mmd2(device::detail::cuda_tile_engine(ctx, fn, x.rows + y.rows), sx, sy, r, est,
                                       scratch.get()));
}

namespace rcka {

/// sample_relation_loss on CUDA views: 1 − the alignment (opts) of the B×B Grams of the rows of student and
/// teacher (device memory, any strides), the value returned with its skip count, ∂loss/∂student written
/// into grad (the student's shape, any strides; only its elements are written). As the host function for
/// every relation_options (same errors). Cost: two B×B Grams (DSYRK), one B×B×C product (DGEMM), O(B²)
/// Thrust passes; scratch 8·(B·(Cs+Ct) + 3B² + B·Cs) bytes. Synchronises the stream.
template <class TS, class TT, class T>
device::loss_value<T> sample_relation_loss(const device::cuda& ctx, device::matrix_view<TS> student,
                                           device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                           const relation_options& opts = {}) {
  return device::detail::cuda_loss(ctx, "rcka::sample_relation_loss", student, teacher, grad, opts, false);
}

/// class_relation_loss on CUDA views: the C×C Grams of the columns (the same C); as sample_relation_loss(ctx, …).
template <class TS, class TT, class T>
device::loss_value<T> class_relation_loss(const device::cuda& ctx, device::matrix_view<TS> student,
                                          device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                          const relation_options& opts = {}) {
  return device::detail::cuda_loss(ctx, "rcka::class_relation_loss", student, teacher, grad, opts, true);
}

/// feature_loss (FCKA) on CUDA views of flattened feature maps; as sample_relation_loss(ctx, …).
template <class TS, class TT, class T>
device::loss_value<T> feature_loss(const device::cuda& ctx, device::matrix_view<TS> student,
                                   device::matrix_view<TT> teacher, device::matrix_view<T> grad,
                                   const relation_options& opts = {}) {
  return device::detail::cuda_loss(ctx, "rcka::feature_loss", student, teacher, grad, opts, false);
}

/// rcka_loss on CUDA views: weights.sample · sample relation + weights.cls · class relation, the gradients
/// combined in grad; as sample_relation_loss(ctx, …).
template <class TS, class TT, class T>
device::loss_value<T> rcka_loss(const device::cuda& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                                device::matrix_view<T> grad, const rcka_weights& weights = {},
                                const relation_options& opts = {}) {
  const char* fn = "rcka::rcka_loss";
  device::detail::require_cuda_relation(ctx, fn, student, teacher, grad, true);
  const auto a = device::detail::cuda_relation(ctx, fn, student, teacher, grad, opts, false, weights.sample, false);
  const auto b = device::detail::cuda_relation(ctx, fn, student, teacher, grad, opts, true, weights.cls, true);
  return {T(T(weights.sample) * T(a.value) + T(weights.cls) * T(b.value)), a.skipped + b.skipped};
}

/// The loss_slot variants for a training loop: nothing waits for the stream. The value and status are left
/// in device memory (out: device pointers; status may be null), the gradient in grad, all queued on
/// ctx.stream (Thrust par_nosync, CUB reductions into device memory, cuBLAS, stream-ordered scratch).
/// Shape errors throw at once; an error in the data (a non-finite element, an overflow, an undefined term
/// under the raise policy) leaves value NaN, a zero gradient and a negative status, which
/// device::check_loss_status turns into the exception once the caller has read it back.
template <class TS, class TT, class T>
void sample_relation_loss(const device::cuda& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                          device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts = {}) {
  device::detail::cuda_slot_loss(ctx, "rcka::sample_relation_loss", student, teacher, grad, out, opts,
                                 device::detail::relations::rows);
}

/// class_relation_loss left in a loss_slot on CUDA; as sample_relation_loss(ctx, …, out, opts).
template <class TS, class TT, class T>
void class_relation_loss(const device::cuda& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                         device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts = {}) {
  device::detail::cuda_slot_loss(ctx, "rcka::class_relation_loss", student, teacher, grad, out, opts,
                                 device::detail::relations::columns);
}

/// feature_loss left in a loss_slot on CUDA; as sample_relation_loss(ctx, …, out, opts).
template <class TS, class TT, class T>
void feature_loss(const device::cuda& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
                  device::matrix_view<T> grad, device::loss_slot<T> out, const relation_options& opts = {}) {
  device::detail::cuda_slot_loss(ctx, "rcka::feature_loss", student, teacher, grad, out, opts, device::detail::relations::rows);
}

/// rcka_loss left in a loss_slot on CUDA; as sample_relation_loss(ctx, …, out, opts).
template <class TS, class TT, class T>
void rcka_loss(const device::cuda& ctx, device::matrix_view<TS> student, device::matrix_view<TT> teacher,
               device::matrix_view<T> grad, device::loss_slot<T> out, const rcka_weights& weights = {},
               const relation_options& opts = {}) {
  device::detail::cuda_slot_loss(ctx, "rcka::rcka_loss", student, teacher, grad, out, opts, device::detail::relations::both,
                                 weights.sample, weights.cls);
}

}  // namespace rcka
}  // namespace cka
