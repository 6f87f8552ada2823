// libFuzzer target for the .npy reader: any bytes must either parse or throw cka::npy::error — never crash,
// hang, read out of bounds or allocate more than the input justifies. Built with clang++
// -fsanitize=fuzzer,address,undefined by tests/fuzz/run.cmake, which the suite runs for a bounded time.
#include <cka/npy.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const cka::npy::array a = cka::npy::parse(data, size);
    // The values must fit in what the input held.
    if (std::size_t(a.values.size()) * (a.float32 ? 4 : 8) > size) __builtin_trap();
  } catch (const cka::npy::error&) {
  }
  return 0;
}
