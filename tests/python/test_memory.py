"""Inputs are read in place (a copy would exceed the address-space limit set here), and the GIL is
released while the library computes (another Python thread keeps running)."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np

import cka

NO_COPY = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import cka
    n, d = 3_000_000, 40                 # 960 MB of float64; one layer (n x 20) is 480 MB
    a = np.empty((n, d)); rng = np.random.default_rng(0)
    for i in range(0, n, 500_000):
        a[i:i + 500_000] = rng.standard_normal((500_000, d))
    fa = a.T.copy().T                    # the same values in Fortran order (960 MB more)
    used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + 300_000_000, resource.RLIM_INFINITY))
    c = cka.linear_cka(a[:, :20], a[:, 20:])            # column slices of a C array: viewed
    f = cka.linear_cka(fa[:, :20], fa[:, 20:])          # column slices of a Fortran array: viewed
    assert abs(c - f) <= 1e-12 * abs(c), (c, f)
    try:
        np.ascontiguousarray(a[:, ::2])                 # a 480 MB copy does not fit under the limit
    except MemoryError:
        print("limit holds")
    print("no copy", c)
""")


def test_large_inputs_are_not_copied():
    out = subprocess.run([sys.executable, "-c", NO_COPY], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert out.returncode == 0, out.stderr
    assert "limit holds" in out.stdout and "no copy" in out.stdout


def test_gil_is_released_while_computing():
    x = np.random.default_rng(0).standard_normal((1500, 64))
    count = [0]
    done = threading.Event()

    def spin():
        while not done.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    before = count[0]
    for _ in range(3):
        cka.kernel_cka(x, x, cka.RBF())     # tens of milliseconds of C++ per call
    during = count[0] - before
    done.set()
    t.join()
    assert during > 1000, during
