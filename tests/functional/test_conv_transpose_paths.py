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


def test_scatter_forward_in_blocks_of_samples(monkeypatch):
    monkeypatch.setattr(_conv_kernels, "BLOCK_BYTES", 1)  # one sample per block
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((5, 3, 4, 4)), rng.standard_normal((3, 2, 3, 3))
    y = F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    want = _naive.naive_conv_transpose(x, w, None, (2, 2), ((1, 1), (1, 1)), (1, 1), 1, (1, 1))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
