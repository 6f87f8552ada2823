#pragma once
// Arrays from Python as Eigen views: NumPy, PyTorch, JAX or anything with __dlpack__ or the buffer
// protocol, float32 or float64, mapped in place when one of the two dimensions has unit stride (C order,
// Fortran order, a row or column slice); any other layout (both strides non-unit, a negative or zero
// stride) is copied once into C order, the one copy the binding makes.

#include <cka/errors.hpp>

#include <Eigen/Core>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cka::python {

namespace nb = nanobind;
using index = Eigen::Index;

template <class T, int Order>
using map_of = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, 0, Eigen::OuterStride<>>;

/// A 2-D float32/float64 CPU array, held alive and described by its strides in elements.
struct matrix_arg {
  nb::ndarray<nb::ro> array;    // keeps the caller's memory alive (and the GIL-free work may read it)
  std::vector<double> copy64;   // the C-order copy of a layout that cannot be viewed, if any
  std::vector<float> copy32;
  const void* data = nullptr;
  index rows = 0, cols = 0, outer = 0;
  bool is_double = true;
  bool row_major = true;

  /// The values: the copy when one was made (so moving or copying the struct keeps it valid), else the
  /// caller's memory.
  const void* ptr() const {
    if (!copy64.empty()) return copy64.data();
    if (!copy32.empty()) return copy32.data();
    return data;
  }
};

[[noreturn]] inline void type_error(const std::string& what) { throw nb::type_error(what.c_str()); }
[[noreturn]] inline void value_error(const std::string& what) { throw nb::value_error(what.c_str()); }

inline const char* py_type_name(nb::handle h) {
  return Py_TYPE(h.ptr())->tp_name;
}

/// str(h.dtype) for an array-like that has one (NumPy, PyTorch, JAX), else "".
inline std::string dtype_attribute(nb::handle h) {
  if (!nb::hasattr(h, "dtype")) return "";
  try {
    PyObject* text = PyObject_Str(h.attr("dtype").ptr());
    if (text == nullptr) throw nb::python_error();
    return nb::steal<nb::str>(text).c_str();
  } catch (const nb::python_error&) {
    return "";
  }
}

/// Imports `h` as an ndarray without converting or copying, or raises TypeError naming the argument (and
/// for an array that cannot be read in place — a byte order other than the machine's, a dtype DLPack
/// lacks such as NumPy's longdouble, a sparse tensor — its type and dtype).
inline nb::ndarray<nb::ro> import_array(const char* fn, const char* name, nb::handle h) {
  nb::ndarray<nb::ro> a;
  if (!nb::try_cast(h, a, /*convert=*/false)) {
    const std::string dtype = dtype_attribute(h);
    if (!dtype.empty()) {
      type_error(std::string("cka.") + fn + ": " + name + " (" + py_type_name(h) + " of dtype " + dtype +
                 ") cannot be read in place as a dense float32 or float64 array in the machine's byte order; "
                 "convert it (e.g. numpy.asarray(x, dtype=numpy.float64), or tensor.to_dense().double())");
    }
    type_error(std::string("cka.") + fn + ": " + name + " must be an array of float32 or float64 (NumPy, PyTorch, "
               "or anything with __dlpack__ or the buffer protocol), not " + py_type_name(h));
  }
  if (a.device_type() != nb::device::cpu::value) {
    type_error(std::string("cka.") + fn + ": " + name + " is not in CPU memory; move it to the CPU "
               "(tensor.cpu()) or, for the losses, use cka.torch with a CUDA build");
  }
  return a;
}

inline bool dtype_is_float(const nb::dlpack::dtype& d, unsigned bits) {
  return d.code == uint8_t(nb::dlpack::dtype_code::Float) && d.bits == bits && d.lanes == 1;
}

inline std::string dtype_name(const nb::dlpack::dtype& d) {
  using code = nb::dlpack::dtype_code;
  const code c = code(d.code);
  const char* kind = c == code::Int ? "int" : c == code::UInt ? "uint" : c == code::Float ? "float"
                   : c == code::Bfloat ? "bfloat" : c == code::Bool ? "bool" : c == code::Complex ? "complex" : "other";
  return std::string(kind) + std::to_string(int(d.bits));
}

