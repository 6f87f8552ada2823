#pragma once
/// \file version.hpp
/// The library's version; CMake reads it from here, so this is the one place it is written.

#define CKA_VERSION_MAJOR 0
#define CKA_VERSION_MINOR 1
#define CKA_VERSION_PATCH 0

namespace cka {
/// Version as {major, minor, patch}.
struct version_info {
  int major, minor, patch;
};
inline constexpr version_info version{CKA_VERSION_MAJOR, CKA_VERSION_MINOR, CKA_VERSION_PATCH};
}  // namespace cka
