#pragma once
// Private: argument checks that throw cka::invalid_argument / cka::domain_error with the caller's name.

#include <cka/detail/fail.hpp>
#include <cka/detail/ratio.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

namespace cka::detail {

/// Throws unless every entry of x is finite; the message names the first offending entry.
template <class M>
void require_finite(const char* fn, const char* name, const M& x) {
  // Vectorised scan along the storage order (Eigen's allFinite on a whole row-major view walks it
  // column by column, 20x slower); the culprit is located only on failure.
  bool finite = true;
  if constexpr (M::IsRowMajor) {
    for (Eigen::Index i = 0; i < x.rows() && finite; ++i) finite = x.row(i).allFinite();
  } else {
    for (Eigen::Index j = 0; j < x.cols() && finite; ++j) finite = x.col(j).allFinite();
  }
  if (finite) return;
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
/// |k_ij − k_ji| <= sqrt(eps)·max|k| for every pair (the message names the most asymmetric pair).
template <class M>
void require_symmetric_gram(const char* fn, const char* name, const M& k) {
  using T = typename M::Scalar;
  if (k.rows() != k.cols()) {
    fail_argument(fn, name, " is ", k.rows(), "x", k.cols(), "; a Gram matrix must be square");
  }
  require_finite(fn, name, k);
  using std::abs;
  using std::sqrt;
  const Eigen::Index n = k.rows();
  // One pass over tile pairs (I, J) and (J, I), both in cache (unlike a walk of k(j, i)), gathering the
  // largest |k_ij| and the largest asymmetry |k_ij − k_ji|; the culprit is located only on failure.
  constexpr Eigen::Index tile = 32;
  T scale(0), worst(0);
  Eigen::Index wi = 0, wj = 0;
  Eigen::Matrix<T, tile, tile> flipped;
  for (Eigen::Index j0 = 0; j0 < n; j0 += tile) {
    const Eigen::Index w = std::min(tile, n - j0);
    for (Eigen::Index i0 = j0; i0 < n; i0 += tile) {
      const Eigen::Index h = std::min(tile, n - i0);
      const auto lower = k.block(i0, j0, h, w);
      flipped.topLeftCorner(h, w) = k.block(j0, i0, w, h).transpose();
      scale = std::max<T>(scale, std::max<T>(lower.cwiseAbs().maxCoeff(), flipped.topLeftCorner(h, w).cwiseAbs().maxCoeff()));
      const T gap = (lower - flipped.topLeftCorner(h, w)).cwiseAbs().maxCoeff();
      if (gap > worst) {
        Eigen::Index ti, tj;
        (lower - flipped.topLeftCorner(h, w)).cwiseAbs().maxCoeff(&ti, &tj);
        worst = gap;
        wi = i0 + ti;
        wj = j0 + tj;
      }
    }
  }
  if (worst > T(sqrt(Eigen::NumTraits<T>::epsilon())) * scale) {
    fail_argument(fn, name, " is not symmetric: (", wi, ", ", wj, ") = ", k(wi, wj), " but (", wj, ", ", wi,
                  ") = ", k(wj, wi));
  }
}

/// Throws cka::domain_error (overflow), naming fn, unless every squared distance in m is finite.
template <class M>
void require_finite_distances(const char* fn, const M& m) {
  if (m.allFinite()) return;
  fail_distance_overflow(fn);
}

}  // namespace cka::detail
