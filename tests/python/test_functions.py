"""Every function of cka against oracle.py on NumPy and PyTorch inputs in each layout and dtype."""
import math

import numpy as np
import pytest

import cka
import oracle

RNG = np.random.default_rng(20261204)
X = RNG.standard_normal((41, 7))
Y = X @ RNG.standard_normal((7, 5)) + 0.8 * RNG.standard_normal((41, 5))


def layout(a, how):
    """The same values in another memory layout or dtype."""
    if how == "C":
        return np.ascontiguousarray(a)
    if how == "F":
        return np.asfortranarray(a)
    if how == "row_slice":  # every other row of a taller C array: viewed (unit column stride)
        big = np.zeros((2 * a.shape[0], a.shape[1] + 3))
        big[::2, 1:a.shape[1] + 1] = a
        return big[::2, 1:a.shape[1] + 1]
    if how == "strided":  # no unit stride at all: the one documented copy
        big = np.zeros((2 * a.shape[0], 2 * a.shape[1]))
        big[::2, ::2] = a
        return big[::2, ::2]
    if how == "float32":
        return a.astype(np.float32)
    if how == "torch":
        torch = pytest.importorskip("torch")
        return torch.from_numpy(np.ascontiguousarray(a))
    raise ValueError(how)


LAYOUTS = ["C", "F", "row_slice", "strided", "float32", "torch"]


def close(got, want, how):
    # float32 input: values carry ~6e-8 of rounding, amplified a little by the ratios
    rel = 2e-5 if how == "float32" else 1e-12
    assert math.isclose(got, want, rel_tol=rel, abs_tol=rel * 1e-2), (got, want)


@pytest.mark.parametrize("how", LAYOUTS)
@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka(how, debiased):
    want = oracle.linear_cka(layout(X, how) if how != "torch" else X, Y, debiased)
    close(cka.linear_cka(layout(X, how), layout(Y, how), debiased=debiased), want, how)


@pytest.mark.parametrize("how", ["C", "F", "strided", "float32"])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel,spec", [
    (cka.RBF(sigma=2.5), ("rbf", 2.5)),
    (cka.RBF(), ("median", 1.0, "all_pairs")),
    (cka.RBF(median=0.5, rule="off_diagonal"), ("median", 0.5, "off_diagonal")),
    (cka.RBF(median=2.0, rule="nonzero"), ("median", 2.0, "nonzero")),
    (cka.Polynomial(3, 0.2, 1.0), ("poly", 3, 0.2, 1.0)),
    (cka.Linear(), ("linear",)),
    ("rbf", ("median", 1.0, "all_pairs")),
])
def test_kernel_cka(how, debiased, kernel, spec):
    xs, ys = layout(X, how), layout(Y, how)
    want = oracle.kernel_cka(np.asarray(xs, np.float64), np.asarray(ys, np.float64), spec, debiased)
    close(cka.kernel_cka(xs, ys, kernel, debiased=debiased), want, how)
    # The recomputed tiles (a budget too small to store them) give the same value.
    close(cka.kernel_cka(xs, ys, kernel, debiased=debiased, max_bytes=1), want, how)


@pytest.mark.parametrize("how", ["C", "F", "float32"])
@pytest.mark.parametrize("debiased", [False, True])
def test_hsic_and_gram_cka(how, debiased):
    k, l = oracle.gram(X, ("median", 1.0, "all_pairs")), oracle.gram(Y, ("linear",))
    close(cka.hsic(layout(k, how), layout(l, how), debiased=debiased), oracle.hsic(k, l, debiased), how)
    close(cka.gram_cka(layout(k, how), layout(l, how), debiased=debiased), oracle.gram_cka(k, l, debiased), how)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel,spec", [
    (cka.Linear(), ("linear",)), (cka.RBF(), ("median", 1.0, "all_pairs")), (cka.Polynomial(2, 0.5, 1.0), ("poly", 2, 0.5, 1.0))])
