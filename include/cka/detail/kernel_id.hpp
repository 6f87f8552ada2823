#pragma once
// Private: which of the library's own kernels a type is, read from its kernel_traits, `none` where a
// specialisation (a user's) does not name one. The one list of the kernels the engines compute themselves.

#include <cka/kernel_traits.hpp>

#include <type_traits>

namespace cka::detail {

template <class K, class = void>
struct builtin_of {
  static constexpr builtin_kernel value = builtin_kernel::none;
};
template <class K>
struct builtin_of<K, std::void_t<decltype(kernel_traits<K>::builtin)>> {
  static constexpr builtin_kernel value = kernel_traits<K>::builtin;
};

/// The builtin kernel K is (none for a user's kernel).
template <class K>
constexpr builtin_kernel builtin_kernel_of = builtin_of<std::remove_cv_t<K>>::value;

/// Whether K is the library's kernel `b`.
template <class K>
constexpr bool is_builtin(builtin_kernel b) {
  return builtin_kernel_of<K> == b;
}

}  // namespace cka::detail
