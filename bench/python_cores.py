"""The package's compiled cores (baseline, x86-64-v3) against NumPy, in the same run.

Each round times every workload once in a child process per core (CKA_CPU=baseline, CKA_CPU=x86-64-v3)
and once with NumPy doing the obvious in this process; rounds are interleaved so that a noisy machine
shows in every column alike. Run it with the NumPy wheel from PyPI and OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE unset, the package on PYTHONPATH:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=build/python python3 bench/python_cores.py
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

WORKLOADS = {  # name: (n, d1, d2, what)
    "linear 4096x(512+512)": (4096, 512, 512, "linear"),
    "linear 20000x(256+256)": (20000, 256, 256, "linear"),
    "rbf fixed 64x16": (64, 16, 16, "rbf_fixed"),
    "rbf fixed 300x16": (300, 16, 16, "rbf_fixed"),
    "rbf median 300x16": (300, 16, 16, "rbf_median"),
    "rbf median 2048x64": (2048, 64, 64, "rbf_median"),
}


def inputs(n, d1, d2):
    rng = np.random.default_rng(n + d1)
    x = rng.standard_normal((n, d1))
    return x, np.tanh(x[:, :min(d1, d2)] @ rng.standard_normal((min(d1, d2), d2)))


def timed(fn, calls):
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def calls_for(n):
    return 7 if n >= 2048 else 51


def cka_round():
    import cka
    out = {"built_for": cka._core.built_for}
    for name, (n, d1, d2, what) in WORKLOADS.items():
        x, y = inputs(n, d1, d2)
        fn = {"linear": lambda: cka.linear_cka(x, y),
              "rbf_fixed": lambda: cka.kernel_cka(x, y, cka.RBF(sigma=3.0)),
              "rbf_median": lambda: cka.kernel_cka(x, y, cka.RBF())}[what]
        out[name] = [timed(fn, calls_for(n)), fn()]
    print(json.dumps(out))


def numpy_rbf_cka(x, y, sigma=None):
    def centered_gram(a):
        r = (a * a).sum(1)
        d = np.maximum(r[:, None] + r[None, :] - 2 * a @ a.T, 0)
        s2 = np.median(d) if sigma is None else sigma * sigma
        k = np.exp(-d / (2 * s2))
        m = k.mean(0)
        return k - m[:, None] - m[None, :] + m.mean()
    kc, lc = centered_gram(x), centered_gram(y)
    return (kc * lc).sum() / np.sqrt((kc * kc).sum() * (lc * lc).sum())


def numpy_linear_cka(x, y):
    xc, yc = np.asfortranarray(x - x.mean(0)), np.asfortranarray(y - y.mean(0))
    return np.linalg.norm(xc.T @ yc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def numpy_round():
    out = {}
    for name, (n, d1, d2, what) in WORKLOADS.items():
        x, y = inputs(n, d1, d2)
        if what == "linear":
            x, y = np.asfortranarray(x), np.asfortranarray(y)  # OpenBLAS's faster layout here
        fn = {"linear": lambda: numpy_linear_cka(x, y),
              "rbf_fixed": lambda: numpy_rbf_cka(x, y, 3.0),
              "rbf_median": lambda: numpy_rbf_cka(x, y)}[what]
        out[name] = [timed(fn, calls_for(n)), fn()]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cka_round()
        return
    print(f"NumPy {np.__version__}; medians per call, one line per round")
    for r in range(args.rounds):
        rows = {}
        for cpu in ("baseline", "x86-64-v3"):
            env = dict(os.environ, CKA_CPU=cpu)
            done = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{cpu}: {done.stderr.strip().splitlines()[-1]}")
                continue
            rows[cpu] = json.loads(done.stdout)
        rows["numpy"] = numpy_round()
        for name in WORKLOADS:
            cells = []
            for col, res in rows.items():
                t, value = res[name]
                ref = rows["numpy"][name][1]
                assert abs(value - ref) <= 1e-9 * abs(ref), (col, name, value, ref)
                cells.append(f"{col} {t * 1e3:8.3f} ms")
            print(f"round {r}  {name:24s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
