#!/usr/bin/env python3
"""End-to-end tests of cka-similarity: layers written by NumPy (float32/float64, C/Fortran order, 3-D and
4-D, big-endian) and by hand; CSV against NumPy reference formulas; JSON; the SVG parsed as XML; every bad
input exits 2 with one line naming the file. Usage: test_cka_similarity.py BINARY. Exit 77: NumPy missing."""
import io
import json
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

BINARY = sys.argv[1]
failures = []
passed = 0


def check(condition, what):
    global passed
    if condition:
        passed += 1
    else:
        failures.append(what)
        print("FAILED:", what)


def run(*args, cwd=None):
    p = subprocess.run([BINARY, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
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
        "short n": (bad("short.npy", npy_header("<f8", "(59, 8)") + np.zeros((59, 8)).tobytes()), "59 samples"),
    }
    nan_layer = base.copy()
    nan_layer[3, 2] = np.nan
    np.save(path("nan.npy"), nan_layer)
    cases["nan"] = (path("nan.npy"), "NaN or infinity at sample 3, feature 2")
    # A subdirectory named like a layer inside a layer directory: exit 2 naming it (issue 7, item 8; the
    # streamed linear route).
    os.makedirs(path(os.path.join("nested", "inner.npy")))
    np.save(path(os.path.join("nested", "good.npy")), base)
    cases["subdirectory"] = (path("nested"), "inner.npy: not a regular file")
    for what, (file, message) in cases.items():
        rc, out, err = run(files[0], file)
        lines = err.strip().split("\n")
        check(rc == 2 and len(lines) == 1 and os.path.basename(file) in err and message in err,
              f"bad input {what}: exit {rc}, stderr {err!r}")
    for args, message in [(["--kernel", "cosine", files[0]], "--kernel"), (["--minibatch", "3", files[0]], "--minibatch"),
                          (["--bogus", files[0]], "unknown option"), ([], "no layers"), ([files[0], "--vs"], "--vs")]:
        rc, out, err = run(*args)
        check(rc == 2 and message in err and len(err.strip().split("\n")) == 1, f"usage {args}: {rc} {err!r}")

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

print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
