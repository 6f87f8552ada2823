#!/usr/bin/env python3
"""End-to-end tests of cka-similarity: layers written by NumPy (float32/float64, C/Fortran order, 3-D and
4-D, big-endian) and by hand; CSV against NumPy reference formulas; JSON; the SVG parsed as XML; every bad
input exits 2 with one line naming the file. Usage: test_cka_similarity.py BINARY. Exit 77: NumPy missing."""
import io
import json
import re
import os
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

try:
    import numpy as np
except ImportError:
    print("test_cka_similarity.py: NumPy is not installed; skipping")
    sys.exit(77)

BINARY = os.path.abspath(sys.argv[1])
failures = []
passed = 0


def check(condition, what):
    global passed
    if condition:
        passed += 1
    else:
        failures.append(what)
        print("FAILED:", what)


def run(*args, cwd=None, timeout=120):
    p = subprocess.run([BINARY, *args], capture_output=True, text=True, errors="replace", cwd=cwd, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def read_csv(text):
    lines = text.strip().split("\n")
    cols = lines[0].split(",")[1:]
    rows, values = [], []
    for line in lines[1:]:
        parts = line.split(",")
        rows.append(parts[0])
        values.append([float(v) for v in parts[1:]])
    return rows, cols, np.array(values)


# Reference formulas, written from the definitions (the library's own tests pin the library to these).
def centre(k):
    return k - k.mean(0, keepdims=True) - k.mean(1, keepdims=True) + k.mean()


def u_centre(k):
    n = k.shape[0]
    k = k.copy()
    np.fill_diagonal(k, 0)
    r = k.sum(1) / (n - 2)
    k = k - r[:, None] - r[None, :] + k.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(k, 0)
    return k


def gram(x, kernel, fraction=1.0):
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    x = x - x.mean(0)
    if kernel == "linear":
        return x @ x.T
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-sq / (2 * fraction**2 * np.median(sq)))


def cka(x, y, kernel="linear", debiased=False, fraction=1.0):
    c = u_centre if debiased else centre
    a, b = c(gram(x, kernel, fraction)), c(gram(y, kernel, fraction))
    return (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())


def minibatch_reference(x, y, batch):
    n = x.shape[0]
    xy = xx = yy = 0.0
    for s in range(0, n, batch):
        xb, yb = x[s:s + batch], y[s:s + batch]
        h = xb.shape[0]
        if h < 4:
            continue
        a, b = u_centre(gram(xb, "linear")), u_centre(gram(yb, "linear"))
        scale = 1.0 / (h * (h - 3))
        xy += scale * (a * b).sum()
        xx += scale * (a * a).sum()
        yy += scale * (b * b).sum()
    return xy / np.sqrt(xx * yy)


def npy_header(descr, shape, fortran=False):
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    d += " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode()


