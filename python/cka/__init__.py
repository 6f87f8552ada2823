"""cka: Centered Kernel Alignment for comparing and distilling neural-network representations.

The functions take 2-D arrays (rows are samples, columns are features) from NumPy, PyTorch (CPU), JAX or
anything with ``__dlpack__`` or the buffer protocol, in float32 or float64, and read them in place: C order,
Fortran order and slices with one unit stride are viewed, never copied; any other layout is copied once
into C order. float32 input is accumulated in float64. The GIL is released while the library computes.

Conventions (docs/math.md): biased HSIC = tr(KHLH)/(n-1)^2; ``debiased=True`` is Song et al.'s unbiased
HSIC in all three terms (debiased CKA; may be negative, never clamped). Errors: ``ValueError`` for malformed
input, :class:`UndefinedError` (a ``ValueError``) when the value is undefined for these data (a constant
representation) or leaves the double range, ``TypeError`` for a wrong type or dtype, :class:`BackendError` (a
``RuntimeError``) when a backend or resource fails rather than the data.
"""

import numbers
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from . import _core
from ._core import (  # noqa: F401  (re-exported)
    RBF,
    BackendError,
    LayersState,
    Linear,
    LinearState,
    Polynomial,
    UndefinedError,
    gram_cka,
    hsic,
    kernel_cka,
    linear_cka,
    mmd2,
)

__version__ = _core.__version__

__all__ = [
    "Linear", "RBF", "Polynomial", "UndefinedError", "BackendError", "LinearState", "LayersState",
    "linear_cka", "kernel_cka", "hsic", "gram_cka", "mmd2", "mmd_bound", "similarity_matrix",
    "similarity_tests", "heatmap", "Heatmap", "permutation_test", "independence_test", "jackknife",
    "sample_relation_loss", "class_relation_loss", "feature_loss", "patch_loss", "rcka_loss",
    "SimilarityMatrix", "SimilarityTests", "MMDBound", "PermutationResult", "IndependenceResult", "JackknifeResult", "LossResult",
]


class MMDBound(NamedTuple):
    """alignment = constant - discrepancy <= bound = constant - (N^2/2) * mean_gap^2 (docs/mmd_bound.md)."""
    alignment: float
    constant: float
    discrepancy: float
    mean_gap: float
    bound: float


class SimilarityMatrix(NamedTuple):
    """The CKA matrix; ``undefined`` lists (layer index, cause) for layers whose cells are NaN (layers
    first, then ``vs``); ``dropped_samples``: minibatch samples of a final batch shorter than 4."""
    values: "object"
    undefined: List[Tuple[int, str]]
    dropped_samples: int


class SimilarityTests(NamedTuple):
    """Per pair of layers (NumPy matrices, as ``similarity_matrix``'s values): CKA, its p-value against
    independence (analytic, or from permutations), and the jackknife interval (``None`` without a level).
    ``undefined`` lists (layer index, cause) for layers whose cells are NaN; ``degenerate`` the layers whose
    permutation null has no spread (their p-values are 1). Indices count ``layers`` first, then ``vs``."""
    values: "object"
    p_value: "object"
    lower: "object"
    upper: "object"
    undefined: List[Tuple[int, str]]
    degenerate: List[int]


class PermutationResult(NamedTuple):
    """CKA and its permutation p-value (1 + #{T_perm >= T}) / (1 + permutations)."""
    value: float
    p_value: float
    permutations: int


class IndependenceResult(NamedTuple):
    """CKA, its z-score under the exact permutation null, and the one-sided p-value. ``degenerate``: the null
    has no spread (a permutation-invariant layer, e.g. one-hot rows of distinct classes): z = 0, p = 1."""
    value: float
    z: float
    p_value: float
    degenerate: bool


class JackknifeResult(NamedTuple):
    """CKA, the jackknife standard error, the normal interval, and the n leave-one-out values."""
    value: float
    standard_error: float
    lower: float
    upper: float
    leave_one_out: "object"


class LossResult(tuple):
    """``(value, grad)``: the loss and its gradient with respect to the student (the student's shape and
    dtype, and its order: Fortran order for a Fortran-ordered student, else C order); ``skipped`` counts
    the terms left out as undefined (``on_undefined='skip'``)."""

    def __new__(cls, value, grad, skipped):
        self = super().__new__(cls, (value, grad))
        self.skipped = skipped
        return self

    @property
    def value(self) -> float:
        return self[0]

    @property
    def grad(self):
        return self[1]

    def __repr__(self):
        return f"LossResult(value={self[0]!r}, skipped={self.skipped})"


