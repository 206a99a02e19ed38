"""Pooling-specific tests against PyTorch and the loop references.

The generic checks of every pooling entry (values, dtypes, gradients, errors) run from
``ops_pool.OPS`` in ``test_registry.py``; here: argmax indices, NaN, ties, ceil mode, padding,
the average-pooling divisor rules, unbatched input and properties.  Every test here runs once per
backend (the NumPy paths, and the compiled Numba kernels where Numba is importable), so both
kinds of kernel meet every edge case.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnlab.functional import _backend
from cnnlab.functional._avg_pool import (
    avg_pool,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    avg_pool_backward,
)
from cnnlab.functional._naive import (
    naive_avg_pool,
    naive_avg_pool_backward,
    naive_max_pool,
    naive_max_pool_backward,
    naive_window_count,
)
from cnnlab.functional._pool import (
    max_pool,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    max_pool_backward,
)
from tests.functional.opinfo import rand, to_torch, torch

F = None if torch is None else torch.nn.functional
TORCH_MAX = {1: "max_pool1d", 2: "max_pool2d", 3: "max_pool3d"}
TORCH_AVG = {2: "avg_pool2d", 3: "avg_pool3d"}
OURS_MAX = {1: max_pool1d, 2: max_pool2d, 3: max_pool3d}
OURS_AVG = {1: avg_pool1d, 2: avg_pool2d, 3: avg_pool3d}
BACKENDS = ["numpy"] + (["numba"] if _backend.numba_available() else [])


@pytest.fixture(autouse=True, params=BACKENDS)
def backend(request):
    """Run the test with ``method='auto'`` choosing the NumPy paths, then the Numba kernels."""
    previous = _backend.set_backend(request.param)
    yield request.param
    _backend.set_backend(previous)


# ----------------------------------------------------------------------------------------------
# Max pooling


def _torch_geometries():
    """Random torch-supported geometries over 1-3 spatial dims, batched and unbatched."""
    g = np.random.default_rng(3)
    found = []
    while len(found) < 40:
        n = int(g.integers(1, 4))
        sp = tuple(int(v) for v in g.integers(1, 7, size=n))
        k = tuple(int(g.integers(1, s + 1)) for s in sp)
        kw = dict(kernel_size=k, stride=tuple(int(v) for v in g.integers(1, 4, size=n)),
                  padding=tuple(int(g.integers(0, kk // 2 + 1)) for kk in k),
                  dilation=tuple(int(v) for v in g.integers(1, 3, size=n)),
                  ceil_mode=bool(g.integers(2)))
        shape = ((2,) if g.integers(2) else ()) + (2,) + sp
        try:
            max_pool(np.zeros(shape), **kw)
        except ValueError:
            continue
        found.append(pytest.param(n, shape, kw, id=f"{len(found)}"))
    return found


@pytest.mark.parametrize(("n", "shape", "kw"), _torch_geometries())
def test_max_pool_indices_values_and_grad(n, shape, kw):
    """Against the loop reference always; against torch where installed."""
    x = rand(shape, np.float64, seed=len(shape))
    y, idx = OURS_MAX[n](x, **kw, return_indices=True)
    assert idx.dtype == np.int64
    g = rand(y.shape, np.float64, seed=5)
    grad = max_pool_backward(g, x, **kw)
    batched = len(shape) == n + 2
    xb, gb = (x, g) if batched else (x[None], g[None])
    geometry = (kw["kernel_size"], kw["stride"], tuple((p, p) for p in kw["padding"]), kw["dilation"],
                kw["ceil_mode"])
    ref, ref_idx = naive_max_pool(xb, *geometry, return_indices=True)
    ref_grad = naive_max_pool_backward(gb, xb, *geometry)
    np.testing.assert_array_equal(y, ref if batched else ref[0])
    np.testing.assert_array_equal(idx, ref_idx if batched else ref_idx[0])
    np.testing.assert_allclose(grad, ref_grad if batched else ref_grad[0], rtol=1e-14, atol=1e-15)
    if torch is not None:
        xt = to_torch(x).requires_grad_()
        ty, tidx = getattr(F, TORCH_MAX[n])(xt, **kw, return_indices=True)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
        ty.backward(to_torch(g))
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-14)


def test_max_pool_nan_propagates_like_torch():
    x = rand((2, 3, 6, 6), np.float64, seed=1)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 1, 2] = np.nan  # two NaNs in one window: torch picks the last one
    x[1, 2, 5, 0] = np.nan
    kw = dict(kernel_size=3, stride=2, padding=1)
    y, idx = max_pool2d(x, **kw, return_indices=True)
    assert np.isnan(y[0, 0, :2, :2]).all() and np.isnan(y[1, 2, 2:, 0]).all()
    assert np.isnan(y).sum() == 4 + 1
    # by hand: window (0, 0) covers rows and cols -1..1 and holds only the NaN at (1, 1);
    # window (0, 1) covers cols 1..3 and holds both NaNs: the last in row-major order, (1, 2), wins
    assert idx[0, 0, 0, 0] == 1 * 6 + 1 and idx[0, 0, 0, 1] == 1 * 6 + 2
    assert idx[1, 2, 2, 0] == 5 * 6 + 0
    ref, ref_idx = naive_max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1),
                                  return_indices=True)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(y, ref)
    g = rand(y.shape, np.float64, seed=2)
    grad = max_pool_backward(g, x, **kw)
    np.testing.assert_allclose(grad, naive_max_pool_backward(g, x, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
                               rtol=1e-14, atol=1e-15)
    if torch is not None:
        xt = to_torch(x).requires_grad_()
        ty, tidx = F.max_pool2d(xt, **kw, return_indices=True)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
        ty.backward(to_torch(g))
        np.testing.assert_array_equal(grad, xt.grad.numpy())


def test_max_pool_ties_send_gradient_to_first_maximum():
    x = np.array([[[[1.0, 4.0, 4.0], [4.0, 0.0, 4.0], [2.0, 4.0, 4.0]]]])
    y, idx = max_pool2d(x, 2, stride=1, return_indices=True)
    # First 4 in row-major order of each 2x2 window: cells (0,1), (0,1), (1,0), (1,2).
    np.testing.assert_array_equal(idx, [[[[1, 1], [3, 5]]]])
    grad = max_pool_backward(np.ones((1, 1, 2, 2)), x, 2, stride=1)
    expected = np.zeros(9)
    np.add.at(expected, [1, 1, 3, 5], 1.0)
    np.testing.assert_array_equal(grad.ravel(), expected)
    if torch is not None:  # an extra oracle; the hand-worked expectation above always runs
        xt = to_torch(x).requires_grad_()
        F.max_pool2d(xt, 2, stride=1).sum().backward()
        np.testing.assert_array_equal(grad, xt.grad.numpy())


def test_max_pool_lecture_example():
    relu_out = np.maximum(np.array([[2, 0], [3, 5]]), 0)
    np.testing.assert_array_equal(max_pool2d(relu_out[None, None], 2, stride=1), [[[[5]]]])


def test_max_pool_padding_is_never_chosen():
    x = np.full((1, 1, 3, 3), -np.inf)
    x[0, 0, 2, 2] = -7.0
    y, idx = max_pool2d(x, 2, stride=2, padding=1, return_indices=True)
    assert y[0, 0, 1, 1] == -7.0
    assert np.isneginf(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 0  # first input cell, not padding
    ints = np.full((1, 1, 3), np.iinfo(np.int64).min)
    y, idx = max_pool1d(ints, 2, padding=1, return_indices=True)
    np.testing.assert_array_equal(y, ints[..., :2])
    np.testing.assert_array_equal(idx, [[[0, 1]]])


def test_max_pool_integer_inputs_are_exact_int64():
    x = np.array([[[250, 3, 255, 7, 0]]], dtype=np.uint8)
    y = max_pool1d(x, 2, stride=1)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [[[250, 255, 255, 7]]])
    big = np.array([[[2**62 + 1, 2**62, -(2**63)]]], dtype=np.int64)
    np.testing.assert_array_equal(max_pool1d(big, 2, stride=1), [[[2**62 + 1, 2**62]]])
    assert max_pool1d(np.array([[[True, False, False]]]), 2, stride=1).tolist() == [[[1, 0]]]
    g = max_pool_backward(np.array([[[1, 2, 3, 4]]]), x, (2,), stride=1)
    assert g.dtype == np.int64
    np.testing.assert_array_equal(g, [[[1, 0, 5, 4, 0]]])


def test_max_pool_float32_stays_float32():
    x = rand((2, 3, 5, 5), np.float32, seed=4)
    assert max_pool2d(x, 2).dtype == np.float32
    assert max_pool_backward(np.ones((2, 3, 2, 2)), x, 2).dtype == np.float32


def test_max_pool_matches_naive_on_fractions():
    q = np.array([[[Fraction(1, 3), Fraction(2, 7), Fraction(1, 2), Fraction(-1, 5)]]],
                 dtype=object)
    ref = naive_max_pool(q, (2,), (1,), ((1, 0),), (1,))
    np.testing.assert_array_equal(max_pool1d(q.astype(float), 2, 1, ((1, 0),)), ref.astype(float))
    assert ref[0, 0, 2] == Fraction(1, 2)


# ----------------------------------------------------------------------------------------------
# Ceil mode, padding, unbatched input (both poolings)


@pytest.mark.parametrize("size", range(1, 9))
@pytest.mark.parametrize(("k", "s", "p"), [(2, 2, 0), (3, 2, 1), (2, 3, 1), (3, 3, 1), (4, 3, 2)])
def test_ceil_mode_output_size_and_divisor(size, k, s, p):
    """Against the loop reference always; against torch where installed."""
    x = rand((2, size), np.float64, seed=size)
    if k > size + 2 * p:  # floor mode has no window; ceil mode keeps one hanging past the end
        with pytest.raises(ValueError, match="max_pool1d: kernel is larger than the padded input"):
            max_pool1d(x, k, s, p)
    geometry = ((k,), (s,), ((p, p),), (1,), True)
    for include in (True, False):
        y = avg_pool1d(x, k, s, p, ceil_mode=True, count_include_pad=include)
        np.testing.assert_allclose(y, naive_avg_pool(x[None], *geometry, include)[0], rtol=1e-13)
        if torch is not None:
            expected = F.avg_pool1d(to_torch(x), k, s, p, ceil_mode=True, count_include_pad=include)
            np.testing.assert_allclose(y, expected.numpy(), rtol=1e-13)
    y = max_pool1d(x, k, s, p, ceil_mode=True)
    np.testing.assert_array_equal(y, naive_max_pool(x[None], *geometry)[0])
    if torch is not None:
        np.testing.assert_array_equal(y, F.max_pool1d(to_torch(x), k, s, p, ceil_mode=True).numpy())


def test_ceil_mode_partial_and_dropped_windows():
    x = np.arange(5.0)[None]
    np.testing.assert_array_equal(max_pool1d(x, 2, 2), [[1, 3]])
    # ceil keeps the window starting at 4 that hangs past the end; its divisor is 1, not 2.
    np.testing.assert_array_equal(max_pool1d(x, 2, 2, ceil_mode=True), [[1, 3, 4]])
    np.testing.assert_array_equal(avg_pool1d(x, 2, 2, ceil_mode=True), [[0.5, 2.5, 4]])
    # in = 4, k = 2, s = 2, pad (1, 2): ceil((4 + 3 - 2) / 2) + 1 = 4 windows would start at
    # -1, 1, 3, 5; the one at 5 >= in + pad_lo lies in the right padding and is dropped.
    x4 = np.arange(4.0)[None]
    np.testing.assert_array_equal(max_pool1d(x4, 2, 2, ((1, 2),), ceil_mode=True), [[0, 2, 3]])
    np.testing.assert_array_equal(avg_pool1d(x4, 2, 2, ((1, 2),), ceil_mode=True),
                                  [[0, 1.5, 1.5]])
    # Without ceil mode that window is kept by the floor formula, and it holds no input cell.
    with pytest.raises(ValueError, match=r"max_pool1d: padding \(1, 3\) .* window 3 with no"):
        max_pool1d(x4, 2, 2, ((1, 3),))


def test_asymmetric_padding_equals_explicit_padding():
    x = rand((2, 3, 5, 6), np.float64, seed=8)
    pads = ((1, 2), (0, 1))
    kw = dict(kernel_size=(3, 2), stride=(2, 1))
    padded_max = np.pad(x, ((0, 0), (0, 0), *pads), constant_values=-np.inf)
    np.testing.assert_array_equal(max_pool2d(x, padding=pads, **kw), max_pool2d(padded_max, **kw))
    padded = np.pad(x, ((0, 0), (0, 0), *pads))
    np.testing.assert_allclose(avg_pool2d(x, padding=pads, **kw), avg_pool2d(padded, **kw),
                               rtol=1e-14)
    g = rand((2, 3, 3, 6), np.float64, seed=9)
    crop = (Ellipsis, slice(1, 6), slice(0, 6))
    np.testing.assert_allclose(avg_pool_backward(g, x, padding=pads, **kw),
                               avg_pool_backward(g, padded, **kw)[crop], rtol=1e-14)
    np.testing.assert_array_equal(max_pool_backward(g, x, padding=pads, **kw),
                                  max_pool_backward(g, padded_max, **kw)[crop])


def test_padding_beyond_half_the_kernel_is_allowed_when_windows_hold_input():
    x = rand((1, 2, 4, 4), np.float64, seed=10)
    pads = ((2, 2), (2, 2))
    y = max_pool2d(x, 3, stride=1, padding=2)
    np.testing.assert_array_equal(y, naive_max_pool(x, (3, 3), (1, 1), pads, (1, 1)))
    z = avg_pool2d(x, 3, stride=1, padding=2, count_include_pad=False)
    np.testing.assert_allclose(z, naive_avg_pool(x, (3, 3), (1, 1), pads, (1, 1), False, False),
                               rtol=1e-14)
    np.testing.assert_allclose(z[..., 0, 0], x[..., 0, 0])  # corner window sees one input cell
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(3, 3\) in spatial dim 0"):
        max_pool2d(x, 3, stride=1, padding=3)
    with pytest.raises(ValueError, match=r"avg_pool2d: padding \(2, 2\) in spatial dim 1"):
        avg_pool2d(x[..., :2], (1, 2), stride=1, padding=((0, 0), (2, 2)), dilation=(1, 4))


@pytest.mark.parametrize(("pool", "n"), [(max_pool1d, 1), (max_pool2d, 2), (max_pool3d, 3),
                                         (avg_pool1d, 1), (avg_pool2d, 2), (avg_pool3d, 3)])
def test_unbatched_input_equals_batch_of_one(pool, n):
    x = rand((3,) + (5,) * n, np.float64, seed=n)
    kw = dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)
    y = pool(x, **kw)
    assert y.shape == pool(x[None], **kw).shape[1:]
    np.testing.assert_array_equal(y, pool(x[None], **kw)[0])
    backward = max_pool_backward if pool in OURS_MAX.values() else avg_pool_backward
    g = rand(y.shape, np.float64, seed=1)
    np.testing.assert_array_equal(backward(g, x, (2,) * n, stride=2, padding=1, ceil_mode=True),
                                  backward(g[None], x[None], 2, stride=2, padding=1,
                                           ceil_mode=True)[0])


def test_generic_op_infers_spatial_dims():
    x = rand((2, 3, 4, 4), np.float64, seed=2)
    np.testing.assert_array_equal(max_pool(x, 2), max_pool2d(x, 2))  # int kernel: batched
    np.testing.assert_array_equal(avg_pool(x, 2, 1, 1), avg_pool2d(x, 2, 1, 1))
    np.testing.assert_array_equal(avg_pool(x[0], (2, 3)), avg_pool2d(x[0], (2, 3)))
    np.testing.assert_array_equal(max_pool(x[0], (2, 2)), max_pool2d(x[0], 2))
    assert max_pool(x[0], 2).shape == (3, 4, 2)  # int kernel: (3, 4, 4) is (N, C, L)
    with pytest.raises(ValueError, match=r"max_pool: x must be 2-D or 3-D"):
        max_pool(x, (2,))
    with pytest.raises(ValueError, match="max_pool: with an int kernel_size x must be batched"):
        max_pool(np.zeros((3, 4)), 2)


# ----------------------------------------------------------------------------------------------
# Average pooling


@pytest.mark.parametrize(("n", "shape", "kw"), _torch_geometries()[::2])
@pytest.mark.parametrize("options", [dict(count_include_pad=True),
                                     dict(count_include_pad=False), dict(divisor_override=5)])
def test_avg_pool_count_rules(n, shape, kw, options):
    """Against the loop reference always; against torch where installed."""
    kw = {key: v for key, v in kw.items() if key != "dilation"}
    x = rand(shape, np.float64, seed=3)
    y = OURS_AVG[n](x, **kw, **options)
    g = rand(y.shape, np.float64, seed=4)
    grad = avg_pool_backward(g, x, **kw, **options)
    batched = len(shape) == n + 2
    xb, gb = (x, g) if batched else (x[None], g[None])
    geometry = (kw["kernel_size"], kw["stride"], tuple((p, p) for p in kw["padding"]), (1,) * n,
                kw["ceil_mode"], options.get("count_include_pad", True), options.get("divisor_override"))
    ref = naive_avg_pool(xb, *geometry)
    ref_grad = naive_avg_pool_backward(gb, xb, *geometry)
    np.testing.assert_allclose(y, ref if batched else ref[0], rtol=1e-13)
    np.testing.assert_allclose(grad, ref_grad if batched else ref_grad[0], rtol=1e-13)
    if torch is None:
        return
    xt = to_torch(x).requires_grad_()
    if n == 1:  # torch's avg_pool1d has no divisor_override: pool each (L) as a (1, L) image
        kw2 = {key: v if isinstance(v, bool) else (1, *v) for key, v in kw.items()}
        kw2["padding"] = (0, *kw["padding"])
        ty = F.avg_pool2d(xt.unsqueeze(-2), **kw2, **options).squeeze(-2)
    else:
        ty = getattr(F, TORCH_AVG[n])(xt, **kw, **options)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-13)
    ty.backward(to_torch(g))
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-13)


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("ceil", [True, False])
def test_avg_pool_dilation_matches_exact_reference(include, ceil):
    x = np.random.default_rng(11).integers(-9, 10, size=(2, 2, 7, 6))
    kw = dict(kernel_size=(2, 3), stride=(2, 1), dilation=(3, 2), ceil_mode=ceil)
    pads = ((1, 2), (2, 0))
    y = avg_pool2d(x, padding=pads, count_include_pad=include, **kw)
    assert y.dtype == np.float64
    ref = naive_avg_pool(x.astype(object), (2, 3), (2, 1), pads, (3, 2), ceil, include)
    assert isinstance(ref.flat[0], Fraction)
    np.testing.assert_array_equal(y, ref.astype(float))  # both correctly rounded quotients


def test_avg_pool_dilated_divisor_counts_taps():
    # in = 5, k = 2, d = 3, pad = (1, 1), stride 2: windows start at -1 and 1; taps {-1, 2} and
    # {1, 4}: with padding both count 2 taps; without, the first counts only the input tap 2.
    x = np.arange(1.0, 6.0)[None]
    np.testing.assert_array_equal(avg_pool1d(x, 2, 2, 1, dilation=3), [[3 / 2, 7 / 2]])
    np.testing.assert_array_equal(
        avg_pool1d(x, 2, 2, 1, count_include_pad=False, dilation=3), [[3.0, 7 / 2]]
    )


def test_avg_pool_dtypes():
    assert avg_pool1d(np.array([[1, 2, 4]], dtype=np.uint8), 2).dtype == np.float64
    np.testing.assert_array_equal(avg_pool1d(np.array([[255, 254]], dtype=np.uint8), 2), [[254.5]])
    x32 = rand((1, 2, 4), np.float32, seed=0)
    assert avg_pool1d(x32, 2).dtype == np.float32
    assert avg_pool_backward(np.ones((1, 2, 2)), x32, 2).dtype == np.float32
    assert avg_pool_backward(np.ones((1, 2, 2), dtype=np.int64), np.ones((1, 2, 4), dtype=int),
                             2).dtype == np.float64


# ----------------------------------------------------------------------------------------------
# Properties and errors


def _pool_validity(size, k, s, lo, hi, d, ceil):
    """From the definition, before calling the op: the number of windows (PyTorch's rule, counted
    by the loop reference), and the first window holding no input cell (None if every window
    holds one).  Window ``p`` reads input positions ``p*s + t*d - lo`` for ``t = 0 .. k-1``."""
    count = naive_window_count(size, k, s, lo, hi, d, ceil)
    empty = next((p for p in range(count)
                  if not any(0 <= p * s + t * d - lo < size for t in range(k))), None)
    return count, empty


@given(size=st.integers(1, 9), k=st.integers(1, 4), s=st.integers(1, 3), lo=st.integers(0, 3),
       hi=st.integers(0, 3), d=st.integers(1, 3), ceil=st.booleans())
def test_output_shape_formula_and_avg_adjointness(size, k, s, lo, hi, d, ceil):
    """Validity is decided first, from the definition; then the op must either succeed with the
    right shape and values, or raise the error the definition calls for (never swallowed)."""
    x = rand((1, 2, size), np.float64, seed=size)
    pads = ((lo, hi),)
    count, empty = _pool_validity(size, k, s, lo, hi, d, ceil)
    if count == 0:
        for pool in (avg_pool1d, max_pool1d):
            with pytest.raises(ValueError, match="kernel is larger than the padded input"):
                pool(x, k, s, pads, ceil_mode=ceil, dilation=d)
        return
    if empty is not None:
        for pool in (avg_pool1d, max_pool1d):
            with pytest.raises(ValueError, match=rf"leaves output window {empty} with no input cell"):
                pool(x, k, s, pads, ceil_mode=ceil, dilation=d)
        return
    y = avg_pool1d(x, k, s, pads, ceil, dilation=d)
    span = size + lo + hi - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + lo:
        out -= 1
    assert y.shape == (1, 2, out) and out == count
    np.testing.assert_allclose(y, naive_avg_pool(x, (k,), (s,), pads, (d,), ceil), rtol=1e-13)
    g = rand(y.shape, np.float64, seed=1)
    grad = avg_pool_backward(g, x, (k,), s, pads, ceil, dilation=d)
    np.testing.assert_allclose(np.sum(y * g), np.sum(x * grad), rtol=1e-12)
    mg = max_pool_backward(g, x, (k,), s, pads, d, ceil)
    ym, idx = max_pool1d(x, k, s, pads, d, ceil, return_indices=True)
    ref, ref_idx = naive_max_pool(x, (k,), (s,), pads, (d,), ceil, return_indices=True)
    np.testing.assert_array_equal(ym, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(mg.sum(), g.sum(), rtol=1e-12)
    assert set(np.flatnonzero(mg[0, 0])) <= set(idx[0, 0].tolist())


def test_backward_checks_grad_out_shape():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"max_pool_backward: grad_out must have the output shape"):
        max_pool_backward(np.zeros((1, 1, 3, 3)), x, (2, 2))
    with pytest.raises(ValueError, match=r"avg_pool_backward: grad_out must have the output shape"):
        avg_pool_backward(np.zeros((1, 1, 2)), x, (2, 2))
    with pytest.raises(TypeError, match=r"avg_pool_backward: grad_out must have a boolean"):
        avg_pool_backward(np.full((1, 1, 2, 2), "a"), x, (2, 2))


# ----------------------------------------------------------------------------------------------
# Methods: the NumPy paths and the compiled kernels


def _hard_values(shape, seed):
    """Small integers as floats (many ties), with NaNs and infinities sprinkled in."""
    g = np.random.default_rng(seed)
    x = g.integers(-2, 3, size=shape).astype(np.float64)
    x[g.random(shape) < 0.08] = np.nan
    x[g.random(shape) < 0.05] = -np.inf
    x[g.random(shape) < 0.03] = np.inf
    return x


@pytest.mark.parametrize(("n", "shape", "kw"), _torch_geometries()[::3])
def test_max_pool_ties_nan_and_infinities_match_reference(n, shape, kw):
    """Ties keep the first maximum, a NaN window its last NaN, and -inf cells are chosen over the
    padding: indices, values and gradients equal the loop reference on both backends."""
    x = _hard_values(shape, seed=sum(shape))
    y, idx = OURS_MAX[n](x, **kw, return_indices=True)
    batched = len(shape) == n + 2
    xb = x if batched else x[None]
    geometry = (kw["kernel_size"], kw["stride"], tuple((p, p) for p in kw["padding"]), kw["dilation"],
                kw["ceil_mode"])
    ref, ref_idx = naive_max_pool(xb, *geometry, return_indices=True)
    np.testing.assert_array_equal(idx, ref_idx if batched else ref_idx[0])
    np.testing.assert_array_equal(y, ref if batched else ref[0])  # NaNs in the same places
    g = rand(y.shape, np.float64, seed=6)
    ref_grad = naive_max_pool_backward(g if batched else g[None], xb, *geometry)
    np.testing.assert_allclose(max_pool_backward(g, x, **kw), ref_grad if batched else ref_grad[0],
                               rtol=1e-14, atol=1e-15)  # overlapping windows add in another order


def test_avg_pool_integers_are_summed_exactly():
    # 2**53 + 1 is no float64: a float sum would round it before dividing
    x = np.array([[[2**53 + 1, 1, 2**61, 2**61]]], dtype=np.int64)
    np.testing.assert_array_equal(avg_pool1d(x, 2), [[[2.0**52 + 1, 2.0**61]]])


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d])
def test_method_argument_is_checked(pool, monkeypatch):
    x = rand((1, 2, 4, 4), np.float64, seed=0)
    name = pool.__name__
    with pytest.raises(ValueError, match=rf"^{name}: method must be one of \['auto', 'numpy', 'numba'\], "
                                         r"got 'fast'"):
        pool(x, 2, method="fast")
    with pytest.raises(TypeError, match=rf"^{name}: method must be one of"):
        pool(x, 2, method=None)
    backward = max_pool_backward if pool is max_pool2d else avg_pool_backward
    with pytest.raises(ValueError, match=r"_pool_backward: method must be one of"):
        backward(np.ones((1, 2, 2, 2)), x, (2, 2), method="gemm")
    monkeypatch.setenv("CNNLAB_DISABLE_NUMBA", "1")
    with pytest.raises(ValueError, match=rf"^{name}: method 'numba' needs the numba package"):
        pool(x, 2, method="numba")
    np.testing.assert_array_equal(pool(x, 2, method="auto"), pool(x, 2, method="numpy"))