with tempfile.TemporaryDirectory() as tmp:
    path = lambda name: os.path.join(tmp, name)
    rng = np.random.default_rng(5)
    n = 60
    base = rng.standard_normal((n, 8))
    layers = {
        "a_f64": base,
        "b_f32": (base @ rng.standard_normal((8, 12))).astype(np.float32),
        "c_fortran3d": np.asfortranarray(np.tanh(base @ rng.standard_normal((8, 12))).reshape(n, 3, 4)),
        "d_4d": (base @ rng.standard_normal((8, 24))).reshape(n, 2, 3, 4),
        "e_bigendian": (base[:, :5] + 0.3 * rng.standard_normal((n, 5))).astype(">f8"),
    }
    os.mkdir(path("layers"))
    for name, arr in layers.items():
        np.save(path(os.path.join("layers", name + ".npy")), arr)
    files = [path(os.path.join("layers", k + ".npy")) for k in layers]
    names = list(layers)
    as64 = {k: np.asarray(v, dtype=np.float64).reshape(n, -1) for k, v in layers.items()}

    # Square matrix from a directory (name order), linear and debiased and RBF.
    for extra, kernel, debiased, fraction in [([], "linear", False, 1.0), (["--debiased"], "linear", True, 1.0),
                                              (["--kernel", "rbf", "--sigma-fraction", "0.5"], "rbf", False, 0.5)]:
        rc, out, err = run(path("layers"), "--quiet", *extra)
        check(rc == 0, f"square {extra}: exit {rc} {err}")
        rows, cols, v = read_csv(out)
        check(rows == names and cols == names, f"square {extra}: names {rows} {cols}")
        expected = np.array([[cka(as64[a], as64[b], kernel, debiased, fraction) for b in names] for a in names])
        check(np.allclose(v, expected, rtol=1e-9, atol=1e-12), f"square {extra}: values differ by {np.abs(v - expected).max()}")

    # --vs, CSV/JSON/SVG files.
    rc, out, err = run(files[0], files[1], "--vs", files[2], files[3], files[4], "--csv", path("m.csv"),
                       "--json", path("m.json"), "--svg", path("m.svg"))
    check(rc == 0 and out == "", f"--vs: exit {rc} {err}")
    rows, cols, v = read_csv(open(path("m.csv")).read())
    check(rows == names[:2] and cols == names[2:], "--vs names")
    expected = np.array([[cka(as64[a], as64[b]) for b in names[2:]] for a in names[:2]])
    check(np.allclose(v, expected, rtol=1e-9), "--vs values")
    j = json.load(open(path("m.json")))
    check(j["rows"] == rows and j["columns"] == cols and np.allclose(np.array(j["values"]), v, rtol=1e-12), "json")
    svg = ET.parse(path("m.svg")).getroot()
    cells = [e for e in svg.iter() if e.tag.endswith("rect") and e.get("class") == "cell"]
    check(len(cells) == 2 * 3, f"svg has {len(cells)} cells")
    # pandas-style reading: header starts with a comma (index_col=0 layout).
    check(open(path("m.csv")).readline().startswith(","), "csv header")

    # Streaming (linear, no minibatch): any chunking gives the values of one chunk, and float32 layers with
    # a large common offset keep their accuracy (exact NumPy reference in float64).
    rc, one, err = run(path("layers"), "--quiet", "--debiased")
    for rows_per_chunk in ("1", "7", "59"):
        rc, out, err = run(path("layers"), "--quiet", "--debiased", "--chunk-rows", rows_per_chunk)
        check(rc == 0 and np.allclose(read_csv(out)[2], read_csv(one)[2], rtol=1e-12, atol=1e-14),
              f"streamed in chunks of {rows_per_chunk} rows: {err}")
    off_a = (base + 1e4).astype(np.float32)
    off_b = (np.tanh(base @ rng.standard_normal((8, 6))) + 1e4).astype(np.float32)
    np.save(path("off_a.npy"), off_a)
    np.save(path("off_b.npy"), off_b)
    rc, out, err = run(path("off_a.npy"), "--vs", path("off_b.npy"), "--chunk-rows", "13")
    exact = cka(off_a.astype(np.float64), off_b.astype(np.float64))
    check(rc == 0 and abs(read_csv(out)[2][0, 0] - exact) < 1e-6 * exact, f"float32 + 1e4 streamed: {out} vs {exact}")
    rc, out, err = run(files[0], "--chunk-rows", "0")
    check(rc == 2 and "--chunk-rows" in err, f"--chunk-rows 0: {rc} {err!r}")

    # Scale: CKA is scale-invariant, so layers times 1e40 or 1e-60 (float64) or 3e37 (float32) give the
    # unscaled values — no overflowing ratio, no inf in the output (issue 7, defect 6).
    np.save(path("big.npy"), as64["a_f64"] * 1e40)
    np.save(path("tiny.npy"), as64["b_f32"] * 1e-60)
    np.save(path("big32.npy"), (as64["a_f64"] * 3e37).astype(np.float32))
    rc, out, err = run(files[0], files[1], path("big.npy"), path("tiny.npy"), path("big32.npy"), "--quiet")
    v = read_csv(out)[2]
    check(rc == 0 and np.allclose(v[:, 2], v[:, 0], rtol=1e-9) and np.allclose(v[:, 3], v[:, 1], rtol=1e-9)
          and np.allclose(v[:, 4], v[:, 0], rtol=1e-6) and np.isfinite(v).all(), f"scaled layers: {out} {err}")
    # A minibatch larger than n is one batch of n: debiased CKA (issue 7, defect 15).
    rc, out, err = run(files[0], "--vs", files[1], "--minibatch", "1000")
    check(rc == 0 and abs(read_csv(out)[2][0, 0] - cka(as64["a_f64"], as64["b_f32"], debiased=True)) < 1e-9,
          f"--minibatch larger than n: {rc} {out} {err}")

    # Minibatch CKA (the last batch of 60 % 16 = 12 samples counts; batch 29 leaves 2 that are dropped).
    for batch in (16, 29):
        rc, out, err = run(files[0], "--vs", files[1], "--minibatch", str(batch))
        _, _, v = read_csv(out)
        check(rc == 0 and abs(v[0, 0] - minibatch_reference(as64["a_f64"], as64["b_f32"], batch)) < 1e-9,
              f"minibatch {batch}: {v} {err}")
        check((batch == 29) == ("left out" in err), f"minibatch {batch} warning: {err!r}")

    # A constant layer: not an error; its cells are nan and a warning names it.
    np.save(path("flat.npy"), np.ones((n, 4)))
    rc, out, err = run(files[0], path("flat.npy"), files[1])
    rows, cols, v = read_csv(out)
    check(rc == 0 and np.isnan(v[1]).all() and np.isnan(v[:, 1]).all() and not np.isnan(v[0, 2]), f"constant: {out}")
    check("flat" in err and "zero variance" in err, f"constant warning: {err!r}")

    # The demo.
    rc, out, err = run("--demo", "--svg", path("demo.svg"))
    rows, cols, v = read_csv(out)
    check(rc == 0 and v.shape == (8, 8) and np.allclose(np.diag(v), 1), "demo")
    check(len([e for e in ET.parse(path("demo.svg")).getroot().iter() if e.get("class") == "cell"]) == 64, "demo svg")

    # Bad input: exit 2, one line on stderr naming the file.
    def bad(name, content):
        with open(path(name), "wb") as f:
            f.write(content)
        return path(name)

    good = open(files[0], "rb").read()
    cases = {
        "missing": (path("nowhere.npy"), "cannot open"),
        "not npy": (bad("text.npy", b"hello, world\n" * 10), "not an .npy file"),
        "truncated": (bad("cut.npy", good[:-100]), "truncated data"),
        "corrupt header": (bad("hdr.npy", npy_header("<f8", "[60, 8]") + b"\0" * 3840), "corrupt header"),
        "complex": (bad("cplx.npy", npy_header("<c16", "(60, 8)") + b"\0" * 7680), "unsupported dtype"),
        "object": (bad("obj.npy", npy_header("|O", "(60,)") + b"\0" * 480), "unsupported dtype"),
        "huge": (bad("huge.npy", npy_header("<f8", "(100000000000, 100000)") + b"\0" * 64), "truncated data"),
        "short n": (bad("short.npy", npy_header("<f8", "(59, 8)") + np.zeros((59, 8)).tobytes()), "a_f64.npy has 60 samples but"),
    }
    nan_layer = base.copy()
    nan_layer[3, 2] = np.nan
    np.save(path("nan.npy"), nan_layer)
    cases["nan"] = (path("nan.npy"), "NaN or infinity at sample 3, feature 2")
    # A subdirectory named like a layer inside a layer directory is not a layer (issue 7, item 8), on
    # every route; named on the command line it is expanded, and a FIFO is refused naming it.
    os.makedirs(path(os.path.join("nested", "inner.npy")))
    np.save(path(os.path.join("nested", "good.npy")), base)
    for extra in ([], ["--kernel", "rbf"], ["--minibatch", "8"]):
        rc, out, err = run(path("nested"), files[1], "--quiet", *extra)
        rows, cols, v = read_csv(out) if rc == 0 else ([], [], None)
        check(rc == 0 and rows == ["good", "b_f32"], f"subdirectory named inner.npy {extra}: {rc} {err!r}")
    os.mkfifo(path("pipe.npy"))
    cases["fifo"] = (path("pipe.npy"), "pipe.npy: not a regular file")
    for what, (file, message) in cases.items():
        rc, out, err = run(files[0], file)
        lines = err.strip().split("\n")
        check(rc == 2 and len(lines) == 1 and os.path.basename(file) in err and message in err,
              f"bad input {what}: exit {rc}, stderr {err!r}")
    for args, message in [(["--kernel", "cosine", files[0]], "--kernel"), (["--minibatch", "3", files[0]], "--minibatch"),
                          (["--bogus", files[0]], "unknown option"), ([], "no layers"), ([files[0], "--vs"], "--vs")]:
        rc, out, err = run(*args)
        check(rc == 2 and message in err and len(err.strip().split("\n")) == 1, f"usage {args}: {rc} {err!r}")

