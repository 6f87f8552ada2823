#pragma once
// Private: the two passes over the tiles of kernel matrices — A, the row sums and squares of each; B, the
// centered products of every pair — and the block sums of a pooled sample (MMD). Each pass adds partial
// sums per tile row in row order, so the value does not depend on the thread count.

#include <cka/detail/centering.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/detail/team.hpp>
#include <cka/detail/tiles/grid.hpp>
#include <cka/estimator.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace cka::detail {

/// Pass A over the upper tiles of a symmetric kernel matrix K (tile(ti, tj, scratch) gives its values):
/// the row sums r = K1, the diagonal, Σ K_ij² off the diagonal and on it, and the largest |K_ij|. Each tile
/// row is one thread's; a tile I < J adds its row sums to block I and its column sums to block J. Column
/// sums are buffered per tile row and added in tile-row order, and each row's own sums last, so the bits do
/// not depend on the thread count.
struct kernel_row_sums {
  vector<double> r, diag;
  double off_squares = 0, diag_squares = 0, top = 0;
};

template <class Tile>
kernel_row_sums tile_row_sums(const tile_grid& g, int threads, Tile&& tile, tile_meter* meter = nullptr,
                              const team* members = nullptr) {
  const Eigen::Index n = g.n, nt = g.tiles();
  const tile_share share = tile_share::of(members);
  kernel_row_sums s;
  s.r = vector<double>::Zero(n);
  s.diag = vector<double>::Zero(n);
  vector<double> own = vector<double>::Zero(n), off = vector<double>::Zero(nt), on = vector<double>::Zero(nt),
                 big = vector<double>::Zero(nt);
  const Eigen::Index group = std::max<Eigen::Index>(16, 4 * Eigen::Index(threads));
  matrix<double> cols(n, std::min(group, nt));  // column sums of the tiles right of the diagonal, per tile row
  together(members, [&] {
  auto scratch = per_thread<matrix<double>>(threads);
  for (Eigen::Index g0 = 0; g0 < nt; g0 += group) {
    const Eigen::Index count = std::min(group, nt - g0);
    if (share.size > 1) cols.setZero();  // a member's rows skip the tiles of others
    for_owned_tiles(g, g0, count, threads, share, meter, 1, [&](int thread, Eigen::Index ti, Eigen::Index tj) {
      const Eigen::Index i0 = g.start(ti), h = g.size(ti), j0 = g.start(tj), w = g.size(tj);
      const Eigen::Map<const matrix<double>> t(tile(ti, tj, scratch[std::size_t(thread)]), h, w);
      // One sweep, a column at a time (in L1 after its first read): the row's own sums in tj order, the
      // column sums, the squares and the largest magnitude.
      double squares = 0, top = big(ti);
      for (Eigen::Index j = 0; j < w; ++j) {
        const auto c = t.col(j);
        own.segment(i0, h) += c;
        if (ti != tj) cols(j0 + j, ti - g0) = c.sum();
        squares += c.squaredNorm();
        top = std::max(top, c.cwiseAbs().maxCoeff());
      }
      big(ti) = top;
      if (ti == tj) {
        s.diag.segment(i0, h) = t.diagonal();
        on(ti) = t.diagonal().squaredNorm();
        off(ti) += squares - on(ti);
      } else {
        off(ti) += 2 * squares;
      }
    });
    for (Eigen::Index k = 0; k < count; ++k) {
      const Eigen::Index rest = g.start(g0 + k) + g.size(g0 + k);
      s.r.tail(n - rest) += cols.col(k).tail(n - rest);
    }
  }
  s.r += own;
  });
  if (share.size > 1) {  // one sum over the team: row sums, diagonal, and the squares per tile row
    vector<double> all(2 * n + 2 * nt);
    all << s.r, s.diag, off, on;
    team_sum(members, all.data(), std::size_t(all.size()));
    s.r = all.head(n);
    s.diag = all.segment(n, n);
    off = all.segment(2 * n, nt);
    on = all.tail(nt);
  }
  s.off_squares = off.sum();
  s.diag_squares = on.sum();
  for (const double top : team_gather(members, {big.maxCoeff()})) s.top = std::max(s.top, top);
  return s;
}

