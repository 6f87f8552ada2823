#pragma once
/// \file similarity_matrix.hpp
/// CKA between every pair of layers — the matrix researchers plot as a heatmap — without repeated work.
/// Three routes, chosen per call: for the linear kernel, one joint moment state of all layers
/// (detail/moments.hpp, as layers_state; O(n·(P+L)²) for P features in all, memory (P+L)², independent
/// of n); for RBF, polynomial and generic kernels, the tile engine (each layer's row sums once, then one
/// pass over the tiles for every pair; nothing n×n unless the tiles are stored); otherwise (wide linear
/// layers, a minibatch, a kernel that maps a whole matrix) each layer's centered Gram formed once (O(n²d))
/// and each pair one O(n²) inner product. L layers cost O(L·n²·d + L²·n²) instead of O(L²·n²·d) for
/// pairwise calls.

#include <cka/detail/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/interrupt.hpp>
#include <cka/detail/moments.hpp>
#include <cka/detail/products.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/sums.hpp>
#include <cka/detail/tiles.hpp>
#include <cka/compute.hpp>
#include <cka/estimator.hpp>
#include <cka/gram.hpp>
#include <cka/kernels.hpp>
#include <cka/undefined_layer.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace cka {

/// Options of similarity_matrix.
struct similarity_matrix_options {
  estimator est = estimator::biased;  ///< ignored with a minibatch (always unbiased there)
  Eigen::Index minibatch = 0;         ///< 0: all samples at once; B ≥ 4: minibatch CKA
  std::function<void(std::size_t done, std::size_t total)> progress;  ///< optional progress report
};

/// values(i, j) = CKA(row layer i, column layer j), in the accumulation type A; NaN in the rows and
/// columns of the layers listed in `undefined` (the matrix is always computed).
template <class A>
struct basic_similarity_result {
  matrix<A> values;
  std::vector<undefined_layer> undefined;
  Eigen::Index dropped_samples = 0;  ///< minibatch: samples of a final batch shorter than 4, left out
};
using similarity_result = basic_similarity_result<double>;