# Issue 7 (reliability) and issue 12 (researcher workflow): one row per defect, plain and sanitized.
import csv as csv_module
import signal

with tempfile.TemporaryDirectory() as tmp:
    path = lambda name: os.path.join(tmp, name)
    rng = np.random.default_rng(11)
    n = 200
    labels = (rng.random(n) < 0.3).astype(int)
    np.save(path("labels.npy"), np.eye(2)[labels])
    np.save(path("f.npy"), rng.standard_normal((n, 16)) + labels[:, None])
    np.save(path("g.npy"), rng.standard_normal((n, 6)))

    # 1. RBF with a zero median: the matrix is computed, the layer's cells are nan, a warning names the file
    # and the cause; --median-rule nonzero and --sigma are ways out.
    rc, out, err = run(path("labels.npy"), path("f.npy"), path("g.npy"), "--kernel", "rbf")
    rows, cols, v = read_csv(out) if rc == 0 else ([], [], np.zeros((3, 3)))
    check(rc == 0 and np.isnan(v[0]).all() and np.isnan(v[:, 0]).all() and np.isfinite(v[1:, 1:]).all(),
          f"rbf zero median: nan cells: {rc} {err!r}")
    check("labels.npy" in err and "median" in err and "nan" in err, f"rbf zero median warning: {err!r}")
    lab = np.eye(2)[labels].astype(float)
    fx = np.load(path("f.npy"))

    def rbf_nonzero(x, y):
        def g(z):
            z = z - z.mean(0)
            sq = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
            iu = np.triu_indices(z.shape[0], 1)
            d = sq[iu]
            return np.exp(-sq / (2 * np.median(d[d > 0])))
        a, b = centre(g(x)), centre(g(y))
        return (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())
    rc, out, err = run(path("labels.npy"), "--vs", path("f.npy"), "--kernel", "rbf", "--median-rule", "nonzero")
    check(rc == 0 and abs(read_csv(out)[2][0, 0] - rbf_nonzero(lab, fx)) < 1e-9, f"--median-rule nonzero: {out} {err}")
    rc, out, err = run(path("labels.npy"), "--vs", path("f.npy"), "--kernel", "rbf", "--sigma", "2")

    def rbf_sigma(x, s):
        sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        return np.exp(-sq / (2 * s * s))
    a, b = centre(rbf_sigma(lab, 2.0)), centre(rbf_sigma(fx, 2.0))
    check(rc == 0 and abs(read_csv(out)[2][0, 0] - (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())) < 1e-9,
          f"--sigma 2: {out} {err}")
    for args, message in [(["--sigma", "2", path("f.npy")], "--kernel rbf"),
                          (["--kernel", "rbf", "--sigma", "2", "--sigma-fraction", "0.5", path("f.npy")], "--sigma"),
                          (["--kernel", "rbf", "--sigma", "-1", path("f.npy")], "--sigma")]:
        rc, out, err = run(*args)
        check(rc == 2 and message in err and len(err.strip().split("\n")) == 1, f"usage {args}: {rc} {err!r}")

    # 2. Write failures exit 2 naming the path; a failed file write leaves no half file.
    for option in ("--csv", "--json", "--svg", "--csv-long"):
        rc, out, err = run(path("f.npy"), path("g.npy"), option, "/dev/full")
        check(rc == 2 and "/dev/full" in err and "write failed" in err, f"{option} /dev/full: {rc} {err!r}")
        rc, out, err = run(path("f.npy"), path("g.npy"), option, path(os.path.join("no_such_dir", "out")))
        check(rc == 2 and "no_such_dir" in err, f"{option} into a missing directory: {rc} {err!r}")
    with open("/dev/full", "w") as full:
        p = subprocess.run([BINARY, path("f.npy"), path("g.npy")], stdout=full, stderr=subprocess.PIPE, text=True)
    check(p.returncode == 2 and "standard output" in p.stderr, f"stdout on /dev/full: {p.returncode} {p.stderr!r}")
    r, w = os.pipe()
    os.close(r)  # a reader that has gone away; with SIGPIPE ignored the write fails with EPIPE
    p = subprocess.run([BINARY, path("f.npy"), path("g.npy")], stdout=w, stderr=subprocess.PIPE, text=True,
                       preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))
    os.close(w)
    check(p.returncode == 2 and "standard output" in p.stderr, f"EPIPE: {p.returncode} {p.stderr!r}")
    os.mkdir(path("ro"))
    rc, out, err = run(path("f.npy"), path("g.npy"), "--svg", path(os.path.join("ro", "m.svg")), "--csv",
                       path(os.path.join("ro", "m.csv")))
    check(rc == 0 and sorted(os.listdir(path("ro"))) == ["m.csv", "m.svg"], f"files only, no temporaries: {os.listdir(path('ro'))}")
    check(oct(os.stat(path(os.path.join("ro", "m.csv"))).st_mode & 0o777) != "0o600", "written files get the umask's mode")

    # 7. Hostile shapes: refused in milliseconds, naming the file, before anything proportional is allocated.
    for shape, message in [("(0, 500000000000000000)", "0 samples"), ("(100000000, 0)", "no features"),
                           ("(1000000000000000000, 0)", "no features"), ("(1, 5)", "at least 2")]:
        count = eval(shape)[0] * eval(shape)[1]
        f = path("hostile.npy")
        with open(f, "wb") as h:
            h.write(npy_header("<f8", shape) + b"\0" * (8 * count))
        for extra in ([], ["--kernel", "rbf"], ["--minibatch", "4"], ["--debiased"]):
            rc, out, err = run(f, path("g.npy") if shape == "(1, 5)" else f, *extra, timeout=20)
            check(rc == 2 and "hostile.npy" in err and (message in err or "samples" in err) and len(err.strip().split("\n")) == 1,
                  f"hostile shape {shape} {extra}: {rc} {err!r}")
    # Memory: a Gram route that would not fit is refused before loading, saying what it needs; the linear
    # kernel streams the same layers.
    np.save(path("long_layer.npy"), rng.standard_normal((200000, 1)).astype(np.float16))
    rc, out, err = run(path("long_layer.npy"), "--kernel", "rbf", "--pvalues", "analytic", timeout=20)
    check(rc == 2 and "n = 200000" in err and "320.00 GB for the tests" in err and "Gram" in err, f"memory refusal: {rc} {err!r}")
    # The linear kernel's tests of a narrow layer run in feature space (8 n (d + 1) bytes, not n^2: they
    # were refused as if they held a Gram).
    rc, out, err = run(path("long_layer.npy"), "--pvalues", "analytic", "-q", timeout=60)
    check(rc == 0 and read_csv(out)[2][0, 0] == 1.0, f"tests in feature space: {rc} {err!r}")
    rc, out, err = run(path("long_layer.npy"), "--kernel", "rbf", "--memory", "1M", timeout=20)
    # Issue 25, item 17: sizes under a gigabyte in MB ("more than 0.00 GB" before).
    check(rc == 2 and "n = 200000" in err and re.search(r"needs [0-9.]+ MB", err) and "more than 1.0 MB" in err,
          f"memory refusal, tiles too: {rc} {err!r}")
    rc, out, err = run(path("long_layer.npy"), "-q", timeout=60)
    check(rc == 0 and read_csv(out)[2][0, 0] == 1.0, f"the linear kernel streams it: {rc} {err!r}")
    # Issue 9: RBF layers whose Grams exceed --memory are computed in tiles, with the in-memory values.
    # n = 1200: three layers' stored kernel tiles take 17 MB; --memory 12M leaves room for the layers, their
    # centered copies and a few tiles per thread only.
    big_labels = (rng.random(1200) < 0.3).astype(int)
    np.save(path("t_labels.npy"), np.eye(2)[big_labels])
    np.save(path("t_f.npy"), rng.standard_normal((1200, 10)) + big_labels[:, None])
    np.save(path("t_g.npy"), rng.standard_normal((1200, 6)))
    layers3 = [path("t_labels.npy"), path("t_f.npy"), path("t_g.npy")]
    for extra in ([], ["--debiased"], ["--median-rule", "nonzero"]):
        rc, ref_out, err = run(*layers3, "--kernel", "rbf", "-q", *extra)
        rc2, tiled_out, err2 = run(*layers3, "--kernel", "rbf", "-q", "--memory", "12M", *extra)
        a, b = read_csv(ref_out)[2], read_csv(tiled_out)[2]
        check(rc == 0 and rc2 == 0 and np.allclose(a, b, rtol=1e-11, equal_nan=True)
              and np.isnan(a).any() == ("--median-rule" not in extra), f"tiled RBF matrix {extra}: {err2} {a} {b}")
    rc, out, err = run(path("t_labels.npy"), "--vs", path("t_f.npy"), path("t_g.npy"), "--kernel", "rbf", "--memory", "12M")
    check(rc == 0 and "t_labels.npy" in err and "median" in err and np.isnan(read_csv(out)[2]).all(),
          f"tiled RBF: zero median warning: {err!r}")
    rc, out, err = run(path("t_f.npy"), "--vs", path("t_g.npy"), "--kernel", "rbf", "--memory", "12M", "-q")
    check(rc == 0 and abs(read_csv(out)[2][0, 0] - cka(np.load(path("t_f.npy")), np.load(path("t_g.npy")), "rbf")) < 1e-9,
          f"tiled RBF against NumPy: {out} {err}")
    # Defect 8: an overflow inside the tile engine's threads aborted the tool (SIGABRT); now exit 2, one line.
    np.save(path("huge.npy"), rng.standard_normal((300, 3)) * 1e155)
    for extra in ([], ["--memory", "12M"]):
        rc, out, err = run(path("huge.npy"), path("huge.npy"), "--kernel", "rbf", "--sigma", "1", *extra)
        check(rc == 2 and "huge.npy" in err and "overflow" in err and len(err.strip().split("\n")) == 1,
              f"rbf overflow in tiles {extra}: {rc} {err!r}")
    # Float32 layers stay float32 in memory on the RBF route: the same values as their float64 copies.
    for name in ("t_f", "t_g"):
        np.save(path(name + "32.npy"), np.load(path(name + ".npy")).astype(np.float32))
        np.save(path(name + "32as64.npy"), np.load(path(name + "32.npy")).astype(np.float64))
    for extra in ([], ["--memory", "12M"], ["--debiased"]):
        rc, narrow_out, err = run(path("t_f32.npy"), path("t_g32.npy"), "--kernel", "rbf", "-q", *extra)
        rc2, wide_out, err2 = run(path("t_f32as64.npy"), path("t_g32as64.npy"), "--kernel", "rbf", "-q", *extra)
        check(rc == 0 and rc2 == 0 and np.allclose(read_csv(narrow_out)[2], read_csv(wide_out)[2], rtol=1e-13, atol=0),
              f"float32 RBF layers {extra}: {err} {err2}")
    for bad_size in ("lots", "12Q", "0"):
        rc, out, err = run(path("f.npy"), path("g.npy"), "--kernel", "rbf", "--memory", bad_size)
        check(rc == 2 and "--memory" in err, f"--memory {bad_size}: {rc} {err!r}")
    # 9. Too few samples for the estimator: the file is named.
    np.save(path("three.npy"), rng.standard_normal((3, 4)))
    rc, out, err = run(path("three.npy"), "--debiased")
    check(rc == 2 and "three.npy" in err and "at least 4" in err, f"n = 3 debiased: {err!r}")

    # 10. CSV names per RFC 4180: Python's csv module reads the exact names back.
    odd = ["x,y", '"lead', "tab\there", "b"]
    for name in odd:
        np.save(path(name + ".npy"), rng.standard_normal((n, 3)))
    rc, out, err = run(*[path(name + ".npy") for name in odd], "--quiet")
    table = list(csv_module.reader(io.StringIO(out)))
    check(rc == 0 and table[0][1:] == odd and [r[0] for r in table[1:]] == odd and all(len(r) == 5 for r in table),
          f"csv quoting: {table[:2]}")

    # 11. Control characters and invalid UTF-8 in names: the SVG parses as XML, the JSON as JSON.
    weird = [os.path.join(tmp.encode(), b"ctl\x01name.npy"), os.path.join(tmp.encode(), b"bad\xffutf8.npy"),
             os.path.join(tmp.encode(), b"amp&<lt>.npy")]
    for w_name in weird:
        with open(w_name, "wb") as h:
            np.save(h, rng.standard_normal((n, 3)))
    p = subprocess.run([BINARY.encode(), *weird, b"--svg", path("w.svg").encode(), b"--json", path("w.json").encode(),
                        b"--quiet"], capture_output=True)
    check(p.returncode == 0, f"weird names: {p.returncode} {p.stderr!r}")
    try:
        labels_svg = [e for e in ET.parse(path("w.svg")).getroot().iter() if e.get("class") == "label"]
        check(len(labels_svg) == 6, "weird names: svg labels")
    except ET.ParseError as e:
        check(False, f"weird names: svg is not XML: {e}")
    try:
        j = json.load(open(path("w.json"), encoding="utf-8"))
        check(j["rows"][0] == "ctl\x01name" and "\ufffd" in j["rows"][1] and j["rows"][2] == "amp&<lt>", f"json names {j['rows']}")
    except ValueError as e:
        check(False, f"weird names: json does not parse: {e}")

    # The command line: --version, --help, -q, "--" ends the options, --threads above the core count warns.
    rc, out, err = run("--version")
    check(rc == 0 and out.startswith("cka-similarity ") and err == "", f"--version: {out!r}")
    rc, out, err = run("--help")
    check(rc == 0 and "--kernel" in out and "--median-rule" in out, "--help")
    rc, out, err = run("-q", path("labels.npy"), path("f.npy"), "--kernel", "rbf")
    check(rc == 0 and err == "", f"-q is --quiet: {rc} {err!r}")
    os.mkdir(path("dash"))
    np.save(path(os.path.join("dash", "--odd.npy")), rng.standard_normal((n, 3)))
    rc, out, err = run("--quiet", "--", "--odd.npy", path("f.npy"), cwd=path("dash"))
    check(rc == 0 and read_csv(out)[0] == ["--odd", "f"], f"-- ends the options: {rc} {err!r}")
    rc, out, err = run(path("f.npy"), path("g.npy"), "--threads", str(4 * (os.cpu_count() or 1)))
    check(rc == 0 and "--threads" in err and "cores" in err, f"--threads above the cores: {err!r}")

    # Issue 12: natural order of directory layers, --order, duplicate names, --csv-long, --precision, no -0.
    os.mkdir(path("model"))
    for i in range(12):
        np.save(path(os.path.join("model", f"layer_{i}.npy")), rng.standard_normal((n, 3)) + i)
    rc, out, err = run(path("model"), "--quiet")
    check(rc == 0 and read_csv(out)[0] == [f"layer_{i}" for i in range(12)], f"natural order: {read_csv(out)[0]}")
    with open(path("order.txt"), "w") as h:
        h.write("# wanted order\n" + "\n".join(f"layer_{i}" for i in reversed(range(12))) + "\n")
    rc, out, err = run(path("model"), "--order", path("order.txt"), "--quiet")
    check(rc == 0 and read_csv(out)[0] == [f"layer_{i}" for i in reversed(range(12))], f"--order: {err}")
    with open(path("order_bad.txt"), "w") as h:
        h.write("layer_0\nlayer_99\n")
    rc, out, err = run(path("model"), "--order", path("order_bad.txt"))
    check(rc == 2 and "order_bad.txt" in err and len(err.strip().split("\n")) == 1, f"--order with a bad name: {err!r}")
    os.makedirs(path(os.path.join("dirA", "x")))
    os.makedirs(path(os.path.join("dirB", "x")))
    np.save(path(os.path.join("dirA", "x", "layer.npy")), rng.standard_normal((n, 3)))
    np.save(path(os.path.join("dirB", "x", "layer.npy")), rng.standard_normal((n, 3)))
    rc, out, err = run(path(os.path.join("dirA", "x", "layer.npy")), path(os.path.join("dirB", "x", "layer.npy")))
    check(rc == 0 and read_csv(out)[0] == ["dirA/x/layer", "dirB/x/layer"] and "labelled" in err,
          f"duplicate names: {read_csv(out)[0] if rc == 0 else err}")
    rc, out, err = run(path(os.path.join("dirA", "x")), "--vs", path(os.path.join("dirB", "x")))
    check(rc == 0 and read_csv(out)[0] == ["layer"] and read_csv(out)[1] == ["layer"] and err == "",
          f"the same name on both sides of --vs is not a duplicate: {out!r} {err!r}")
    rc, out, err = run(path("f.npy"), path("g.npy"), "--csv-long", path("long.csv"), "--precision", "4", "--quiet")
    long_rows = list(csv_module.reader(open(path("long.csv"))))
    check(rc == 0 and long_rows[0] == ["row", "column", "cka"] and len(long_rows) == 5 and long_rows[2][:2] == ["f", "g"],
          f"--csv-long: {long_rows}")
    check(all(len(x.split("e")[0].replace("-", "").replace(".", "").lstrip("0")) <= 4 for x in out.replace("\n", ",").split(",")[3:] if x),
          f"--precision 4: {out!r}")
    # float16 dumps (the usual way to halve them): the values of the float16 data, on every route.
    h1 = rng.standard_normal((n, 5)).astype(np.float16)
    h2 = (h1.astype(np.float64) @ rng.standard_normal((5, 4))).astype(np.float16)
    np.save(path("h1.npy"), h1)
    np.save(path("h2.npy"), h2.astype(">f2"))
    for extra, kernel in [([], "linear"), (["--kernel", "rbf"], "rbf"), (["--minibatch", "1000", "--debiased"], "debiased")]:
        rc, out, err = run(path("h1.npy"), "--vs", path("h2.npy"), *extra)
        ref = cka(h1.astype(np.float64), h2.astype(np.float64), "rbf" if kernel == "rbf" else "linear", kernel == "debiased")
        check(rc == 0 and abs(read_csv(out)[2][0, 0] - ref) < 1e-9, f"float16 {extra}: {out} {err} vs {ref}")
    # --samples N (the first N rows) and --rows FILE.npy (an index array) on every route.
    fx, gx = np.load(path("f.npy")), np.load(path("g.npy"))
    idx = rng.permutation(n)[:90]
    np.save(path("idx.npy"), idx)
    np.save(path("idx32.npy"), idx.astype(">i4"))
    for extra, kernel in [([], "linear"), (["--kernel", "rbf"], "rbf"), (["--debiased", "--minibatch", "1000"], "debiased")]:
        for sel, rows_ in [(["--samples", "70"], np.arange(70)), (["--rows", path("idx.npy")], idx),
                           (["--rows", path("idx32.npy")], idx)]:
            rc, out, err = run(path("f.npy"), "--vs", path("g.npy"), *extra, *sel)
            ref = cka(fx[rows_], gx[rows_], "rbf" if kernel == "rbf" else "linear", kernel == "debiased")
            check(rc == 0 and abs(read_csv(out)[2][0, 0] - ref) < 1e-9, f"{sel} {extra}: {out} {err} vs {ref}")
    np.save(path("idx_bad.npy"), np.array([0, 5, n]))
    np.save(path("idx_float.npy"), np.array([0.0, 1.0]))
    for sel, message in [(["--rows", path("idx_bad.npy")], "idx_bad.npy: index 2 is 200"),
                         (["--rows", path("idx_float.npy")], "idx_float.npy"), (["--samples", "500"], "--samples 500"),
                         (["--rows", path("idx.npy"), "--samples", "5"], "--rows")]:
        rc, out, err = run(path("f.npy"), path("g.npy"), *sel)
        check(rc == 2 and message in err and len(err.strip().split("\n")) == 1, f"{sel}: {rc} {err!r}")

    # .npz archives (np.savez): one layer per array, on every route, named by the array; ZIP64 members;
    # a compressed archive is refused naming the array.
    import zipfile
    np.savez(path("acts.npz"), first=fx, second=gx)
    with zipfile.ZipFile(path("acts64.npz"), "w") as z:
        for name, arr in (("first", fx), ("second", gx)):
            with z.open(name + ".npy", "w", force_zip64=True) as h:
                np.save(h, arr)
    np.savez_compressed(path("packed.npz"), first=fx)
    for archive in ("acts.npz", "acts64.npz"):
        for extra, kernel in [([], "linear"), (["--kernel", "rbf"], "rbf"), (["--minibatch", "1000", "--debiased"], "debiased")]:
            rc, out, err = run(path(archive), *extra)
            rows = read_csv(out)[0] if rc == 0 else []
            ref = cka(fx, gx, "rbf" if kernel == "rbf" else "linear", kernel == "debiased")
            check(rc == 0 and rows == ["first", "second"] and abs(read_csv(out)[2][0, 1] - ref) < 1e-9,
                  f"{archive} {extra}: {rows} {err}")
    rc, out, err = run(path("packed.npz"))
    check(rc == 2 and "packed.npz/first" in err and "compressed" in err, f"compressed npz: {err!r}")
    with open(path("broken.npz"), "wb") as h:
        h.write(b"PK\x03\x04" + b"\0" * 40)
    rc, out, err = run(path("broken.npz"))
    check(rc == 2 and "broken.npz" in err and "npz" in err, f"broken npz: {err!r}")

    # Issue 11: --pvalues (permutations or analytic) and --ci (jackknife) in the JSON, the long CSV and the
    # SVG (cells not significant at 0.05 hatched, with a legend).
    import math
    np.save(path("dep.npy"), fx[:, :3] @ rng.standard_normal((3, 2)) + 0.3 * rng.standard_normal((n, 2)))
    np.save(path("indep.npy"), rng.standard_normal((n, 2)))
    rc, out, err = run(path("f.npy"), "--vs", path("dep.npy"), path("indep.npy"), "--debiased", "--pvalues", "analytic",
                       "--ci", "0.9", "--json", path("inf.json"), "--csv-long", path("inf.csv"), "--svg", path("inf.svg"))
    j = json.load(open(path("inf.json")))
    long_rows = list(csv_module.reader(open(path("inf.csv"))))
    check(rc == 0 and long_rows[0] == ["row", "column", "cka", "p_value", "lower", "upper"] and len(long_rows) == 3,
          f"--pvalues/--ci long csv: {rc} {err} {long_rows[:1]}")
    ind = np.load(path("indep.npy"))
    value = cka(fx, ind, debiased=True)
    z = value * math.sqrt(n * (n - 3) / 2)
    check(abs(j["values"][0][1] - value) < 1e-9 and abs(j["p_values"][0][1] - 0.5 * math.erfc(z / math.sqrt(2))) < 1e-9,
          f"analytic p-value: {j['p_values']} vs {0.5 * math.erfc(z / math.sqrt(2))}")
    check(j["p_values"][0][0] < 1e-6 and j["lower"][0][0] < j["values"][0][0] < j["upper"][0][0], f"dependent pair: {j}")
    svg_root = ET.parse(path("inf.svg")).getroot()
    hatched = [e for e in svg_root.iter() if e.get("class") == "not-significant"]
    check(len(hatched) == (1 if j["p_values"][0][1] >= 0.05 else 0), f"hatched cells: {len(hatched)} {j['p_values']}")
    runs = [run(path("f.npy"), "--vs", path("dep.npy"), path("indep.npy"), "--pvalues", "99", "--seed", "3",
                "--json", path(f"perm{k}.json"), "-q") for k in range(2)]
    p0, p1 = (json.load(open(path(f"perm{k}.json")))["p_values"][0] for k in range(2))
    check(all(r[0] == 0 for r in runs) and p0 == p1 and p0[0] == 0.01 and all(round(v * 100) == v * 100 for v in p0),
          f"permutation p-values reproducible: {p0} {p1}")
    for args, message in [(["--pvalues", "abc"], "--pvalues"), (["--pvalues", "10", "--minibatch", "8"], "--minibatch"),
                          (["--ci", "2"], "--ci")]:
        rc, out, err = run(path("f.npy"), path("g.npy"), *args)
        check(rc == 2 and message in err and len(err.strip().split("\n")) == 1, f"{args}: {rc} {err!r}")

    # The SVG keeps every label's full text (a tooltip where the label is shortened), and scales (viewBox).
    long_name = "sentence_transformers_bert_encoder_layer_11_attention_output_dense"
    np.save(path(long_name + ".npy"), rng.standard_normal((n, 3)))
    rc, out, err = run(path(long_name + ".npy"), "--vs", path("f.npy"), path("g.npy"), "--svg", path("long.svg"), "-q")
    root = ET.parse(path("long.svg")).getroot()
    texts = ["".join(e.itertext()) for e in root.iter() if e.get("class") == "label"]
    check(rc == 0 and root.get("viewBox") and any(long_name in t for t in texts) and any("\u2026" in t for t in texts),
          f"svg labels keep the full name: {texts}")
    check(any(e.get("class") == "axis" for e in root.iter()), "svg axis titles in --vs mode")

    # Debiased CKA of independent layers can be slightly negative: printed with its sign, never as -0.
    np.save(path("ind1.npy"), rng.standard_normal((40, 2)))
    np.save(path("ind2.npy"), rng.standard_normal((40, 2)))
    rc, out, err = run(path("ind1.npy"), path("ind2.npy"), "--debiased", "--svg", path("neg.svg"), "--precision", "1")
    check(rc == 0 and "-0," not in out and not out.rstrip().endswith("-0") and "-0.00<" not in open(path("neg.svg")).read(),
          f"no negative zero: {out!r}")

