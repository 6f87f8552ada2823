#pragma once
// Private: kernel CKA without n×n matrices. Tiles of the squared-distance matrix are computed from the
// centered features, used and dropped: the exact median-rule bandwidth by radix selection on the bit
// patterns of the distances (a few counting passes, nothing stored but histograms), then the centered
// products in two passes (row sums first, then the centered tiles), as ../shared/notes/engine.md outlines.
// Every pass computes a tile's distances with the same routine, so the passes agree bit for bit, and the
// floating-point sums are combined in tile order, so the value does not depend on the thread count.

#include <cka/detail/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/permutations.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/estimator.hpp>
#include <cka/kernels.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <cstring>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace cka::detail {

/// Rows per tile side: a 256×256 tile of doubles (512 KiB) and its two row blocks stay in cache.
constexpr Eigen::Index tile_rows = 256;

/// A representation prepared for tiles: column-centered features (times a power-of-two scale) and their
/// squared row norms.
template <class A>
struct tiled_rows {
  Eigen::Matrix<A, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xc;  // a tile's rows are contiguous
  vector<A> norms;
  Eigen::Index rows() const { return xc.rows(); }
  Eigen::Index tiles() const { return (xc.rows() + tile_rows - 1) / tile_rows; }
};

template <class A, class V>
tiled_rows<A> tiled_rows_of(const V& x, A scale) {
  tiled_rows<A> t;
  t.xc = centered_columns<A>(x);
  if (scale != A(1)) t.xc *= scale;
  t.norms = t.xc.rowwise().squaredNorm();
  return t;
}

/// Squared distances between the rows of tile I and those of tile J into out: ‖x_i‖² + ‖x_j‖² − 2⟨x_i, x_j⟩,
/// clamped at 0, exactly 0 for i = j. The one routine every pass uses. Throws cka::domain_error on overflow.
template <class A>
void tile_distances(const char* fn, const tiled_rows<A>& t, Eigen::Index ti, Eigen::Index tj, matrix<A>& out) {
  const Eigen::Index i0 = ti * tile_rows, j0 = tj * tile_rows;
  const Eigen::Index h = std::min(tile_rows, t.rows() - i0), w = std::min(tile_rows, t.rows() - j0);
  out.resize(h, w);
  out.noalias() = t.xc.middleRows(i0, h) * t.xc.middleRows(j0, w).transpose();
  for (Eigen::Index j = 0; j < w; ++j) {
    out.col(j) = (t.norms.segment(i0, h).array() + t.norms(j0 + j) - A(2) * out.col(j).array()).max(A(0)).matrix();
  }
  if (ti == tj) out.diagonal().setZero();
  if (!out.allFinite()) {
    fail_domain(fn, "overflow: a squared distance exceeds the range of the accumulation type; rescale the inputs "
                    "and the bandwidth together (a median-rule bandwidth does so itself)");
  }
}

/// Calls f(thread, tile_row) for every tile row 0 … nt−1, the rows dealt to `threads` threads.
template <class F>
void for_tile_rows(Eigen::Index nt, int threads, F&& f) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
  for (Eigen::Index ti = 0; ti < nt; ++ti) {
#if defined(_OPENMP)
    f(omp_get_thread_num(), ti);
#else
    f(0, ti);
#endif
  }
  (void)threads;
}

/// Calls f(thread, tile_row, tile_col, distances) for every tile pair I ≤ J, tile rows dealt to threads.
template <class A, class F>
void for_upper_tiles(const char* fn, const tiled_rows<A>& t, int threads, F&& f) {
  const Eigen::Index nt = t.tiles();
  for_tile_rows(nt, threads, [&](int thread, Eigen::Index ti) {
    matrix<A> d;
    for (Eigen::Index tj = ti; tj < nt; ++tj) {
      tile_distances(fn, t, ti, tj, d);
      f(thread, ti, tj, d);
    }
  });
}

