#pragma once
/// \file kernel_traits.hpp
/// How a kernel type's Gram is built (`kernel_form`), and which of the library's own kernels it is
/// (`builtin_kernel`), in the traits that say so. A vocabulary header: it includes nothing of cka's and is
/// free of Eigen, so that private code and CUDA translation units can name the kernels. The forms and what
/// each asks of a kernel are in kernels.hpp.

namespace cka {

/// How a kernel's Gram is built; see kernels.hpp.
enum class kernel_form { generic, inner_product, squared_distance };

/// Which of the library's own kernels a type is. The engines that compute kernel values themselves (the
/// host tile engine for the linear and polynomial kernels and the RBF kernel, the device engine for all
/// three) dispatch on it; a user's kernel is `none` and reaches the host engines through its form.
enum class builtin_kernel { none, linear, polynomial, rbf };

/// Traits of a kernel type; the default is a pairwise `operator()`. A specialisation for a user's kernel
/// names its `form` and may leave `builtin` out (then it is `none`).
template <class Kernel>
struct kernel_traits {
  static constexpr kernel_form form = kernel_form::generic;
  static constexpr builtin_kernel builtin = builtin_kernel::none;
};

}  // namespace cka
