"""The blocked backward kernels of first layers (``functional/_numba_blocked.py``) against the loop
reference: both gradients, for the shapes, paddings, dilations and dtypes they take, and the
fall-back to the other kernels where a non-finite operand would meet their zeros."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _conv_backward_kernels, _conv_kernels, _naive
from tests.functional.spies import spied

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

CASES = [
    # x shape, weight shape, padding, dilation
    ((3, 3, 8, 7), (5, 3, 3, 3), 1, 1),  # 5 filters: a block and a part of one
    ((2, 2, 9, 8), (4, 2, 3, 5), ((2, 0), (1, 3)), (2, 1)),  # asymmetric padding, dilated
    ((5, 4, 6, 6), (9, 4, 2, 2), 0, 1),  # 4 input channels (a whole block), an even kernel
    ((1, 3, 7, 7), (8, 3, 3, 3), (4, 5), 1),  # padding past the kernel's reach; one sample
    ((5, 3, 6, 6), (2, 3, 3, 3), 1, 1),  # one block of filters, the batch in several slices
    ((2, 3, 5, 6), (2, 3, 1, 1), 0, 1),  # 1x1
    ((3, 2, 17), (7, 2, 5), 2, 2),  # 1-d
    ((2, 1, 12, 13), (6, 1, 3, 7), 2, 1),  # 7 taps a row: float32's groups of 3 taps from 0, 3 and 4
]


def _reference(g, x, w, padding, dilation):
    n = w.ndim - 2
    from cnnlab.functional._args import ntuple, padding_pairs

    pads = padding_pairs("", padding, n)
    return _naive.naive_conv_backward(g, x, w, (1,) * n, pads, ntuple("", "", dilation, n, minimum=1))[:2]


def _spied(monkeypatch):
    """Counts of the blocked kernels' calls."""
    from cnnlab.functional import _numba_blocked as nb

    return spied(monkeypatch, nb, "grad_w", "grad_x")


def _backward(g, x, w, padding, dilation):
    conv = F.conv2d if w.ndim == 4 else F.conv1d
    kw = {"padding": padding, "dilation": dilation, "method": "direct"}
    assert conv(x, w, **kw).shape == g.shape
    previous = _backend.set_backend("numba")  # past the small-work threshold
    try:
        return F.conv_backward(g, x, w, **kw)[:2]
    finally:
        _backend.set_backend(previous)


@pytest.mark.parametrize(("xs", "ws", "padding", "dilation"), CASES)
def test_blocked_gradients_match_the_loop_reference(xs, ws, padding, dilation, monkeypatch):
    calls = _spied(monkeypatch)
    rng = np.random.default_rng(sum(xs) + sum(ws))
    conv = F.conv2d if len(ws) == 4 else F.conv1d
    shape = conv(np.zeros(xs), np.zeros(ws), padding=padding, dilation=dilation).shape
    x, w, g = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(shape)
    xi, wi, gi = rng.integers(-9, 9, xs), rng.integers(-9, 9, ws), rng.integers(-9, 9, shape)

    gx, gw = _backward(g, x, w, padding, dilation)
    ref_x, ref_w = _reference(g, x, w, padding, dilation)
    np.testing.assert_allclose(gx, ref_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, ref_w, rtol=1e-12, atol=1e-12)

    gx32, gw32 = _backward(*(a.astype(np.float32) for a in (g, x, w)), padding, dilation)
    assert gx32.dtype == gw32.dtype == np.float32
    np.testing.assert_allclose(gx32, ref_x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw32, ref_w, rtol=1e-4, atol=1e-4)

    gxi, gwi = _backward(gi, xi, wi, padding, dilation)  # integers: exact
    ref_xi, ref_wi = _reference(gi, xi, wi, padding, dilation)
    assert gxi.dtype == gwi.dtype == np.int64
    np.testing.assert_array_equal(gxi, ref_xi)
    np.testing.assert_array_equal(gwi, ref_wi)

    # the blocked kernels ran: the weight gradient always, the input gradient from 2 input channels
    assert calls["grad_w"] == 3
    assert calls["grad_x"] == (3 if ws[1] >= _conv_backward_kernels.BLOCKED_MIN_CHANNELS_X else 0)


def test_one_input_channel_takes_the_direct_input_gradient(monkeypatch):
    calls = _spied(monkeypatch)
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 1, 10, 9)), rng.standard_normal((6, 1, 5, 5))
    g = rng.standard_normal((2, 6, 10, 9))
    gx, gw = _backward(g, x, w, 2, 1)
    ref_x, ref_w = _reference(g, x, w, 2, 1)
    np.testing.assert_allclose(gx, ref_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, ref_w, rtol=1e-12, atol=1e-12)
    assert calls == {"grad_w": 1, "grad_x": 0}


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's inf * 0
def test_non_finite_operands_take_the_other_kernels(monkeypatch):
    # an infinite input would meet the zeros past each row's end in the weight gradient's buffer,
    # infinite weights the zeros around the upstream gradient in the input gradient's: each
    # gradient then runs elsewhere, and both keep the reference's infinities and NaNs
    calls = _spied(monkeypatch)
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((5, 3, 3, 3))
    g = rng.standard_normal((2, 5, 7, 8))
    xinf, winf = x.copy(), w.copy()
    xinf[0, 1, 3, -1] = np.inf
    winf[4, 2, 0, 2] = -np.inf
    for xs, ws, expected in ((xinf, w, {"grad_w": 0, "grad_x": 1}), (x, winf, {"grad_w": 1, "grad_x": 0})):
        calls.update(grad_w=0, grad_x=0)
        got = _backward(g, xs, ws, 1, 1)
        for a, b in zip(got, _reference(g, xs, ws, 1, 1), strict=True):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        assert calls == expected