namespace detail {

/// How similarity_matrix computes the pair sums; `automatic` compares the costs.
enum class matrix_route { automatic, grams, moments, kernel_tiles };

/// The layers of a matrix call, rows then (for a rectangular matrix) columns, as views of two types.
template <class M, class N>
struct layer_list {
  std::vector<view_t<M>> rows;
  std::vector<view_t<N>> cols;
  bool square;
  std::size_t size() const { return rows.size() + cols.size(); }
  Eigen::Index samples() const { return rows.empty() ? 0 : rows[0].rows(); }
  Eigen::Index width(std::size_t a) const { return a < rows.size() ? rows[a].cols() : cols[a - rows.size()].cols(); }
  /// Calls f with the view of layer a.
  template <class F>
  void visit(std::size_t a, F&& f) const {
    if (a < rows.size()) f(rows[a]);
    else f(cols[a - rows.size()]);
  }
};

/// The shapes a plan needs, before any layer is read: n and each layer's width (rows, then columns).
struct layer_shapes {
  Eigen::Index n = 0;
  std::vector<Eigen::Index> widths;
  std::size_t size() const { return widths.size(); }
  Eigen::Index samples() const { return n; }
  Eigen::Index width(std::size_t a) const { return widths[a]; }
};

template <class Kernel>
constexpr bool is_linear_kernel = std::is_same_v<Kernel, linear_kernel>;
/// Kernels whose layer matrix runs on the tile engine without a minibatch: the RBF, polynomial and generic
/// kernels (a kernel that maps a whole matrix keeps the per-layer Grams).
template <class Kernel>
constexpr bool uses_kernel_tiles = in_tile_engine<Kernel> && !is_linear_kernel<Kernel>;

/// The route: the moment state only for the linear kernel without a minibatch, and only when it is cheaper
/// and its (1 + P + L)² values fit in 2 GiB. Cost model, calibrated on 2 Zen 5 cores: the joint rank-h
/// update runs at GEMM rate (n·(1+P+L)² flops), while forming a Gram (n²·d flops) runs ~4× below it —
/// first-touch page faults of the n×n buffer and the O(n²) centering passes — and each tiled pair pass
/// costs ~8n².
template <class Kernel, class Layers>
matrix_route choose_route(const Layers& layers, const similarity_matrix_options& o) {
  if (uses_kernel_tiles<Kernel> && o.minibatch == 0) return matrix_route::kernel_tiles;
  if (!is_linear_kernel<Kernel> || o.minibatch != 0 || layers.size() == 0) return matrix_route::grams;
  const double n = double(layers.samples());
  double p = 1, gram_cost = 0;
  for (std::size_t a = 0; a < layers.size(); ++a) {
    p += double(layers.width(a)) + 1;
    gram_cost += 4.0 * n * n * double(layers.width(a)) + 4.0 * n * n * double(layers.size());
  }
  const double moment_cost = n * p * p;
  if (8.0 * p * p > double(std::size_t(1) << 31)) return matrix_route::grams;
  return moment_cost < gram_cost ? matrix_route::moments : matrix_route::grams;
}

/// Whether the tile engine stores every layer's kernel tiles (4·n² bytes each) within the budget, or
/// recomputes them in every pass.
inline bool store_kernel_tiles(Eigen::Index n, std::size_t count, const compute_options& co) {
  return double(count) * packed_tiles::bytes(n, members_of(co)) <= memory_budget(co);
}

/// The layer matrix of an RBF, polynomial or generic kernel through the tile engine (detail/tiles.hpp):
/// each layer's bandwidth (its own exact median, for a median-rule RBF) and row sums once, then one pass
/// over the tiles for every pair's centered products. Layers without a bandwidth get NaN (their cause in `causes`).
template <class M, class N, class Kernel>
matrix<double> kernel_matrix_tiles(const char* fn, const layer_list<M, N>& layers, const Kernel& kernel, estimator est,
                                   const similarity_matrix_options& o, const compute_options& co,
                                   std::vector<std::string>& causes) {
  using layer = tiles_for<Kernel>;
  const Eigen::Index n = layers.samples();
  const std::size_t count = layers.size();
  const int threads = Eigen::nbThreads();
  const bool store = store_kernel_tiles(n, count, co);
  // Planned tile passes: per layer its own (stored tiles or median) and pass A, then pass B over all layers.
  const std::size_t passes = count * (layer::planned_passes(kernel, store) + 1) + count;
  tile_meter meter(o.progress, passes * upper_tiles(n, members_of(co)));
  std::vector<std::optional<layer>> tiles(count);
  std::vector<const layer*> live(count, nullptr);
  for (std::size_t a = 0; a < count; ++a) {
    layers.visit(a, [&](const auto& x) {
      try {
        tiles[a].emplace(fn, x, kernel, store, threads, &meter, co.processes);
        live[a] = &*tiles[a];
      } catch (const zero_bandwidth& e) {
        causes[a] = e.what();  // no kernel for this layer: its cells become NaN
      }
    });
  }
  const tile_pair_sums_result r = tile_pair_sums(live, est, threads, &meter, co.processes);
  meter.finish();
  matrix<double> values = matrix<double>::Constant(Eigen::Index(count), Eigen::Index(count), std::nan(""));
  for (Eigen::Index a = 0; a < values.rows(); ++a)
    for (Eigen::Index b = a; b < values.rows(); ++b) {
      if (!live[std::size_t(a)] || !live[std::size_t(b)]) continue;
      const centered_sums<double> s{r.sums(a, b), r.sums(a, a), r.sums(b, b), r.ref(a), r.ref(b)};
      values(a, b) = values(b, a) = cka_ratio(fn, s, when_undefined::nan);
    }
  return values;
}

template <class A, class Kernel, class M, class N>
basic_similarity_result<A> similarity_matrix_impl(const layer_list<M, N>& layers, const Kernel& kernel,
                                                  const similarity_matrix_options& o, matrix_route route,
                                                  const compute_options& co = {}) {
  const char* fn = "similarity_matrix";
  Eigen::Index n = 0;
  std::size_t count = 0;
  std::vector<A> magnitude;  // each layer's power-of-two scale (1 unless extreme; CKA is scale-invariant)
  estimator est = o.est;
  // On a team, the checks are the first step: bad input on one member fails every member (no hang).
  together(co.processes, [&] {
    if (layers.rows.empty() || (!layers.square && layers.cols.empty())) fail_argument(fn, "needs at least one layer on each side");
    n = layers.samples();
    count = layers.size();
    magnitude.assign(count, A(1));
    for (std::size_t a = 0; a < count; ++a) {
      layers.visit(a, [&](const auto& x) {
        if (x.rows() != n) fail_argument(fn, "layer ", a, " has ", x.rows(), " samples but layer 0 has ", n);
        magnitude[a] = finite_safe_scale<A>(fn, "a layer", x);  // one pass: the check and the magnitude
      });
    }
    if (o.minibatch != 0 && o.minibatch < 4) {
      fail_argument(fn, "minibatch = ", o.minibatch, "; unbiased HSIC needs batches of at least 4");
    }
    est = o.minibatch ? estimator::unbiased : o.est;
    require_samples(fn, "each layer", n, min_samples(est), estimator_name(est));
    if (route == matrix_route::automatic) route = choose_route<Kernel>(layers, o);
    if (route == matrix_route::moments && (!is_linear_kernel<Kernel> || o.minibatch != 0)) {
      fail_argument(fn, "the moment-state route needs the linear kernel and no minibatch");
    }
    if (route == matrix_route::kernel_tiles && (!uses_kernel_tiles<Kernel> || o.minibatch != 0)) {
      fail_argument(fn, "the kernel-tile route needs an RBF, polynomial or generic kernel and no minibatch");
    }
  });

  basic_similarity_result<A> out;
  matrix<A> values;  // count × count
  std::vector<std::string> causes(count);  // why a layer's kernel is undefined, where it is
  if constexpr (uses_kernel_tiles<Kernel> && std::is_same_v<A, double>) {
    if (route == matrix_route::kernel_tiles) values = kernel_matrix_tiles(fn, layers, kernel, est, o, co, causes);
  } else if (route == matrix_route::kernel_tiles) {
    route = matrix_route::grams;  // the tile engine sums in double only
  }
  if (route == matrix_route::kernel_tiles) {
    // done above
  } else if (route == matrix_route::moments) {
    std::vector<Eigen::Index> widths;
    for (std::size_t a = 0; a < count; ++a) widths.push_back(layers.width(a));
    moments<A> m(widths);
    m.interruptible = true;
    using V = view_t<M>;
    m.template add<V::IsRowMajor ? Eigen::RowMajor : Eigen::ColMajor>(
        fn, n, [&](Eigen::Index b, Eigen::Index r0, Eigen::Index h, auto&& dest) {
          layers.visit(std::size_t(b), [&](const auto& x) {
            if (magnitude[std::size_t(b)] == A(1)) dest = x.middleRows(r0, h).template cast<A>();
            else dest = x.middleRows(r0, h).template cast<A>() * magnitude[std::size_t(b)];
          });
        });
    values = pairwise_cka<A>(fn, m, est);  // finished in the state's own storage
    if (o.progress) o.progress(1, 1);
  } else {
    const Eigen::Index batch = o.minibatch ? o.minibatch : n;
    const Eigen::Index batches = (n + batch - 1) / batch;
    const std::size_t total = std::size_t(batches) * count;
    std::size_t done = 0;
    // sums(a, b): summed centered inner products (the HSIC normalisers cancel in the ratio).
    matrix<A> sums = matrix<A>::Zero(Eigen::Index(count), Eigen::Index(count));
    vector<A> ref = vector<A>::Zero(Eigen::Index(count));
    std::vector<matrix<A>> grams(count);
    // Each layer's power of two, the same for all its batches: the features' magnitude for the linear
    // kernel, else chosen from its first batch's Gram (centered_gram).
    std::vector<A> power = is_linear_kernel<Kernel> ? magnitude : std::vector<A>(count, A(0));
    for (Eigen::Index b0 = 0; b0 < n; b0 += batch) {
      const Eigen::Index h = std::min(batch, n - b0);
      if (h < min_samples(est)) {
        out.dropped_samples += h;
        continue;
      }
      const A scale = o.minibatch ? A(A(1) / (A(h) * A(h - 3))) : A(1);
      for (std::size_t a = 0; a < count; ++a) {
        A raw(0);
        layers.visit(a, [&](const auto& x) {
          try {
            grams[a] = centered_gram<A>(fn, x.middleRows(b0, h), kernel, est, raw, power[a]);
          } catch (const zero_bandwidth& e) {
            // No kernel for this layer (a median bandwidth of zero): its cells become NaN.
            grams[a] = matrix<A>::Zero(h, h);
            raw = A(0);
            if (causes[a].empty()) causes[a] = e.what();
          }
        });
        ref(Eigen::Index(a)) += scale * raw;
        poll_interrupt();
        if (o.progress) o.progress(++done, total);
      }
      // All pair products, tile by tile: a block of columns of every Gram (~4 MB together) stays in cache
      // while every pair uses it, so each Gram is read from memory once rather than once per pair.
      const Eigen::Index width = std::max<Eigen::Index>(1, (Eigen::Index(1) << 19) / (Eigen::Index(count) * h));
      for (Eigen::Index j0 = 0; j0 < h; j0 += width) {
        const Eigen::Index w = std::min(width, h - j0);
        for (std::size_t a = 0; a < count; ++a)
          for (std::size_t b = a; b < count; ++b) {
            sums(Eigen::Index(a), Eigen::Index(b)) +=
                scale * grams[a].middleCols(j0, w).cwiseProduct(grams[b].middleCols(j0, w)).sum();
          }
        poll_interrupt();  // L·(L+1)/2 pairs of a block: seconds in all for many layers of thousands of samples
      }
    }
    values.resize(Eigen::Index(count), Eigen::Index(count));
    for (Eigen::Index a = 0; a < values.rows(); ++a)
      for (Eigen::Index b = a; b < values.rows(); ++b) {
        const centered_sums<A> s{sums(a, b), sums(a, a), sums(b, b), ref(a), ref(b)};
        values(a, b) = values(b, a) = cka_ratio(fn, s, when_undefined::nan);
      }
  }
  for (std::size_t a = 0; a < count; ++a) {
    if (!std::isnan(double(values(Eigen::Index(a), Eigen::Index(a))))) continue;
    out.undefined.push_back({a, causes[a].empty() ? zero_variance_cause(est) : causes[a]});
  }
  const std::size_t col0 = layers.square ? 0 : layers.rows.size();
  const std::size_t cols = layers.square ? layers.rows.size() : layers.cols.size();
  out.values = values.block(0, Eigen::Index(col0), Eigen::Index(layers.rows.size()), Eigen::Index(cols));
  return out;
}

template <class M, class N>
layer_list<M, N> make_layers(const std::vector<M>& rows, const std::vector<N>* cols) {
  layer_list<M, N> l;
  for (const auto& m : rows) l.rows.emplace_back(m);
  if (cols)
    for (const auto& m : *cols) l.cols.emplace_back(m);
  l.square = cols == nullptr;
  return l;
}

template <class T>
struct is_std_vector : std::false_type {};
template <class T, class Alloc>
struct is_std_vector<std::vector<T, Alloc>> : std::true_type {};

template <class A, class Kernel, class Layers>
double similarity_matrix_bytes_impl(const Layers& layers, const similarity_matrix_options& o, const compute_options& co) {
  if (layers.size() == 0) return 0.0;
  const double n = double(layers.samples()), batch = o.minibatch ? double(std::min<Eigen::Index>(o.minibatch, layers.samples())) : n;
  const matrix_route route = choose_route<Kernel>(layers, o);
  if (route == matrix_route::kernel_tiles && std::is_same_v<A, double>) {
    // Stored kernel tiles, or each layer's centered copy and a few tiles per thread.
    if (store_kernel_tiles(layers.samples(), layers.size(), co)) {
      return double(layers.size()) * packed_tiles::bytes(layers.samples(), members_of(co));
    }
    double copies = 0;
    for (std::size_t a = 0; a < layers.size(); ++a) copies += 8.0 * n * double(layers.width(a) + 1);
    return copies + 8.0 * double(tile_rows * tile_rows) * double(2 * layers.size() + 2) * double(Eigen::nbThreads());
  }
  if (route == matrix_route::moments) {
    double p = 1;
    for (std::size_t a = 0; a < layers.size(); ++a) p += double(layers.width(a)) + 1;
    // The state (finished in place) and its row buffer of at least 512 rows.
    return 8.0 * (p * p + std::max(512.0 * p, double(chunk_values)));
  }
  return 8.0 * batch * batch * double(layers.size());
}

}  // namespace detail

