"""The fast paths agree with the plain paths: saving forward/backward pairs (the Tensor route)
against the array-level backward functions, every conv method against the loop reference, the
pooling reshape path against the general one, and the pooling methods against each other.  Runs
with and without Numba (CNNLAB_DISABLE_NUMBA)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _avg_pool, _backend, _naive, _pointwise
from cnnlab.functional._dispatch import differentiable
from tests.functional.opinfo import rand

RNG = np.random.default_rng(7)
CONV_CASES = [
    # x shape, weight shape, kwargs
    ((2, 3, 7, 6), (4, 3, 3, 3), {"padding": 1}),
    ((2, 1, 9, 9), (5, 1, 5, 5), {"padding": 2}),
    ((3, 4, 8, 8), (4, 1, 3, 3), {"padding": 1, "groups": 4}),  # depthwise
    ((2, 4, 9, 8), (6, 2, 3, 2), {"stride": 2, "dilation": (2, 1), "groups": 2}),
    ((2, 6, 5, 5), (3, 6, 1, 1), {}),  # 1x1
    ((2, 6, 6, 6), (3, 6, 1, 1), {"stride": 2}),
    ((4, 3, 11), (5, 3, 3), {"stride": 2, "padding": 1}),  # 1d
    ((2, 2, 4, 5, 4), (3, 2, 2, 3, 2), {"padding": 1}),  # 3d
]


def _conv(x, w, **kw):
    return {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[np.ndim(x)](x, w, **kw)


@pytest.mark.parametrize("method", ["gemm", "direct"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}x{c[1]}")
def test_conv_methods_match_loop_reference_and_backward(case, method):
    xs, ws, kw = case
    x, w = RNG.standard_normal(xs), RNG.standard_normal(ws)
    b = RNG.standard_normal(ws[0])
    y = _conv(x, w, bias=b, method=method, **kw)
    n = len(xs) - 2
    from cnnlab.functional._args import ntuple, padding_pairs

    ref = _naive.naive_conv(x, w, b, ntuple("", "", kw.get("stride", 1), n, minimum=1),
                            padding_pairs("", kw.get("padding", 0), n),
                            ntuple("", "", kw.get("dilation", 1), n, minimum=1), kw.get("groups", 1))
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)
    g = RNG.standard_normal(y.shape)
    expected = F.conv_backward(g, x, w, b, **kw)
    xt, wt, bt = Tensor(x.copy(), requires_grad=True), Tensor(w.copy(), requires_grad=True), Tensor(b.copy(),
                                                                                                   requires_grad=True)
    out = _conv(xt, wt, bias=bt, method=method, **kw)
    out.backward(g)
    for got, want in zip((xt.grad, wt.grad, bt.grad), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_conv_integer_inputs_stay_exact_on_every_method():
    x = RNG.integers(-1000, 1000, (2, 3, 6, 6))
    w = RNG.integers(-1000, 1000, (3, 1, 3, 3))
    for method in ("gemm", "direct"):
        y = F.conv2d(x, w, groups=3, method=method)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, _naive.naive_conv(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1), 3))


def test_first_layer_input_gradient_is_skipped():
    x = Tensor(RNG.standard_normal((2, 1, 6, 6)))  # images: no grad wanted
    w = Tensor(RNG.standard_normal((3, 1, 3, 3)), requires_grad=True)
    F.conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad is not None


@pytest.mark.parametrize("kernel,stride,shape", [(2, 2, (2, 3, 8, 8)), (2, 2, (2, 3, 7, 9)), (3, 3, (1, 2, 9, 7)),
                                                 ((2, 3), (2, 3), (2, 2, 6, 9))])
def test_pool_tiles_match_reference_and_backward(kernel, stride, shape):
    x = RNG.standard_normal(shape)
    x[0, 0, :2, :2] = 0.0  # a tie: the first maximum wins
    k = (kernel,) * 2 if isinstance(kernel, int) else kernel
    s = (stride,) * 2 if isinstance(stride, int) else stride
    y = F.max_pool2d(x, kernel, stride)
    np.testing.assert_allclose(y, _naive.naive_max_pool(x, k, s, ((0, 0),) * 2, (1, 1), False))
    g = RNG.standard_normal(y.shape)
    np.testing.assert_allclose(F.max_pool_backward(g, x, k, s),
                               _naive.naive_max_pool_backward(g, x, k, s, ((0, 0),) * 2, (1, 1), False))
    xt = Tensor(x.copy(), requires_grad=True)
    F.max_pool2d(xt, kernel, stride).backward(g)
    np.testing.assert_allclose(xt.grad, F.max_pool_backward(g, x, k, s))
    xt = Tensor(x.copy(), requires_grad=True)
    F.avg_pool2d(xt, kernel, stride).backward(g)
    np.testing.assert_allclose(xt.grad, F.avg_pool_backward(g, x, k, s), rtol=1e-12)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(("shape", "kw", "view"), [
    ((2, 32, 64, 64), dict(kernel_size=3, stride=1, padding=1), None),  # large: the threaded kernels
    ((3, 4, 9, 10), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True), "strided"),
    ((3, 4, 9, 10), dict(kernel_size=2, dilation=(2, 3)), "transposed"),
    ((0, 4, 9, 10), dict(kernel_size=2), None),  # empty batch
    ((2, 3, 5, 6, 7), dict(kernel_size=(2, 3, 2), stride=(1, 2, 3), padding=(1, 1, 0)), None),
    ((2, 3, 40), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True), "strided"),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
def test_pool_numba_and_numpy_methods_agree(kind, shape, kw, view, dtype):
    """Values, indices, gradients and dtypes agree between the two methods, on views, empty
    batches and inputs large enough for the threaded kernels."""
    x = rand(shape, dtype, seed=len(shape))
    if view == "strided":
        x = np.repeat(x, 2, axis=-1)[..., ::2]
    elif view == "transposed":
        x = np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
    pool = {"max": F.max_pool, "avg": F.avg_pool}[kind]
    backward = {"max": F.max_pool_backward, "avg": F.avg_pool_backward}[kind]
    kernel = kw["kernel_size"]
    kw = {**kw, "kernel_size": kernel if isinstance(kernel, tuple) else (kernel,) * (len(shape) - 2)}
    fast, slow = pool(x, **kw, method="numba"), pool(x, **kw, method="numpy")
    assert fast.dtype == slow.dtype and fast.shape == slow.shape
    tol = dict(rtol=1e-5, atol=1e-5) if x.dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast, slow, **tol)
    g = rand(fast.shape, np.float64 if x.dtype.kind != "f" else x.dtype, seed=3)
    fast_grad = backward(g, x, **kw, method="numba")
    slow_grad = backward(g, x, **kw, method="numpy")
    assert fast_grad.dtype == slow_grad.dtype
    np.testing.assert_allclose(fast_grad, slow_grad, **tol)
    if kind == "max":
        _, fast_idx = F.max_pool(x, **kw, method="numba", return_indices=True)
        _, slow_idx = F.max_pool(x, **kw, method="numpy", return_indices=True)
        np.testing.assert_array_equal(fast_idx, slow_idx)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2), ((2, 3), (1, 3)), (3, 1), (4, 4), (2, (1, 4))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_windows_inside_the_input_keep_ties_and_nan_rules(kernel, stride, dtype):
    """The kernels for windows wholly inside the input (no padding or dilation: one per small
    window and width stride, and the general one) against the NumPy path: ties pick the first
    maximum, a window with NaN gives its last NaN, and the indices and gradients agree."""
    rng = np.random.default_rng(21)
    x = rng.integers(-2, 3, (3, 5, 12, 13)).astype(dtype)  # many ties
    x[rng.random(x.shape) < 0.08] = np.nan
    y, idx = F.max_pool2d(x, kernel, stride, method="numba", return_indices=True)
    want, want_idx = F.max_pool2d(x, kernel, stride, method="numpy", return_indices=True)
    np.testing.assert_array_equal(y, want)  # NaN where NaN
    np.testing.assert_array_equal(idx, want_idx)
    g = rng.standard_normal(y.shape).astype(dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-12  # overlapping windows add in another order
    np.testing.assert_allclose(F.max_pool_backward(g, x, kernel, stride, method="numba"),
                               F.max_pool_backward(g, x, kernel, stride, method="numpy"), rtol=tol, atol=tol)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2), ((2, 3), (3, 3)), (3, 1), (2, (2, 3))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("divisor_override", [None, 3])
def test_avg_pool_windows_inside_the_input_match_the_numpy_path(kernel, stride, dtype, divisor_override):
    """The kernels for windows wholly inside the input (no padding or dilation; the backward's
    for windows that do not overlap) against the NumPy path, with cells no window covers."""
    rng = np.random.default_rng(22)
    x = rng.standard_normal((3, 5, 12, 13)).astype(dtype)
    kw = dict(kernel_size=kernel, stride=stride, divisor_override=divisor_override)
    y = F.avg_pool2d(x, **kw, method="numba")
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, F.avg_pool2d(x, **kw, method="numpy"), rtol=tol, atol=tol)
    g = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(F.avg_pool_backward(g, x, **kw, method="numba"),
                               F.avg_pool_backward(g, x, **kw, method="numpy"), rtol=tol, atol=tol)


POOL_TENSOR_CASES = [
    # x shape, kwargs of the Tensor call, n
    ((2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1), 2),  # overlapping windows
    ((2, 3, 8, 8), dict(kernel_size=2), 2),  # tiles
    ((3, 5, 7), dict(kernel_size=(2, 3), stride=1, dilation=(2, 1), ceil_mode=True), 2),  # unbatched
    ((2, 2, 11), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True), 1),
    ((1, 2, 4, 5, 4), dict(kernel_size=(2, 3, 2), stride=(1, 2, 1), padding=(1, 1, 0)), 3),
]


@pytest.mark.parametrize("method", ["numpy", "numba"] if _backend.numba_available() else ["numpy"])
@pytest.mark.parametrize(("shape", "kw", "n"), POOL_TENSOR_CASES, ids=lambda c: str(c))
def test_pool_tensor_route_matches_array_backward(shape, kw, n, method):
    """The Tensor route (max pooling's saving pair, average pooling's backward) on each method
    gives the array-level backward's gradient, and the indices of the array-level forward."""
    x = RNG.standard_normal(shape)
    x.flat[::7] = 0.0  # ties
    arrays = dict(kw, kernel_size=kw["kernel_size"] if isinstance(kw["kernel_size"], tuple)
                  else (kw["kernel_size"],) * n)
    for kind in ("max", "avg"):
        op = getattr(F, f"{kind}_pool{n}d")
        y = op(x, **kw, method=method)
        g = RNG.standard_normal(y.shape)
        xt = Tensor(x.copy(), requires_grad=True)
        out = op(xt, **kw, method=method)
        np.testing.assert_allclose(out.data, y, rtol=1e-12, atol=1e-12)
        out.backward(g)
        expected = getattr(F, f"{kind}_pool_backward")(g, x, **arrays, method="numpy")
        np.testing.assert_allclose(xt.grad, expected, rtol=1e-12, atol=1e-12)
    # average pooling's saving pair (what the Tensor route uses once wired in __init__)
    saving_op = differentiable(getattr(_avg_pool, f"avg_pool{n}d"), F.avg_pool_backward,
                               saving=_avg_pool.avg_pool_saving(f"avg_pool{n}d", n))
    xt = Tensor(x.copy(), requires_grad=True)
    out = saving_op(xt, **kw, method=method)
    np.testing.assert_allclose(out.data, getattr(F, f"avg_pool{n}d")(x, **kw), rtol=1e-12, atol=1e-12)
    g = RNG.standard_normal(out.shape)
    out.backward(g)
    np.testing.assert_allclose(xt.grad, F.avg_pool_backward(g, x, **arrays, method="numpy"), rtol=1e-12,
                               atol=1e-12)
    xt = Tensor(x.copy(), requires_grad=True)
    out, idx = getattr(F, f"max_pool{n}d")(xt, **kw, method=method, return_indices=True)
    np.testing.assert_array_equal(idx, getattr(F, f"max_pool{n}d")(x, **kw, method="numpy",
                                                                      return_indices=True)[1])


