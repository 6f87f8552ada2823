#!/usr/bin/env python3
"""The NumPy peer of BM_host_polynomial in bench/bench_device.cpp: polynomial kernel CKA (degree 3,
gamma = 1/d, coef0 = 1) at n = 2000, d = 64, written the usual way -- both n x n Grams formed, centered
by their row, column and grand means, one ratio. Prints NumPy's version and the best of 5 runs.

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/numpy_polynomial.py [n d]
(with the current NumPy wheel from PyPI in that python3).
"""
import sys
import time

try:
    import numpy as np
except ImportError:
    print("numpy_polynomial.py: NumPy is not installed; skipping")
    sys.exit(77)

n, d = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) == 3 else (2000, 64)
rng = np.random.default_rng(3)
x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))


def centered(k):
    return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()


def polynomial_cka():
    k = centered((x @ x.T / d + 1) ** 3)
    l = centered((y @ y.T / d + 1) ** 3)
    return (k * l).sum() / np.sqrt((k * k).sum() * (l * l).sum())


times = []
for _ in range(5):
    start = time.perf_counter()
    polynomial_cka()
    times.append(time.perf_counter() - start)
print(f"NumPy {np.__version__}: polynomial kernel CKA, n = {n}, d = {d}: {min(times) * 1e3:.1f} ms (best of 5)")
