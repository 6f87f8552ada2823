#pragma once
/// \file device/cuda.hpp
/// The CUDA context of the device backend, for CUDA translation units (nvcc; no Eigen here): views of device
/// memory (a CUDA tensor's data_ptr, sizes, strides) and a stream. The functions of
/// cka/device/functions.hpp — HSIC of Gram views, linear CKA, kernel CKA and MMD with linear, polynomial
/// and RBF kernels, the RCKA losses with their gradients (also as loss_slot variants that never wait) —
/// run the code the host systems run, with thrust::cuda::par_nosync on the stream for the passes, CUB for
/// reductions left in device memory and cuBLAS DSYRK / DGEMM (64-bit API) for the products. Functions that
/// return host values synchronise the stream where they read back (docs/device.md counts them). Link
/// CUDA::cublas; build with CKA_CUDA=ON (docs/device.md).

#if !defined(__CUDACC__)
#error "cka/device/cuda.hpp is for CUDA translation units (compile with nvcc); host code uses cka/device.hpp"
#endif

#include <cka/detail/fail.hpp>
#include <cka/device/detail/backend.hpp>
#include <cka/device/detail/tiles.hpp>
#include <cka/device/view.hpp>

#include <cub/device/device_reduce.cuh>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <thrust/system/cuda/execution_policy.h>

#include <algorithm>
#include <cstdint>
#include <memory>

namespace cka::device {

/// Device memory and the stream the work is queued on (nullptr: the default stream), with a cuBLAS handle
/// bound to that stream, created on first use and shared by copies of the context. counts: where to count
/// the work (null: nowhere).
struct cuda {
  cuda() = default;
  explicit cuda(cudaStream_t s) : stream(s) {}
  cudaStream_t stream = nullptr;
  work_counts* counts = nullptr;
  /// The cuBLAS handle (created lazily, bound to `stream`). Throws cka::backend_error if cuBLAS fails.
  cublasHandle_t blas() const {
    if (!blas_) {
      cublasHandle_t h = nullptr;
      if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) cka::detail::fail_backend("device::cuda", "cublasCreate failed");
      blas_ = std::shared_ptr<cublasContext>(h, [](cublasHandle_t p) { cublasDestroy(p); });
      cublasSetStream(h, stream);
    }
    return blas_.get();
  }

 private:
  mutable std::shared_ptr<cublasContext> blas_;
};

namespace detail {

/// Throw cka::backend_error naming fn for a failed CUDA or cuBLAS call (out of device memory included).
inline void check_cuda(const char* fn, cudaError_t e, const char* what) {
  if (e != cudaSuccess) cka::detail::fail_backend(fn, "CUDA error in ", what, ": ", cudaGetErrorString(e));
}
inline void check_blas(const char* fn, cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) cka::detail::fail_backend(fn, what, " failed");
}

/// Scratch doubles in device memory, freed on scope exit (stream-ordered).
class cuda_scratch {
 public:
  cuda_scratch(const char* fn, std::size_t count, cudaStream_t stream) : stream_(stream) {
    check_cuda(fn, cudaMallocAsync(reinterpret_cast<void**>(&ptr_), (count > 0 ? count : 1) * sizeof(double), stream),
               "cudaMallocAsync");
  }
  cuda_scratch(const cuda_scratch&) = delete;
  cuda_scratch& operator=(const cuda_scratch&) = delete;
  cuda_scratch(cuda_scratch&& o) noexcept : ptr_(o.ptr_), stream_(o.stream_) { o.ptr_ = nullptr; }
  ~cuda_scratch() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  double* get() const { return ptr_; }

 private:
  double* ptr_ = nullptr;
  cudaStream_t stream_;
};

/// CUDA's part of the backend: cuBLAS products on the context's handle (column-major, 64-bit sizes), CUB
/// reductions into device memory and stream-ordered scratch on its stream, copies back that wait for it.
struct cuda_ops {
  cudaStream_t stream;
  cublasHandle_t blas;
  void gram(const char* fn, const double* z, std::int64_t rows, std::int64_t cols, double* k) const {
    const double one = 1.0, zero = 0.0;
    check_blas(fn, cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, rows, cols, &one, z, rows, &zero, k, rows),
               "cublasDsyrk_64");
  }
  void cross(const char* fn, const double* z, std::int64_t rows, std::int64_t cols, double* g, bool add) const {
    const double one = 1.0, beta = add ? 1.0 : 0.0;
    check_blas(fn, cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, cols, rows, &one, z, rows, &beta, g, cols),
               "cublasDsyrk_64");
  }
  void multiply(const char* fn, const double* w, std::int64_t n, const double* x, std::int64_t d, double* out) const {
    const double one = 1.0, zero = 0.0;
    check_blas(fn, cublasDgemm_64(blas, CUBLAS_OP_N, CUBLAS_OP_N, n, d, n, &one, w, n, x, n, &zero, out, n), "cublasDgemm_64");
  }
  void tile_gemm(const char* fn, const double* a, const double* b, std::int64_t h, std::int64_t w, std::int64_t d,
                 std::int64_t lda, double* g) const {
    const double one = 1.0, zero = 0.0;
    check_blas(fn, cublasDgemm_64(blas, CUBLAS_OP_N, CUBLAS_OP_T, h, w, d, &one, a, lda, b, lda, &zero, g, h),
               "cublasDgemm_64");
  }
  template <class Policy, class F, class V, class Op, class Out>
  void reduce_into(const Policy&, const char* fn, std::int64_t n, F f, V init, Op op, Out out) const {
    const thrust::counting_iterator<std::int64_t> first(0);
    std::size_t bytes = 0;
    check_cuda(fn, cub::DeviceReduce::TransformReduce(nullptr, bytes, first, out, n, op, f, init, stream),
               "cub::DeviceReduce::TransformReduce");
    const cuda_scratch temp(fn, (bytes + sizeof(double) - 1) / sizeof(double), stream);
    check_cuda(fn, cub::DeviceReduce::TransformReduce(temp.get(), bytes, first, out, n, op, f, init, stream),
               "cub::DeviceReduce::TransformReduce");
  }
  void to_host(const char* fn, double* dst, const double* src, std::int64_t count) const {
    check_cuda(fn, cudaMemcpyAsync(dst, src, std::size_t(count) * sizeof(double), cudaMemcpyDeviceToHost, stream),
               "cudaMemcpyAsync");
    check_cuda(fn, cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }
  template <class T>
  double read(const char* fn, const T* p) const {
    T v{};
    check_cuda(fn, cudaMemcpyAsync(&v, p, sizeof(T), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
    check_cuda(fn, cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    return double(v);
  }
  cuda_scratch scratch(const char* fn, std::size_t count) const { return cuda_scratch(fn, count, stream); }
};

/// The CUDA context's traits: par_nosync on its stream (the passes never wait; read-backs do), cuBLAS, tiles
/// of up to 4096 rows (two of 128 MiB).
template <>
struct context_traits<cuda> {
  static constexpr bool host_memory = false;
  static auto backend(const cuda& ctx, const char* fn) {
    return make_backend(thrust::cuda::par_nosync.on(ctx.stream), cuda_ops{ctx.stream, ctx.blas()}, ctx.counts, fn);
  }
  static tile_plan plan(std::int64_t n) {
    tile_plan p;
    p.tile = std::min<std::int64_t>(4096, std::max<std::int64_t>(n, 1));
    return p;
  }
};

}  // namespace detail
}  // namespace cka::device

#include <cka/device/functions.hpp>
