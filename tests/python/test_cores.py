"""The compiled cores: the import picks what the processor runs, CKA_CPU forces one or is refused, and the
baseline and x86-64-v3 cores give the same values (two routes to one quantity) and read each other's pickles."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

import cka

# Values from one core, computed in a child process that imported it (CKA_CPU); a state pickled there.
CHILD = r"""
import json, pickle, sys
import numpy as np
import cka
rng = np.random.default_rng(5)
x = rng.standard_normal((300, 40)) + 3.0
y = np.tanh(x[:, :25] @ rng.standard_normal((25, 30))) + 0.1 * rng.standard_normal((300, 30))
s, t = rng.standard_normal((64, 10)), rng.standard_normal((64, 10))
state = cka.LinearState(40, 30)
state.add(x, y)
out = {
    "built_for": cka._core.built_for,
    "linear": [cka.linear_cka(x, y), cka.linear_cka(x, y, debiased=True), cka.linear_cka(x.astype(np.float32), y)],
    "rbf": [cka.kernel_cka(x, y, cka.RBF()), cka.kernel_cka(x, y, cka.RBF(sigma=4.0), debiased=True)],
    "poly": [cka.kernel_cka(x, y, cka.Polynomial(3, 0.01, 1.0))],
    "mmd2": [cka.mmd2(x[:, :30], y, cka.RBF())],
    "matrix": cka.similarity_matrix([x, y, x[:, :5]]).values.ravel().tolist(),
    "loss": [cka.rcka_loss(s, t).value] + cka.rcka_loss(s, t).grad.ravel()[:20].tolist(),
    "state": [state.cka(), state.cka(debiased=True)],
    "p_value": [cka.permutation_test(x, y, permutations=50, seed=3).p_value],
}
if len(sys.argv) > 1:
    with open(sys.argv[1], "wb") as f:
        pickle.dump(state, f)
if len(sys.argv) > 2:
    with open(sys.argv[2], "rb") as f:
        other = pickle.load(f)
    out["unpickled"] = [other.cka(), other.cka(debiased=True)]
print(json.dumps(out))
"""


def child(cpu, *args, code=CHILD, check=True):
    env = dict(os.environ, CKA_CPU=cpu)
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def has_v3_core():
    return importlib.util.find_spec("cka._core_x86_64_v3") is not None


def test_auto_takes_the_best_core_the_processor_runs():
    got = json.loads(child("auto").stdout)["built_for"]
    if has_v3_core() and cka._cpu.x86_64_v3():
        assert got == "x86-64-v3"
    else:
        assert got in ("baseline", "native")
    assert json.loads(child("baseline").stdout)["built_for"] in ("baseline", "native")


def test_unknown_or_impossible_choices_are_refused():
    r = child("avx512", code="import cka", check=False)
    assert r.returncode != 0 and "ImportError: cka: CKA_CPU='avx512' is not known" in r.stderr
    # A processor without x86-64-v3, stood in for by a _cpu that says so: auto falls back, a forced choice
    # is refused before the core that would SIGILL is imported.
    fake = ("import sys, types; sys.modules['cka._cpu'] = types.SimpleNamespace(x86_64_v3=lambda: False)\n"
            "import cka; print(cka._core.built_for)")
    assert child("auto", code=fake).stdout.strip() in ("baseline", "native")
    r = child("x86-64-v3", code=fake, check=False)
    assert r.returncode != 0 and "ImportError" in r.stderr and ("lacks x86-64-v3" in r.stderr or "no x86-64-v3 core" in r.stderr)


def test_baseline_and_x86_64_v3_cores_agree(tmp_path):
    if not has_v3_core():
        pytest.skip("this build has no x86-64-v3 core (not x86-64, or CKA_NATIVE / CKA_PYTHON_X86_64_V3=OFF)")
    if not cka._cpu.x86_64_v3():
        pytest.skip("this processor lacks x86-64-v3: only the baseline core can run here")
    a_pickle, b_pickle = str(tmp_path / "a.pkl"), str(tmp_path / "b.pkl")
    base = json.loads(child("baseline", a_pickle).stdout)
    v3 = json.loads(child("x86-64-v3", b_pickle, a_pickle).stdout)
    base_again = json.loads(child("baseline", a_pickle, b_pickle).stdout)
    assert base["built_for"] == "baseline" and v3["built_for"] == "x86-64-v3"
    for key in ("linear", "rbf", "poly", "mmd2", "matrix", "loss", "state"):
        assert len(base[key]) == len(v3[key])
        for b, v in zip(base[key], v3[key]):
            # FMA contraction and wider vectors change the rounding only: double results to 1e-12 of their
            # size (the float32 input is accumulated in double too); the loss's gradient entries to 1e-12 of
            # the largest.
            scale = max(abs(x) for x in base[key]) if key == "loss" else abs(b)
            assert abs(b - v) <= 1e-12 * max(scale, 1e-300), (key, b, v)
    assert base["p_value"] == v3["p_value"]  # the same permutations, the same counts
    # Each core reads the other's pickle and finishes it to the same value.
    for b, v in zip(v3["unpickled"], base["state"]):
        assert abs(b - v) <= 1e-12 * abs(v)
    for b, v in zip(base_again["unpickled"], v3["state"]):
        assert abs(b - v) <= 1e-12 * abs(v)
