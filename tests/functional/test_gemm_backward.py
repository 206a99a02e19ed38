"""Strided layers of 8-15 channels and many filters: 'auto' runs their forward on the implicit
kernels and their gradients on the GEMM path (``_conv_kernels._gemm_backward_pays``), each
against the float64 loop reference; the layers just outside that rule keep the implicit
gradients, and ``method='implicit'`` keeps them too."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _backend, _implicit, _implicit_grad_w, _implicit_grad_x, _naive
from cnnlab.functional import _conv_backward_kernels as bk
from cnnlab.functional import _conv_kernels as ck
from tests.functional.spies import spied

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.fixture
def small_layers_auto(monkeypatch):
    """Small layers stand for large ones: 'auto' gives them the implicit kernels."""
    monkeypatch.setattr(_implicit, "MIN_FLOPS", 0.0)
    monkeypatch.setattr(_implicit, "MIN_POSITIONS", 0)
    monkeypatch.setattr(_backend, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setitem(_backend._state, "threads", 2)


def _spies(monkeypatch):
    calls = spied(monkeypatch, _implicit, "forward")
    spied(monkeypatch, _implicit_grad_x, "grad_x", into=calls)
    spied(monkeypatch, _implicit_grad_w, "grad_w", into=calls)
    spied(monkeypatch, bk, "_gemm_grad_w", "gemm_grad_x", into=calls)
    return calls


def _run(x, w, b, stride, padding, groups=1, method="auto"):
    """Forward and backward through autograd with a seeded upstream gradient: ``(y, gx, gw, gb, up)``."""
    tx, tw, tb = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    y = CONV[w.ndim - 2](tx, tw, tb, stride=stride, padding=padding, groups=groups, method=method)
    up = np.random.default_rng(7).standard_normal(y.shape).astype(np.float32)
    y.backward(up)
    return y.data, tx.grad, tw.grad, tb.grad, up


def _steps(stride, n):
    return tuple(stride) if isinstance(stride, tuple) else (stride,) * n


def _check_against_reference(x, w, b, stride, padding, groups, got):
    y, gx, gw, gb, up = got
    n = w.ndim - 2
    s, pads, d = _steps(stride, n), ((padding, padding),) * n, (1,) * n
    x64, w64, up64 = x.astype(np.float64), w.astype(np.float64), up.astype(np.float64)
    ref = _naive.naive_conv(x64, w64, b.astype(np.float64), s, pads, d, groups)
    rx, rw = _naive.naive_conv_backward(up64, x64, w64, s, pads, d, groups)[:2]
    rb = up64.sum(axis=(0, *range(2, 2 + n)))
    for value, want in ((y, ref), (gx, rx), (gw, rw), (gb, rb)):
        value = np.asarray(value)
        assert value.dtype == np.float32 and value.shape == want.shape
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


TAKEN = [
    # x shape, weight shape, stride, padding, groups
    ((2, 8, 16, 16), (64, 8, 3, 3), 2, 1, 1),  # the rule's least filters
    ((3, 15, 11, 13), (96, 15, 3, 3), 2, 1, 1),  # 15 channels (the most), odd sizes
    ((2, 8, 17, 17), (64, 8, 5, 5), 2, 2, 1),  # 5x5
    ((2, 9, 16, 20), (80, 9, 3, 3), 3, 0, 1),  # stride 3, no padding
    ((2, 16, 12, 12), (128, 8, 3, 3), 2, 1, 2),  # two groups of 8 channels and 64 filters
    ((2, 8, 10, 16), (64, 8, 3, 3), (1, 2), 1, 1),  # strided along the last axis only
    ((4, 8, 64), (64, 8, 5), 2, 2, 1),  # 1-d
    ((2, 8, 8, 8, 8), (64, 8, 3, 3, 3), 2, 1, 1),  # 3-d
]


@pytest.mark.parametrize("xs, ws, stride, padding, groups", TAKEN, ids=str)
def test_strided_few_channel_layers_take_the_gemm_gradients(small_layers_auto, monkeypatch, xs, ws, stride,
                                                            padding, groups):
    """The forward once on the implicit kernels, both gradients by the GEMM path's products and
    none by the implicit ones; every value against the loop reference."""
    g = np.random.default_rng(sum(xs) + sum(ws))
    x = g.standard_normal(xs).astype(np.float32)
    w = g.standard_normal(ws).astype(np.float32)
    b = g.standard_normal(ws[0]).astype(np.float32)
    n = len(ws) - 2
    pads = ((padding, padding),) * n
    assert ck.choose_method(ck._with_pads(xs, pads), ws, groups, _steps(stride, n), np.float32, (1,) * n,
                            pads) == "implicit"
    calls = _spies(monkeypatch)
    got = _run(x, w, b, stride, padding, groups)
    assert calls == {"forward": 1, "grad_x": 0, "grad_w": 0, "_gemm_grad_w": 1, "gemm_grad_x": 1}
    _check_against_reference(x, w, b, stride, padding, groups, got)


KEPT = [
    ((2, 8, 16, 16), (32, 8, 3, 3), 2, 1),  # 32 filters: too few
    ((2, 16, 16, 16), (64, 16, 3, 3), 2, 1),  # 16 channels: a whole register block
    ((2, 3, 16, 16), (64, 3, 3, 3), 2, 1),  # 3 channels: the input gradient the GEMM path's already
    ((2, 4, 16, 16), (32, 4, 3, 3), 2, 1),  # 4 channels and 32 filters: the input gradient implicit
    ((2, 8, 10, 10), (64, 8, 3, 3), 1, 1),  # stride 1
    ((2, 8, 12, 10), (64, 8, 3, 3), (2, 1), 1),  # a unit stride along the last axis
]


@pytest.mark.parametrize("xs, ws, stride, padding", KEPT, ids=str)
def test_other_layers_keep_the_implicit_gradients(small_layers_auto, monkeypatch, xs, ws, stride, padding):
    """Just outside the rule (filters, channels, stride), the gradients stay as before: the
    implicit kernels', the input gradient by the GEMM path's products where the channels are
    too few for the implicit kernels."""
    g = np.random.default_rng(sum(xs) + sum(ws) + 1)
    x = g.standard_normal(xs).astype(np.float32)
    w = g.standard_normal(ws).astype(np.float32)
    b = g.standard_normal(ws[0]).astype(np.float32)
    calls = _spies(monkeypatch)
    monkeypatch.setattr(ck, "_blocked_forward_pays", lambda *a: False)  # (stride 1: the implicit forward itself)
    got = _run(x, w, b, stride, padding)
    few = ws[1] < _implicit.GRAD_X_MIN_LANES
    assert calls == {"forward": 1, "grad_x": int(not few), "grad_w": 1, "_gemm_grad_w": 0, "gemm_grad_x": int(few)}
    _check_against_reference(x, w, b, stride, padding, 1, got)


def test_implicit_by_name_keeps_its_own_gradients(small_layers_auto, monkeypatch):
    """``method='implicit'`` asked for by name runs the implicit gradients, as asked, and gives
    the values that 'auto' gives by the GEMM path (to rounding)."""
    g = np.random.default_rng(11)
    x = g.standard_normal((2, 8, 16, 16)).astype(np.float32)
    w = g.standard_normal((64, 8, 3, 3)).astype(np.float32)
    b = g.standard_normal(64).astype(np.float32)
    calls = _spies(monkeypatch)
    named = _run(x, w, b, 2, 1, method="implicit")
    assert calls == {"forward": 1, "grad_x": 1, "grad_w": 1, "_gemm_grad_w": 0, "gemm_grad_x": 0}
    auto = _run(x, w, b, 2, 1)
    np.testing.assert_array_equal(named[0], auto[0])  # (the same forward)
    for a, c in zip(named[1:4], auto[1:4], strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5 * np.abs(c).max())


def test_a_forward_without_gradients_runs_as_before(small_layers_auto, monkeypatch):
    """Without a backward the rule changes nothing: the implicit forward, nothing kept."""
    g = np.random.default_rng(12)
    x = g.standard_normal((2, 8, 16, 16)).astype(np.float32)
    w = g.standard_normal((64, 8, 3, 3)).astype(np.float32)
    calls = _spies(monkeypatch)
    y = F.conv2d(x, w, stride=2, padding=1)
    assert calls["forward"] == 1
    ref = _naive.naive_conv(x.astype(np.float64), w.astype(np.float64), None, (2, 2), ((1, 1), (1, 1)), (1, 1), 1)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("ws, groups, stride, taken", [
    ((64, 15, 3, 3), 1, (2, 2), True), ((64, 16, 3, 3), 1, (2, 2), False),  # channels: < 16
    ((64, 4, 3, 3), 1, (2, 2), True), ((64, 3, 3, 3), 1, (2, 2), False),  # and >= GRAD_X_MIN_LANES
    ((63, 8, 3, 3), 1, (2, 2), False), ((128, 8, 3, 3), 2, (2, 2), True),  # filters per group: >= 64
    ((128, 8, 3, 3), 4, (2, 2), False),  # 32 filters a group
    ((64, 8, 3, 3), 1, (1, 2), True), ((64, 8, 3, 3), 1, (2, 1), False),  # a stride above 1 on the last axis
    ((64, 8, 3, 3), 1, (1, 1), False), ((64, 8, 5), 1, (2,), True), ((64, 8, 3, 3, 3), 1, (1, 1, 2), True),
    ((64, 8, 3, 3, 3), 1, (2, 2, 1), False),
])
def test_the_rule_at_its_edges(ws, groups, stride, taken):
    assert ck._gemm_backward_pays(ws, groups, stride) is taken
