#!/usr/bin/env python3
"""Writes the conformance suite: conformance/manifest.json and conformance/inputs/*.npy, from fixed seeds,
bit-identically on every run and every machine (NumPy's legacy RandomState, element-wise float operations
only, a .npy writer of our own, and every reduction in the 50-digit oracle of oracle50.py).

    python3 conformance/generate.py           # write the files
    python3 conformance/generate.py --check   # regenerate in memory; exit 1 if any file differs (CI)

Needs NumPy; takes ~1 minute. The schema is documented in docs/conformance.md.
"""
import argparse
import decimal
import hashlib
import json
import os
import sys

try:
    import numpy as np
except ImportError:  # CTest: skipped
    print("skipped: generate.py needs NumPy (Debian: python3-numpy)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle50 as o  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_VERSION = 1
D = decimal.Decimal

# --- The quantities and their convention fields (the first value listed is the default) -------------------

ESTIMATOR = {"biased": "HSIC from the double-centered Grams, tr(KHLH)/(n−1)² (cancels in CKA)",
             "unbiased": "Song et al. (2012) eq. 5 in all three HSIC terms: 'debiased CKA'; can be negative"}
RETURNED = {"cka": "CKA itself", "1-cka": "1 − CKA (a distance)", "arccos": "arccos(CKA) (an angle)"}
FORM = {"centered": "the paper's: linear CKA of the column-centered relation rows, loss 1 − CKA",
        "row_scaled_uncentered": "the official code's: K = SSᵀ with row i scaled by 1/√K_ii, uncentered cosine, "
                                 "loss 1 − cosine"}
QUANTITIES = {
    "linear_cka": {
        "inputs": ["x", "y"], "parameters": [], "returns": "scalar",
        "definition": "HSIC(XXᵀ, YYᵀ)/√(HSIC(XXᵀ, XXᵀ)·HSIC(YYᵀ, YYᵀ)) for X (n×d₁), Y (n×d₂), rows = samples",
        "conventions": {"estimator": dict(ESTIMATOR, lange="Lange et al.: center both Grams, zero their "
                                          "diagonals, cosine"),
                        "returned": RETURNED}},
    "rbf_cka": {
        "inputs": ["x", "y"], "parameters": ["sigma (bandwidth fixed)", "fraction (bandwidth median)"],
        "returns": "scalar",
        "definition": "CKA of the Grams exp(−‖xᵢ − xⱼ‖²/(2σ²)), σ resolved separately for X and for Y",
        "conventions": {
            "estimator": ESTIMATOR,
            "bandwidth": {"median": "σ from a median of X's (Y's) own distances, times `fraction`",
                          "fixed": "σ = `sigma` for both"},
            "median_of": {"squared_distances": "σ² = fraction² · median(‖xᵢ − xⱼ‖²)",
                          "distances": "σ = fraction · median(‖xᵢ − xⱼ‖)"},
            "median_pairs": {"all": "all n² entries, the zero diagonal included (Kornblith et al.)",
                             "off_diagonal": "the n(n−1)/2 pairs i < j",
                             "nonzero": "the pairs i < j whose distance is not zero"},
            "median_kind": {"mean_of_middle": "NumPy's median: the mean of the two middle values of an even count",
                            "lower": "the lower of the two middle values (torch.median)"},
            "returned": RETURNED}},
    "polynomial_cka": {
        "inputs": ["x", "y"], "parameters": ["degree", "gamma", "coef0"], "returns": "scalar",
        "definition": "CKA of the Grams (γ⟨xᵢ, xⱼ⟩ + c₀)^degree",
        "conventions": {"estimator": ESTIMATOR, "returned": RETURNED}},
    "hsic": {
        "inputs": ["k", "l"], "parameters": [], "returns": "scalar",
        "definition": "HSIC of two n×n symmetric Gram matrices",
        "conventions": {"estimator": {"biased": "tr(KHLH) over `normalization`",
                                      "unbiased": "Song et al. (2012) eq. 5: the diagonals zeroed, 1/(n(n−3))"},
                        "normalization": {"(n-1)^2": "biased: divide by (n−1)² (Kornblith et al.)",
                                          "n^2": "biased: divide by n²"}}},
    "minibatch_cka": {
        "inputs": ["x", "y"], "parameters": ["batch_size"], "returns": "scalar",
        "definition": "Nguyen et al. (2021): linear-kernel unbiased HSIC of consecutive batches of batch_size rows, "
                      "summed (each batch once), then the CKA ratio of the sums",
        "conventions": {"final_batch": {"kept_if_at_least_4": "a shorter final batch counts once if it has ≥ 4 "
                                                              "rows; with fewer it is left out"},
                        "returned": RETURNED}},
    "mmd2": {
        "inputs": ["x", "y"], "parameters": ["sigma (kernel rbf)"], "returns": "scalar",
        "definition": "squared MMD between the samples X (m×d) and Y (n×d)",
        "conventions": {"kernel": {"rbf": "exp(−‖a − b‖²/(2σ²))", "linear": "⟨a, b⟩"},
                        "estimator": {"biased": "the V-statistic: means over all m², n², mn pairs",
                                      "unbiased": "the U-statistic: the diagonals of Kxx and Kyy left out"}}},
    "cka_mmd_decomposition": {
        "inputs": ["x", "y"], "parameters": ["component", "sigma (kernel rbf)"], "returns": "scalar",
        "definition": "Zhou et al. (2024) §3 on K, L of the same n samples: K̂ = K/‖K‖_F; alignment ⟨K̂, L̂⟩ = 1 − "
                      "discrepancy, discrepancy ½‖K̂ − L̂‖², mean_gap mean(K̂) − mean(L̂), bound 1 − (n²/2)·mean_gap² "
                      "(≥ alignment); `component` names the one returned",
        "conventions": {"kernel": {"linear": "⟨a, b⟩", "rbf": "exp(−‖a − b‖²/(2σ²))"},
                        "centered": {"false": "the Grams as they are", "true": "HKH and HLH"}}},
    "sample_relation_loss": {
        "inputs": ["student", "teacher"], "parameters": [], "returns": "value and gradient",
        "definition": "RCKA's sample term on B×C logits: the relation of the B rows; gradient ∂/∂student",
        "conventions": {"form": FORM}},
    "class_relation_loss": {
        "inputs": ["student", "teacher"], "parameters": [], "returns": "value and gradient",
        "definition": "RCKA's class term on B×C logits: the relation of the C columns; gradient ∂/∂student",
        "conventions": {"form": FORM}},
    "rcka_loss": {
        "inputs": ["student", "teacher"], "parameters": ["sample", "cls"], "returns": "value and gradient",
        "definition": "sample·(sample term) + cls·(class term); gradient ∂/∂student",
        "conventions": {"form": FORM}},
    "patch_loss": {
        "inputs": ["student", "teacher"], "parameters": ["patch_h", "patch_w"], "returns": "value and gradient",
        "definition": "PCKA on B×C×H×W maps (H, W multiples of the patch): per channel, the relation loss of the "
                      "patch rows (patch (gy, gx) holds the B·patch_h·patch_w values under it), averaged over "
                      "the channels; gradient ∂/∂student in the maps' shape",
        "conventions": {"form": FORM}},
}


# --- Inputs ------------------------------------------------------------------------------------------------

def npy_bytes(a):
    """A .npy (format 1.0) of a C-order little-endian float32/float64 array, header padded to 64 bytes."""
    descr = {np.dtype("float64"): "<f8", np.dtype("float32"): "<f4"}[a.dtype]
    shape = "(" + "".join(f"{s}, " for s in a.shape).rstrip(" ") + ")" if len(a.shape) != 1 else f"({a.shape[0]},)"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1") + \
        np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()


def randn(seed, *shape):
    return np.random.RandomState(seed).randn(*shape)


def kornblith():
    """Kornblith et al.'s demo notebook: np.random.seed(1337); X = randn(100, 10); Y = randn(100, 10) + X."""
    rng = np.random.RandomState(1337)
    x = rng.randn(100, 10)
    y = rng.randn(100, 10) + x
    return x, y


def pair(seed, n, d1, d2):
    """X (n×d₁) and Y = ½·X[:, :d₂] + noise (n×d₂, d₂ ≤ d₁) or X[:, :d₁] tiled (d₂ > d₁): related, not equal."""
    x = randn(seed, n, d1)
    noise = randn(seed + 1000, n, d2)
    y = np.empty((n, d2))
    for c in range(d2):
        y[:, c] = 0.5 * x[:, c % d1] + noise[:, c]
    return x, y


def rotated(x):
    """X times an orthogonal matrix, element-wise: columns reversed, column 0 negated, and the first two
    mixed by the rotation (0.6, −0.8; 0.8, 0.6)."""
    z = x[:, ::-1].copy()
    z[:, 0] = -z[:, 0]
    a, b = z[:, 0].copy(), z[:, 1].copy()
    z[:, 0] = 0.6 * a - 0.8 * b
    z[:, 1] = 0.8 * a + 0.6 * b
    return z


# --- Building the manifest -----------------------------------------------------------------------------------

class Suite:
    def __init__(self):
        self.files = {}  # relative path -> bytes
        self.cases = []

    def input(self, name, a):
        a = np.ascontiguousarray(a)
        path = f"inputs/{name}.npy"
        data = npy_bytes(a)
        if path in self.files and self.files[path] != data:
            raise ValueError(f"two different inputs named {name}")
        self.files[path] = data
        return path

    def add(self, cid, quantity, convention, data, inputs, value, *, parameters=None, tolerance=1e-12, note=None,
            published=None, gradient=None, gradient_tolerance=None, margin=None):
        q = QUANTITIES[quantity]
        for field, v in convention.items():
            if field not in q["conventions"] or v not in q["conventions"][field]:
                raise ValueError(f"{cid}: convention {field}={v} is not in {quantity}'s table")
        if any(c["id"] == cid for c in self.cases):
            raise ValueError(f"duplicate case id {cid}")
        paths = {name: self.input(f"{data}-{name}", a) for name, a in zip(q["inputs"], inputs)}
        case = {"id": cid, "quantity": quantity, "convention": convention, "inputs": paths,
                "parameters": parameters or {}}
        if value is None:
            case["outcome"] = "undefined"
            case["expected"] = None
        else:
            case["outcome"] = "value"
            case["expected"] = Number17(value)
            case["value_50"] = digits50(value)
            case["tolerance"] = {"relative": tolerance} if margin is None else {"absolute": margin}
        if gradient is not None:
            case["gradient"] = [Number17(g) for g in gradient]
            case["gradient_50"] = [digits50(g) for g in gradient]
            case["gradient_tolerance"] = {"relative_to_largest": gradient_tolerance or 1e-10}
        if published:
            case["published"] = published
        if note:
            case["note"] = note
        self.cases.append(case)


class Number17:
    """A value written into the JSON as a number with 17 significant digits (float64 round-trips)."""
    def __init__(self, value):
        self.text = "%.17g" % float(value)
        if self.text in ("-0", "0"):
            self.text = "0"


def digits50(value):
    if value == 0:
        return "0"
    return format(+value, ".49e")


def to_json(obj, indent=0):
    """Deterministic JSON: keys in insertion order, Number17 written as numbers, one case per block."""
    pad = "  " * indent
    if isinstance(obj, Number17):
        return obj.text
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        inner = [f'{pad}  {json.dumps(k, ensure_ascii=False)}: {to_json(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(inner) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ", ".join(to_json(v) for v in obj) + "]"
        return "[\n" + ",\n".join(pad + "  " + to_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


# --- The cases -----------------------------------------------------------------------------------------------

def similarity_cases(s):
    ex = o.exact
    kx, ky = kornblith()
    base = pair(1, 40, 6, 4)
    sets = {  # name: (x, y, note)
        "base": (*base, "n = 40, d₁ = 6, d₂ = 4, related"),
        "kornblith": (kx, ky, "Kornblith et al.'s demo data"),
        "n4": (*pair(2, 4, 3, 2), "n = 4, the fewest samples the unbiased estimator allows"),
        "n5": (*pair(3, 5, 3, 2), "n = 5"),
        "n_lt_d": (*pair(4, 6, 20, 15), "n = 6 < d₁ = 20, d₂ = 15: the Grams are the cheaper route"),
        "d1": (*pair(5, 30, 1, 1), "one feature each"),
        "duplicated_rows": (np.vstack([base[0][:20], base[0][:10]]), np.vstack([base[1][:20], base[1][:10]]),
                            "rows 20–29 repeat rows 0–9: zero off-diagonal distances"),
        "offset_1e4": (base[0] + 1e4, base[1] + 1e4, "the base data plus 10⁴: centering must keep the digits"),
        "offset_1e8": (base[0] + 1e8, base[1] + 1e8, "the base data plus 10⁸"),
        "scale_1e150": (base[0] * 1e150, base[1] * 1e150, "the base data times 10¹⁵⁰: products overflow"),
        "scale_1e-150": (base[0] * 1e-150, base[1] * 1e-150, "the base data times 10⁻¹⁵⁰: products underflow"),
        "identical": (base[0], base[0].copy(), "X against itself: CKA = 1"),
        "orthogonal": (rotated(base[0]), base[1], "the base case with X rotated and reflected: the same CKA"),
        "isotropic": (base[0] * 3.5, base[1] * 2.0 ** -20, "the base case with X × 3.5 and Y × 2⁻²⁰: the same CKA"),
    }
    const_col = base[0].copy()
    const_col[:, 2] = 7.0
    sets["constant_column"] = (const_col, base[1], "X's third column constant (a valid input)")
    sets["float32"] = (base[0].astype(np.float32), base[1].astype(np.float32), "the base data rounded to float32")
    sets["float32_offset_1e4"] = ((base[0] + 1e4).astype(np.float32), (base[1] + 1e4).astype(np.float32),
                                  "float32 with an offset of 10⁴: Gram-space centering in float32 loses it all")
    sets["constant_layer"] = (np.full((20, 4), 3.0), base[1][:20], "X constant: CKA is 0/0, undefined")
    ties_rng = np.random.RandomState(6)
    sets["ties"] = (ties_rng.randint(0, 3, (24, 2)).astype(np.float64), ties_rng.randint(0, 4, (24, 3)).astype(np.float64),
                    "integer points: many tied distances, ties at the median")
    for name, (x, y, note) in sets.items():
        sets[name] = (x, y, note, ex(x), ex(y))

    def tol_for(name, estimator):
        if name.startswith("float32"):
            return 1e-5, "float32 input: 1e-5 admits a float32 computation; a double accumulation meets 1e-12"
        if estimator == "unbiased" and name in ("n4", "n5"):
            return 1e-10, "n ≤ 5: the unbiased estimator's terms cancel"
        return 1e-12, None

    def join(*parts):
        parts = [p for p in parts if p]
        return "; ".join(parts) if parts else None

    # Linear CKA.
    for name in ["kornblith", "base", "n4", "n5", "n_lt_d", "d1", "constant_column", "duplicated_rows", "ties",
                 "offset_1e4", "offset_1e8", "scale_1e150", "scale_1e-150", "float32", "float32_offset_1e4",
                 "identical", "orthogonal", "isotropic", "constant_layer"]:
        x, y, note, xd, yd = sets[name]
        k, l = o.gram_linear(xd), o.gram_linear(yd)
        for est in ["biased", "unbiased"]:
            published = None
            if name == "kornblith":
                published = {"value": "0.55761" if est == "biased" else "0.51346", "digits": 5, "agrees_within": 5e-6,
                             "source": "Kornblith et al. (ICML 2019), google-research/representation_similarity "
                                       "Demo.ipynb: printed linear CKA (biased) and debiased linear CKA"}
            tol, why = tol_for(name, est)
            s.add(f"linear-{name}-{est}", "linear_cka", {"estimator": est, "returned": "cka"}, name, (x, y),
                  o.cka(k, l, est), tolerance=tol, note=join(note, why), published=published)
    for name in ["kornblith", "base", "n_lt_d"]:
        x, y, note, xd, yd = sets[name]
        s.add(f"linear-{name}-lange", "linear_cka", {"estimator": "lange", "returned": "cka"}, name, (x, y),
              o.cka(o.gram_linear(xd), o.gram_linear(yd), "lange"), note=note)

    # RBF CKA: every median rule on the base data, the rules that differ on duplicated rows and ties, a fixed σ,
    # and the edge cases under Kornblith's rule.
    def rbf(name, est, bandwidth, of="squared_distances", pairs="all", kind="mean_of_middle", fraction=1.0,
            sigma=None, published=None, extra=None):
        x, y, note, xd, yd = sets[name]
        if bandwidth == "fixed":
            sx = sy = D(float(sigma)) ** 2
            conv = {"estimator": est, "bandwidth": "fixed", "returned": "cka"}
            params, tag = {"sigma": sigma}, f"sigma{sigma:g}"
        else:
            sx = o.median_sigma2(xd, of, pairs, kind, fraction)
            sy = o.median_sigma2(yd, of, pairs, kind, fraction)
            conv = {"estimator": est, "bandwidth": "median", "median_of": of, "median_pairs": pairs,
                    "median_kind": kind, "returned": "cka"}
            params = {"fraction": fraction}
            tag = f"median-{'sq' if of == 'squared_distances' else 'dist'}-{pairs}-{kind}-f{fraction:g}"
        value = None if sx == 0 or sy == 0 else o.cka(o.gram_rbf(xd, sx), o.gram_rbf(yd, sy), est)
        tol, why = tol_for(name, est)
        s.add(f"rbf-{name}-{tag}-{est}", "rbf_cka", conv, name, (x, y), value, parameters=params, tolerance=tol,
              note=join(note, extra, why), published=published)

    rbf("kornblith", "biased", "median", fraction=0.5,
        published={"value": "0.65483", "digits": 5, "agrees_within": 5e-6,
                   "source": "Kornblith et al. (ICML 2019), Demo.ipynb: printed RBF CKA with threshold 0.5 "
                             "(σ = 0.5·√median of all n² squared distances, NumPy's median, per representation)"})
    rbf("kornblith", "unbiased", "median", fraction=0.5)
    for of in ["squared_distances", "distances"]:
        for pairs in ["all", "off_diagonal"]:
            for kind in ["mean_of_middle", "lower"]:
                rbf("base", "biased", "median", of, pairs, kind)
    rbf("base", "unbiased", "median")
    rbf("base", "biased", "median", fraction=0.5)
    for pairs in ["all", "off_diagonal", "nonzero"]:
        rbf("duplicated_rows", "biased", "median", pairs=pairs)
    rbf("ties", "biased", "median", pairs="all")
    rbf("ties", "biased", "median", pairs="off_diagonal", kind="lower")
    for est in ["biased", "unbiased"]:
        rbf("base", est, "fixed", sigma=2.0)
    # The edge cases under Kornblith's rule and under three other rules codes use (torch.median's lower middle
    # value; the pairs i < j; the median of distances over i < j), so that a code's rule can be told apart
    # from its other faults.
    for name in ["kornblith", "n4", "n5", "n_lt_d", "d1", "constant_column", "offset_1e4", "offset_1e8", "scale_1e150",
                 "scale_1e-150", "float32", "float32_offset_1e4", "identical", "orthogonal", "isotropic"]:
        for of, pairs, kind in [("squared_distances", "all", "mean_of_middle"), ("squared_distances", "all", "lower"),
                                ("squared_distances", "off_diagonal", "mean_of_middle"),
                                ("distances", "off_diagonal", "mean_of_middle")]:
            if name == "kornblith" and of == "squared_distances" and kind == "mean_of_middle" and pairs == "all":
                continue  # the published case above (fraction 0.5), and f = 1 below
            rbf(name, "biased", "median", of, pairs, kind)
            if name in ("n4", "n5", "offset_1e4"):
                rbf(name, "unbiased", "median", of, pairs, kind)
    rbf("kornblith", "biased", "median")
    rbf("offset_1e8", "biased", "fixed", sigma=2.0, extra="exp(−d/2σ²) with d from differences of rows near 10⁸")
    rbf("constant_layer", "biased", "median", extra="every distance is zero: the median bandwidth is zero")

    # Polynomial CKA.
    for name, degree, gamma, coef0 in [("base", 2, 0.1, 1.0), ("base", 3, 0.05, 0.5), ("n5", 3, 0.05, 0.5),
                                       ("kornblith", 2, 0.1, 1.0)]:
        x, y, note, xd, yd = sets[name]
        k, l = o.gram_polynomial(xd, degree, gamma, coef0), o.gram_polynomial(yd, degree, gamma, coef0)
        for est in ["biased", "unbiased"]:
            tol, why = tol_for(name, est)
            s.add(f"polynomial-{name}-d{degree}-{est}", "polynomial_cka", {"estimator": est, "returned": "cka"},
                  name, (x, y), o.cka(k, l, est), parameters={"degree": degree, "gamma": gamma, "coef0": coef0},
                  tolerance=tol, note=join(note, why))

    # HSIC on Gram matrices (rounded to float64 from the 50-digit Grams, so exactly symmetric).
    def stored(g):
        return np.array([[float(v) for v in row] for row in g])
    for name, kind in [("base", "linear"), ("base", "rbf"), ("n4", "linear"), ("kornblith", "linear")]:
        x, y, note, xd, yd = sets[name]
        if kind == "linear":
            k, l = stored(o.gram_linear(xd)), stored(o.gram_linear(yd))
        else:
            k = stored(o.gram_rbf(xd, o.median_sigma2(xd, "squared_distances", "all", "mean_of_middle", 1.0)))
            l = stored(o.gram_rbf(yd, o.median_sigma2(yd, "squared_distances", "all", "mean_of_middle", 1.0)))
        kd, ld = o.exact(k), o.exact(l)
        for est, norm in [("biased", "(n-1)^2"), ("biased", "n^2"), ("unbiased", None)]:
            conv = {"estimator": est} if norm is None else {"estimator": est, "normalization": norm}
            tag = est if norm is None else f"{est}-{'n1' if norm == '(n-1)^2' else 'n'}"
            tol, why = tol_for(name, est)
            s.add(f"hsic-{name}-{kind}-{tag}", "hsic", conv, f"{name}-{kind}-gram", (k, l), o.hsic(kd, ld, est, norm or "(n-1)^2"),
                  tolerance=tol, note=join(f"{kind} Grams of the {name} data", why))

    # Minibatch CKA.
    for name, batch in [("base", 10), ("base", 40), ("kornblith", 25), ("kornblith", 30), ("base", 12)]:
        x, y, note, xd, yd = sets[name]
        n = len(xd)
        kb, lb = [], []
        for b0 in range(0, n, batch):
            rows = range(b0, min(n, b0 + batch))
            if len(rows) < 4:
                continue
            kb.append(o.gram_linear([xd[i] for i in rows]))
            lb.append(o.gram_linear([yd[i] for i in rows]))
        sizes = [min(batch, n - b0) for b0 in range(0, n, batch)]
        extra = f"batches of {sizes}" + ("; one batch: the debiased linear CKA" if len(sizes) == 1 else "") + \
            ("; the final batch of fewer than 4 rows is left out" if sizes[-1] < 4 else "")
        s.add(f"minibatch-{name}-b{batch}", "minibatch_cka", {"final_batch": "kept_if_at_least_4", "returned": "cka"},
              name, (x, y), o.minibatch_cka(kb, lb), parameters={"batch_size": batch}, note=join(note, extra))

    # MMD².
    p = randn(7, 30, 3)
    q = randn(8, 25, 3) * 1.2 + 0.3
    shogun_p = np.array([[(3 * i + j) / 23.0 for j in range(3)] for i in range(8)])
    shogun_q = np.array([[(24 + 3 * i + j) / 47.0 for j in range(3)] for i in range(8)])
    for name, (x, y), sigma, pub in [
            ("samples", (p, q), 1.5, None),
            ("shogun", (shogun_p, shogun_q), 2.0, {"biased": "0.357650929735592", "unbiased": "0.268801886722675"})]:
        xd, yd = o.exact(x), o.exact(y)
        for kernel in ["rbf", "linear"]:
            s2 = D(float(sigma)) ** 2
            kxx, kyy, kxy = (o.cross_gram(a, b, kernel, s2) for a, b in ((xd, xd), (yd, yd), (xd, yd)))
            for est in ["biased", "unbiased"]:
                published = None
                if pub and kernel == "rbf":
                    published = {"value": pub[est], "scale": "m·MMD² with m = 8", "digits": 15, "agrees_within": 1e-14,
                                 "source": "Shogun toolbox, tests/unit/statistics/QuadraticTimeMMD_unittest.cc "
                                           "(checked there against MATLAB); Gaussian kernel of width 2σ² = 8"}
                s.add(f"mmd2-{name}-{kernel}-{est}", "mmd2", {"kernel": kernel, "estimator": est}, f"mmd-{name}", (x, y),
                      o.mmd2(kxx, kyy, kxy, est), parameters={"sigma": sigma} if kernel == "rbf" else {},
                      note=f"m = {len(xd)}, n = {len(yd)}", published=published)

    # The CKA–MMD decomposition.
    x, y, note, xd, yd = sets["base"]
    for kernel in ["linear", "rbf"]:
        if kernel == "linear":
            k, l = o.gram_linear(xd), o.gram_linear(yd)
        else:
            k, l = o.gram_rbf(xd, D(4)), o.gram_rbf(yd, D(4))
        for centered in [False, True]:
            parts = o.decomposition(k, l, centered)
            for component in ["alignment", "discrepancy", "mean_gap", "bound"]:
                value = parts[component]
                margin = None
                if centered and component in ("mean_gap", "bound"):
                    margin = 1e-15  # exactly 0 and 1: a stated margin at zero
                    value = D(0) if component == "mean_gap" else D(1)
                params = {"component": component}
                if kernel == "rbf":
                    params["sigma"] = 2.0
                s.add(f"decomposition-base-{kernel}-{'centered' if centered else 'uncentered'}-{component}",
                      "cka_mmd_decomposition", {"kernel": kernel, "centered": "true" if centered else "false"},
                      "base", (x, y), value, parameters=params, margin=margin,
                      note="centered Grams have zero mean: the gap is 0 and the bound the trivial 1" if margin else None)


def loss_cases(s):
    ex = o.exact
    student = randn(11, 8, 5)
    teacher = 0.7 * student + randn(12, 8, 5)
    sd, td = ex(student), ex(teacher)
    elems = [(i, j) for i in range(8) for j in range(5)]
    for form in ["centered", "row_scaled_uncentered"]:
        for quantity, loss, params in [
                ("sample_relation_loss", lambda a, t=td, f=form: o.sample_loss(a, t, f), {}),
                ("class_relation_loss", lambda a, t=td, f=form: o.class_loss(a, t, f), {}),
                ("rcka_loss", lambda a, t=td, f=form: o.rcka_loss(a, t, f, 1.0, 0.5), {"sample": 1.0, "cls": 0.5})]:
            s.add(f"{quantity.replace('_loss', '')}-logits-{form}", quantity, {"form": form}, "logits", (student, teacher),
                  loss(sd), parameters=params, gradient=o.gradient(loss, sd, elems),
                  note="B = 8, C = 5 logits; gradient by central differences at 110 digits")
        s.add(f"sample_relation-identical-{form}", "sample_relation_loss", {"form": form}, "logits-identical",
              (teacher, teacher.copy()),
              D(0), gradient=[D(0)] * len(elems), margin=1e-15, gradient_tolerance=1e-15,
              note="student = teacher: loss 0, gradient 0 (a stated margin at zero)")
    student32 = student.astype(np.float32)
    teacher32 = teacher.astype(np.float32)
    s32, t32 = ex(student32), ex(teacher32)
    s.add("sample_relation-logits-float32-centered", "sample_relation_loss", {"form": "centered"},
          "logits-float32", (student32, teacher32), o.sample_loss(s32, t32, "centered"), tolerance=1e-5, gradient_tolerance=1e-5,
          gradient=o.gradient(lambda a: o.sample_loss(a, t32, "centered"), s32, elems),
          note="float32 logits: 1e-5 admits a float32 computation")
    # PCKA: B = 2, C = 2, 4×4 maps, 2×2 patches: 4 patches per channel, rows of 8 values.
    maps_s = randn(13, 2, 2, 4, 4)
    maps_t = 0.6 * maps_s + randn(14, 2, 2, 4, 4)
    ms = [[[[D(float(v)) for v in row] for row in ch] for ch in img] for img in maps_s.tolist()]
    mt = [[[[D(float(v)) for v in row] for row in ch] for ch in img] for img in maps_t.tolist()]
    idx = [(b, c, i, j) for b in range(2) for c in range(2) for i in range(4) for j in range(4)]
    for form in ["centered", "row_scaled_uncentered"]:
        loss = (lambda a, f=form: o.patch_loss(a, mt, f, 2, 2))
        s.add(f"patch-maps-{form}", "patch_loss", {"form": form}, "maps", (maps_s, maps_t), loss(ms),
              parameters={"patch_h": 2, "patch_w": 2}, gradient=o.gradient(loss, ms, idx),
              note="B = 2, C = 2, 4×4 maps, 2×2 patches; gradient in C order of the maps")


def build():
    decimal.setcontext(o.context(o.WORKING_DIGITS))
    s = Suite()
    similarity_cases(s)
    loss_cases(s)
    manifest = {
        "schema": "cka-conformance",
        "version": SCHEMA_VERSION,
        "generator": "conformance/generate.py (NumPy legacy RandomState seeds; 50-digit oracle conformance/oracle50.py)",
        "documentation": "docs/conformance.md",
        "quantities": QUANTITIES,
        "cases": s.cases,
    }
    s.files["manifest.json"] = (to_json(manifest) + "\n").encode("utf-8")
    return s.files


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    ap.add_argument("--out", default=HERE, help="the directory to write (default: this one)")
    args = ap.parse_args()
    files = build()
    if args.check:
        bad = []
        for rel, data in files.items():
            path = os.path.join(args.out, rel)
            if not os.path.exists(path) or open(path, "rb").read() != data:
                bad.append(rel)
        on_disk = {f"inputs/{f}" for f in os.listdir(os.path.join(args.out, "inputs"))} \
            if os.path.isdir(os.path.join(args.out, "inputs")) else set()
        stray = sorted(on_disk - set(files))
        for rel in bad:
            print(f"differs from a fresh generation: conformance/{rel}")
        for rel in stray:
            print(f"not written by the generator: conformance/{rel}")
        digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()[:16]
        print(f"{len(files)} files, {sum(1 for _ in files) - 1} inputs + manifest, digest {digest}: "
              f"{'identical' if not bad and not stray else 'DIFFERENT'}")
        return 1 if bad or stray else 0
    os.makedirs(os.path.join(args.out, "inputs"), exist_ok=True)
    for rel, data in files.items():
        with open(os.path.join(args.out, rel), "wb") as f:
            f.write(data)
    print(f"wrote {len(files)} files ({len([c for c in files if c.startswith('inputs/')])} inputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
