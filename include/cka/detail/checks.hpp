#pragma once
// Private: argument checks that throw cka::invalid_argument / cka::domain_error with the caller's name.

#include <cka/detail/fail.hpp>
#include <cka/detail/ratio.hpp>
#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace cka::detail {

/// The largest |x_ij| of a block; NaN where the block holds one (for floating-point scalars).
template <class X>
typename X::Scalar largest_magnitude(const X& x) {
  if constexpr (std::is_floating_point_v<typename X::Scalar>) {
    return x.cwiseAbs().template maxCoeff<Eigen::PropagateNaN>();
  } else {
    return x.cwiseAbs().maxCoeff();
  }
}

/// The largest |x_ij| of x (0 when x is empty), not finite where x holds a NaN or an infinity: one vectorised
/// scan along the storage order — the whole of it where it is contiguous, else line by line, stopping at the
/// first line that is not finite (Eigen's allFinite walks a whole row-major view column by column, and does
/// not vectorise). For floating-point scalars.
template <class M>
typename M::Scalar scanned_magnitude(const M& x) {
  using S = typename M::Scalar;
  if (x.size() == 0) return S(0);
  if constexpr (bool(Eigen::internal::traits<M>::Flags & Eigen::DirectAccessBit)) {
    // Contiguous storage (a matrix, or a view without gaps): one line, however short its rows or columns.
    if (x.innerStride() == 1 && (x.outerStride() == x.innerSize() || x.outerSize() == 1)) {
      return largest_magnitude(Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, 1>>(x.data(), x.size()));
    }
  }
  S top(0);
  const auto take = [&](const auto& line) {
    const S m = largest_magnitude(line);
    const bool finite = m - m == S(0);
    top = finite ? std::max(top, m) : m;
    return finite;
  };
  if constexpr (M::IsRowMajor) {
    for (Eigen::Index i = 0; i < x.rows(); ++i)
      if (!take(x.row(i))) break;
  } else {
    for (Eigen::Index j = 0; j < x.cols(); ++j)
      if (!take(x.col(j))) break;
  }
  return top;
}

/// Whether every entry of x is finite (scanned_magnitude for floating-point scalars).
template <class M>
bool all_finite(const M& x) {
  using S = typename M::Scalar;
  if constexpr (std::is_floating_point_v<S>) {
    const S m = scanned_magnitude(x);
    return m - m == S(0);
  } else {
    return bool(x.allFinite());
  }
}

/// Throws unless every entry of x is finite (all_finite); the message names the first offending entry,
/// located only on failure.
template <class M>
void require_finite(const char* fn, const char* name, const M& x) {
  if (all_finite(x)) return;
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      if (!is_finite_value(x(i, j))) {
        fail_argument(fn, name, "(", i, ", ", j, ") = ", x(i, j), " is not finite");
      }
    }
  }
}

