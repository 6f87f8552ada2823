"""Every bad input gets the right exception, named; never a crash of the interpreter."""
import numpy as np
import pytest

import cka

X = np.random.default_rng(1).standard_normal((20, 3))

ROWS = [
    # (call, exception, words the message contains)
    (lambda: cka.linear_cka(X.astype(np.int64), X), TypeError, ["x", "int64"]),
    (lambda: cka.linear_cka(X, X.astype(np.complex128)), TypeError, ["y", "complex128"]),
    (lambda: cka.linear_cka(np.array([[object()]] * 4), X), TypeError, ["x"]),
    (lambda: cka.linear_cka([[1.0, 2.0]], X), TypeError, ["x", "list"]),
    (lambda: cka.linear_cka(X.astype(np.float16), X), TypeError, ["x", "float16"]),
    (lambda: cka.linear_cka(X[:, 0], X), ValueError, ["x", "2-D"]),
    (lambda: cka.linear_cka(X[None], X), ValueError, ["x", "3-D"]),
    (lambda: cka.linear_cka(X[:5], X), ValueError, ["samples"]),
    (lambda: cka.linear_cka(X[:1], X[:1]), ValueError, ["samples"]),
    (lambda: cka.linear_cka(X[:3], X[:3], debiased=True), ValueError, ["4"]),
    (lambda: cka.linear_cka(np.where(X > 1, np.nan, X), X), ValueError, ["not finite"]),
    (lambda: cka.linear_cka(np.ones((20, 2)), X), cka.UndefinedError, ["zero variance"]),
    (lambda: cka.kernel_cka(X, X, "gauss"), ValueError, ["gauss"]),
    (lambda: cka.kernel_cka(X, X, 3), TypeError, ["kernel", "int"]),
    (lambda: cka.kernel_cka(X, X, max_bytes=-1), ValueError, ["max_bytes"]),
    (lambda: cka.kernel_cka(X, X, max_bytes=0), ValueError, ["max_bytes = 0;"]),  # was printed as 0.000000
    (lambda: cka.kernel_cka(X, X, max_bytes=0.5), ValueError, ["max_bytes = 0.5;"]),
    (lambda: cka.RBF(rule="median"), ValueError, ["cka.RBF", "rule = 'median'", "'all_pairs', 'off_diagonal' or 'nonzero'"]),
    (lambda: cka.RBF(sigma=0.0), ValueError, ["sigma"]),
    (lambda: cka.Polynomial(degree=0), ValueError, ["degree"]),
    (lambda: cka.kernel_cka(np.eye(20)[[0] * 15 + [1] * 5], X, cka.RBF()), cka.UndefinedError, ["median"]),
    (lambda: cka.hsic(X, X), ValueError, ["square"]),
    (lambda: cka.hsic(np.triu(np.ones((5, 5))), np.eye(5)), ValueError, ["symmetric"]),
    (lambda: cka.mmd2(X, X[:, :2]), ValueError, ["feature"]),
    (lambda: cka.similarity_matrix(X), TypeError, ["layers"]),
    (lambda: cka.similarity_matrix([X, "a"]), TypeError, ["layers[1]"]),
    (lambda: cka.similarity_matrix([X, X], minibatch=2), ValueError, ["minibatch"]),
    (lambda: cka.similarity_matrix([X, X], progress="yes"), TypeError, ["progress"]),
    (lambda: cka.permutation_test(X, X, permutations=0), ValueError, ["permutations"]),
    (lambda: cka.similarity_tests([]), ValueError, ["similarity_tests", "at least one layer"]),
    (lambda: cka.similarity_tests([X], vs=[]), ValueError, ["similarity_tests", "at least one layer"]),
    (lambda: cka.similarity_tests(X), TypeError, ["similarity_tests", "layers"]),
    (lambda: cka.similarity_tests([X, X[:5]]), ValueError, ["similarity_tests", "5 samples"]),
    (lambda: cka.similarity_tests([X, X], level=1.0), ValueError, ["similarity_tests", "level = 1"]),
    (lambda: cka.similarity_tests([X, X], level=float("nan")), ValueError, ["similarity_tests", "level = nan"]),
    (lambda: cka.similarity_tests([X, X], permutations=-1), ValueError, ["similarity_tests", "permutations = -1"]),
    (lambda: cka.similarity_tests([X, X], permutations=2**40), ValueError, ["1099511627776", "4294967296"]),
    (lambda: cka.similarity_tests([X, X], seed=-1), ValueError, ["similarity_tests", "seed = -1"]),
    (lambda: cka.similarity_tests([X, X], progress="yes"), TypeError, ["similarity_tests", "progress"]),
    (lambda: cka.similarity_tests([X, np.where(X > 1, np.inf, X)]), ValueError, ["similarity_tests", "not finite"]),
    (lambda: cka.similarity_tests([X[:3], X[:3]]), ValueError, ["similarity_tests", "4"]),
    # Grams beyond the memory budget: refused before anything is allocated (12.8 GB per layer at n = 40000).
    (lambda: cka.similarity_tests([X[:, :1], X[:, :1]], cka.RBF(), max_bytes=1000), ValueError, ["similarity_tests", "max_bytes (1e-06 GB)"]),
    (lambda: cka.similarity_tests([np.zeros((40000, 1))] * 2, cka.RBF(), max_bytes=2**30), ValueError, ["n = 40000", "25.6 GB"]),
    (lambda: cka.similarity_tests([X, X], max_bytes=0), ValueError, ["max_bytes = 0;"]),
    (lambda: cka.permutation_test(X, X, permutations=2**40), ValueError, ["1099511627776", "4294967296"]),
    (lambda: cka.rcka_loss(X, X.astype(np.float32)), TypeError, ["dtype"]),
    (lambda: cka.rcka_loss(X, X, on_undefined="ignore"), ValueError,
     ["rcka_loss", "on_undefined = 'ignore'", "'skip' or 'raise'"]),
    (lambda: cka.patch_loss(np.zeros((2, 2, 4, 4)), np.zeros((2, 2, 4, 4)), products="float32"), ValueError,
     ["patch_loss", "products = 'float32'", "'exact' or 'input'"]),
    # A NaN weight gave a NaN loss; float logits near 1e-42 an infinite gradient.
    (lambda: cka.rcka_loss(X, X + 1, sample=float("nan")), ValueError, ["weights", "finite"]),
    (lambda: cka.sample_relation_loss((X * 1e-42).astype(np.float32), (X ** 2).astype(np.float32)), cka.UndefinedError,
     ["overflow", "gradient"]),
    (lambda: cka.rcka_loss(X, X[:, :2]), ValueError, []),
    (lambda: cka.patch_loss(X, X), ValueError, ["4-D"]),
    (lambda: cka.patch_loss(np.ones((2, 1, 4, 4)), np.ones((2, 1, 4, 2))), ValueError, ["shape"]),
    (lambda: cka.LinearState(0, 3), ValueError, []),
    (lambda: cka.LinearState(3, 3).add(X, X[:, :2]), ValueError, ["features"]),
    (lambda: cka.LinearState(3, 3).cka(), ValueError, []),
    (lambda: cka.LinearState.load("/nonexistent/state.npy"), ValueError, ["/nonexistent/state.npy"]),
    (lambda: cka.LayersState([3, 3]).add([X]), ValueError, []),
    # Widths whose state size wrapped: an Eigen assertion aborted the interpreter.
    (lambda: cka.LinearState(2**62, 2**62), ValueError, ["linear_state", "cannot address"]),
    (lambda: cka.LayersState([2**62, 2**62]), ValueError, ["layers_state", "cannot address"]),
    # A representation with no features crashed the interpreter (SIGFPE in the symmetric product).
    (lambda: cka.mmd_bound(X[:, :0], X), cka.UndefinedError, ["mmd_bound", "zero"]),
    # Integer arguments of the wrong type or beyond 64 bits were nanobind's "incompatible function arguments"
    # with the whole signature (a negative seed too); now the argument is named.
    (lambda: cka.permutation_test(X, X, permutations=10, seed=-1), ValueError, ["permutation_test", "seed = -1"]),
    (lambda: cka.permutation_test(X, X, permutations=10, seed=2**64), ValueError, ["seed = 18446744073709551616"]),
    (lambda: cka.permutation_test(X, X, permutations=2.5), TypeError, ["permutations must be an int", "float"]),
    (lambda: cka.permutation_test(X, X, permutations=2**63), ValueError, ["permutations = 9223372036854775808"]),
    (lambda: cka.similarity_matrix([X, X], minibatch=8.0), TypeError, ["minibatch must be an int"]),
    (lambda: cka.Polynomial(2.5), TypeError, ["Polynomial", "degree must be an int"]),
    (lambda: cka.Polynomial(2**40), ValueError, ["degree = 1099511627776"]),
    (lambda: cka.LinearState(2**70, 3), ValueError, ["x_features", "64 bits"]),
    (lambda: cka.LinearState(3, "3"), TypeError, ["y_features must be an int", "str"]),
    (lambda: cka.LayersState([3, 2.5]), TypeError, ["widths[1] must be an int"]),
    (lambda: cka.LayersState(3), TypeError, ["widths must be a list"]),
    # Unpickling a state checks what it is given (pickling states was a TypeError before).
    (lambda: cka.LinearState.__new__(cka.LinearState).__setstate__("abc"), TypeError, ["LinearState.__setstate__", "str"]),
    (lambda: cka.LayersState.__new__(cka.LayersState).__setstate__(np.ones(3)), ValueError, ["not a saved cka::layers_state"]),
    (lambda: cka.patch_loss(np.ones((2, 1, 4, 4)), np.ones((2, 1, 4, 4)), patch_h=2**64), ValueError, ["patch_h", "64 bits"]),
    # Arrays that cannot be read in place were reported as "not numpy.ndarray"; now their dtype is named.
    (lambda: cka.linear_cka(X.astype(">f8"), X), TypeError, ["x", "dtype >f8", "byte order"]),
    (lambda: cka.linear_cka(X, X.astype(np.longdouble)), TypeError, ["y", "dtype " + str(np.dtype(np.longdouble))]),
]


