# Run with: cmake -DCKA_SOURCE=<src> -DWORK=<dir> -P only_eigen.cmake
# A machine with only Eigen: every optional dependency is hidden from find_package. Configure must succeed
# and say what it skips, and `cmake --install` must install the headers, the package files and the
# pkg-config file without anything having been built.
file(REMOVE_RECURSE "${WORK}")
set(hide)
foreach(pkg Catch2 Boost xtensor benchmark Torch Python3 OpenMP CLI11 nlohmann_json)
  list(APPEND hide -DCMAKE_DISABLE_FIND_PACKAGE_${pkg}=ON)
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${CKA_SOURCE}" -B "${WORK}/build" ${hide} -DCKA_BUILD_TESTS=ON
                        -DCKA_BUILD_BENCH=ON -DCKA_BUILD_EXAMPLES=ON -DCKA_BUILD_TOOLS=ON -DCKA_INSTALL=ON
                        -DCMAKE_INSTALL_PREFIX=${WORK}/prefix
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configure with only Eigen failed:\n${out}\n${err}")
endif()
foreach(expected "Catch2 v2 not found" "Google Benchmark not found" "LibTorch not found" "cka-similarity skipped")
  string(FIND "${out}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "configure did not say '${expected}':\n${out}")
  endif()
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} --install "${WORK}/build" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install without a build failed:\n${out}\n${err}")
endif()
foreach(f include/cka/cka.hpp include/cka/state.hpp share/cmake/cka/cka-config.cmake share/pkgconfig/cka.pc
          share/doc/cka/LICENSE)
  if(NOT EXISTS "${WORK}/prefix/${f}")
    message(FATAL_ERROR "cmake --install did not install ${f}")
  endif()
endforeach()
message("configure with only Eigen: ok (tests, benchmarks and the LibTorch example skipped with a message)")
