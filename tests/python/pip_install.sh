#!/bin/sh
# `pip install .` as the README shows it, into a fresh virtual environment that sees the system's NumPy
# (and PyTorch): builds cka._core from the source tree, then imports the installed package from a neutral
# directory and checks a value and the installed layout. The cores are compiled at -O0: this checks the
# packaging, not the speed (the python_package suite runs the same sources at -O3), and the test takes
# 171 s here instead of 279 s at -O3. Usage: pip_install.sh PYTHON SOURCE_DIR WORK_DIR. Exit 77 (skip)
# when the build requirements (scikit-build-core, nanobind) or venv are missing: the build runs without
# the network.
set -eu
python="$1"; source="$2"; work="$3"
if ! "$python" -c "import scikit_build_core, nanobind, venv" 2>/dev/null; then
  echo "skipped: scikit-build-core, nanobind or venv missing for $python (pip install scikit-build-core nanobind)"
  exit 77
fi
rm -rf "$work"
# Both cores at once also where scikit-build-core falls back from Ninja to make (no ninja installed).
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
export CMAKE_BUILD_PARALLEL_LEVEL
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --no-build-isolation --no-deps -q \
  --config-settings=cmake.define.CKA_PYTHON_OPTIMIZATION=-O0 "$source"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import numpy as np
import cka
assert "venv" in cka.__file__, cka.__file__
x = np.random.default_rng(0).standard_normal((50, 4))
assert abs(cka.linear_cka(x, 2 * x + 1) - 1.0) < 1e-14
# On x86-64 the wheel holds the baseline and x86-64-v3 cores, and the import took the best this CPU runs.
import glob, os, platform
cores = sorted(os.path.basename(p).split(".")[0] for p in glob.glob(os.path.join(os.path.dirname(cka.__file__), "_core_*")))
if platform.machine() in ("x86_64", "AMD64"):
    assert cores == ["_core_baseline", "_core_x86_64_v3"], cores
    assert cka._core.built_for == ("x86-64-v3" if cka._cpu.x86_64_v3() else "baseline"), cka._core.built_for
print("pip install . gives cka", cka.__version__, "at", cka.__file__, "with", cores, "using", cka._core.built_for)
PY
