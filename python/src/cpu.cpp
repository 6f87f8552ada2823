// cka._cpu: what the processor can run, asked before a compiled core is imported — importing a core built
// for instructions the processor lacks would end the interpreter with SIGILL, not raise.

#include <nanobind/nanobind.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace {

/// Whether the processor and the operating system support x86-64-v3 (the psABI level GCC and Clang
/// target with -march=x86-64-v3): AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT, MOVBE, XSAVE with the AVX
/// state enabled by the OS (XCR0 bits 1 and 2), over x86-64-v2 (SSE3 to SSE4.2, SSSE3, POPCNT, CX16,
/// LAHF/SAHF).
bool x86_64_v3() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  constexpr unsigned sse3 = 1u << 0, ssse3 = 1u << 9, fma = 1u << 12, cx16 = 1u << 13, sse41 = 1u << 19,
                     sse42 = 1u << 20, movbe = 1u << 22, popcnt = 1u << 23, osxsave = 1u << 27, avx = 1u << 28,
                     f16c = 1u << 29;
  constexpr unsigned leaf1 = sse3 | ssse3 | fma | cx16 | sse41 | sse42 | movbe | popcnt | osxsave | avx | f16c;
  if ((c & leaf1) != leaf1) return false;
  unsigned xcr0_low = 0, xcr0_high = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  if ((xcr0_low & 0x6u) != 0x6u) return false;  // the OS saves the SSE and AVX registers
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  constexpr unsigned bmi1 = 1u << 3, avx2 = 1u << 5, bmi2 = 1u << 8;
  if ((b & (bmi1 | avx2 | bmi2)) != (bmi1 | avx2 | bmi2)) return false;
  if (!__get_cpuid(0x80000001u, &a, &b, &c, &d)) return false;
  constexpr unsigned lahf = 1u << 0, lzcnt = 1u << 5;
  return (c & (lahf | lzcnt)) == (lahf | lzcnt);
#else
  return false;
#endif
}

}  // namespace

NB_MODULE(_cpu, m) {
  m.doc() = "What this processor can run; cka._core uses it to pick a compiled core.";
  m.def("x86_64_v3", &x86_64_v3, "Whether the processor and OS support x86-64-v3 (AVX2, FMA, BMI1/2, ...).");
}
