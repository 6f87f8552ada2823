#!/usr/bin/env python3
"""Check a CKA implementation against the conformance suite (conformance/manifest.json). Pure NumPy; it
does not import cka.

Command line:
    python3 conformance/check.py module:function --quantity linear_cka [--convention field=value ...]
prints one line per applicable case (expected, got, relative error, pass/fail) and a summary; the exit
status is 0 only if every case passes (2 for a usage error).

From Python (e.g. in another project's pytest):
    from check import check
    assert check(my_cka, "linear_cka", estimator="unbiased").passed

`function` is called once per case as function(*inputs, **parameters): the case's input arrays in the
order the quantity lists them (`x, y`; `k, l`; `student, teacher`) and its parameters by name (`sigma`,
`fraction`, `degree`, `gamma`, `coef0`, `batch_size`, `component`, `sample`, `cls`, `patch_h`, `patch_w`). It
returns a number, or for a loss (value, gradient) with the gradient in the student's shape. The conventions
the implementation follows are declared as field=value; a field left out takes its default (the first value
of its table in the manifest), and a case applies when every convention it states equals the declared or
default value. `returned` is a transform, not a filter: declare `returned=1-cka` or `returned=arccos` and the
expected values are mapped before the comparison.

A case whose outcome is "undefined" (a constant representation: CKA is 0/0) passes when the function raises
an exception or returns NaN; any number there fails. docs/conformance.md has the schema and the conventions.
"""
import argparse
import importlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "manifest.json")


@dataclass
class CaseResult:
    id: str
    passed: bool
    expected: Optional[float]
    got: Optional[float]
    error: Optional[float]  # relative error of the value (absolute where the case states a margin at zero)
    detail: str = ""


@dataclass
class Report:
    quantity: str
    convention: dict
    results: List[CaseResult] = field(default_factory=list)

    @property
    def passed(self):
        return bool(self.results) and all(r.passed for r in self.results)

    def summary(self):
        ok = sum(r.passed for r in self.results)
        conv = ", ".join(f"{k}={v}" for k, v in self.convention.items())
        return f"{self.quantity} ({conv}): {ok} of {len(self.results)} cases pass"


def load_manifest(path=MANIFEST):
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("schema") != "cka-conformance" or manifest.get("version") != 1:
        raise ValueError(f"{path}: not a version-1 cka-conformance manifest")
    return manifest


def resolve_convention(manifest, quantity, convention):
    """The declared convention completed with the defaults; ValueError for an unknown quantity, field or value."""
    quantities = manifest["quantities"]
    if quantity not in quantities:
        raise ValueError(f"unknown quantity {quantity!r}; the manifest has: {', '.join(quantities)}")
    table = quantities[quantity]["conventions"]
    full = {}
    for name, values in table.items():
        full[name] = next(iter(values))
    for name, value in convention.items():
        value = str(value).lower() if isinstance(value, bool) else str(value)
        if name not in table:
            raise ValueError(f"{quantity} has no convention {name!r}; its fields: {', '.join(table)}")
        if value not in table[name]:
            raise ValueError(f"{quantity}: {name}={value!r} is not one of {', '.join(table[name])}")
        full[name] = value
    return full


def select(manifest, quantity, convention):
    """The cases of `quantity` that apply to an implementation with the completed `convention`."""
    return [c for c in manifest["cases"] if c["quantity"] == quantity and
            all(k == "returned" or convention.get(k) == v for k, v in c["convention"].items())]


def _transform(value, returned):
    if returned == "1-cka":
        return 1.0 - value
    if returned == "arccos":
        return math.acos(max(-1.0, min(1.0, value)))
    return value


def _compare(expected, got, tolerance):
    if "absolute" in tolerance:
        err = abs(got - expected)
        return err, err <= tolerance["absolute"]
    err = abs(got - expected) / abs(expected) if expected != 0 else abs(got)
    return err, err <= tolerance["relative"]


