#!/usr/bin/env python3
"""cka-similarity under mpirun: the CSV of 2 and 3 processes equals the single-process one (to 1e-12) for
the streamed linear kernel and the RBF tile engine; a failure on one rank ends every rank with exit 2 and
one line. Usage: test_tool_mpi.py MPIEXEC TOOL. Exit 77 (skip) without NumPy."""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("NumPy missing: skipped")
    sys.exit(77)

mpiexec, tool = sys.argv[1], sys.argv[2]
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
failures = []


def run(args, ranks=None):
    # mpirun -q: no banner of its own when a process exits non-zero, so stderr is the tool's alone.
    cmd = ([mpiexec, "-q", "-np", str(ranks), "--oversubscribe"] if ranks else []) + [tool] + args
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def values(csv):
    rows = [line.split(",")[1:] for line in csv.strip().splitlines()[1:]]
    return np.array([[float(v) for v in r] for r in rows])


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        failures.append(name)


with tempfile.TemporaryDirectory() as tmp:
    rng = np.random.default_rng(7)
    n = 1500
    x = rng.standard_normal((n, 12))
    layers = []
    for k, width in enumerate([12, 8, 5]):
        h = np.tanh(x[:, :width] * (1 + k) + 0.3 * rng.standard_normal((n, width))) + 100.0 * k
        path = os.path.join(tmp, f"layer{k}.npy")
        np.save(path, h.astype(np.float32 if k == 1 else np.float64))
        layers.append(path)

    cases = [["--kernel", "linear"], ["--kernel", "linear", "--debiased"], ["--kernel", "rbf"],
             ["--kernel", "rbf", "--debiased", "--median-rule", "off-diagonal"], ["--kernel", "rbf", "--memory", "12M"],
             ["--kernel", "linear", "--pvalues", "analytic"]]
    for args in cases:
        one = run(layers + args + ["-q"])
        check("single " + " ".join(args), one.returncode == 0, one.stderr)
        if one.returncode != 0:
            continue
        for ranks in (2, 3):
            many = run(layers + args + ["-q"], ranks)
            ok = many.returncode == 0
            if ok:
                a, b = values(one.stdout), values(many.stdout)
                ok = a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-12)
            check(f"np {ranks} " + " ".join(args) + " equals one process", ok, many.stderr + many.stdout[:200])
            # Rank 0 alone writes: one header line, not one per rank.
            check(f"np {ranks} " + " ".join(args) + " one output", many.stdout.count("layer") == one.stdout.count("layer"))

    # --vs, and the outputs of rank 0 in files.
    out = os.path.join(tmp, "vs.csv")
    one = run(layers[:1] + ["--vs"] + layers[1:] + ["--kernel", "rbf", "-q"])
    many = run(layers[:1] + ["--vs"] + layers[1:] + ["--kernel", "rbf", "-q", "--csv", out], 2)
    check("np 2 --vs rbf to a file", many.returncode == 0 and one.returncode == 0 and
          np.allclose(values(one.stdout), values(open(out).read()), rtol=1e-12, atol=1e-12), many.stderr)

    # A NaN in rows that only the last rank streams: every rank ends with exit 2, one line from the tool.
    bad = np.load(layers[0])
    bad[n - 3, 4] = np.nan
    bad_path = os.path.join(tmp, "bad.npy")
    np.save(bad_path, bad)
    for ranks in (2, 3):
        r = run([layers[1], bad_path, "-q"], ranks)
        lines = r.stderr.splitlines()
        check(f"np {ranks} NaN on the last rank: exit 2", r.returncode == 2, f"rc {r.returncode}: {r.stderr}")
        check(f"np {ranks} NaN on the last rank: one line naming the file",
              len(lines) == 1 and "bad.npy" in lines[0] and "nan" in lines[0].lower(), r.stderr)
        check(f"np {ranks} NaN on the last rank: no CSV", r.stdout == "", r.stdout[:200])

    # An overflow found in one rank's tiles (a fixed bandwidth: no rescaling).
    huge = np.load(layers[0])
    huge[n - 1, 0] = 1e200
    huge_path = os.path.join(tmp, "huge.npy")
    np.save(huge_path, huge)
    r = run([layers[1], huge_path, "--kernel", "rbf", "--sigma", "1", "-q"], 3)
    lines = r.stderr.splitlines()
    check("np 3 overflow in one rank's tiles: exit 2 and one line",
          r.returncode == 2 and len(lines) == 1 and "overflow" in lines[0], f"rc {r.returncode}: {r.stderr}")

    # An output that cannot be written (rank 0): every rank exits 2.
    r = run(layers + ["-q", "--csv", os.path.join(tmp, "missing", "out.csv")], 2)
    lines = r.stderr.splitlines()
    check("np 2 unwritable output: exit 2 and one line", r.returncode == 2 and len(lines) == 1, r.stderr)

    # Issue 25, items 3, 7 and 16: ranks given different options, layers or samples (mpirun's MPMD form,
    # one command line per rank). They hung or summed rows of different runs with exit 0; now every rank
    # ends with exit 2, one line, and no output file — within the timeout, so a hang fails the test.
    def run_each(per_rank):
        cmd = [mpiexec, "-q"]
        for k, args in enumerate(per_rank):
            cmd += ([":"] if k else []) + ["-np", "1", "--oversubscribe", tool] + args
        try:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(cmd, -1, "", "timed out (a hang)")

    short = os.path.join(tmp, "short")
    os.mkdir(short)
    for layer in layers:  # the same names, 1400 samples
        np.save(os.path.join(short, os.path.basename(layer)), np.load(layer)[:1400])
    reordered = [layers[1], layers[0], layers[2]]
    out = os.path.join(tmp, "mixed.csv")
    for name, per_rank, message in [
            ("--pvalues on one rank only", [layers + ["--pvalues", "20"], layers], "different options"),
            ("a different seed on one rank", [layers + ["--pvalues", "analytic"], layers + ["--pvalues", "analytic", "--seed", "3"]],
             "different options"),
            ("layers in another order on one rank", [layers, reordered], "different layers"),
            ("files with fewer samples on one rank", [layers, [os.path.join(short, os.path.basename(f)) for f in layers]],
             "different layers"),
            ("--samples on one rank only", [layers + ["--samples", "1000"], layers], "different options"),
            ("--rbf with --memory on one rank only", [layers + ["--kernel", "rbf"], layers + ["--kernel", "rbf", "--memory", "12M"]],
             "different options")]:
        for extra in ([], ["--csv", out]):
            per = [[*args, "-q", *extra] for args in per_rank]
            r = run_each(per)
            lines = r.stderr.strip().splitlines()
            check(f"mpmd {name} {extra}: exit 2, one line", r.returncode == 2 and len(lines) == 1 and message in lines[0],
                  f"rc {r.returncode}: {r.stderr!r}")
            check(f"mpmd {name} {extra}: no output", r.stdout == "" and not os.path.exists(out), r.stdout[:200])

print(f"{len(failures)} failed" if failures else "all passed")
sys.exit(1 if failures else 0)
