// libFuzzer target for the .npy reader and the .npz directory reader: any bytes must either parse or throw
// cka::npy::error — never crash,
// hang, read out of bounds or allocate more than the input justifies. Built with clang++
// -fsanitize=fuzzer,address,undefined by tests/fuzz/run.cmake, which the suite runs for a bounded time.
#include <cka/npy.hpp>
#include <cka/npy_map.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const cka::npy::array a = cka::npy::parse(data, size);
    // The values must fit in what the input held.
    if (std::size_t(a.values.size()) * 2 > size) __builtin_trap();
  } catch (const cka::npy::error&) {
  }
  try {
    // Every member must lie inside the input.
    for (const auto& m : cka::npy::npz_members(data, size))
      if (m.offset > size || m.size > size - m.offset) __builtin_trap();
  } catch (const cka::npy::error&) {
  }
  return 0;
}
