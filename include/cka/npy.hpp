#pragma once
/// \file npy.hpp
/// Reading and writing NumPy .npy files (format versions 1.0, 2.0 and 3.0) holding one layer's
/// activations: float16, float32 or float64, little- or big-endian, C or Fortran order, any number of dimensions
/// (n, …) — the trailing dimensions are flattened in C order, as `x.reshape(n, -1)` does.
///
/// Every malformed input throws cka::npy::error (a cka::invalid_argument) with one line saying what is
/// wrong; nothing is allocated before the header's sizes have been checked against the bytes present, so
/// a corrupt header cannot cause a huge allocation.

#include <cka/errors.hpp>
#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace cka::npy {

/// A malformed, truncated or unsupported .npy file.
class error : public cka::invalid_argument {
 public:
  using cka::invalid_argument::invalid_argument;
};

/// A loaded array: its shape, and its values as rows = shape[0], columns = product of the rest.
struct array {
  std::vector<std::int64_t> shape;
  matrix<double> values;
  bool float32 = false;  ///< the file held float32 (converted to double on load)
};

namespace detail {

[[noreturn]] inline void fail(const std::string& what) { throw error(what); }

/// Parser of the header's Python dict literal, e.g. {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
class header_parser {
 public:
  explicit header_parser(const std::string& text) : s_(text) {}

  void parse(std::string& descr, bool& fortran, std::vector<std::int64_t>& shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      skip();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"') fail("unsupported dtype: a structured or non-string 'descr'");
        descr = quoted();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        have_order = true;
      } else if (key == "shape") {
        shape = tuple();
        have_shape = true;
      } else {
        fail("corrupt header: unknown key '" + key + "'");
      }
      skip();
      if (peek() == ',') ++i_;
    }
    if (!have_descr || !have_order || !have_shape) fail("corrupt header: 'descr', 'fortran_order' or 'shape' missing");
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    skip();
    if (peek() != c) fail(std::string("corrupt header: expected '") + c + "'");
    ++i_;
  }
  std::string quoted() {
    skip();
    const char q = peek();
    if (q != '\'' && q != '"') fail("corrupt header: expected a quoted string");
    const std::size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) fail("corrupt header: unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    fail("corrupt header: 'fortran_order' is not True or False");
  }
  std::vector<std::int64_t> tuple() {
    expect('(');
    std::vector<std::int64_t> out;
    while (true) {
      skip();
      if (peek() == ')') {
        ++i_;
        return out;
      }
      std::int64_t v = 0;
      bool digits = false;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) fail("corrupt header: a dimension is too large");
        v = v * 10 + (peek() - '0');
        ++i_;
        digits = true;
      }
      if (!digits) fail("corrupt header: 'shape' is not a tuple of non-negative integers");
      if (peek() == 'L') ++i_;  // Python 2 long suffix
      out.push_back(v);
      if (out.size() > 32) fail("corrupt header: more than 32 dimensions");
      skip();
      if (peek() == ',') ++i_;
      else if (peek() != ')') fail("corrupt header: malformed 'shape' tuple");
    }
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

inline bool little_endian_host() {
  const std::uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

template <class F>
F read_value(const unsigned char* p, bool swap) {
  unsigned char buf[sizeof(F)];
  for (std::size_t k = 0; k < sizeof(F); ++k) buf[k] = swap ? p[sizeof(F) - 1 - k] : p[k];
  F v;
  std::memcpy(&v, buf, sizeof(F));
  return v;
}

/// An IEEE 754 binary16 value (NumPy's float16) as a float: exact, subnormals, infinities and NaN included.
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(float(mantissa), -24);  // zero and subnormals: mantissa · 2^−24
  } else if (exponent == 31) {
    magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    magnitude = std::ldexp(float(mantissa | 0x400u), int(exponent) - 25);
  }
  return sign ? -magnitude : magnitude;
}

}  // namespace detail

