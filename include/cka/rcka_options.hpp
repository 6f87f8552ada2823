#pragma once
/// \file rcka_options.hpp
/// The options and the value type of the RCKA losses (rcka.hpp), free of Eigen so that CUDA translation
/// units (cka/device/cuda.hpp) can name them.

#include <cka/detail/fail.hpp>
#include <cka/estimator.hpp>

#include <cstdint>

namespace cka::rcka {

/// How two relation Grams are compared.
/// - `centered = true` (default): true CKA with estimator `est`.
/// - `{centered = false, row_normalize = true}`: the alignment of the paper's official code — the
///   uncentered cosine of the Grams after scaling each Gram row i by 1/√G_ii.
/// - `{centered = false, row_normalize = false}`: the plain uncentered cosine of the Grams.
/// `row_normalize` with `centered = true` scales the rows first and then applies H·H; it needs the
/// biased estimator (the U-centering is defined for symmetric Grams only).
/// `on_undefined` says what a term whose alignment is undefined does — a constant (e.g. zero-initialised)
/// student or teacher, a dead (all-zero) channel, a batch below 2 (4 for the unbiased estimator), a zero
/// row under row_normalize — all ordinary in training:
/// - `skip` (default): the term contributes 0 to the value and 0 to the gradient and is counted in
///   `loss_result::skipped`; patch_loss averages over the channels where it is defined.
/// - `raise`: cka::invalid_argument (too few samples) or cka::domain_error (no variance), as CKA itself.
enum class undefined_policy { skip, raise };

/// The scalar of a loss's large products (its Grams and its gradient's product) for float input; double
/// input always computes in double.
/// - `exact` (default): double, as everything else: value and gradient are exact to float.
/// - `input`: float, at about twice the rate of double on a CPU (PyTorch's choice). Centering, the sums, the
///   ratios and the scaling stay in double and the products' factors are scaled to magnitudes near 1, so
///   any finite input stays in range; the products' rounding leaves an error of order √k·2⁻²⁴ relative to
///   the Grams' norms (k the products' depth). Measured at B = 256, C = 1000: the alignment (in [−1, 1])
///   moves by ≤ 3e-8 and the gradient by ≈ 5e-7/√loss of its norm (it shrinks as √loss near the teacher;
///   the rounding does not); tests/test_rcka.cpp holds every loss to 4·√k·2⁻²⁴ (over √loss for the
///   gradient). The feature-space route of the unbiased estimator (d_s + d_t < n) keeps double products;
///   so does the CUDA backend.
enum class product_precision { exact, input };

struct relation_options {
  bool centered = true;
  bool row_normalize = false;
  estimator est = estimator::biased;
  undefined_policy on_undefined = undefined_policy::skip;
  product_precision products = product_precision::exact;
};

/// Weights of the terms of rcka_loss: finite (negative ones are allowed).
struct rcka_weights {
  double sample = 1.0;
  double cls = 1.0;
  /// Throws cka::invalid_argument naming fn and both weights where one is NaN or infinite.
  void require_finite(const char* fn) const {
    if (!(sample - sample == 0.0 && cls - cls == 0.0)) {
      detail::fail_argument(fn, "weights sample = ", sample, " and cls = ", cls, " must be finite");
    }
  }
};

/// A loss value and the number of undefined terms skipped: what the forms that write the gradient into
/// the caller's view return (rcka::loss_result without the gradient).
template <class T>
struct loss_value {
  T value;
  std::int64_t skipped;
};

}  // namespace cka::rcka
