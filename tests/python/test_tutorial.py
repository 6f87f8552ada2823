"""The tutorial's in-memory block (docs/tutorial.md, '# cka tutorial: in memory') runs as printed."""
import math
import os
import re

import pytest

torch = pytest.importorskip("torch")

TUTORIAL = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "tutorial.md")


def test_in_memory_block(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the block writes layers.svg
    blocks = re.findall(r"```python\n(.*?)```", open(TUTORIAL, encoding="utf-8").read(), re.S)
    code = [b for b in blocks if b.startswith("# cka tutorial: in memory")]
    assert len(code) == 1
    ns = {}
    exec(code[0], ns)
    values = ns["result"].values
    assert values.shape == (3, 3) and ns["result"].undefined == []
    assert all(0 < v < 1 for v in values.ravel())
    assert ns["rbf"].values.shape == (3, 3) and all(math.isclose(ns["rbf"].values[i, i], 1.0) for i in range(3))
    assert 0 < ns["test"].p_value <= 1
    tests = ns["tests"]
    assert tests.p_value[2, 2] == ns["test"].p_value  # the same seeded permutations
    assert (tests.lower <= tests.values).all() and (tests.values <= tests.upper).all()
    assert "permutation p" in capsys.readouterr().out
    assert (tmp_path / "layers.svg").read_text(encoding="utf-8").count('class="cell"') == 9
