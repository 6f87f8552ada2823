#pragma once
/// \file device/view.hpp
/// A strided two-dimensional view of memory owned by an execution context's system, and the contexts.

#include <cka/detail/fail.hpp>
#include <cka/device/detail/work_counts.hpp>
#include <cka/rcka_options.hpp>

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

/// A loss value and the number of undefined terms skipped (rcka_options.hpp).
template <class T>
using loss_value = rcka::loss_value<T>;

/// Where the loss functions that do not wait for the stream leave their result, in the context's memory
/// (device memory on CUDA): the value, and a status — the number of undefined terms skipped (0, 1 or 2)
/// when non-negative, else the error the waiting function would have thrown, with the value NaN and a
/// zero gradient: loss_not_finite (an input element is NaN or ±Inf), loss_overflow (the Grams' products
/// exceed the double range), loss_undefined (a constant student or teacher, or a zero row under
/// row_normalize, under undefined_policy::raise), loss_gradient_overflow (the gradient or the weighted
/// value beyond T's range: float logits near 1e-40). status may be null. check_loss_status turns a status
/// read back into the exception.
template <class T>
struct loss_slot {
  T* value = nullptr;
  std::int64_t* status = nullptr;
};
constexpr std::int64_t loss_not_finite = -1, loss_overflow = -2, loss_undefined = -3, loss_gradient_overflow = -4;

/// Throws what the waiting loss function fn would have thrown for a status read back from a loss_slot:
/// cka::invalid_argument for loss_not_finite, cka::domain_error for loss_overflow, loss_undefined and
/// loss_gradient_overflow; nothing for a skip count.
inline void check_loss_status(const char* fn, std::int64_t status) {
  if (status == loss_not_finite) cka::detail::fail_argument(fn, "an element of the student or the teacher is not finite");
  if (status == loss_overflow) {
    cka::detail::fail_domain(fn, "overflow: the centered products exceed the range of the accumulation type; rescale the inputs");
  }
  if (status == loss_undefined) {
    cka::detail::fail_domain(fn, "the alignment is undefined: the student's or the teacher's relation Gram vanishes (a "
                                 "constant student or teacher), or one of its rows is zero under row_normalize");
  }
  if (status == loss_gradient_overflow) cka::detail::fail_loss_overflow(fn);
  if (status < 0) cka::detail::fail_backend(fn, "internal error: unknown loss status ", status);
}

/// What the device functions ran through a context: launches (each algorithm or product call) and
/// synchronisations (each read-back to the host), added to the record a context's `counts` points at — the
/// pass budget that docs/device.md tabulates and the tests hold.
using work_counts = detail::work_counts;

/// Thrust's OpenMP system: host memory, the library's threads. Passes run through thrust::omp::par,
/// products through Eigen maps over the views. counts: where to count the work (null: nowhere).
struct omp {
  work_counts* counts = nullptr;
};

/// Thrust's serial CPP system: host memory, one thread (thrust::cpp::par); as omp.
struct cpp {
  work_counts* counts = nullptr;
};

}  // namespace cka::device