/// Where and how an .npy file's values are stored, from its header: shape (n, …) flattened to rows × cols
/// (C order of the trailing dimensions), item size 2, 4 or 8 (float16, 32, 64), byte swapping, Fortran order, and the offset of
/// the data. `describe` checks every size against the bytes present, so nothing proportional to a claimed
/// size is allocated or looped over before the file is known to hold it.
struct layout {
  std::vector<std::int64_t> shape;
  std::int64_t rows = 0, cols = 0;
  std::size_t item = 8;
  char kind = 'f';  ///< 'f' (float16/32/64); 'i' or 'u' (integers) only from detail::describe_any
  bool swap = false, fortran = false;
  std::size_t data_offset = 0;
  /// Offset (in values) of flattened column j from the first value of its row in Fortran order: the
  /// column-major position of the trailing index tuple, times n (empty for C order).
  std::vector<std::size_t> fortran_offset;
};

namespace detail {
/// describe(), optionally accepting integer dtypes (for index files; the value readers take floats only).
inline layout describe_any(const unsigned char* bytes, std::size_t size, bool integers);
}  // namespace detail

/// Reads and checks the header of the .npy bytes (of which `size` are present). Throws cka::npy::error.
inline layout describe(const unsigned char* bytes, std::size_t size) { return detail::describe_any(bytes, size, false); }

inline layout detail::describe_any(const unsigned char* bytes, std::size_t size, bool integers) {
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10 || std::memcmp(bytes, magic, 6) != 0) detail::fail("not an .npy file (no \\x93NUMPY magic)");
  const unsigned major = bytes[6];
  if (major < 1 || major > 3) detail::fail("unsupported .npy format version " + std::to_string(major));
  const std::size_t prefix = major == 1 ? 10 : 12;
  if (size < prefix) detail::fail("truncated header");
  const std::size_t header_len = major == 1 ? std::size_t(bytes[8]) | std::size_t(bytes[9]) << 8
                                            : std::size_t(bytes[8]) | std::size_t(bytes[9]) << 8 |
                                                  std::size_t(bytes[10]) << 16 | std::size_t(bytes[11]) << 24;
  if (header_len > size - prefix) detail::fail("truncated header: it declares " + std::to_string(header_len) + " bytes");
  const std::string header(reinterpret_cast<const char*>(bytes + prefix), header_len);

  std::string descr;
  layout out;
  detail::header_parser(header).parse(descr, out.fortran, out.shape);
  if (descr.size() < 3) detail::fail("unsupported dtype '" + descr + "'");
  const char order = descr[0], kind = descr[1];
  const std::string width = descr.substr(2);
  const bool integer = integers && (kind == 'i' || kind == 'u') &&
                       (width == "1" || width == "2" || width == "4" || width == "8") &&
                       (order == '<' || order == '>' || order == '=' || order == '|');
  if (!integer && (kind != 'f' || (width != "2" && width != "4" && width != "8") || (order != '<' && order != '>' && order != '='))) {
    detail::fail("unsupported dtype '" + descr + "': need float16, float32 or float64 ('<f2', '<f4', '<f8', or '>')" +
                 (integers ? " or integers" : ""));
  }
  out.kind = kind;
  out.item = std::size_t(width[0] - '0');
  if (out.shape.empty()) detail::fail("a 0-dimensional array holds no samples; need shape (n, ...)");

  // Sizes, with overflow checks, against the bytes actually present: no allocation before this.
  std::int64_t rows = out.shape[0], cols = 1;
  for (std::size_t k = 1; k < out.shape.size(); ++k) {
    if (out.shape[k] != 0 && cols > std::numeric_limits<std::int64_t>::max() / 16 / out.shape[k]) {
      detail::fail("corrupt header: the shape's size overflows");
    }
    cols *= out.shape[k];
  }
  if (rows != 0 && cols > std::numeric_limits<std::int64_t>::max() / 16 / rows) detail::fail("corrupt header: the shape's size overflows");
  const std::size_t count = std::size_t(rows) * std::size_t(cols);
  const std::size_t available = size - prefix - header_len;
  if (count > available / out.item) {
    std::ostringstream msg;
    msg << "truncated data: the header declares " << count << " values (" << count * out.item << " bytes) but "
        << available << " bytes follow";
    detail::fail(msg.str());
  }
  out.rows = rows;
  out.cols = cols;
  out.swap = (order == '>' && detail::little_endian_host()) || (order == '<' && !detail::little_endian_host());
  out.data_offset = prefix + header_len;
  if (out.fortran && count > 0) {
    // Fortran order over (n, d1, …, dm): k = i + n·(t1 + d1·(t2 + …)); the C-order flattened column of
    // (t1, …, tm) is j = ((t1·d2 + t2)·d3 + …).
    out.fortran_offset.assign(std::size_t(cols), 0);
    for (std::size_t j = 0; j < std::size_t(cols); ++j) {
      std::size_t rest = j, f = 0, stride = std::size_t(rows);
      std::vector<std::size_t> t(out.shape.size(), 0);
      for (std::size_t dim = out.shape.size(); dim-- > 1;) {
        t[dim] = rest % std::size_t(out.shape[dim]);
        rest /= std::size_t(out.shape[dim]);
      }
      for (std::size_t dim = 1; dim < out.shape.size(); ++dim) {
        f += t[dim] * stride;
        stride *= std::size_t(out.shape[dim]);
      }
      out.fortran_offset[j] = f;
    }
  }
  return out;
}

