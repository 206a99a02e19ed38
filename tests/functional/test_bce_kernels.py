"""The compiled binary cross entropy with logits (``functional/_numba_loss.py``, no weights) and its
``log1p_unit``, against Python's ``math`` module element by element in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _backend

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")


def _loss(v, t):
    return (1 - t) * v + max(-v, 0.0) + math.log1p(math.exp(-abs(v)))


def _sigmoid(v):
    e = math.exp(-abs(v))
    return 1 / (1 + e) if v >= 0 else e / (1 + e)


def _inputs(dtype):
    rng = np.random.default_rng(11)
    big = 700.0 if dtype == np.float64 else 80.0
    x = np.concatenate([rng.standard_normal(3000) * 6, [0.0, -0.0, 1e-30, -1e-8, big, -big, 35.0, -35.0]])
    y = np.concatenate([rng.random(3000), [0.0, 1.0, 0.5, 1e-6, 0.0, 1.0, 1.0, 0.0]])
    return x.astype(dtype), y.astype(dtype)


def _spy(monkeypatch):
    from cnnlab.functional import _numba_loss

    calls = []
    for name in ("bce_with_logits", "bce_with_logits_backward"):
        real = getattr(_numba_loss, name)
        monkeypatch.setattr(_numba_loss, name, lambda *a, real=real, name=name: calls.append(name) or real(*a))
    return calls


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_matches_math(monkeypatch, dtype, reduction):
    calls = _spy(monkeypatch)
    x, y = _inputs(dtype)
    per = np.array([_loss(float(v), float(t)) for v, t in zip(x, y, strict=True)])
    grad_x = np.array([_sigmoid(float(v)) - float(t) for v, t in zip(x, y, strict=True)])
    g = np.asarray(1.5, dtype) if reduction != "none" else np.full(x.shape, 1.5, dtype)
    with _backend.using("numba"):
        got = F.binary_cross_entropy_with_logits(x, y, reduction=reduction)
        gx, gy = F.binary_cross_entropy_with_logits_backward(g, x, y, reduction=reduction)
    assert calls[0] == "bce_with_logits"
    # a scalar grad_out takes the compiled backward; 'none' (one per element) the NumPy one
    assert ("bce_with_logits_backward" in calls) == (reduction != "none")
    assert got.dtype == dtype and gx.dtype == dtype and gy.dtype == dtype
    eps = np.finfo(dtype).eps
    # each element: within a few ulp of its terms' size (the loss is a difference that can cancel)
    size = np.abs((1 - y.astype(np.float64)) * x) + np.abs(x) + 1
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    tol = {"none": 4 * eps * size, "sum": 4 * eps * size.sum(), "mean": 4 * eps * size.mean()}[reduction]
    assert np.all(np.abs(got - want) <= tol)
    scale = 1.5 / x.size if reduction == "mean" else 1.5
    assert np.all(np.abs(gx - grad_x * scale) <= 4 * eps * scale)
    np.testing.assert_allclose(gy, -x.astype(np.float64) * scale, rtol=4 * eps)


def test_weights_take_the_numpy_path_and_autograd_the_kernels(monkeypatch):
    calls = _spy(monkeypatch)
    x, y = _inputs(np.float32)
    pos_weight = np.float32(3.0)
    with _backend.using("numba"):
        weighted = F.binary_cross_entropy_with_logits(x, y, weight=np.full(x.shape, 2.0, np.float32), reduction="sum")
        positive = F.binary_cross_entropy_with_logits(x, y, pos_weight=np.full(x.shape, pos_weight), reduction="sum")
    assert calls == []
    softplus = [max(-float(v), 0.0) + math.log1p(math.exp(-abs(float(v)))) for v in x]
    plain = sum(_loss(float(v), float(t)) for v, t in zip(x, y, strict=True))
    with_pos = sum((1 - float(t)) * float(v) + (1 + (3.0 - 1) * float(t)) * sp
                   for v, t, sp in zip(x, y, softplus, strict=True))
    np.testing.assert_allclose(weighted, 2 * plain, rtol=1e-4)
    np.testing.assert_allclose(positive, with_pos, rtol=1e-4)
    xt = Tensor(x, requires_grad=True)
    with _backend.using("numba"):
        F.binary_cross_entropy_with_logits(xt, y).backward()
    assert calls == ["bce_with_logits", "bce_with_logits_backward"]
    want = np.array([_sigmoid(float(v)) - float(t) for v, t in zip(x, y, strict=True)]) / x.size
    assert np.all(np.abs(np.asarray(xt.grad) - want) <= 4 * np.finfo(np.float32).eps / x.size)


def test_log1p_unit_against_math_log1p():
    from numba import njit

    from cnnlab.functional._numba_math import log1p_unit

    @njit
    def run(a, out):
        for i in range(a.size):
            out[i] = log1p_unit(a[i])

    a = np.concatenate([np.random.default_rng(12).random(20000), np.geomspace(1e-300, 1, 500), [0.0, 1.0]])
    out = np.empty_like(a)
    run(a, out)
    want = np.array([math.log1p(v) for v in a])
    assert np.all(np.abs(out - want) <= 6 * np.spacing(np.maximum(want, 1e-300)))
