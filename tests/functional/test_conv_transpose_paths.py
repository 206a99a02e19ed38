"""The strided transposed conv's forward, computed as the conv's input gradient (``col2im(W.T @ X)``,
:func:`cnnlab.functional._conv_transpose._scatter_forward`), against the loop reference: 1-3 spatial
dims, groups, dilation, output padding, asymmetric padding, integers (exact) and floats, both
backends, and blocks of samples."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _conv_kernels, _naive
from cnnlab.functional import _conv_transpose as ct
from cnnlab.functional._args import padding_pairs


def _backends():
    return ["numpy", "numba"] if _backend.numba_available() else ["numpy"]


CASES = [  # spatial, kernel, stride, padding, output_padding, groups, dilation
    ((5, 6), (3, 4), 2, 1, 0, 1, 1),
    ((5, 6), (3, 3), 2, 0, 1, 1, 1),
    ((4, 5), (2, 3), 3, 2, 2, 2, 1),
    ((7,), (3,), 2, 1, 1, 1, 2),  # 1-d, dilated
    ((3, 4, 3), (2, 3, 2), (2, 1, 3), 1, 0, 1, 1),  # 3-d, one dim unstrided
    ((5, 4), (3, 2), (1, 2), ((2, 0), (1, 3)), (0, 1), 1, 1),  # asymmetric padding
    ((4, 3), (2, 2), (3, 2), ((0, 0), (4, 0)), (2, 1), 1, 1),  # cells past every tap, a large crop
]


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("case", CASES)
def test_scatter_forward_matches_the_loop_reference(monkeypatch, backend, dtype, case):
    spatial, kernel, stride, padding, output_padding, groups, dilation = case
    rng = np.random.default_rng(sum(spatial) + len(kernel))
    x = rng.integers(-4, 5, (3, 4, *spatial)).astype(dtype)
    w = rng.integers(-4, 5, (4, 6 // groups, *kernel)).astype(dtype)
    b = rng.integers(-4, 5, 6).astype(dtype)
    calls = []
    real = ct._scatter_forward
    monkeypatch.setattr(ct, "_scatter_forward", lambda *a: calls.append(1) or real(*a))
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    with _backend.using(backend):
        y = F.conv_transpose(x, w, b, **kw)
    assert calls, "the strided forward did not take the scatter path"
    n = len(spatial)

    def tup(v):
        return (v,) * n if isinstance(v, int) else tuple(v)

    want = _naive.naive_conv_transpose(x, w, b, tup(stride), padding_pairs("", padding, n), tup(output_padding),
                                       groups, tup(dilation))
    assert y.dtype == dtype and y.shape == want.shape
    if dtype == np.int64:
        np.testing.assert_array_equal(y, want)
    else:
        np.testing.assert_allclose(y, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("case", CASES)
def test_scatter_forward_by_the_implicit_kernels(monkeypatch, case):
    """float32 with at least MIN_LANES output channels per group: the strided forward is the
    implicit kernels' input gradient (its phases skip the stride's zeros); small integers, so
    every product and sum is exact and the result equals the loop reference's."""
    from cnnlab.functional import _implicit, _implicit_grad_x

    spatial, kernel, stride, padding, output_padding, groups, dilation = case
    rng = np.random.default_rng(sum(spatial) * 7 + len(kernel))
    x = rng.integers(-4, 5, (3, 4, *spatial)).astype(np.float32)
    w = rng.integers(-4, 5, (4, 9, *kernel)).astype(np.float32)  # 9 outputs per group: part of a block of 16
    monkeypatch.setattr(_implicit, "MIN_POSITIONS", 1)  # (these inputs have 12-90 positions)
    calls = []
    real = _implicit_grad_x.grad_x
    monkeypatch.setattr(_implicit_grad_x, "grad_x", lambda *a: calls.append(1) or real(*a))
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    with _backend.using("numba"):
        y = F.conv_transpose(x, w, **kw)
    n = len(spatial)

    def tup(v):
        return (v,) * n if isinstance(v, int) else tuple(v)

    want = _naive.naive_conv_transpose(x.astype(np.float64), w.astype(np.float64), None, tup(stride),
                                       padding_pairs("", padding, n), tup(output_padding), groups, tup(dilation))
    assert y.dtype == np.float32 and y.shape == want.shape
    np.testing.assert_array_equal(y, want)
    assert calls == [1]
    monkeypatch.setattr(_implicit, "MIN_POSITIONS", x.shape[0] * int(np.prod(spatial)) + 1)
    with _backend.using("numba"):
        np.testing.assert_array_equal(F.conv_transpose(x, w, **kw), want)  # (by col2im: one position short)
    assert calls == [1]


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("outputs, implicit", [(4, False), (7, False), (8, True)])
def test_few_output_channels_keep_col2im(monkeypatch, outputs, implicit):
    """The implicit input gradient runs from GRAD_X_MIN_LANES (4) channels a group in a conv's
    backward, but a transposed conv's strided forward keeps MIN_LANES (8) output channels a group
    before it takes those kernels (col2im was faster below); the values are the loop reference's
    either way (small integers: exact)."""
    from cnnlab.functional import _implicit, _implicit_grad_x

    assert _implicit.GRAD_X_MIN_LANES < 8 == _implicit.MIN_LANES
    rng = np.random.default_rng(outputs)
    x = rng.integers(-4, 5, (2, 8, 5, 6)).astype(np.float32)
    w = rng.integers(-4, 5, (8, outputs, 3, 3)).astype(np.float32)
    monkeypatch.setattr(_implicit, "MIN_POSITIONS", 1)
    calls = []
    real = _implicit_grad_x.grad_x
    monkeypatch.setattr(_implicit_grad_x, "grad_x", lambda *a: calls.append(1) or real(*a))
    with _backend.using("numba"):
        y = F.conv_transpose2d(x, w, stride=2, padding=1)
    want = _naive.naive_conv_transpose(x.astype(np.float64), w.astype(np.float64), None, (2, 2),
                                       ((1, 1), (1, 1)), (0, 0), 1, (1, 1))
    np.testing.assert_array_equal(y, want)
    assert calls == ([1] if implicit else [])


