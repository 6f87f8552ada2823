"""Ctrl-C stops a long computation (KeyboardInterrupt within a moment, the interpreter alive), and an
exception from a progress callable stops similarity_matrix at once rather than after the whole matrix."""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import cka

# Each runs for minutes unless interrupted; the child says "go" just before the call.
LONG_CALLS = {
    "permutation test on Grams": "x = np.random.default_rng(0).random((600, 5))\n"
                                 "call = lambda: cka.permutation_test(x, x, cka.RBF(sigma=1.0), permutations=10**7)",
    "kernel_cka in tiles": "x = np.random.default_rng(0).random((60000, 8))\n"
                           "call = lambda: [cka.kernel_cka(x, x, cka.RBF(), max_bytes=10**7) for _ in range(100)]",
    "linear_cka": "x = np.random.default_rng(0).random((200000, 300))\n"
                  "call = lambda: [cka.linear_cka(x, x) for _ in range(1000)]",
    # Two dense Grams of n = 8000 from 6000 features: ~10 s each here, stopped between chunks of columns.
    "independence_test on large Grams": "x = np.random.default_rng(0).random((8000, 6000))\n"
                                        "call = lambda: cka.independence_test(x, x, cka.RBF(sigma=40.0))",
}

CHILD = """import sys, time
import numpy as np
import cka
{setup}
print("go", flush=True)
start = time.monotonic()
try:
    call()
    print("finished")
except KeyboardInterrupt:
    print("interrupted", time.monotonic() - start)
print("alive", cka.linear_cka(np.eye(5), np.eye(5)))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
@pytest.mark.parametrize("name", sorted(LONG_CALLS))
def test_ctrl_c_stops_a_long_call(name):
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(setup=LONG_CALLS[name])], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "go"
    time.sleep(0.5)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    waited = time.monotonic() - sent
    assert child.returncode == 0, err
    lines = out.split("\n")
    assert lines[0].startswith("interrupted"), out
    assert lines[1] == "alive 1.0", out
    # The library asks every ~50 ms; a few seconds allows for a loaded machine (without the check the call
    # runs for minutes).
    assert waited < 10, waited


def test_a_failing_progress_callable_stops_the_matrix_at_once():
    rng = np.random.default_rng(1)
    layers = [rng.standard_normal((3000, 6)) for _ in range(3)]
    calls = []

    def progress(done, total):
        calls.append((done, total))
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        cka.similarity_matrix(layers, kernel=cka.RBF(sigma=2.0), progress=progress, max_bytes=2**20)
    assert len(calls) == 1 and calls[0][0] < calls[0][1]
    assert cka.similarity_matrix(layers[:2], kernel=cka.RBF(sigma=2.0), max_bytes=2**20).values.shape == (2, 2)