/// require_finite and safe_scale<A> in one pass over x (scanned_magnitude), and only where it is not finite
/// a second scan that names the first offending entry.
template <class A, class M>
A finite_safe_scale(const char* fn, const char* name, const M& x) {
  using S = typename M::Scalar;
  if constexpr (!std::is_floating_point_v<S>) {
    require_finite(fn, name, x);
    return safe_scale<A>(x);
  } else {
    if (x.size() == 0) return A(1);
    const S top = scanned_magnitude(x);
    if (!(top - top == S(0))) require_finite(fn, name, x);  // throws, naming the entry
    return safe_scale_for<A>(A(top));
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

/// Throws unless k is a square, finite, symmetric matrix (its largest asymmetry |k_ij − k_ji| within √ε of
/// its largest magnitude; the message names the most asymmetric pair); returns the largest magnitude of its
/// lower triangle (the matrix's, to √ε), the argument of safe_scale_for. One pass over tile pairs (I, J)
/// and (J, I), both in cache (unlike a walk of k(j, i)), strips of tile columns on the OpenMP threads: the
/// difference of the two tiles is NaN or ±Inf where either holds a non-finite entry, which is then located
/// by a second scan (as the most asymmetric pair is, within its tile).
///
/// visit(g, i0, j0, block) sees each lower block (rows i0…, columns j0…, i0 ≥ j0; the diagonal block's
/// upper part included) of a finite strip: strips are taken gram_group_columns columns at a time by one
/// thread, in order, so a visitor that keeps one partial result per group g needs no lock and can add the
/// groups in order after the pass (centering.hpp's lower_row_sums: the row sums in the same read).
constexpr Eigen::Index gram_tile = 64, gram_group_columns = 2 * gram_tile;

struct no_visit {
  template <class B>
  void operator()(Eigen::Index, Eigen::Index, Eigen::Index, const B&) const {}
};

/// What require_symmetric_gram's walk of one strip of tile columns finds: the largest magnitude of its
/// finite tiles, its largest asymmetry |k_ij − k_ji| and where (the first in walking order), and whether
/// every tile was finite (the walk stops at the first that is not).
template <class T>
struct strip_verdict {
  T scale{0}, worst{0};
  Eigen::Index wi = 0, wj = 0;
  bool finite = true;
};

/// The walk of strip s (columns j0 = s·gram_tile …) down k's lower triangle, each tile against its mirror,
/// the finite tiles handed to visit(g, …). A function of its own, not the body of the OpenMP loop: in an
/// outlined parallel region the compiler reads the shared variables through pointers and the loop ran
/// 40% slower on one thread.
template <class M, class Visit>
strip_verdict<typename M::Scalar> check_strip(const M& k, Eigen::Index s, Eigen::Index g, Visit& visit) {
  using T = typename M::Scalar;
  constexpr Eigen::Index tile = gram_tile;
  constexpr bool by_rows = M::IsRowMajor;  // the lines walked: rows of a row-major k, else columns
  using line_array = Eigen::Array<T, tile, 1>;
  // On the heap: 64² entries of a multiprecision scalar exceed Eigen's limit for the stack.
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, by_rows ? Eigen::RowMajor : Eigen::ColMajor> flipped(tile, tile);
  strip_verdict<T> v;
  const Eigen::Index n = k.rows(), j0 = s * tile, w = std::min(tile, n - j0);
  for (Eigen::Index i0 = j0; i0 < n && v.finite; i0 += tile) {
    const Eigen::Index h = std::min(tile, n - i0);
    const auto lower = k.block(i0, j0, h, w);
    // The mirror block (J, I), transposed into `flipped` line by line along its unit stride (one
    // contiguous run per line, not a gather across all of its lines for each entry).
    const auto upper = k.block(j0, i0, w, h);
    if constexpr (by_rows) {
      for (Eigen::Index c = 0; c < w; ++c) flipped.col(c).head(h) = upper.row(c).transpose();
    } else {
      for (Eigen::Index t = 0; t < h; ++t) flipped.row(t).head(w) = upper.col(t).transpose();
    }
    // One walk along the lines of both, entrywise: the largest |k_ij| and |k_ij − k_ji| at each place
    // of a line, and d·0 summed, which is NaN where a difference d is not finite — an entry of either
    // block that is NaN or infinite, or a difference of finite entries that overflowed.
    const Eigen::Index lines = by_rows ? h : w, length = by_rows ? w : h;
    line_array top_at = line_array::Zero(), gap_at = line_array::Zero(), bad = line_array::Zero();
    for (Eigen::Index l = 0; l < lines; ++l) {
      const auto line = [&](const auto& b) {
        if constexpr (by_rows) {
          return b.row(l).head(length).transpose().array();
        } else {
          return b.col(l).head(length).array();
        }
      };
      const auto x = line(lower);
      const auto d = (x - line(flipped)).abs();
      top_at.head(length) = top_at.head(length).max(x.abs());
      gap_at.head(length) = gap_at.head(length).max(d);
      bad.head(length) += d * T(0);
    }
    v.finite = bad.head(length).sum() == T(0);
    const T gap = gap_at.head(length).maxCoeff();
    if (v.finite) {
      v.scale = std::max<T>(v.scale, top_at.head(length).maxCoeff());
      visit(g, i0, j0, lower);
    }
    if (!v.finite || gap > v.worst) {  // the first largest in walking order
      Eigen::Index ti = 0, tj = 0;
      // an overflowed difference (+Inf) between finite entries included
      v.worst = (lower - flipped.topLeftCorner(h, w)).cwiseAbs().maxCoeff(&ti, &tj);
      v.wi = i0 + ti;
      v.wj = j0 + tj;
    }
  }
  return v;
}

template <class M, class Visit = no_visit>
typename M::Scalar require_symmetric_gram(const char* fn, const char* name, const M& k, Visit&& visit = {}) {
  using T = typename M::Scalar;
  if (k.rows() != k.cols()) {
    fail_argument(fn, name, " is ", k.rows(), "x", k.cols(), "; a Gram matrix must be square");
  }
  if constexpr (!std::is_floating_point_v<T>) require_finite(fn, name, k);
  using std::sqrt;
  constexpr Eigen::Index per_group = gram_group_columns / gram_tile;
  const Eigen::Index n = k.rows(), strips = (n + gram_tile - 1) / gram_tile, groups = (strips + per_group - 1) / per_group;
  std::vector<strip_verdict<T>> per(static_cast<std::size_t>(strips));
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(Eigen::nbThreads()) if (n >= 256)
#endif
  for (Eigen::Index g = 0; g < groups; ++g) {
    for (Eigen::Index s = g * per_group; s < std::min(strips, (g + 1) * per_group); ++s) {
      per[static_cast<std::size_t>(s)] = check_strip(k, s, g, visit);
    }
  }
  const auto asymmetric = [&](Eigen::Index i, Eigen::Index j) {
    fail_argument(fn, name, " is not symmetric: (", i, ", ", j, ") = ", k(i, j), " but (", j, ", ", i, ") = ", k(j, i));
  };
  strip_verdict<T> all;
  for (const strip_verdict<T>& v : per) {  // in strip order: the serial walk's verdict
    if (!v.finite) {
      require_finite(fn, name, k);  // throws, naming the first non-finite entry
      asymmetric(v.wi, v.wj);       // else finite entries whose difference overflowed
    }
    all.scale = std::max<T>(all.scale, v.scale);
    if (v.worst > all.worst) all = {all.scale, v.worst, v.wi, v.wj, true};
  }
  if (all.worst > T(sqrt(Eigen::NumTraits<T>::epsilon())) * all.scale) asymmetric(all.wi, all.wj);
  return all.scale;
}

/// Throws cka::domain_error (overflow), naming fn, unless every squared distance in m is finite.
template <class M>
void require_finite_distances(const char* fn, const M& m) {
  if (m.allFinite()) return;
  fail_distance_overflow(fn);
}

}  // namespace cka::detail