/// Checks the dtype; raises TypeError naming the argument and its dtype.
inline bool require_float(const char* fn, const char* name, const nb::ndarray<nb::ro>& a) {
  const auto d = a.dtype();
  if (dtype_is_float(d, 64)) return true;
  if (dtype_is_float(d, 32)) return false;
  type_error(std::string("cka.") + fn + ": " + name + " has dtype " + dtype_name(d) +
             "; pass float32 or float64 (e.g. x.astype(numpy.float64))");
}

template <class T>
void copy_strided(const T* p, index rows, index cols, int64_t rs, int64_t cs, std::vector<T>& out) {
  out.resize(std::size_t(rows) * std::size_t(cols));
  for (index i = 0; i < rows; ++i)
    for (index j = 0; j < cols; ++j) out[std::size_t(i * cols + j)] = p[i * rs + j * cs];
}

/// Describes a 2-D view of `a` with rows×cols and element strides rs, cs (copying if neither is 1).
inline void describe(matrix_arg& m, index rows, index cols, int64_t rs, int64_t cs) {
  m.rows = rows;
  m.cols = cols;
  if (rows <= 1) rs = cols;  // a stride along a dimension of extent ≤ 1 is never used
  if (cols <= 1) cs = 1;
  if (cs == 1 && rs >= cols) {
    m.row_major = true;
    m.outer = rs;
  } else if (rs == 1 && cs >= rows) {
    m.row_major = false;
    m.outer = cs;
  } else {
    m.row_major = true;
    m.outer = cols;
    if (m.is_double) {
      copy_strided(static_cast<const double*>(m.data), rows, cols, rs, cs, m.copy64);
      m.data = m.copy64.data();
    } else {
      copy_strided(static_cast<const float*>(m.data), rows, cols, rs, cs, m.copy32);
      m.data = m.copy32.data();
    }
  }
}

/// A 2-D float array argument: samples in rows, features in columns — or, with `shape`, the matrix that
/// text describes (named in the error for another dimension count).
inline matrix_arg to_matrix(const char* fn, const char* name, nb::handle h, const char* shape = nullptr) {
  matrix_arg m;
  m.array = import_array(fn, name, h);
  if (m.array.ndim() != 2) {
    value_error(std::string("cka.") + fn + ": " + name + " must be 2-D (" + (shape ? shape : "samples × features") +
                "), got " + std::to_string(m.array.ndim()) + "-D" +
                (shape ? "" : "; reshape it, e.g. x.reshape(len(x), -1)"));
  }
  m.is_double = require_float(fn, name, m.array);
  m.data = m.array.data();
  describe(m, index(m.array.shape(0)), index(m.array.shape(1)), m.array.stride(0), m.array.stride(1));
  return m;
}

/// A 4-D NCHW array as one column of its values in NCHW order (copied in that order if not C-contiguous).
inline matrix_arg to_maps(const char* fn, const char* name, nb::handle h, index shape[4]) {
  matrix_arg m;
  m.array = import_array(fn, name, h);
  if (m.array.ndim() != 4) {
    value_error(std::string("cka.") + fn + ": " + name + " must be a 4-D NCHW feature map, got " +
                std::to_string(m.array.ndim()) + "-D");
  }
  m.is_double = require_float(fn, name, m.array);
  m.data = m.array.data();
  bool contiguous = true;
  int64_t expect = 1;
  for (int k = 3; k >= 0; --k) {
    shape[k] = index(m.array.shape(std::size_t(k)));
    if (shape[k] > 1 && m.array.stride(std::size_t(k)) != expect) contiguous = false;
    expect *= int64_t(shape[k]);
  }
  const index b = shape[0], rest = shape[1] * shape[2] * shape[3];
  // The values in NCHW order viewed as one column (B·C·H·W × 1): patch_loss reads them, and writes its
  // gradient — a column of the same length, which the caller hands out as the maps' shape without a copy —
  // along that one contiguous line.
  m.rows = b * rest;
  m.cols = 1;
  m.outer = b * rest;
  m.row_major = false;
  if (contiguous) return m;
  // Gather in NCHW order.
  auto gather = [&](auto* p, auto& out) {
    out.resize(std::size_t(b * rest));
    std::size_t at = 0;
    for (index i = 0; i < shape[0]; ++i)
      for (index c = 0; c < shape[1]; ++c)
        for (index y = 0; y < shape[2]; ++y)
          for (index x = 0; x < shape[3]; ++x)
            out[at++] = p[i * m.array.stride(0) + c * m.array.stride(1) + y * m.array.stride(2) + x * m.array.stride(3)];
  };
  if (m.is_double) {
    gather(static_cast<const double*>(m.data), m.copy64);
    m.data = m.copy64.data();
  } else {
    gather(static_cast<const float*>(m.data), m.copy32);
    m.data = m.copy32.data();
  }
  return m;
}

