#pragma once
/// \file inference_types.hpp
/// The options and results of the significance tests and intervals (inference.hpp): what a caller passes
/// and gets back, without the engines.

#include <cka/detail/scalar.hpp>
#include <cka/estimator.hpp>
#include <cka/undefined_layer.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace cka {

/// Options of permutation_test.
struct permutation_options {
  /// The most permutations one test draws (2³²): the p-value's resolution 1/(1 + count) is then finer than
  /// any use needs, and every count is exact in double.
  static constexpr std::size_t max_count = std::size_t(1) << 32;
  std::size_t count = 1000;  ///< permutations drawn, 1 … max_count
  std::uint64_t seed = 0;    ///< the family of permutations: the same seed gives the same p-value
};

/// CKA, its permutation p-value (1 + #{T_π ≥ T})/(1 + count), and the number of permutations.
struct permutation_result {
  double value;
  double p_value;
  std::size_t permutations;
};

/// CKA, its z-score under the permutation null (T − E)/sd, and the one-sided p-value P(T_π ≥ T).
/// `degenerate`: the permutation null has no spread (every permutation gives the observed value — a
/// permutation-invariant layer, such as one-hot rows of distinct classes under the biased estimator); then
/// z = 0 and p = 1, the exact permutation p-value.
struct independence_result {
  double value;
  double z;
  double p_value;
  bool degenerate = false;
};

/// Options of jackknife.
struct jackknife_options {
  double level = 0.95;  ///< the coverage of the interval
};

/// CKA, the jackknife standard error √((n−1)/n · Σ(θ₋ᵢ − θ̄)²), and the normal interval value ± z·se.
struct jackknife_result {
  double value;
  double standard_error;
  double lower;
  double upper;
  std::vector<double> leave_one_out;  ///< θ₋ᵢ: CKA without sample i
  /// The first sample without which a representation has no variance left (all the others equal, say),
  /// or −1. Then that θ₋ᵢ is undefined, and so are the standard error and the interval (NaN here; the
  /// public jackknife throws cka::domain_error naming the sample).
  long long undefined_without = -1;
};

/// Options of similarity_tests.
struct similarity_tests_options {
  estimator est = estimator::biased;
  std::size_t permutations = 0;  ///< 0: analytic p-values (independence_test); else a permutation test of this size
  std::uint64_t seed = 0;        ///< the permutation family (the same for every pair)
  double level = 0;              ///< in (0, 1): jackknife intervals at this level; 0: none
  std::function<void(std::size_t done, std::size_t total)> progress;  ///< optional, once per pair
  /// The most memory the prepared layers may hold (similarity_tests_bytes); more is an invalid_argument
  /// before anything is allocated. 0: half of the physical memory.
  std::size_t max_bytes = 0;
};

/// The fewest samples similarity_tests accepts under `o`: 4 with the biased estimator; with the unbiased
/// one 5, or 6 with intervals (a leave-one-out unbiased estimate needs 5 samples left).
inline Eigen::Index min_samples(const similarity_tests_options& o) {
  return o.est == estimator::biased ? 4 : (o.level > 0 ? 6 : 5);
}

/// Per pair of layers: CKA, its p-value against independence, and (with a level) the jackknife interval.
/// NaN in the rows and columns of layers without variance (listed in `undefined` with the cause, as in
/// similarity_matrix). `degenerate` lists the layers whose permutation null has no spread
/// (permutation-invariant: one-hot rows of distinct classes, say): their p-values are 1, exactly (every
/// permutation gives the observed value).
struct similarity_tests_result {
  matrix<double> values, p_value, lower, upper;
  std::vector<undefined_layer> undefined;  ///< layers without variance, with the cause
  std::vector<std::size_t> degenerate;
};

}  // namespace cka