def test_mmd2(debiased, kernel, spec):
    a, b = X[:23], X[23:] + 0.3
    got = cka.mmd2(a, b, kernel, debiased=debiased)
    assert math.isclose(got, oracle.mmd2(a, b, spec, debiased), rel_tol=1e-11, abs_tol=1e-13)


@pytest.mark.parametrize("centered", [False, True])
def test_mmd_bound(centered):
    got = cka.mmd_bound(X, Y, centered=centered)
    want = oracle.mmd_bound(X, Y, centered=centered)
    for g, w in zip(got, want):
        assert math.isclose(g, w, rel_tol=1e-11, abs_tol=1e-14)
    assert got.alignment <= got.bound + 1e-15
    assert math.isclose(got.alignment, got.constant - got.discrepancy, rel_tol=1e-12)


def test_similarity_matrix_square_rectangular_and_minibatch():
    layers = [X, Y, np.asfortranarray(X[:, :3]), (X[:, :4] ** 2).astype(np.float32)]
    r = cka.similarity_matrix(layers)
    for i, a in enumerate(layers):
        for j, b in enumerate(layers):
            assert math.isclose(r.values[i, j], oracle.linear_cka(a, b), rel_tol=2e-6)
    assert r.undefined == [] and r.values.shape == (4, 4)
    rect = cka.similarity_matrix([X, Y], kernel=cka.RBF(), vs=[Y, X[:, :2], X], debiased=True)
    assert rect.values.shape == (2, 3)
    assert math.isclose(rect.values[1, 2], oracle.kernel_cka(Y, X, ("median", 1.0, "all_pairs"), True), rel_tol=1e-11)
    mb = cka.similarity_matrix([X, Y], minibatch=8)
    assert math.isclose(mb.values[0, 1], oracle.minibatch_cka(X, Y, 8), rel_tol=1e-11)
    assert mb.dropped_samples == 41 % 8


def test_similarity_matrix_names_an_undefined_layer():
    r = cka.similarity_matrix([X, np.ones((41, 3)), Y])
    assert [u[0] for u in r.undefined] == [1]
    assert np.isnan(r.values[1, 0]) and not np.isnan(r.values[0, 2])


def test_similarity_matrix_progress_callable_and_its_error():
    seen = []
    cka.similarity_matrix([X, Y, X], kernel=cka.RBF(), progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]

    def fail(done, total):
        raise KeyError("stop")

    with pytest.raises(KeyError):
        cka.similarity_matrix([X, Y], kernel=cka.RBF(), progress=fail)


@pytest.mark.parametrize("debiased", [False, True])
def test_inference(debiased):
    p = cka.permutation_test(X, Y, debiased=debiased, permutations=200, seed=5)
    assert math.isclose(p.value, oracle.linear_cka(X, Y, debiased), rel_tol=1e-12)
    assert p.permutations == 200 and 0 < p.p_value <= 1
    assert p == cka.permutation_test(X, Y, debiased=debiased, permutations=200, seed=5)  # reproducible
    t = cka.independence_test(X, Y, cka.RBF(), debiased=debiased)
    assert math.isclose(t.value, oracle.kernel_cka(X, Y, ("median", 1.0, "all_pairs"), debiased), rel_tol=1e-11)
    assert 0 <= t.p_value <= 1 and not t.degenerate
    j = cka.jackknife(X, Y, debiased=debiased, level=0.9)
    n = len(X)
    loo = np.array([oracle.linear_cka(np.delete(X, i, 0), np.delete(Y, i, 0), debiased) for i in range(n)])
    np.testing.assert_allclose(j.leave_one_out, loo, rtol=1e-10)
    se = math.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2))
    assert math.isclose(j.standard_error, se, rel_tol=1e-9)
    z = 1.6448536269514722  # the 0.95 quantile of the standard normal: a 90% two-sided interval
    assert math.isclose(j.lower, j.value - z * se, rel_tol=1e-9)
    assert math.isclose(j.upper, j.value + z * se, rel_tol=1e-9)


