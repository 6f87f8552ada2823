#pragma once
// cka-similarity: what a finished run reports — its warnings, and the view the CSV, JSON and SVG
// renderings take (names, values, p-values and intervals, title, metadata).

#include "options.hpp"
#include "processes.hpp"
#include "render.hpp"

#include <cka/inference.hpp>
#include <cka/similarity_matrix.hpp>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace tool {

/// An axis title from the command-line arguments of one side: their last path components, comma-separated.
inline std::string axis_title(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) {
    std::filesystem::path p(a);
    std::string name = p.filename().string();
    if (name.empty() || name == ".") name = p.parent_path().filename().string();
    if (name.empty()) name = a;
    out += (out.empty() ? "" : ", ") + name;
  }
  return out;
}

/// The layers' rows and columns of a run: names [0, row_count) are the rows; with `versus` the rest are
/// the columns, else the rows are the columns too.
struct run_layers {
  std::vector<std::string> names, files;  ///< files: empty for the demo
  std::size_t row_count = 0;
  bool versus = false;
  /// The name a message gives layer a: its file, or the demo's name.
  const std::string& who(std::size_t a) const { return files.empty() ? names[a] : files[a]; }
};

/// The warnings of a finished run (rank 0's): layers without variance, pairs without an interval,
/// permutation-invariant layers, samples left out by a minibatch.
inline void warn_about_result(const config& cfg, const run_layers& l, const cka::similarity_result& result,
                              const cka::similarity_tests_result& tests) {
  for (const auto& u : result.undefined) warn(cfg, l.who(u.layer) + ": " + u.cause + "; its cells are nan");
  if (cfg.ci > 0) {
    for (Eigen::Index i = 0; i < tests.values.rows(); ++i)
      for (Eigen::Index j = 0; j < tests.values.cols(); ++j) {
        if (std::isnan(tests.values(i, j)) || !std::isnan(tests.lower(i, j)) || (!l.versus && j < i)) continue;
        warn(cfg, l.names[std::size_t(i)] + " vs " + l.names[std::size_t(l.versus ? Eigen::Index(l.row_count) + j : j)] +
                      ": no jackknife interval (without one sample a layer has no variance left); its bounds are nan");
      }
  }
  for (const std::size_t a : tests.degenerate) {
    warn(cfg, l.who(a) + ": every permutation of its samples gives the same CKA (a permutation-invariant layer, "
                         "such as one-hot rows of distinct classes), so its p-values are 1");
  }
  if (result.dropped_samples) {
    warn(cfg, "the last " + std::to_string(result.dropped_samples) + " samples (a batch shorter than 4) were left out");
  }
}

/// The renderings' view of a finished run over n samples.
inline matrix_view view_of(const config& cfg, const run_layers& l, Eigen::Index n, const cka::similarity_result& result,
                           const cka::similarity_tests_result& tests) {
  const bool rbf = cfg.kernel == "rbf";
  matrix_view view;
  view.picture.rows.assign(l.names.begin(), l.names.begin() + std::ptrdiff_t(l.row_count));
  view.picture.cols = l.versus ? std::vector<std::string>(l.names.begin() + std::ptrdiff_t(l.row_count), l.names.end())
                              : view.picture.rows;
  view.values = result.values;
  if (!cfg.pvalues.empty()) view.p_value = tests.p_value;
  if (cfg.ci > 0) {
    view.lower = tests.lower;
    view.upper = tests.upper;
  }
  view.precision = cfg.precision;
  view.picture.vmin = cfg.vmin;
  view.picture.vmax = cfg.vmax;
  view.picture.unit_range = cfg.unit_range;
  const std::string estimator = cfg.minibatch ? "minibatch " + std::to_string(cfg.minibatch) + ", unbiased"
                                : cfg.debiased ? "debiased" : "biased";
  std::string bandwidth;
  if (rbf) {
    bandwidth = cfg.sigma > 0 ? "sigma = " + number(cfg.sigma, 6)
                              : "sigma^2 = " + (cfg.sigma_fraction != 1.0 ? number(cfg.sigma_fraction, 6) + "^2 x " : std::string()) +
                                    "median (" + cfg.rule + ")";
  }
  view.picture.title = cfg.title.empty() ? (rbf ? "RBF CKA (" + bandwidth + "), " : std::string("linear CKA, ")) + estimator +
                                       ", n = " + std::to_string(n)
                                 : cfg.title;
  if (l.versus) {
    view.picture.row_axis = axis_title(cfg.rows);
    view.picture.col_axis = axis_title(cfg.cols);
  }
  view.meta["kernel"] = cfg.kernel;
  if (rbf) view.meta["bandwidth"] = bandwidth;
  view.meta["estimator"] = estimator;
  view.meta["n"] = n;
  nlohmann::json undefined = nlohmann::json::array();
  for (const auto& u : result.undefined) undefined.push_back({{"layer", l.names[u.layer]}, {"cause", u.cause}});
  view.meta["undefined"] = undefined;
  if (!cfg.pvalues.empty()) {
    view.meta["p_value_method"] = cfg.pvalues == "analytic" ? "analytic (exact permutation moments)"
                                                             : cfg.pvalues + " permutations, seed " + std::to_string(cfg.seed);
  }
  if (cfg.ci > 0) view.meta["interval"] = "jackknife, level " + number(cfg.ci, 6);
  return view;
}

}  // namespace tool
