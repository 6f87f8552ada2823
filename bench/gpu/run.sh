#!/usr/bin/env bash
# The GPU check (docs/device.md), run from the repository root on a machine with an NVIDIA GPU:
#   bench/gpu/run.sh [BUILD_DIR]     (default: build)
# It uses what the development machine built and carried over: BUILD_DIR/tests/test_device_cuda (CMake with
# -DCKA_CUDA=ON; sm_90, static CUDA runtime) and, for the Python steps, BUILD_DIR/python (the package built
# with CKA_CUDA and CKA_BUILD_PYTHON for this machine's Python). It builds test_device_cuda only where it is
# missing (minutes). Each step has a time limit, and the limits of the default steps add up to 570 s, so the
# script fits one 600-second call; CKA_GPU_STEPS picks steps (default "timings peer python checks
# memcheck"; "racecheck" and "libtorch" are opt-in). The results go to $OUT (the device machine's return
# folder) or BUILD_DIR/gpu:
#   1. the card;
#   2. test_device_cuda --small --large --time: the small checks, hsic at n = 46,341 (n² > 2³¹) against a
#      closed form, then the timings, inputs generated on the device (report.jsonl);
#   3. torch_peer.py on that report: PyTorch on the same inputs, float64 references, one table (table.md);
#   4. the Python package's CUDA losses, where a CUDA build of it imports: pytest -k cuda, python_bench.py;
#   5. test_device_cuda at its regular sizes (multi-chunk linear CKA, two device tiles a side, the losses at
#      257×1000);
#   6. compute-sanitizer's memcheck (and racecheck) over the small sizes;
#   7. the LibTorch example on CUDA tensors (it compiles LibTorch's headers with nvcc: minutes).
# The exit status is that of the first step that failed (0 if none did).
set -uo pipefail
build="${1:-build}"
binary="$build/tests/test_device_cuda"
out="${OUT:-$build/gpu}"
mkdir -p "$out"
status=0
steps=" ${CKA_GPU_STEPS:-timings peer python checks memcheck} "
want() { [[ "$steps" == *" $1 "* ]]; }
step() {  # step SECONDS NAME COMMAND...: run with a time limit, log to $out/NAME.log, keep the first failure
  local limit="$1" name="$2"
  shift 2
  echo "== $name (at most ${limit} s)"
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
  local rc="${PIPESTATUS[0]}"
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  if [[ "$rc" != 0 && "$rc" != 77 && "$status" == 0 ]]; then status="$rc"; fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [[ ! -x "$binary" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCKA_CUDA=ON -DCKA_BUILD_BENCH=OFF -DCKA_BUILD_EXAMPLES=OFF \
        -DCKA_BUILD_TOOLS=OFF -DCKA_BUILD_PYTHON=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target test_device_cuda
fi
want timings && step 150 timings "$binary" --small --large --time --report "$out/report.jsonl"
if want peer; then
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    step 120 peer python3 bench/gpu/torch_peer.py "$out/report.jsonl" --table "$out/table.md"
  else
    echo "== peer: skipped, no CUDA build of PyTorch for python3"
  fi
fi
if want python; then
  if PYTHONPATH="$build/python" python3 -c 'import cka, torch; assert cka._core.has_cuda and torch.cuda.is_available()' \
       >"$out/python-import.log" 2>&1; then
    step 60 python-cuda env PYTHONPATH="$build/python" python3 -m pytest -q -p no:cacheprovider tests/python/test_torch.py -k cuda
    step 60 python-bench env PYTHONPATH="$build/python" python3 bench/python_bench.py --skip-linear --loss-shapes 256x1000 1024x1000
  else
    echo "== python: skipped, no CUDA build of the package imports from $build/python:"
    tail -2 "$out/python-import.log"
  fi
fi
want checks && step 120 checks "$binary"
sanitizer=/usr/local/cuda/bin/compute-sanitizer
if [[ -x "$sanitizer" ]]; then
  want memcheck && step 60 memcheck "$sanitizer" --tool memcheck --error-exitcode 3 "$binary" --small
  want racecheck && step 120 racecheck "$sanitizer" --tool racecheck --error-exitcode 3 "$binary" --small
fi
# The LibTorch example against a CUDA build of PyTorch's LibTorch found through Python.
if want libtorch; then
  prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  cmake -S . -B "$build-torch" -DCMAKE_BUILD_TYPE=Release -DCKA_CUDA=ON -DCMAKE_PREFIX_PATH="$prefix" \
        -DCKA_BUILD_TESTS=OFF -DCKA_BUILD_BENCH=OFF -DCKA_BUILD_TOOLS=OFF -DCKA_BUILD_EXAMPLES=ON >/dev/null
  cmake --build "$build-torch" -j"$(nproc)" --target rcka_libtorch_cuda
  step 120 libtorch "$build-torch/examples/rcka_libtorch_cuda"
fi
[[ -f "$out/table.md" ]] && cat "$out/table.md"
echo "== GPU check: exit $status"
exit "$status"
