#pragma once
// Naive reference formulas, written straight from their definitions with explicit matrices (O(n³)):
// the fast paths of the library are tested against these. Templated on the scalar so the same formulas
// serve as a 50-digit oracle with boost::multiprecision.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <vector>

namespace oracle {

template <class T>
using mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

template <class T>
mat<T> centering_matrix(Eigen::Index n) {
  return mat<T>::Identity(n, n) - mat<T>::Constant(n, n, T(1) / T(n));
}

/// tr(K H L H) / (n−1)², H explicit.
template <class T>
T hsic_biased(const mat<T>& k, const mat<T>& l) {
  const Eigen::Index n = k.rows();
  const mat<T> h = centering_matrix<T>(n);
  const mat<T> p = k * h * l * h;
  return T(p.trace() / T((n - 1) * (n - 1)));
}

/// Song et al. 2012 eq. 5, three explicit terms on the zero-diagonal Grams.
template <class T>
T hsic_unbiased(const mat<T>& k, const mat<T>& l) {
  const Eigen::Index n = k.rows();
  mat<T> kt = k, lt = l;
  kt.diagonal().setZero();
  lt.diagonal().setZero();
  const mat<T> one = mat<T>::Ones(n, 1);
  const T t1 = (kt * lt).trace();
  const T t2 = T(kt.sum() * lt.sum() / T((n - 1) * (n - 2)));
  const T t3 = T((one.transpose() * kt * lt * one)(0, 0) * T(2) / T(n - 2));
  return T((t1 + t2 - t3) / T(n * (n - 3)));
}

template <class T>
T hsic(const mat<T>& k, const mat<T>& l, bool unbiased) {
  return unbiased ? hsic_unbiased(k, l) : hsic_biased(k, l);
}

template <class T>
T cka(const mat<T>& k, const mat<T>& l, bool unbiased) {
  using std::sqrt;
  return T(hsic(k, l, unbiased) / sqrt(T(hsic(k, k, unbiased) * hsic(l, l, unbiased))));
}

template <class T>
mat<T> gram_linear(const mat<T>& x) {
  return x * x.transpose();
}

template <class T>
mat<T> squared_distances(const mat<T>& x) {
  const Eigen::Index n = x.rows();
  mat<T> d(n, n);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) d(i, j) = (x.row(i) - x.row(j)).squaredNorm();
  return d;
}

/// NumPy's median: sort, take the middle value or the mean of the two middle values.
template <class T>
T numpy_median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  const std::size_t c = v.size();
  return c % 2 ? v[c / 2] : T((v[c / 2 - 1] + v[c / 2]) / T(2));
}

/// Median of all n² squared distances (diagonal included) or of the pairs i < j.
template <class T>
T median_sq(const mat<T>& d, bool all_pairs) {
  std::vector<T> v;
  for (Eigen::Index i = 0; i < d.rows(); ++i)
    for (Eigen::Index j = 0; j < d.cols(); ++j)
      if (all_pairs || i < j) v.push_back(d(i, j));
  return numpy_median(v);
}

/// exp(−d / (2σ²)) entrywise.
template <class T>
mat<T> gram_rbf(const mat<T>& x, const T& sigma2) {
  using std::exp;
  const mat<T> d = squared_distances(x);
  return d.unaryExpr([&](const T& v) { return T(exp(T(-v / (T(2) * sigma2)))); });
}

template <class T>
mat<T> gram_poly(const mat<T>& x, int degree, const T& gamma, const T& coef0) {
  using std::pow;
  const mat<T> g = gram_linear(x);
  return g.unaryExpr([&](const T& v) { return T(pow(T(gamma * v + coef0), degree)); });
}

/// Squared MMD from explicit double sums over the three kernel blocks.
template <class T, class F>
T mmd2(const mat<T>& x, const mat<T>& y, F k, bool unbiased) {
  const Eigen::Index m = x.rows(), n = y.rows();
  T sxx(0), syy(0), sxy(0);
  for (Eigen::Index i = 0; i < m; ++i)
    for (Eigen::Index j = 0; j < m; ++j)
      if (!unbiased || i != j) sxx += k(x.row(i), x.row(j));
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j)
      if (!unbiased || i != j) syy += k(y.row(i), y.row(j));
  for (Eigen::Index i = 0; i < m; ++i)
    for (Eigen::Index j = 0; j < n; ++j) sxy += k(x.row(i), y.row(j));
  const T px = unbiased ? T(m * (m - 1)) : T(m * m);
  const T py = unbiased ? T(n * (n - 1)) : T(n * n);
  return T(sxx / px + syy / py - T(2) * sxy / T(m * n));
}

}  // namespace oracle
