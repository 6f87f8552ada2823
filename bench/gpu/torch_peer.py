#!/usr/bin/env python3
"""The PyTorch peer and the float64 reference for bench/gpu/run.sh.

Usage: python3 bench/gpu/torch_peer.py REPORT [--table OUT.md]

REPORT is what `test_device_cuda --time --report REPORT` wrote: one JSON object per timed case with cka's
median time, its floor (its bare cuBLAS products, or one read of its input) and its value. For each case
this script writes the same inputs on the GPU (test_device_cuda.cu's hash, in PyTorch's int64
arithmetic), computes the value again in float64 the plain way (the independent reference), and times
PyTorch on the same inputs with CUDA events (median of several calls after a warm-up): in float64, as cka
computes, and for float input also in float32; the faster of the two is the peer. It prints one table with
the targets of the GPU issue beside it and exits 1 if a value disagrees with its reference beyond the
tolerance of its type (2^-22 relative for a float result; for a float64 result 1e-12 for linear CKA, 1e-11
for hsic at n = 46,341, whose reference sums 2.1e9 products, and 1e-10 for the RBF kernel, whose
reference forms distances as |a|^2 + |b|^2 - 2<a,b> and rounds them differently)."""
import argparse
import json
import statistics
import sys
import time

import torch

M64 = 1 << 64
DEVICE = "cuda"  # --device cpu runs the whole script on the CPU (its test: tests/python/test_gpu_peer.py)


def signed(c):
    """An unsigned 64-bit constant as the int64 with the same bits."""
    c %= M64
    return c - M64 if c >= 1 << 63 else c


def srl(z, k):
    """Logical right shift of int64 values (PyTorch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def hashed(seed, index):
    """test_device_cuda.cu's hashed(seed, i): splitmix64 of seed·golden + i + 1, its top 53 bits as a
    double in [-1, 1). index: an int64 tensor. int64 products wrap as uint64 products do."""
    z = index + signed(seed * 0x9E3779B97F4A7C15 + 1)
    z = (z ^ srl(z, 30)) * signed(0xBF58476D1CE4E5B9)
    z = (z ^ srl(z, 27)) * signed(0x94D049BB133111EB)
    z = z ^ srl(z, 31)
    return srl(z, 11).double() * 2.0**-52 - 1.0


def layers(n, d1, d2, seed, dtype, device=None):
    """test_device_cuda.cu's fill_layers: X (n×d1) with x_e = hashed(seed, e) at column-major flat index e,
    Y (n×d2) with y_e = 0.5·x_{e mod n·d1} + hashed(seed + 1, e); each value rounded once to dtype."""
    device = device or DEVICE
    x = hashed(seed, torch.arange(n * d1, device=device)).to(dtype)
    e = torch.arange(n * d2, device=device)
    y = (0.5 * x.double()[e % (n * d1)] + hashed(seed + 1, e)).to(dtype)
    return x.view(d1, n).T, y.view(d2, n).T


def aligned(k, l):
    return (k * l).sum() / (k.norm() * l.norm())


def linear_cka(x, y):
    """Biased linear CKA of centered features: ‖YᵀX‖²/(‖XᵀX‖‖YᵀY‖), or two n×n Grams where n < d1 + d2."""
    x, y = x - x.mean(0), y - y.mean(0)
    if x.shape[0] < x.shape[1] + y.shape[1]:
        return aligned(x @ x.T, y @ y.T)
    return (y.T @ x).square().sum() / ((x.T @ x).norm() * (y.T @ y).norm())


def rbf_cka(x, y, sigma, block=4096):
    """Biased RBF CKA with a fixed σ, row blocks of the Grams at a time (no n×n buffer): from ΣK∘L, ΣK², ΣL²
    and the row sums, tr(KHLH) = ΣK∘L − (2/n) r_K·r_L + (ΣK)(ΣL)/n²."""
    n = x.shape[0]
    sx, sy = x.square().sum(1), y.square().sum(1)
    kl = kk = ll = 0.0
    rk, rl = torch.empty(n, dtype=x.dtype, device=x.device), torch.empty(n, dtype=x.dtype, device=x.device)
    for i0 in range(0, n, block):
        rows = slice(i0, min(n, i0 + block))
        index = torch.arange(rows.stop - rows.start, device=x.device)

        def gram(z, sz):
            d = (sz[rows, None] + sz[None, :] - 2 * (z[rows] @ z.T)).clamp_min_(0)
            d[index, index + i0] = 0  # the diagonal: exactly zero distance
            return torch.exp(d / (-2 * sigma * sigma))

        k, l = gram(x, sx), gram(y, sy)
        rk[rows], rl[rows] = k.sum(1), l.sum(1)
        kl, kk, ll = kl + (k * l).sum(), kk + k.square().sum(), ll + l.square().sum()

    def centered(s, ra, rb):
        return s - 2 / n * ra.dot(rb) + ra.sum() * rb.sum() / n**2

    return centered(kl, rk, rl) / (centered(kk, rk, rk) * centered(ll, rl, rl)).sqrt()


def rank_one_grams(n, device=None):
    """compare_rank_one's Grams: K = uuᵀ, L = vvᵀ, u_i = 0.2 + hashed(1, i), v_i = 0.5·u_i + hashed(2, i)."""
    i = torch.arange(n, device=device or DEVICE)
    u = 0.2 + hashed(1, i)
    v = 0.5 * u + hashed(2, i)
    return torch.outer(u, u), torch.outer(v, v)


