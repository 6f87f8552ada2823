"""cka.heatmap: the picture of a CKA matrix, checked against what it must show (a cell per value, the scale's
end colours at the data's extremes, hatching exactly where p >= alpha), against the tool's own heatmap of the
same numbers, and for every bad input."""
import csv
import os
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import cka

RNG = np.random.default_rng(5)
BASE = RNG.standard_normal((300, 6))
LAYERS = [BASE, BASE @ RNG.standard_normal((6, 4)) + 0.5 * RNG.standard_normal((300, 4)), RNG.standard_normal((300, 3))]
NAMES = ["conv1", "conv2", "noise"]


def cells(svg, cls="cell"):
    return [e for e in ET.fromstring(svg).iter() if e.get("class") == cls]


def tip(cell):
    return next(iter(cell)).text


def test_a_cell_per_value_with_the_names_and_the_scale_ends():
    r = cka.similarity_matrix(LAYERS)
    svg = cka.heatmap(r, NAMES, title="linear CKA")
    assert isinstance(svg, str) and isinstance(svg, cka.Heatmap) and svg._repr_svg_() == svg
    found = cells(svg)
    assert len(found) == 9
    tips = [tip(c) for c in found]
    for i, a in enumerate(NAMES):
        for j, b in enumerate(NAMES):
            assert tips[3 * i + j] == f"{a} vs {b}: {r.values[i, j]:.6g}"
    fills = {tip(c): c.get("fill") for c in found}
    low = np.unravel_index(np.argmin(r.values), r.values.shape)
    assert fills[f"{NAMES[low[0]]} vs {NAMES[low[1]]}: {r.values[low]:.6g}"] == "#440154"
    assert fills["conv1 vs conv1: 1"] == "#fde725"
    assert ET.fromstring(svg).find("{http://www.w3.org/2000/svg}title").text == "linear CKA"


def test_hatching_exactly_where_p_reaches_alpha():
    t = cka.similarity_tests(LAYERS, permutations=99, seed=3, level=0.9)
    for alpha in (0.05, 0.5):
        svg = cka.heatmap(t, NAMES, alpha=alpha)
        assert len(cells(svg, "not-significant")) == int(np.sum(~(t.p_value < alpha) & ~np.isnan(t.values)))
    first = tip(cells(cka.heatmap(t, NAMES))[1])
    assert f"p = {t.p_value[0, 1]:.3g}" in first and f"interval [{t.lower[0, 1]:.4g}, {t.upper[0, 1]:.4g}]" in first


def test_rectangular_undefined_cells_and_a_file(tmp_path):
    r = cka.similarity_matrix(LAYERS[:2], vs=[LAYERS[2], np.ones((300, 2))])
    path = tmp_path / "m.svg"
    svg = cka.heatmap(r, ["a", "b"], vs_names=["x", "const"], row_axis="net A", col_axis="net B", path=path)
    assert path.read_text(encoding="utf-8") == svg
    found = cells(svg)
    assert len(found) == 4 and [c.get("fill") for c in found if "const" in tip(c)] == ["#cccccc"] * 2
    assert len(cells(svg, "axis")) == 2
    plain = cka.heatmap(r.values)  # default names: row and column indices
    assert tip(cells(plain)[3]) == "1 vs 1: nan"


