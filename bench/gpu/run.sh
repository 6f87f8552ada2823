#!/usr/bin/env bash
# The device machine's script for the CUDA context (issue 13), run from the repository root:
#   bench/gpu/run.sh [BUILD_DIR]
# Uses BUILD_DIR/tests/test_device_cuda when it is there (built on the development machine with
# -DCKA_CUDA=ON and carried over; sm_90, static CUDA runtime), else configures and builds it. Then: the card,
# the CUDA checks against the host systems (odd n, every layout, both estimators, float input, errors, and
# n = 46,341 where n² passes 2³¹), linear CKA timed against cuBLAS DSYRK, RBF CKA at n = 50,000, the RCKA loss
# with its gradient, the PyTorch peer (bench/gpu/torch_peer.py) on the same shapes, and compute-sanitizer's
# memcheck and racecheck on the regular sizes.
set -euo pipefail
build="${1:-build-gpu}"
binary="$build/tests/test_device_cuda"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [[ ! -x "$binary" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCKA_CUDA=ON -DCKA_BUILD_BENCH=OFF -DCKA_BUILD_EXAMPLES=OFF \
        -DCKA_BUILD_TOOLS=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target test_device_cuda
fi
"$binary" --large
"$binary" --time   # linear CKA against the bare DSYRKs of its form (the goal: at least 70% of their rate),
                   # RBF CKA at n = 50,000 against its tile DGEMMs, rcka_loss with its gradient against the forward
python3 bench/gpu/torch_peer.py || true   # the PyTorch peer on the same shapes (the goal: at least 2x faster)
sanitizer=/usr/local/cuda/bin/compute-sanitizer
if [[ -x "$sanitizer" ]]; then
  "$sanitizer" --tool memcheck --error-exitcode 3 "$binary"
  "$sanitizer" --tool racecheck --error-exitcode 3 "$binary"
fi
# Opt-in (it compiles LibTorch's headers with nvcc: minutes): the LibTorch example on CUDA tensors, against a
# CUDA build of PyTorch's LibTorch found through Python.
if [[ "${CKA_GPU_LIBTORCH:-0}" == 1 ]]; then
  prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  cmake -S . -B "$build-torch" -DCMAKE_BUILD_TYPE=Release -DCKA_CUDA=ON -DCMAKE_PREFIX_PATH="$prefix" \
        -DCKA_BUILD_TESTS=OFF -DCKA_BUILD_BENCH=OFF -DCKA_BUILD_TOOLS=OFF -DCKA_BUILD_EXAMPLES=ON >/dev/null
  cmake --build "$build-torch" -j"$(nproc)" --target rcka_libtorch_cuda
  "$build-torch/examples/rcka_libtorch_cuda"
fi
