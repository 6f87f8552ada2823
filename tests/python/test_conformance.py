"""cka against the conformance suite (conformance/): every quantity and convention cka computes runs through
conformance/check.py, and every case of the manifest is either checked here or listed as one that cka does
not compute. Also the checker itself: a known-wrong implementation fails, the undefined outcome, usage
errors, and the published digits the manifest cites. (That the files are what generate.py writes is the
ctest conformance_generated.)"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import cka

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "conformance"))
import check as conformance  # noqa: E402

MANIFEST = conformance.load_manifest()


def _rbf(debiased, rule):
    def f(x, y, sigma=None, fraction=None):
        kernel = cka.RBF(sigma=sigma) if sigma is not None else cka.RBF(median=fraction, rule=rule)
        return cka.kernel_cka(x, y, kernel, debiased=debiased)
    return f


def _loss(fn, form, **fixed):
    centered = form == "centered"
    def f(student, teacher, **params):
        result = fn(student, teacher, centered=centered, row_normalize=not centered, **fixed, **params)
        return result[0], result[1]
    return f


def _minibatch(x, y, batch_size):
    return float(cka.similarity_matrix([x], vs=[y], minibatch=batch_size).values[0, 0])


def _decomposition(x, y, component, sigma=None, *, centered):
    kernel = cka.RBF(sigma=sigma) if sigma is not None else cka.Linear()
    return getattr(cka.mmd_bound(x, y, kernel, centered=centered), component)


def _hsic(debiased):
    return lambda k, l: cka.hsic(k, l, debiased=debiased)


# (quantity, convention, implementation): what cka computes, as a user would call it.
IMPLEMENTED = []
for est in ["biased", "unbiased"]:
    d = est == "unbiased"
    IMPLEMENTED += [
        ("linear_cka", {"estimator": est}, lambda x, y, d=d: cka.linear_cka(x, y, debiased=d)),
        ("rbf_cka", {"estimator": est, "bandwidth": "fixed"}, _rbf(d, "all_pairs")),
        ("polynomial_cka", {"estimator": est},
         lambda x, y, degree, gamma, coef0, d=d: cka.kernel_cka(x, y, cka.Polynomial(degree, gamma, coef0), debiased=d)),
        ("mmd2", {"kernel": "rbf", "estimator": est}, lambda x, y, sigma, d=d: cka.mmd2(x, y, cka.RBF(sigma=sigma), debiased=d)),
        ("mmd2", {"kernel": "linear", "estimator": est}, lambda x, y, d=d: cka.mmd2(x, y, cka.Linear(), debiased=d)),
    ]
    rules = [("all", "all_pairs"), ("off_diagonal", "off_diagonal")] + ([] if d else [("nonzero", "nonzero")])
    for pairs, rule in rules:  # the manifest has no unbiased case for the nonzero rule
        IMPLEMENTED.append(("rbf_cka", {"estimator": est, "bandwidth": "median", "median_of": "squared_distances",
                                        "median_pairs": pairs, "median_kind": "mean_of_middle"}, _rbf(d, rule)))
IMPLEMENTED += [
    ("hsic", {"estimator": "biased", "normalization": "(n-1)^2"}, _hsic(False)),
    ("hsic", {"estimator": "unbiased"}, _hsic(True)),
    ("minibatch_cka", {}, _minibatch),
]
for kernel in ["linear", "rbf"]:
    for centered in [False, True]:
        IMPLEMENTED.append(("cka_mmd_decomposition", {"kernel": kernel, "centered": centered},
                            lambda x, y, c=centered, **p: _decomposition(x, y, centered=c, **p)))
for form in ["centered", "row_scaled_uncentered"]:
    IMPLEMENTED += [
        ("sample_relation_loss", {"form": form}, _loss(cka.sample_relation_loss, form)),
        ("class_relation_loss", {"form": form}, _loss(cka.class_relation_loss, form)),
        ("rcka_loss", {"form": form}, _loss(cka.rcka_loss, form)),
        ("patch_loss", {"form": form}, _loss(cka.patch_loss, form)),
    ]

# What cka does not compute (each a convention of other implementations that the manifest pins down).
NOT_COMPUTED = [
    ("linear_cka", {"estimator": "lange"}),
    ("rbf_cka", {"median_of": "distances"}),  # σ from the median of distances, not of squared distances
    ("rbf_cka", {"median_kind": "lower"}),    # torch.median's lower middle value
    ("hsic", {"normalization": "n^2"}),       # biased HSIC over n² (cka divides by (n−1)²)
]


def _label(item):
    quantity, convention = item[0], item[1]
    return quantity + "[" + ",".join(f"{k}={v}" for k, v in convention.items()) + "]"


@pytest.mark.parametrize("quantity,convention,fn", IMPLEMENTED, ids=[_label(i) for i in IMPLEMENTED])
def test_cka_passes_the_suite(quantity, convention, fn):
    report = conformance.check(fn, quantity, **convention)
    failed = [r for r in report.results if not r.passed]
    assert report.results, f"no case applies to {report.summary()}"
    assert not failed, "\n".join(conformance.format_line(r) for r in failed)


def _covered(case, items):
    for quantity, convention, *_ in items:
        if quantity != case["quantity"]:
            continue
        full = conformance.resolve_convention(MANIFEST, quantity, convention)
        if case in conformance.select(MANIFEST, quantity, full):
            return True
    return False


def _listed(case):
    return any(q == case["quantity"] and all(str(case["convention"].get(k)) == str(v) for k, v in conv.items())
               for q, conv in NOT_COMPUTED)


def test_every_case_is_checked_or_listed_as_not_computed():
    unchecked = [c["id"] for c in MANIFEST["cases"] if not _covered(c, IMPLEMENTED) and not _listed(c)]
    assert not unchecked, f"cases neither checked against cka nor listed as not computed: {unchecked}"
    assert len(MANIFEST["cases"]) >= 130


def test_published_digits_agree_with_the_50_digit_values():
    cited = [c for c in MANIFEST["cases"] if "published" in c]
    assert len(cited) >= 5
    for c in cited:
        p = c["published"]
        scale = 8.0 if "m·MMD²" in p.get("scale", "") else 1.0
        assert abs(scale * c["expected"] - float(p["value"])) <= p["agrees_within"], c["id"]
        assert abs(float(c["value_50"]) - c["expected"]) <= 1e-16 * abs(c["expected"])


def test_a_known_bug_fails_the_suite():
    """`K - diag(K)` (subtracting the diagonal from every row instead of zeroing it), in an unbiased HSIC."""
    def broken_hsic(k, l):
        n = k.shape[0]
        kt, lt = k - np.diag(k), l - np.diag(l)
        one = np.ones(n)
        return float((np.trace(kt @ lt) + one @ kt @ one * (one @ lt @ one) / ((n - 1) * (n - 2))
                      - 2.0 / (n - 2) * one @ kt @ lt @ one) / (n * (n - 3)))
    report = conformance.check(broken_hsic, "hsic", estimator="unbiased")
    assert report.results and not report.passed


def test_a_clamped_or_zero_result_fails_the_undefined_case():
    def zero_for_constant(x, y, **_):
        value = cka.linear_cka(x, y) if np.ptp(x) > 0 else 0.0
        return value
    report = conformance.check(zero_for_constant, "linear_cka")
    bad = [r.id for r in report.results if not r.passed]
    assert bad == ["linear-constant_layer-biased"]


def test_returned_transforms_and_nan_for_undefined():
    one_minus = conformance.check(lambda x, y: 1.0 - cka.linear_cka(x, y) if np.ptp(x) > 0 else math.nan,
                                  "linear_cka", returned="1-cka")
    assert one_minus.passed, one_minus.summary()


def test_command_line(tmp_path):
    module = tmp_path / "numpy_linear_cka.py"
    module.write_text(
        "import numpy as np\n"
        "def linear_cka(x, y):\n"
        "    x = x.astype(np.float64) - x.astype(np.float64).mean(0)\n"
        "    y = y.astype(np.float64) - y.astype(np.float64).mean(0)\n"
        "    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))\n")
    script = os.path.join(ROOT, "conformance", "check.py")
    run = subprocess.run([sys.executable, script, "numpy_linear_cka:linear_cka", "--quantity", "linear_cka"],
                         cwd=tmp_path, capture_output=True, text=True)
    # The plain NumPy formula overflows at 1e150 and underflows at 1e-150 (NaN for the constant layer is the
    # undefined outcome): it fails those two cases and passes the others.
    assert run.returncode == 1, run.stdout + run.stderr
    failed = {line.split()[1] for line in run.stdout.splitlines() if line.startswith("FAIL")}
    assert failed == {"linear-scale_1e150-biased", "linear-scale_1e-150-biased"}
    assert "cases pass" in run.stdout.splitlines()[-1]
    bad = subprocess.run([sys.executable, script, "numpy_linear_cka:linear_cka", "--quantity", "linear_cka",
                          "--convention", "estimator=song"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "estimator" in bad.stderr and "song" in bad.stderr
    unknown = subprocess.run([sys.executable, script, "numpy_linear_cka:linear_cka", "--quantity", "cosine"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown quantity" in unknown.stderr
