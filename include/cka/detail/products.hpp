#pragma once
// Private: the library's products — general ones and symmetric ones computing only the lower block
// triangle — through OpenBLAS in a build with it (detail/blas.hpp), Eigen's GEMM otherwise; and the
// centered Gram of a representation streamed over column chunks so that no centered copy of it is held;
// both Gram routines poll for an interrupt between chunks.

#include <cka/detail/blas.hpp>
#include <cka/detail/distances.hpp>
#include <cka/detail/interrupt.hpp>
#include <cka/detail/parallel.hpp>
#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <type_traits>

namespace cka::detail {

/// out = L·R (out sized to match; not aliasing L or R): one ?gemm call where the build has a BLAS and the
/// operands allow it (detail/blas.hpp), Eigen's product otherwise.
template <class O, class L, class R>
void product_into(O& out, const L& lhs, const R& rhs) {
  if (!blas_product(out, lhs, rhs)) out.noalias() = lhs * rhs;
}

/// out += L·R (not aliasing L or R): one ?gemm call where the build has a BLAS and the operands allow it
/// (detail/blas.hpp), Eigen's product otherwise.
template <class O, class L, class R>
void add_product(O& out, const L& lhs, const R& rhs) {
  if (!blas_product(out, lhs, rhs, true)) out.noalias() += lhs * rhs;
}

/// Lower triangle of g (p×p) += R·Rᵀ for R of size p×q (q may be 0): block columns of width 128 dealt to
/// the threads (OpenMP, largest first), each a single-threaded triangular product for its diagonal block
/// (?syrk in a build with a BLAS) and one GEMM for the part below it (add_product) — p²q flops (plus the
/// diagonal blocks' own diagonals) instead of 2p²q. Every block of g is written by one task, so the result
/// does not depend on the number of threads. Measured on 2 Zen 5 cores, counted as p²q: 47–76 GFLOP/s
/// with Eigen's products, 59–101 GFLOP/s with OpenBLAS's (p = 256 to 4096, q = 64 to 2048) — where one
/// threaded ?syrk call for the whole of g reaches 42–102 (slower than Eigen below p = 1024).
template <class G, class M>
void add_lower_outer(G& g, const M& r) {
  const Eigen::Index p = r.rows();
  if (r.cols() == 0) return;  // nothing to add (and Eigen's blocking heuristic divides by the depth)
  constexpr Eigen::Index width = 128;
  const Eigen::Index blocks = (p + width - 1) / width;
  auto block = [&](Eigen::Index b) {
    const Eigen::Index j0 = b * width, w = std::min(width, p - j0), below = p - j0 - w;
    auto diagonal = g.block(j0, j0, w, w);
    if (!blas_lower_outer(diagonal, r.middleRows(j0, w))) {
      diagonal.template triangularView<Eigen::Lower>() += r.middleRows(j0, w) * r.middleRows(j0, w).transpose();
    }
    if (below > 0) {
      auto under = g.block(j0 + w, j0, below, w);
      add_product(under, r.middleRows(j0 + w, below), r.middleRows(j0, w).transpose());
    }
  };
  // A single block runs outside any OpenMP region, threaded as the BLAS likes. Not in a region whose `if`
  // is false: that is still a region, a threaded BLAS inside it opens a nested team, and libgomp creates
  // and ends that team's threads on every call (measured: 2 thread creations per loss call, the sample
  // relation at B = 128, C = 1000 in float taking 4.5–5.8 ms instead of 1.5–2.7; docs/performance.md).
  if (blocks == 1) return block(0);
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(Eigen::nbThreads())
#endif
  for (Eigen::Index b = 0; b < blocks; ++b) {
    one_thread_inside_region();
    block(b);
  }
}

/// Copies the lower triangle of g onto its upper triangle, tile by tile so that reads and writes stay in
/// cache (a row-by-row copy strides through memory and costs as much as the GEMM at n = 4096). When the
/// columns lie a multiple of 64 values apart (n = 512, 1024, …), a tile's 64 columns fall into one cache set
/// and the transposing copy thrashes: each tile then goes through a small buffer, read and written column
/// by column (measured 1.7–4.7x faster at n = 512 to 4096; slower at other n, which keep the direct copy).
template <class G>
void mirror_lower(G& g) {
  using A = typename G::Scalar;
  constexpr Eigen::Index tile = 64;
  const Eigen::Index n = g.rows();
  const bool aliased = g.outerStride() % tile == 0;
  Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic> buffer(aliased ? tile : 0, aliased ? tile : 0);
  for (Eigen::Index j0 = 0; j0 < n; j0 += tile) {
    const Eigen::Index w = std::min(tile, n - j0);
    for (Eigen::Index j = 1; j < w; ++j) {  // the diagonal tile
      g.col(j0 + j).segment(j0, j) = g.row(j0 + j).segment(j0, j).transpose();
    }
    for (Eigen::Index i0 = j0 + w; i0 < n; i0 += tile) {
      const Eigen::Index h = std::min(tile, n - i0);
      if (aliased) {
        auto b = buffer.topLeftCorner(h, w);
        b = g.block(i0, j0, h, w);
        g.block(j0, i0, w, h) = b.transpose();
      } else {
        g.block(j0, i0, w, h) = g.block(i0, j0, h, w).transpose();
      }
    }
  }
}

/// Squared distances from inner products, in place: g_ij ← max(0, r_i + c_j − 2·g_ij) for squared row
/// norms r (rows of g) and c (columns), except where that value is too small to trust
/// (`unresolved_distance`, detail/distances.hpp): there g_ij ← direct(i, j), the distance summed from the
/// rows — exactly 0 for equal rows. With `same_rows` (rows and columns the same points: a full Gram or a
/// diagonal tile) the diagonal is 0. The one formula of the full Gram and of the tiles: one fused pass per
/// column, and O(d) per near-duplicate pair.
template <class G, class R, class C, class Direct>
void squared_distances_from_inner(G&& g, const R& r, const C& c, bool same_rows, Direct&& direct) {
  using A = typename std::decay_t<G>::Scalar;
  const Eigen::Index h = g.rows();
  if (h == 0) return;
  for (Eigen::Index j = 0; j < g.cols(); ++j) {
    const A cj = c(j);
    bool unresolved = false;
    A* col = &g.coeffRef(0, j);  // a column of a column-major matrix, map or block: contiguous
    const A* rows = &r.coeff(0);
    auto pass = [&](Eigen::Index i0, Eigen::Index i1) {  // the value and the check, vectorised
      int flag = 0;
      for (Eigen::Index i = i0; i < i1; ++i) {
        const A v = std::max(A(0), rows[i] + cj - A(2) * col[i]);
        col[i] = v;
        flag |= unresolved_distance(v, rows[i], cj);
      }
      unresolved = unresolved || flag;
    };
    if (same_rows && j < h) {
      pass(0, j);
      g(j, j) = A(0);
      pass(j + 1, h);
    } else {
      pass(0, h);
    }
    if (unresolved) {
      for (Eigen::Index i = 0; i < h; ++i)
        if ((!same_rows || i != j) && unresolved_distance<A>(g(i, j), r(i), cj)) g(i, j) = direct(i, j);
    }
  }
}

/// 2^20 values (8 MiB of doubles): the size of the chunk buffers below. Measured on 2 Zen 5 cores, 4 MiB
/// chunks starve the GEMM (short depth) and 32 MiB ones pay for first-touch page faults.
constexpr Eigen::Index chunk_values = Eigen::Index(1) << 20;

/// Columns in a chunk of a p-row matrix whose Gram is summed chunk by chunk: chunk_values values, and at
/// least 64 columns (a shorter depth starves the GEMM).
inline Eigen::Index chunk_columns(Eigen::Index p, Eigen::Index values = chunk_values) {
  return std::max<Eigen::Index>(64, values / std::max<Eigen::Index>(p, 1));
}

/// g = R·Rᵀ (g p×p, any contents before), full and symmetric, summed over chunks of R's columns
/// (chunk_columns: one chunk unless R is large) with a poll for an interrupt after each, so that a large
/// Gram is not one uninterruptible product.
template <class G, class M>
void symmetric_outer_into(G& g, const M& r) {
  const Eigen::Index p = r.rows(), q = r.cols();
  const Eigen::Index chunk = chunk_columns(p);
  g.setZero();
  for (Eigen::Index c0 = 0; c0 < q; c0 += chunk) {
    add_lower_outer(g, r.middleCols(c0, std::min(chunk, q - c0)));
    poll_interrupt();
  }
  mirror_lower(g);
  poll_interrupt();
}

/// The same Gram as a new matrix in scalar A.
template <class A, class M>
matrix<A> symmetric_outer(const M& r) {
  matrix<A> g(r.rows(), r.rows());
  symmetric_outer_into(g, r);
  return g;
}

/// A chunk buffer of scalar A with the storage order of the input it is filled from, so that the copy
/// and the statistics below walk memory in order whatever the input's layout.
template <class A, class M>
using chunk_buffer = Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, M::IsRowMajor ? Eigen::RowMajor : Eigen::ColMajor>;

/// Running column sums, minima and maxima over chunks of rows (minima and maxima to recognise constant
/// columns, which are then zeroed exactly so that zero variance gives exactly zero HSIC).
template <class A>
struct column_stats {
  using row = Eigen::Matrix<A, 1, Eigen::Dynamic>;
  row sum, lo, hi;
  Eigen::Index count = 0;

