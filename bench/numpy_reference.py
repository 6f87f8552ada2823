#!/usr/bin/env python3
"""Time CKA in NumPy, written the way the published reference code (Kornblith et al.'s demo notebook)
computes it, against cka on the same inputs, and print the speed ratio.

The NumPy side follows the reference's steps. Linear CKA is timed in both of the reference's forms: from
n x n Grams (the reference's general cka(gram_linear(X), gram_linear(Y)): X X^T, centred by subtracting
row and column means) and from centred features (||Xc^T Yc||_F^2 over the two feature-Gram norms, the
reference's feature_space_linear_cka); a ratio is printed against each. RBF CKA uses the full
squared-distance matrix with sigma^2 = 0.5^2 * median of all n^2 entries. The C++ side is
bench/time_inputs.cpp reading the very same arrays.

Usage: python3 bench/numpy_reference.py --binary build/bench/cka_time_inputs [--quick]
Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset so that NumPy's OpenBLAS picks its best kernel.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:
    print("numpy_reference.py: NumPy is not installed; skipping")
    sys.exit(77)


def linear_gram(x):
    return x @ x.T


def rbf_gram(x, fraction):
    inner = x @ x.T
    norms = np.diag(inner)
    sq = norms[:, None] + norms[None, :] - 2 * inner
    return np.exp(-sq / (2 * fraction**2 * np.median(sq)))


def centred(gram):
    gram = gram.copy()
    col_means = np.mean(gram, 0, dtype=np.float64)
    col_means -= np.mean(col_means) / 2
    gram -= col_means[:, None]
    gram -= col_means[None, :]
    return gram


def gram_cka(gx, gy):
    gx, gy = centred(gx), centred(gy)
    return gx.ravel() @ gy.ravel() / (np.linalg.norm(gx) * np.linalg.norm(gy))


def features_cka(x, y):
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def best_time(f, repeats):
    best, value = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = f()
        best = min(best, time.perf_counter() - t0)
    return best, float(value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--quick", action="store_true", help="small shapes, one repeat (a smoke test)")
    ap.add_argument("--linear-forms", default="gram,features",
                    help="which NumPy forms of linear CKA to time (comma-separated: gram, features); the "
                         "current OpenBLAS wheel's SkylakeX kernel crashes on this machine in the n x n "
                         "syrk at n = 20000, so large runs time the (faster) features form alone")
    ap.add_argument("--kinds", default="linear,rbf", help="linear, rbf or both")
    ap.add_argument("--rbf-shapes", default="2000x64,1024x256,4096x256",
                    help="comma-separated NxD shapes for RBF CKA")
    args = ap.parse_args()

    linear_shapes = [(4096, 512), (20000, 256), (512, 8192)]
    rbf_shapes = [tuple(int(v) for v in s.split("x")) for s in args.rbf_shapes.split(",")]
    repeats = 3
    if args.quick:
        linear_shapes, rbf_shapes, repeats = [(300, 20)], [(200, 10)], 1

    try:
        from threadpoolctl import threadpool_info
        for lib in threadpool_info():
            print(f"# NumPy BLAS: {lib.get('internal_api')} {lib.get('version')} "
                  f"kernel={lib.get('architecture')} threads={lib.get('num_threads')}")
    except ImportError:
        print("# threadpoolctl not installed: BLAS kernel not reported")

    rng = np.random.default_rng(2024)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        kinds = args.kinds.split(",")
        jobs = [("linear", s) for s in linear_shapes if "linear" in kinds] + \
               [("rbf", s) for s in rbf_shapes if "rbf" in kinds]
        for kind, (n, d) in jobs:
            x = rng.standard_normal((n, d))
            y = x @ rng.standard_normal((d, d)) / np.sqrt(d) + 0.5 * rng.standard_normal((n, d))
            x.tofile(os.path.join(tmp, "x.bin"))
            y.tofile(os.path.join(tmp, "y.bin"))
            out = subprocess.run([args.binary, tmp, str(n), str(d), str(d), str(repeats)],
                                 check=True, capture_output=True, text=True).stdout
            ours = {line.split()[0]: (float(line.split()[1]), float(line.split()[2])) for line in out.splitlines()}
            t_c, v_c = ours[kind]
            if kind == "linear":
                forms = [("gram", lambda: gram_cka(linear_gram(x), linear_gram(y))),
                         ("features", lambda: features_cka(x, y))]
                forms = [f for f in forms if f[0] in args.linear_forms.split(",")]
            else:
                forms = [("gram", lambda: gram_cka(rbf_gram(x, 0.5), rbf_gram(y, 0.5)))]
            for form, f in forms:
                t_np, v = best_time(f, repeats)
                rows.append((kind, form, n, d, t_np, t_c, t_np / t_c, abs(v - v_c)))

    print(f"{'kind':7} {'numpy form':10} {'n':>6} {'d':>5} {'numpy s':>10} {'cka s':>10} {'ratio':>7} {'|diff|':>9}")
    for kind, form, n, d, t_np, t_c, ratio, diff in rows:
        print(f"{kind:7} {form:10} {n:6d} {d:5d} {t_np:10.4f} {t_c:10.4f} {ratio:7.2f} {diff:9.1e}")
    worst = max(r[7] for r in rows)
    if worst > 1e-9:
        print(f"values differ by {worst:.1e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
