"""The compiled 3-d column kernels (``_numba_kernels.im2col3`` / ``col2im3``) behind conv3d's GEMM
path, against the loop reference: strides, dilations, asymmetric and large padding, groups,
float and integer (exact) inputs, the forward and both gradients."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab.functional import _backend, _naive
from cnnlab.functional._args import padding_pairs

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

CASES = [  # x shape, weight shape, stride, padding, dilation, groups
    ((2, 3, 5, 6, 7), (4, 3, 2, 3, 2), (1, 2, 1), 1, (2, 1, 1), 1),
    ((1, 2, 6, 5, 4), (3, 2, 3, 3, 3), 2, ((1, 2), (0, 1), (2, 0)), 1, 1),
    ((2, 4, 4, 4, 5), (4, 2, 3, 1, 3), 1, (3, 0, 2), 1, 2),  # groups, padding past the kernel in depth
    ((3, 1, 3, 7, 6), (2, 1, 1, 1, 1), (3, 2, 2), 0, 1, 1),  # 1x1x1 strided
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("case", CASES)
def test_conv3d_columns_match_the_loop_reference(monkeypatch, dtype, case):
    from cnnlab.functional import _numba_kernels as nk

    xs, ws, stride, padding, dilation, groups = case
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.integers(-5, 6, xs).astype(dtype)
    w = rng.integers(-5, 6, ws).astype(dtype)
    calls = []
    for name in ("im2col3", "col2im3"):
        real = getattr(nk, name)
        monkeypatch.setattr(nk, name, lambda *a, real=real, name=name, **k: calls.append(name) or real(*a, **k))
    # (method="gemm": float32 would otherwise take the implicit kernels, which build no columns)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, method="gemm")
    with _backend.using("numba"):
        y = F.conv3d(x, w, **kw)
        g = rng.integers(-3, 4, y.shape).astype(dtype)
        grad_x, grad_w, _ = F.conv_backward(g, x, w, **kw)
    assert "im2col3" in calls and "col2im3" in calls
    tup = (lambda v: (v,) * 3 if isinstance(v, int) else tuple(v))  # noqa: E731
    pads = padding_pairs("", padding, 3)
    want = _naive.naive_conv(x, w, None, tup(stride), pads, tup(dilation), groups)
    want_x, want_w = _naive.naive_conv_backward(g, x, w, tup(stride), pads, tup(dilation), groups)[:2]
    for got, ref in ((y, want), (grad_x, want_x), (grad_w, want_w)):
        assert got.shape == ref.shape
        if dtype == np.int64:
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, ref)
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-3)
