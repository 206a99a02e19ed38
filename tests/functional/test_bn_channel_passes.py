"""The compiled BatchNorm passes that take a channel at a time (``_numba_norm.bn_forward``: the
statistics and the output; ``bn_backward``: both sums and the input gradient), plain and with the
fused ReLU, in float32 and float64: each value rounded as the formula written here in NumPy
rounds it, to the bit, from the statistics and sums the kernels return; those against float64
NumPy sums.  Two threads with the parallel threshold at 0."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.functional import _backend

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setattr(_backend, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setitem(_backend._state, "threads", 2)


def _per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _case(shape, dtype, seed):
    g = np.random.default_rng(seed)
    x = (g.standard_normal(shape) * 3 + 1).astype(dtype)
    w, b = g.standard_normal(shape[1]).astype(dtype), g.standard_normal(shape[1]).astype(dtype)
    return x, w, b


SHAPES = [(6, 5, 7, 3), (4, 3, 11), (2, 9, 4, 5)]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward(two_threads, shape, dtype, relu):
    from cnnlab.functional._numba_norm import bn_forward

    x, w, b = _case(shape, dtype, seed=sum(shape))
    eps = 1e-3
    y, mean, var, inv_std = bn_forward(x, eps, w, b, relu)
    axes = (0, *range(2, x.ndim))
    x64 = x.astype(np.float64)
    assert mean.dtype == var.dtype == inv_std.dtype == y.dtype == dtype
    np.testing.assert_allclose(mean, x64.mean(axis=axes).astype(dtype), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=axes).astype(dtype), rtol=1e-6)
    t = np.dtype(dtype).type
    assert np.array_equal(inv_std, (1 / np.sqrt(var + t(eps))).astype(dtype))
    want = (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim) * _per_channel(w, x.ndim)
    want += _per_channel(b, x.ndim)
    if relu:
        want = np.maximum(want, t(0))
    assert np.array_equal(y, want)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward(two_threads, shape, dtype, relu):
    from cnnlab.functional._numba_norm import bn_backward, bn_forward

    x, w, b = _case(shape, dtype, seed=sum(shape) + 1)
    y, mean, _, inv_std = bn_forward(x, 1e-3, w, b, relu)
    g = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    scale = w * inv_std
    grad_x, sum_g, sum_gx = bn_backward(g, x, mean, inv_std, scale, (w, b) if relu else None)
    nd, axes = x.ndim, (0, *range(2, x.ndim))
    xhat = (x - _per_channel(mean, nd)) * _per_channel(inv_std, nd)
    h = np.where(y <= 0, dtype(0), g) if relu else g  # through the ReLU's mask, read from the output
    # (each product in the dtype, as the kernel takes it; the sums in float64, in another order)
    for got, terms in ((sum_g, h), (sum_gx, h * xhat)):
        t64 = terms.astype(np.float64)
        np.testing.assert_allclose(got, t64.sum(axis=axes), rtol=0, atol=1e-12 * np.abs(t64).sum() + 1e-300)
    count = g.size // g.shape[1]
    mg, mgx = (sum_g / count).astype(dtype), (sum_gx / count).astype(dtype)
    want = (h - _per_channel(mg, nd) - xhat * _per_channel(mgx, nd)) * _per_channel(scale, nd)
    assert grad_x.dtype == dtype and np.array_equal(grad_x, want)