  template <class B>
  void add(const B& b) {
    if (count == 0) {
      sum = row::Zero(b.cols());
      lo = b.row(0);
      hi = b.row(0);
    }
    if constexpr (B::IsRowMajor) {
      for (Eigen::Index i = 0; i < b.rows(); ++i) {
        sum += b.row(i);
        lo = lo.cwiseMin(b.row(i));
        hi = hi.cwiseMax(b.row(i));
      }
    } else {
      // The same order as the row-major walk — each column summed row after row — so that the bits do not
      // depend on the layout; eight columns side by side keep eight independent sums in flight.
      constexpr Eigen::Index group = 8;
      const Eigen::Index m = b.rows(), d = b.cols();
      Eigen::Index j0 = 0;
      for (; j0 + group <= d; j0 += group) {
        A s[group], l[group], h[group];
        for (Eigen::Index k = 0; k < group; ++k) s[k] = sum(j0 + k), l[k] = lo(j0 + k), h[k] = hi(j0 + k);
        for (Eigen::Index i = 0; i < m; ++i) {
          for (Eigen::Index k = 0; k < group; ++k) {
            const A v = A(b.coeff(i, j0 + k));
            s[k] += v;
            l[k] = std::min(l[k], v);
            h[k] = std::max(h[k], v);
          }
        }
        for (Eigen::Index k = 0; k < group; ++k) sum(j0 + k) = s[k], lo(j0 + k) = l[k], hi(j0 + k) = h[k];
      }
      for (; j0 < d; ++j0) {
        for (Eigen::Index i = 0; i < m; ++i) {
          const A v = A(b.coeff(i, j0));
          sum(j0) += v;
          lo(j0) = std::min(lo(j0), v);
          hi(j0) = std::max(hi(j0), v);
        }
      }
    }
    count += b.rows();
  }
  row mean() const { return sum / A(count); }
  row keep() const { return (lo.array() < hi.array()).template cast<A>(); }  // 0 for a constant column
};

/// b ← (b − mean) with constant columns zeroed.
template <class B, class R>
void center_chunk(B&& b, const R& mean, const R& keep) {
  b = ((b.rowwise() - mean).array().rowwise() * keep.array()).matrix();
}

/// out = x with centered columns (constant ones exactly zero), for out of x's size and scalar A (a matrix
/// or a map over the caller's memory).
template <class M, class O>
void centered_columns_into(const M& x, O&& out) {
  using A = typename std::decay_t<O>::Scalar;
  if constexpr (M::IsRowMajor) {
    // The statistics along x's rows (vector sums in row order: the same bits wherever x lies), then one
    // pass that writes out; for a column-major x they are read from the copy, a column at a time.
    if (x.rows() > 0) {
      column_stats<A> stats;
      stats.add(x.template cast<A>());
      out = ((x.template cast<A>().rowwise() - stats.mean()).array().rowwise() * stats.keep().array()).matrix();
      return;
    }
  }
  out = x.template cast<A>();
  if (out.rows() == 0) return;
  column_stats<A> stats;
  stats.add(out);
  center_chunk(out, stats.mean(), stats.keep());
}

/// x with centered columns (constant ones exactly zero), as a new column-major matrix of scalar A.
template <class A, class M>
matrix<A> centered_columns(const M& x) {
  matrix<A> b(x.rows(), x.cols());
  centered_columns_into(x, b);
  return b;
}

/// K = Xc·Xcᵀ (n×n, full) with Xc the column-centered x, accumulated over chunks of columns: each chunk is
/// copied into a small reused buffer and centered there (a column's mean needs only that column), then
/// added to K, and an interrupt polled. Cost n²d(1 + 1/6) flops; memory n² plus the buffer.
template <class A, class M>
matrix<A> centered_row_gram(const M& x, Eigen::Index buffer_values = chunk_values) {
  const Eigen::Index n = x.rows(), d = x.cols();
  const Eigen::Index chunk = std::min(d, chunk_columns(n, buffer_values));
  matrix<A> k = matrix<A>::Zero(n, n);
  chunk_buffer<A, M> buf(n, chunk);
  for (Eigen::Index c0 = 0; c0 < d; c0 += chunk) {
    const Eigen::Index w = std::min(chunk, d - c0);
    auto b = buf.leftCols(w);
    b = x.middleCols(c0, w).template cast<A>();
    column_stats<A> stats;
    stats.add(b);
    center_chunk(b, stats.mean(), stats.keep());
    add_lower_outer(k, b);
    poll_interrupt();
  }
  mirror_lower(k);
  poll_interrupt();
  return k;
}

}  // namespace cka::detail
