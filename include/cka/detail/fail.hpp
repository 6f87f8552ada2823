#pragma once
// Private: the library's exceptions with a message that starts with the function's name, assembled from
// parts. Free of Eigen, so that CUDA translation units (the device backend) can throw them too.

#include <cka/errors.hpp>

#include <sstream>
#include <string>

namespace cka::detail {

template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << parts);
  return os.str();
}

template <class... Parts>
[[noreturn]] void fail_argument(const char* fn, const Parts&... parts) {
  throw invalid_argument(concat("cka::", fn, ": ", parts...));
}

template <class... Parts>
[[noreturn]] void fail_domain(const char* fn, const Parts&... parts) {
  throw domain_error(concat("cka::", fn, ": ", parts...));
}

template <class... Parts>
[[noreturn]] void fail_backend(const char* fn, const Parts&... parts) {
  throw backend_error(concat("cka::", fn, ": ", parts...));
}

/// Thrown (as the cka::domain_error it is) when a median bandwidth comes out zero; similarity_matrix
/// catches it to give that layer NaN cells instead of losing the whole matrix.
class zero_bandwidth : public domain_error {
 public:
  using domain_error::domain_error;
};

/// The overflow of a kernel value (a polynomial of high degree, an RBF of distances too large to square).
[[noreturn]] inline void fail_kernel_overflow(const char* fn) {
  fail_domain(fn, "overflow: a kernel value exceeds the range of the accumulation type (e.g. a polynomial of high "
                  "degree, or distances too large to square); rescale the inputs or the kernel parameters");
}

/// The overflow of HSIC itself: its value (or its sum before the division) beyond the result type's range.
template <class V>
[[noreturn]] void fail_hsic_overflow(const char* fn, const V& value) {
  fail_domain(fn, "overflow: HSIC exceeds the range of the result type (", value, "); rescale the Grams");
}

/// The overflow of a loss or its gradient in the result type (an RCKA loss's gradient goes as 1/|logits|:
/// float logits near 1e-40 have one beyond float), or of a loss times large weights.
[[noreturn]] inline void fail_loss_overflow(const char* fn) {
  fail_domain(fn, "overflow: the loss or its gradient exceeds the range of the result type; rescale the logits (the "
                  "gradient goes as 1/|logits|) or the weights");
}

/// The overflow of a squared distance between two samples.
[[noreturn]] inline void fail_distance_overflow(const char* fn) {
  fail_domain(fn, "overflow: a squared distance exceeds the range of the accumulation type; rescale the inputs and "
                  "the bandwidth together (a median-rule bandwidth does so itself)");
}

}  // namespace cka::detail
