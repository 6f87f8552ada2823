#!/usr/bin/env python3
"""The peer of bench_inference.cpp in NumPy: a permutation test of linear CKA done the way NumPy code does it
best — features centered once, each permutation one (d1 x n) @ (n x d2) product of Xcᵀ with the permuted
Yc — and of RBF CKA on centered Grams with fancy indexing. Prints milliseconds per 1000 permutations.
Run with the current PyPI wheel: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE venv/bin/python numpy_inference.py"""
import time

import numpy as np


def best(f, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def linear(n, d1, d2, count=1000):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((n, d1)), rng.standard_normal((n, d2))
    xc, yc = x - x.mean(0), y - y.mean(0)
    obs = np.linalg.norm(xc.T @ yc) ** 2
    perms = [rng.permutation(n) for _ in range(count)]

    def run():
        return sum(np.linalg.norm(xc.T @ yc[p]) ** 2 >= obs for p in perms)
    return best(run)


def rbf(n, count=1000):
    rng = np.random.default_rng(2)
    def gram(z):
        sq = (z * z).sum(1)
        d = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0)
        k = np.exp(-d / (2 * np.median(d)))
        return k - k.mean(0) - k.mean(1)[:, None] + k.mean()
    a, b = gram(rng.standard_normal((n, 64))), gram(rng.standard_normal((n, 32)))
    obs = (a * b).sum()
    perms = [rng.permutation(n) for _ in range(count)]

    def run():
        return sum((a * b[np.ix_(p, p)]).sum() >= obs for p in perms)
    return best(run, 1)


print(f"numpy {np.__version__}")
print(f"linear n=2000 d=64x32: {linear(2000, 64, 32):.1f} ms per 1000 permutations")
print(f"linear n=10000 d=64x64: {linear(10000, 64, 64):.1f} ms per 1000 permutations")
print(f"rbf n=1000: {rbf(1000):.1f} ms per 1000 permutations")
