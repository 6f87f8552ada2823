#pragma once
// Private: the centering of an n×n matrix for each estimator, in O(n²) without forming H = I − 11ᵀ/n, and
// the centered sums of two Grams. One formula, C_ij = P_ij − u_i − v_j + c, serves the on-the-fly sums and
// the dense centered copy.

#include <cka/detail/checks.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <type_traits>
#include <utility>
#include <vector>

namespace cka::detail {

/// Centering of an n×n matrix P written as  C_ij = P_ij − u_i − v_j + c  (i ≠ j, and i = j for the biased
/// estimator; the unbiased estimator's diagonal is zero):
///   biased:   u = P1/n (row means), v = 1ᵀP/n (column means), c = 1ᵀP1/n²        (C = HPH)
///   unbiased: u = v = P̃1/(n−2), c = 1ᵀP̃1/((n−1)(n−2))  (U-centering of P̃ = P − diag P; P symmetric)
template <class A>
struct centering {
  vector<A> u, v;
  A c;
};

/// The centering of a symmetric n×n matrix from its row sums r and its diagonal (used by the unbiased
/// estimator only). O(n).
template <class A, class D>
centering<A> centering_from_sums(vector<A> r, const D& diagonal, estimator est) {
  const A nn = A(r.size());
  if (est == estimator::biased) {
    const A s = r.sum();
    vector<A> u = r / nn;
    return {u, u, A(s / (nn * nn))};
  }
  r -= diagonal;
  const A s = r.sum();
  vector<A> u = r / A(nn - 2);
  return {u, u, A(s / ((nn - 1) * (nn - 2)))};
}

/// The row sums of a symmetric n×n matrix from its lower triangle, in A, fed block by block in the order
/// of require_symmetric_gram's walk (its visitor during the checks' read, or row_sums_of's own walk): the
/// columns of group g (gram_group_columns of them, from g0 = g·gram_group_columns) add their lower blocks'
/// column sums and — below the diagonal — row sums into rows g0 … n−1 of the group's own partial; total()
/// adds the partials in group order: the same bits on any number of threads, and by either walk.
/// Memory: about n²/(2·gram_group_columns) values of A.
template <class A>
class lower_row_sums {
 public:
  explicit lower_row_sums(Eigen::Index n) : n_(n) {
    const Eigen::Index groups = (n + gram_group_columns - 1) / gram_group_columns;
    Eigen::Index size = 0;
    for (Eigen::Index g = 0; g < groups; ++g) {
      start_.push_back(size);
      size += n - g * gram_group_columns;
    }
    part_ = vector<A>::Zero(size);
  }

  template <class B>
  void operator()(Eigen::Index g, Eigen::Index i0, Eigen::Index j0, const B& block) {
    A* row = part_.data() + start_[static_cast<std::size_t>(g)] - g * gram_group_columns;  // row[i]: row i's partial
    const Eigen::Index h = block.rows(), w = block.cols();
    if (i0 == j0) {  // the diagonal block: its lower triangle, each entry below the diagonal for row and column
      for (Eigen::Index c = 0; c < w; ++c) {
        row[j0 + c] += A(block(c, c));
        for (Eigen::Index t = c + 1; t < h; ++t) {
          const A a = A(block(t, c));
          row[j0 + c] += a;
          row[i0 + t] += a;
        }
      }
      return;
    }
    if constexpr (std::is_same_v<typename B::Scalar, A>) {
      Eigen::Map<vector<A>>(row + j0, w) += block.colwise().sum().transpose();
      Eigen::Map<vector<A>>(row + i0, h) += block.rowwise().sum();
    } else {  // converted once (a float Gram's sums in double), then summed both ways
      Eigen::Matrix<A, gram_tile, gram_tile> wide;
      auto in_a = wide.topLeftCorner(h, w);
      in_a = block.template cast<A>();
      Eigen::Map<vector<A>>(row + j0, w) += in_a.colwise().sum().transpose();
      Eigen::Map<vector<A>>(row + i0, h) += in_a.rowwise().sum();
    }
  }

  /// The row sums: the groups' partials added in group order.
  vector<A> total() const {
    vector<A> r = vector<A>::Zero(n_);
    for (std::size_t g = 0; g < start_.size(); ++g) {
      const Eigen::Index g0 = Eigen::Index(g) * gram_group_columns;
      r.tail(n_ - g0) += part_.segment(start_[g], n_ - g0);
    }
    return r;
  }

