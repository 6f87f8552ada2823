#pragma once
/// \file undefined_layer.hpp
/// How the matrix functions (similarity_matrix, similarity_tests) report a layer whose CKA is undefined:
/// its index and the cause, its cells NaN.

#include <cka/estimator.hpp>

#include <cstddef>
#include <string>

namespace cka {

/// A layer whose CKA is undefined, and why: zero variance, or (RBF with a median bandwidth) a median
/// squared distance of zero in some batch.
struct undefined_layer {
  std::size_t layer;  ///< index into the list of all layers: rows first, then columns for a rectangular matrix
  std::string cause;
};

/// The cause recorded for a layer whose self-HSIC vanishes under `est`. Biased: all its samples are equal.
/// Unbiased: its U-centered Gram is zero, which also happens for samples that differ but are all equally
/// similar (one-hot rows of distinct classes: a Gram of I).
inline const char* zero_variance_cause(estimator est) {
  return est == estimator::biased
             ? "zero variance (all samples equal)"
             : "zero variance under the unbiased estimator (its U-centered Gram is zero: all samples equal, or all "
               "pairs of samples equally similar, such as one-hot rows of distinct classes)";
}

}  // namespace cka