def test_scatter_forward_in_blocks_of_samples(monkeypatch):
    monkeypatch.setattr(_conv_kernels, "BLOCK_BYTES", 1)  # one sample per block
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((5, 3, 4, 4)), rng.standard_normal((3, 2, 3, 3))
    y = F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    want = _naive.naive_conv_transpose(x, w, None, (2, 2), ((1, 1), (1, 1)), (1, 1), 1, (1, 1))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


UNSTRIDED = [  # spatial, kernel, padding, output_padding, dilation: the stride-1 forward (a conv of x)
    ((5, 6), (3, 3), 1, 0, 1),
    ((6, 5), (2, 3), ((3, 0), (0, 4)), 0, 2),  # padding past the kernel's reach: x is cropped, not padded
    ((7,), (2,), 3, 1, 2),  # a crop at the start, output padding at the end
    ((1,), (1,), 2, 4, 5),  # crops larger than x: only padding is left (forward and grad_out's)
    ((2, 3), (1, 2), ((3, 0), (0, 0)), (2, 0), (3, 1)),
]


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("dtype", [np.float64, np.int64])
@pytest.mark.parametrize("case", UNSTRIDED)
def test_unstrided_forward_and_gradients_match_the_loop_reference(backend, dtype, case):
    """Stride 1 runs as a correlation of ``x`` (cropped where the padding exceeds the kernel's
    reach) with the flipped kernel; the backward is a conv of ``grad_out`` cropped likewise."""
    spatial, kernel, padding, output_padding, dilation = case
    n = len(spatial)
    rng = np.random.default_rng(len(kernel) + sum(spatial))
    x = rng.integers(-4, 5, (2, 3, *spatial)).astype(dtype)
    w = rng.integers(-4, 5, (3, 2, *kernel)).astype(dtype)
    pads = padding_pairs("", padding, n)
    output_padding, dilation = (tuple(v) if isinstance(v, tuple) else (v,) * n for v in (output_padding, dilation))
    kw = dict(padding=padding, output_padding=output_padding, dilation=dilation)
    with _backend.using(backend):
        y = F.conv_transpose(x, w, **kw)
        g = rng.integers(-4, 5, y.shape).astype(dtype)
        grad_x, grad_w, _ = F.conv_transpose_backward(g, x, w, **kw)
    want = _naive.naive_conv_transpose(x, w, None, (1,) * n, pads, output_padding, 1, dilation)
    np.testing.assert_array_equal(y, want)
    # the adjoint identities, in exact integers: <T(x, w), g> = <x, grad_x> = <w, grad_w>
    inner = int(np.sum(want.astype(np.int64) * g))
    assert int(np.sum(x.astype(np.int64) * grad_x)) == inner
    assert int(np.sum(w.astype(np.int64) * grad_w)) == inner
    # and each gradient against the loop reference's linearity: T(e_i, w) for every cell of x
    basis = np.zeros(x.shape, dtype)
    for index in np.ndindex(*x.shape):
        basis[index] = 1
        column = _naive.naive_conv_transpose(basis, w, None, (1,) * n, pads, output_padding, 1, dilation)
        basis[index] = 0
        assert grad_x[index] == int(np.sum(column.astype(np.int64) * g))


def test_the_backward_reads_grad_out_cropped_where_output_padding_exceeds_padding():
    """Stride 2, padding 0, output padding 1: the conv that gives ``grad_x`` reads ``grad_out``
    without its last row and column (negative high padding), which the GEMM path takes as a crop."""
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, (2, 2, 3, 4)).astype(np.int64)
    w = rng.integers(-3, 4, (2, 3, 2, 2)).astype(np.int64)
    y = F.conv_transpose2d(x, w, stride=2, output_padding=1)
    g = rng.integers(-3, 4, y.shape).astype(np.int64)
    grad_x, grad_w, _ = F.conv_transpose_backward(g, x, w, stride=2, output_padding=1)
    want_x = F.conv2d(g[:, :, :-1, :-1], w, stride=2)
    np.testing.assert_array_equal(grad_x, want_x)
    inner = int(np.sum(y * g))
    assert int(np.sum(w * grad_w)) == inner and int(np.sum(x * grad_x)) == inner
