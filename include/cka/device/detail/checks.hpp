#pragma once
// Private: checks of strided views through Thrust algorithms with an explicit execution policy, so that the
// same code checks host memory on the OMP and CPP systems and device memory on CUDA.

#include <cka/detail/fail.hpp>
#include <cka/detail/host_device.hpp>
#include <cka/detail/output_view.hpp>

#include <thrust/functional.h>
#include <thrust/system/cpp/execution_policy.h>
#if defined(_OPENMP)
#include <thrust/system/omp/execution_policy.h>
#endif

#include <cstdint>
#include <limits>
#include <type_traits>

namespace cka::device::detail {

/// A quiet NaN on the host and on the device (an error's value left in the context's memory).
CKA_HD inline double quiet_nan() {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(0x7ff8000000000000LL);
#else
  return std::numeric_limits<double>::quiet_NaN();
#endif
}

/// True at flat index k (row-major over the view's shape) when the element there is NaN or ±Inf:
/// v − v is 0 for every finite v and NaN otherwise.
template <class T>
struct not_finite_at {
  const T* ptr;
  std::int64_t cols, row_stride, col_stride;
  CKA_HD bool operator()(std::int64_t k) const {
    const T v = ptr[(k / cols) * row_stride + (k % cols) * col_stride];
    return !(v - v == T(0));
  }
};

/// Throws cka::invalid_argument, naming fn and what, unless the shape and strides describe memory that can
/// be addressed: rows, cols ≥ 0, strides ≥ 0, a pointer for a non-empty view, and a last element whose
/// offset in bytes (not only in elements) fits in 64 bits and does not wrap the address space from ptr.
template <class T>
void require_layout(const char* fn, const char* what, const T* ptr, std::int64_t rows, std::int64_t cols,
                    std::int64_t row_stride, std::int64_t col_stride) {
  if (rows < 0 || cols < 0) cka::detail::fail_argument(fn, what, " has shape ", rows, "x", cols, "; sizes must be non-negative");
  if (row_stride < 0 || col_stride < 0) {
    cka::detail::fail_argument(fn, what, " has strides (", row_stride, ", ", col_stride, "); negative strides are not supported");
  }
  if (rows > 0 && cols > 0 && ptr == nullptr) cka::detail::fail_argument(fn, what, " is ", rows, "x", cols, " but its pointer is null");
  constexpr std::int64_t top = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t item = std::int64_t(sizeof(T));
  bool too_far = rows > 0 && cols > 0 &&
                 ((row_stride > 0 && rows - 1 > top / row_stride) || (col_stride > 0 && cols - 1 > top / col_stride) ||
                  (rows - 1) * row_stride > top - (cols - 1) * col_stride);
  if (!too_far && rows > 0 && cols > 0) {
    const std::int64_t last = (rows - 1) * row_stride + (cols - 1) * col_stride;  // in elements; fits
    const std::uintptr_t room = std::numeric_limits<std::uintptr_t>::max() - reinterpret_cast<std::uintptr_t>(ptr);
    too_far = last >= top / item || std::uint64_t(last + 1) * std::uint64_t(item) > room;
  }
  if (too_far || (cols > 0 && rows > top / cols)) {
    cka::detail::fail_argument(fn, what, " (", rows, "x", cols, ", strides ", row_stride, ", ", col_stride,
                               ") addresses beyond 64-bit byte offsets");
  }
}

/// A strided rows×cols matrix (the fields of a device::matrix_view).
template <class T>
struct strided {
  const T* ptr;
  std::int64_t rows, cols, row_stride, col_stride;
};

/// The fields of a view (a device::matrix_view) as a strided matrix of its scalar without const.
template <class View>
auto strided_of(const View& v) {
  using T = std::remove_const_t<std::remove_pointer_t<decltype(v.ptr)>>;
  return strided<T>{v.ptr, v.rows, v.cols, v.row_stride, v.col_stride};
}

/// The row-major index of the first non-finite element of a view (−1 if none): a reduction, for the
/// error paths that name a culprit.
template <class T>
struct not_finite_key {
  not_finite_at<T> at;
  CKA_HD double operator()(std::int64_t k) const { return at(k) ? double(k) : 9.0e18; }
};
template <class Backend, class T>
void require_finite(const Backend& be, const char* what, const strided<T>& m) {
  if (m.rows == 0 || m.cols == 0) return;
  const double key = be.reduce(m.rows * m.cols, not_finite_key<T>{{m.ptr, m.cols, m.row_stride, m.col_stride}}, 9.0e18,
                               thrust::minimum<double>());
  if (key == 9.0e18) return;
  const std::int64_t k = std::int64_t(key), i = k / m.cols, j = k % m.cols;
  cka::detail::fail_argument(be.fn, what, "(", i, ", ", j, ") = ", be.read(m.ptr + i * m.row_stride + j * m.col_stride),
                             " is not finite");
}

/// Layouts of two input views X and Y.
template <class T>
void require_views(const char* fn, const strided<T>& x, const strided<T>& y) {
  require_layout(fn, "X", x.ptr, x.rows, x.cols, x.row_stride, x.col_stride);
  require_layout(fn, "Y", y.ptr, y.rows, y.cols, y.row_stride, y.col_stride);
}

/// The checks of two representations of the same samples (CKA) that need no data: layouts, the same
/// rows, and enough of them for the estimator (`needed`: 2 biased, 4 unbiased). Finiteness is checked by
/// the engines' first read (moments.hpp).
template <class T>
void require_pair(const char* fn, const strided<T>& x, const strided<T>& y, std::int64_t needed) {
  require_views(fn, x, y);
  if (x.rows != y.rows) {
    cka::detail::fail_argument(fn, "X has ", x.rows, " samples (rows) but Y has ", y.rows,
                               "; both representations must hold the same samples");
  }
  if (x.rows < needed) {
    cka::detail::fail_argument(fn, "X has ", x.rows, " samples but ", needed == 2 ? "the biased estimator" : "the unbiased estimator",
                               " needs at least ", needed);
  }
}

/// The checks of two samples in one space (MMD) that need no data: layouts, the same width, and at least
/// `needed` rows in each (1 biased, 2 unbiased).
template <class T>
void require_samples_pair(const char* fn, const strided<T>& x, const strided<T>& y, std::int64_t needed) {
  require_views(fn, x, y);
  if (x.cols != y.cols) {
    cka::detail::fail_argument(fn, "X has ", x.cols, " features (columns) but Y has ", y.cols,
                               "; both samples must live in the same space");
  }
  for (const strided<T>* m : {&x, &y}) {
    if (m->rows < needed) {
      cka::detail::fail_argument(fn, m == &x ? "X" : "Y", " has ", m->rows, " samples but ",
                                 needed == 1 ? "the biased estimator" : "the unbiased estimator", " needs at least ", needed);
    }
  }
}

}  // namespace cka::device::detail
