#pragma once
/// \file errors.hpp
/// The exceptions the library throws.
///
/// - `cka::invalid_argument` (a `std::invalid_argument`): the call itself is wrong — sample counts that
///   differ, too few samples for the estimator, NaN or infinity in an input, a Gram matrix that is not
///   square or not symmetric, a kernel parameter out of range.
/// - `cka::domain_error` (a `std::domain_error`): the call is well formed but the quantity is undefined for
///   these data — a representation with zero variance, so that a self-HSIC in a CKA denominator vanishes.
///
/// Every message starts with the function's name (`cka::linear_cka: ...`) and names the argument and the
/// values at fault. Numerical outcomes are never clamped: a debiased CKA can be negative and is returned so.

#include <stdexcept>
#include <string>

namespace cka {

/// Thrown for malformed input: sizes, sample counts, non-finite values, asymmetric Grams, bad parameters.
class invalid_argument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Thrown when the requested quantity is undefined for well-formed input (e.g. CKA of a constant layer).
class domain_error : public std::domain_error {
 public:
  using std::domain_error::domain_error;
};

/// Thrown when a backend or a resource fails (CUDA, cuBLAS, device memory, MPI limits, an internal
/// invariant): retrying with the same data will not help, and the data are not at fault.
class backend_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace cka
