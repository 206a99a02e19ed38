"""The register-blocked forward of the direct method (``_numba_blocked.forward``: 6 filters by 16
positions of an output row) against the loop reference, for the shapes it splits unevenly
(filters past a block of 6, rows that are no multiple of 16), kernel sizes, dilations and row
strides; through ``F.conv2d`` with padding; exact small-integer results; and the problems it
leaves to the other direct kernels."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _naive
from tests.functional.spies import spied

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")


@pytest.fixture
def two_threads(monkeypatch):
    """Two threads with the parallel threshold at 0, so that every job split is reached."""
    monkeypatch.setattr(_backend, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setitem(_backend._state, "threads", 2)


CASES = [
    # x shape (padded), weight shape, row stride, dilation
    ((2, 3, 9, 20), (7, 3, 3, 3), 1, (1, 1)),  # 7 filters: a block of 6 and one; rows of 18
    ((1, 1, 5, 16), (6, 1, 1, 1), 1, (1, 1)),  # rows of exactly 16, one block of filters
    ((3, 2, 12, 37), (13, 2, 3, 5), 2, (1, 2)),  # 13 filters, strided rows, dilated columns
    ((2, 3, 10, 33), (1, 3, 2, 2), 3, (2, 1)),  # one filter, rows of 32
    ((2, 4, 8, 52), (12, 4, 7, 7), 1, (1, 1)),  # 4 channels, a 7x7 kernel, rows of 46
    ((5, 1, 6, 17), (5, 1, 2, 1), 1, (3, 1)),  # rows of 17: the last 16 overlap the first
    # the last block of filters with 2, 3 and 4 of its 6
    ((2, 2, 4, 16), (8, 2, 1, 1), 1, (1, 1)), ((2, 2, 6, 18), (9, 2, 3, 3), 1, (1, 1)),
    ((1, 3, 5, 20), (10, 3, 2, 3), 2, (1, 1)),
]


@pytest.mark.parametrize("xs, ws, sh, dilation", CASES)
def test_matches_the_loop_reference(two_threads, xs, ws, sh, dilation):
    from cnnlab.functional import _numba_blocked as nb

    g = np.random.default_rng(sum(xs) + sum(ws))
    xp = g.uniform(-2, 2, xs).astype(np.float32)
    w = g.uniform(-2, 2, ws).astype(np.float32)
    ref = _naive.naive_conv(xp.astype(np.float64), w.astype(np.float64), None, (sh, 1), ((0, 0), (0, 0)),
                            dilation, 1)
    out = ref.shape[2:]
    assert nb.forward_applies(xp, w, (sh, 1), 1, out)
    y = nb.forward(xp, w, (sh, 1), dilation, out)
    assert y.dtype == np.float32 and y.shape == ref.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("padding", [0, 1, (2, 3)])
def test_conv2d_takes_it_and_matches(two_threads, monkeypatch, padding):
    """``F.conv2d`` of a first layer (3 channels), 'auto' and 'direct': the blocked forward runs
    (on the padded copy) and its values are the reference's; small integers come out exact."""
    from cnnlab.functional import _numba_blocked as nb

    g = np.random.default_rng(5)
    x = g.integers(-3, 4, (3, 3, 18, 21)).astype(np.float32)
    w = g.integers(-2, 3, (8, 3, 3, 3)).astype(np.float32)
    calls = spied(monkeypatch, nb, "forward")
    pads = ((padding, padding),) * 2 if isinstance(padding, int) else tuple((p, p) for p in padding)
    ref = _naive.naive_conv(x.astype(np.int64), w.astype(np.int64), None, (1, 1), pads, (1, 1), 1)
    for method in ("auto", "direct"):
        y = F.conv2d(x, w, padding=padding, method=method)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, ref)  # integers below 2**24: every sum exact
    assert calls["forward"] == 2


@pytest.mark.parametrize("case", ["float64", "groups", "width stride", "short rows"])
def test_other_problems_take_the_direct_loops(two_threads, monkeypatch, case):
    from cnnlab.functional import _numba_blocked as nb

    g = np.random.default_rng(3)
    x = g.standard_normal((2, 2, 9, 24)).astype(np.float64 if case == "float64" else np.float32)
    w = g.standard_normal((4, 1 if case == "groups" else 2, 3, 3)).astype(x.dtype)
    groups, stride = (2 if case == "groups" else 1), ((1, 2) if case == "width stride" else (1, 1))
    if case == "short rows":
        x = np.ascontiguousarray(x[..., :17])  # rows of 15 outputs
    calls = spied(monkeypatch, nb, "forward")
    y = F.conv2d(x, w, method="direct", groups=groups, stride=stride)
    ref = _naive.naive_conv(x.astype(np.float64), w.astype(np.float64), None, stride, ((0, 0), (0, 0)), (1, 1),
                            groups)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert calls["forward"] == 0