/// The exact median of the squared distances under `rule`, as median_squared_distance gives it for the
/// full matrix, without storing them. With more than 2^24 pairs, one pass usually suffices: a sample of
/// 2^22 pairs brackets the middle values (±5 standard errors), and the pass counts the values below the
/// bracket and collects those inside it (about 2.5 per thousand of all). Otherwise, or if the bracket missed: radix selection on the
/// bit patterns of the non-negative doubles (which order like the values), 16 bits per counting pass, and a
/// final pass that collects the values left in the target bucket once they number at most 2^20. Both
/// middle ranks are tracked for NumPy's even-count median. Each pass computes every tile of distances once.
inline double tiled_median(const char* fn, const tiled_rows<double>& t, median_rule rule, int threads) {
  const Eigen::Index n = t.rows();
  require_samples(fn, "the representation", n, 2, "a median bandwidth");
  const std::uint64_t pairs = std::uint64_t(n) * std::uint64_t(n - 1) / 2;
  auto bits = [](double v) {
    std::uint64_t u;
    std::memcpy(&u, &v, 8);
    return u;
  };
  // Every off-diagonal pair once: the strict lower triangle of diagonal tiles, all of the others.
  auto for_pairs = [&](auto&& per_value) {
    for_upper_tiles(fn, t, threads, [&](int thread, Eigen::Index ti, Eigen::Index tj, const matrix<double>& d) {
      for (Eigen::Index j = 0; j < d.cols(); ++j)
        for (Eigen::Index i = ti == tj ? j + 1 : 0; i < d.rows(); ++i) per_value(thread, d(i, j));
    });
  };
  const int slots = std::max(threads, 1);
  // The middle ranks among the off-diagonal values sorted ascending, as in median_squared_distance, given
  // the number of exact zeros (which only the nonzero rule needs).
  auto middle_ranks = [&](std::uint64_t zero_count, std::int64_t& lo_rank, std::int64_t& hi_rank) {
    const std::uint64_t count = rule == median_rule::all_pairs ? std::uint64_t(n) * std::uint64_t(n)
                                : rule == median_rule::nonzero  ? pairs - zero_count
                                                                : pairs;
    auto position = [&](std::uint64_t k) -> std::int64_t {
      if (rule == median_rule::all_pairs) return k < std::uint64_t(n) ? -1 : std::int64_t((k - std::uint64_t(n)) / 2);
      return std::int64_t(rule == median_rule::nonzero ? k + zero_count : k);
    };
    lo_rank = position((count - 1) / 2);
    hi_rank = position(count / 2);
  };
  auto midpoint = [](double lower, double upper) {
    const double mid = (lower + upper) / 2;  // NumPy's mean of the two middle values
    return is_finite_value(mid) ? mid : lower / 2 + upper / 2;
  };

  // A sampled bracket first (many pairs only): the quantiles of 2^22 random pairs, widened by 5 standard
  // errors, bracket the middle values; one pass counts the values below the bracket and collects those in
  // it, and selection among those is exact. If the bracket missed, the radix passes below decide.
  if (pairs > (std::uint64_t(1) << 24)) {
    splitmix64 g{0x5EEDC0DEull};
    std::vector<double> sample;
    const std::size_t draws = std::size_t(1) << 22;
    sample.reserve(draws);
    for (std::size_t k = 0; k < draws; ++k) {
      const Eigen::Index i = Eigen::Index(g.below(std::uint64_t(n)));
      Eigen::Index j = Eigen::Index(g.below(std::uint64_t(n - 1)));
      j += j >= i;
      const double v = std::max(0.0, t.norms(i) + t.norms(j) - 2 * t.xc.row(i).dot(t.xc.row(j)));
      if (rule != median_rule::nonzero || v > 0) sample.push_back(v);
    }
    if (sample.size() > 1000) {
      std::sort(sample.begin(), sample.end());
      // The target fraction of the sampled population (off-diagonal pairs; the nonzero ones for `nonzero`).
      std::int64_t lo_guess = 0, hi_guess = 0;
      middle_ranks(0, lo_guess, hi_guess);
      const double m = double(sample.size());
      const double q_lo = rule == median_rule::nonzero ? 0.5 : double(std::max<std::int64_t>(lo_guess, 0)) / double(pairs);
      const double q_hi = rule == median_rule::nonzero ? 0.5 : double(std::max<std::int64_t>(hi_guess, 0)) / double(pairs);
      const double spread = 5 * std::sqrt(m * 0.25) + 2;
      const std::int64_t k_lo = std::int64_t(std::floor(q_lo * m - spread)), k_hi = std::int64_t(std::ceil(q_hi * m + spread));
      const double lo = k_lo < 0 ? -1.0 : sample[std::size_t(k_lo)];
      const double hi = k_hi >= std::int64_t(sample.size()) ? std::numeric_limits<double>::infinity() : sample[std::size_t(k_hi)];
      const std::size_t cap = std::size_t(1) << 25;
      std::vector<std::uint64_t> below(std::size_t(slots), 0), zeros_in(std::size_t(slots), 0);
      std::vector<std::vector<double>> inside(static_cast<std::size_t>(slots));
      std::vector<char> overflowed(std::size_t(slots), 0);
      for_pairs([&](int s, double v) {
        zeros_in[std::size_t(s)] += v == 0.0;
        if (v < lo) {
          ++below[std::size_t(s)];
        } else if (v <= hi) {
          auto& in = inside[std::size_t(s)];
          if (in.size() < cap / std::size_t(slots)) in.push_back(v);
          else overflowed[std::size_t(s)] = 1;
        }
      });
      std::uint64_t below_all = 0, zero_count = 0;
      std::vector<double> all;
      bool full = false;
      for (int s = 0; s < slots; ++s) {
        below_all += below[std::size_t(s)];
        zero_count += zeros_in[std::size_t(s)];
        all.insert(all.end(), inside[std::size_t(s)].begin(), inside[std::size_t(s)].end());
        full = full || overflowed[std::size_t(s)];
      }
      std::int64_t lo_rank = 0, hi_rank = 0;
      if (rule == median_rule::nonzero && zero_count == pairs) return 0.0;
      middle_ranks(zero_count, lo_rank, hi_rank);
      auto inside_bracket = [&](std::int64_t r) {
        return r < 0 || (std::uint64_t(r) >= below_all && std::uint64_t(r) < below_all + all.size());
      };
      if (!full && inside_bracket(lo_rank) && inside_bracket(hi_rank)) {
        if (hi_rank < 0) return 0.0;
        auto at = [&](std::int64_t r) {
          const auto it = all.begin() + std::ptrdiff_t(std::uint64_t(r) - below_all);
          std::nth_element(all.begin(), it, all.end());
          return *it;
        };
        const double upper = at(hi_rank);
        if (lo_rank == hi_rank) return upper;
        return midpoint(lo_rank < 0 ? 0.0 : at(lo_rank), upper);
      }
    }
  }

  // Pass 1: the top 16 bits, and the exact zeros.
  std::vector<std::vector<std::uint64_t>> hist(std::size_t(slots), std::vector<std::uint64_t>(1 << 16, 0));
  std::vector<std::uint64_t> zeros(std::size_t(slots), 0);
  for_pairs([&](int s, double v) {
    ++hist[std::size_t(s)][bits(v) >> 48];
    zeros[std::size_t(s)] += v == 0.0;
  });
  std::vector<std::uint64_t> top(1 << 16, 0);
  std::uint64_t zero_count = 0;
  for (int s = 0; s < slots; ++s) {
    for (std::size_t b = 0; b < top.size(); ++b) top[b] += hist[std::size_t(s)][b];
    zero_count += zeros[std::size_t(s)];
  }
  if (rule == median_rule::nonzero && zero_count == pairs) return 0.0;
  std::int64_t lo_rank = 0, hi_rank = 0;
  middle_ranks(zero_count, lo_rank, hi_rank);
  if (hi_rank < 0) return 0.0;

  struct target {
    std::uint64_t prefix = 0, rank = 0;
    int fixed = 0;
    bool collect = false, done = false;
    double value = 0;
  };
  constexpr std::uint64_t collect_limit = std::uint64_t(1) << 20;
  // Moves a target into the bucket of `h` (histogram of the next 16 bits) that holds its rank.
  auto descend = [&](target& g, const std::vector<std::uint64_t>& h) {
    std::uint64_t before = 0;
    std::size_t b = 0;
    while (before + h[b] <= g.rank) before += h[b++];
    g.rank -= before;
    g.prefix = (g.prefix << 16) | std::uint64_t(b);
    g.fixed += 16;
    if (g.fixed == 64) {
      std::memcpy(&g.value, &g.prefix, 8);
      g.done = true;
    } else {
      g.collect = h[b] <= collect_limit;
    }
  };
  std::vector<target> targets;
  for (std::int64_t r : {lo_rank, hi_rank}) {
    if (r < 0) continue;  // a diagonal zero
    target g;
    g.rank = std::uint64_t(r);
    descend(g, top);
    targets.push_back(g);
  }
  if (targets.size() == 2 && lo_rank == hi_rank) targets.pop_back();
  while (std::any_of(targets.begin(), targets.end(), [](const target& g) { return !g.done; })) {
    // One pass for every target still open: a histogram of its next 16 bits, or its bucket's values.
    std::vector<std::vector<std::vector<std::uint64_t>>> next(
        targets.size(), std::vector<std::vector<std::uint64_t>>(std::size_t(slots)));
    for (std::size_t k = 0; k < targets.size(); ++k)
      for (auto& h : next[k]) h.assign(targets[k].done || targets[k].collect ? 0 : (1 << 16), 0);
    for_pairs([&](int s, double v) {
      const std::uint64_t u = bits(v);
      for (std::size_t k = 0; k < targets.size(); ++k) {
        const target& g = targets[k];
        if (g.done || (u >> (64 - g.fixed)) != g.prefix) continue;
        auto& h = next[k][std::size_t(s)];
        if (g.collect) h.push_back(u);
        else ++h[(u >> (48 - g.fixed)) & 0xFFFF];
      }
    });
    for (std::size_t k = 0; k < targets.size(); ++k) {
      target& g = targets[k];
      if (g.done) continue;
      if (g.collect) {
        std::vector<std::uint64_t> all;
        for (const auto& h : next[k]) all.insert(all.end(), h.begin(), h.end());
        std::nth_element(all.begin(), all.begin() + std::ptrdiff_t(g.rank), all.end());
        std::memcpy(&g.value, &all[std::size_t(g.rank)], 8);
        g.done = true;
      } else {
        std::vector<std::uint64_t> h(1 << 16, 0);
        for (const auto& part : next[k])
          for (std::size_t b = 0; b < h.size(); ++b) h[b] += part[b];
        descend(g, h);
      }
    }
  }
  const double upper = targets.back().value;
  if (lo_rank == hi_rank) return upper;
  return midpoint(lo_rank < 0 ? 0.0 : targets.front().value, upper);
}

