#pragma once
// Private: scalar promotion, matrix aliases and zero-copy views of Eigen inputs.

#include <cka/detail/scale.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace cka {

/// Dense column-major matrix and vector of scalar T, the types the library returns.
template <class T>
using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <class T>
using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

/// The type in which inputs of scalar T are accumulated: double for float, T itself otherwise
/// (double, long double, boost::multiprecision numbers).
template <class T>
struct accumulator {
  static_assert(!std::is_integral_v<T>,
                "cka: integer matrices are not supported (CKA is not an integer; the result would be truncated). "
                "Convert first, e.g. X.cast<double>().");
  using type = T;
};
template <>
struct accumulator<float> {
  using type = double;
};
template <class T>
using accumulator_t = typename accumulator<T>::type;

namespace detail {

/// A read-only view of any dense Eigen expression with the expression's storage order. Matrices, Maps and
/// blocks with unit inner stride bind without a copy; other expressions are evaluated once into the view.
template <class Derived>
using view_t = Eigen::Ref<const Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic,
                                              Derived::IsRowMajor ? Eigen::RowMajor : Eigen::ColMajor>,
                          0, Eigen::OuterStride<>>;

/// The view itself when its scalar is already A, else a converted copy (float data promoted to double).
template <class A, class V>
decltype(auto) promote(const V& x) {
  if constexpr (std::is_same_v<typename V::Scalar, A>) {
    return (x);
  } else {
    return matrix<A>(x.template cast<A>());
  }
}

/// The power-of-two scale of a largest magnitude (detail/scale.hpp); 1 for scalars that are not floating
/// point (multiprecision numbers need none).
template <class A>
A safe_scale_for(A top) {
  if constexpr (!std::is_floating_point_v<A>) {
    return A(1);
  } else {
    return power_of_two_scale(top);
  }
}
template <class A, class M>
A safe_scale(const M& x) {
  return x.size() == 0 ? A(1) : safe_scale_for<A>(A(x.cwiseAbs().maxCoeff()));
}

/// x in A times its power-of-two scale s, as a new matrix: the rare path of magnitudes beyond 2^±200
/// (exact; callers take it only where s ≠ 1 and read x itself otherwise).
template <class A, class M>
matrix<A> scaled_copy(const M& x, A s) {
  return x.template cast<A>() * s;
}

/// Segment i >= j of column j of a symmetric matrix, read along its storage order (for a row-major matrix,
/// the same values by symmetry come from row j).
template <class M>
auto lower_segment(const M& k, Eigen::Index j) {
  const Eigen::Index len = k.rows() - j;
  if constexpr (M::IsRowMajor) {
    return k.row(j).tail(len).transpose();
  } else {
    return k.col(j).tail(len);
  }
}

/// out = src converted to out's scalar (src an expression of out's shape, a transpose included). Where the
/// two are stored in opposite orders, in 16×16 tiles: a plain pass would read one value per cache line
/// (0.47 against 0.06 ms for a 256×1000 double matrix into float here; 0.025 ms in the same order).
template <class Out, class Src>
void convert_into(Out& out, const Src& src) {
  using T = typename Out::Scalar;
  if constexpr (bool(Out::IsRowMajor) == bool(Src::IsRowMajor)) {
    out = src.template cast<T>();
  } else {
    constexpr Eigen::Index tile = 16;
    const Eigen::Index rows = out.rows(), cols = out.cols();
    for (Eigen::Index i = 0; i < rows; i += tile) {
      const Eigen::Index h = std::min(tile, rows - i);
      for (Eigen::Index j = 0; j < cols; j += tile) {
        const Eigen::Index w = std::min(tile, cols - j);
        out.block(i, j, h, w) = src.block(i, j, h, w).template cast<T>();
      }
    }
  }
}

}  // namespace detail
}  // namespace cka