def _batch_norm_formula(x, rm, rv, w, b, training, momentum=0.1, eps=1e-5):
    """Batch normalisation written out here (the oracle), updating ``rm``, ``rv`` in training."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    axes = (0, *range(2, x.ndim))
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        count = x.size // x.shape[1]
        rm[...] = (1 - momentum) * rm + momentum * mean
        rv[...] = (1 - momentum) * rv + momentum * var * count / (count - 1)
    else:
        mean, var = rm, rv
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * w.reshape(shape) + b.reshape(shape)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_on_arrays_matches_tensors_and_the_formula(training, relu, dtype):
    # arrays and Tensors take the same kernels (the same bits); both against the formula, with the
    # running statistics; large enough for the compiled kernels (COMPILE_MIN_WORK) where Numba runs
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((8, 5, 24, 24)) * 3 + 1).astype(dtype)
    w, b = rng.standard_normal(5).astype(dtype), rng.standard_normal(5).astype(dtype)
    rm, rv = rng.standard_normal(5).astype(dtype), (rng.random(5) + 0.5).astype(dtype)
    op = F.batch_norm_relu if relu else F.batch_norm
    stats = [rm.copy(), rv.copy()]
    got = op(x, *stats, w, b, training)
    tstats = [rm.copy(), rv.copy()]
    on_tensors = op(Tensor(x, requires_grad=True), *tstats, Tensor(w), Tensor(b), training)  # (the saving forward)
    np.testing.assert_array_equal(got, on_tensors.data)
    for a, t in zip(stats, tstats, strict=True):
        np.testing.assert_array_equal(a, t)
    ref = [rm.astype(np.float64), rv.astype(np.float64)]
    want = _batch_norm_formula(x.astype(np.float64), *ref, w.astype(np.float64), b.astype(np.float64), training)
    want = np.maximum(want, 0) if relu else want
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)
    for a, r in zip(stats, ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_saving_pair_matches_plain_backward(training):
    x = RNG.standard_normal((4, 3, 5, 5))
    w, b = RNG.standard_normal(3), RNG.standard_normal(3)
    rm, rv = RNG.standard_normal(3), RNG.random(3) + 0.5
    g = RNG.standard_normal(x.shape)
    expected = F.batch_norm_backward(g, x, rm.copy(), rv.copy(), w, b, training)
    xt, wt, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, w, b))
    y = F.batch_norm(xt, rm.copy(), rv.copy(), wt, bt, training)
    np.testing.assert_allclose(y.data, _batch_norm_formula(x, rm.copy(), rv.copy(), w, b, training), rtol=1e-10,
                               atol=1e-12)
    y.backward(g)
    for got, want in zip((xt.grad, wt.grad, bt.grad), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_backend_switch_and_errors():
    previous = _backend.set_backend("numpy")
    try:
        assert not _backend.use_numba()
        with pytest.raises(ValueError, match="set_backend: name must be one of"):
            _backend.set_backend("cuda")
        with pytest.raises(TypeError):
            _backend.set_backend(3)
        with pytest.raises(ValueError, match="method must be one of"):
            F.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), method="fast")
    finally:
        _backend.set_backend(previous)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("width", [1, 2, 3, 5, 7, 8])
@pytest.mark.parametrize(("stride", "dilation", "groups"), [(1, 1, 1), ((2, 1), (1, 2), 1), (1, (2, 3), 2)])
def test_direct_forward_per_kernel_width_matches_the_loop_reference(width, stride, dilation, groups):
    # each width 1-7 has a forward of its own (the row's taps unrolled), 8 takes the general loop;
    # the compiled path is forced (set_backend('numba')) even though the arrays are small
    from cnnlab.functional import _numba_direct as nd
    from cnnlab.functional._args import ntuple

    rng = np.random.default_rng(width)
    x = rng.standard_normal((3, 2 * groups, 9, 25)).astype(np.float32)
    w = rng.standard_normal((2 * groups, 2, 3, width)).astype(np.float32)
    previous = _backend.set_backend("numba")
    try:
        y = F.conv2d(x, w, stride=stride, padding=(1, 2), dilation=dilation, groups=groups, method="direct")
        xi = rng.integers(-50, 50, x.shape)
        wi = rng.integers(-50, 50, w.shape)
        yi = F.conv2d(xi, wi, stride=stride, dilation=dilation, groups=groups, method="direct")
    finally:
        _backend.set_backend(previous)
    s2, d2 = ntuple("", "", stride, 2, minimum=1), ntuple("", "", dilation, 2, minimum=1)
    ref = _naive.naive_conv(x.astype(np.float64), w.astype(np.float64), None, s2, ((1, 1), (2, 2)), d2, groups)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert yi.dtype == np.int64
    np.testing.assert_array_equal(yi, _naive.naive_conv(xi, wi, None, s2, ((0, 0), (0, 0)), d2, groups))
    # the row kernels: the same sums in the same order as the general kernel, equal to the bit
    # (F.conv2d's float32 rows of 16 or more take the register blocks of _numba_blocked.forward,
    # one rounding per multiply-add: tested against the reference in test_first_layer_forward)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)))
    rows = nd.direct_forward(xp, w, s2, d2, groups, y.shape[2:])
    general = np.zeros_like(y)
    nd._direct_forward(False, False)(xp, w, *s2, *d2, 0, 0, groups, np.zeros((1, 1, 1), np.float32),
                                      np.float32(0), general, 0, general.shape[0] * general.shape[1], 0)
    assert np.array_equal(rows.view(np.uint32), general.view(np.uint32))


# (x shape, w shape, stride, padding, dilation, groups): the padding as wide as the kernel, wider
# (outputs that see only padding), on one side only, and inputs narrower than the kernel (a column
# range that starts past the row's end in im2col)
PADDED_CASES = [
    ((2, 3, 6, 7), (4, 3, 3, 3), 1, (1, 1), 1, 1),
    ((2, 2, 5, 4), (4, 1, 3, 3), 1, (4, 5), 1, 2),  # outputs that read padding only
    ((1, 1, 1, 1), (2, 1, 5, 5), 1, (2, 2), 1, 1),  # a 1x1 image under a 5x5 kernel
    ((2, 4, 7, 9), (4, 1, 3, 3), (2, 3), (1, 2), (2, 1), 4),  # depthwise, strided, dilated
    ((2, 2, 6, 6), (3, 2, 2, 9), 1, (0, 4), (1, 1), 1),  # a kernel row wider than the rows kernels
    ((2, 3, 5, 8), (2, 3, 3, 4), (1, 2), ((2, 0), (0, 3)), 1, 1),  # asymmetric padding
]


def _reference_geometry(stride, padding, dilation):
    """``(stride, pads, dilation)`` in the loop reference's form."""
    from cnnlab.functional._args import ntuple

    s2, d2 = ntuple("", "", stride, 2, minimum=1), ntuple("", "", dilation, 2, minimum=1)
    pads = padding if isinstance(padding[0], tuple) else tuple((p, p) for p in padding)
    return s2, pads, d2


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's inf * 0
@pytest.mark.parametrize("method", ["direct", "gemm"])
@pytest.mark.parametrize(("xs", "ws", "stride", "padding", "dilation", "groups"), PADDED_CASES)
def test_compiled_paths_with_padding_match_the_loop_reference(xs, ws, stride, padding, dilation, groups, method):
    # the compiled loops (direct, and im2col reading the padding as zeros) on zero-padded inputs:
    # forward and both gradients match the loop
    # reference, integers exactly, and an infinite weight or upstream gradient that meets the
    # padding gives NaN there (inf * 0), as the reference does
    rng = np.random.default_rng(sum(xs) + sum(ws))
    s2, pads, d2 = _reference_geometry(stride, padding, dilation)
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "method": method}
    previous = _backend.set_backend("numba")
    try:
        xi, wi = rng.integers(-9, 9, xs), rng.integers(-9, 9, ws)
        yi = F.conv2d(xi, wi, **kw)
        gi = rng.integers(-9, 9, yi.shape)
        gxi, gwi, _ = F.conv_backward(gi, xi, wi, **kw)
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        w[0, 0, 0, 0] = np.inf
        w[-1, -1, -1, -1] = -np.inf
        y = F.conv2d(x, w, **kw)
        g = rng.standard_normal(y.shape)
        g[0, 0, 0, 0] = np.inf
        g[-1, -1, -1, -1] = np.nan
        gx, gw, _ = F.conv_backward(g, x, w, **kw)
    finally:
        _backend.set_backend(previous)
    assert yi.dtype == gxi.dtype == gwi.dtype == np.int64
    np.testing.assert_array_equal(yi, _naive.naive_conv(xi, wi, None, s2, pads, d2, groups))
    ref_gx, ref_gw = _naive.naive_conv_backward(gi, xi, wi, s2, pads, d2, groups)[:2]
    np.testing.assert_array_equal(gxi, ref_gx)
    np.testing.assert_array_equal(gwi, ref_gw)
    ref = _naive.naive_conv(x, w, None, s2, pads, d2, groups)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    ref_gx, ref_gw = _naive.naive_conv_backward(g, x, w, s2, pads, d2, groups)[:2]
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(ref_gw))
    np.testing.assert_array_equal(np.isnan(gx), np.isnan(ref_gx))
    np.testing.assert_allclose(gw, ref_gw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, ref_gx, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize("width", [1, 3, 8])
@pytest.mark.parametrize(("stride", "dilation", "padding"), [(1, 1, (1, 1)), ((2, 3), (1, 2), ((2, 0), (1, 3))),
                                                             (1, (2, 1), (0, 2))])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_buffered_direct_kernels_equal_the_padded_copy_to_the_bit(width, stride, dilation, padding, dtype):
    # depthwise problems pad each plane in a buffer of the thread instead of taking a padded copy:
    # the same loops over the same values, so forward and both gradients are equal to the bit
    from cnnlab.functional import _conv_backward_kernels as cb
    from cnnlab.functional import _conv_kernels as ck
    from cnnlab.functional import _numba_direct as nd
    from cnnlab.functional import _numba_direct_grad_w as ndw

    rng = np.random.default_rng(width)
    x = rng.integers(-20, 20, (3, 4, 7, 9)).astype(dtype)
    w = rng.integers(-20, 20, (4, 1, 3, width)).astype(dtype)
    if dtype == np.float32:
        x, w = x + rng.standard_normal(x.shape).astype(dtype), w * np.float32(0.37)
    s2, pads, d2 = _reference_geometry(stride, padding, dilation)
    assert nd.buffered(w.shape, 4, pads)
    previous = _backend.set_backend("numba")
    try:
        y, saved = ck.forward(x, w, s2, d2, 4, "direct", save=True, pads=pads)
        assert saved.xp is x and saved.crop is None  # no padded copy was made
        g = rng.integers(-20, 20, y.shape).astype(dtype)
        gx, gw = cb.backward(g, saved)
        xp = np.pad(x, ((0, 0), (0, 0), *pads))
        ey = nd.direct_forward(xp, w, s2, d2, 4, y.shape[2:])
        egw = ndw.direct_grad_w(xp, g, w.shape, s2, d2, 4)
        egx = nd.direct_grad_x(g, w, xp.shape, s2, d2, 4)[:, :, pads[0][0]:pads[0][0] + 7, pads[1][0]:pads[1][0] + 9]
    finally:
        _backend.set_backend(previous)
    view = np.uint32 if dtype == np.float32 else np.int64
    for got, expected in ((y, ey), (gw, egw), (gx, egx)):
        assert got.dtype == dtype and got.shape == expected.shape
        assert np.array_equal(got.view(view), np.ascontiguousarray(expected).view(view))
    if dtype == np.int64:
        np.testing.assert_array_equal(y, _naive.naive_conv(x, w, None, s2, pads, d2, 4))


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.parametrize(("stride", "padding", "dilation"), [(1, 1, 1), (2, ((2, 1),), 2)])
def test_buffered_depthwise_conv1d_matches_the_loop_reference(stride, padding, dilation):
    # 1-d problems reach the 2-d kernels with a height of 1 (padded along the width only)
    rng = np.random.default_rng(3)
    x, w = rng.integers(-9, 9, (3, 5, 11)), rng.integers(-9, 9, (5, 1, 3))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": 5, "method": "direct"}
    previous = _backend.set_backend("numba")
    try:
        y = F.conv1d(x, w, **kw)
        g = rng.integers(-9, 9, y.shape)
        gx, gw, _ = F.conv_backward(g, x, w, **kw)
    finally:
        _backend.set_backend(previous)
    pads = padding if isinstance(padding, tuple) else ((padding, padding),)
    np.testing.assert_array_equal(y, _naive.naive_conv(x, w, None, (stride,), pads, (dilation,), 5))
    ref_gx, ref_gw = _naive.naive_conv_backward(g, x, w, (stride,), pads, (dilation,), 5)[:2]
    np.testing.assert_array_equal(gx, ref_gx)
    np.testing.assert_array_equal(gw, ref_gw)


# (x shape, w shape, padding, dilation, groups): input gradients of stride 1 that the compiled
# kernels take as a gather (a correlation of the padded upstream gradient with turned filters):
# depthwise layers, and layers with several input channels per group
GATHER_CASES = [
    ((2, 4, 7, 9), (4, 1, 3, 3), (1, 1), 1, 4),  # padding = the kernel's reach: a 'same' layer
    ((2, 4, 7, 9), (4, 1, 3, 5), ((2, 0), (0, 3)), 1, 4),  # asymmetric and one-sided
    ((2, 3, 6, 5), (3, 1, 3, 3), (4, 5), 1, 3),  # wider than the kernel's reach: g is cropped
    ((2, 3, 8, 9), (6, 1, 3, 2), (2, 1), (2, 3), 3),  # dilated, 2 filters per channel
    ((1, 2, 5, 9), (2, 1, 1, 7), 0, 1, 2),  # no padding: g padded by the whole reach
    ((2, 1, 6, 6), (3, 1, 5, 5), 2, 1, 1),  # one input channel, several filters (groups=1)
    ((2, 4, 7, 9), (6, 2, 3, 3), (1, 1), 1, 2),  # 2 input channels a group: from a padded copy of g
    ((2, 6, 8, 9), (4, 6, 3, 5), ((2, 0), (0, 3)), (2, 1), 1),  # 6 channels, 4 filters, dilated, asymmetric
    ((1, 8, 5, 9), (4, 4, 1, 7), 0, 1, 2),  # no padding: g padded by the whole reach
]


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's inf * 0
@pytest.mark.parametrize(("xs", "ws", "padding", "dilation", "groups"), GATHER_CASES)
def test_depthwise_input_gradient_as_a_gather_matches_the_loop_reference(xs, ws, padding, dilation, groups):
    from cnnlab.functional import _numba_direct as nd

    rng = np.random.default_rng(sum(xs) + sum(ws))
    s2, pads, d2 = _reference_geometry(1, padding if isinstance(padding, tuple) else (padding, padding), dilation)
    kw = {"padding": padding, "dilation": dilation, "groups": groups, "method": "direct"}
    xi, wi = rng.integers(-9, 9, xs), rng.integers(-9, 9, ws)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    gi = rng.integers(-9, 9, F.conv2d(xi, wi, **kw).shape)
    g = rng.standard_normal(gi.shape)
    assert nd._gather(g, w, s2, d2, groups, pads) is not None  # the gather is what runs here
    winf = w.copy()
    winf[-1, 0, 0, -1] = np.inf
    assert nd._gather(g, winf, s2, d2, groups, pads) is None  # inf * 0 at g's border: the scatter
    previous = _backend.set_backend("numba")
    try:
        gxi = F.conv_backward(gi, xi, wi, **kw)[0]
        gx = F.conv_backward(g, x, w, **kw)[0]
        gx32 = F.conv_backward(g.astype(np.float32), x.astype(np.float32), w.astype(np.float32), **kw)[0]
        gxinf = F.conv_backward(g, x, winf, **kw)[0]
    finally:
        _backend.set_backend(previous)
    assert gxi.dtype == np.int64 and gx32.dtype == np.float32
    np.testing.assert_array_equal(gxi, _naive.naive_conv_backward(gi, xi, wi, s2, pads, d2, groups)[0])
    ref = _naive.naive_conv_backward(g, x, w, s2, pads, d2, groups)[0]
    np.testing.assert_allclose(gx, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx32, ref, rtol=1e-5, atol=1e-5)
    ref_inf = _naive.naive_conv_backward(g, x, winf, s2, pads, d2, groups)[0]
    np.testing.assert_array_equal(np.isnan(gxinf), np.isnan(ref_inf))
    np.testing.assert_allclose(gxinf, ref_inf, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the reference's inf * 0
@pytest.mark.parametrize("flat_bytes", [0, 1 << 30], ids=["rows", "flat"])
@pytest.mark.parametrize(("xs", "ws", "padding", "dilation", "groups"), [
    ((3, 4, 6, 7), (4, 1, 3, 3), (1, 1), 1, 4),  # depthwise, buffered
    ((2, 3, 5, 9), (6, 1, 3, 2), ((2, 0), (1, 3)), (2, 1), 3),  # 2 filters per channel, padded copy
    ((2, 2, 7, 6), (3, 2, 5, 3), 0, (1, 2), 1),  # no padding, 2 input channels
])
def test_direct_weight_gradient_rows_and_flat_match_the_loop_reference(flat_bytes, xs, ws, padding, dilation,
                                                                         groups, monkeypatch):
    # stride 1: the flat kernel (partial sums per flat position, the cells past each row's end
    # left out) where its sums fit FLAT_GRAD_W_BYTES, the row kernel otherwise; an infinite input
    # in the last column and a NaN upstream gradient in the last cell reach only the weights that
    # the definition gives them
    from cnnlab.functional import _numba_direct_grad_w as ndw

    monkeypatch.setattr(ndw, "FLAT_GRAD_W_BYTES", flat_bytes)
    rng = np.random.default_rng(sum(xs) + sum(ws))
    s2, pads, d2 = _reference_geometry(1, padding if isinstance(padding, tuple) else (padding, padding), dilation)
    kw = {"padding": padding, "dilation": dilation, "groups": groups, "method": "direct"}
    xi, wi = rng.integers(-9, 9, xs), rng.integers(-9, 9, ws)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    x[0, 0, 1, -1] = np.inf
    gi = rng.integers(-9, 9, F.conv2d(xi, wi, **kw).shape)
    g = rng.standard_normal(gi.shape)
    g[-1, -1, -1, -1] = np.nan
    previous = _backend.set_backend("numba")
    try:
        gwi = F.conv_backward(gi, xi, wi, **kw)[1]
        gw = F.conv_backward(g, x, w, **kw)[1]
    finally:
        _backend.set_backend(previous)
    np.testing.assert_array_equal(gwi, _naive.naive_conv_backward(gi, xi, wi, s2, pads, d2, groups)[1])
    ref = _naive.naive_conv_backward(g, x, w, s2, pads, d2, groups)[1]
    assert np.isnan(ref).any() and not np.isnan(ref).all()
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(ref))
    np.testing.assert_allclose(gw, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels, batch, positions", [(25, 100, 5), (3, 1, 1), (6, 7, 19), (1, 4, 33)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_product_to_channel_first_and_back_to_the_bit(dtype, channels, batch, positions, with_bias):
    """The GEMM path's transposes (``_numba_kernels.channel_first`` / ``channel_major``) against
    NumPy's copies of the transposed views, bit for bit: signed zeros and NaN included."""
    if not _backend.numba_available():
        pytest.skip("needs numba")
    from cnnlab.functional import _numba_kernels as nk

    rng = np.random.default_rng(channels * 1000 + positions)
    prod = rng.standard_normal((channels, batch * positions)).astype(dtype)
    prod.flat[::7] = -0.0
    prod.flat[::11] = np.nan
    bias = rng.standard_normal(channels).astype(dtype) if with_bias else None
    view = prod.reshape(channels, batch, positions).swapaxes(0, 1)
    want = view + bias.reshape(-1, 1) if with_bias else view.copy()
    got = nk.channel_first(prod, batch, bias)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    assert got.shape == (batch, channels, positions)
    np.testing.assert_array_equal(got.view(bits), np.ascontiguousarray(want).view(bits))
    into = np.full((batch, channels, positions), 5, dtype)
    assert nk.channel_first(prod, batch, bias, into) is into
    np.testing.assert_array_equal(into.view(bits), np.ascontiguousarray(want).view(bits))
    back = nk.channel_major(np.ascontiguousarray(view))
    np.testing.assert_array_equal(back.view(bits), prod.view(bits))


@pytest.mark.parametrize("shape, kernel, stride, padding", [((100, 25, 19), (25, 25, 3), 2, 1),
                                                            ((8, 6, 12, 12), (20, 6, 3, 3), 1, 1)])
def test_gemm_path_with_and_without_the_compiled_kernels_agree_to_the_bit(shape, kernel, stride, padding):
    if not _backend.numba_available():
        pytest.skip("needs numba")
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(kernel).astype(np.float32)
    b = rng.standard_normal(kernel[0]).astype(np.float32)
    results = {}
    for backend in ("numba", "numpy"):
        previous = _backend.set_backend(backend)
        try:
            xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
            y = F.conv(xt, wt, bt, stride=stride, padding=padding, method="gemm")
            (y * Tensor(np.linspace(-1, 1, y.data.size, dtype=np.float32).reshape(y.shape))).sum().backward()
            results[backend] = (y.data, xt.grad, wt.grad, bt.grad)
        finally:
            _backend.set_backend(previous)
    for got, want in zip(results["numba"], results["numpy"], strict=True):
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("spatial, method", [((4, 4), "gemm"), ((15, 17), "gemm"), ((16, 16), "pointwise"),
                                             ((20, 30), "pointwise")])
def test_1x1_layers_take_the_column_matrix_below_the_positions_floor(spatial, method):
    """A 1x1 layer with fewer than ``_pointwise.MIN_POSITIONS`` output positions per sample takes the
    column matrix (one large product), from it the batched products; both give the loop
    reference's values and gradients."""
    from cnnlab.functional import _conv_backward_kernels, _conv_kernels

    assert _pointwise.MIN_POSITIONS == 256  # (the spatial sizes above straddle it)
    rng = np.random.default_rng(sum(spatial))
    x = rng.standard_normal((3, 5, *spatial))
    w = rng.standard_normal((4, 5, 1, 1))
    y, saved = _conv_kernels.forward(x, w, (1, 1), (1, 1), 1, "gemm", save=True)
    assert saved.method == method
    np.testing.assert_allclose(y, _naive.naive_conv(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1), rtol=1e-12)
    g = rng.standard_normal(y.shape)
    grad_x, grad_w = _conv_backward_kernels.backward(g, saved)
    np.testing.assert_allclose(grad_x, np.einsum("bohw,oc->bchw", g, w[:, :, 0, 0]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_w[:, :, 0, 0], np.einsum("bohw,bchw->oc", g, x), rtol=1e-10, atol=1e-12)
