"""bench/gpu/torch_peer.py, the GPU check's PyTorch peer and float64 reference, on the CPU: its inputs are
test_device_cuda.cu's (the hash pinned to the value the C++ static_assert holds, the layers' rule), and its
references agree with the library's own functions. The GPU run compares cka's CUDA values with these
references, so they are checked here, where no GPU is needed."""
import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import cka  # noqa: E402

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "gpu", "torch_peer.py")
_spec = importlib.util.spec_from_file_location("torch_peer", _PATH)
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)


def splitmix(seed, i):
    """test_device_cuda.cu's hashed(seed, i) in Python's unbounded integers."""
    m = (1 << 64) - 1
    z = (seed * 0x9E3779B97F4A7C15 + i + 1) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z ^= z >> 31
    return (z >> 11) * 2.0**-52 - 1.0


def test_hash_is_the_one_test_device_cuda_pins():
    assert peer.hashed(7, torch.tensor([12345])).item() == float.fromhex("0x1.998e730c888a8p-2")
    index = [0, 1, 12345, 2**31 + 7, 2**40, 2**62 + 3]
    for seed in (1, 2, 3, 0xFFFFFFFF):
        got = peer.hashed(seed, torch.tensor(index)).tolist()
        assert got == [splitmix(seed, i) for i in index]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_layers_follow_fill_layers(dtype):
    n, d1, d2 = 5, 3, 4  # d2 > d1: Y's column 3 follows X's column 0
    x, y = peer.layers(n, d1, d2, 9, dtype, device="cpu")
    assert x.shape == (n, d1) and y.shape == (n, d2) and x.dtype == dtype == y.dtype
    to = np.float32 if dtype == torch.float32 else np.float64
    for i in range(n):
        for c in range(d1):
            assert x[i, c].item() == to(splitmix(9, c * n + i))
        for c in range(d2):
            xe = float(to(splitmix(9, (c % d1) * n + i)))
            assert y[i, c].item() == to(0.5 * xe + splitmix(10, c * n + i))


