#!/usr/bin/env python3
"""The conformance report of the CKA packages on PyPI: installs each peer into a throwaway virtual
environment, calls its public functions on the manifest's cases as a user would, finds for each function
the conventions under which it agrees with the most cases, and rewrites the table between the markers in
docs/conformance.md. Needs the network; not part of CI.

    python3 conformance/peers.py [--keep DIR] [--only NAME ...]

The virtual environments see the system's site-packages (--system-site-packages), so a peer runs against
the machine's NumPy and PyTorch; a peer is installed with --no-deps when its metadata asks for a PyTorch
the machine does not have, and the report says so. A peer that cannot be installed or imported is listed
with the reason.
"""
import argparse
import datetime
import itertools
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "docs", "conformance.md")


# --- The peers: how to install each, and its functions mapped onto the manifest's quantities ----------------
# An adapter is (quantity, fixed conventions, what the user calls, the function). The fixed conventions are
# those the call itself selects (an `unbiased=True` argument); the report searches the others.

def _t(a):
    import torch
    return torch.from_numpy(a)


def ckatorch_adapters():
    import ckatorch
    out = []
    for unbiased in (False, True):
        est = "unbiased" if unbiased else "biased"
        out.append(("linear_cka", {"estimator": est}, f"cka_base(x, y, kernel='linear', unbiased={unbiased})",
                    lambda x, y, u=unbiased: float(ckatorch.cka_base(_t(x), _t(y), kernel="linear", unbiased=u))))
        out.append(("rbf_cka", {"estimator": est, "bandwidth": "median"},
                    f"cka_base(x, y, kernel='rbf', threshold=fraction, unbiased={unbiased})",
                    lambda x, y, fraction, u=unbiased: float(ckatorch.cka_base(_t(x), _t(y), kernel="rbf",
                                                                                threshold=fraction, unbiased=u))))

    def batched(x, y, batch_size):
        n = x.shape[0]
        if n % batch_size:
            raise NotImplementedError("cka_batch takes equal batches")
        return float(ckatorch.cka_batch(_t(x).reshape(n // batch_size, batch_size, -1),
                                        _t(y).reshape(n // batch_size, batch_size, -1)))
    out.append(("minibatch_cka", {}, "cka_batch(x.reshape(b, n/b, d), y.reshape(b, n/b, d))", batched))
    out.append(("hsic", {"estimator": "biased"}, "hsic0(k, l)", lambda k, l: float(ckatorch.hsic0(_t(k), _t(l)))))
    out.append(("hsic", {"estimator": "unbiased"}, "hsic1(k[None], l[None])",
                lambda k, l: float(ckatorch.hsic1(_t(k)[None], _t(l)[None]).reshape(-1)[0])))
    return out


def pytorch_cka_adapters():
    from cka import cka as module  # the pytorch-cka distribution installs a package named `cka`
    out = [("linear_cka", {"estimator": "unbiased"}, "cka_from_features(x, y)",
            lambda x, y: float(module.cka_from_features(_t(x), _t(y)).reshape(-1)[0]))]

    def batched(x, y, batch_size):
        n = x.shape[0]
        xs = [_t(x[i:i + batch_size]) for i in range(0, n, batch_size)]
        ys = [_t(y[i:i + batch_size]) for i in range(0, n, batch_size)]
        if any(b.shape[0] != batch_size for b in xs):
            raise NotImplementedError("cka_from_features stacks equal batches")
        from cka.hsic import hsic
        import torch
        gx = torch.stack([b @ b.T for b in xs])
        gy = torch.stack([b @ b.T for b in ys])
        xy, xx, yy = hsic(gx, gy)
        return float(torch.diagonal(xy).sum() / (xx.sum() * yy.sum()).sqrt())
    out.append(("minibatch_cka", {}, "hsic(stacked batch Grams), summed", batched))
    return out


def torch_cka_adapters():
    import torch
    from torch_cka import CKA

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Identity()

        def forward(self, x):
            return self.layer(x)

    def compare(x, y, batch_size=None):
        n = x.shape[0]
        b = batch_size or n
        if n % b:
            raise NotImplementedError("CKA.compare averages over equal batches")
        # float32, as a model's activations are (CKA.compare accumulates in float32 and refuses doubles)
        loader = lambda a: torch.utils.data.DataLoader(  # noqa: E731
            torch.utils.data.TensorDataset(_t(a).float()), batch_size=b, shuffle=False)
        c = CKA(Features(), Features(), model1_layers=["layer"], model2_layers=["layer"], device="cpu")
        c.compare(loader(x), loader(y))
        return float(c.hsic_matrix.reshape(-1)[0])
    return [("linear_cka", {"estimator": "unbiased"}, "CKA(model1, model2).compare(one batch)",
             lambda x, y: compare(x, y)),
            ("minibatch_cka", {}, "CKA(model1, model2).compare(batches)", compare)]


def repsim_adapters():
    import numpy as np
    import repsim
    out = []
    for estimator, conv in [("gretton", "biased"), ("song", "unbiased"), ("lange", "lange")]:
        out.append(("linear_cka", {"estimator": conv}, f"repsim.cka([x, y], 'linear', '{estimator}')",
                    lambda x, y, e=estimator: float(np.asarray(repsim.cka([x, y], "linear", e))[0, 1])))
    def rbf(x, y, fraction, e):
        if fraction != 1.0:
            raise NotImplementedError("no bandwidth fraction")
        return float(np.asarray(repsim.cka([x, y], "rbf", e))[0, 1])
    for estimator, conv in [("gretton", "biased"), ("song", "unbiased")]:
        out.append(("rbf_cka", {"estimator": conv, "bandwidth": "median"}, f"repsim.cka([x, y], 'rbf', '{estimator}')",
                    lambda x, y, fraction, e=estimator: rbf(x, y, fraction, e)))
    return out


PEERS = {
    "ckatorch": {"install": [["pyyaml", "safetensors", "tqdm", "matplotlib", "seaborn"], ["--no-deps", "ckatorch"]],
                 "distribution": "ckatorch", "adapters": ckatorch_adapters},
    "pytorch-cka": {"install": [["tqdm", "matplotlib"], ["--no-deps", "pytorch-cka"]],
                    "distribution": "pytorch-cka", "adapters": pytorch_cka_adapters},
    "torch-cka": {"install": [["tqdm", "matplotlib"], ["--no-deps", "torch-cka"]],
                  "distribution": "torch_cka", "adapters": torch_cka_adapters},
    "repsim": {"install": [["repsim"]], "distribution": "repsim", "adapters": repsim_adapters},
}
NOT_RUN = {  # peers named in issue 24 that are not run here, and why (each reason checked on the reporting machine)
    "Kornblith et al.'s notebook": "not a package (code in google-research/representation_similarity); its "
                                   "printed values are cases of the manifest",
    "anatome, netrep, platonic-rep": "not on PyPI",
    "thingsvision 2.7.3": "importing `thingsvision.core.cka` imports its feature extractors, and with them "
                          "TensorFlow (with absl-py) and torchtyping",
    "cka-pytorch 1.1.3": "its import needs lightning, which needs PyTorch ≥ 2 (`torch._dynamo`); its source adds "
                         "ε = 1e-4 under the square root of the CKA denominator (read, not run)",
    "rsatoolbox 0.3.2": "no CKA of two representations: linear CKA appears only inside its covariance-weighted "
                        "cosine between RDMs, as a shortcut",
}


# --- The worker: runs inside a peer's environment -------------------------------------------------------------

def worker(name):
    sys.path.insert(0, HERE)
    import check as conformance
    from importlib import metadata
    manifest = conformance.load_manifest()
    peer = PEERS[name]
    version = metadata.version(peer["distribution"])
    import numpy
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    rows = []
    for quantity, fixed, call, fn in peer["adapters"]():
        table = manifest["quantities"][quantity]["conventions"]
        free = [f for f in table if f not in fixed and f != "returned"]
        best = None
        for values in itertools.product(*[list(table[f]) for f in free]):
            convention = dict(fixed, **dict(zip(free, values)))
            cases = conformance.select(manifest, quantity, conformance.resolve_convention(manifest, quantity, convention))
            results = []
            for case in cases:
                unexpressible.clear()
                r = conformance.run_case(recording(fn), case, "cka", HERE)
                results.append(("n/a", case["id"]) if unexpressible else r)
            applicable = [r for r in results if not isinstance(r, tuple)]
            passed = sum(r.passed for r in applicable)
            score = (passed - (len(applicable) - passed), passed)  # a wrong case costs what a right one gains
            if applicable and (best is None or score > best[0]):
                best = (score, convention, applicable, [r for r in results if isinstance(r, tuple)])
        if best is None:
            rows.append({"quantity": quantity, "call": call, "convention": fixed, "results": [], "skipped": []})
            continue
        _, convention, applicable, skipped = best
        rows.append({"quantity": quantity, "call": call, "convention": convention, "fixed": fixed,
                     "results": [{"id": r.id, "passed": r.passed, "error": r.error, "got": r.got,
                                  "expected": r.expected, "detail": r.detail} for r in applicable],
                     "skipped": [s[1] for s in skipped]})
    json.dump({"peer": name, "version": version, "numpy": numpy.__version__, "torch": torch_version, "rows": rows},
              sys.stdout)


unexpressible = []


def recording(fn):
    """fn, noting when it raises NotImplementedError (a case the peer's API cannot express: not counted)."""
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            unexpressible.append(True)
            raise
    return call


# --- The driver ---------------------------------------------------------------------------------------------

def install(name, root):
    env = os.path.join(root, name)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", env], check=True)
    py = os.path.join(env, "bin", "python")
    # Keep the system's NumPy: its PyTorch is built against it.
    numpy_version = subprocess.run([py, "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                                   text=True).stdout.strip()
    constraints = os.path.join(env, "constraints.txt")
    with open(constraints, "w") as f:
        f.write(f"numpy=={numpy_version}\n" if numpy_version else "")
    for args in PEERS[name]["install"]:
        run = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", constraints, *args],
                             capture_output=True, text=True, timeout=1800)
        if run.returncode:
            return None, f"pip install {' '.join(args)} failed: {run.stderr.strip().splitlines()[-1:]}"
    return py, None


def run_peer(name, root):
    py, why = install(name, root)
    if py is None:
        return {"peer": name, "error": why}
    run = subprocess.run([py, os.path.abspath(__file__), "--worker", name], capture_output=True, text=True,
                         timeout=1800, cwd=root)
    if run.returncode:
        return {"peer": name, "error": "import or run failed: " + " ".join(run.stderr.strip().splitlines()[-1:])}
    return json.loads(run.stdout)


def differs(row):
    """The fields of a found convention that differ from cka's defaults, leaving out those the call itself
    selects; "none found" where the function agrees with no case under any convention."""
    if not any(x["passed"] for x in row["results"]):
        return "none found"
    defaults = {"estimator": "biased", "bandwidth": "median", "median_of": "squared_distances", "median_pairs": "all",
                "median_kind": "mean_of_middle", "normalization": "(n-1)^2"}
    found = [f"{k}={v}" for k, v in row["convention"].items() if k not in row["fixed"] and defaults.get(k, v) != v]
    return ", ".join(found) or "cka's"


def table(reports, date):
    lines = [f"Run on {date} by `conformance/peers.py`; each peer's latest release on PyPI, run against NumPy "
             f"and PyTorch as listed. For each public function: the conventions under which it agrees with the "
             f"most cases net of disagreements (those that differ from cka's defaults and that the call does not "
             f"select itself), the cases that agree, and those that no convention explains, with the relative "
             f"error.", "",
             "| peer | call | conventions found | agree | wrong (relative error) |", "|---|---|---|---|---|"]
    for r in reports:
        if "error" in r:
            lines.append(f"| {r['peer']} | — | — | — | not run: {r['error']} |")
            continue
        label = f"{r['peer']} {r['version']} (NumPy {r['numpy']}, torch {r['torch']})"
        for row in r["rows"]:
            res = row["results"]
            ok = sum(x["passed"] for x in res)
            wrong = [x for x in res if not x["passed"]]
            listed = "; ".join(f"{x['id']} ({x['error']:.1e})" if x["error"] is not None
                               else f"{x['id']} ({x['detail'] or 'no value'})" for x in wrong[:6])
            if len(wrong) > 6:
                listed += f"; and {len(wrong) - 6} more"
            if row["skipped"]:
                listed += ("; " if listed else "") + f"{len(row['skipped'])} cases not expressible"
            lines.append(f"| {label} | `{row['call']}` | {differs(row)} | {ok} of {len(res)} | "
                         f"{listed or '—'} |")
            label = ""
    lines += ["", "Not run:", ""] + [f"- {k}: {v}" for k, v in NOT_RUN.items()]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--keep", help="put the virtual environments here and keep them")
    ap.add_argument("--only", nargs="*", help="run these peers only (and do not rewrite the document)")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    root = args.keep or tempfile.mkdtemp(prefix="cka-peers-")
    os.makedirs(root, exist_ok=True)
    names = args.only or list(PEERS)
    reports = []
    for name in names:
        print(f"{name} …", file=sys.stderr)
        reports.append(run_peer(name, root))
        json.dump(reports[-1], open(os.path.join(root, f"{name}.json"), "w"), indent=1)
    text = table(reports, datetime.date.today().isoformat())
    print(text)
    if not args.only:
        doc = open(DOC, encoding="utf-8").read()
        start, end = doc.index("<!-- peers:begin -->"), doc.index("<!-- peers:end -->")
        doc = doc[:start] + "<!-- peers:begin -->\n" + text + "\n" + doc[end:]
        open(DOC, "w", encoding="utf-8").write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
