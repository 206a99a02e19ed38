"""The functional ops added for the layers: linear, adaptive average pooling, dropout."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor
from cnnlab import random as cnn_random
from cnnlab.functional._adaptive import (
    adaptive_avg_pool,
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool_backward,
    averaging_matrix,
)
from cnnlab.functional._dropout import dropout, dropout_backward, dropout_mask
from cnnlab.functional._linear import linear, linear_backward

from .helpers import needs_torch, numerical_grad, to_numpy, torch

# ---------------------------------------------------------------- linear


@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_follows_its_definition(shape, with_bias):
    """y[..., o] = sum_i x[..., i] w[o, i] + b[o]; grad_x[..., i] = sum_o g[..., o] w[o, i];
    grad_w[o, i] = sum over the leading dims of g[..., o] x[..., i]; grad_b[o] = sum of g[..., o]."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(shape), rng.standard_normal((5, 4))
    b = rng.standard_normal(5) if with_bias else None
    lead = list(itertools.product(*(range(n) for n in shape[:-1])))
    expected = np.zeros(shape[:-1] + (5,))
    for idx in lead:
        for o in range(5):
            expected[(*idx, o)] = sum(x[(*idx, i)] * w[o, i] for i in range(4)) + (0.0 if b is None else b[o])
    np.testing.assert_allclose(linear(x, w, b), expected, rtol=1e-12, atol=1e-14)
    g = rng.standard_normal(expected.shape)
    gx, gw, gb = linear_backward(g, x, w, b)
    want_gx, want_gw = np.zeros(shape), np.zeros((5, 4))
    for idx in lead:
        for i in range(4):
            want_gx[(*idx, i)] = sum(g[(*idx, o)] * w[o, i] for o in range(5))
            for o in range(5):
                want_gw[o, i] += g[(*idx, o)] * x[(*idx, i)]
    np.testing.assert_allclose(gx, want_gx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gw, want_gw, rtol=1e-12, atol=1e-14)
    if b is None:
        assert gb is None
    else:
        np.testing.assert_allclose(gb, [sum(g[(*idx, o)] for idx in lead) for o in range(5)], rtol=1e-12)


@needs_torch
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_torch(shape, with_bias):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(shape), rng.standard_normal((5, 4))
    b = rng.standard_normal(5) if with_bias else None
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    yt = torch.nn.functional.linear(xt, wt, bt)
    np.testing.assert_allclose(linear(x, w, b), to_numpy(yt), rtol=1e-12)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    gx, gw, gb = linear_backward(g, x, w, b)
    np.testing.assert_allclose(gx, to_numpy(xt.grad), rtol=1e-12)
    np.testing.assert_allclose(gw, to_numpy(wt.grad), rtol=1e-12)
    if b is None:
        assert gb is None
    else:
        np.testing.assert_allclose(gb, to_numpy(bt.grad), rtol=1e-12)


def test_linear_is_exact_on_integers():
    y = linear(np.array([[2**40, 1]], dtype=np.int64), np.array([[1, 1]]), np.array([1]))
    assert y.dtype == np.int64 and y[0, 0] == 2**40 + 2


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((np.ones((2, 3)), np.ones(3)), ValueError, "weight must be 2-D"),
        ((np.ones((2, 3)), np.ones((4, 2))), ValueError, "last dim 3 does not match in_features 2"),
        ((np.ones((2, 3)), np.ones((4, 3)), np.ones(3)), ValueError, r"bias must have shape \(4,\)"),
        ((np.float64(1.0), np.ones((4, 1))), ValueError, "at least one dim"),
        ((np.array(["a"]), np.ones((1, 1))), TypeError, "must have a boolean, integer or floating dtype"),
    ],
)
def test_linear_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        linear(*args)


# ---------------------------------------------------------------- adaptive average pooling


def _loop_adaptive(x: np.ndarray, out: tuple[int, ...]) -> np.ndarray:
    """The definition, one output cell at a time."""
    n = len(out)
    spatial = x.shape[-n:]
    y = np.zeros(x.shape[:-n] + out)
    for cell in itertools.product(*(range(o) for o in out)):
        box = tuple(
            slice(math.floor(i * s / o), math.ceil((i + 1) * s / o)) for i, s, o in zip(cell, spatial, out, strict=True)
        )
        y[(..., *cell)] = x[(..., *box)].mean(axis=tuple(range(-n, 0)))
    return y


@pytest.mark.parametrize(
    ("shape", "out"),
    [((2, 3, 7), (3,)), ((2, 3, 7, 5), (3, 2)), ((1, 2, 5, 5), (1, 1)), ((1, 1, 3, 4), (5, 7)),
     ((1, 2, 3, 4, 5), (2, 3, 2))],
)
def test_adaptive_matches_the_definition(shape, out):
    x = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_allclose(adaptive_avg_pool(x, out), _loop_adaptive(x, out), rtol=1e-12)