# layers the automatic rule gives the implicit kernels, whose forward the blocks above take:
# (x shape, weight shape, padding, whether the blocks run)
IMPLICIT_LAYERS = [
    ((2, 8, 32, 32), (32, 8, 3, 3), 1, True),  # 8 channels, rows of 32
    ((1, 12, 20, 64), (16, 12, 5, 5), 2, True),  # 12 channels, 5x5, rows of 64
    ((2, 13, 32, 32), (32, 13, 3, 3), 1, False),  # 13 channels
    ((2, 8, 28, 28), (32, 8, 3, 3), 1, False),  # rows of 28: no whole vectors
    ((2, 8, 16, 16), (32, 8, 3, 3), 1, False),  # rows of 16
]


@pytest.mark.parametrize("xs, ws, padding, blocks", IMPLICIT_LAYERS, ids=str)
def test_few_channel_layers_take_the_blocked_forward_and_the_implicit_backward(
        two_threads, monkeypatch, xs, ws, padding, blocks):
    """'auto' on a float32 layer of few channels with rows of whole vectors: the forward by the
    blocks (the bias added), the gradients by the implicit kernels from the padded copy; each
    against the float64 loop reference."""
    from cnnlab import Tensor
    from cnnlab.functional import _conv_kernels, _implicit, _implicit_grad_w
    from cnnlab.functional import _numba_blocked as nb

    monkeypatch.setattr(_implicit, "MIN_FLOPS", 0.0)  # (small layers stand for large ones)
    monkeypatch.setattr(_implicit, "MIN_POSITIONS", 0)
    g = np.random.default_rng(sum(xs) + sum(ws))
    x = g.standard_normal(xs).astype(np.float32)
    w = g.standard_normal(ws).astype(np.float32)
    b = g.standard_normal(ws[0]).astype(np.float32)
    pads = ((padding, padding),) * 2
    assert _conv_kernels.choose_method(_conv_kernels._with_pads(xs, pads), ws, 1, (1, 1), np.float32, (1, 1),
                                       pads) == "implicit"
    calls = spied(monkeypatch, nb, "forward")
    implicit = spied(monkeypatch, _implicit, "forward", into=spied(monkeypatch, _implicit_grad_w, "grad_w"))
    tx, tw, tb = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    y = F.conv2d(tx, tw, tb, padding=padding)
    assert (calls["forward"], implicit["forward"]) == ((1, 0) if blocks else (0, 1))
    up = g.standard_normal(y.shape).astype(np.float32)
    y.backward(up)
    assert implicit["grad_w"] == 1
    x64, w64, up64 = x.astype(np.float64), w.astype(np.float64), up.astype(np.float64)
    ref = _naive.naive_conv(x64, w64, b.astype(np.float64), (1, 1), pads, (1, 1), 1)
    rx, rw = _naive.naive_conv_backward(up64, x64, w64, (1, 1), pads, (1, 1), 1)[:2]
    for got, want in ((y.data, ref), (tx.grad, rx), (tw.grad, rw), (tb.grad, up64.sum(axis=(0, 2, 3)))):
        got = np.asarray(got)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_the_blocked_forward_is_taken_under_auto_only(two_threads, monkeypatch):
    """``method='implicit'`` asked for by name runs the implicit forward, as asked."""
    from cnnlab.functional import _implicit
    from cnnlab.functional import _numba_blocked as nb

    calls = spied(monkeypatch, nb, "forward")
    implicit = spied(monkeypatch, _implicit, "forward")
    g = np.random.default_rng(9)
    x = g.standard_normal((2, 8, 32, 32)).astype(np.float32)
    w = g.standard_normal((32, 8, 3, 3)).astype(np.float32)
    y = F.conv2d(x, w, padding=1, method="implicit")
    assert (calls["forward"], implicit["forward"]) == (0, 1)
    ref = _naive.naive_conv(x.astype(np.float64), w.astype(np.float64), None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