/// Calls f with a row-major Eigen::Map (float or double) over rows r0 … r0+h−1 of the data described by l,
/// without a copy, and returns true — when the data are native-endian, C order and aligned for their type;
/// returns false (f not called) otherwise.
template <class F>
bool visit_native_rows(const unsigned char* bytes, const layout& l, std::int64_t r0, std::int64_t h, F&& f) {
  const unsigned char* data = bytes + l.data_offset;
  if (l.item == 2 || l.fortran || l.swap || reinterpret_cast<std::uintptr_t>(data) % l.item != 0) return false;
  const Eigen::Index rows = Eigen::Index(h), cols = Eigen::Index(l.cols);
  const std::size_t first = std::size_t(r0) * std::size_t(l.cols);
  if (l.item == 4) {
    f(Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        reinterpret_cast<const float*>(data) + first, rows, cols));
  } else {
    f(Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        reinterpret_cast<const double*>(data) + first, rows, cols));
  }
  return true;
}

/// Converts rows r0 … r0+h−1 of the data described by l (bytes: the whole file) into dest (h × l.cols, any
/// Eigen matrix or block of a floating type, any storage order). Native-endian C-order data is read as an
/// Eigen::Map over the bytes (one vectorised conversion) when they are aligned; other layouts value by value.
template <class Dest>
void read_rows(const unsigned char* bytes, const layout& l, std::int64_t r0, std::int64_t h, Dest&& dest) {
  using S = typename std::decay_t<Dest>::Scalar;
  if (h <= 0 || l.cols <= 0) return;  // nothing to read (and no loop over a claimed row count)
  if (visit_native_rows(bytes, l, r0, h, [&](const auto& m) { dest = m.template cast<S>(); })) return;
  const unsigned char* data = bytes + l.data_offset;
  for (std::int64_t i = 0; i < h; ++i) {
    for (std::int64_t j = 0; j < l.cols; ++j) {
      const std::size_t k = l.fortran ? std::size_t(r0 + i) + l.fortran_offset[std::size_t(j)]
                                      : std::size_t(r0 + i) * std::size_t(l.cols) + std::size_t(j);
      const unsigned char* p = data + k * l.item;
      dest(Eigen::Index(i), Eigen::Index(j)) =
          l.item == 2   ? S(detail::half_to_float(detail::read_value<std::uint16_t>(p, l.swap)))
          : l.item == 4 ? S(detail::read_value<float>(p, l.swap))
                        : S(detail::read_value<double>(p, l.swap));
    }
  }
}

/// Parses the bytes of a whole .npy file. Throws cka::npy::error (see the file comment).
inline array parse(const unsigned char* bytes, std::size_t size) {
  const layout l = describe(bytes, size);
  array out;
  out.shape = l.shape;
  out.float32 = l.item == 4;
  out.values.resize(Eigen::Index(l.rows), Eigen::Index(l.cols));
  read_rows(bytes, l, 0, l.rows, out.values);
  return out;
}