OPTIONS = [dict(), dict(centered=False, row_normalize=True), dict(centered=False), dict(debiased=True)]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_losses_values(options, dtype):
    s = RNG.standard_normal((12, 9)).astype(dtype)
    t = (s + 0.5 * RNG.standard_normal((12, 9))).astype(dtype)
    rel = 1e-4 if dtype == np.float32 else 1e-11
    for name in ("sample_relation_loss", "class_relation_loss", "feature_loss"):
        value, grad = getattr(cka, name)(s, t, **options)
        want = getattr(oracle, name if name != "feature_loss" else "sample_relation_loss")(s, t, **options)
        assert math.isclose(value, want, rel_tol=rel, abs_tol=rel * 1e-2), name
        assert grad.shape == s.shape and grad.dtype == dtype
    r = cka.rcka_loss(s, t, sample=2.0, cls=0.5, **options)
    assert math.isclose(r.value, oracle.rcka_loss(s, t, 2.0, 0.5, **options), rel_tol=rel)
    assert r.skipped == 0


def test_patch_loss_value_and_layouts():
    s = RNG.standard_normal((3, 2, 8, 8))
    t = s + RNG.standard_normal((3, 2, 8, 8))
    value, grad = cka.patch_loss(s, t, patch_h=4, patch_w=4)
    assert math.isclose(value, oracle.patch_loss(s, t, 4, 4), rel_tol=1e-11)
    assert grad.shape == s.shape
    # A non-contiguous map (a channel slice) is gathered once and gives the same value.
    wide = np.zeros((3, 4, 8, 8))
    wide[:, ::2] = s
    strided_value, strided_grad = cka.patch_loss(wide[:, ::2], t, patch_h=4, patch_w=4)
    assert math.isclose(strided_value, value, rel_tol=1e-14)
    assert np.array_equal(strided_grad, grad)
    # The gradient in the maps' NCHW places: central differences of the oracle at entries of every index.
    assert grad.flags.c_contiguous
    for at in [(0, 0, 0, 0), (2, 1, 7, 3), (1, 0, 3, 6), (0, 1, 5, 0)]:
        h = 1e-6
        up, down = s.copy(), s.copy()
        up[at] += h
        down[at] -= h
        numeric = (oracle.patch_loss(up, t, 4, 4) - oracle.patch_loss(down, t, 4, 4)) / (2 * h)
        assert abs(grad[at] - numeric) <= 1e-7 + 1e-5 * abs(numeric), (at, grad[at], numeric)


def test_loss_skips_a_constant_student():
    t = RNG.standard_normal((6, 4))
    r = cka.sample_relation_loss(np.zeros((6, 4)), t)
    assert r.value == 0 and r.skipped == 1 and not r.grad.any()
    with pytest.raises(cka.UndefinedError):
        cka.sample_relation_loss(np.zeros((6, 4)), t, on_undefined="raise")


def test_kernel_objects():
    assert repr(cka.RBF(sigma=2)) == "cka.RBF(sigma=2.0)"
    k = cka.RBF(median=0.5, rule="nonzero")
    assert k.sigma is None and k.median == 0.5 and k.rule == "nonzero"
    p = cka.Polynomial(degree=3, gamma=0.5, coef0=2.0)
    assert (p.degree, p.gamma, p.coef0) == (3, 0.5, 2.0)


def test_inference_degenerate_and_scaled():
    """Issue 25: a permutation-invariant layer (one-hot rows of distinct classes) has p = 1 on both tests,
    flagged; layers times 1e-100 give the unscaled results; an undefined leave-one-out CKA is an error."""
    n = 30
    distinct = np.eye(n)
    x = RNG.standard_normal((n, 3))
    t = cka.independence_test(distinct, x)
    assert t.degenerate and t.p_value == 1.0 and t.z == 0.0
    assert cka.permutation_test(distinct, x, permutations=49).p_value == 1.0
    for debiased in (False, True):
        a, b = cka.independence_test(x * 1e-100, x[:, :2] ** 2, debiased=debiased), cka.independence_test(x, x[:, :2] ** 2, debiased=debiased)
        assert math.isclose(a.value, b.value, rel_tol=1e-12) and math.isclose(a.p_value, b.p_value, rel_tol=1e-9)
    spike = np.full((n, 3), 0.5)
    spike[7] = [2.0, -1.0, 3.0]
    with pytest.raises(cka.UndefinedError, match="without sample 7"):
        cka.jackknife(spike, x)