/// Makes a float32 argument float64 (one copy), so that two arguments share a scalar type.
inline void promote(matrix_arg& m) {
  if (m.is_double) return;
  std::vector<double> out(std::size_t(m.rows) * std::size_t(m.cols));
  const float* p = static_cast<const float*>(m.ptr());
  for (index i = 0; i < m.rows; ++i)
    for (index j = 0; j < m.cols; ++j)
      out[std::size_t(i * m.cols + j)] = double(m.row_major ? p[i * m.outer + j] : p[j * m.outer + i]);
  m.copy64 = std::move(out);
  m.copy32.clear();
  m.data = m.copy64.data();
  m.is_double = true;
  m.row_major = true;
  m.outer = m.cols;
}

/// Makes the argument C-ordered (one copy, unless it already is).
inline void make_row_major(matrix_arg& m) {
  if (m.row_major) return;
  auto gather = [&](const auto* p, auto& out) {
    out.resize(std::size_t(m.rows) * std::size_t(m.cols));
    for (index i = 0; i < m.rows; ++i)
      for (index j = 0; j < m.cols; ++j) out[std::size_t(i * m.cols + j)] = p[j * m.outer + i];
    m.data = out.data();
  };
  if (m.is_double) {
    std::vector<double> out;
    gather(static_cast<const double*>(m.ptr()), out);
    m.copy64 = std::move(out);
  } else {
    std::vector<float> out;
    gather(static_cast<const float*>(m.ptr()), out);
    m.copy32 = std::move(out);
  }
  m.row_major = true;
  m.outer = m.cols;
}

template <class T, class F>
decltype(auto) visit_as(const matrix_arg& m, F&& f) {
  const T* p = static_cast<const T*>(m.ptr());
  if (m.row_major) return f(map_of<T, Eigen::RowMajor>(p, m.rows, m.cols, Eigen::OuterStride<>(m.outer)));
  return f(map_of<T, Eigen::ColMajor>(p, m.rows, m.cols, Eigen::OuterStride<>(m.outer)));
}

/// Calls f(view) with the Eigen map matching the argument's dtype and layout; f returns one type for all.
template <class F>
decltype(auto) visit(const matrix_arg& m, F&& f) {
  if (m.is_double) return visit_as<double>(m, f);
  return visit_as<float>(m, f);
}

/// Calls f(x_view, y_view) with one scalar type for both (float32 beside float64 is promoted to float64,
/// one copy of the float32 argument).
template <class F>
decltype(auto) visit2(matrix_arg& x, matrix_arg& y, F&& f) {
  if (x.is_double != y.is_double) {
    promote(x);
    promote(y);
  }
  auto both = [&](auto tag) -> decltype(auto) {
    using T = decltype(tag);
    return visit_as<T>(x, [&](const auto& xv) -> decltype(auto) {
      return visit_as<T>(y, [&](const auto& yv) -> decltype(auto) { return f(xv, yv); });
    });
  };
  if (x.is_double) return both(double{});
  return both(float{});
}

}  // namespace cka::python
