"""Activation-specific tests: registry entries against the loop references and PyTorch, gradient
checks, subgradients at kinks, numerical stability, dtype rules, erf accuracy and error messages.

The generic registry tests (test_registry.py) run the same OPS through shared checks; the tests
here cover what only activations have.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cnnlab.functional._activation import (
    elu,
    elu_backward,
    leaky_relu,
    leaky_relu_backward,
    relu,
    relu_backward,
)
from cnnlab.functional._naive import naive_gelu, naive_log_softmax, naive_relu, naive_softmax
from cnnlab.functional._smooth import gelu, gelu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward
from cnnlab.functional._softmax import log_softmax, log_softmax_backward, softmax, softmax_backward
from cnnlab.functional._special import erf as _erf
from tests.functional.opinfo import OpInfo, rand, rng, to_torch, torch
from tests.functional.ops_activation import OPS

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")

TOL = {
    np.dtype(np.float32): dict(rtol=2e-6, atol=1e-7),
    np.dtype(np.float64): dict(rtol=1e-13, atol=1e-15),
}
BY_NAME = {info.name: info for info in OPS}
FORWARD = {info.name: info.op for info in OPS}
BACKWARD = {info.name: info.backward for info in OPS}
# the keyword each parametrised op needs, with a value
KWARGS = {"softmax": {"dim": -1}, "log_softmax": {"dim": -1}}


def _ids(ops: list[OpInfo]) -> list[str]:
    return [info.name for info in ops]


def _torch_call(name: str, x: np.ndarray, kwargs: dict, grad_out: np.ndarray | None = None):
    """Forward (and, given grad_out, backward) through torch autograd: NumPy out."""
    xt = to_torch(x).requires_grad_(grad_out is not None)
    fn = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}.get(name) or getattr(torch.nn.functional, name)
    yt = fn(xt, **kwargs)
    if grad_out is None:
        return yt.detach().numpy(), None
    yt.backward(to_torch(grad_out))
    return yt.detach().numpy(), xt.grad.numpy()


# ---------------------------------------------------------------------------------------------
# values and gradients over the registry samples
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("info", OPS, ids=_ids(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_match_loop_reference(info: OpInfo, dtype):
    samples = list(info.samples(np.dtype(dtype)))
    assert len(samples) >= 4
    for s in samples:
        out = info.op(*s.args, **s.kwargs)
        assert out.dtype == np.dtype(dtype) and out.shape == s.args[0].shape, s
        np.testing.assert_allclose(out, info.reference(*s.args, **s.kwargs), err_msg=repr(s), **TOL[np.dtype(dtype)])


@needs_torch
@pytest.mark.parametrize("info", OPS, ids=_ids(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_and_gradients_match_torch(info: OpInfo, dtype):
    """Forward against torch in the same dtype; backward against torch autograd in float64 on the
    same inputs (torch's float32 kernels round more than ours: gelu 'tanh' forms 1 - tanh^2)."""
    r = rng(3)
    for s in info.samples(np.dtype(dtype)):
        x = s.args[0]
        g = r.standard_normal(x.shape).astype(dtype)
        expected, _ = _torch_call(info.name, x, s.kwargs)
        np.testing.assert_allclose(info.op(x, **s.kwargs), expected, err_msg=repr(s), **TOL[np.dtype(dtype)])
        _, expected_grad = _torch_call(info.name, x.astype(np.float64), s.kwargs, g.astype(np.float64))
        grad = info.backward(g, x, **s.kwargs)
        assert grad.dtype == np.dtype(dtype), s
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(grad, expected_grad, err_msg=repr(s), **tol)


def _central_differences(op, x: np.ndarray, g: np.ndarray, kwargs: dict, eps: float = 1e-6) -> np.ndarray:
    """d<op(x), g>/dx for every entry of x, by central differences."""
    out = np.empty(x.size)
    for i in range(x.size):
        plus, minus = x.copy(), x.copy()
        plus.flat[i] += eps
        minus.flat[i] -= eps
        out[i] = (np.sum(op(plus, **kwargs) * g) - np.sum(op(minus, **kwargs) * g)) / (2 * eps)
    return out.reshape(x.shape)


@pytest.mark.parametrize("info", OPS, ids=_ids(OPS))
def test_backward_matches_central_differences(info: OpInfo):
    r = rng(4)
    for s in info.samples(np.dtype(np.float64)):
        x = s.args[0]
        if x.size > 60:  # the 4-D samples: the 3-D ones already cover every code path
            continue
        g = r.standard_normal(x.shape)
        numeric = _central_differences(info.op, x, g, s.kwargs)
        np.testing.assert_allclose(info.backward(g, x, **s.kwargs), numeric, rtol=1e-6, atol=1e-8, err_msg=repr(s))


@pytest.mark.parametrize("info", OPS, ids=_ids(OPS))
def test_registry_errors_raise_with_clear_messages(info: OpInfo):
    cases = list(info.errors())
    assert len(cases) >= 5
    for case in cases:
        with pytest.raises(case.exc, match=case.match):
            info.op(*case.args, **case.kwargs)


def test_registry_samples_avoid_kinks_and_cover_dims():
    for info in OPS:
        for s in info.samples(np.dtype(np.float64)):
            assert np.min(np.abs(s.args[0])) >= 0.05 or info.name in ("softmax", "log_softmax"), s
    dims = {(s.args[0].ndim, s.kwargs["dim"]) for s in BY_NAME["softmax"].samples(np.dtype(np.float64))}
    assert {d for _, d in dims} >= {0, 1, -1, -2}
    assert {n for n, _ in dims} == {1, 2, 3, 4}


# ---------------------------------------------------------------------------------------------
# kinks: the subgradient PyTorch picks
# ---------------------------------------------------------------------------------------------
KINKS = [
    ("relu", {}, 0.0),
    ("leaky_relu", {}, 0.01),
    ("leaky_relu", {"negative_slope": 0.2}, 0.2),
    ("leaky_relu", {"negative_slope": -0.5}, -0.5),
    ("elu", {}, 1.0),
    ("elu", {"alpha": 1.5}, 1.5),
    ("gelu", {}, 0.5),
    ("gelu", {"approximate": "tanh"}, 0.5),
]


@pytest.mark.parametrize(("name", "kwargs", "slope"), KINKS)
def test_derivative_at_zero(name, kwargs, slope):
    x = np.array([0.0, -0.0, 0.0])
    g = np.array([1.0, 1.0, -2.0])
    grad = BACKWARD[name](g, x, **kwargs)
    np.testing.assert_array_equal(grad, slope * g)
    if torch is not None:
        _, expected = _torch_call(name, x, kwargs, g)
        np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_elu_backward_at_nan_is_nan(backend):
    """ELU's gradient where x is NaN is NaN (PyTorch's vectorised kernel), not grad_out (the x > 0
    branch); beside it, the two branches and the kink, by hand: g, alpha * exp(x) * g, alpha * g."""
    from cnnlab.functional import _backend

    if backend == "numba" and not _backend.numba_available():
        pytest.skip("needs numba")
    x = np.tile(np.array([np.nan, 2.0, -1.0, 0.0]), 20_000)  # (large enough for the compiled kernel)
    g = np.tile(np.array([3.0, 3.0, 3.0, 3.0]), 20_000)
    with _backend.using(backend):
        for dtype in (np.float64, np.float32):
            grad = elu_backward(g.astype(dtype), x.astype(dtype), alpha=0.5)
            assert grad.dtype == dtype
            np.testing.assert_array_equal(grad[:4], np.array([np.nan, 3.0, 1.5 * np.exp(-1.0), 1.5], dtype))
            np.testing.assert_array_equal(grad.reshape(-1, 4), np.broadcast_to(grad[:4], (20_000, 4)))


def test_relu_backward_at_zero_and_nan_like_torch():
    x = np.array([-1.0, 0.0, 2.0, np.nan])
    g = np.array([5.0, 5.0, 5.0, 5.0])
    np.testing.assert_array_equal(relu_backward(g, x), [0.0, 0.0, 5.0, 5.0])
    if torch is not None:
        np.testing.assert_array_equal(relu_backward(g, x), _torch_call("relu", x, {}, g)[1])


# ---------------------------------------------------------------------------------------------
# exact integers and dtype rules
# ---------------------------------------------------------------------------------------------
def test_relu_on_the_lecture_conv_output_is_exact_int():
    y = relu(np.array([[2, 0], [3, 5]]))
    assert y.dtype == np.int64
    assert y.tolist() == [[2, 0], [3, 5]]
    assert relu(np.array([[-7, 0], [3, -1]])).tolist() == [[0, 0], [3, 0]]


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.bool_])
def test_relu_on_integers_gives_exact_int64(dtype):
    x = rand((4, 5), np.int64 if dtype == np.bool_ else dtype, seed=5).astype(dtype)
    y = relu(x)
    assert y.dtype == np.int64
    assert y.tolist() == naive_relu(x.astype(object)).tolist()
    g = rand((4, 5), np.int64, seed=6)
    gx = relu_backward(g, x)
    assert gx.dtype == np.int64
    assert gx.tolist() == [
        [gi if xi > 0 else 0 for gi, xi in zip(gr, xr, strict=True)]
        for gr, xr in zip(g.tolist(), x.tolist(), strict=True)
    ]