def run_case(fn, case, returned, root=HERE):
    inputs = [np.load(os.path.join(root, case["inputs"][name])) for name in case["inputs"]]
    try:
        out = fn(*inputs, **case["parameters"])
    except Exception as e:  # the undefined outcome, or a failure to report
        if case["outcome"] == "undefined":
            return CaseResult(case["id"], True, None, None, None, f"raised {type(e).__name__} (undefined)")
        return CaseResult(case["id"], False, case["expected"], None, None, f"raised {type(e).__name__}: {e}")
    has_gradient = "gradient" in case
    if has_gradient and not (isinstance(out, (tuple, list)) and len(out) >= 2):
        return CaseResult(case["id"], False, case["expected"], None, None, "a loss must return (value, gradient)")
    value, grad = (out[0], out[1]) if has_gradient else (out, None)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return CaseResult(case["id"], False, case["expected"], None, None, f"returned {type(value).__name__}")
    if case["outcome"] == "undefined":
        ok = math.isnan(value)
        return CaseResult(case["id"], ok, None, value, None,
                          "NaN (undefined)" if ok else "a number where CKA is undefined (0/0)")
    expected = case["expected"]
    tolerance = case["tolerance"]
    if returned != "cka":
        expected = _transform(expected, returned)
        if abs(expected) < 1e-3:  # 1 − CKA near 0: the relative tolerance becomes a margin
            tolerance = {"absolute": 1e-3 * tolerance.get("relative", tolerance.get("absolute"))}
    if not math.isfinite(value):
        return CaseResult(case["id"], False, expected, value, None, "not finite")
    err, ok = _compare(expected, value, tolerance)
    detail = ""
    if has_gradient:
        want = np.array(case["gradient"], dtype=np.float64)
        try:
            g = np.asarray(grad, dtype=np.float64).reshape(-1)
        except Exception:
            g = None
        if g is None or g.size != want.size:
            return CaseResult(case["id"], False, expected, value, err, "gradient missing or of another size")
        scale = float(np.max(np.abs(want)))
        gerr = float(np.max(np.abs(g - want)))
        gtol = case["gradient_tolerance"]["relative_to_largest"]
        gerr_rel = gerr / scale if scale > 0 else gerr
        gok = bool(np.all(np.isfinite(g))) and gerr_rel <= gtol
        detail = f"gradient {'ok' if gok else 'off'}: {gerr_rel:.1e} of its largest element"
        ok = ok and gok
    return CaseResult(case["id"], bool(ok), expected, value, err, detail)


def check(fn: Callable, quantity: str, manifest_path: str = MANIFEST, verbose: bool = False, **convention) -> Report:
    """Run `fn` on every case of `quantity` that applies under `convention` (field=value; defaults for the
    rest) and return a Report (`.passed`, `.results`, `.summary()`). A Report with no cases does not pass."""
    manifest = load_manifest(manifest_path)
    full = resolve_convention(manifest, quantity, convention)
    report = Report(quantity, full)
    root = os.path.dirname(os.path.abspath(manifest_path))
    for case in select(manifest, quantity, full):
        r = run_case(fn, case, full.get("returned", "cka"), root)
        report.results.append(r)
        if verbose:
            print(format_line(r))
    return report


def format_line(r):
    fmt = lambda v: "—" if v is None else f"{v:.17g}"  # noqa: E731
    err = "—" if r.error is None else f"{r.error:.2e}"
    return f"{'PASS' if r.passed else 'FAIL'}  {r.id:<60s} expected {fmt(r.expected):>24s}  got {fmt(r.got):>24s}  " \
           f"rel.err {err:>9s}  {r.detail}"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check a CKA implementation against conformance/manifest.json.")
    ap.add_argument("function", help="module:function, called as function(*inputs, **parameters)")
    ap.add_argument("--quantity", required=True, help="e.g. linear_cka, rbf_cka, hsic, mmd2, sample_relation_loss")
    ap.add_argument("--convention", action="append", default=[], metavar="FIELD=VALUE",
                    help="a convention the implementation follows (repeatable); others take their defaults")
    ap.add_argument("--manifest", default=MANIFEST)
    args = ap.parse_args(argv)
    try:
        convention = dict(item.split("=", 1) for item in args.convention)
    except ValueError:
        print(f"check.py: --convention takes FIELD=VALUE, got {args.convention}", file=sys.stderr)
        return 2
    module_name, _, func_name = args.function.partition(":")
    try:
        sys.path.insert(0, os.getcwd())
        fn = getattr(importlib.import_module(module_name), func_name)
        report = check(fn, args.quantity, args.manifest, verbose=True, **convention)
    except (ImportError, AttributeError, ValueError, OSError) as e:
        print(f"check.py: {e}", file=sys.stderr)
        return 2
    print(report.summary() if report.results else f"{args.quantity}: no case applies under {report.convention}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
