"""Adaptive max pooling (``functional/_adaptive_max.py``) beyond the registry's samples: which cell
each output takes (ties, NaN, -inf, signed zeros) and its index, against PyTorch; the gradient of
overlapping windows; the autograd path with and without indices; integers; empty batches."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
import cnnlab.nn as nn
from cnnlab import Tensor
from cnnlab.functional import _backend
from tests.functional.opinfo import torch

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
BACKENDS = ["numpy"] + (["numba"] if _backend.numba_available() else [])


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each test with the NumPy paths and, where Numba is installed, the compiled kernel forced
    (past its small-work threshold)."""
    previous = _backend.set_backend(request.param)
    yield request.param
    _backend.set_backend(previous)

OPS = {1: (F.adaptive_max_pool1d, F.adaptive_max_pool1d_backward),
       2: (F.adaptive_max_pool2d, F.adaptive_max_pool2d_backward),
       3: (F.adaptive_max_pool3d, F.adaptive_max_pool3d_backward)}


def _awkward(shape, seed):
    """Values with ties (rounded), NaNs (some windows two), an -inf window start and signed zeros."""
    g = np.random.default_rng(seed)
    x = np.round(g.standard_normal(shape) * 1.5)
    flat = x.reshape(-1)
    flat[g.choice(flat.size, max(2, flat.size // 15), replace=False)] = np.nan
    flat[g.choice(flat.size, max(1, flat.size // 20), replace=False)] = -np.inf
    zeros = g.choice(flat.size, max(2, flat.size // 10), replace=False)
    flat[zeros] = np.where(np.arange(zeros.size) % 2, 0.0, -0.0)
    return x


@needs_torch
@pytest.mark.parametrize("shape, out", [((2, 3, 11), 4), ((2, 3, 6), (9,)), ((2, 3, 7, 9), (3, 4)),
                                        ((2, 2, 5, 5), (7, 3)), ((3, 6, 6), (2, 5)), ((2, 2, 5, 6, 7), (2, 3, 4)),
                                        ((2, 3, 4, 4), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_and_indices_match_torch(backend, shape, out, dtype):
    """The cell each output takes, on values full of ties, NaNs, -inf and signed zeros: the same
    values (NaN where torch has NaN, the same sign of zero), the same flat indices, and the
    gradient sent to the same cells, as PyTorch's CPU op."""
    n = len(out) if isinstance(out, tuple) else len(shape) - 2
    op, backward = OPS[n]
    x = _awkward(shape, seed=sum(shape)).astype(dtype)
    y, idx = op(x, out, return_indices=True)
    tf = {1: torch.nn.functional.adaptive_max_pool1d, 2: torch.nn.functional.adaptive_max_pool2d,
          3: torch.nn.functional.adaptive_max_pool3d}[n]
    xt = torch.tensor(x, requires_grad=True)
    yt, it = tf(xt, out, return_indices=True)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(np.signbit(y), np.signbit(yt.detach().numpy()))
    np.testing.assert_array_equal(idx, it.numpy())
    assert idx.dtype == np.int64 and y.dtype == dtype
    # (the gradient against torch's in float64, rounded to float32 for a float32 layer: cells taken by
    # several windows sum their gradients in float64 here, rounded once; torch adds in float32)
    g = np.random.default_rng(4).standard_normal(y.shape).astype(dtype)
    x64 = torch.tensor(x.astype(np.float64), requires_grad=True)
    tf(x64, out).backward(torch.tensor(g.astype(np.float64)))
    want = x64.grad.numpy().astype(dtype)
    np.testing.assert_allclose(backward(g, x, out), want, rtol=1e-7 if dtype == np.float32 else 1e-15)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(backward(g, x, out) != 0, xt.grad.numpy() != 0)  # (the same cells)


def test_overlapping_windows_add_their_gradients(backend):
    """Output larger than the input: windows overlap, and a cell taken by several adds their
    gradients (the docstring's example, by hand: windows [0,2), [1,3), [2,4) of 1, 3, 3, 2)."""
    x = np.array([[[1.0, 3.0, 3.0, 2.0]]])
    y, idx = F.adaptive_max_pool1d(x, 3, return_indices=True)
    np.testing.assert_array_equal(y, [[[3.0, 3.0, 3.0]]])
    np.testing.assert_array_equal(idx, [[[1, 1, 2]]])
    g = np.array([[[1.0, 10.0, 100.0]]])
    np.testing.assert_array_equal(F.adaptive_max_pool1d_backward(g, x, 3), [[[0.0, 11.0, 100.0, 0.0]]])


@pytest.mark.parametrize("return_indices", [False, True])
def test_autograd_matches_the_backward_function(backend, return_indices):
    """On Tensors the forward keeps each output's cell, and the backward scatters to it: the same
    gradient as the plain backward, which searches the maxima again; the indices come back as a
    plain array."""
    g = np.random.default_rng(2)
    x = g.standard_normal((2, 3, 7, 6))
    grad = g.standard_normal((2, 3, 4, 5))
    xt = Tensor(x, requires_grad=True)
    out = F.adaptive_max_pool2d(xt, (4, 5), return_indices=return_indices)
    y = out[0] if return_indices else out
    if return_indices:
        np.testing.assert_array_equal(out[1], F.adaptive_max_pool2d(x, (4, 5), return_indices=True)[1])
    (y * Tensor(grad)).sum().backward()
    np.testing.assert_array_equal(xt.grad.data if isinstance(xt.grad, Tensor) else xt.grad,
                                  F.adaptive_max_pool2d_backward(grad, x, (4, 5)))


def test_layer_with_indices_and_its_config():
    layer = nn.AdaptiveMaxPool2d((2, None), return_indices=True)
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    y, idx = layer(x)
    np.testing.assert_array_equal(y, [[[[4, 5, 6, 7], [8, 9, 10, 11]], [[16, 17, 18, 19], [20, 21, 22, 23]]]])
    np.testing.assert_array_equal(idx[0, 0], [[4, 5, 6, 7], [8, 9, 10, 11]])
    assert layer.config_args() == {"output_size": [2, None], "return_indices": True}
    assert repr(layer) == "AdaptiveMaxPool2d(output_size=(2, None))"
    with pytest.raises(TypeError, match=r"AdaptiveMaxPool2d: return_indices must be a bool, got 'yes'"):
        nn.AdaptiveMaxPool2d(2, return_indices="yes")
    with pytest.raises(ValueError, match=r"AdaptiveMaxPool2d: output_size must be an int or a tuple of 2"):
        nn.AdaptiveMaxPool2d((2, 2, 2))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, bool])
def test_integers_stay_exact(backend, dtype):
    """Boolean and integer inputs give exact int64 maxima (uint8 above 127 included); their
    gradient takes the upstream gradient's dtype."""
    x = (np.arange(2 * 3 * 5 * 4).reshape(2, 3, 5, 4) * 37 % 251).astype(dtype)
    y = F.adaptive_max_pool2d(x, (2, 3))
    assert y.dtype == np.int64
    want = np.stack([np.stack([x[..., :3, 0:2].max(axis=(-2, -1)), x[..., :3, 1:3].max(axis=(-2, -1)),
                               x[..., :3, 2:4].max(axis=(-2, -1))], axis=-1),
                     np.stack([x[..., 2:, 0:2].max(axis=(-2, -1)), x[..., 2:, 1:3].max(axis=(-2, -1)),
                               x[..., 2:, 2:4].max(axis=(-2, -1))], axis=-1)], axis=-2).astype(np.int64)
    np.testing.assert_array_equal(y, want)
    grad = F.adaptive_max_pool2d_backward(np.ones((2, 3, 2, 3), np.int64), x, (2, 3))
    assert grad.dtype == np.int64 and grad.sum() == 2 * 3 * 6


def test_empty_batch():
    y, idx = F.adaptive_max_pool2d(np.zeros((0, 2, 5, 5), np.float32), 2, return_indices=True)
    assert y.shape == idx.shape == (0, 2, 2, 2) and y.dtype == np.float32
    grad = F.adaptive_max_pool2d_backward(np.zeros((0, 2, 2, 2), np.float32), np.zeros((0, 2, 5, 5), np.float32), 2)
    assert grad.shape == (0, 2, 5, 5) and grad.dtype == np.float32


def test_backward_checks_the_gradient_shape():
    with pytest.raises(ValueError, match=r"adaptive_max_pool2d_backward: grad_out must have the output's shape "
                                         r"\(1, 2, 2, 2\), got array of shape \(1, 2, 3, 3\)"):
        F.adaptive_max_pool2d_backward(np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 5, 5)), 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_pooling_edge_rows(backend, dtype):
    """Pooling to one cell (a scan of each plane): signed zeros tie (the first of either sign),
    a plane of -inf takes its first cell, a NaN of either sign wins (the last one), +inf beats
    everything else; written out by hand."""
    nan = np.float64("nan")
    planes = [([-0.0, 0.0, -1.0, -0.0], 0), ([-2.0, 0.0, -0.0, -1.0], 1), ([-np.inf, -np.inf, -np.inf, -np.inf], 0),
              ([1.0, -nan, 2.0, 0.5], 1), ([-nan, 3.0, nan, 1.0], 2), ([np.inf, 5.0, np.inf, -nan], 3),
              ([3.0, np.inf, 2.0, np.inf], 1), ([-5.0, -3.0, -3.0, -4.0], 1)]
    x = np.array([p for p, _ in planes], dtype).reshape(1, len(planes), 2, 2)
    x.reshape(len(planes), 4)[3, 1] = -np.abs(x.reshape(len(planes), 4)[3, 1])  # (a NaN with its sign bit set)
    x.reshape(len(planes), 4)[4, 0] = -np.abs(x.reshape(len(planes), 4)[4, 0])
    y, idx = F.adaptive_max_pool2d(x, 1, return_indices=True)
    assert y.dtype == dtype
    np.testing.assert_array_equal(idx.reshape(-1), [i for _, i in planes])
    np.testing.assert_array_equal(y.reshape(-1), x.reshape(len(planes), 4)[np.arange(len(planes)), idx.reshape(-1)])
    np.testing.assert_array_equal(np.signbit(y.reshape(-1)[:2]), [True, False])
    ints = F.adaptive_max_pool2d(np.array([[[[3, -7], [9, 9]], [[-2, -2], [-5, -3]]]]), 1, return_indices=True)
    np.testing.assert_array_equal(ints[0].reshape(-1), [9, -2])
    np.testing.assert_array_equal(ints[1].reshape(-1), [2, 0])