def mmd_bound(x, y, kernel=None, *, centered=False) -> MMDBound:
    """The Gram alignment, its exact decomposition 1 - 0.5*||K^ - L^||_F^2 and its MMD-type upper bound
    (Zhou et al., IJCAI 2024, section 3). Uncentered Grams unless ``centered``. Cost O(N^2 (d1 + d2))."""
    return MMDBound(*_core.mmd_bound(x, y, kernel, centered=centered))


def similarity_matrix(layers, kernel=None, *, vs=None, debiased=False, minibatch=None, progress=False,
                      max_bytes=None) -> SimilarityMatrix:
    """CKA of every pair of ``layers`` (square), or of ``layers`` against ``vs`` (rectangular).

    Linear kernel: one joint accumulation state, O(n (P + L)^2) for P features in all; RBF and polynomial:
    the tile engine (each layer's median and row sums once, nothing n x n beyond ``max_bytes``);
    ``minibatch=B``: minibatch CKA (Nguyen et al.), unbiased per batch. A layer whose CKA is undefined gets
    NaN cells and is listed in ``undefined``. ``progress``: True prints to stderr, or a callable
    ``(done, total)``. Layers of mixed dtype or order are brought to float64 / C order (one copy each)."""
    values, undefined, dropped = _core.similarity_matrix(
        layers, kernel, vs=vs, debiased=debiased, minibatch=minibatch, progress=progress, max_bytes=max_bytes)
    return SimilarityMatrix(values, undefined, dropped)


def similarity_tests(layers, kernel=None, *, vs=None, debiased=False, permutations=0, seed=0, level=0.0,
                     progress=False, max_bytes=None) -> SimilarityTests:
    """``independence_test`` (``permutations=0``) or ``permutation_test`` (``permutations`` > 0, the same
    seeded permutations for every pair), and with ``level`` in (0, 1) ``jackknife``'s interval, for every
    pair of ``layers`` (square: each unordered pair once) or of ``layers`` against ``vs``. Each pair's
    numbers are those of the pairwise functions. Each layer is prepared once: with the linear kernel, a
    pair of narrow layers (d_i * d_j <= 40 n) costs O(n d_i d_j) per permutation, other pairs O(n^2) per
    permutation on centered Grams (n^2 doubles per layer held; beyond ``max_bytes``, by default half the
    physical memory, a ``ValueError`` before anything is allocated). ``progress``: True prints to stderr,
    or a callable ``(done, total)`` called once per pair."""
    return SimilarityTests(*_core.similarity_tests(layers, kernel, vs=vs, debiased=debiased, permutations=permutations,
                                                   seed=seed, level=level, progress=progress, max_bytes=max_bytes))


class Heatmap(str):
    """An SVG document (a ``str``) that Jupyter and IPython display as the picture itself."""

    def _repr_svg_(self) -> str:
        return str(self)


def _names(argument: str, names) -> List[str]:
    if names is None:
        return []
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        raise TypeError(f"cka.heatmap: {argument} must be a sequence of str (one per layer), not {type(names).__name__}")
    out = list(names)
    for i, name in enumerate(out):
        if not isinstance(name, str):
            raise TypeError(f"cka.heatmap: {argument}[{i}] must be a str, not {type(name).__name__}")
    return out


def _real(argument: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"cka.heatmap: {argument} must be a number, not {type(value).__name__}")
    return float(value)