/// The tile (ti, tj) of a layer's kernel matrix multiplied by `scale` (a power of two; 1: the layer's own
/// tile, uncopied), in scratch where it is scaled.
template <class Layer>
const double* scaled_tile(const Layer& l, double scale, Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) {
  const double* t = l.tile(ti, tj, scratch);
  if (scale == 1.0) return t;
  const Eigen::Index h = l.grid().size(ti), w = l.grid().size(tj);
  if (t != scratch.data()) {  // a stored tile: copied
    scratch.resize(h, w);
    scratch = Eigen::Map<const matrix<double>>(t, h, w);
  }
  Eigen::Map<matrix<double>>(scratch.data(), h, w) *= scale;
  return scratch.data();
}

/// Pass B: the centered products Σ C_a∘C_b of every pair a ≤ b of the kernel matrices of `layers` (each
/// with tile(ti, tj, scratch), multiplied by its `scale`, and its centering `c` of the scaled matrix), C_ij = K_ij − u_i − v_j + c (0 on the diagonal for
/// the unbiased estimator), over the tiles I ≤ J (off-diagonal ones twice). Partial sums per tile row,
/// added in row order. Returns the symmetric L×L matrix of sums.
template <class Layer>
matrix<double> tile_centered_products(const tile_grid& g, int threads, const std::vector<const Layer*>& layers,
                                      const std::vector<double>& scale, const std::vector<centering<double>>& c,
                                      estimator est,
                                      tile_meter* meter = nullptr, const team* members = nullptr) {
  const Eigen::Index nt = g.tiles(), count = Eigen::Index(layers.size());
  const tile_share share = tile_share::of(members);
  // Partial sums per tile row: nt blocks of count × count, contiguous for one sum over the team.
  matrix<double> partial = matrix<double>::Zero(count, count * nt);
  together(members, [&] {
  // Per thread: each layer's tile (scratch) and its centered values.
  auto scratch = per_thread<std::vector<matrix<double>>>(threads), centered = scratch;
  for_owned_tiles(g, 0, nt, threads, share, meter, layers.size(), [&](int thread, Eigen::Index ti, Eigen::Index tj) {
    std::vector<matrix<double>>& sc = scratch[std::size_t(thread)];
    std::vector<matrix<double>>& cs = centered[std::size_t(thread)];
    sc.resize(layers.size());
    cs.resize(layers.size());
    const Eigen::Index i0 = g.start(ti), h = g.size(ti), j0 = g.start(tj), w = g.size(tj);
    for (std::size_t a = 0; a < layers.size(); ++a) {
      const Eigen::Map<const matrix<double>> t(scaled_tile(*layers[a], scale[a], ti, tj, sc[a]), h, w);
      matrix<double>& ca = cs[a];
      ca.resize(h, w);
      for (Eigen::Index j = 0; j < w; ++j) {
        ca.col(j) = (t.col(j).array() - c[a].u.segment(i0, h).array() - (c[a].v(j0 + j) - c[a].c)).matrix();
      }
      if (est == estimator::unbiased && ti == tj) ca.diagonal().setZero();
    }
    auto part = partial.middleCols(ti * count, count);
    const double weight = ti == tj ? 1.0 : 2.0;
    for (Eigen::Index a = 0; a < count; ++a)
      for (Eigen::Index b = a; b < count; ++b) {
        part(a, b) += weight * cs[std::size_t(a)].cwiseProduct(cs[std::size_t(b)]).sum();
      }
  });
  });
  team_sum(members, partial.data(), std::size_t(partial.size()));
  matrix<double> total = matrix<double>::Zero(count, count);
  for (Eigen::Index ti = 0; ti < nt; ++ti) total += partial.middleCols(ti * count, count);
  return total.selfadjointView<Eigen::Upper>();
}

/// Kernel CKA sums of every pair of `layers` (tile layers over the same samples, nullptr for a layer left
/// out): pass A for each, then one pass B over all. sums(a, b) = Σ C_a∘C_b; ref(a) the squared norm of K_a
/// (K̃_a for the unbiased estimator), the reference for a vanishing one. A kernel matrix whose largest
/// magnitude lies beyond 2^±200 is multiplied by a power of two (safe_scale_for) so that its squares stay in
/// range — CKA does not depend on a Gram's scale —, its pass A made again on the scaled tiles.
struct tile_pair_sums_result {
  matrix<double> sums;
  vector<double> ref;
};