/// The square matrix: CKA between every pair of `layers` (each n×dᵢ, same n; widths may differ), symmetric,
/// each layer's Gram or statistics formed once. Layers are any Eigen dense types (matrices, Maps, Refs,
/// blocks), viewed without a copy; float layers are computed in double (the result's scalar is
/// accumulator_t of theirs).
/// Kernel: `linear_kernel` (default) — through the joint moment state when cheaper (memory (1+P+L)², P
/// features in all) or else per-layer Grams — or any kernel of kernels.hpp (a median-rule `rbf_kernel`
/// takes each layer's σ from its own distances, per batch in minibatch mode) through per-layer Grams
/// (memory L·n²). `rbf_kernel`, `polynomial_kernel` and generic kernels without a minibatch run on the tile
/// engine (docs/math.md): each layer's exact median (a median-rule RBF) and row sums once, then one pass for
/// every pair — L·n²·d̄ flops and L·4n² bytes when the kernel tiles fit the budget of `co` (default: half
/// the physical memory), else no n×n memory at all (8·n·d per layer) and two or three passes of tile
/// products per layer. `co.processes` shares those
/// tiles among a team's members (docs/distributed.md); the other routes compute in full on each member.
/// Minibatch (o.minibatch = B, Nguyen et al. 2021): unbiased HSIC summed over consecutive batches of B
/// samples — unscaled sums, each batch counting once — then the CKA ratio; memory L·B². A final batch of
/// fewer than 4 samples cannot give an unbiased HSIC and is left out (`dropped_samples`).
/// Throws cka::invalid_argument for an empty list, different sample counts, too few samples, a minibatch
/// size of 1 to 3, or NaN/Inf; cka::domain_error for overflow. A layer without variance or without a
/// median bandwidth is not an error: its cells are NaN and it is listed in `undefined` with the cause.
/// Extreme magnitudes (beyond 2^±200) are scaled by a power of two per layer first (CKA is scale-invariant).
template <class M, class Kernel = linear_kernel, class = std::enable_if_t<!detail::is_std_vector<Kernel>::value>>
basic_similarity_result<accumulator_t<typename M::Scalar>> similarity_matrix(
    const std::vector<M>& layers, const Kernel& kernel = {}, const similarity_matrix_options& o = {},
    const compute_options& co = {}) {
  return detail::similarity_matrix_impl<accumulator_t<typename M::Scalar>>(
      detail::make_layers<M, M>(layers, nullptr), kernel, o, detail::matrix_route::automatic, co);
}

