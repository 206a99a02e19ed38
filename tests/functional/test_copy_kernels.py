"""Compiled kernels that move values without arithmetic: zero padding of planes (the implicit
convolution's padded input and upstream gradient) and ReLU's backward from one broadcast value
(a ``sum``'s gradient).  Oracles: ``np.pad`` and ``np.where``, element by element and bit for bit,
on two threads with the parallel threshold at 0 so that every job split is reached."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import Tensor
from cnnlab.functional import _backend

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setattr(_backend, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setitem(_backend._state, "threads", 2)


@pytest.mark.parametrize("shape, pads", [
    ((3, 4, 5, 6), ((1, 1), (1, 1))), ((2, 3, 7, 4), ((2, 0), (0, 3))), ((1, 5, 1, 1), ((0, 0), (2, 2))),
    ((4, 2, 9), ((3, 1),)), ((2, 2, 3, 3), ((0, 4), (5, 0))), ((0, 3, 4, 4), ((1, 1), (1, 1))),
    # rows of 8 or more float32 values: copied in vectors of 8, the last one overlapping
    ((2, 3, 5, 8), ((1, 2), (3, 1))), ((2, 2, 4, 14), ((1, 1), (1, 1))), ((1, 2, 3, 17), ((0, 0), (0, 0))),
    ((3, 1, 2, 16), ((0, 3), (2, 0))), ((2, 1, 0, 9), ((1, 1), (1, 1))), ((3, 2, 40), ((0, 5),)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pad_planes_is_numpys_zero_padding(two_threads, shape, pads, dtype):
    from cnnlab.functional._numba_kernels import pad_planes

    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    x.reshape(-1)[:1] = np.nan if x.size else 0  # a NaN stays where it is, and the border is zeros
    transposed = np.swapaxes(np.swapaxes(x, -1, -2).copy(), -1, -2)  # the same values, not C-ordered
    for source in (x, transposed, np.broadcast_to(x[:1, :1], shape)):
        got = pad_planes(source, pads)
        want = np.pad(source, ((0, 0), (0, 0), *pads))
        assert got.dtype == x.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        assert not np.signbit(got[np.pad(np.zeros(shape, bool), ((0, 0), (0, 0), *pads), constant_values=True)]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [1.0, -2.5, 0.0, np.inf, np.nan])
def test_relu_keep_and_its_backward_of_one_broadcast_value(two_threads, dtype, value):
    """:func:`relu_keep`: ``np.maximum(x, 0)`` bit for bit and the mask ``not y <= 0`` (NaN kept);
    the backward from that mask, ``g`` broadcast from one value (the kernel reads that value) or
    not: ``np.where(y <= 0, 0, g)``, signs of zeros included."""
    from cnnlab.functional._numba_kernels import relu_grad_kept, relu_keep

    x = np.random.default_rng(1).standard_normal((7, 3, 5)).astype(dtype)
    x.reshape(-1)[:5] = [0.0, -0.0, np.nan, np.inf, -np.inf]
    y, keep = relu_keep(x)
    want_y = np.maximum(x, dtype(0))
    np.testing.assert_array_equal(y, want_y)
    assert np.array_equal(np.signbit(y), np.signbit(want_y)) and y.dtype == dtype
    assert keep.dtype == np.bool_ and np.array_equal(keep, ~(want_y <= 0))
    g = np.broadcast_to(np.asarray(value, dtype), x.shape)
    want = np.where(want_y <= 0, dtype(0), g)
    got = relu_grad_kept(g, keep)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    partial = np.broadcast_to(np.arange(5, dtype=dtype), x.shape)  # broadcast, but not one value
    np.testing.assert_array_equal(relu_grad_kept(partial, keep), np.where(want_y <= 0, dtype(0), partial))


def test_gradient_of_a_sum_reaches_a_leaf_as_an_array_of_its_own():
    """``sum``'s backward passes a read-only broadcast view; the leaf's ``.grad`` is still a
    writeable array of its own, and a second backward adds to it."""
    x = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    x.sum().backward()
    assert x.grad.flags.writeable and x.grad.flags.owndata and np.array_equal(x.grad, np.ones((2, 3)))
    x.grad[0, 0] = 5.0
    (x * 2).mean().backward()
    np.testing.assert_allclose(x.grad, np.array([[5, 1, 1], [1, 1, 1]]) + 2 / 6, rtol=1e-6)


@pytest.mark.parametrize("value", [1.5, -0.0, np.nan, -np.inf, 3e-45])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (7,), (2, 0, 3), (1, 1, 1, 1)])
def test_contiguous_writes_out_one_broadcast_value_bit_for_bit(two_threads, monkeypatch, value, dtype, shape):
    """A gradient that is one value broadcast (a ``sum``'s) comes out of ``contiguous`` as ``np.ascontiguousarray``
    makes it, bit for bit (a signed zero, NaN, a subnormal), by the compiled fill; other arrays
    as NumPy makes them (a contiguous one is returned as it is)."""
    from cnnlab.functional import _numba_kernels

    fills = []
    real = _numba_kernels._fill
    monkeypatch.setattr(_numba_kernels, "_fill", lambda *a: (fills.append(a[-3:]), real(*a)))
    view = np.broadcast_to(np.array(value, dtype), shape)
    got = _numba_kernels.contiguous(view)
    want = np.ascontiguousarray(view)
    assert got.dtype == want.dtype and got.shape == want.shape and got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert bool(fills) == (view.size > 0)  # (the fill ran, on its jobs, for every value there is)
    if fills:
        assert sorted((first, last) for first, last, _ in fills)[0][0] == 0
        assert sum(last - first for first, last, _ in fills) == view.size
    fills.clear()
    plain = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    assert _numba_kernels.contiguous(plain) is plain
    np.testing.assert_array_equal(_numba_kernels.contiguous(plain[:, ::2]), plain[:, ::2])
    np.testing.assert_array_equal(_numba_kernels.contiguous(np.broadcast_to(plain[:1], (3, 3, 4))),
                                  np.broadcast_to(plain[:1], (3, 3, 4)))
    assert not fills  # (only a single value broadcast is filled)


def test_a_sums_gradient_reaches_a_convolution_as_a_filled_array(monkeypatch):
    """conv2d(...).sum().backward(): the gradients are those of an explicit array of ones."""
    import cnnlab.functional as F
    from cnnlab.functional import _numba_kernels

    monkeypatch.setattr(_backend, "PARALLEL_MIN_WORK", 0)
    fills = []
    real = _numba_kernels._fill
    monkeypatch.setattr(_numba_kernels, "_fill", lambda *a: (fills.append(1), real(*a)))
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 16, 9, 9)).astype(np.float32), rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    xx, ww = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    F.conv2d(xx, ww, padding=1).sum().backward()
    assert fills
    gx, gw, _ = F.conv_backward(np.ones((2, 16, 9, 9), np.float32), x, w, None, padding=1)
    np.testing.assert_array_equal(xx.grad, gx)
    np.testing.assert_array_equal(ww.grad, gw)


@pytest.mark.parametrize("size", [0, 1, 15, 16384, 16385, 3 * 16384 + 7, 600_001])
def test_all_finite_is_numpys_isfinite_all(size):
    """``all_finite`` (one pass over the values' exponent bits, in jobs of FINITE_JOB values, on two
    threads past the parallel threshold) against ``np.isfinite(a).all()``: finite arrays with the
    extremes (the largest float32, subnormals, signed zeros), and each of inf, -inf and NaN at the
    first and last value and at the edges of the jobs."""
    from cnnlab.functional._numba_kernels import FINITE_JOB, all_finite

    rng = np.random.default_rng(size)
    a = rng.uniform(-3, 3, size).astype(np.float32)
    special = np.array([np.finfo(np.float32).max, -np.finfo(np.float32).max, np.float32(1e-45), -0.0, 0.0],
                       np.float32)
    a[: min(size, special.size)] = special[: min(size, special.size)]
    assert all_finite(a) is True is bool(np.isfinite(a).all())
    for where in sorted({0, size - 1, FINITE_JOB - 1, FINITE_JOB, size // 2} & set(range(size))):
        for bad in (np.inf, -np.inf, np.nan):
            b = a.copy()
            b[where] = bad
            assert all_finite(b) is False, (where, bad)
    assert all_finite(a.reshape(-1, 1)[::1]) is True  # (any shape)


def _columns_reference(x, kernel, stride, dilation, pads):
    """``cols[(c*kh + i)*kw + j, (b*oh + a)*ow + e] = xp[b, c, a*sh + i*dh, e*sw + j*dw]`` of the
    zero-padded ``xp`` (``np.pad``), one cell at a time."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    batch, channels, height, width = xp.shape
    oh, ow = (height - dh * (kh - 1) - 1) // sh + 1, (width - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((channels * kh * kw, batch * oh * ow), x.dtype)
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                for b in range(batch):
                    for a in range(oh):
                        for e in range(ow):
                            value = xp[b, c, a * sh + i * dh, e * sw + j * dw]
                            cols[(c * kh + i) * kw + j, (b * oh + a) * ow + e] = value
    return cols


@pytest.mark.parametrize("shape, kernel, stride, dilation, pads", [
    # rows shorter than SHORT_ROW (their padding cells written one by one): 1-d layers (height 1),
    # small images, rows wholly in the padding, padding on one side only, strides and dilations
    ((3, 2, 1, 10), (1, 3), (1, 2), (1, 1), ((0, 0), (1, 1))),
    ((2, 3, 1, 19), (1, 5), (1, 2), (1, 2), ((0, 0), (3, 0))),
    ((2, 2, 7, 7), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    ((2, 2, 5, 6), (3, 3), (2, 3), (2, 1), ((2, 1), (0, 4))),
    ((1, 2, 3, 3), (3, 3), (1, 1), (1, 1), ((3, 3), (2, 2))),
    ((2, 1, 14, 14), (5, 5), (1, 1), (1, 1), ((2, 2), (2, 2))),
    # rows of SHORT_ROW cells or more (the whole row zeroed, then its inside copied)
    ((2, 2, 4, 40), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    ((1, 2, 3, 70), (2, 3), (1, 2), (1, 1), ((1, 0), (2, 2))),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_kernel_writes_every_cell(two_threads, shape, kernel, stride, dilation, pads, dtype):
    """The compiled im2col fills every cell of a column matrix that held NaN before (each padding
    cell a 0, each other the input's value), bit for bit as the reference, for either unit or
    other strides along the width."""
    from cnnlab.functional import _numba_kernels as nk

    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    want = _columns_reference(x, kernel, stride, dilation, pads)
    (kh, kw), (sh, sw), (dh, dw), ((ph, _), (pw, _)) = kernel, stride, dilation, pads
    oh = (shape[2] + sum(pads[0]) - dh * (kh - 1) - 1) // sh + 1
    ow = (shape[3] + sum(pads[1]) - dw * (kw - 1) - 1) // sw + 1
    cols = np.full(want.shape, np.nan, dtype)
    _backend.run_jobs(nk._im2col(sw == 1), want.shape[0], x, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow, cols,
                      np.zeros(1, dtype), work=cols.size)
    np.testing.assert_array_equal(cols, want)
    np.testing.assert_array_equal(nk.im2col(x, kernel, stride, dilation, pads), want)


@pytest.mark.parametrize("shape, kernel, stride, dilation, pads", [
    ((2, 2, 4, 5, 6), (3, 3, 3), (1, 1, 1), (1, 1, 1), ((1, 1), (1, 1), (1, 1))),
    ((1, 2, 5, 3, 7), (2, 3, 2), (2, 1, 3), (1, 2, 1), ((0, 2), (2, 0), (1, 3))),
    ((1, 1, 3, 3, 40), (3, 1, 3), (1, 1, 1), (1, 1, 1), ((1, 1), (0, 0), (2, 1))),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col3_kernel_writes_every_cell(two_threads, shape, kernel, stride, dilation, pads, dtype):
    """The compiled 3-d im2col on columns that held NaN before: every padding cell a 0, every
    other the input's value (the reference: ``np.pad`` and a window per output, cell by cell)."""
    from cnnlab.functional import _numba_kernels as nk

    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    out = [(size - d * (k - 1) - 1) // s + 1
           for size, k, s, d in zip(xp.shape[2:], kernel, stride, dilation, strict=True)]
    want = np.empty((shape[1] * int(np.prod(kernel)), shape[0] * int(np.prod(out))), dtype)
    (sd, sh, sw), (dd, dh, dw), taps = stride, dilation, int(np.prod(kernel))
    for c in range(shape[1]):
        for t, (q, i, j) in enumerate(np.ndindex(*kernel)):
            for col, (b, z, a, e) in enumerate(np.ndindex(shape[0], *out)):
                want[c * taps + t, col] = xp[b, c, z * sd + q * dd, a * sh + i * dh, e * sw + j * dw]
    cols = np.full(want.shape, np.nan, dtype)
    _backend.run_jobs(nk._im2col3, want.shape[0], x, *kernel, *stride, *dilation, *(lo for lo, _ in pads), *out, cols,
                      np.zeros(1, dtype), work=cols.size)
    np.testing.assert_array_equal(cols, want)