template <class Layer>
tile_pair_sums_result tile_pair_sums(const std::vector<const Layer*>& layers, estimator est, int threads,
                                     tile_meter* meter = nullptr, const team* members = nullptr) {
  std::vector<const Layer*> live;
  std::vector<centering<double>> c;
  std::vector<double> scale;
  std::vector<Eigen::Index> slot;
  tile_pair_sums_result out;
  out.ref = vector<double>::Zero(Eigen::Index(layers.size()));
  for (const Layer* l : layers) {
    if (l == nullptr) {
      slot.push_back(-1);
      continue;
    }
    kernel_row_sums r = tile_row_sums(
        l->grid(), threads, [l](Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) { return l->tile(ti, tj, scratch); },
        meter, members);
    const double s = safe_scale_for<double>(r.top);
    if (s != 1.0) {  // rare: the sums again, of the scaled matrix (those of the first pass may have left the range)
      r = tile_row_sums(
          l->grid(), threads,
          [l, s](Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) { return scaled_tile(*l, s, ti, tj, scratch); },
          nullptr, members);
    }
    scale.push_back(s);
    out.ref(Eigen::Index(slot.size())) = r.off_squares + (est == estimator::unbiased ? 0.0 : r.diag_squares);
    c.push_back(centering_from_sums<double>(r.r, r.diag, est));
    slot.push_back(Eigen::Index(live.size()));
    live.push_back(l);
  }
  const Eigen::Index count = Eigen::Index(layers.size());
  out.sums = matrix<double>::Zero(count, count);
  if (live.empty()) return out;
  const matrix<double> p = tile_centered_products<Layer>(live.front()->grid(), threads, live, scale, c, est, meter, members);
  for (Eigen::Index a = 0; a < count; ++a)
    for (Eigen::Index b = 0; b < count; ++b)
      if (slot[std::size_t(a)] >= 0 && slot[std::size_t(b)] >= 0) out.sums(a, b) = p(slot[std::size_t(a)], slot[std::size_t(b)]);
  return out;
}

/// The centered sums of the kernel matrices of two tile layers over the same samples.
template <class Layer>
centered_sums<double> tile_pair_sums(const Layer& a, const Layer& b, estimator est, int threads,
                                     const team* members = nullptr) {
  const tile_pair_sums_result r = tile_pair_sums<Layer>({&a, &b}, est, threads, nullptr, members);
  return {r.sums(0, 1), r.sums(0, 0), r.sums(1, 1), r.ref(0), r.ref(1)};
}

/// The block sums of a symmetric kernel matrix over a pooled sample [X; Y] split after m samples: Σ Kxx and
/// Σ Kyy over all their entries, Σ Kxy over each (x, y) pair once, and the diagonal sums of the two blocks.
/// One pass over the tiles I ≤ J, partial sums per tile row added in row order.
struct block_sums {
  double xx = 0, yy = 0, xy = 0, diag_x = 0, diag_y = 0;
};

template <class Layer>
block_sums tile_block_sums(const Layer& l, Eigen::Index m, int threads, const team* members = nullptr) {
  const tile_grid& g = l.grid();
  const tile_share share = tile_share::of(members);
  matrix<double> partial = matrix<double>::Zero(g.tiles(), 5);
  auto scratch = per_thread<matrix<double>>(threads);
  together(members, [&] {
    for_owned_tiles(g, threads, share, nullptr, [&](int thread, Eigen::Index ti, Eigen::Index tj) {
      const Eigen::Index h = g.size(ti), rx = std::clamp<Eigen::Index>(m - g.start(ti), 0, h);  // rows in X
      const Eigen::Index w = g.size(tj), cx = std::clamp<Eigen::Index>(m - g.start(tj), 0, w);  // columns in X
      const Eigen::Map<const matrix<double>> t(l.tile(ti, tj, scratch[std::size_t(thread)]), h, w);
      const double weight = ti == tj ? 1.0 : 2.0;  // an off-diagonal tile stands for its transpose too
      partial(ti, 0) += weight * t.topLeftCorner(rx, cx).sum();
      partial(ti, 1) += weight * t.bottomRightCorner(h - rx, w - cx).sum();
      // Each (x, y) pair once: below the diagonal in a diagonal tile; anywhere (it is above) otherwise.
      partial(ti, 2) += t.bottomLeftCorner(h - rx, cx).sum() + (ti == tj ? 0.0 : t.topRightCorner(rx, w - cx).sum());
      if (ti == tj) {
        partial(ti, 3) += t.diagonal().head(rx).sum();
        partial(ti, 4) += t.diagonal().tail(h - rx).sum();
      }
    });
  });
  team_sum(members, partial.data(), std::size_t(partial.size()));
  const Eigen::Matrix<double, 1, 5> total = partial.colwise().sum();
  return {total(0), total(1), total(2), total(3), total(4)};
}

}  // namespace cka::detail
