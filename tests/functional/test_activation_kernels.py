"""The compiled kernels of the activations other than ReLU (``functional/_numba_activation.py``) and the
exponential they are built on (``functional/_numba_math.py``), against an oracle that shares no
code with them: Python's ``math`` module (the C library), element by element, in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab.functional as F
from cnnlab import Tensor
from cnnlab.functional import _backend

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")

SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 1e-3, -0.4, 0.35, 0.7, -0.69, 20.0, -20.0, 88.0, -88.0,
           104.0, -104.0, math.inf, -math.inf, math.nan]


def _inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.standard_normal(3000) * 3, rng.uniform(-40, 40, 2000), SPECIAL])
    if dtype == np.float64:
        x = np.concatenate([x, [700.0, -700.0, 746.0, -746.0, 1e300, -1e300]])
    return x.astype(dtype)


def _sigmoid(v):
    if math.isnan(v):
        return math.nan
    e = math.exp(-abs(v))
    return 1 / (1 + e) if v >= 0 else e / (1 + e)


def _sigmoid_grad(v):
    if math.isnan(v):
        return math.nan
    e = math.exp(-abs(v))
    return e / ((1 + e) * (1 + e))


def _tanh_grad(v):
    if math.isnan(v):
        return math.nan
    if abs(v) > 300:  # cosh(v)^2 would overflow; 1/cosh^2 = 4 exp(-2|v|) to far below an ulp there
        return 4 * math.exp(-2 * abs(v))
    return 1 / math.cosh(v) ** 2


def _gelu(v):
    if math.isnan(v):
        return math.nan
    return 0.0 if v == -math.inf else 0.5 * v * (1 + math.erf(v / math.sqrt(2)))


def _gelu_grad(v):
    if math.isnan(v):
        return math.nan
    if math.isinf(v):
        return 1.0 if v > 0 else 0.0
    return 0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)


SLOPE, ALPHA = 0.1, 1.5


def _leaky(v):
    return v if v > 0 or math.isnan(v) else v * SLOPE


def _leaky_grad(v):  # (NaN: the left piece's slope, as PyTorch's x > 0 test gives)
    return 1.0 if v > 0 else SLOPE


def _elu(v):
    return v if v > 0 or math.isnan(v) else ALPHA * math.expm1(v)


def _elu_grad(v):  # (NaN: NaN, as PyTorch's vectorised kernel gives on tensors of a vector's length or more;
    # its scalar loop, on shorter ones, gives the right piece's 1)
    if math.isnan(v):
        return math.nan
    return 1.0 if v > 0 else ALPHA * math.exp(v)


ORACLES = {  # name: (forward, derivative)
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "tanh": (math.tanh, _tanh_grad),
    "gelu": (_gelu, _gelu_grad),
    "leaky_relu": (_leaky, _leaky_grad),
    "elu": (_elu, _elu_grad),
}
PARAMS = {"leaky_relu": {"negative_slope": SLOPE}, "elu": {"alpha": ALPHA}}


def _oracle(fn, x):
    return np.array([fn(float(v)) for v in x])


def _check(got, want, x, dtype, name, grad=False):
    """float32: within 1 ulp of the float64 oracle; float64: within a few ulp.  Where the exact
    GELU's ``1 + erf`` cancels (x < -1), both compute ``erf`` to about 1 ulp of 1, so the result
    is within a few float64 ulp of ``|x| + 1`` (absolute), as in PyTorch's formula; so is its
    derivative ``Phi(x) + x phi(x)`` everywhere (its terms cancel near x = -0.75)."""
    assert got.dtype == dtype
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    got, want, x = got[ok].astype(np.float64), want[ok], x[ok].astype(np.float64)
    assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0])) or name != "tanh"
    if dtype == np.float32:
        tol = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64) * 1.0
    else:
        tol = 8 * np.spacing(np.abs(want))
    if name == "gelu":
        tol = tol + np.where((x < -1) | grad, 8 * np.spacing(np.abs(x) + 1), 0.0)
    with np.errstate(invalid="ignore"):  # (inf - inf where both are inf: equal, so fine)
        err = np.where(got == want, 0.0, np.abs(got - want))
    bad = ~((err <= tol) | (got == want))
    assert not bad.any(), f"{name} {dtype}: {x[bad][:5]} -> {got[bad][:5]}, want {want[bad][:5]}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ORACLES))
def test_forward_and_backward_match_math(monkeypatch, name, dtype):
    from cnnlab.functional import _numba_activation as na

    calls = []
    for kind in ("forward", "backward"):
        real = getattr(na, kind)
        monkeypatch.setattr(na, kind, lambda *a, real=real, kind=kind: calls.append(kind) or real(*a))
    x = _inputs(dtype)
    g = np.random.default_rng(1).uniform(0.5, 2.0, x.size).astype(dtype)
    forward, derivative = ORACLES[name]
    with _backend.using("numba"):
        y = getattr(F, name)(x, **PARAMS.get(name, {}))
        grad = getattr(F, name + "_backward")(g, x, **PARAMS.get(name, {}))
    assert calls == ["forward", "backward"]
    _check(y, _oracle(forward, x), x, dtype, name)
    _check(grad, g.astype(np.float64) * _oracle(derivative, x), x, dtype, name, grad=True)


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_autograd_route_takes_the_kernels(monkeypatch, name):
    from cnnlab.functional import _numba_activation as na

    calls = []
    for kind in ("forward", "backward"):
        real = getattr(na, kind)
        monkeypatch.setattr(na, kind, lambda *a, real=real, kind=kind: calls.append(kind) or real(*a))
    x = np.random.default_rng(2).standard_normal((4, 3, 5, 6)).astype(np.float32) * 4
    xt = Tensor(x, requires_grad=True)
    with _backend.using("numba"):
        y = getattr(F, name)(xt, **PARAMS.get(name, {}))
        y.sum().backward()
    assert calls == ["forward", "backward"]
    forward, derivative = ORACLES[name]
    flat = x.reshape(-1)
    _check(np.asarray(y.data).reshape(-1), _oracle(forward, flat), flat, np.float32, name)
    _check(np.asarray(xt.grad).reshape(-1), _oracle(derivative, flat), flat, np.float32, name, grad=True)


def test_shapes_and_non_contiguous_inputs_keep_their_layout():
    x = np.random.default_rng(3).standard_normal((6, 5, 4)).astype(np.float32)[:, ::2].transpose(2, 0, 1)
    with _backend.using("numba"):
        y = F.tanh(x)
    assert y.shape == x.shape
    want = _oracle(math.tanh, x.reshape(-1)).reshape(x.shape)
    assert np.all(np.abs(y - want) <= np.spacing(np.abs(want).astype(np.float32)))


def test_exp_nonpos_against_math_exp():
    from numba import njit

    from cnnlab.functional._numba_math import exp_nonpos, expm1_nonpos

    @njit
    def both(a, out, out1):
        for i in range(a.size):
            out[i] = exp_nonpos(a[i])
            out1[i] = expm1_nonpos(a[i])

    rng = np.random.default_rng(4)
    a = -np.concatenate([rng.uniform(0, 1, 2000), rng.uniform(0, 760, 2000), [0.0, 5e-324, 0.6931471805599453,
                         708.4, 744.0, 745.1, 745.2, 746.0, 1000.0, math.inf]])
    out, out1 = np.empty_like(a), np.empty_like(a)
    both(a, out, out1)
    want = np.array([math.exp(v) for v in a])
    assert np.all(np.abs(out - want) <= 2 * np.spacing(want))  # subnormal results included
    want1 = np.array([math.expm1(v) for v in a])
    assert np.all(np.abs(out1 - want1) <= 4 * np.spacing(np.abs(want1)))
    nan = np.array([math.nan])
    both(nan, out[:1], out1[:1])
    assert math.isnan(out[0]) and math.isnan(out1[0])


def _near_midpoint(ref: np.ndarray, rel: float, absolute: float) -> np.ndarray:
    """Where the float64 ``ref`` lies within ``rel * |ref| + absolute`` of a point halfway between
    two float32 values (there a float32 result may round either way)."""
    r32 = ref.astype(np.float32)
    down = np.nextafter(r32, np.float32(-np.inf)).astype(np.float64)
    up = np.nextafter(r32, np.float32(np.inf)).astype(np.float64)
    mid = np.minimum(np.abs(ref - (r32 + down) / 2), np.abs(ref - (r32 + up) / 2))
    return mid <= rel * np.abs(ref) + absolute


def test_gelu_float32_is_correctly_rounded():
    """The float32 GELU and its derivative are the float64 values rounded once: on a fine grid
    from the lower tail (results down to float32's subnormals) to the top, every result equals the
    C library's value rounded to float32, except within 1e-11 (relative) of a point halfway between
    two float32s, where the two float64 computations may round either way."""
    grid = np.linspace(-14.5, 10.0, 200_001).astype(np.float32)
    x = np.concatenate([grid, np.random.default_rng(5).standard_normal(50_000).astype(np.float32) * 2])
    g = np.ones_like(x)
    with _backend.using("numba"):
        y, grad = F.gelu(x), F.gelu_backward(g, x)
    v = x.astype(np.float64)
    cdf = np.array([0.5 * math.erfc(-t / math.sqrt(2)) for t in v])
    ref = v * cdf
    dref = cdf + v * np.exp(-v * v / 2) / math.sqrt(2 * math.pi)
    bad = (y != ref.astype(np.float32)) & ~_near_midpoint(ref, 1e-11, 0.0)
    assert not bad.any(), f"gelu {x[bad][:5]} -> {y[bad][:5]}, want {ref[bad][:5]}"
    # (the derivative's terms cancel near x = -0.75: there the oracle's own error is ~1e-16 absolute)
    bad = (grad != dref.astype(np.float32)) & ~_near_midpoint(dref, 1e-11, 1e-15)
    assert not bad.any(), f"gelu' {x[bad][:5]} -> {grad[bad][:5]}, want {dref[bad][:5]}"