def test_relu_of_large_uint8_and_int64_values_is_exact():
    assert relu(np.array([255, 0, 128], dtype=np.uint8)).tolist() == [255, 0, 128]
    big = np.array([2**62 + 1, -(2**62)], dtype=np.int64)
    assert relu(big).tolist() == [2**62 + 1, 0]


@pytest.mark.parametrize("name", list(FORWARD))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_floats_keep_their_dtype(name, dtype):
    x = rand((3, 4), dtype, seed=7)
    kwargs = KWARGS.get(name, {})
    assert FORWARD[name](x, **kwargs).dtype == np.dtype(dtype)
    assert BACKWARD[name](np.ones_like(x), x, **kwargs).dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", [n for n in FORWARD if n != "relu"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_non_relu_activations_compute_integers_in_float64(name, dtype):
    x = np.array([[0, 1, 2], [3, 1, 0]], dtype=dtype)
    kwargs = KWARGS.get(name, {})
    y = FORWARD[name](x, **kwargs)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, FORWARD[name](x.astype(np.float64), **kwargs), rtol=0, atol=0)


def test_backward_dtype_promotes_grad_out_and_x():
    x32 = rand((2, 3), np.float32, seed=8)
    assert sigmoid_backward(np.ones((2, 3), dtype=np.int64), x32).dtype == np.float32
    assert sigmoid_backward(np.ones((2, 3)), x32).dtype == np.float64
    assert softmax_backward(np.ones((2, 3), dtype=np.int64), np.ones((2, 3), dtype=int), dim=0).dtype == np.float64
    assert relu_backward(np.ones((2, 3), dtype=np.int32), x32).dtype == np.float32
    assert leaky_relu(np.array([-2, 3])).tolist() == [-0.02, 3.0]


