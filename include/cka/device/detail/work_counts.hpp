#pragma once
// Private: the record a context may point at, where the backend counts what it runs.

#include <cstdint>

namespace cka::device::detail {

/// Launches (algorithm and product calls) and synchronisations (values read back to the host) that the
/// device functions ran through a context pointing at this record.
struct work_counts {
  std::int64_t launches = 0;
  std::int64_t syncs = 0;
};

}  // namespace cka::device::detail
