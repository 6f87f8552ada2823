# Builds tests/fuzz/fuzz_npy.cpp with clang++ and libFuzzer (+ASan, UBSan) and fuzzes the .npy reader for
# SECONDS seconds from the seed corpus. Run: cmake -DSOURCE=<repo> -DWORK=<dir> -DSECONDS=20 -P run.cmake
# Exits 77 (CTest: skipped) when clang++ or libFuzzer is not installed (Debian: clang, libclang-rt-14-dev).
find_program(CLANGXX NAMES clang++ clang++-14)
if(NOT CLANGXX)
  message("fuzz_npy skipped: clang++ not found (install Debian's clang and libclang-rt-14-dev)")
  cmake_language(EXIT 77)
endif()
file(MAKE_DIRECTORY "${WORK}/corpus")
file(COPY "${SOURCE}/tests/fuzz/corpus/" DESTINATION "${WORK}/corpus")
execute_process(COMMAND ${CLANGXX} -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
                        -I${SOURCE}/include -I/usr/include/eigen3 ${SOURCE}/tests/fuzz/fuzz_npy.cpp -o ${WORK}/fuzz_npy
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  if(err MATCHES "fuzzer")
    message("fuzz_npy skipped: libFuzzer not available (install Debian's libclang-rt-14-dev)\n${err}")
    cmake_language(EXIT 77)
  endif()
  message(FATAL_ERROR "fuzz_npy failed to build:\n${err}")
endif()
execute_process(COMMAND ${WORK}/fuzz_npy -max_total_time=${SECONDS} -rss_limit_mb=1024 -malloc_limit_mb=256
                        -print_final_stats=1 ${WORK}/corpus
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_npy found a failure (exit ${rc}); the crashing input is in the working directory")
endif()
