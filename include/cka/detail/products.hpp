#pragma once
// Private: symmetric products through Eigen's GEMM, computing only the lower block triangle, and the
// centred Grams of linear CKA streamed over chunks so that no centred copy of a whole input is held.

#include <cka/centering.hpp>
#include <cka/detail/scalar.hpp>

#include <Eigen/Core>

#include <algorithm>

namespace cka::detail {

/// Lower triangle of g (p×p) += R·Rᵀ for R of size p×q. The triangle is covered by about six block
/// columns (width ≥ 128), each one GEMM so that Eigen's blocked, multithreaded kernel does the work:
/// p²q(1 + 1/6) flops instead of 2p²q. (Measured on 2 Zen 5 cores: 4–6 blocks beat both a full GEMM and
/// Eigen's rankUpdate, which runs single-threaded.)
template <class G, class M>
void add_lower_outer(G& g, const M& r) {
  const Eigen::Index p = r.rows();
  const Eigen::Index width = std::max<Eigen::Index>(128, ((p + 5) / 6 + 15) / 16 * 16);
  for (Eigen::Index j0 = 0; j0 < p; j0 += width) {
    const Eigen::Index w = std::min(width, p - j0);
    g.block(j0, j0, p - j0, w).noalias() += r.middleRows(j0, p - j0) * r.middleRows(j0, w).transpose();
  }
}

/// Copies the lower triangle of g onto its upper triangle.
template <class G>
void mirror_lower(G& g) {
  for (Eigen::Index j = 1; j < g.cols(); ++j) g.col(j).head(j) = g.row(j).head(j).transpose();
}

/// G = R·Rᵀ, full and symmetric, in scalar A.
template <class A, class M>
matrix<A> symmetric_outer(const M& r) {
  matrix<A> g = matrix<A>::Zero(r.rows(), r.rows());
  add_lower_outer(g, r);
  mirror_lower(g);
  return g;
}

/// 2^20 values (8 MiB of doubles): the size of the chunk buffers below. Measured on 2 Zen 5 cores, 4 MiB
/// chunks starve the GEMM (short depth) and 32 MiB ones pay for first-touch page faults.
constexpr Eigen::Index chunk_values = Eigen::Index(1) << 20;

/// K = Xc·Xcᵀ (n×n, full) with Xc the column-centred x, accumulated over chunks of columns: each chunk is
/// centred into a small reused buffer (a column's mean needs only that column), then added to K.
/// Cost n²d(1 + 1/6) flops; memory n² plus the buffer.
template <class A, class M>
matrix<A> centered_row_gram(const M& x, Eigen::Index buffer_values = chunk_values) {
  const Eigen::Index n = x.rows(), d = x.cols();
  const Eigen::Index chunk = std::min(d, std::max<Eigen::Index>(64, buffer_values / std::max<Eigen::Index>(n, 1)));
  matrix<A> k = matrix<A>::Zero(n, n);
  matrix<A> buf(n, chunk);
  for (Eigen::Index c0 = 0; c0 < d; c0 += chunk) {
    const Eigen::Index w = std::min(chunk, d - c0);
    center_columns_into(x.middleCols(c0, w), buf.leftCols(w));
    add_lower_outer(k, buf.leftCols(w));
  }
  mirror_lower(k);
  return k;
}

/// Z = [Xc Yc] (n×D) summarised without being formed: G = ZᵀZ (D×D, full) and, when asked, the squared row
/// norms kx, ky of Xc and Yc (the diagonals of the linear Grams, for the unbiased estimator).
template <class A>
struct feature_gram {
  matrix<A> g;
  vector<A> kx, ky;
};

/// Column means (and a 0/1 mask that zeroes constant columns exactly), then G accumulated over chunks of
/// rows, each centred into a small reused buffer. Cost nD²(1 + 1/6) flops; memory D² plus the buffer.
template <class A, class VX, class VY>
feature_gram<A> centered_feature_gram(const VX& x, const VY& y, bool row_norms,
                                      Eigen::Index buffer_values = chunk_values) {
  const Eigen::Index n = x.rows(), d1 = x.cols(), d2 = y.cols(), dd = d1 + d2;
  using row = Eigen::Matrix<A, 1, Eigen::Dynamic>;
  const row mx = x.template cast<A>().colwise().sum() / A(n);
  const row my = y.template cast<A>().colwise().sum() / A(n);
  const row keep_x = (x.colwise().minCoeff().array() < x.colwise().maxCoeff().array()).template cast<A>();
  const row keep_y = (y.colwise().minCoeff().array() < y.colwise().maxCoeff().array()).template cast<A>();

  feature_gram<A> out{matrix<A>::Zero(dd, dd), vector<A>(row_norms ? n : 0), vector<A>(row_norms ? n : 0)};
  const Eigen::Index chunk = std::min(n, std::max<Eigen::Index>(64, buffer_values / std::max<Eigen::Index>(dd, 1)));
  matrix<A> buf(chunk, dd);
  for (Eigen::Index r0 = 0; r0 < n; r0 += chunk) {
    const Eigen::Index h = std::min(chunk, n - r0);
    buf.topLeftCorner(h, d1) =
        ((x.middleRows(r0, h).template cast<A>().rowwise() - mx).array().rowwise() * keep_x.array()).matrix();
    buf.topRightCorner(h, d2) =
        ((y.middleRows(r0, h).template cast<A>().rowwise() - my).array().rowwise() * keep_y.array()).matrix();
    add_lower_outer(out.g, buf.topRows(h).transpose());
    if (row_norms) {
      out.kx.segment(r0, h) = buf.topLeftCorner(h, d1).rowwise().squaredNorm();
      out.ky.segment(r0, h) = buf.topRightCorner(h, d2).rowwise().squaredNorm();
    }
  }
  mirror_lower(out.g);
  return out;
}

}  // namespace cka::detail
