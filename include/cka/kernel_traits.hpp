#pragma once
/// \file kernel_traits.hpp
/// How a kernel type's Gram is built (`kernel_form`) and the traits that say so, free of Eigen so that CUDA
/// translation units can name the kernels. The forms and what each asks of a kernel are in kernels.hpp.

namespace cka {

/// How a kernel's Gram is built; see kernels.hpp.
enum class kernel_form { generic, inner_product, squared_distance };

/// Traits of a kernel type; the default is a pairwise `operator()`.
template <class Kernel>
struct kernel_traits {
  static constexpr kernel_form form = kernel_form::generic;
};

}  // namespace cka
