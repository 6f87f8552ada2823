#pragma once
// Private: scalar promotion, matrix aliases and zero-copy views of Eigen inputs.

#include <Eigen/Core>

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

}  // namespace detail
}  // namespace cka
