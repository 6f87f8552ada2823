#pragma once
/// \file device/cuda.hpp
/// The CUDA context of the device backend, for CUDA translation units (nvcc; no Eigen here): views of device
/// memory (a CUDA tensor's data_ptr, sizes, strides) and a stream. This version has HSIC of two Gram views,
/// computed by the same Thrust code as on the host systems (device/detail/hsic.hpp) with
/// thrust::cuda::par.on(stream); the other functions (cuBLAS products, the fused RBF tile kernel, the
/// losses) are the next steps of issue 13. Results returned as host values synchronise the stream.
/// Link CUDA::cudart; build with CKA_CUDA=ON (docs/device.md).

#if !defined(__CUDACC__)
#error "cka/device/cuda.hpp is for CUDA translation units (compile with nvcc); host code uses cka/device.hpp"
#endif

#include <cka/detail/fail.hpp>
#include <cka/device/detail/hsic.hpp>
#include <cka/device/view.hpp>
#include <cka/estimator.hpp>

#include <cuda_runtime_api.h>
#include <thrust/system/cuda/execution_policy.h>

#include <cfloat>
#include <cstdint>
#include <string>
#include <type_traits>

namespace cka::device {

/// Device memory and the stream the work is queued on (nullptr: the default stream).
struct cuda {
  cudaStream_t stream = nullptr;
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
  const device::detail::cuda_scratch rows("hsic", std::size_t(k.rows > 0 ? 2 * k.rows : 1), ctx.stream);
  const device::detail::strided<T> sk{k.ptr, k.rows, k.cols, k.row_stride, k.col_stride};
  const device::detail::strided<T> sl{l.ptr, l.rows, l.cols, l.row_stride, l.col_stride};
  const double epsilon = std::is_same_v<T, float> ? double(FLT_EPSILON) : double(DBL_EPSILON);
  return T(device::detail::gram_hsic(thrust::cuda::par.on(ctx.stream), device::detail::cuda_read{ctx.stream}, rows.get(),
                                     "hsic", sk, sl, est == estimator::unbiased, epsilon));
}

}  // namespace cka