def test_the_automatic_rule_gives_first_layers_the_blocked_gradients(monkeypatch):
    # with 'auto' a first layer's forward is direct and its backward blocked (when stride 1 and
    # ungrouped); the gradients of a layer whose input needs none skip the input gradient
    calls = _spied(monkeypatch)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((4, 3, 12, 12)), rng.standard_normal((16, 3, 3, 3))
    previous = _backend.set_backend("numba")
    try:
        y, saved = _conv_kernels.forward(x, w, (1, 1), (1, 1), 1, save=True, pads=((1, 1), (1, 1)))
        g = rng.standard_normal(y.shape)
        gx, gw = _conv_backward_kernels.backward(g, saved, (False, True))
    finally:
        _backend.set_backend(previous)
    assert (saved.method, saved.backward) == ("direct", "direct")
    assert gx is None and calls == {"grad_w": 1, "grad_x": 0}
    np.testing.assert_allclose(gw, _reference(g, x, w, 1, 1)[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_long_one_d_first_layer_runs_the_direct_forward_and_the_blocked_gradients(dtype, monkeypatch):
    # 'auto' on a 1-d first layer of at least DIRECT_MIN_LENGTH_1D outputs: the direct forward, the
    # blocked gradients; values and both gradients (and the bias's) against the loop reference
    from cnnlab import Tensor
    from cnnlab.functional import _numba_direct as nd

    calls = _spied(monkeypatch)
    spied(monkeypatch, nd, "direct_forward", into=calls)
    rng = np.random.default_rng(21)
    length = _conv_kernels.DIRECT_MIN_LENGTH_1D + 3
    x, w, b = rng.standard_normal((6, 3, length)), rng.standard_normal((20, 3, 5)), rng.standard_normal(20)
    x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    assert _conv_kernels.choose_method((6, 3, length + 4), w.shape, 1, (1,), dtype, (1,)) == "direct"
    previous = _backend.set_backend("numba")
    try:
        xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.conv1d(xt, wt, bt, padding=2)
        g = rng.standard_normal(y.shape).astype(dtype)
        y.backward(g)
    finally:
        _backend.set_backend(previous)
    assert calls == {"grad_w": 1, "grad_x": 1, "direct_forward": 1}
    x64, w64, g64 = x.astype(np.float64), w.astype(np.float64), g.astype(np.float64)
    ref_y = _naive.naive_conv(x64, w64, b.astype(np.float64), (1,), ((2, 2),), (1,), 1)
    ref_x, ref_w = _naive.naive_conv_backward(g64, x64, w64, (1,), ((2, 2),), (1,), 1)[:2]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in ((y.data, ref_y), (xt.grad, ref_x), (wt.grad, ref_w), (bt.grad, g64.sum(axis=(0, 2)))):
        got = np.asarray(got)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_the_tensor_route_takes_the_blocked_kernels(padding_mode, monkeypatch):
    # through autograd: a small zero-padded input is padded again for the backward (REPAD_BYTES),
    # a reflect-padded one reaches the kernels already padded and its gradient is folded back
    from cnnlab import Tensor

    calls = _spied(monkeypatch)
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((3, 3, 9, 10)), rng.standard_normal((6, 3, 3, 3))
    previous = _backend.set_backend("numba")
    try:
        xt, wt = Tensor(x.copy(), requires_grad=True), Tensor(w.copy(), requires_grad=True)
        y = F.conv2d(xt, wt, padding=1, padding_mode=padding_mode)
        g = rng.standard_normal(y.shape)
        y.backward(g)
    finally:
        _backend.set_backend(previous)
    assert calls == {"grad_w": 1, "grad_x": 1}
    expected = _naive.naive_conv_backward(g, x, w, (1, 1), ((1, 1), (1, 1)), (1, 1), 1, padding_mode)
    np.testing.assert_allclose(xt.grad, expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.grad, expected[1], rtol=1e-12, atol=1e-12)


def test_vector_fma_and_lane_sum():
    """vfma (lane by lane, one rounding: the float64 product and sum rounded once) and vsum (the
    eight lanes added in the documented order, ((0+1)+(2+3))+((4+5)+(6+7))), against NumPy."""
    from numba import njit

    from cnnlab.functional._numba_simd import vfma, vload, vstore, vsum

    @njit
    def both(x, out, scratch):
        v = vfma(vload(x, 0), vload(x, 8), vload(x, 16))
        vstore(out, 0, v)
        return vsum(v, scratch)

    x = np.random.default_rng(3).uniform(-2, 2, 24).astype(np.float32)
    x[:8] *= np.float32(1e7)  # (sums whose order shows in their last bits)
    out, scratch = np.full(8, np.nan, np.float32), np.full(8, np.nan, np.float32)
    total = both(x, out, scratch)
    want = (x[:8].astype(np.float64) + x[8:16].astype(np.float64) * x[16:]).astype(np.float32)
    np.testing.assert_array_equal(out, want)
    f = want.tolist()
    low, high = np.float32(np.float32(f[0]) + np.float32(f[1])) + np.float32(np.float32(f[2]) + np.float32(f[3])), \
        np.float32(np.float32(f[4]) + np.float32(f[5])) + np.float32(np.float32(f[6]) + np.float32(f[7]))
    assert total == np.float32(low + high) and np.float32(total).dtype == np.float32