# Issue 25 (reliability of the newer surface): one row per defect, plain and sanitized.
import zipfile
import struct as struct_module

with tempfile.TemporaryDirectory() as tmp:
    path = lambda name: os.path.join(tmp, name)
    rng = np.random.default_rng(25)
    n = 80
    a = rng.standard_normal((n, 5))
    np.save(path("a.npy"), a)
    np.save(path("b.npy"), np.tanh(a @ rng.standard_normal((5, 3))))

    def one_line_exit_2(args, message, what):
        rc, out, err = run(*args)
        check(rc == 2 and message in err and len(err.strip().split("\n")) == 1 and out == "", f"{what}: {rc} {err!r} {out[:80]!r}")

    # 1. An .npz shorter than a ZIP64 record whose locator points inside it: exit 2, not SIGSEGV.
    tiny = (struct_module.pack("<IIQI", 0x07064B50, 0, 0, 1) +
            struct_module.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    with open(path("tiny.npz"), "wb") as h:
        h.write(tiny)
    one_line_exit_2([path("tiny.npz")], "tiny.npz", "tiny ZIP64 .npz")
    # 8. Two members of one name: refused, naming the name (the last one was used for both).
    import warnings
    with warnings.catch_warnings(), zipfile.ZipFile(path("twice.npz"), "w") as z:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name: it is the point
        for arr in (a, a + 1):
            with z.open("x.npy", "w") as h:
                np.save(h, arr)
    one_line_exit_2([path("twice.npz")], "two arrays are named 'x'", "duplicate .npz members")
    # 17. A NaN inside an .npz member: the member named once.
    bad = a.copy()
    bad[4, 1] = np.nan
    np.savez(path("acts.npz"), good=a, bad=bad)
    rc, out, err = run(path("acts.npz"))
    check(rc == 2 and err.count("acts.npz") == 1 and "bad" in err and "sample 4" in err, f"NaN in an .npz member: {err!r}")

    # 15. Every option validated on every route, with a readable message.
    for args, message in [(["--ci", "nan"], "--ci"), (["--ci", "inf"], "--ci"),
                          (["--memory", "garbage"], "--memory"), (["--memory", "0"], "--memory"),
                          (["--memory", "-1"], "--memory"), (["--memory", "nan"], "--memory"),
                          (["--seed", "-1"], "--seed"), (["--seed", "18446744073709551616"], "--seed"),
                          (["--seed", "1e3"], "--seed"), (["--pvalues", ""], "--pvalues"), (["--pvalues", "-5"], "--pvalues"),
                          (["--sigma", "0", "--kernel", "rbf"], "--sigma must be a positive number, got 0"),
                          (["--sigma", "nan", "--kernel", "rbf"], "--sigma"), (["--sigma-fraction", "inf"], "--sigma-fraction"),
                          (["--vmin", "nan"], "--vmin"), (["--samples", "0"], "--samples"), (["--order", tmp], "not an order file")]:
        one_line_exit_2([path("a.npy"), path("b.npy"), *args], message, f"option {args}")
        _, _, err = run(path("a.npy"), path("b.npy"), *args)
        check(len(err) < 200, f"option {args}: a short message: {err!r}")
    rc, out, err = run(path("a.npy"), path("b.npy"), "--seed", "18446744073709551615", "--pvalues", "9", "-q")
    check(rc == 0, f"--seed 2^64 - 1 is a seed: {err!r}")

    # 16. An output path that cannot be written is found before the work, and nothing reaches standard
    # output or the other paths.
    rc, out, err = run(path("a.npy"), path("b.npy"), "--json", path("j.json"), "--svg", path(os.path.join("nowhere", "x.svg")))
    check(rc == 2 and out == "" and "x.svg" in err and not os.path.exists(path("j.json")), f"unwritable --svg: {rc} {out!r} {err!r}")
    check(not [f for f in os.listdir(tmp) if f.startswith(".")], f"no temporary files left: {os.listdir(tmp)}")

    # 17. Messages that name the right cause.
    np.save(path("four.npy"), a[:4])
    np.save(path("four_b.npy"), a[:4, :2] ** 2)
    rc, out, err = run(path("four.npy"), path("four_b.npy"), "--debiased", "--pvalues", "analytic")
    check(rc == 2 and "--pvalues with --debiased needs at least 5" in err, f"--debiased --pvalues with n = 4: {err!r}")
    np.save(path("three.npy"), a[:3])
    np.save(path("three_b.npy"), a[:3, :2] ** 2)
    rc, out, err = run(path("three.npy"), path("three_b.npy"), "--pvalues", "analytic")
    check(rc == 2 and "--pvalues needs at least 4" in err and "--debiased" not in err, f"biased --pvalues with n = 3: {err!r}")
    np.save(path("onehot.npy"), np.eye(n))
    rc, out, err = run(path("onehot.npy"), path("a.npy"), "--debiased")
    check(rc == 0 and "onehot.npy" in err and "unbiased estimator" in err and "one-hot" in err,
          f"all-distinct one-hot layer, --debiased: {err!r}")

    # 11, 12, 18. --pvalues: one p-value per unordered pair (a symmetric matrix), p = 1 with a warning for a
    # permutation-invariant layer, and a nan interval with a warning where a leave-one-out CKA is undefined.
    spike = np.full((n, 3), 0.5)
    spike[7] = [2.0, -1.0, 3.0]
    np.save(path("spike.npy"), spike)
    np.save(path("distinct.npy"), np.eye(n))
    for pv in ("analytic", "40"):
        rc, out, err = run(path("a.npy"), path("b.npy"), path("distinct.npy"), path("spike.npy"), "--pvalues", pv, "--ci", "0.9",
                           "--json", path("t.json"))
        j = json.load(open(path("t.json"))) if rc == 0 else {"p_values": [[0]], "lower": [[0]]}
        p = np.array(j["p_values"], dtype=float)
        lower = np.array(j["lower"], dtype=float)
        check(rc == 0 and np.array_equal(p, p.T) and (p[2] == 1).all() and "distinct.npy" in err and "p-values are 1" in err,
              f"--pvalues {pv}: symmetric, degenerate layer: {p} {err!r}")
        check(np.isnan(lower[3, :3]).all() and np.isfinite(lower[:2, :2]).all() and "no jackknife interval" in err,
              f"--ci with a spike layer: {lower} {err!r}")

    # 13. One rescaling rule on every route: a layer times 1e-100, 1e-80 or 1e100 gives the values of the
    # unscaled layer — streamed, through the Grams (--minibatch), and under --pvalues/--ci.
    for factor in (1e-100, 1e-80, 1e100):
        np.save(path("scaled.npy"), a * factor)
        for extra in ([], ["--debiased"], ["--minibatch", "40"], ["--pvalues", "analytic", "--ci", "0.9"], ["--pvalues", "analytic", "--debiased"]):
            rc0, out0, _ = run(path("a.npy"), path("b.npy"), *extra, "-q")
            rc1, out1, err1 = run(path("scaled.npy"), path("b.npy"), *extra)
            v0 = read_csv(out0)[2] if rc0 == 0 else None
            v1 = read_csv(out1)[2] if rc1 == 0 else None
            check(rc1 == 0 and v1 is not None and np.allclose(v0, v1, rtol=1e-11, atol=0) and "variance" not in err1,
                  f"layer * {factor} {extra}: {v1} vs {v0} {err1!r}")

    # 20. Two directories with a colliding name: every label carries its directory.
    for d, names in (("acts_mlp", ["0_1", "3_6"]), ("acts_cnn", ["0_1", "2_2"])):
        os.mkdir(path(d))
        for name in names:
            np.save(path(os.path.join(d, name + ".npy")), rng.standard_normal((n, 3)))
    rc, out, err = run(path("acts_mlp"), path("acts_cnn"))
    labels_seen = read_csv(out)[0] if rc == 0 else []
    check(labels_seen == ["acts_mlp/0_1", "acts_mlp/3_6", "acts_cnn/0_1", "acts_cnn/2_2"], f"consistent labels: {labels_seen} {err!r}")
    # The demo writes its heatmap to the temporary directory, not the working one; the picture in the README
    # and the tutorial (docs/cka-demo.svg) is the file the tool writes, byte for byte.
    rc, out, err = run("--demo", cwd=tmp)
    check(rc == 0 and not os.path.exists(path("cka-demo.svg")) and "cka-demo.svg" in err, f"demo heatmap: {err!r}")
    rc, out, err = run("--demo", "--svg", path("demo.svg"), "-q")
    docs_svg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "cka-demo.svg")
    check(rc == 0 and open(path("demo.svg"), "rb").read() == open(docs_svg, "rb").read(),
          "docs/cka-demo.svg is what --demo writes (regenerate: cka-similarity --demo --svg docs/cka-demo.svg)")

