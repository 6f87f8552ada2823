#pragma once
/// \file similarity_matrix.hpp
/// CKA between every pair of layers — the matrix researchers plot as a heatmap — without repeated work:
/// each layer's centred Gram is formed once (O(n²d)), then each pair is one O(n²) inner product, so L
/// layers cost O(L·n²·d + L²·n²) instead of O(L²·n²·d) for pairwise calls.

#include <cka/centering.hpp>
#include <cka/detail/checks.hpp>
#include <cka/detail/products.hpp>
#include <cka/gram.hpp>
#include <cka/kernels.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

namespace cka {

/// Kernels the matrix routine offers.
enum class layer_kernel { linear, rbf };

/// Options of similarity_matrix.
struct matrix_options {
  layer_kernel kernel = layer_kernel::linear;
  double sigma_fraction = 1.0;                 ///< RBF: σ² = fraction² · median squared distance
  median_rule rule = median_rule::all_pairs;   ///< RBF median rule, resolved per layer (and per batch)
  estimator est = estimator::biased;           ///< ignored with a minibatch (always unbiased there)
  Eigen::Index minibatch = 0;                  ///< 0: all samples at once; B ≥ 4: minibatch CKA
  std::function<void(std::size_t done, std::size_t total)> progress;  ///< optional progress report
};

/// values(i, j) = CKA(row layer i, column layer j); NaN where a layer has zero variance (listed in
/// `constant`, indices into the list of all layers: rows first, then columns when they differ).
struct similarity_result {
  matrix<double> values;
  std::vector<std::size_t> constant;
  Eigen::Index dropped_samples = 0;  ///< minibatch: samples of a final batch shorter than 4, left out
};

namespace detail {

/// How similarity_matrix computes the pair sums; `automatic` compares the flop counts.
enum class matrix_route { automatic, grams, features };

/// Linear kernel, full batch, feature statistics: each layer's centred features Xc (n×d) and squared row
/// norms k are kept; a pair costs one n×d_a×d_b product: n(n−3)·HSIC_u ∝ ‖Xc_aᵀXc_b‖²_F − n/(n−2)·k_a·k_b
/// + Σk_a·Σk_b/((n−1)(n−2)), and the biased sum is the first term alone (see linear_sums_features).
template <class T>
matrix<double> feature_route_sums(const std::vector<const matrix<T>*>& layers, estimator est) {
  const std::size_t count = layers.size();
  const Eigen::Index n = layers[0]->rows();
  std::vector<matrix<double>> xc(count);
  std::vector<vector<double>> k(count);
  for (std::size_t a = 0; a < count; ++a) {
    xc[a] = centered_columns<double>(*layers[a]);
    k[a] = xc[a].rowwise().squaredNorm();
  }
  const unbiased_feature_terms<double> terms(n);
  const Eigen::Index size = Eigen::Index(count);
  matrix<double> sums(size, size);
  for (std::size_t a = 0; a < count; ++a)
    for (std::size_t b = a; b < count; ++b) {
      double v = (xc[a].transpose() * xc[b]).squaredNorm();
      if (est == estimator::unbiased) v += terms(k[a], k[b]);
      sums(Eigen::Index(a), Eigen::Index(b)) = sums(Eigen::Index(b), Eigen::Index(a)) = v;
    }
  return sums;
}

/// The route similarity_matrix takes: per-layer feature statistics only for the linear kernel without a
/// minibatch, and only when the cost model below says they are cheaper.
template <class T>
matrix_route choose_route(const std::vector<const matrix<T>*>& layers, const matrix_options& o) {
  if (o.kernel != layer_kernel::linear || o.minibatch != 0 || layers.empty()) return matrix_route::grams;
  const std::size_t count = layers.size();
  const Eigen::Index n = layers[0]->rows();
  // Cost model, calibrated on 2 Zen 5 cores: the pair products of the feature route run at full GEMM
  // rate (2n·d_a·d_b flops each), while forming a Gram (n²·d flops) runs ~4× below it — first-touch page
  // faults of the n×n buffer and the O(n²) centring passes — and each tiled pair pass costs ~8n².
  // (12 layers, n = 2000, d = 256: features 131 ms, Grams 366 ms; d = 2048, n = 1000: Grams win.)
  double feature_cost = 0, gram_cost = 0;
  for (std::size_t a = 0; a < count; ++a) {
    gram_cost += 4.0 * double(n) * double(n) * double(layers[a]->cols());
    for (std::size_t b = a; b < count; ++b) {
      feature_cost += 2.0 * double(n) * double(layers[a]->cols()) * double(layers[b]->cols());
      gram_cost += 8.0 * double(n) * double(n);
    }
  }
  return feature_cost < gram_cost ? matrix_route::features : matrix_route::grams;
}

/// The centred Gram of one layer (or one batch of it) and whether it vanished (a constant layer).
/// x is viewed, not copied: float layers are converted inside the chunked Gram product.
template <class M>
matrix<double> layer_gram(const M& x, const matrix_options& o, estimator est, bool& constant) {
  matrix<double> k = o.kernel == layer_kernel::linear
                         ? centered_row_gram<double>(x)
                         : gram_of<double>(x, rbf_kernel::median(o.sigma_fraction, o.rule));
  const double raw = k.squaredNorm();
  const bool already_centred = o.kernel == layer_kernel::linear && est == estimator::biased;
  if (!already_centred) k = centered_dense<double>(std::move(k), est);
  const double eps = std::numeric_limits<double>::epsilon();
  constant = !(k.squaredNorm() > 64.0 * 64.0 * eps * eps * raw);
  return k;
}

}  // namespace detail

/// CKA between each layer of `rows` and each layer of `cols` (all n×dᵢ with the same n; widths may differ).
/// Pass the same vector twice (`similarity_matrix(layers, layers, o)`) for the square matrix: then each
/// Gram is formed once and the result is symmetric.
/// Full batch: every distinct layer's centred Gram (n×n, memory L·n²·8 bytes), then all inner products —
/// or, for the linear kernel when it takes fewer flops (layers narrower than n), each layer's centred
/// features and one n×d_a×d_b product per pair (memory L·n·d).
/// Minibatch (o.minibatch = B, Nguyen et al. 2021): unbiased HSIC summed over consecutive batches of B
/// samples — unscaled sums, each batch counting once — then the CKA ratio; memory L·B². A final batch of
/// fewer than 4 samples cannot give an unbiased HSIC and is left out (`dropped_samples`).
/// A layer of a median-bandwidth RBF gets its σ from its own distances (per batch in minibatch mode).
/// Throws cka::invalid_argument for empty lists, different sample counts, too few samples, a minibatch
/// size of 1 to 3, or NaN/Inf; a constant layer is not an error (NaN cells, listed in `constant`).
template <class T>
similarity_result similarity_matrix(const std::vector<matrix<T>>& rows, const std::vector<matrix<T>>& cols,
                                    const matrix_options& o = {});

/// Bytes of working memory similarity_matrix(rows, cols, o) will hold beyond its inputs: one n×n (or
/// B×B) Gram per distinct layer, or, on the feature route, one centred copy of each layer. Lets a caller
/// refuse or switch to a minibatch before allocating.
template <class T>
double similarity_matrix_bytes(const std::vector<matrix<T>>& rows, const std::vector<matrix<T>>& cols,
                               const matrix_options& o = {}) {
  std::vector<const matrix<T>*> layers;
  for (const auto& m : rows) layers.push_back(&m);
  if (&rows != &cols)
    for (const auto& m : cols) layers.push_back(&m);
  if (layers.empty()) return 0.0;
  const double n = double(layers[0]->rows()), batch = o.minibatch ? double(o.minibatch) : n;
  double bytes = 0;
  const bool features = detail::choose_route(layers, o) == detail::matrix_route::features;
  for (const auto* m : layers) bytes += 8.0 * (features ? n * double(m->cols()) : batch * batch);
  return bytes;
}

namespace detail {

template <class T>
similarity_result similarity_matrix_impl(const std::vector<matrix<T>>& rows, const std::vector<matrix<T>>& cols,
                                         const matrix_options& o, matrix_route route) {
  const char* fn = "similarity_matrix";
  const bool square = &rows == &cols;
  std::vector<const matrix<T>*> layers;
  for (const auto& m : rows) layers.push_back(&m);
  if (!square)
    for (const auto& m : cols) layers.push_back(&m);
  if (rows.empty() || cols.empty()) detail::fail_argument(fn, "needs at least one layer on each side");
  const Eigen::Index n = layers[0]->rows();
  for (std::size_t a = 0; a < layers.size(); ++a) {
    if (layers[a]->rows() != n) {
      detail::fail_argument(fn, "layer ", a, " has ", layers[a]->rows(), " samples but layer 0 has ", n);
    }
    detail::require_finite(fn, "a layer", *layers[a]);
  }
  if (o.minibatch != 0 && o.minibatch < 4) {
    detail::fail_argument(fn, "minibatch = ", o.minibatch, "; unbiased HSIC needs batches of at least 4");
  }
  const estimator est = o.minibatch ? estimator::unbiased : o.est;
  detail::require_samples(fn, "each layer", n, min_samples(est), detail::estimator_name(est));

  const std::size_t count = layers.size();
  const std::size_t col0 = square ? 0 : rows.size();
  const Eigen::Index batch = o.minibatch ? o.minibatch : n;
  const Eigen::Index batches = (n + batch - 1) / batch;
  const std::size_t total = std::size_t(batches) * count;
  std::size_t done = 0;
  similarity_result out;
  // hsic(a, b): summed centred inner products (the HSIC normalisers cancel in the ratio).
  matrix<double> hsic = matrix<double>::Zero(Eigen::Index(count), Eigen::Index(count));
  std::vector<char> constant(count, 1);
  std::vector<matrix<double>> grams(count);
  if (route == matrix_route::automatic) route = choose_route(layers, o);
  if (route == matrix_route::features && (o.kernel != layer_kernel::linear || o.minibatch != 0)) {
    fail_argument(fn, "the feature-statistics route needs the linear kernel and no minibatch");
  }
  if (route == matrix_route::features) {
    hsic = feature_route_sums(layers, est);
    // Constant columns are zeroed exactly, so a constant layer has a self-sum of exactly 0 (tested below).
    std::fill(constant.begin(), constant.end(), 0);
    if (o.progress) o.progress(1, 1);
  }
  for (Eigen::Index b0 = 0; route == matrix_route::grams && b0 < n; b0 += batch) {
    const Eigen::Index h = std::min(batch, n - b0);
    if (h < min_samples(est)) {
      out.dropped_samples += h;
      continue;
    }
    const double scale = o.minibatch ? 1.0 / (double(h) * double(h - 3)) : 1.0;
    for (std::size_t a = 0; a < count; ++a) {
      bool flat = false;
      grams[a] = detail::layer_gram(layers[a]->middleRows(b0, h), o, est, flat);
      if (!flat) constant[a] = 0;
      if (o.progress) o.progress(++done, total);
    }
    // All pair products, tile by tile: a block of columns of every Gram (~4 MB together) stays in cache
    // while every pair uses it, so each Gram is read from memory once rather than once per pair.
    const Eigen::Index width = std::max<Eigen::Index>(1, (Eigen::Index(1) << 19) / (Eigen::Index(count) * h));
    for (Eigen::Index j0 = 0; j0 < h; j0 += width) {
      const Eigen::Index w = std::min(width, h - j0);
      for (std::size_t a = 0; a < count; ++a)
        for (std::size_t b = a; b < count; ++b) {
          hsic(Eigen::Index(a), Eigen::Index(b)) +=
              scale * grams[a].middleCols(j0, w).cwiseProduct(grams[b].middleCols(j0, w)).sum();
        }
    }
  }
  for (Eigen::Index a = 0; a < hsic.rows(); ++a)
    for (Eigen::Index b = 0; b < a; ++b) hsic(a, b) = hsic(b, a);
  for (std::size_t a = 0; a < count; ++a) {
    if (constant[a] || !(hsic(Eigen::Index(a), Eigen::Index(a)) > 0)) {
      constant[a] = 1;
      out.constant.push_back(a);
    }
  }
  out.values.resize(Eigen::Index(rows.size()), Eigen::Index(cols.size()));
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; j < cols.size(); ++j) {
      const Eigen::Index a = Eigen::Index(i), b = Eigen::Index(col0 + j);
      out.values(a, Eigen::Index(j)) =
          (constant[i] || constant[col0 + j]) ? std::numeric_limits<double>::quiet_NaN()
                                              : hsic(a, b) / std::sqrt(hsic(a, a) * hsic(b, b));
    }
  return out;
}

}  // namespace detail

template <class T>
similarity_result similarity_matrix(const std::vector<matrix<T>>& rows, const std::vector<matrix<T>>& cols,
                                    const matrix_options& o) {
  return detail::similarity_matrix_impl(rows, cols, o, detail::matrix_route::automatic);
}

}  // namespace cka
