"""correlate/convolve methods: the automatic rule, the FFT and direct paths against SciPy and
the loop reference (every mode, 1-d to 3-d, stride and dilation), dtypes, gradients, errors.

FFT results are rounded differently from the direct sums; they are compared with a float64
reference within ``C * eps * L-dependent factor * (|x| correlated with |k|)``, the size of the
rounding errors of a floating-point correlation (no timing assertions: speed is in benchmarks/)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _correlate, _fft, _naive
from tests.functional.opinfo import scipy_signal

needs_scipy = pytest.mark.skipif(scipy_signal is None, reason="scipy not installed")

SHAPES = [((40,), (7,)), ((5,), (9,)), ((1,), (1,)), ((13, 17), (4, 5)), ((6, 5), (6, 5)), ((4, 3), (7, 6)),
          ((9, 8, 7), (3, 2, 4)), ((3, 4, 2), (3, 4, 2))]


def _valid_ok(xs, ks):
    return all(a >= b for a, b in zip(xs, ks, strict=True)) or all(a <= b for a, b in zip(xs, ks, strict=True))


def _cases():
    for (xs, ks), mode in itertools.product(SHAPES, ("valid", "same", "full")):
        if mode == "valid" and not _valid_ok(xs, ks):
            continue
        yield xs, ks, mode


def _bound(x, k, mode, stride=1, dilation=1, method="direct"):
    """``sum_t |x[j + t]| |k[t]|`` per output: the scale of the rounding error of each output."""
    return F.correlate(np.abs(x).astype(np.float64), np.abs(k).astype(np.float64), mode, stride, dilation,
                       method="direct")


def _assert_close(got, want, bound, eps):
    size = max(np.size(want), 2)
    tol = 8 * eps * np.log2(size) * (bound.max() if np.size(bound) else 0.0) + 4 * eps * np.abs(want)
    assert np.all(np.abs(np.asarray(got, np.float64) - want) <= tol), np.abs(got - want).max()


# ------------------------------------------------------------------ the automatic rule


def test_auto_takes_direct_for_integer_and_boolean_inputs_whatever_the_size():
    for dtype in (np.int64, np.int32, np.uint8, bool):
        x, k = np.ones((300, 300), dtype=dtype), np.ones((41, 41), dtype=dtype)
        assert F.choose_correlate_method(x, k) == "direct"
        assert F.choose_correlate_method(x, k, "full") == "direct"


def test_auto_takes_direct_for_small_kernels_and_fft_for_large_float_ones():
    for dtype in (np.float32, np.float64):
        img = np.ones((512, 512), dtype=dtype)
        assert F.choose_correlate_method(img, np.ones((3, 3), dtype=dtype)) == "direct"
        if _correlate._numba_ok(2, np.dtype(dtype)):  # NumPy's per-tap loop is near the crossover at 5x5
            assert F.choose_correlate_method(img, np.ones((5, 5), dtype=dtype)) == "direct"
        assert F.choose_correlate_method(img, np.ones((31, 31), dtype=dtype)) == "fft"
        assert F.choose_correlate_method(img, np.ones((31, 31), dtype=dtype), "same") == "fft"
        assert F.choose_correlate_method(np.ones((64, 64, 64), dtype), np.ones((9, 9, 9), dtype)) == "fft"
    assert F.choose_correlate_method(np.ones(50), np.ones(5)) == "direct"
    # a float kernel on an integer image makes a float result: the FFT is allowed
    assert F.choose_correlate_method(np.ones((512, 512), dtype=np.int64), np.ones((31, 31))) == "fft"


def test_auto_rule_holds_on_the_numpy_backend_too():
    previous = F.set_backend("numpy")
    try:
        img = np.ones((512, 512), dtype=np.float32)
        assert F.choose_correlate_method(img, np.ones((3, 3), np.float32)) == "direct"
        assert F.choose_correlate_method(img, np.ones((31, 31), np.float32)) == "fft"
        assert F.choose_correlate_method(img.astype(int), np.ones((31, 31), int)) == "direct"
    finally:
        F.set_backend(previous)


def test_auto_counts_stride_and_dilation():
    img, k = np.ones((512, 512)), np.ones((15, 15))
    # a large stride leaves few outputs: the direct sum over them is cheaper than any full FFT
    assert F.choose_correlate_method(img, k, stride=8) == "direct"
    # a dilated kernel costs its taps directly, but its full extent (here 25x25) in the FFT's padding
    assert F.choose_correlate_method(img, np.ones((3, 3)), dilation=12) == "direct"
    assert F.choose_correlate_method(img, np.ones((25, 25))) == "fft"


def test_choose_validates_like_correlate():
    with pytest.raises(ValueError, match="choose_correlate_method: mode must be one of"):
        F.choose_correlate_method(np.ones(4), np.ones(2), "middle")
    with pytest.raises(ValueError, match="choose_correlate_method: x and k must have the same number of dims"):
        F.choose_correlate_method(np.ones(4), np.ones((2, 2)))


# ------------------------------------------------------------------ values


@needs_scipy
@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
def test_every_mode_and_dim_matches_scipy_float64(method):
    rng = np.random.default_rng(0)
    for xs, ks, mode in _cases():
        x, k = rng.standard_normal(xs), rng.standard_normal(ks)
        for fn, name in ((F.correlate, "correlate"), (F.convolve, "convolve")):
            got = fn(x, k, mode, method=method)
            want = getattr(scipy_signal, name)(x, k, mode=mode, method="direct")
            assert got.shape == want.shape and got.dtype == np.float64, (xs, ks, mode)
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11, err_msg=f"{name} {xs} {ks} {mode}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fft_float_results_stay_within_rounding_of_float64(dtype):
    rng = np.random.default_rng(1)
    eps = np.finfo(dtype).eps
    for xs, ks, mode in [((512, 512), (31, 31), "valid"), ((200, 180), (15, 9), "same"), ((3000,), (201,), "full"),
                         ((30, 31, 29), (7, 6, 5), "same"), ((64, 64), (64, 64), "full")]:
        x = rng.standard_normal(xs).astype(dtype)
        k = rng.standard_normal(ks).astype(dtype)
        got = F.correlate(x, k, mode, method="fft")
        assert got.dtype == np.dtype(dtype)
        want = F.correlate(x.astype(np.float64), k.astype(np.float64), mode, method="direct")
        _assert_close(got, want, _bound(x, k, mode), eps)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_stride_and_dilation_match_the_loop_reference(method):
    rng = np.random.default_rng(2)
    for (xs, ks), mode in itertools.product([((23,), (4,)), ((17, 14), (3, 4)), ((9, 10, 8), (2, 3, 2))],
                                            ("valid", "same", "full")):
        x, k = rng.standard_normal(xs), rng.standard_normal(ks)
        for stride, dilation in ((2, 1), (1, 2), (3, 2), ((1, 2, 3)[:len(xs)], (2, 1, 1)[:len(xs)])):
            s = stride if isinstance(stride, tuple) else (stride,) * len(xs)
            d = dilation if isinstance(dilation, tuple) else (dilation,) * len(xs)
            got = F.correlate(x, k, mode, stride, dilation, method=method)
            want = _naive.naive_correlate(x, k, mode, s, d)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=f"{xs} {ks} {mode} {s} {d}")


def test_direct_numba_and_numpy_paths_agree_on_long_rows_and_3d():
    rng = np.random.default_rng(3)
    cases = [((10000,), (9,), (1,), (1,)), ((9001,), (5,), (3,), (2,)), ((7, 6000), (2, 3), (1, 2), (2, 1)),
             ((11, 12, 13), (3, 2, 4), (2, 1, 1), (1, 2, 1))]
    for xs, ks, s, d in cases:
        x, k = rng.standard_normal(xs), rng.standard_normal(ks)
        fast = F.correlate(x, k, "same", s, d, method="direct")
        previous = F.set_backend("numpy")
        try:
            plain = F.correlate(x, k, "same", s, d, method="direct")
        finally:
            F.set_backend(previous)
        np.testing.assert_allclose(fast, plain, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fast, _naive.naive_correlate(x, k, "same", s, d), rtol=1e-10, atol=1e-10)


def test_numpy_fft_fallback_matches_scipy_fft(monkeypatch):
    rng = np.random.default_rng(4)
    x, k = rng.standard_normal((37, 45)).astype(np.float32), rng.standard_normal((9, 11)).astype(np.float32)
    with_scipy = F.correlate(x, k, "full", method="fft")
    monkeypatch.setattr(_fft, "_scipy_fft", None)
    without = F.correlate(x, k, "full", method="fft")
    assert without.dtype == np.float32
    want = F.correlate(x.astype(np.float64), k.astype(np.float64), "full", method="direct")
    for got in (with_scipy, without):
        _assert_close(got, want, _bound(x, k, "full"), np.finfo(np.float32).eps)


def test_smooth_lengths_are_the_next_2_3_5_smooth_numbers():
    def smooth(m):
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 400):
        got = _fft._smooth_len(n)
        assert got >= n and smooth(got) and not any(smooth(m) for m in range(n, got)), n
    assert _fft.fast_len(512) == 512


@given(st.integers(1, 3), st.integers(0, 2**32 - 1), st.sampled_from(["valid", "same", "full"]), st.booleans())
def test_fft_equals_direct_property(ndim, seed, mode, kernel_larger):
    rng = np.random.default_rng(seed)
    stride = tuple(int(v) for v in rng.integers(1, 3, ndim))
    dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
    ks = tuple(int(v) for v in rng.integers(1, 5, ndim))
    keff = [d * (k - 1) + 1 for k, d in zip(ks, dilation, strict=True)]
    if kernel_larger:  # SciPy's 'valid' rule swaps the roles when the kernel covers x in every dim
        xs = tuple(max(1, e - int(v)) for e, v in zip(keff, rng.integers(0, 3, ndim), strict=True))
    else:
        xs = tuple(e + int(v) for e, v in zip(keff, rng.integers(0, 6, ndim), strict=True))
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)
    got = F.correlate(x, k, mode, stride, dilation, method="fft")
    np.testing.assert_allclose(got, F.correlate(x, k, mode, stride, dilation, method="direct"), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got, _naive.naive_correlate(x, k, mode, stride, dilation), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ dtypes and exactness


def test_lecture_example_stays_exact_integers_on_auto_and_direct():
    x, k = [[1, 0, 2], [3, 1, 0], [0, 0, 4]], [[1, 0], [0, 1]]
    for method in ("auto", "direct"):
        y = F.correlate(x, k, method=method)
        assert y.dtype == np.int64 and y.tolist() == [[2, 0], [3, 5]]


def test_large_integer_inputs_stay_exact_where_floats_would_round():
    rng = np.random.default_rng(5)
    x = rng.integers(-(2**26), 2**26, (20, 20))
    k = rng.integers(-(2**26), 2**26, (9, 9))  # sums of 81 products near 2**58: float64 would round
    y = F.correlate(x, k, "same")
    assert y.dtype == np.int64
    ref = _naive.naive_correlate(x.astype(object), k.astype(object), "same", (1, 1), (1, 1))
    assert y.tolist() == np.asarray(ref).tolist()


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtype_is_kept_by_every_method(method, dtype):
    x = np.linspace(-1, 1, 300).reshape(15, 20).astype(dtype)
    k = np.linspace(1, -1, 12).reshape(3, 4).astype(dtype)
    for mode in ("valid", "same", "full"):
        assert F.correlate(x, k, mode, method=method).dtype == np.dtype(dtype)
        assert F.convolve(x, k, mode, method=method).dtype == np.dtype(dtype)
        gx, gk = F.correlate_backward(np.ones_like(F.correlate(x, k, mode)), x, k, mode, method=method)
        assert gx.dtype == gk.dtype == np.dtype(dtype)


def test_integer_x_with_float_kernel_runs_in_the_kernels_float_dtype():
    x = np.arange(60).reshape(6, 10)
    k = np.full((3, 3), 0.5, dtype=np.float32)
    for method in ("direct", "fft"):
        y = F.correlate(x, k, method=method)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, F.correlate(x.astype(np.float64), k.astype(np.float64)), rtol=1e-5)


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize("name", ["correlate", "convolve"])
def test_backward_by_fft_matches_direct(name):
    rng = np.random.default_rng(6)
    backward = getattr(F, f"{name}_backward")
    for (xs, ks), mode, dilation in itertools.product(
            [((30,), (7,)), ((3,), (8,)), ((12, 11), (5, 4)), ((5, 4, 4), (2, 3, 2))], ("valid", "same", "full"),
            (1, 2)):
        x, k = rng.standard_normal(xs), rng.standard_normal(ks)
        try:
            y = getattr(F, name)(x, k, mode, dilation=dilation, method="direct")
        except ValueError:  # the dilated kernel outgrows x in 'valid' mode in some dims only
            continue
        g = rng.standard_normal(y.shape)
        direct = backward(g, x, k, mode, 1, dilation, method="direct")
        fft = backward(g, x, k, mode, 1, dilation, method="fft")
        ref = _naive_grads(name, g, x, k, mode, dilation)
        for a, b, r in zip(direct, fft, ref, strict=True):
            np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(b, r, rtol=1e-10, atol=1e-10)


def _naive_grads(name, g, x, k, mode, dilation):
    """The gradients from the loop reference: grad_x as the correlation of the zero-padded g with
    the flipped kernel (computed by _naive), grad_k[t] = <f(x, e_t), g> for every unit kernel e_t."""
    n = x.ndim
    kk = k[(slice(None, None, -1),) * n] if name == "convolve" else k
    d = (dilation,) * n
    ones = (1,) * n
    # grad_x[q] = sum_j g[j] * k[t] over j*1 + t*d - pad = q: the loop reference of the correlation of
    # g (zero-padded) with the flipped kernel, as in the module's derivation but from _naive.
    pads = _correlate._signal_pads("ref", x, k, mode, d)
    keff = [dd * (s - 1) + 1 for s, dd in zip(k.shape, d, strict=True)]
    gp = np.pad(g, [(e - 1 - lo, e - 1 - hi) for e, (lo, hi) in zip(keff, pads, strict=True)])
    gx = _naive.naive_correlate(gp, kk[(slice(None, None, -1),) * n], "valid", ones, d)
    gk = np.array([np.sum(_naive.naive_correlate(x, np.eye(k.size)[i].reshape(k.shape), mode, ones, d) * g)
                   for i in range(k.size)]).reshape(k.shape)
    if name == "convolve":
        gk = gk[(slice(None, None, -1),) * n]
    return gx, gk


def test_tensor_route_passes_the_method_to_backward():
    rng = np.random.default_rng(7)
    x, k = rng.standard_normal((40, 37)), rng.standard_normal((9, 8))
    g = rng.standard_normal((40, 37))
    grads = {}
    for method in ("direct", "fft"):
        xt, kt = Tensor(x.copy(), requires_grad=True), Tensor(k.copy(), requires_grad=True)
        F.correlate(xt, kt, "same", method=method).backward(g)
        grads[method] = (xt.grad, kt.grad)
    for a, b in zip(*grads.values(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_strided_backward_matches_the_loop_reference_on_every_method():
    rng = np.random.default_rng(8)
    x, k = rng.standard_normal((11, 9)), rng.standard_normal((3, 2))
    y = F.correlate(x, k, "full", 2)
    g = rng.standard_normal(y.shape)
    want = F.correlate_backward(g, x, k, "full", 2, method="direct")
    got = F.correlate_backward(g, x, k, "full", 2, method="fft")
    for a, b in zip(want, got, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("fn", [F.correlate, F.convolve])
def test_fft_refuses_integer_inputs_with_a_clear_error(fn):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"{name}: method 'fft' is inexact .* method='direct' or 'auto'"):
        fn([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [[1, 0], [0, 1]], method="fft")
    with pytest.raises(ValueError, match=f"{name}_backward: method 'fft' is inexact"):
        getattr(F, f"{name}_backward")([[1, 0], [0, 0]], [[1, 0, 2], [3, 1, 0], [0, 0, 4]], [[1, 0], [0, 1]],
                                       method="fft")


@pytest.mark.parametrize("fn", [F.correlate, F.convolve, F.correlate_backward, F.convolve_backward])
def test_bad_method_names_the_op_the_argument_and_the_choices(fn):
    args = (np.ones((3, 3)), np.ones((4, 4)), np.ones((2, 2))) if "backward" in fn.__name__ else (
        np.ones((4, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=rf"{fn.__name__}: method must be one of \['auto', 'direct', 'fft'\], "
                                         r"got 'gemm'"):
        fn(*args, method="gemm")
    with pytest.raises(TypeError, match=f"{fn.__name__}: method must be one of"):
        fn(*args, method=None)


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
def test_degenerate_inputs_raise_the_same_errors_on_every_method(method):
    with pytest.raises(ValueError, match="correlate: x must not be empty"):
        F.correlate(np.ones((0, 3)), np.ones((2, 2)), method=method)
    with pytest.raises(ValueError, match="correlate: k must not be empty"):
        F.correlate(np.ones((3, 3)), np.ones((2, 0)), method=method)
    with pytest.raises(ValueError, match="correlate: in 'valid' mode"):
        F.correlate(np.ones((4, 2)), np.ones((2, 3)), method=method)
    with pytest.raises(TypeError, match="correlate: k must have a boolean"):
        F.correlate(np.ones((4, 4)), np.ones((2, 2), dtype=complex), method=method)


@needs_scipy
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_one_element_and_kernel_larger_than_signal(method):
    for x, k in (([2.0], [3.0]), ([1.0, 2.0], [1.0, 2.0, 3.0, 4.0]), ([[1.0]], [[1.0, 2.0], [3.0, 4.0]])):
        for mode in ("valid", "same", "full"):
            got = F.correlate(x, k, mode, method=method)
            want = scipy_signal.correlate(x, k, mode=mode, method="direct")
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_module_names_its_methods():
    assert _correlate.METHODS == ("auto", "direct", "fft")


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
def test_overlap_save_blocks_of_a_long_1d_signal_match_direct(mode):
    rng = np.random.default_rng(9)
    x, k = rng.standard_normal(20000), rng.standard_normal(301)
    assert _fft.tile_lengths(x.shape, k.shape, ((0, 0),)) is not None  # the blocked path runs
    for stride, dilation in ((1, 1), (3, 2)):
        got = F.correlate(x, k, mode, stride, dilation, method="fft")
        want = F.correlate(x, k, mode, stride, dilation, method="direct")
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    x32, k32 = x.astype(np.float32), k.astype(np.float32)
    got = F.correlate(x32, k32, mode, method="fft")
    assert got.dtype == np.float32
    _assert_close(got, F.correlate(x, k, mode, method="direct"), _bound(x, k, mode), np.finfo(np.float32).eps)
    g = rng.standard_normal(got.shape)
    for a, b in zip(F.correlate_backward(g, x, k, mode, method="fft"),
                    F.correlate_backward(g, x, k, mode, method="direct"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_overlap_save_on_numpy_fft(monkeypatch):
    rng = np.random.default_rng(10)
    x, k = rng.standard_normal(9000), rng.standard_normal(100)
    monkeypatch.setattr(_fft, "_scipy_fft", None)
    assert _fft.tile_lengths(x.shape, k.shape, ((99, 99),)) is not None
    np.testing.assert_allclose(F.correlate(x, k, "full", method="fft"), F.correlate(x, k, "full", method="direct"),
                               rtol=1e-9, atol=1e-9)
