#!/usr/bin/env python3
"""Permutation p-values for every pair of 6 layers with the RBF kernel (median rule): `cka.similarity_tests`
on its Gram route against NumPy doing the same work the obvious fast way — each layer's centered RBF Gram
once, then per pair and permutation one sum over the permuted Gram (docs/performance.md, "similarity_tests").
Layers: n = 2000, ReLU MLP layers of widths 256, 128, 10 and conv-like layers of widths 512, 128, 10,
float32. Usage:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/similarity_tests_rbf_bench.py [PERMUTATIONS]
"""
import sys
import time

import numpy as np

import cka

count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
rng = np.random.default_rng(0)
n = 2000
layers = []
h = rng.standard_normal((n, 32))
for w in (256, 128, 10):
    h = np.maximum(h @ rng.standard_normal((h.shape[1], w)) / np.sqrt(h.shape[1]), 0)
    layers.append(h.astype(np.float32))
img = rng.standard_normal((n, 768))
for w in (512, 128):
    layers.append(np.maximum(img @ rng.standard_normal((768, w)) / np.sqrt(768), 0).astype(np.float32))
layers.append((img @ rng.standard_normal((768, 10))).astype(np.float32))
pairs = len(layers) * (len(layers) - 1) // 2

start = time.perf_counter()
ours = cka.similarity_tests(layers, cka.RBF(), permutations=count, seed=0)
print(f"cka.similarity_tests(RBF(), permutations={count}) ({cka._core.built_for} core): "
      f"{time.perf_counter() - start:.1f} s ({pairs} pairs and the values)")

start = time.perf_counter()
grams = []
for x in layers:
    x = x.astype(np.float64)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    k = np.exp(-d2 / (2 * np.median(d2)))  # sigma^2 = the median of all n^2 squared distances (cka's all_pairs)
    k -= k.mean(0)
    k -= k.mean(1, keepdims=True)
    grams.append(k)
perms = [rng.permutation(n) for _ in range(count)]
values = np.eye(len(layers))
for j in range(len(layers)):
    for i in range(j):
        k, l = grams[i], grams[j]
        t = np.sum(k * l)
        values[i, j] = t / np.sqrt(np.sum(k * k) * np.sum(l * l))
        sum(np.sum(k * l[np.ix_(q, q)]) >= t for q in perms)
print(f"NumPy {np.__version__}: {time.perf_counter() - start:.1f} s ({pairs} pairs, Grams and permutations)")
print(f"largest difference of the CKA values: {np.nanmax(np.abs(np.triu(ours.values - values, 1))):.1e}")