@pytest.mark.parametrize("row", range(len(ROWS)))
def test_hostile_input(row):
    call, exception, words = ROWS[row]
    with pytest.raises(exception) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_bfloat16_tensor_is_named():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="dtype bfloat16"):  # was "other16"
        cka.linear_cka(torch.zeros(5, 2, dtype=torch.bfloat16), torch.zeros(5, 2))


def test_undefined_is_a_value_error():
    assert issubclass(cka.UndefinedError, ValueError)


def test_backend_error_is_a_runtime_error_and_not_an_undefined_value():
    assert issubclass(cka.BackendError, RuntimeError)
    assert not issubclass(cka.BackendError, ValueError)


def test_cuda_tensor_is_refused_not_copied():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the refusal of a GPU tensor is not exercised")
    with pytest.raises(TypeError, match="CPU"):
        cka.linear_cka(torch.zeros(5, 2, device="cuda"), torch.zeros(5, 2, device="cuda"))


def test_numpy_integers_are_accepted_as_ints():
    """Integer arguments take anything with __index__ (NumPy integers), with the same results as ints."""
    a = cka.permutation_test(X, X ** 2, permutations=np.int64(30), seed=np.uint64(7))
    assert a == cka.permutation_test(X, X ** 2, permutations=30, seed=7)
    assert cka.Polynomial(np.int32(3)).degree == 3
    assert cka.LinearState(np.int64(3), np.int16(2)).y_features == 2
    s = cka.LayersState(np.array([3, 2]))
    s.add([X, X[:, :2]])
    assert s.samples == len(X)
    m = cka.similarity_matrix([X, X ** 2], minibatch=np.int64(10))
    assert m.values.shape == (2, 2)