def relative(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("n", [30, 6])  # features, then two Grams (n < d1 + d2)
def test_linear_reference(n):
    x, y = peer.layers(n, 4, 3, 1, torch.float64, device="cpu")
    assert relative(peer.linear_cka(x, y).item(), cka.linear_cka(x.numpy(), y.numpy())) <= 1e-12


def test_rbf_reference_in_blocks():
    x, y = peer.layers(30, 6, 6, 2, torch.float64, device="cpu")
    expected = cka.kernel_cka(x.numpy(), y.numpy(), cka.RBF(sigma=2.0))
    assert relative(peer.rbf_cka(x, y, 2.0, block=7).item(), expected) <= 1e-12


def test_hsic_reference_in_blocks():
    k, l = peer.rank_one_grams(23, device="cpu")
    assert relative(peer.hsic(k, l, block=4).item(), cka.hsic(k.numpy(), l.numpy())) <= 1e-12


def test_loss_references():
    x, y = peer.layers(12 * 5, 1, 1, 3, torch.float64, device="cpu")
    s, t = x.reshape(12, 5), y.reshape(12, 5)
    value, _ = cka.rcka_loss(s.numpy(), t.numpy(), sample=15.0, cls=15.0)
    assert relative(peer.rcka_loss(s, t).item(), value) <= 1e-12
    value, _ = cka.sample_relation_loss(s.numpy(), t.numpy())
    assert relative(peer.sample_loss(s, t).item(), value) <= 1e-12


def test_every_reported_case_has_a_label_and_a_target():
    cases = [dict(case="linear_cka", n=10, d1=2, d2=2, dtype="float64", form="features", floor_ms=1.0),
             dict(case="rbf_cka", n=10, d1=2, d2=2, dtype="float64", sigma=0.0, floor_ms=1.0),
             dict(case="rbf_cka", n=10, d1=2, d2=2, dtype="float64", sigma=12.0, floor_ms=1.0),
             dict(case="hsic", n=10, dtype="float64", floor_ms=1.0),
             dict(case="rcka_loss", b=4, c=3, dtype="float32", floor_ms=-1.0)]
    for case in cases:
        assert peer.label(case)
        goal, met = peer.target(case, 1.0, 3.0)
        assert goal and met is not None
    # Met and missed: linear CKA needs 1.5x PyTorch and at most 1.3x its own products.
    assert peer.target(cases[0], 1.0, 1.6)[1] and not peer.target(cases[0], 1.0, 1.4)[1]
    assert not peer.target(cases[0], 1.4, 3.0)[1]
    with pytest.raises(ValueError, match="unknown case"):
        peer.peer(dict(case="nothing", dtype="float64"))


def report_of_cpu_values(tmp_path, perturb=None):
    """A report as test_device_cuda --time writes it, at small sizes, with the CPU package's values on the
    same inputs (perturb: the index of a case whose value is moved by 1e-6 relative)."""
    import json

    cases = []

    def add(fields, value):
        cases.append(dict(fields, ms=1.0, floor_ms=0.5, value=float(value), launches=3, syncs=1))

    for n, d in ((40, 3), (5, 4)):
        x, y = peer.layers(n, d, d, 1, torch.float64, device="cpu")
        form = "two Grams" if n < 2 * d else "features"
        add(dict(case="linear_cka", n=n, d1=d, d2=d, dtype="float64", form=form), cka.linear_cka(x.numpy(), y.numpy()))
    x, y = peer.layers(40, 3, 3, 1, torch.float32, device="cpu")
    add(dict(case="linear_cka", n=40, d1=3, d2=3, dtype="float32", form="features"),
        np.float32(cka.linear_cka(x.numpy(), y.numpy())))
    x, y = peer.layers(30, 4, 4, 2, torch.float64, device="cpu")
    add(dict(case="rbf_cka", n=30, d1=4, d2=4, dtype="float64", sigma=3.0),
        cka.kernel_cka(x.numpy(), y.numpy(), cka.RBF(sigma=3.0)))
    add(dict(case="rbf_cka", n=30, d1=4, d2=4, dtype="float64", sigma=0.0),
        cka.kernel_cka(x.numpy(), y.numpy(), cka.RBF()))
    k, l = peer.rank_one_grams(20, device="cpu")
    add(dict(case="hsic", n=20, dtype="float64"), cka.hsic(k.numpy(), l.numpy()))
    x, y = peer.layers(6 * 5, 1, 1, 3, torch.float32, device="cpu")
    s, t = x.reshape(6, 5).numpy(), y.reshape(6, 5).numpy()
    value = np.float32(cka.rcka_loss(s, t, sample=15.0, cls=15.0)[0])
    add(dict(case="rcka_loss", b=6, c=5, dtype="float32"), value)
    add(dict(case="rcka_loss_slot", b=6, c=5, dtype="float32"), value)
    add(dict(case="sample_relation_loss", b=6, c=5, dtype="float32"), np.float32(cka.sample_relation_loss(s, t)[0]))
    if perturb is not None:
        cases[perturb]["value"] *= 1 + 1e-6
    path = tmp_path / "report.jsonl"
    path.write_text("".join(json.dumps(case) + "\n" for case in cases))
    return path, len(cases)


def test_whole_script_on_the_cpu(tmp_path, capsys):
    report, count = report_of_cpu_values(tmp_path)
    table = tmp_path / "table.md"
    assert peer.main([str(report), "--table", str(table), "--device", "cpu"]) == 0
    rows = table.read_text().splitlines()
    assert len(rows) == 4 + count and "DISAGREES" not in table.read_text()
    assert sum("(ok," in row for row in rows) == count - 1  # all but the median rule's, which is not checked
    assert "not checked here" in table.read_text()


@pytest.mark.parametrize("case", [0, 2, 3, 5, 6])
def test_whole_script_reports_a_disagreement(tmp_path, capsys, case):
    report, _ = report_of_cpu_values(tmp_path, perturb=case)
    assert peer.main([str(report), "--device", "cpu"]) == 1
    assert "DISAGREES" in capsys.readouterr().out