def heatmap(result, names: Optional[Sequence[str]] = None, *, vs_names: Optional[Sequence[str]] = None,
            title: str = "CKA", row_axis: str = "", col_axis: str = "", unit_range: bool = False,
            vmin: Optional[float] = None, vmax: Optional[float] = None, alpha: float = 0.05,
            path: Union[str, os.PathLike, None] = None) -> Heatmap:
    """The heatmap of a CKA matrix as an SVG document — the picture ``cka-similarity --svg`` draws.

    ``result``: a :class:`SimilarityMatrix`, a :class:`SimilarityTests` (cells with p >= ``alpha`` are
    hatched, and each cell's tooltip gives its p-value and interval) or a 2-D array of values (NaN: an
    undefined cell, drawn grey). ``names`` name the rows (default 0, 1, ...), ``vs_names`` the columns (default
    ``names`` for a square matrix); ``row_axis``/``col_axis`` title the axes. Colours span the data's range,
    0-1 with ``unit_range``, or ``vmin``-``vmax``. Returns a :class:`Heatmap` (a str that Jupyter shows as
    the picture) and writes it, UTF-8, to ``path`` when given. Errors: ``ValueError`` for an empty matrix,
    an infinite value, a p-value outside [0, 1], name counts or shapes that differ, ``alpha`` outside
    (0, 1], ``vmax <= vmin``; ``TypeError`` for a name that is not a str or an array that is not float."""
    p_value = lower = upper = None
    if isinstance(result, SimilarityTests):
        values, p_value, lower, upper = result.values, result.p_value, result.lower, result.upper
    elif isinstance(result, SimilarityMatrix):
        values = result.values
    elif result is None:
        raise TypeError("cka.heatmap: result must be a SimilarityMatrix, a SimilarityTests or a 2-D float array, not None")
    else:
        values = result
    if unit_range not in (True, False):
        raise TypeError(f"cka.heatmap: unit_range must be True or False, not {unit_range!r}")
    for argument, text in (("title", title), ("row_axis", row_axis), ("col_axis", col_axis)):
        if not isinstance(text, str):
            raise TypeError(f"cka.heatmap: {argument} must be a str, not {type(text).__name__}")
    nan = float("nan")
    svg = Heatmap(_core.heatmap_svg(values, p_value, lower, upper, rows=_names("names", names),
                                    cols=_names("vs_names", vs_names), title=title, row_axis=row_axis,
                                    col_axis=col_axis, vmin=nan if vmin is None else _real("vmin", vmin),
                                    vmax=nan if vmax is None else _real("vmax", vmax), unit_range=bool(unit_range),
                                    alpha=_real("alpha", alpha)))
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(svg)
    return svg


def permutation_test(x, y, kernel=None, *, debiased=False, permutations=1000, seed=0) -> PermutationResult:
    """CKA and its p-value against independence from ``permutations`` seeded permutations of y's rows
    (reproducible for a seed, whatever the thread count). Linear kernel O(n d1 d2) per permutation."""
    return PermutationResult(*_core.permutation_test(x, y, kernel, debiased=debiased,
                                                     permutations=permutations, seed=seed))


def independence_test(x, y, kernel=None, *, debiased=False) -> IndependenceResult:
    """CKA, z-score and p-value from the exact mean and variance of the permutation null (docs/inference.md)."""
    return IndependenceResult(*_core.independence_test(x, y, kernel, debiased=debiased))


def jackknife(x, y, kernel=None, *, debiased=False, level=0.95) -> JackknifeResult:
    """CKA with a jackknife standard error and a normal interval at ``level``; all n leave-one-out values
    in O(n^2)."""
    return JackknifeResult(*_core.jackknife(x, y, kernel, debiased=debiased, level=level))


def _loss(fn):
    def wrapped(student, teacher, **options):
        return LossResult(*fn(student, teacher, **options))
    wrapped.__name__ = fn.__name__
    wrapped.__qualname__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


sample_relation_loss = _loss(_core.sample_relation_loss)
sample_relation_loss.__doc__ = """1 - CKA of the B x B Grams of the rows of student and teacher logits (the
paper's sample relation). Options: centered=True, row_normalize=False (centered=False, row_normalize=True
is the official code's alignment), debiased=False, on_undefined='skip' | 'raise', products='exact' |
'input' (float32 input: 'input' runs the Grams and the gradient's product in float32, about twice as
fast, with the alignment within ~3e-8 and the gradient within ~5e-7/sqrt(loss) of its norm; 'exact'
computes them in float64). Returns (value, grad)."""
class_relation_loss = _loss(_core.class_relation_loss)
class_relation_loss.__doc__ = """1 - CKA of the C x C Grams of the columns (the paper's class relation).
Options as sample_relation_loss. Returns (value, grad)."""
feature_loss = _loss(_core.feature_loss)
feature_loss.__doc__ = """FCKA: 1 - CKA of the row Grams of feature maps flattened to B x (C*H*W).
Options as sample_relation_loss. Returns (value, grad)."""
patch_loss = _loss(_core.patch_loss)
patch_loss.__doc__ = """PCKA on NCHW feature maps: per channel, 1 - alignment of the patch Grams
(patch_h x patch_w patches, zero-padded at the bottom and right), averaged over channels. Options as
sample_relation_loss. Returns (value, grad) with grad in NCHW."""
rcka_loss = _loss(_core.rcka_loss)
rcka_loss.__doc__ = """RCKA on logits: sample * sample_relation_loss + cls * class_relation_loss, and the
same combination of gradients. Returns (value, grad)."""