 private:
  Eigen::Index n_;
  std::vector<Eigen::Index> start_;
  vector<A> part_;
};

/// The row sums of a symmetric K from its lower triangle, in A: the blocks of require_symmetric_gram's walk
/// (groups on the OpenMP threads) summed by lower_row_sums, so the bits equal those of the checks' read.
/// O(n²) reads of half of K.
template <class A, class M>
vector<A> row_sums_of(const M& k) {
  const Eigen::Index n = k.rows(), groups = (n + gram_group_columns - 1) / gram_group_columns;
  lower_row_sums<A> sums(n);
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(Eigen::nbThreads()) if (n >= 256)
#endif
  for (Eigen::Index g = 0; g < groups; ++g) {
    const Eigen::Index end = std::min(n, (g + 1) * gram_group_columns);
    for (Eigen::Index j0 = g * gram_group_columns; j0 < end; j0 += gram_tile) {
      const Eigen::Index w = std::min(gram_tile, n - j0);
      for (Eigen::Index i0 = j0; i0 < n; i0 += gram_tile) sums(g, i0, j0, k.block(i0, j0, std::min(gram_tile, n - i0), w));
    }
  }
  return sums.total();
}

/// The centering of a symmetric K, from the row sums of its lower triangle (row_sums_of), in A. O(n²).
template <class A, class M>
centering<A> centering_of(const M& k, estimator est) {
  return centering_from_sums<A>(row_sums_of<A>(k), k.diagonal().template cast<A>(), est);
}

/// The biased centering HPH of any square P (not necessarily symmetric). O(n²).
template <class A>
centering<A> centering_of_general(const matrix<A>& p) {
  const A nn = A(p.rows());
  return {p.rowwise().sum() / nn, p.colwise().sum().transpose() / nn, A(p.sum() / (nn * nn))};
}

/// out = C(P) under the centering c (computed from P): C_ij = P_ij − u_i − v_j + c, the diagonal zero for
/// the unbiased estimator, converted to out's scalar. One pass (each entry read and written once) in square
/// tiles of gram_tile, strips of them on the OpenMP threads; a P stored in the other order than out is
/// transposed in 16×16 blocks of a tile (convert_into). out may be P itself (each entry depends on itself
/// only).
template <class A, class M, class Out>
void write_centered(const M& p, const centering<A>& c, estimator est, Out& out) {
  const Eigen::Index n = p.rows(), blocks = (n + gram_tile - 1) / gram_tile;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(Eigen::nbThreads()) if (n >= 256)
#endif
  for (Eigen::Index b = 0; b < blocks; ++b) {
    const Eigen::Index j0 = b * gram_tile, w = std::min(gram_tile, n - j0);
    const vector<A> shift = c.v.segment(j0, w).array() - c.c;
    for (Eigen::Index i0 = 0; i0 < n; i0 += gram_tile) {
      const Eigen::Index h = std::min(gram_tile, n - i0);
      auto tile = out.block(i0, j0, h, w);
      convert_into(tile, (p.block(i0, j0, h, w).template cast<A>().colwise() - c.u.segment(i0, h)).rowwise() -
                             shift.transpose());
    }
    if (est == estimator::unbiased) out.block(j0, j0, w, w).diagonal().setZero();
  }
}

/// Dense centered copy of P under the centering c (computed from P), in P's memory. O(n²).
template <class A>
matrix<A> centered_dense(matrix<A> p, const centering<A>& c, estimator est) {
  write_centered<A>(p, c, est, p);
  return p;
}

/// Dense centered copy of a symmetric P: HPH (biased) or the U-centered P̃ (unbiased). O(n²).
template <class A>
matrix<A> centered_dense(matrix<A> p, estimator est) {
  const centering<A> c = centering_of<A>(p, est);
  return centered_dense<A>(std::move(p), c, est);
}

/// Centered sums of two symmetric Grams: kl = Σ C(K)∘C(L), kk = Σ C(K)², ll = Σ C(L)², and the raw
/// squared norms ref_k = Σ K'², ref_l = Σ L'² (K' = K, or K̃ for the unbiased estimator). Reads the lower
/// triangles only, columns on the OpenMP threads; O(n²) time, O(n) extra memory per thread.
/// ck, cl: K's and L's centerings (from their row sums: centering_of, or the checks' pass).
template <class A, class MK, class ML>
centered_sums<A> centered_products(const MK& k, const ML& l, estimator est, const centering<A>& ck, const centering<A>& cl) {
  const Eigen::Index n = k.rows();
  const bool keep_diagonal = est == estimator::biased;
  // Each column's five sums, on the OpenMP threads, then added in column order: the same bits on any
  // number of threads.
  matrix<A> part(5, n);
#if defined(_OPENMP)
#pragma omp parallel num_threads(Eigen::nbThreads()) if (n >= 256)
#endif
  {
    vector<A> a(n), b(n), rk(n), rl(n);
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 16)
#endif
    for (Eigen::Index j = 0; j < n; ++j) {
      const Eigen::Index m = n - j;
      rk.head(m) = lower_segment(k, j).template cast<A>();
      rl.head(m) = lower_segment(l, j).template cast<A>();
      if (!keep_diagonal) {
        rk(0) = A(0);
        rl(0) = A(0);
      }
      a.head(m) = rk.head(m) - ck.u.tail(m);
      a.head(m).array() -= A(ck.v(j) - ck.c);
      b.head(m) = rl.head(m) - cl.u.tail(m);
      b.head(m).array() -= A(cl.v(j) - cl.c);
      if (!keep_diagonal) {
        a(0) = A(0);
        b(0) = A(0);
      }
      // Off-diagonal entries appear twice in the full sum, the diagonal once.
      part(0, j) = A(2) * a.head(m).dot(b.head(m)) - a(0) * b(0);
      part(1, j) = A(2) * a.head(m).squaredNorm() - a(0) * a(0);
      part(2, j) = A(2) * b.head(m).squaredNorm() - b(0) * b(0);
      part(3, j) = A(2) * rk.head(m).squaredNorm() - rk(0) * rk(0);
      part(4, j) = A(2) * rl.head(m).squaredNorm() - rl(0) * rl(0);
    }
  }
  centered_sums<A> s{A(0), A(0), A(0), A(0), A(0)};
  for (Eigen::Index j = 0; j < n; ++j) {
    s.kl += part(0, j);
    s.kk += part(1, j);
    s.ll += part(2, j);
    s.ref_k += part(3, j);
    s.ref_l += part(4, j);
  }
  return s;
}

/// The same, each centering from its own pass over the lower triangle (centering_of).
template <class A, class MK, class ML>
centered_sums<A> centered_products(const MK& k, const ML& l, estimator est) {
  return centered_products<A>(k, l, est, centering_of<A>(k, est), centering_of<A>(l, est));
}

}  // namespace cka::detail
