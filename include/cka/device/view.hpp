#pragma once
/// \file device/view.hpp
/// A strided two-dimensional view of memory owned by an execution context's system, and the contexts.

#include <cstdint>

namespace cka::device {

/// Element (i, j) of a rows×cols matrix at ptr[i·row_stride + j·col_stride]; strides count elements, as
/// a PyTorch tensor's strides() do, so `{t.data_ptr<float>(), t.size(0), t.size(1), t.stride(0),
/// t.stride(1)}` views a 2-D tensor without a copy. Row-major contiguous: row_stride = cols, col_stride = 1;
/// column-major (Eigen's default): row_stride = 1, col_stride = rows. T is const for inputs.
template <class T>
struct matrix_view {
  T* ptr = nullptr;
  std::int64_t rows = 0, cols = 0;
  std::int64_t row_stride = 0, col_stride = 0;
};

/// A contiguous row-major view (C order, PyTorch's default).
template <class T>
matrix_view<T> row_major(T* ptr, std::int64_t rows, std::int64_t cols) {
  return {ptr, rows, cols, cols, 1};
}

/// A contiguous column-major view (Fortran order, Eigen's default).
template <class T>
matrix_view<T> column_major(T* ptr, std::int64_t rows, std::int64_t cols) {
  return {ptr, rows, cols, 1, rows};
}

/// A loss value and the number of undefined terms skipped (rcka::loss_result without the gradient, which
/// the device functions write into the caller's view).
template <class T>
struct loss_value {
  T value;
  std::int64_t skipped;
};

/// Thrust's OpenMP system: host memory, the library's threads. Checks and reductions run through
/// thrust::omp::par; products through Eigen maps over the views.
struct omp {};

/// Thrust's serial CPP system: host memory, one thread (thrust::cpp::par).
struct cpp {};

}  // namespace cka::device
