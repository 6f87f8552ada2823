# Run with: cmake -DCKA_SOURCE=<src> -DWORK=<dir> -DJOBS=<n> -P clang_suite.cmake
# The unit tests built with clang++ in C++17 mode (warnings as errors) and run: the library must compile
# under both compilers CI has (g++ builds the main tree). Prints "skipped" when clang++ is missing. MPI is
# left out (the MPI tests and the tool build with g++), and the Python package's second core (the same
# sources with another -march); the tests are built at -O1 and the Python core, compiled but not run
# here, at -O0, to keep CI's time. It builds without the BLAS (CKA_BLAS=OFF): the main build's tests run
# the products through OpenBLAS, these through Eigen.
find_program(CLANGXX NAMES clang++ clang++-14)
if(NOT CLANGXX)
  message("clang_suite: skipped: clang++ not found (Debian: clang)")
  return()
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${CKA_SOURCE}" -B "${WORK}" -DCMAKE_CXX_COMPILER=${CLANGXX}
                        -DCMAKE_BUILD_TYPE=Release -DCKA_WERROR=ON -DCKA_BUILD_TESTS=ON -DCKA_BUILD_BENCH=OFF
                        -DCKA_BUILD_EXAMPLES=OFF -DCKA_BUILD_TOOLS=OFF -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON
                        -DCKA_PYTHON_X86_64_V3=OFF -DCKA_TEST_OPTIMIZATION=-O1
                        -DCKA_PYTHON_OPTIMIZATION=-O0 -DCKA_BLAS=OFF
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "clang_suite: configure failed:\n${out}\n${err}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK}" -j ${JOBS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  string(REGEX MATCHALL "[^\n]*error[^\n]*" errors "${out}\n${err}")
  message(FATAL_ERROR "clang_suite: the build with clang++ failed:\n${errors}")
endif()
execute_process(COMMAND ${CMAKE_CTEST_COMMAND} --test-dir "${WORK}" -R "^test_" --output-on-failure --no-tests=error
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "clang_suite: unit tests failed under clang++:\n${err}")
endif()
