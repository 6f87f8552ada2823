"""JAX CPU arrays as inputs (through DLPack): the same values as the NumPy arrays they hold, float32 and
float64, and integer arrays refused. Skipped where JAX is not installed (CI's Debian Python has none; the
result of a run with PyPI's jax[cpu] is in the issue notes)."""
import numpy as np
import pytest

import cka

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'jax[cpu]')")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 7))
    y = x[:, :3] * 0.5 + rng.standard_normal((500, 3))
    return x, y


def test_jax_arrays_give_the_numpy_values():
    x, y = data()
    jx, jy = jnp.asarray(x), jnp.asarray(y)
    assert cka.linear_cka(jx, jy) == cka.linear_cka(x, y)
    assert cka.linear_cka(jx, jy, debiased=True) == cka.linear_cka(x, y, debiased=True)
    assert cka.kernel_cka(jx, jy, cka.RBF()) == cka.kernel_cka(x, y, cka.RBF())
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    assert cka.linear_cka(jnp.asarray(x32), jnp.asarray(y32)) == cka.linear_cka(x32, y32)


def test_jax_integer_arrays_are_refused():
    a = jnp.arange(10).reshape(5, 2)
    with pytest.raises(TypeError, match="dtype"):
        cka.linear_cka(a, a)