def test_the_tools_heatmap_is_the_heatmap_of_its_numbers(tmp_path):
    """One renderer for both routes: the SVG cka-similarity writes equals cka.heatmap of the CSV it writes."""
    tool = os.environ.get("CKA_SIMILARITY")
    if not tool:
        pytest.skip("CKA_SIMILARITY is not set (the suite sets it where cka-similarity is built)")
    svg_path, csv_path = tmp_path / "demo.svg", tmp_path / "demo.csv"
    subprocess.run([tool, "--demo", "--pvalues", "analytic", "--ci", "0.9", "--precision", "17", "--svg", str(svg_path),
                    "--csv-long", str(csv_path), "-q"], check=True, stdout=subprocess.DEVNULL)
    with open(csv_path, newline="") as f:
        records = list(csv.DictReader(f))
    names = list(dict.fromkeys(r["row"] for r in records))
    shape = (len(names), len(names))
    values, p, lower, upper = (np.array([float(r[k]) for r in records]).reshape(shape)
                               for k in ("cka", "p_value", "lower", "upper"))
    title = ET.parse(svg_path).getroot().find("{http://www.w3.org/2000/svg}title").text
    tests = cka.SimilarityTests(values, p, lower, upper, [], [])
    assert cka.heatmap(tests, names, title=title) == svg_path.read_text(encoding="utf-8")


V = np.array([[1.0, 0.5], [0.5, 1.0]])

BAD = [
    # (call, exception, words the message contains)
    (lambda: cka.heatmap(V, "ab"), TypeError, ["names", "sequence of str"]),
    (lambda: cka.heatmap(V, ["a", 2]), TypeError, ["names[1]", "int"]),
    (lambda: cka.heatmap(V, vs_names=[b"a", b"b"]), TypeError, ["vs_names[0]", "bytes"]),
    (lambda: cka.heatmap(V, ["a"]), ValueError, ["has 1 names", "2 rows"]),
    (lambda: cka.heatmap(V, title=3), TypeError, ["title", "int"]),
    (lambda: cka.heatmap(V[0]), ValueError, ["values", "2-D", "1-D"]),
    (lambda: cka.heatmap(np.zeros((0, 2))), ValueError, ["0x2", "at least one cell"]),
    (lambda: cka.heatmap(V.astype(np.int64)), TypeError, ["values", "int64"]),
    (lambda: cka.heatmap([[1.0]]), TypeError, ["values", "list"]),
    (lambda: cka.heatmap(np.array([[1.0, np.inf], [0.0, 1.0]])), ValueError, ["values(0, 1) = inf", "not finite"]),
    (lambda: cka.heatmap(cka.SimilarityTests(V, V * 3, None, None, [], [])), ValueError, ["p_value(0, 0) = 3", "[0, 1]"]),
    (lambda: cka.heatmap(cka.SimilarityTests(V, V[:1], None, None, [], [])), ValueError, ["p_value is 1x2", "2x2"]),
    (lambda: cka.heatmap(cka.SimilarityTests(V, V / 2, V, None, [], [])), ValueError, ["lower and upper go together"]),
    (lambda: cka.heatmap(V, alpha=0.0), ValueError, ["alpha = 0", "(0, 1]"]),
    (lambda: cka.heatmap(V, alpha=float("nan")), ValueError, ["alpha = nan"]),
    (lambda: cka.heatmap(V, vmin=0.9, vmax=0.1), ValueError, ["vmax = 0.1", "must exceed"]),
    (lambda: cka.heatmap(V, vmax=float("inf")), ValueError, ["finite"]),
    (lambda: cka.heatmap(None), TypeError, ["result", "None"]),
    (lambda: cka.heatmap(V, alpha="0.1"), TypeError, ["alpha", "number", "str"]),
    (lambda: cka.heatmap(V, vmin="0"), TypeError, ["vmin", "number"]),
    (lambda: cka.heatmap(V, vmax=True), TypeError, ["vmax", "bool"]),
    (lambda: cka.heatmap(V, unit_range="no"), TypeError, ["unit_range", "'no'"]),
    (lambda: cka.heatmap(V, path=os.path.join(os.sep, "no", "such", "dir", "m.svg")), FileNotFoundError, ["m.svg"]),
]


@pytest.mark.parametrize("call, exception, words", BAD, ids=[f"row{i}" for i in range(len(BAD))])
def test_bad_input(call, exception, words):
    with pytest.raises(exception) as info:
        call()
    for word in words:
        assert word in str(info.value)
