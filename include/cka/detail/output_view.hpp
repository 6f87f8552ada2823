#pragma once
// Private: the rules for an output view that a function writes into (a loss's gradient), shared by the host
// functions on Eigen views and the device functions on matrix_views: the shape asked for, one place per
// element, and no memory shared with an input. Eigen-free and Thrust-free; checked on the host.

#include <cka/detail/fail.hpp>

#include <cstddef>
#include <cstdint>

namespace cka::detail {

/// Where a strided matrix lies: element (i, j) of `item` bytes at ptr + (i·row_stride + j·col_stride)·item.
struct placement {
  const void* ptr;
  std::size_t item;
  std::int64_t rows, cols, row_stride, col_stride;
};

template <class T>
placement placement_of(const T* ptr, std::int64_t rows, std::int64_t cols, std::int64_t row_stride,
                       std::int64_t col_stride) {
  return {ptr, sizeof(T), rows, cols, row_stride, col_stride};
}

/// The bytes [first, end) that a placement spans (its layout already checked); empty for an empty matrix.
struct byte_span {
  std::uintptr_t first = 0, end = 0;
};
inline byte_span span_of(const placement& p) {
  if (p.rows == 0 || p.cols == 0) return {};
  const auto first = reinterpret_cast<std::uintptr_t>(p.ptr);
  const auto last = std::uint64_t((p.rows - 1) * p.row_stride + (p.cols - 1) * p.col_stride);
  return {first, first + std::uintptr_t((last + 1) * p.item)};
}

/// Throws cka::invalid_argument, naming fn and what, unless the output view gives every element its own
/// memory: a stride of 0 along a dimension of more than one element, or rows and columns that interleave
/// (the larger stride shorter than the smaller one's extent), would make two results share one place.
inline void require_distinct_elements(const char* fn, const char* what, const placement& p) {
  const std::int64_t rows = p.rows, cols = p.cols, row_stride = p.row_stride, col_stride = p.col_stride;
  if ((rows <= 1 && cols <= 1) || rows == 0 || cols == 0) return;  // no two elements
  bool overlap = (rows > 1 && row_stride == 0) || (cols > 1 && col_stride == 0);
  if (!overlap && rows > 1 && cols > 1) {
    overlap = row_stride >= col_stride ? row_stride < col_stride * cols : col_stride < row_stride * rows;
  }
  if (overlap) {
    fail_argument(fn, what, " (", rows, "x", cols, ", strides ", row_stride, ", ", col_stride,
                  ") overlaps itself: an output view needs one place per element");
  }
}

/// Throws cka::invalid_argument, naming fn, if the output `out_what` shares memory with the input
/// `in_what`: the output would overwrite what it is computed from. (Spans are compared, so an output
/// interleaved with an input inside one buffer is refused too.)
inline void require_apart(const char* fn, const char* out_what, const placement& out, const char* in_what,
                          const placement& in) {
  const byte_span o = span_of(out), i = span_of(in);
  if (o.first < o.end && i.first < i.end && o.first < i.end && i.first < o.end) {
    fail_argument(fn, out_what, " shares memory with ", in_what, "; the output needs memory of its own");
  }
}

/// The checks of a loss's gradient view: the student's shape, one place per element, and no memory
/// shared with the student or the teacher. cka::invalid_argument naming fn otherwise.
inline void require_gradient_view(const char* fn, const placement& grad, const placement& student,
                                  const placement& teacher) {
  if (grad.rows != student.rows || grad.cols != student.cols) {
    fail_argument(fn, "grad is ", grad.rows, "x", grad.cols, " but student is ", student.rows, "x", student.cols,
                  "; the gradient has the student's shape");
  }
  require_distinct_elements(fn, "grad", grad);
  require_apart(fn, "grad", grad, "the student", student);
  require_apart(fn, "grad", grad, "the teacher", teacher);
}

}  // namespace cka::detail
