# Run with: cmake -DCKA_SOURCE=<src> -DWORK=<dir> -DMODE=install|subdirectory -P check.cmake
# Configures, builds and runs tests/consumer the way a downstream project would.
file(REMOVE_RECURSE "${WORK}")
function(step)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer check (${MODE}) failed at: ${ARGV}")
  endif()
endfunction()
if(MODE STREQUAL "install")
  # The Python package is not part of a CMake install (pip installs it; python_pip_install checks that).
  step(${CMAKE_COMMAND} -S "${CKA_SOURCE}" -B "${WORK}/cka" -DCKA_BUILD_TESTS=OFF -DCKA_BUILD_EXAMPLES=OFF
       -DCKA_BUILD_BENCH=OFF -DCKA_BUILD_TOOLS=ON -DCKA_BUILD_PYTHON=OFF -DCKA_INSTALL=ON
       -DCMAKE_INSTALL_PREFIX=${WORK}/prefix)
  step(${CMAKE_COMMAND} --build "${WORK}/cka")
  step(${CMAKE_COMMAND} --install "${WORK}/cka")
  step("${WORK}/prefix/bin/cka-similarity" --help)  # the tool is installed too
  step(${CMAKE_COMMAND} -S "${CKA_SOURCE}/tests/consumer" -B "${WORK}/consumer" -DCMAKE_PREFIX_PATH=${WORK}/prefix)
else()
  step(${CMAKE_COMMAND} -S "${CKA_SOURCE}/tests/consumer" -B "${WORK}/consumer" -DCKA_SOURCE_DIR=${CKA_SOURCE})
endif()
step(${CMAKE_COMMAND} --build "${WORK}/consumer")
step("${WORK}/consumer/consumer")