def hsic(k, l, block=8192):
    """Biased HSIC of two Gram matrices, tr(KHLH)/(n−1)², ΣK∘L summed over row blocks."""
    n = k.shape[0]
    rk, rl = k.sum(1), l.sum(1)
    kl = sum((k[i:i + block] * l[i:i + block]).sum() for i in range(0, n, block))
    return (kl - 2 / n * rk.dot(rl) + rk.sum() * rl.sum() / n**2) / (n - 1) ** 2


def rcka_loss(s, t, w=15.0):
    """w(1 − CKA of the sample relations) + w(1 − CKA of the class relations), centered, biased; the class
    term in feature space with B×B products (python_bench.py's cheapest form)."""
    sc, tc = s - s.mean(0, keepdim=True), t - t.mean(0, keepdim=True)
    sample = 1 - aligned(sc @ sc.T, tc @ tc.T)
    sr, tr = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    cls = 1 - (sr @ tr.T).square().sum() / ((sr @ sr.T).norm() * (tr @ tr.T).norm())
    return w * sample + w * cls


def sample_loss(s, t):
    sc, tc = s - s.mean(0, keepdim=True), t - t.mean(0, keepdim=True)
    return 1 - aligned(sc @ sc.T, tc @ tc.T)


def median_ms(f, repeats):
    """The median of `repeats` calls of f after a warm-up call: CUDA events on the GPU, the clock on the CPU
    (f reads its value back, so it has finished)."""
    f()
    times = []
    for _ in range(repeats):
        if DEVICE != "cuda":
            t0 = time.perf_counter()
            f()
            times.append(1e3 * (time.perf_counter() - t0))
            continue
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        f()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def with_grad(loss, s, t):
    def run():
        sv = s.detach().requires_grad_(True)
        value = loss(sv, t)
        value.backward()
        return value

    return run


def peer(case):
    """(reference value in float64 or None, PyTorch's best ms or None, what PyTorch ran, tolerance)."""
    kind = case["case"]
    float_input = case["dtype"] == "float32"
    if kind == "linear_cka":
        n, d1, d2 = case["n"], case["d1"], case["d2"]
        x, y = layers(n, d1, d2, 1, torch.float32 if float_input else torch.float64)
        reference = linear_cka(x.double(), y.double()).item()
        repeats = 5 if n * (d1 + d2) > 1e7 else 21
        times = {"float64": median_ms(lambda: linear_cka(x.double(), y.double()).item(), repeats)}
        if float_input:
            times["float32"] = median_ms(lambda: linear_cka(x, y).item(), repeats)
        return reference, times, 2.0**-22 if float_input else 1e-12
    if kind == "rbf_cka":
        if case["sigma"] == 0:  # NumPy's median convention has no cheap PyTorch form at this n
            return None, {}, None
        x, y = layers(case["n"], case["d1"], case["d2"], 2, torch.float64)
        reference = rbf_cka(x, y, case["sigma"]).item()
        return reference, {"float64": median_ms(lambda: rbf_cka(x, y, case["sigma"]).item(), 3)}, 1e-10
    if kind == "hsic":
        k, l = rank_one_grams(case["n"])
        reference = hsic(k, l).item()
        ms = median_ms(lambda: hsic(k, l).item(), 5)
        del k, l
        return reference, {"float64": ms}, 1e-11
    if kind in ("rcka_loss", "rcka_loss_slot", "sample_relation_loss"):
        b, c = case["b"], case["c"]
        x, y = layers(b * c, 1, 1, 3, torch.float32)
        s, t = x.reshape(b, c), y.reshape(b, c)  # the flat values read row-major, as the C++ views read them
        loss = sample_loss if kind == "sample_relation_loss" else rcka_loss
        reference = loss(s.double(), t.double()).item()
        times = {"float64": median_ms(with_grad(lambda a, z: loss(a.double(), z.double()), s, t), 21),
                 "float32": median_ms(with_grad(loss, s, t), 21)}
        return reference, times, 2.0**-22
    raise ValueError(f"torch_peer.py: unknown case {kind!r} in the report")