/// Centered products of the RBF Grams of x and y with fixed bandwidths σx, σy, in tiles, as
/// centered_products gives them for the full matrices. Pass A: row sums (and diagonals, and the raw
/// squared norms), each tile row by one thread over all tiles in order. Pass B: the centered tiles I ≤ J
/// (off-diagonal ones twice), partial sums kept per tile row and added in row order.
inline centered_sums<double> tiled_rbf_products(const char* fn, const tiled_rows<double>& x, double sigma_x,
                                                const tiled_rows<double>& y, double sigma_y, estimator est,
                                                int threads) {
  const Eigen::Index n = x.rows(), nt = x.tiles();
  const rbf_kernel kx{sigma_x}, ky{sigma_y};
  auto kernel_tile = [&](const tiled_rows<double>& t, const rbf_kernel& k, Eigen::Index ti, Eigen::Index tj,
                         matrix<double>& out) {
    tile_distances(fn, t, ti, tj, out);
    k.from_squared_distances(out);
  };
  // Pass A.
  vector<double> rx = vector<double>::Zero(n), ry = vector<double>::Zero(n), dx(n), dy(n);
  vector<double> refx_rows = vector<double>::Zero(nt), refy_rows = vector<double>::Zero(nt);
  for_tile_rows(nt, threads, [&](int, Eigen::Index ti) {
    matrix<double> kt, lt;
    const Eigen::Index i0 = ti * tile_rows;
    for (Eigen::Index tj = 0; tj < nt; ++tj) {
      kernel_tile(x, kx, ti, tj, kt);
      kernel_tile(y, ky, ti, tj, lt);
      rx.segment(i0, kt.rows()) += kt.rowwise().sum();
      ry.segment(i0, lt.rows()) += lt.rowwise().sum();
      refx_rows(ti) += kt.squaredNorm();
      refy_rows(ti) += lt.squaredNorm();
      if (ti == tj) {
        dx.segment(i0, kt.rows()) = kt.diagonal();
        dy.segment(i0, lt.rows()) = lt.diagonal();
      }
    }
  });
  // The centering of a tile, C_ij = K_ij − u_i − u_j + c (0 on the diagonal for the unbiased estimator),
  // from the row sums and the diagonal as for an in-memory Gram.
  const bool unbiased = est == estimator::unbiased;
  const centering<double> cx = centering_from_sums<double>(rx, dx, est), cy = centering_from_sums<double>(ry, dy, est);
  // Pass B.
  matrix<double> partial = matrix<double>::Zero(nt, 3);
  for_tile_rows(nt, threads, [&](int, Eigen::Index ti) {
    matrix<double> kt, lt;
    const Eigen::Index i0 = ti * tile_rows;
    for (Eigen::Index tj = ti; tj < nt; ++tj) {
      const Eigen::Index j0 = tj * tile_rows;
      kernel_tile(x, kx, ti, tj, kt);
      kernel_tile(y, ky, ti, tj, lt);
      const Eigen::Index h = kt.rows(), w = kt.cols();
      for (Eigen::Index j = 0; j < w; ++j) {
        kt.col(j) = (kt.col(j).array() - cx.u.segment(i0, h).array() - cx.v(j0 + j) + cx.c).matrix();
        lt.col(j) = (lt.col(j).array() - cy.u.segment(i0, h).array() - cy.v(j0 + j) + cy.c).matrix();
      }
      if (unbiased && ti == tj) {
        kt.diagonal().setZero();
        lt.diagonal().setZero();
      }
      const double weight = ti == tj ? 1.0 : 2.0;
      partial(ti, 0) += weight * kt.cwiseProduct(lt).sum();
      partial(ti, 1) += weight * kt.squaredNorm();
      partial(ti, 2) += weight * lt.squaredNorm();
    }
  });
  const Eigen::Matrix<double, 1, 3> total = partial.colwise().sum();
  return {total(0), total(1), total(2), refx_rows.sum(), refy_rows.sum()};
}

}  // namespace cka::detail
