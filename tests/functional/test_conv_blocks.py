"""The blocked GEMM path of large conv layers: the forward runs im2col and the matrix product on
blocks of samples, and the backward rebuilds each block's columns instead of keeping the whole
matrix.  Forcing tiny blocks (one or a few samples) must give the loop reference's output and
gradients for every geometry, dtype and group count."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _backend, _blas, _conv_backward_kernels, _conv_kernels, _naive, _pointwise

CASES = [
    # x shape, weight shape, stride, padding, dilation, groups
    ((5, 3, 7, 6), (4, 3, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((4, 4, 9, 8), (6, 2, 3, 2), (2, 1), ((0, 0), (1, 1)), (2, 1), 2),
    ((3, 6, 5, 5), (4, 6, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),  # 1x1: its own path, no blocks
    ((5, 2, 11), (3, 2, 3), (2,), ((1, 1),), (1,), 1),  # 1-d
    ((3, 2, 4, 5, 4), (3, 2, 2, 3, 2), (1, 1, 1), ((1, 1), (0, 0), (1, 1)), (1, 1, 1), 1),  # 3-d
]


@pytest.fixture(params=[8, 20_000], ids=["one-sample-blocks", "few-sample-blocks"])
def tiny_blocks(request, monkeypatch):
    monkeypatch.setattr(_conv_kernels, "BLOCK_BYTES", request.param)
    return request.param


def _conv(x, w, **kw):
    return {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[np.ndim(x)](x, w, **kw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}")
def test_blocked_gemm_matches_loop_reference(tiny_blocks, case, dtype):
    xs, ws, stride, pads, dilation, groups = case
    rng = np.random.default_rng(11)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (xs, ws, ws[:1]))
    kw = dict(stride=stride, padding=tuple(lo for lo, _ in pads), dilation=dilation, groups=groups)
    y = _conv(x, w, bias=b, method="gemm", **kw)
    assert y.dtype == dtype
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    want = _naive.naive_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride, pads,
                             dilation, groups)
    np.testing.assert_allclose(y, want, **tol)
    g = rng.standard_normal(y.shape).astype(dtype)
    ref = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), stride,
                                     pads, dilation, groups)
    xt, wt, bt = Tensor(x.copy(), requires_grad=True), Tensor(w.copy(), requires_grad=True), Tensor(
        b.copy(), requires_grad=True)
    _conv(xt, wt, bias=bt, method="gemm", **kw).backward(g)
    for got, expected in zip((xt.grad, wt.grad), ref[:2], strict=True):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, **tol)
    plain = F.conv_backward(g, x, w, b, method="gemm", **kw)
    for got, expected in zip(plain[:2], ref[:2], strict=True):
        np.testing.assert_allclose(got, expected, **tol)


def test_blocked_gemm_keeps_integers_exact(tiny_blocks):
    rng = np.random.default_rng(12)
    x = rng.integers(-1000, 1000, (4, 3, 6, 6))
    w = rng.integers(-1000, 1000, (2, 3, 3, 3))
    y = F.conv2d(x, w, padding=1, method="gemm")
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, _naive.naive_conv(x, w, None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1))


def test_blocked_gemm_skips_the_unwanted_input_gradient(tiny_blocks):
    rng = np.random.default_rng(13)
    x = Tensor(rng.standard_normal((4, 1, 6, 6)))
    w = Tensor(rng.standard_normal((3, 1, 3, 3)), requires_grad=True)
    F.conv2d(x, w, method="gemm").sum().backward()
    assert x.grad is None
    ref = _naive.naive_conv_backward(np.ones((4, 3, 4, 4)), x.data, w.data, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    np.testing.assert_allclose(w.grad, ref[1], rtol=1e-10)


@pytest.mark.parametrize("as_is_bytes", [0, 1 << 40], ids=["as-it-stands", "transposed"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}")
def test_gemm_weight_gradient_either_layout_matches_loop_reference(monkeypatch, case, dtype, as_is_bytes):
    """The weight gradient ``G @ cols.T``, multiplied as it stands or as ``(cols @ G.T).T`` (the
    threshold :data:`GRAD_W_AS_IS_BYTES` forced either way), blocked or whole: the loop
    reference's values (integers exactly), in the input's dtype."""
    monkeypatch.setattr(_conv_backward_kernels, "GRAD_W_AS_IS_BYTES", as_is_bytes)
    xs, ws, stride, pads, dilation, groups = case
    rng = np.random.default_rng(14)
    x, w = rng.integers(-9, 9, xs).astype(dtype), rng.integers(-9, 9, ws).astype(dtype)
    if dtype != np.int64:
        x, w = x + rng.random(xs).astype(dtype), w + rng.random(ws).astype(dtype)
    kw = dict(stride=stride, padding=tuple(lo for lo, _ in pads), dilation=dilation, groups=groups)
    g = rng.integers(-9, 9, _conv(x, w, method="gemm", **kw).shape).astype(dtype)
    want = _naive.naive_conv_backward(g.astype(np.float64), x.astype(np.float64), w.astype(np.float64), stride,
                                      pads, dilation, groups)[1]
    for block_bytes in (8, 1 << 30):
        monkeypatch.setattr(_conv_kernels, "BLOCK_BYTES", block_bytes)
        got = F.conv_backward(g, x, w, method="gemm", **kw)[1]
        assert got.dtype == dtype and got.shape == w.shape and got.flags.c_contiguous
        if dtype == np.int64:
            np.testing.assert_array_equal(got, want.astype(np.int64))
        else:
            tol = 1e-4 if dtype == np.float32 else 1e-10
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_gemm_weight_gradient_of_a_megabyte_multiplies_as_it_stands(monkeypatch):
    """One group and a gradient of at least GRAD_W_AS_IS_BYTES: the BLAS gets ``G`` (filters by
    positions) first; a smaller gradient, or grouped layers, the columns first."""
    calls = []
    real = _blas.matmul

    def spy(a, b, out=None):
        calls.append(a.shape)
        return real(a, b, out=out)

    monkeypatch.setattr(_blas, "matmul", spy)
    rng = np.random.default_rng(15)
    for out_ch, groups, as_is in ((512, 1, True), (16, 1, False), (512, 2, False)):
        x = rng.standard_normal((2, 512, 4, 4)).astype(np.float32)
        w = rng.standard_normal((out_ch, 512 // groups, 3, 3)).astype(np.float32)
        calls.clear()
        F.conv_backward(np.ones((2, out_ch, 4, 4), np.float32), x, w, padding=1, groups=groups, method="gemm")
        g_first = (out_ch, 2 * 16)  # (G: filters by the batch's positions)
        cols_first = (512 * 9, 2 * 16) if groups == 1 else (groups, 512 // groups * 9, 2 * 16)
        assert (g_first in calls) == as_is and (cols_first in calls) == (not as_is)


@pytest.mark.parametrize("case", CASES[:2], ids=lambda c: f"{c[0]}x{c[1]}")
def test_blocked_and_whole_backward_agree_on_dtype(monkeypatch, case):
    """A float32 gradient into a float64 layer: the blocked backward gives the input gradient the
    dtype the one-block backward gives it (that of ``W.T @ G``)."""
    xs, ws, stride, pads, dilation, groups = case
    rng = np.random.default_rng(12)
    xp, w = rng.standard_normal(xs), rng.standard_normal(ws)
    results = []
    for block_bytes in (8, 1 << 30):
        monkeypatch.setattr(_conv_kernels, "BLOCK_BYTES", block_bytes)
        y, saved = _conv_kernels.forward(xp, w, stride, dilation, groups, method="gemm", save=True)
        assert (saved.cols is None) == (block_bytes == 8)
        results.append(_conv_backward_kernels.backward(np.ones(y.shape, np.float32), saved))
    (gx_blocks, gw_blocks), (gx_whole, gw_whole) = results
    assert gx_blocks.dtype == gx_whole.dtype and gw_blocks.dtype == gw_whole.dtype
    np.testing.assert_allclose(gx_blocks, gx_whole, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw_blocks, gw_whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2])
def test_pointwise_path_keeps_the_input_and_the_gradient_dtypes(groups, monkeypatch):
    """A 1x1 conv keeps the input itself for its backward (no column matrix, no copy) and, like
    the GEMM path, gives a float32 gradient into a float64 layer the dtype of ``W.T @ G``."""
    monkeypatch.setattr(_pointwise, "MIN_POSITIONS", 1)  # (the batched products at any size)
    rng = np.random.default_rng(14)
    x, w = rng.standard_normal((5, 4, 3, 6)), rng.standard_normal((6, 4 // groups, 1, 1))
    y, saved = _conv_kernels.forward(x, w, (1, 1), (1, 1), groups, method="gemm", save=True)
    assert saved.method == "pointwise" and saved.cols is None and saved.xp is x
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw = _conv_backward_kernels.backward(g, saved)
    assert gx.dtype == np.float64 and gw.dtype == np.float64
    ref = _naive.naive_conv_backward(g.astype(np.float64), x, w, (1, 1), ((0, 0), (0, 0)), (1, 1), groups)
    np.testing.assert_allclose(gx, ref[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, ref[1], rtol=1e-12, atol=1e-12)


def test_pointwise_weight_gradient_sums_every_chunk(monkeypatch):
    """The weight gradient of a 1x1 conv is summed over chunks of samples; with a chunk of one
    sample it must still add up every sample."""
    monkeypatch.setattr(_pointwise, "CHUNK_BYTES", 1)
    monkeypatch.setattr(_pointwise, "MIN_POSITIONS", 1)  # (the batched products at any size)
    rng = np.random.default_rng(15)
    x, w = rng.integers(-50, 50, (7, 3, 4, 4)), rng.integers(-50, 50, (2, 3, 1, 1))
    g = rng.integers(-50, 50, (7, 2, 4, 4))
    gx, gw, _ = F.conv_backward(g, x, w, method="gemm")
    ref = _naive.naive_conv_backward(g, x, w, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    np.testing.assert_array_equal(gw, ref[1])
    np.testing.assert_array_equal(gx, ref[0])


@pytest.mark.parametrize("groups", [1, 2])
def test_pointwise_weight_gradient_summed_by_the_blas_on_each_thread(groups, monkeypatch):
    """The weight gradient of a float 1x1 conv whose per-sample products are split between the
    threads (``_blas.summed``): integer values give the exact sums, and real values the loop
    reference's within rounding."""
    monkeypatch.setattr(_pointwise, "MIN_POSITIONS", 1)
    monkeypatch.setattr(_blas, "MIN_PRODUCT_FLOPS", 0.0)
    monkeypatch.setitem(_backend._state, "threads", 2)
    summed = []
    original = _blas.summed
    monkeypatch.setattr(_blas, "summed", lambda a, b: summed.append(original(a, b)) or summed[-1])
    rng = np.random.default_rng(16)
    x, w = rng.integers(-20, 20, (7, 4, 5, 5)), rng.integers(-20, 20, (6, 4 // groups, 1, 1))
    g = rng.integers(-20, 20, (7, 6, 5, 5))
    ref = _naive.naive_conv_backward(g, x, w, (1, 1), ((0, 0), (0, 0)), (1, 1), groups)
    for dtype in (np.float32, np.float64):
        gx, gw, _ = F.conv_backward(g.astype(dtype), x.astype(dtype), w.astype(dtype), groups=groups,
                                    method="gemm")
        assert summed[-1] is not None and gw.dtype == dtype
        np.testing.assert_array_equal(gw, ref[1])
        np.testing.assert_array_equal(gx, ref[0])
    xr, wr = rng.standard_normal((7, 4, 5, 5)), rng.standard_normal((6, 4 // groups, 1, 1))
    gr = rng.standard_normal((7, 6, 5, 5))
    ref = _naive.naive_conv_backward(gr, xr, wr, (1, 1), ((0, 0), (0, 0)), (1, 1), groups)
    gx, gw, _ = F.conv_backward(gr.astype(np.float32), xr.astype(np.float32), wr.astype(np.float32), groups=groups,
                                method="gemm")
    np.testing.assert_allclose(gw, ref[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["gemm", "direct"])
def test_small_padded_inputs_are_padded_again_in_the_backward_not_kept(method):
    # the saved context holds the unpadded input (no padded copy) for a small zero-padded layer,
    # and the gradients are those of the plain backward
    from cnnlab.functional import _conv

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    forward, backward = _conv.saving_pair("conv2d", 2)
    y, ctx = forward((True, True, False), x, w, None, 1, 1, 1, 1, "zeros", method)
    if ctx.kernel.cols is None:  # a layer whose columns are kept needs no input at all
        assert ctx.kernel.xp is None and ctx.x is not None and ctx.x.shape == x.shape
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, _ = backward(g, ctx, (True, True, False))
    ex, ew, _ = F.conv_backward(g, x, w, padding=1, method=method)
    np.testing.assert_allclose(gx, ex, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw, ew, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("xs,ws,groups,stride,expected", [
    ((3, 3, 8, 9), (16, 3, 3, 3), 1, (1, 1), "direct"),  # a first layer: the blocked kernels
    ((3, 3, 9, 9), (16, 3, 3, 3), 1, (2, 1), "gemm"),  # strided: direct forward, GEMM gradients
    ((2, 2, 9, 17), (32, 1, 5, 5), 2, (1, 1), "gemm"),  # grouped
    ((2, 1, 9, 17), (15, 1, 5, 5), 1, (2, 1), "direct"),  # too few filters: direct both ways
    ((2, 4, 8, 8), (4, 1, 3, 3), 4, (1, 1), "direct"),  # depthwise
])
def test_direct_forward_picks_its_backward_and_every_route_agrees(xs, ws, groups, stride, expected):
    """With 'auto', a direct forward hands its gradients to the GEMM path when the layer has at
    least 16 filters per group, is not depthwise, and the blocked kernels do not apply (a stride
    or groups); whichever runs, both gradients equal the loop reference's, and an explicit
    ``method='direct'`` keeps the direct kernels for the backward too."""
    from cnnlab.functional import _backend

    if not _backend.use_numba():
        pytest.skip("the automatic rule picks 'direct' only with the Numba kernels")
    rng = np.random.default_rng(16)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    previous = _backend.set_backend("numba")  # past the small-work threshold
    try:
        _, auto = _conv_kernels.forward(xp, w, stride, (1, 1), groups, method="auto", save=True)
        _, pinned = _conv_kernels.forward(xp, w, stride, (1, 1), groups, method="direct", save=True)
        assert (auto.method, auto.backward) == ("direct", expected)
        assert (pinned.method, pinned.backward) == ("direct", "same")
        g = rng.standard_normal((xs[0], ws[0], *auto.out))
        ref = _naive.naive_conv_backward(g, xp, w, stride, ((0, 0), (0, 0)), (1, 1), groups)
        for saved in (auto, pinned):
            gx, gw = _conv_backward_kernels.backward(g, saved)
            np.testing.assert_allclose(gx, ref[0], rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(gw, ref[1], rtol=1e-10, atol=1e-10)
    finally:
        _backend.set_backend(previous)


@pytest.mark.parametrize(("width", "kernel", "dilation", "direct"), [
    (11, 3, 1, True), (10, 3, 1, False),  # 9 output columns for a 3-wide kernel, then 8
    (19, 5, 1, True), (18, 5, 1, False),
    (19, 3, 2, True), (18, 3, 2, False),  # dilated: 5 columns wide
    (7, 1, 1, True), (2, 1, 1, False),
])
def test_first_layers_take_the_direct_kernels_on_rows_three_times_the_kernel(width, kernel, dilation, direct):
    """A first layer (3 input channels) goes to the direct kernels where its output has at least
    DIRECT_MIN_WIDTH_PER_TAP columns per column of the dilated kernel (``width``: the padded input's);
    narrower, to the other paths (here: the GEMM path, no dtype given)."""
    from cnnlab.functional import _backend

    if not _backend.numba_available():
        pytest.skip("the automatic rule picks 'direct' only with the Numba kernels")
    previous = _backend.set_backend("numba")
    try:
        got = _conv_kernels.choose_method((4, 3, 30, width), (32, 3, kernel, kernel), 1, (1, 1), None,
                                          (dilation, dilation))
    finally:
        _backend.set_backend(previous)
    assert got == ("direct" if direct else "gemm")


@pytest.mark.parametrize(("ws", "groups", "stride", "expected"), [
    ((16, 3, 3, 3), 1, (1, 1), "direct"),  # a first layer
    ((16, 3, 3, 3), 1, (2, 1), "direct"),  # strided along the height only: the row kernels still apply
    ((16, 3, 7, 7), 1, (2, 2), "gemm"),  # a strided stem: im2col is several times faster
    ((16, 1, 5, 5), 1, (1, 2), "gemm"),
    ((8, 1, 3, 3), 8, (2, 2), "direct"),  # depthwise, strided or not
    ((16, 8, 3, 3), 1, (1, 1), "gemm"),  # more input channels
    ((16, 3, 3), 1, (1,), "gemm"),  # 1-d
])
def test_automatic_method_rule(ws, groups, stride, expected):
    from cnnlab.functional import _backend

    xs = (4, ws[1] * groups) + (20,) * (len(ws) - 2)
    if not _backend.numba_available():  # the NumPy loops: im2col is always the faster
        assert _conv_kernels.choose_method(xs, ws, groups, stride) == "gemm"
        return
    previous = _backend.set_backend("numba")  # past the small-work threshold
    try:
        assert _conv_kernels.choose_method(xs, ws, groups, stride) == expected
    finally:
        _backend.set_backend(previous)