# The progress bar: shown on a terminal once the work takes over a second; never with --quiet or when
# stderr is not a terminal. A pseudo-terminal comes from util-linux `script`; skipped where it is missing
# and in the (slow) sanitizer run.
import shlex
import shutil
if shutil.which("script") and "sanitized" not in os.path.basename(BINARY):
    with tempfile.TemporaryDirectory() as tmp:
        big_rng = np.random.default_rng(9)
        big = [os.path.join(tmp, f"big{i}.npy") for i in range(8)]
        for f in big:
            np.save(f, big_rng.standard_normal((4000, 400)))  # ~2 s of RBF work here
        command = " ".join(shlex.quote(a) for a in [BINARY, "--kernel", "rbf", *big])
        on_tty = subprocess.run(["script", "-qec", command + " > /dev/null", "/dev/null"],
                                capture_output=True, text=True, timeout=300).stdout
        quiet = subprocess.run(["script", "-qec", command + " --quiet > /dev/null", "/dev/null"],
                               capture_output=True, text=True, timeout=300).stdout
        rc, out, piped = run("--kernel", "rbf", *big)
        check("ETA" in on_tty and "%" in on_tty, f"progress bar on a terminal: {on_tty[-200:]!r}")
        check("ETA" not in quiet, "no progress bar with --quiet")
        check(rc == 0 and "ETA" not in piped, "no progress bar when stderr is not a terminal")