@pytest.mark.parametrize(("shape", "out"), [((2, 3, 9, 6), (4, 4)), ((3, 5, 5), 2), ((1, 2, 4, 3), (None, 5))])
def test_adaptive2d_follows_the_definition(shape, out):
    """The 2-d wrapper's size forms (an int for both sides, None keeps a side) against the loop
    definition; the backward against float64 central differences."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    size = (out, out) if isinstance(out, int) else tuple(shape[-2 + i] if o is None else o for i, o in enumerate(out))
    np.testing.assert_allclose(adaptive_avg_pool2d(x, out), _loop_adaptive(x, size), rtol=1e-12)
    g = rng.standard_normal(_loop_adaptive(x, size).shape)
    expected = numerical_grad(lambda: float((_loop_adaptive(x, size) * g).sum()), x)
    np.testing.assert_allclose(adaptive_avg_pool2d_backward(g, x, out), expected, rtol=1e-7, atol=1e-9)


@needs_torch
@pytest.mark.parametrize(("shape", "out"), [((2, 3, 9, 6), (4, 4)), ((3, 5, 5), 2), ((1, 2, 4, 3), (None, 5))])
def test_adaptive2d_matches_torch(shape, out):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, out)
    np.testing.assert_allclose(adaptive_avg_pool2d(x, out), to_numpy(yt), rtol=1e-12)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(adaptive_avg_pool2d_backward(g, x, out), to_numpy(xt.grad), rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "shape"),
    [(lambda x: adaptive_avg_pool2d(x, 2), (4, 4)), (lambda x: adaptive_avg_pool(x, (2, 2)), (4, 4)),
     (lambda x: adaptive_avg_pool2d(x, 2), (1, 1, 1, 4, 4)), (lambda x: adaptive_avg_pool(x, (2,)), (4,))],
)
def test_adaptive_needs_a_channel_axis(call, shape):
    """An input without its channel axis (or with an extra one) is refused, not pooled."""
    with pytest.raises(ValueError, match=r"must be \d-D or \d-D \(\(N, C, "):
        call(np.zeros(shape))


def test_adaptive_backward_is_the_adjoint():
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((2, 2, 7, 6)), rng.standard_normal((2, 2, 3, 4))
    lhs = np.sum(adaptive_avg_pool(x, (3, 4)) * g)
    rhs = np.sum(x * adaptive_avg_pool_backward(g, x, (3, 4)))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_averaging_matrix_rows_are_windows_that_sum_to_one():
    m = averaging_matrix(10, 4)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert [tuple(np.flatnonzero(row)[[0, -1]]) for row in m] == [(0, 2), (2, 4), (5, 7), (7, 9)]


def test_adaptive_keeps_float32_and_promotes_integers():
    assert adaptive_avg_pool2d(np.ones((1, 4, 4), dtype=np.float32), 2).dtype == np.float32
    np.testing.assert_array_equal(adaptive_avg_pool2d(np.arange(4).reshape(1, 2, 2), 1), [[[1.5]]])


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((np.ones((2, 3)), 1), ValueError, "x must be 3-D or 4-D"),
        ((np.ones((1, 2, 3, 3)), 0), ValueError, "output_size must be positive"),
        ((np.ones((1, 2, 3, 3)), (1, 2, 3)), ValueError, "tuple of 2 entries"),
        ((np.ones((1, 2, 3, 3)), 1.5), TypeError, "output_size must be ints"),
    ],
)
def test_adaptive_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        adaptive_avg_pool2d(*args)


# ---------------------------------------------------------------- dropout


def test_dropout_mask_statistics():
    mask = dropout_mask((200, 500), 0.3, np.float64, np.random.default_rng(4))
    assert set(np.unique(mask)) == {0.0, 1 / 0.7}
    assert np.mean(mask == 0) == pytest.approx(0.3, abs=0.005)
    assert mask.mean() == pytest.approx(1.0, abs=0.01)  # inverted dropout keeps the expectation


def test_dropout_uses_its_mask_forward_and_backward():
    x = np.random.default_rng(5).standard_normal((4, 6))
    y, mask = dropout(x, 0.5, generator=np.random.default_rng(6), return_mask=True)
    np.testing.assert_array_equal(y, x * mask)
    xt = Tensor(x, requires_grad=True)
    yt, mask_t = dropout(xt, 0.5, generator=np.random.default_rng(6), return_mask=True)
    np.testing.assert_array_equal(mask_t, mask)
    g = np.random.default_rng(7).standard_normal((4, 6))
    yt.backward(g)
    np.testing.assert_array_equal(xt.grad, g * mask)
    np.testing.assert_array_equal(dropout_backward(g, mask), g * mask)


def test_dropout_identity_cases():
    x = np.ones((2, 3))
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    np.testing.assert_array_equal(dropout(x, 1.0), 0.0)
    assert dropout(np.ones(3, dtype=np.float32), 0.5).dtype == np.float32


def test_dropout_default_generator_is_seeded_by_manual_seed():
    cnn_random.manual_seed(11)
    a = dropout(np.ones(50), 0.5)
    cnn_random.manual_seed(11)
    np.testing.assert_array_equal(dropout(np.ones(50), 0.5), a)


def test_dropout_layer_train_and_eval():
    layer = nn.Dropout(0.2, generator=np.random.default_rng(8))
    x = Tensor(np.ones((100, 100)), requires_grad=True)
    y = layer(x)
    assert np.mean(y.data == 0) == pytest.approx(0.2, abs=0.02)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)  # d(x * mask)/dx = mask = y for x = 1
    layer.eval()
    assert layer(x) is x


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: dropout(np.ones(2), 1.5), ValueError, r"p must be a probability in \[0, 1\]"),
        (lambda: dropout(np.ones(2), "a"), TypeError, "p must be a real number"),
        (lambda: dropout(np.ones(2), 0.5, training=1), TypeError, "training must be a bool"),
        (lambda: dropout(np.ones(2), 0.5, generator=1), TypeError, "generator must be a numpy.random.Generator"),
        (lambda: dropout_backward(np.ones(2), np.ones(3)), ValueError, "one shape"),
        (lambda: nn.Dropout(-0.1), ValueError, "p must be a probability"),
    ],
)
def test_dropout_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
