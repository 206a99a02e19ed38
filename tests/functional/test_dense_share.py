"""The share of a convolution's products that read the input rather than its zero padding
(``_conv_kernels.dense_share``), against a count made by sliding windows over a mask, and the
automatic rule that sends layers reading mostly padding to the implicit kernels, which skip it."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _conv_kernels, _fft_conv
from cnnlab.functional._columns import _with_pads
from tests.functional.spies import spied


def _counted_share(spatial, kernel, stride, dilation, pads):
    # (a mask of ones inside the input, zeros in its padding; every window's taps read off it)
    mask = np.pad(np.ones(spatial), pads)
    extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    views = np.lib.stride_tricks.sliding_window_view(mask, extents)
    d = len(spatial)
    index = tuple(slice(None, None, s) for s in stride) + tuple(slice(None, None, dl) for dl in dilation)
    taps = views[index]
    out_positions = int(np.prod(taps.shape[:d]))
    return float(taps.sum()) / (out_positions * int(np.prod(kernel)))


@pytest.mark.parametrize("spatial, kernel, stride, dilation, pads", [
    ((7, 7, 7), (7, 7, 7), (2, 2, 2), (1, 1, 1), ((3, 3),) * 3),
    ((7, 7), (5, 5), (1, 1), (1, 1), ((2, 2),) * 2),
    ((5, 9), (3, 5), (1, 2), (2, 1), ((2, 1), (0, 4))),  # asymmetric, strided, dilated
    ((12,), (3,), (3,), (1,), ((1, 1),)),
    ((6,), (4,), (1,), (2,), ((5, 5),)),  # padding past the kernel's reach
    ((10, 10), (3, 3), (1, 1), (1, 1), ((0, 0),) * 2),  # no padding: every product reads the input
])
def test_dense_share_counts_the_products_inside_the_input(spatial, kernel, stride, dilation, pads):
    padded = [n + lo + hi for n, (lo, hi) in zip(spatial, pads, strict=True)]
    got = _conv_kernels.dense_share(padded, kernel, stride, dilation, pads)
    assert got == pytest.approx(_counted_share(spatial, kernel, stride, dilation, pads), rel=1e-12)
    # (kept per geometry: lists, tuples and numpy integers give the same value, and so does the
    # same geometry asked again)
    as_lists = [list(map(np.int64, a)) for a in (padded, kernel, stride, dilation)] + [[list(p) for p in pads]]
    assert _conv_kernels.dense_share(*as_lists) == got
    assert _conv_kernels.dense_share(tuple(padded), kernel, stride, dilation, pads) == got


@pytest.fixture
def compiled():
    previous = _backend.set_backend("numba")
    yield
    _backend.set_backend(previous)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("x_shape, w_shape, stride, pad, expected", [
    ((64, 3, 7, 7, 7), (512, 3, 7, 7, 7), 2, 3, "implicit"),  # share 0.36, 4,096 positions, 512 filters
    ((64, 3, 7, 7, 7), (512, 3, 7, 7, 7), 2, 0, "gemm"),  # no padding: 64 positions
    ((1, 128, 7, 7, 7), (128, 128, 5, 5, 5), 1, 2, "implicit"),  # 0.57, 343 positions
    ((1, 128, 7, 7, 7), (128, 128, 5, 5, 5), 1, 1, "gemm"),  # 0.74
    ((16, 128, 5, 5), (256, 128, 5, 5), 1, 2, "implicit"),  # 0.58, 400 positions
    ((8, 512, 7, 7), (512, 512, 5, 5), 1, 2, "gemm"),  # 0.69
    ((1, 512, 4, 4, 4), (512, 512, 3, 3, 3), 1, 1, "gemm"),  # 0.58, but 64 positions
])
def test_rule_takes_the_implicit_kernels_where_most_products_read_padding(
        compiled, monkeypatch, x_shape, w_shape, stride, pad, expected):
    monkeypatch.setattr(_fft_conv, "chosen", lambda *args: False)
    d = len(x_shape) - 2
    pads = ((pad, pad),) * d
    got = _conv_kernels.choose_method(_with_pads(x_shape, pads), w_shape, 1, (stride,) * d, np.float32,
                                      (1,) * d, pads)
    assert got == expected


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
def test_a_mostly_padded_layer_runs_the_implicit_kernels_and_agrees_with_the_loops(monkeypatch):
    # (2 x 27 positions of a 3x3x3 input padded by 1: share (7/9)^3 = 0.47)
    # (small enough for the loop reference; the rule's thresholds lowered so that it applies)
    from cnnlab.functional import _implicit, _naive

    monkeypatch.setattr(_implicit, "MIN_FLOPS", 0.0)
    monkeypatch.setattr(_implicit, "MIN_POSITIONS_FEW_FILTERS", 8)
    monkeypatch.setattr(_fft_conv, "chosen", lambda *args: False)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 3, 3, 3)).astype(np.float32)
    w = rng.standard_normal((72, 3, 3, 3, 3)).astype(np.float32)  # (more than FEW_FILTERS)
    calls = spied(monkeypatch, _implicit, "forward")
    previous = _backend.set_backend("numba")
    try:
        got = F.conv3d(x, w, None, 1, 1)
    finally:
        _backend.set_backend(previous)
    assert calls["forward"] == 1, "the implicit forward did not run"
    want = _naive.naive_conv(x.astype(np.float64), w.astype(np.float64), None, (1, 1, 1), ((1, 1),) * 3,
                             (1, 1, 1), 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
