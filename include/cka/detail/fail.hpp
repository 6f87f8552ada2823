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

}  // namespace cka::detail
