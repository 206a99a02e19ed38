"""Adaptive average pooling's three ways (equal windows as average pooling, a small box matrix
(input cells x output cells) as one product with it, the chain of per-dim averaging products), each against the
definition written here: PyTorch's windows ``[floor(i*in/out), ceil((i+1)*in/out))``, a box
mean summed with ``math.fsum``, and its adjoint (each output cell's gradient spread evenly over
its box), forward and backward, through autograd too, on both backends."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _adaptive, _backend


def _backends():
    return ["numpy", "numba"] if _backend.numba_available() else ["numpy"]


def _boxes(spatial, out):
    """Every output cell with its box of input slices."""
    for cell in itertools.product(*(range(o) for o in out)):
        yield cell, tuple(slice(math.floor(i * s / o), math.ceil((i + 1) * s / o))
                          for i, s, o in zip(cell, spatial, out, strict=True))


def _pool(x, out):
    n = len(out)
    y = np.zeros(x.shape[:-n] + tuple(out))
    for cell, box in _boxes(x.shape[-n:], out):
        part = x[(..., *box)].astype(np.float64)
        flat = part.reshape(*part.shape[:-n], -1)
        sums = np.apply_along_axis(lambda r: math.fsum(r.tolist()), -1, flat)
        y[(..., *cell)] = sums / flat.shape[-1]
    return y


def _spread(g, spatial, out):
    n = len(out)
    grad = np.zeros(g.shape[:-n] + tuple(spatial))
    for cell, box in _boxes(spatial, out):
        count = math.prod(b.stop - b.start for b in box)
        grad[(..., *box)] += (g[(..., *cell)].astype(np.float64) / count)[(...,) + (None,) * n]
    return grad


CASES = [  # (x shape, output size, the way the rule picks)
    ((2, 3, 8, 6), (4, 3), "pool"),
    ((2, 3, 14, 14), (7, 7), "pool"),
    ((2, 2, 9), (3,), "pool"),
    ((1, 2, 4, 6, 8), (2, 3, 2), "pool"),
    ((2, 3, 5, 4), (5, 4), "pool"),  # the identity
    ((2, 3, 7, 7), (2, 2), "box"),
    ((2, 3, 9, 6), (4, 4), "box"),
    ((3, 2, 10), (4,), "box"),
    ((1, 2, 5, 7, 3), (2, 3, 2), "box"),
    ((2, 3, 4), (3, 5), "box"),  # unbatched, windows that overlap (output larger than input)
    ((2, 3, 13, 13), (6, 6), "box"),
    ((1, 2, 3, 4), (5, 7), "box"),
    ((1, 2, 40, 40), (9, 9), None),  # 1,600 x 81 entries: the chain
    ((1, 2, 5000), (7,), None),
    ((1, 1, 30, 5, 40), (4, 2, 3), None),
]


def test_the_rule_picks_each_way():
    """The cases below cover each way (the rule itself: equal windows, then a small box matrix)."""
    for shape, out, way in CASES:
        assert _adaptive._fast_path(shape[-len(out):], out) == way, (shape, out)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("shape", "out", "way"), CASES)
def test_each_way_matches_the_definition(backend, dtype, shape, out, way):
    rng = np.random.default_rng(sum(shape) + 7 * sum(out))
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    g = rng.standard_normal(shape[: len(shape) - len(out)] + out).astype(dtype)
    tol = {"rtol": 1e-13, "atol": 1e-14} if dtype == np.float64 else {"rtol": 2e-6, "atol": 2e-6}
    with _backend.using(backend):
        y = F.adaptive_avg_pool(x, out)
        grad_x = F.adaptive_avg_pool_backward(g, x, out)
        xt = Tensor(x, requires_grad=True)
        F.adaptive_avg_pool(xt, out).backward(g)
    assert y.dtype == dtype and grad_x.dtype == dtype and y.shape == g.shape
    np.testing.assert_allclose(y, _pool(x, out), **tol)
    np.testing.assert_allclose(grad_x, _spread(g, shape[-len(out):], out), **tol)
    np.testing.assert_allclose(xt.grad, grad_x, rtol=0, atol=0)


def test_integers_average_as_float64():
    x = np.arange(2 * 3 * 6 * 4).reshape(2, 3, 6, 4)
    for out in [(3, 2), (4, 3)]:  # equal windows, then the box matrix
        y = F.adaptive_avg_pool2d(x, out)
        assert y.dtype == np.float64
        np.testing.assert_allclose(y, _pool(x, out), rtol=1e-15)


@pytest.mark.parametrize("shape", [(1, 1, 0, 4), (2, 0, 4, 4), (3, 0, 5)])
def test_empty_planes_and_channels_are_refused(shape):
    """As in PyTorch, only the batch may be empty."""
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: x must have non-zero channels and spatial sizes"):
        F.adaptive_avg_pool2d(np.zeros(shape), 2)


def test_an_empty_batch_pools_to_an_empty_batch():
    for out in [(2, 2), (3, 3)]:
        assert F.adaptive_avg_pool2d(np.zeros((0, 2, 6, 6)), out).shape == (0, 2, *out)
        grad_x = F.adaptive_avg_pool2d_backward(np.zeros((0, 2, *out)), np.zeros((0, 2, 6, 6)), out)
        assert grad_x.shape == (0, 2, 6, 6)
