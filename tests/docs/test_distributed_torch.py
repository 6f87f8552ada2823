#!/usr/bin/env python3
"""Runs the torch.distributed snippet of docs/distributed.md on two Gloo processes, each holding half of the
rows (with a large common offset), and checks the reduced linear CKA against NumPy on all rows (1e-12).
Usage: test_distributed_torch.py docs/distributed.md. Exit 77 (skip) without PyTorch's Gloo or NumPy."""
import os
import re
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
except ImportError:
    print("PyTorch or NumPy missing: skipped")
    sys.exit(77)
if not (dist.is_available() and dist.is_gloo_available()):
    print("torch.distributed with Gloo missing: skipped")
    sys.exit(77)


def snippet(doc):
    text = open(doc).read()
    section = text[text.index("## torch.distributed without MPI"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 7)) + 1000.0
    y = np.tanh(x[:, :4] - 1000.0) + 0.5 * rng.standard_normal((3000, 4)) - 500.0
    return x, y


def worker(rank, doc, init, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    x, y = data()
    half = slice(0, 1700) if rank == 0 else slice(1700, 3000)
    scope = {"x": torch.tensor(x[half]), "y": torch.tensor(y[half])}
    exec(snippet(doc), scope)
    with open(f"{out}.{rank}", "w") as f:
        f.write(repr(float(scope["value"])))
    dist.destroy_process_group()


def numpy_cka(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


if __name__ == "__main__":
    doc = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "value")
        mp.spawn(worker, args=(doc, "file://" + os.path.join(tmp, "rendezvous"), out), nprocs=2)
        values = [float(open(f"{out}.{r}").read()) for r in range(2)]
    expected = numpy_cka(*data())
    ok = all(abs(v - expected) <= 1e-12 * abs(expected) for v in values)
    print(("ok" if ok else "FAIL") + f": torch.distributed {values} against NumPy {expected}")
    sys.exit(0 if ok else 1)
