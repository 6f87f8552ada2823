#pragma once
// cka-similarity: the memory plan of a run — how much it may hold, and whether the layers and the
// library's working memory (cka::similarity_matrix_bytes) fit — decided before any layer is read.

#include "layers.hpp"
#include "options.hpp"
#include "processes.hpp"

#include <cka/compute.hpp>
#include <cka/inference.hpp>
#include <cka/kernels.hpp>
#include <cka/similarity_matrix.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace tool {

/// A byte count for a message: "3.25 GB", "12.6 MB" or "900 bytes".
inline std::string gigabytes(double bytes) {
  char buf[48];
  if (bytes >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  } else if (bytes >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f bytes", bytes);
  }
  return buf;
}

/// "a.npy", "a.npy and b.npy", or "a.npy and 11 more layers": the files a message is about.
inline std::string which_layers(const std::vector<std::string>& files) {
  if (files.empty()) return "the demo layers";
  if (files.size() == 1) return files[0];
  if (files.size() == 2) return files[0] + " and " + files[1];
  return files[0] + " and " + std::to_string(files.size() - 1) + " more layers";
}

/// The compute options of a run over layers of n samples and the given widths, held in float when
/// `narrow` (else double). The budget is --memory, else 80% of this machine's memory (shared among its
/// processes), at least 1 GB. On the tile engine (`tiles`) the layers and the library's working memory
/// must fit it (the stored kernel tiles where they fit what the layers leave, else the centered copies and
/// a few tiles per thread), and the work is shared among the processes; with --minibatch the layers and
/// one B×B Gram per layer must fit, with --pvalues or --ci the layers and `test_bytes`
/// (cka::similarity_tests_bytes: a centered Gram or centered columns per layer), and the budget they leave
/// is the library's max_bytes. Throws failure naming the files otherwise.
inline cka::compute_options plan_memory(const config& cfg, const std::vector<std::string>& files, Eigen::Index n,
                                        const std::vector<Eigen::Index>& widths, bool narrow, bool tiles,
                                        const cka::rbf_kernel& kernel, const cka::similarity_matrix_options& options,
                                        double test_bytes) {
  double data = 0;
  for (const Eigen::Index w : widths) data += (narrow ? 4.0 : 8.0) * double(n) * double(w);
  const double budget = cfg.memory_bytes > 0 ? cfg.memory_bytes : std::max(0.8 * physical_memory(), 1e9);
  cka::compute_options compute;
  if (tiles) {
    compute.max_bytes = std::size_t(std::max(budget - data, 1.0));  // what the layers leave (0 would mean "default")
    compute.processes = world.team;
    const double work = narrow ? cka::similarity_matrix_bytes<float>(n, widths, kernel, options, compute)
                               : cka::similarity_matrix_bytes<double>(n, widths, kernel, options, compute);
    if (data + work > budget) {
      throw failure(which_layers(files) + ": n = " + std::to_string(n) + " needs " + gigabytes(data + work) +
                    " for the layers and their centered copies, more than " + gigabytes(budget) +
                    " of memory (80% of this machine's, or --memory)");
    }
    return compute;
  }
  // The tests (similarity_tests: a centered n×n Gram or centered columns per layer), or one B×B Gram per
  // layer for a minibatch (the Gram route of any kernel, the linear kernel's bytes standing for all).
  const bool tests = cfg.minibatch == 0;
  const double grams = tests ? test_bytes : cka::similarity_matrix_bytes<double>(n, widths, cka::linear_kernel{}, options);
  if (data + grams > budget) {
    throw failure(which_layers(files) + ": n = " + std::to_string(n) + " needs " + gigabytes(data + grams) + " (" +
                  gigabytes(grams) + (tests ? " for the tests" : " of B x B Gram matrices") + "), more than " +
                  gigabytes(budget) + " of memory (80% of this machine's, or --memory); " +
                  (tests ? "--pvalues and --ci hold each layer's centered n x n Gram (its centered columns for narrow layers with the linear kernel)"
                         : "--minibatch holds one B x B Gram per layer"));
  }
  if (tests) compute.max_bytes = std::size_t(std::max(budget - data, 1.0));
  return compute;
}

}  // namespace tool
