#pragma once
// Private: a representation's rows prepared for tiles (column-centered, scaled, row-major, with squared
// norms), the one routine that turns two tile rows into squared distances, and the team check that every
// member holds the same rows.

#include <cka/detail/checks.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/team.hpp>
#include <cka/detail/tiles/grid.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>

namespace cka::detail {

/// A representation prepared for tiles: column-centered features (times a power-of-two scale) and their
/// squared row norms.
template <class A>
struct tiled_rows {
  Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xc;  // a tile's rows are contiguous
  vector<A> norms;
  Eigen::Index rows() const { return xc.rows(); }
  Eigen::Index tiles() const { return (xc.rows() + tile_rows - 1) / tile_rows; }
};

/// How a representation's rows enter the tiles: column-centered (distances, the linear kernel), or as given
/// (the polynomial kernel, which is not translation invariant).
enum class row_form { centered, raw };

/// Rows × cols prepared for tiles from fill(block, c0, w), which writes columns c0 … c0+w−1 of the input
/// (converted to A) into a column-major block: 64 columns at a time, centered there as centered_columns
/// centers them (the same bits: a column's statistics are its own) unless `form` is raw, scaled and copied
/// into the row-major result — no full-size temporary beside it.
template <class A, class Fill>
tiled_rows<A> tiled_rows_from(Eigen::Index rows, Eigen::Index cols, A scale, Fill&& fill,
                              row_form form = row_form::centered) {
  tiled_rows<A> t;
  t.xc.resize(rows, cols);
  matrix<A> block;
  for (Eigen::Index c0 = 0; c0 < cols; c0 += 64) {
    const Eigen::Index w = std::min<Eigen::Index>(64, cols - c0);
    block.resize(rows, w);
    fill(block, c0, w);
    if (rows > 0 && form == row_form::centered) {
      column_stats<A> stats;
      stats.add(block);
      center_chunk(block, stats.mean(), stats.keep());
    }
    if (scale != A(1)) block *= scale;
    t.xc.middleCols(c0, w) = block;
  }
  t.norms = t.xc.rowwise().squaredNorm();
  return t;
}

/// One representation's rows.
template <class A, class V>
tiled_rows<A> tiled_rows_of(const V& x, A scale, row_form form = row_form::centered) {
  return tiled_rows_from<A>(
      x.rows(), x.cols(), scale,
      [&](matrix<A>& b, Eigen::Index c0, Eigen::Index w) { b = x.middleCols(c0, w).template cast<A>(); }, form);
}

/// A pooled sample's rows: X's over Y's (same width), centered with the pooled means unless `form` is raw.
template <class A, class VX, class VY>
tiled_rows<A> tiled_rows_of(const VX& x, const VY& y, A scale, row_form form = row_form::centered) {
  return tiled_rows_from<A>(
      x.rows() + y.rows(), x.cols(), scale,
      [&](matrix<A>& b, Eigen::Index c0, Eigen::Index w) {
        b.topRows(x.rows()) = x.middleCols(c0, w).template cast<A>();
        b.bottomRows(y.rows()) = y.middleCols(c0, w).template cast<A>();
      },
      form);
}

/// Squared distances between the rows of tile I and those of tile J into out (h×w, column-major):
/// ‖x_i‖² + ‖x_j‖² − 2⟨x_i, x_j⟩, clamped at 0, summed from the rows where that is too small to trust
/// (exactly 0 for equal rows), exactly 0 for i = j. The one routine every pass and both
/// routes use (into 64-byte aligned memory, so that every call rounds alike). Throws cka::domain_error on
/// overflow.
template <class A>
void tile_distances(const char* fn, const tiled_rows<A>& t, Eigen::Index ti, Eigen::Index tj, A* data) {
  const tile_grid g{t.rows()};
  const Eigen::Index i0 = g.start(ti), j0 = g.start(tj), h = g.size(ti), w = g.size(tj);
  Eigen::Map<matrix<A>> out(data, h, w);
  product_into(out, t.xc.middleRows(i0, h), t.xc.middleRows(j0, w).transpose());
  const Eigen::Index d = t.xc.cols();
  squared_distances_from_inner(out, t.norms.segment(i0, h), t.norms.segment(j0, w), ti == tj, [&](Eigen::Index i, Eigen::Index j) {
    return direct_squared_distance(t.xc.row(i0 + i).data(), 1, t.xc.row(j0 + j).data(), 1, d);
  });
  require_finite_distances(fn, out);
}

template <class A>
void tile_distances(const char* fn, const tiled_rows<A>& t, Eigen::Index ti, Eigen::Index tj, matrix<A>& out) {
  const tile_grid g{t.rows()};
  out.resize(g.size(ti), g.size(tj));
  tile_distances(fn, t, ti, tj, out.data());
}

/// One squared distance computed from the features (i ≠ j): a sample value, equal to the tiles' up to
/// rounding.
inline double pair_distance(const tiled_rows<double>& t, Eigen::Index i, Eigen::Index j) {
  return resolved_distance(std::max(0.0, t.norms(i) + t.norms(j) - 2 * t.xc.row(i).dot(t.xc.row(j))), t.norms(i), t.norms(j),
                           [&] { return direct_squared_distance(t.xc.row(i).data(), 1, t.xc.row(j).data(), 1, t.xc.cols()); });
}

/// Every member of a team must hold the same representation: its shape and a checksum of the rows (bitwise
/// equal for equal data) are compared with rank 0's; a difference makes every member throw
/// cka::invalid_argument.
inline void require_same_rows(const char* fn, const tiled_rows<double>& rows, const team* members) {
  const std::vector<double> mine{double(rows.rows()), double(rows.xc.cols()), rows.norms.sum()};
  const std::vector<double> all = members->gather(mine);
  for (int r = 1; r < members->size(); ++r) {
    const double* o = all.data() + 3 * r;
    if (o[0] != all[0] || o[1] != all[1] || !(o[2] == all[2])) {
      fail_argument(fn, "rank ", r, " holds a representation of ", o[0], " samples and ", o[1],
                    " features that differs from rank 0's (", all[0], " and ", all[1],
                    "); every member of the team must pass the same data");
    }
  }
}

}  // namespace cka::detail