/// The rectangular matrix: CKA between each layer of `rows` and each layer of `cols` (all with the same
/// n). As the square form otherwise.
template <class M, class N, class Kernel = linear_kernel>
basic_similarity_result<accumulator_t<typename M::Scalar>> similarity_matrix(
    const std::vector<M>& rows, const std::vector<N>& cols, const Kernel& kernel = {},
    const similarity_matrix_options& o = {}, const compute_options& co = {}) {
  static_assert(std::is_same_v<typename M::Scalar, typename N::Scalar>,
                "cka::similarity_matrix: row and column layers need the same scalar type");
  return detail::similarity_matrix_impl<accumulator_t<typename M::Scalar>>(detail::make_layers(rows, &cols), kernel,
                                                                           o, detail::matrix_route::automatic, co);
}

/// Bytes of working memory the square similarity_matrix(layers, kernel, o, co) will hold beyond its inputs:
/// one n×n (or B×B) Gram per layer, the joint moment state, or the tile engine's stored tiles or
/// centered copies. Lets a caller refuse or choose before allocating.
template <class M, class Kernel = linear_kernel, class = std::enable_if_t<!detail::is_std_vector<Kernel>::value>>
double similarity_matrix_bytes(const std::vector<M>& layers, const Kernel& = {}, const similarity_matrix_options& o = {},
                               const compute_options& co = {}) {
  return detail::similarity_matrix_bytes_impl<accumulator_t<typename M::Scalar>, Kernel>(
      detail::make_layers<M, M>(layers, nullptr), o, co);
}
/// The same for the rectangular form.
template <class M, class N, class Kernel = linear_kernel>
double similarity_matrix_bytes(const std::vector<M>& rows, const std::vector<N>& cols, const Kernel& = {},
                               const similarity_matrix_options& o = {}, const compute_options& co = {}) {
  return detail::similarity_matrix_bytes_impl<accumulator_t<typename M::Scalar>, Kernel>(
      detail::make_layers(rows, &cols), o, co);
}
/// The same from the shapes alone, before any layer is read: n samples and each layer's width (a square
/// matrix's layers, or the rows' then the columns'), for layers of scalar type `Scalar`. Throws
/// cka::invalid_argument for a negative n or a width below 1.
template <class Scalar, class Kernel = linear_kernel>
double similarity_matrix_bytes(Eigen::Index n, const std::vector<Eigen::Index>& widths, const Kernel& = {},
                               const similarity_matrix_options& o = {}, const compute_options& co = {}) {
  if (n < 0) detail::fail_argument("similarity_matrix_bytes", "n = ", n, " samples; it must not be negative");
  for (std::size_t a = 0; a < widths.size(); ++a) {
    if (widths[a] < 1) detail::fail_argument("similarity_matrix_bytes", "layer ", a, " has width ", widths[a], "; it must be at least 1");
  }
  return detail::similarity_matrix_bytes_impl<accumulator_t<Scalar>, Kernel>(detail::layer_shapes{n, widths}, o, co);
}

}  // namespace cka
