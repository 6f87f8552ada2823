"""LinearState and LayersState: chunks, merges, flat-array reduction, save and load, pickling."""
import copy
import math
import pickle

import numpy as np
import pytest

import cka
import oracle

RNG = np.random.default_rng(7)
X = RNG.standard_normal((90, 4)) + 1e4   # a large common offset: the shift keeps its digits
Y = (X[:, :3] - 1e4) @ RNG.standard_normal((3, 6)) + RNG.standard_normal((90, 6))


def test_chunks_equal_all_rows():
    s = cka.LinearState(4, 6)
    for i in range(0, 90, 25):
        s.add(X[i:i + 25], np.asfortranarray(Y[i:i + 25]).astype(np.float32) if i == 25 else Y[i:i + 25])
    assert s.samples == 90
    y = Y.copy()
    y[25:50] = y[25:50].astype(np.float32)
    for debiased in (False, True):
        assert math.isclose(s.cka(debiased=debiased), oracle.linear_cka(X - X.mean(0), y, debiased), rel_tol=1e-10)
    xc = X - X.mean(0)
    assert math.isclose(s.hsic(), oracle.hsic(xc @ xc.T, y @ y.T), rel_tol=1e-10)


def test_flat_arrays_summed_equal_the_merge(tmp_path):
    first = cka.LinearState(4, 6)
    first.add(X[:40], Y[:40])
    a = cka.LinearState.with_shift(first.shift[:4], first.shift[4:])
    b = cka.LinearState.with_shift(first.shift[:4], first.shift[4:])
    a.add(X[:40], Y[:40])
    b.add(X[40:], Y[40:])
    merged = cka.LinearState(4, 6)
    merged.add(X[:40], Y[:40])
    merged.merge(b)
    view = a.data
    view += b.data  # what torch.distributed.all_reduce does to the writable view, in place
    assert np.shares_memory(view, a.data)
    assert math.isclose(a.cka(), merged.cka(), rel_tol=1e-12)
    assert math.isclose(a.cka(), cka.linear_cka(X, Y), rel_tol=1e-12)
    path = str(tmp_path / "state.npy")
    a.save(path)
    back = cka.LinearState.load(path)
    assert back.samples == 90 and back.cka(debiased=True) == a.cka(debiased=True)


def test_layers_state_equals_similarity_matrix():
    layers = [X, Y, X[:, :2] * Y[:, :2]]
    s = cka.LayersState([4, 6, 2])
    for i in range(0, 90, 30):
        s.add([m[i:i + 30] for m in layers])
    other = cka.LayersState([4, 6, 2])
    other.add([m[:5] for m in layers])
    np.testing.assert_allclose(s.cka(), cka.similarity_matrix(layers).values, rtol=1e-11)
    np.testing.assert_allclose(s.cka(debiased=True), cka.similarity_matrix(layers, debiased=True).values, rtol=1e-10)
    s.merge(other)
    assert s.samples == 95 and s.layers == 3


def test_layers_state_save_and_load(tmp_path):
    """LayersState.save/load round-trips exactly; a file that is not a saved LayersState is refused."""
    layers = [X, Y * 1e-100, X[:, :2] * Y[:, :2]]
    s = cka.LayersState([4, 6, 2])
    s.add(layers)
    path = str(tmp_path / "layers.npy")
    s.save(path)
    back = cka.LayersState.load(path)
    assert back.samples == s.samples and back.layers == 3
    np.testing.assert_array_equal(back.cka(debiased=True), s.cka(debiased=True))
    np.testing.assert_allclose(back.cka(), cka.similarity_matrix([X, Y, X[:, :2] * Y[:, :2]]).values, rtol=1e-11)
    back.add([m[:10] for m in layers])  # continue streaming after a reload
    assert back.samples == s.samples + 10
    cka.LinearState(4, 6).save(path)
    with pytest.raises(ValueError, match="not a saved cka::layers_state"):
        cka.LayersState.load(path)


def test_states_save_and_load_take_path_objects(tmp_path):
    """A pathlib.Path (any os.PathLike) is a path, as for numpy.save (it was a TypeError)."""
    s = cka.LinearState(4, 6)
    s.add(X, Y)
    s.save(tmp_path / "linear.npy")
    assert cka.LinearState.load(tmp_path / "linear.npy").cka() == s.cka()
    layers = cka.LayersState([4, 6])
    layers.add([X, Y])
    layers.save(tmp_path / "layers.npy")
    np.testing.assert_array_equal(cka.LayersState.load(tmp_path / "layers.npy").cka(), layers.cka())


@pytest.mark.parametrize("count", [np.nan, np.inf, -5.0, 2.5, 1e300])
def test_a_damaged_count_in_the_flat_array_is_a_value_error(count):
    """The flat array's first value is the sample count: written with a NaN (an all_reduce of a bad rank, say)
    it was converted to an integer (undefined behaviour: -9223372036854775808 samples); now every use names
    it, and repr shows it as it is."""
    for s, args in ((cka.LinearState(4, 6), (X, Y)), (cka.LayersState([4, 6]), ([X, Y],))):
        s.add(*args)
        s.data[0] = count
        with pytest.raises(ValueError, match="sample count"):
            s.cka()
        with pytest.raises(ValueError, match="sample count"):
            s.samples
        assert "samples=" in repr(s)


def test_states_pickle_and_copy_exactly():
    """pickle (what multiprocessing and joblib send between processes) and copy.deepcopy rebuild a state
    exactly; the copy streams on independently; an empty state (no shift yet) survives too."""
    s = cka.LinearState(4, 6)
    s.add(X[:50], Y[:50])
    for back in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s), copy.copy(s)):
        assert back.samples == 50 and back.cka(debiased=True) == s.cka(debiased=True)
        np.testing.assert_array_equal(back.data, s.data)
        np.testing.assert_array_equal(back.shift, s.shift)
        back.add(X[50:], Y[50:])
        assert math.isclose(back.cka(), cka.linear_cka(X, Y), rel_tol=1e-12)
    assert s.samples == 50
    empty = pickle.loads(pickle.dumps(cka.LinearState(2, 3)))
    assert empty.samples == 0 and empty.shift is None
    layers = [X, Y * 1e-100, X[:, :2] * Y[:, :2]]
    L = cka.LayersState([4, 6, 2])
    L.add(layers)
    back = pickle.loads(pickle.dumps(L))
    np.testing.assert_array_equal(back.cka(), L.cka())
    np.testing.assert_array_equal(back.data, L.data)


def test_damaged_pickles_are_refused():
    """A pickled state is checked like a saved file: a damaged one is a ValueError naming the fault."""
    s = cka.LinearState(4, 6)
    s.add(X, Y)
    good = s.__getstate__()
    for edit, message in [(lambda r: r.__setitem__(1, 1e9), "widths"), (lambda r: r.__setitem__(7, np.nan), "non-finite"),
                          (lambda r: r.__setitem__(-1, -r[-1]), "negative")]:
        r = good.copy()
        edit(r)
        with pytest.raises(ValueError, match="LinearState.__setstate__.*not a saved cka::linear_state.*" + message):
            pickle.loads(pickle.dumps(s).replace(good.tobytes(), r.tobytes()))
