#pragma once
// Private: argument checks that throw cka::invalid_argument / cka::domain_error with the caller's name.

#include <cka/errors.hpp>

#include <Eigen/Core>

#include <cmath>
#include <sstream>
#include <string>

namespace cka::detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << parts);
  return os.str();
}

template <class... Parts>
[[noreturn]] void fail_argument(const char* fn, const Parts&... parts) {
  throw invalid_argument(concat("cka::", fn, ": ", parts...));
}

template <class... Parts>
[[noreturn]] void fail_domain(const char* fn, const Parts&... parts) {
  throw domain_error(concat("cka::", fn, ": ", parts...));
}

template <class T>
bool is_finite_value(const T& v) {
  return v - v == T(0);  // false for NaN and +-Inf; works for every scalar type used here
}

/// Throws unless every entry of x is finite; the message names the first offending entry.
template <class M>
void require_finite(const char* fn, const char* name, const M& x) {
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      if (!is_finite_value(x(i, j))) {
        fail_argument(fn, name, "(", i, ", ", j, ") = ", x(i, j), " is not finite");
      }
    }
  }
}

/// Throws unless x and y have the same number of rows (samples).
template <class MX, class MY>
void require_same_samples(const char* fn, const char* xname, const MX& x, const char* yname, const MY& y) {
  if (x.rows() != y.rows()) {
    fail_argument(fn, xname, " has ", x.rows(), " samples (rows) but ", yname, " has ", y.rows(),
                  "; both representations must hold the same samples");
  }
}

/// Throws unless there are at least `needed` samples.
inline void require_samples(const char* fn, const char* name, Eigen::Index n, Eigen::Index needed,
                            const char* why) {
  if (n < needed) {
    fail_argument(fn, name, " has ", n, " samples but ", why, " needs at least ", needed);
  }
}

/// Throws unless k is a square, finite matrix, symmetric up to rounding:
/// |k_ij - k_ji| <= sqrt(eps) * max|k| for every pair.
template <class M>
void require_symmetric_gram(const char* fn, const char* name, const M& k) {
  using T = typename M::Scalar;
  if (k.rows() != k.cols()) {
    fail_argument(fn, name, " is ", k.rows(), "x", k.cols(), "; a Gram matrix must be square");
  }
  require_finite(fn, name, k);
  using std::abs;
  using std::sqrt;
  const T scale = k.size() == 0 ? T(0) : T(k.cwiseAbs().maxCoeff());
  const T tol = T(sqrt(Eigen::NumTraits<T>::epsilon())) * scale;
  for (Eigen::Index j = 0; j < k.cols(); ++j) {
    for (Eigen::Index i = j + 1; i < k.rows(); ++i) {
      if (T(abs(T(k(i, j) - k(j, i)))) > tol) {
        fail_argument(fn, name, " is not symmetric: (", i, ", ", j, ") = ", k(i, j), " but (", j, ", ", i,
                      ") = ", k(j, i));
      }
    }
  }
}

}  // namespace cka::detail