namespace detail {
/// The bytes of a regular file. Throws cka::npy::error naming the path.
inline std::vector<unsigned char> read_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw error(path + ": cannot open the file");
  if (!std::filesystem::is_regular_file(status)) throw error(path + ": not a regular file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw error(path + ": cannot open the file");
  const std::streamoff size = in.tellg();
  if (size < 0) throw error(path + ": cannot read the file");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) throw error(path + ": cannot read the file");
  return bytes;
}
}  // namespace detail

/// Loads a .npy file. Throws cka::npy::error with a message that starts with the path.
inline array load(const std::string& path) {
  const std::vector<unsigned char> bytes = detail::read_file(path);
  try {
    return parse(bytes.data(), bytes.size());
  } catch (const error& e) {
    throw error(path + ": " + e.what());
  }
}

/// Loads a 1-D .npy array of integers (any width, signed or unsigned, either byte order) — e.g. the row
/// indices np.save(f, np.arange(...)) writes. Throws cka::npy::error naming the path for another dtype or
/// shape, or a value beyond the int64 range.
inline std::vector<std::int64_t> load_indices(const std::string& path) {
  const std::vector<unsigned char> bytes = detail::read_file(path);
  try {
    const layout l = detail::describe_any(bytes.data(), bytes.size(), true);
    if (l.kind != 'i' && l.kind != 'u') detail::fail("the indices must be integers, not floats");
    if (l.shape.size() != 1) detail::fail("the indices must be a 1-D array");
    std::vector<std::int64_t> out(std::size_t(l.rows));
    for (std::size_t k = 0; k < out.size(); ++k) {
      unsigned char buf[8] = {};
      const unsigned char* p = bytes.data() + l.data_offset + k * l.item;
      for (std::size_t b = 0; b < l.item; ++b) buf[b] = l.swap ? p[l.item - 1 - b] : p[b];
      std::uint64_t u = 0;  // native order, widened
      if (detail::little_endian_host()) {
        for (std::size_t b = 0; b < l.item; ++b) u |= std::uint64_t(buf[b]) << (8 * b);
      } else {
        for (std::size_t b = 0; b < l.item; ++b) u = (u << 8) | buf[b];
      }
      const bool negative = l.kind == 'i' && l.item < 8 && (u >> (8 * l.item - 1)) & 1u;
      if (negative) u |= ~std::uint64_t(0) << (8 * l.item);  // sign extension
      if (l.kind == 'u' && u > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
        detail::fail("index " + std::to_string(k) + " is beyond the int64 range");
      }
      std::int64_t v;
      std::memcpy(&v, &u, 8);
      out[k] = v;
    }
    return out;
  } catch (const error& e) {
    throw error(path + ": " + e.what());
  }
}

/// Writes m (rows × columns) as a little-endian float64 (or float32) C-order .npy file of shape
/// (rows, columns). Throws cka::npy::error if the file cannot be written.
template <class Derived>
void save(const std::string& path, const Eigen::MatrixBase<Derived>& m, bool as_float32 = false) {
  std::ostringstream h;
  h << "{'descr': '" << (as_float32 ? "<f4" : "<f8") << "', 'fortran_order': False, 'shape': (" << m.rows()
    << ", " << m.cols() << "), }";
  std::string header = h.str();
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) throw error(path + ": cannot open the file for writing");
  const unsigned char prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(header.size() & 0xff),
                                    static_cast<unsigned char>(header.size() >> 8)};
  out.write(reinterpret_cast<const char*>(prefix), 10);
  out.write(header.data(), std::streamsize(header.size()));
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      unsigned char buf[8];
      const double v = static_cast<double>(m(i, j));
      const float f = static_cast<float>(v);
      const unsigned char* src = as_float32 ? reinterpret_cast<const unsigned char*>(&f) : reinterpret_cast<const unsigned char*>(&v);
      const std::size_t w = as_float32 ? 4 : 8;
      for (std::size_t k = 0; k < w; ++k) buf[k] = detail::little_endian_host() ? src[k] : src[w - 1 - k];
      out.write(reinterpret_cast<const char*>(buf), std::streamsize(w));
    }
  if (!out) throw error(path + ": write failed");
}

}  // namespace cka::npy
