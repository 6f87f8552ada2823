#!/usr/bin/env python3
"""Permutation p-values for every pair of 8 layers: `cka-similarity --pvalues N` against NumPy doing the same
permutations in feature space (docs/performance.md, "similarity_tests"). Writes the layers (n = 5000: ReLU MLP
layers of widths 256, 256, 128, 10 and conv-like layers of widths 512, 256, 128, 10, float32) to a temporary
directory, times the tool, then `cka.similarity_tests` from Python where the package imports (the same
layers as float32 arrays), then the NumPy loop. Usage:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/similarity_tests_bench.py TOOL [PERMUTATIONS]
"""
import glob
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

tool = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
rng = np.random.default_rng(0)
n = 5000
with tempfile.TemporaryDirectory() as tmp:
    h = rng.standard_normal((n, 32))
    for k, w in enumerate([256, 256, 128, 10]):
        h = np.maximum(h @ rng.standard_normal((h.shape[1], w)) / np.sqrt(h.shape[1]), 0)
        np.save(os.path.join(tmp, f"mlp_{k}.npy"), h.astype(np.float32))
    img = rng.standard_normal((n, 768)).astype(np.float32)
    for k, w in enumerate([512, 256, 128]):
        np.save(os.path.join(tmp, f"cnn_{k}.npy"), np.maximum(img @ rng.standard_normal((768, w)).astype(np.float32) / np.sqrt(768), 0))
    np.save(os.path.join(tmp, "cnn_3.npy"), img @ rng.standard_normal((768, 10)).astype(np.float32))
    files = sorted(glob.glob(os.path.join(tmp, "mlp_*.npy"))) + sorted(glob.glob(os.path.join(tmp, "cnn_*.npy")))

    start = time.perf_counter()
    subprocess.run([tool, *files, "--pvalues", str(count), "-q"], check=True, stdout=subprocess.DEVNULL)
    print(f"cka-similarity --pvalues {count}: {time.perf_counter() - start:.1f} s (28 pairs, analytic tests and intervals too)")

    try:
        import cka
    except ImportError as e:
        print(f"cka.similarity_tests: skipped ({e})")
    else:
        arrays = [np.load(f) for f in files]
        start = time.perf_counter()
        cka.similarity_tests(arrays, permutations=count, seed=0)
        print(f"cka.similarity_tests(permutations={count}) ({cka._core.built_for} core): "
              f"{time.perf_counter() - start:.1f} s (28 pairs and the analytic tests' values)")

    layers = [np.load(f).astype(np.float64) for f in files]
    layers = [x - x.mean(0) for x in layers]
    start = time.perf_counter()
    perms = [rng.permutation(n) for _ in range(count)]
    for j, y in enumerate(layers):
        for i in range(j):
            x = layers[i]
            t = np.linalg.norm(x.T @ y) ** 2
            sum(np.linalg.norm(x.T @ y[q]) ** 2 >= t for q in perms)
    print(f"NumPy {np.__version__}: {time.perf_counter() - start:.1f} s (28 pairs, permutations only)")