def test_lists_and_scalars_are_accepted():
    assert relu([[-1, 2]]).tolist() == [[0, 2]]
    assert float(sigmoid(0.0)) == 0.5
    assert sigmoid(0.0).shape == ()
    for value in (0.2, 3.0):  # both erf branches on a 0-d input
        np.testing.assert_allclose(gelu(value), 0.5 * value * (1 + math.erf(value / math.sqrt(2))), rtol=1e-15)
        assert gelu(value).shape == gelu_backward(1.0, value).shape == ()
    np.testing.assert_allclose(tanh([0.5]), [math.tanh(0.5)], rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# numerical stability and non-finite inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_large_inputs(dtype):
    x = np.array([-1e30, -1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0, 1e30], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = sigmoid(x)
        grad = sigmoid_backward(np.ones_like(x), x)
    assert y.dtype == np.dtype(dtype)
    assert y[0] == 0 and y[1] == 0 and y[4] == 0.5 and y[-1] == 1 and y[-2] == 1
    assert np.all(np.isfinite(grad)) and np.all(grad >= 0) and grad[4] == 0.25
    # tails keep their relative accuracy: sigmoid(-30) = exp(-30) / (1 + exp(-30))
    np.testing.assert_allclose(y[3], math.exp(-30) / (1 + math.exp(-30)), rtol=2e-6 if dtype == np.float32 else 1e-15)
    np.testing.assert_allclose(grad[3], grad[5], rtol=0)
    if torch is not None:
        np.testing.assert_allclose(y, torch.sigmoid(to_torch(x)).numpy(), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_is_stable_for_huge_inputs(name, dtype):
    x = np.stack([np.linspace(-1e4, 1e4, 9), np.linspace(1e4, 0.0, 9), np.full(9, -3e4)]).astype(dtype)
    g = rand(x.shape, dtype, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = FORWARD[name](x, dim=1)
        grad = BACKWARD[name](g, x, dim=1)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(np.sum(softmax(x, dim=1), axis=1), 1.0, rtol=1e-6)
    # the loop reference (math.exp per element after subtracting the slice maximum) always
    ref = naive_softmax(x, dim=1) if name == "softmax" else naive_log_softmax(x, dim=1)
    np.testing.assert_allclose(y, ref.astype(dtype), **TOL[np.dtype(dtype)])
    if torch is not None:
        expected, expected_grad = _torch_call(name, x, {"dim": 1}, g)
        np.testing.assert_allclose(y, expected, **TOL[np.dtype(dtype)])
        np.testing.assert_allclose(grad, expected_grad, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_minus_infinity_entries_match_torch(name):
    x = np.array([[0.0, -np.inf, 1.0, -np.inf], [-np.inf, -np.inf, -np.inf, 5.0]])
    g = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = FORWARD[name](x, dim=1)
        grad = BACKWARD[name](g, x, dim=1)
    ref = naive_softmax(x, dim=1) if name == "softmax" else naive_log_softmax(x, dim=1)
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
    np.testing.assert_allclose(y, ref, rtol=1e-15)
    if name == "softmax":
        assert y[1].tolist() == [0.0, 0.0, 0.0, 1.0]
    if torch is not None:
        expected, expected_grad = _torch_call(name, x, {"dim": 1}, g)
        np.testing.assert_allclose(y, expected, rtol=1e-15)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_all_minus_infinity_slice_gives_nan_quietly(name):
    x = np.array([[-np.inf, -np.inf], [0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = FORWARD[name](x, dim=1)
    assert np.all(np.isnan(y[0])) and np.all(np.isfinite(y[1]))
    if torch is not None:
        assert np.all(np.isnan(_torch_call(name, x, {"dim": 1})[0][0]))


def test_zero_dimensional_input_counts_as_one_dimensional():
    for dim in (0, -1):
        assert softmax(np.float64(3.0), dim=dim) == 1.0
        assert log_softmax(np.float64(3.0), dim=dim) == 0.0
        assert softmax_backward(np.float64(2.0), np.float64(3.0), dim=dim) == 0.0
        assert log_softmax_backward(np.float64(2.0), np.float64(3.0), dim=dim) == 0.0
    assert softmax(np.float32(3.0), dim=0).shape == ()
    with pytest.raises(ValueError, match=r"softmax: dim must be in \[-1, 0\]"):
        softmax(np.float64(3.0), dim=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_warnings_at_extreme_finite_inputs(dtype):
    big = np.finfo(dtype).max
    x = np.array([-big, -1e4, -50.0, 50.0, 1e4, big], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, fn in FORWARD.items():
            kwargs = KWARGS.get(name, {})
            assert np.all(~np.isnan(fn(x, **kwargs))), name
            assert np.all(np.isfinite(BACKWARD[name](np.ones_like(x), x, **kwargs))), name
        for mode in ("none", "tanh"):
            y = gelu(x, approximate=mode)
            np.testing.assert_array_equal(y, np.where(x > 0, x, 0.0).astype(dtype))
            np.testing.assert_array_equal(gelu_backward(np.ones_like(x), x, approximate=mode), (x > 0).astype(dtype))


def test_infinite_inputs_give_the_limits():
    x = np.array([-np.inf, np.inf])
    assert relu(x).tolist() == [0.0, np.inf]
    assert leaky_relu(x, negative_slope=0.5).tolist() == [-np.inf, np.inf]
    assert elu(x, alpha=2.0).tolist() == [-2.0, np.inf]
    assert sigmoid(x).tolist() == [0.0, 1.0]
    assert tanh(x).tolist() == [-1.0, 1.0]
    for mode in ("none", "tanh"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert gelu(x, approximate=mode).tolist() == [0.0, np.inf]
            assert gelu_backward(np.ones(2), x, approximate=mode).tolist() == [0.0, 1.0]
    for bwd in (sigmoid_backward, tanh_backward):
        assert bwd(np.ones(2), x).tolist() == [0.0, 0.0]
    assert elu_backward(np.ones(2), x, alpha=2.0).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("name", list(FORWARD))
def test_nan_propagates_through_every_forward(name):
    x = np.array([[np.nan, 1.0, -1.0]])
    y = FORWARD[name](x, **KWARGS.get(name, {}))
    assert np.isnan(y[0, 0])
    if name not in ("softmax", "log_softmax"):  # elementwise: the other entries are untouched
        assert np.all(np.isfinite(y[0, 1:]))


# ---------------------------------------------------------------------------------------------
# gelu and erf accuracy
# ---------------------------------------------------------------------------------------------
def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    return np.abs(got - exact) / np.spacing(np.abs(exact))


def test_erf_within_about_one_ulp_of_mpmath():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    r = rng(11)
    z = np.concatenate(
        [
            r.uniform(-7, 7, 1500),
            r.uniform(-0.5, 0.5, 300),
            np.array([1e-300, 1e-20, 1e-8, 0.375, 0.3749999999, 0.4375, 6.0625, 6.06249, 3.0, -5.5]),
        ]
    )
    exact = np.array([float(mpmath.erf(mpmath.mpf(float(v)))) for v in z])
    assert np.max(_ulps(_erf(z), exact)) <= 1.2


def test_erf_against_math_erf_and_special_values():
    z = np.linspace(-9, 9, 40001)
    exact = np.array([math.erf(v) for v in z])
    nonzero = exact != 0
    assert np.max(_ulps(_erf(z)[nonzero], exact[nonzero])) <= 2
    special = np.array([0.0, -0.0, 5e-324, -5e-324, np.inf, -np.inf, 1e300, -1e300])
    got = _erf(special)
    assert got.tolist() == [0.0, 0.0, 5e-324, -5e-324, 1.0, -1.0, 1.0, -1.0]
    assert np.signbit(got[1])
    assert np.isnan(_erf(np.array([np.nan]))[0])


@pytest.mark.parametrize("mode", ["none", "tanh"])
def test_gelu_float64_is_accurate_to_a_few_ulp(mode):
    x = np.linspace(-8, 8, 16001)
    y = gelu(x, approximate=mode)
    ref = naive_gelu(x, approximate=mode)  # math.erf / math.tanh per element
    # Where 1 + erf(x/sqrt2) cancels (x << 0) every implementation, PyTorch's included, carries an
    # absolute error of about |x|/2 * 1e-16; elsewhere the agreement is relative.
    np.testing.assert_allclose(y, ref, rtol=1e-15, atol=2e-15)
    positive = x > -0.5
    np.testing.assert_allclose(y[positive], ref[positive], rtol=1e-15, atol=1e-300)
    if torch is not None:
        np.testing.assert_allclose(y, _torch_call("gelu", x, {"approximate": mode})[0], rtol=1e-15, atol=2e-15)


@needs_torch
@pytest.mark.parametrize("mode", ["none", "tanh"])
def test_gelu_backward_matches_torch_on_a_fine_grid(mode):
    x = np.linspace(-8, 8, 4001)
    g = np.ones_like(x)
    _, expected = _torch_call("gelu", x, {"approximate": mode}, g)
    np.testing.assert_allclose(gelu_backward(g, x, approximate=mode), expected, rtol=1e-14, atol=1e-14)


def test_gelu_tanh_backward_is_accurate_where_tanh_saturates():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    k, c = mpmath.sqrt(2 / mpmath.pi), mpmath.mpf(0.044715)
    x = np.linspace(-8, 8, 161)
    exact = [mpmath.diff(lambda z: z / 2 * (1 + mpmath.tanh(k * (z + c * z**3))), mpmath.mpf(v)) for v in x]
    got = gelu_backward(np.ones_like(x), x, approximate="tanh")
    np.testing.assert_allclose(got, np.array([float(e) for e in exact]), rtol=0, atol=4e-16)


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------
@given(
    x=arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(1, 6)),
        elements=st.floats(-50, 50, allow_nan=False, allow_subnormal=False),
    )
)
def test_softmax_properties(x):
    y = softmax(x, dim=1)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(softmax(x + 7.5, dim=1), y, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.exp(log_softmax(x, dim=1)), y, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(softmax(x.T, dim=0), y.T, rtol=1e-15, atol=0)
    g = np.cos(np.arange(x.size)).reshape(x.shape)
    # softmax sums to 1 along dim, so its gradient along dim sums to 0; a constant shift of
    # grad_out along dim changes nothing.
    gx = softmax_backward(g, x, dim=1)
    np.testing.assert_allclose(gx.sum(axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(softmax_backward(g + 3.0, x, dim=1), gx, atol=1e-13)
    np.testing.assert_allclose(log_softmax_backward(g, x, dim=1).sum(axis=1), 0.0, atol=1e-14)


@given(
    v=st.floats(-30, 30, allow_nan=False),
    slope=st.floats(-3, 3, allow_nan=False),
)
def test_elementwise_identities(v, slope):
    x = np.array([v])
    np.testing.assert_allclose(sigmoid(x) + sigmoid(-x), 1.0, rtol=1e-15)
    np.testing.assert_allclose(tanh(x), 2 * sigmoid(2 * x) - 1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(relu(x) - relu(-x), x, rtol=0, atol=0)
    np.testing.assert_allclose(leaky_relu(x, negative_slope=slope), relu(x) - slope * relu(-x), rtol=1e-15, atol=0)
    np.testing.assert_allclose(leaky_relu(x, negative_slope=0.0), relu(x), rtol=0, atol=0)
    np.testing.assert_allclose(gelu(x) - gelu(-x), x, rtol=1e-15, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# errors of the backward passes
# ---------------------------------------------------------------------------------------------
X = np.linspace(-1, 1, 6).reshape(2, 3)


@pytest.mark.parametrize("name", list(BACKWARD))
def test_backward_rejects_bad_grad_out_and_x(name):
    bwd = BACKWARD[name]
    op = f"{name}_backward"
    kwargs = KWARGS.get(name, {})
    with pytest.raises(ValueError, match=re.escape(f"{op}: grad_out must have the shape of x (2, 3), got (3,)")):
        bwd(np.ones(3), X, **kwargs)
    with pytest.raises(TypeError, match=f"{op}: grad_out must have a boolean, integer or floating dtype"):
        bwd(np.array([["a", "b", "c"]] * 2), X, **kwargs)
    with pytest.raises(TypeError, match=f"{op}: x must be a numeric array"):
        bwd(np.ones((2, 3)), None, **kwargs)
    assert bwd(np.ones((0, 3)), np.ones((0, 3)), **kwargs).shape == (0, 3)  # empty in, empty out (issue 13)
    with pytest.raises(ValueError, match=f"{op}: grad_out must have the shape of x"):
        bwd(np.ones((1, 3)), np.ones((0, 3)), **kwargs)


def test_backward_rejects_bad_options():
    with pytest.raises(ValueError, match=re.escape("softmax_backward: dim must be in [-2, 1] for a 2-D input, got 2")):
        softmax_backward(X, X, dim=2)
    with pytest.raises(TypeError, match="log_softmax_backward: dim must be an int, got '0'"):
        log_softmax_backward(X, X, dim="0")
    with pytest.raises(ValueError, match=r"gelu_backward: approximate must be one of \['none', 'tanh'\], got 'Tanh'"):
        gelu_backward(X, X, approximate="Tanh")
    with pytest.raises(TypeError, match="leaky_relu_backward: negative_slope must be a real number"):
        leaky_relu_backward(X, X, negative_slope="0.1")
    with pytest.raises(TypeError, match="elu_backward: alpha must be a real number"):
        elu_backward(X, X, alpha=[1.0])


def test_softmax_error_message_names_op_argument_and_range():
    with pytest.raises(ValueError) as info:
        softmax(X, dim=5)
    assert str(info.value) == "softmax: dim must be in [-2, 1] for a 2-D input, got 5"


def test_numpy_scalar_options_do_not_change_the_dtype():
    x = rand((4,), np.float32, seed=12)
    assert leaky_relu(x, negative_slope=np.float64(0.1)).dtype == np.float32
    assert elu(x, alpha=np.float64(0.5)).dtype == np.float32
    assert elu_backward(x, x, alpha=np.int64(2)).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_relu_matches_the_definition_bit_for_bit_on_every_backend(dtype, backend):
    # large enough for the compiled kernel; special values spread through it: NaN stays NaN, -0.0
    # and negatives give +0.0, +inf stays, positives pass unchanged (max(x, 0) written out here)
    import cnnlab

    if backend == "numba" and not _numba_importable():
        pytest.skip("numba is not installed")
    values = np.random.default_rng(5).standard_normal((64, 6, 30, 30)).astype(dtype)
    flat = values.reshape(-1)
    flat[::97] = np.nan
    flat[1::89] = -0.0
    flat[2::83] = np.inf
    flat[3::79] = -np.inf
    previous = cnnlab.set_backend(backend)
    try:
        got = relu(values[:, :, 1:-1, 1:-1])  # a strided view, too
    finally:
        cnnlab.set_backend(previous)
    view = values[:, :, 1:-1, 1:-1]
    expected = np.where(view > 0, view, dtype(0.0))
    expected = np.where(np.isnan(view), view, expected)
    assert got.dtype == dtype and got.shape == view.shape
    assert np.array_equal(got.view(np.uint8), np.ascontiguousarray(expected).view(np.uint8))


def _numba_importable() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    from cnnlab.functional import _backend

    return _backend.numba_available()
