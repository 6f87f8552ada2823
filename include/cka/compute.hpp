#pragma once
/// \file compute.hpp
/// How much memory a computation may hold, which decides between the in-memory and the tiled routes.

#include <cstddef>

#include <unistd.h>

namespace cka {

/// Options of the functions that can run in memory or in tiles (kernel_cka).
/// `max_bytes` bounds the working memory beyond the inputs: a route that would hold more is not taken.
/// 0 (the default) means half of the machine's physical memory.
struct compute_options {
  std::size_t max_bytes = 0;
};

namespace detail {

/// The budget of `o` in bytes.
inline double memory_budget(const compute_options& o) {
  if (o.max_bytes > 0) return double(o.max_bytes);
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? 0.5 * double(pages) * double(page) : double(std::size_t(1) << 32);
}

}  // namespace detail
}  // namespace cka
