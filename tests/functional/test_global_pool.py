"""Average pooling whose window is the whole plane (``avg_pool`` with the kernel the input's size,
``adaptive_avg_pool`` to 1): summed in float64 (exactly in int64 for integers) and rounded once,
against the loop reference and a float64 mean written here; the gradient is each plane's share."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _backend, _naive


def _backends():
    return ["numpy", "numba"] if _backend.numba_available() else ["numpy"]


def _mean(x, n):
    """Mean over the trailing ``n`` axes: each plane's exact sum (``math.fsum``) over its size."""
    lead = x.shape[: x.ndim - n]
    flat = x.reshape(*lead, -1).astype(np.float64)
    out = np.array([math.fsum(row.tolist()) / row.size for row in flat.reshape(-1, flat.shape[-1])])
    return out.reshape(*lead, *(1,) * n)


SHAPES = [(3, 5, 7, 7), (2, 4, 6), (2, 3, 4, 5, 3), (4, 7, 9)]  # 2-d, 1-d, 3-d, unbatched 2-d


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_whole_plane_windows_match_a_float64_mean(backend, dtype, shape):
    rng = np.random.default_rng(len(shape) * 10 + shape[-1])
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    n = len(shape) - 2 if len(shape) != 3 or shape[0] != 4 else 2
    if shape == (2, 4, 6):
        n = 1
    kernel = x.shape[-n:]
    want = _mean(x, n).astype(dtype)
    with _backend.using(backend):
        y = F.avg_pool(x, kernel)
        ya = F.adaptive_avg_pool(x, (1,) * n)
    assert y.dtype == dtype and ya.dtype == dtype
    assert y.shape == want.shape == ya.shape
    # float64 sums carry an error of up to size * eps * sum|x| (cancellation): allowed on top of
    # one ulp of the result's dtype
    size = np.prod(kernel)
    bound = 2 * size * np.finfo(np.float64).eps * _mean(np.abs(x), n)  # (the mean's share of it)
    for got in (y, ya):
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        assert np.all(err <= np.spacing(np.abs(want)).astype(np.float64) + bound)
    g = rng.standard_normal(want.shape).astype(dtype)
    share = g / dtype(np.prod(kernel))
    with _backend.using(backend):
        grad = F.avg_pool_backward(g, x, kernel)
        grad_a = F.adaptive_avg_pool_backward(g, x, (1,) * n)
    for got in (grad, grad_a):
        assert got.shape == x.shape and got.dtype == dtype
        np.testing.assert_array_equal(got, np.broadcast_to(share, x.shape))


@pytest.mark.parametrize("backend", _backends())
def test_whole_plane_against_the_loop_reference(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 5, 4))
    g = rng.standard_normal((2, 3, 1, 1))
    with _backend.using(backend):
        y = F.avg_pool2d(x, (5, 4), divisor_override=7)
        grad = F.avg_pool_backward(g, x, (5, 4), divisor_override=7)
    want = _naive.naive_avg_pool(x, (5, 4), (5, 4), ((0, 0), (0, 0)), (1, 1), divisor_override=7)
    np.testing.assert_allclose(y, want, rtol=1e-14, atol=20 * 2e-16 * np.abs(x).max())
    np.testing.assert_allclose(grad, np.broadcast_to(g / 7, x.shape), rtol=1e-15)


@pytest.mark.parametrize("backend", _backends())
def test_whole_plane_integers_are_summed_exactly(backend):
    x = np.full((1, 2, 3, 3), 2**40 + 1, dtype=np.int64)
    x[0, 1] = -3
    with _backend.using(backend):
        y = F.avg_pool2d(x, 3, divisor_override=1)
        ya = F.adaptive_avg_pool2d(x, 1)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.reshape(-1), [9 * (2**40 + 1), -27])
    np.testing.assert_array_equal(ya.reshape(-1), [2**40 + 1, -3])


def test_autograd_global_average_pool():
    x = np.random.default_rng(6).standard_normal((4, 8, 7, 7)).astype(np.float32)
    xt = Tensor(x, requires_grad=True)
    (F.adaptive_avg_pool2d(xt, 1) * 2).sum().backward()
    np.testing.assert_array_equal(xt.grad, np.full(x.shape, np.float32(2) / np.float32(49)))