# Ctrl-C (SIGINT) and SIGTERM stop a long run at once: one line, no output and no temporary file left
# beside it, and the process ends by the signal (as `kill -INT` shows it to a shell: status 130). Streamed
# linear runs stop between chunks, the rest inside the library's loops.
import signal
import time
with tempfile.TemporaryDirectory() as tmp:
    sig_rng = np.random.default_rng(11)
    long_layers = [os.path.join(tmp, f"long{i}.npy") for i in range(3)]
    for f in long_layers:
        np.save(f, sig_rng.standard_normal((3000, 20)))
    out_dir = os.path.join(tmp, "out")
    os.mkdir(out_dir)
    runs = {"permutation p-values": ["--kernel", "rbf", "--pvalues", "1000000", *long_layers]}
    if "sanitized" not in os.path.basename(BINARY):  # there one chunk's product takes some 20 s
        wide = [os.path.join(tmp, f"wide{i}.npy") for i in range(3)]
        for f in wide:
            np.save(f, sig_rng.standard_normal((20000, 800)).astype(np.float32))  # ~3 s on one thread
        runs["streamed linear"] = ["--threads", "1", *wide]
    for name, args in runs.items():
        for sig in (signal.SIGINT, signal.SIGTERM):
            csv_path, svg_path = os.path.join(out_dir, "m.csv"), os.path.join(out_dir, "m.svg")
            p = subprocess.Popen([BINARY, *args, "--csv", csv_path, "--svg", svg_path], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
            sent = time.monotonic()
            p.send_signal(sig)
            out, err = p.communicate(timeout=120)
            waited = time.monotonic() - sent
            lines = err.strip().split("\n")
            check(p.returncode == -sig, f"{name}, {sig.name}: ends by the signal (status {p.returncode}; {err[-300:]!r})")
            check(len(lines) == 1 and lines[0] == f"cka-similarity: stopped by {sig.name}; no output written",
                  f"{name}, {sig.name}: one line on stderr ({err[-300:]!r})")
            check(os.listdir(out_dir) == [], f"{name}, {sig.name}: no output or temporary file left: {os.listdir(out_dir)}")
            check(waited < 10, f"{name}, {sig.name}: stopped {waited:.1f} s after the signal")

print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
