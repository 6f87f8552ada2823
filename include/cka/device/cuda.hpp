#pragma once
/// \file device/cuda.hpp
/// The CUDA context of the device backend, for CUDA translation units (nvcc; no Eigen here): views of device
/// memory (a CUDA tensor's data_ptr, sizes, strides) and a stream. This version has HSIC of two Gram views
/// and linear CKA of two representations, computed by the same Thrust code as on the host systems
/// (device/detail/hsic.hpp, linear.hpp) with thrust::cuda::par.on(stream), the product by cuBLAS DSYRK
/// (64-bit API); the fused RBF tile kernel, MMD and the losses are the next steps of issue 13. Results
/// returned as host values synchronise the stream. Link CUDA::cublas; build with CKA_CUDA=ON
/// (docs/device.md).

#if !defined(__CUDACC__)
#error "cka/device/cuda.hpp is for CUDA translation units (compile with nvcc); host code uses cka/device.hpp"
#endif

#include <cka/detail/fail.hpp>
#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/linear.hpp>
#include <cka/device/view.hpp>
#include <cka/estimator.hpp>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <thrust/system/cuda/execution_policy.h>

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

}  // namespace detail
}  // namespace cka::device

namespace cka {

/// HSIC of two n×n Gram views in device memory; as hsic(K, L, est) on the host (same checks, same
/// errors), by Thrust algorithms on ctx.stream. Cost O(n²); scratch 2n doubles. Synchronises the stream.
template <class TK, class TL, class T = std::remove_const_t<TK>,
          class = std::enable_if_t<std::is_same_v<std::remove_const_t<TK>, std::remove_const_t<TL>>>>
T hsic(const device::cuda& ctx, device::matrix_view<TK> k, device::matrix_view<TL> l, estimator est = estimator::biased) {
  const device::detail::strided<T> sk{k.ptr, k.rows, k.cols, k.row_stride, k.col_stride};
  const device::detail::strided<T> sl{l.ptr, l.rows, l.cols, l.row_stride, l.col_stride};
  const double epsilon = std::is_same_v<T, float> ? double(FLT_EPSILON) : double(DBL_EPSILON);
  auto scratch = [&](std::size_t count) { return device::detail::cuda_scratch("hsic", count, ctx.stream); };
  return T(device::detail::gram_hsic(thrust::cuda::par.on(ctx.stream), device::detail::cuda_read{ctx.stream}, scratch,
                                     "hsic", sk, sl, est == estimator::unbiased, epsilon));
}

/// Linear CKA of two views in device memory; as linear_cka(X, Y, est) on the host (same checks, same
/// errors; values to rounding). Centered features in a device scratch [Xc Yc] (8·n·(d1+d2) bytes), then
/// cublasDsyrk_64 in the cheaper form: ZᵀZ (n·(d1+d2)² flops, the sums read back), or with fewer samples
/// than features the two n×n Grams (n²·(d1+d2) flops, their centered products reduced on the device).
/// Synchronises the stream.
template <class TX, class TY, class T = std::remove_const_t<TX>,
          class = std::enable_if_t<std::is_same_v<std::remove_const_t<TX>, std::remove_const_t<TY>>>>
T linear_cka(const device::cuda& ctx, device::matrix_view<TX> x, device::matrix_view<TY> y,
             estimator est = estimator::biased) {
  const char* fn = "linear_cka";
  const device::detail::cuda_read read{ctx.stream};
  const auto policy = thrust::cuda::par.on(ctx.stream);
  device::detail::require_layout(fn, "X", x.ptr, x.rows, x.cols, x.row_stride, x.col_stride);
  device::detail::require_layout(fn, "Y", y.ptr, y.rows, y.cols, y.row_stride, y.col_stride);
  device::detail::require_finite(policy, read, fn, "X", x.ptr, x.rows, x.cols, x.row_stride, x.col_stride);
  device::detail::require_finite(policy, read, fn, "Y", y.ptr, y.rows, y.cols, y.row_stride, y.col_stride);
  if (x.rows != y.rows) {
    cka::detail::fail_argument(fn, "X has ", x.rows, " samples (rows) but Y has ", y.rows,
                               "; both representations must hold the same samples");
  }
  if (x.rows < min_samples(est)) {
    cka::detail::fail_argument(fn, "X has ", x.rows, " samples but ",
                               est == estimator::biased ? "the biased estimator" : "the unbiased estimator",
                               " needs at least ", min_samples(est));
  }
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
  auto gram = [&](const double* z, std::int64_t rows, std::int64_t cols, double* k) {
    const double one = 1.0, zero = 0.0;
    if (cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, rows, cols, &one, z, rows, &zero, k, rows) !=
        CUBLAS_STATUS_SUCCESS) {
      cka::detail::fail_domain(fn, "cublasDsyrk_64 failed");
    }
  };
  auto to_host = [&](double* dst, const double* src, std::int64_t count) {
    device::detail::check_cuda(fn, cudaMemcpyAsync(dst, src, std::size_t(count) * sizeof(double), cudaMemcpyDeviceToHost,
                                                   ctx.stream), "cudaMemcpyAsync");
    device::detail::check_cuda(fn, cudaStreamSynchronize(ctx.stream), "cudaStreamSynchronize");
  };
  const device::detail::strided<T> sx{x.ptr, x.rows, x.cols, x.row_stride, x.col_stride};
  const device::detail::strided<T> sy{y.ptr, y.rows, y.cols, y.row_stride, y.col_stride};
  const auto s = device::detail::linear_sums(policy, product, gram, to_host, scratch.get(), sx, sy, est == estimator::unbiased);
  // The ratio, with the host's rules: overflow first, then a vanishing self-product (relative (64ε)² of
  // its reference).
  if (!std::isfinite(s.kl) || !std::isfinite(s.kk) || !std::isfinite(s.ll)) {
    cka::detail::fail_domain(fn, "overflow: the centered products exceed the range of the accumulation type");
  }
  const double tiny = (64 * DBL_EPSILON) * (64 * DBL_EPSILON);
  auto require_variance = [&](double self, double ref, const char* who) {
    if (!(self > tiny * ref) || !(self > 0)) {
      cka::detail::fail_domain(fn, who, " has zero variance after centering (its self-product is ",
                               self / (ref > 0 ? ref : 1.0), " relative to its uncentered one), so the alignment is undefined");
    }
  };
  require_variance(s.kk, s.ref_k, "the first representation");
  require_variance(s.ll, s.ref_l, "the second representation");
  return T(s.kl / std::sqrt(s.kk) / std::sqrt(s.ll));
}

}  // namespace cka