def label(case):
    kind = case["case"]
    if kind == "linear_cka":
        return f"linear_cka n = {case['n']:,}, d = {case['d1']} + {case['d2']} ({case['dtype']}, {case['form']})"
    if kind == "rbf_cka":
        rule = "median rule" if case["sigma"] == 0 else f"sigma = {case['sigma']:g}"
        return f"kernel_cka RBF, {rule}, n = {case['n']:,}, d = {case['d1']} + {case['d2']}"
    if kind == "hsic":
        return f"hsic of two {case['n']:,}² Gram views"
    return f"{kind} with gradient, B = {case['b']}, C = {case['c']} ({case['dtype']})"


def target(case, ms, peer_ms):
    """The GPU issue's target for the case, and whether it is met (None: no target)."""
    kind = case["case"]
    if kind == "linear_cka" and case["dtype"] == "float64":
        ok = peer_ms is not None and peer_ms >= 1.5 * ms and ms <= 1.3 * case["floor_ms"]
        return "≥ 1.5× PyTorch, ≤ 1.3× its products", ok
    if kind == "rbf_cka" and case["sigma"] == 0:
        return "≤ 120 ms", ms <= 120
    if kind == "rbf_cka":
        return "≤ 60 ms", ms <= 60
    if kind == "hsic":
        return "≤ 30 ms", ms <= 30
    if kind == "rcka_loss":
        return "≤ 0.5 ms, ≥ 2× autograd", ms <= 0.5 and peer_ms is not None and peer_ms >= 2 * ms
    return "", None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", help="the JSON lines test_device_cuda --time --report wrote")
    parser.add_argument("--table", help="also write the table (Markdown) to this file")
    parser.add_argument("--device", default="cuda", help="where PyTorch runs (cpu: to test this script)")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("torch_peer.py: skipped, this PyTorch has no CUDA")
        return 0
    with open(args.report) as f:
        cases = [json.loads(line) for line in f if line.strip()]
    card = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "the CPU"
    clock = "CUDA-event" if DEVICE == "cuda" else "clock"
    rows = [f"cka against PyTorch {torch.__version__} on {card}: medians of {clock} times, warm, same inputs; "
            "floor = cka's own cuBLAS products (or one read of its Grams)",
            "",
            "| case | cka ms | floor ms | PyTorch ms (its best) | PyTorch / cka | launches, syncs | value vs float64 "
            "reference | target |",
            "|---|---|---|---|---|---|---|---|"]
    disagreements = 0
    for case in cases:
        reference, times, tolerance = peer(case)
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
        best = min(times, key=times.get) if times else None
        peer_ms = times[best] if best else None
        if reference is None:
            agreement = "not checked here (test_device_cuda checks it at n = 4099)"
        else:
            rel = abs(case["value"] - reference) / abs(reference)
            ok = rel <= tolerance  # False for a NaN value
            disagreements += not ok
            agreement = f"{rel:.1e} ({'ok' if ok else 'DISAGREES'}, tolerance {tolerance:.0e})"
        goal, met = target(case, case["ms"], peer_ms)
        floor = f"{case['floor_ms']:.3f}" if case["floor_ms"] >= 0 else "—"
        peer_text = f"{peer_ms:.3f} ({best})" if best else "—"
        ratio = f"{peer_ms / case['ms']:.2f}" if best else "—"
        goal_text = f"{goal}: {'met' if met else 'NOT met'}" if met is not None else goal
        rows.append(f"| {label(case)} | {case['ms']:.3f} | {floor} | {peer_text} | {ratio} | "
                    f"{case['launches']}, {case['syncs']} | {agreement} | {goal_text} |")
    print("\n".join(rows))
    if args.table:
        with open(args.table, "w") as f:
            f.write("\n".join(rows) + "\n")
    if disagreements:
        print(f"torch_peer.py: {disagreements} value(s) disagree with the float64 reference")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