@pytest.mark.parametrize("debiased", [False, True])
def test_similarity_tests_equal_the_pairwise_tests(debiased):
    """Every pair's numbers are the pairwise functions': CKA (also against the oracle), the analytic and the
    permutation p-values (the same seeded permutations: equal), the jackknife interval; both routes of the
    linear kernel (feature space for narrow pairs, Grams for a wide one), the square and rectangular forms,
    float32 and Fortran-ordered layers."""
    wide = RNG.standard_normal((41, 60))  # d_i * d_j > 40 n with the others: the Gram route
    layers = [X, np.asfortranarray(Y), wide, (X[:, :3] ** 2).astype(np.float32)]
    for kernel in (None, cka.RBF(median=0.5)):
        analytic = cka.similarity_tests(layers, kernel, debiased=debiased, level=0.9)
        permuted = cka.similarity_tests(layers, kernel, debiased=debiased, permutations=59, seed=3)
        assert analytic.values.shape == analytic.p_value.shape == analytic.lower.shape == (4, 4)
        assert permuted.lower is None and permuted.upper is None
        assert analytic.undefined == [] and analytic.degenerate == []
        for i, a in enumerate(layers):
            for j, b in enumerate(layers):
                spec = ("linear",) if kernel is None else ("median", 0.5, "all_pairs")
                rel = 2e-5 if np.float32 in (a.dtype, b.dtype) else 1e-11
                assert math.isclose(analytic.values[i, j], oracle.kernel_cka(a, b, spec, debiased), rel_tol=rel)
                t = cka.independence_test(a, b, kernel, debiased=debiased)
                assert math.isclose(analytic.p_value[i, j], t.p_value, rel_tol=1e-9, abs_tol=1e-15)
                jk = cka.jackknife(a, b, kernel, debiased=debiased, level=0.9)
                assert math.isclose(analytic.lower[i, j], jk.lower, rel_tol=1e-9)
                assert math.isclose(analytic.upper[i, j], jk.upper, rel_tol=1e-9)
                if i == j:  # a layer against itself: no permutation reaches T
                    assert permuted.p_value[i, j] == 1 / 60
                elif i < j:  # each unordered pair once, permuting the later layer's samples
                    p = cka.permutation_test(a, b, kernel, debiased=debiased, permutations=59, seed=3)
                    assert permuted.p_value[i, j] == permuted.p_value[j, i] == p.p_value
        rect = cka.similarity_tests(layers[:2], kernel, vs=layers[2:], debiased=debiased, permutations=59, seed=3)
        np.testing.assert_array_equal(rect.p_value, permuted.p_value[:2, 2:])
        np.testing.assert_allclose(rect.values, permuted.values[:2, 2:], rtol=1e-12)


def test_similarity_tests_undefined_degenerate_and_progress():
    n = 41
    layers = [X, np.ones((n, 3)), np.eye(n), Y]
    r = cka.similarity_tests(layers, permutations=19)
    assert [u[0] for u in r.undefined] == [1] and "zero variance" in r.undefined[0][1]
    assert np.isnan(r.values[1]).all() and np.isnan(r.p_value[:, 1]).all()
    assert r.degenerate == [2] and r.p_value[2, 0] == 1.0 and r.p_value[2, 3] == 1.0
    seen = []
    cka.similarity_tests([X, Y, X], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 6) for k in range(1, 7)]

    def fail(done, total):
        raise KeyError("stop")

    with pytest.raises(KeyError):
        cka.similarity_tests([X, Y], kernel=cka.RBF(), permutations=99, progress=fail)
