"""Compiled kernels (Numba) for the smooth activations: sigmoid, tanh and the exact GELU, each
forward and backward, imported only when Numba is installed and the backend allows it.

Each kernel is one pass over flat arrays (``prange`` over the elements), computing in float64
and rounding once to the output's dtype, with the same formulas as the NumPy code of
:mod:`cnnlab.functional._activation` (whose docstrings derive them).  The exponentials are
:func:`cnnlab.functional._numba_math.exp_nonpos` (arithmetic that vectorises, within 2 ulp of
``numpy.exp``) instead of the C library's, so the loops run 4 lanes at a time; NumPy's own
version makes 5-15 passes over the data in float64 on one core.  Measured on 2 cores
(N64 C256 14x14, float32, one process, medians): sigmoid forward 35 -> 2.9 ms, see
docs/BENCHMARKS.md (round 10) for the rest.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from cnnlab.functional import _backend
from cnnlab.functional._numba_math import exp_nonpos, expm1_nonpos
from cnnlab.functional._special import ERF_MACLAURIN, ERF_ONE, ERF_SMALL, ERF_STEP, erf_centre_table

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# erf's Taylor coefficients, one row per centre (contiguous: the row of an element's centre is
# read as one run), and its Maclaurin coefficients (see :mod:`cnnlab.functional._special`)
_ERF_ROWS = np.ascontiguousarray(erf_centre_table().T)
_ERF_LAST = _ERF_ROWS.shape[0] - 1
_M = ERF_MACLAURIN


@njit(inline="always", cache=True, fastmath={"contract"})
def _erf(z):  # pragma: no cover - compiled
    """erf of a float64, as :func:`cnnlab.functional._special.erf` computes it (to about 1 ulp)."""
    a = abs(z)
    q = a * a
    # Maclaurin series below ERF_SMALL (14 terms, Horner)
    p = _M[13]
    for k in range(12, -1, -1):
        p = _M[k] + p * q
    small = a + a * p
    # Taylor series about the nearest centre j/8 above it
    b = min(a, ERF_ONE)
    j = min(int(b / ERF_STEP + 0.5), _ERF_LAST)
    h = b - j * ERF_STEP
    row = _ERF_ROWS[j]
    t = row[11]
    for n in range(10, -1, -1):
        t = row[n] + t * h
    big = 1.0 if b >= ERF_ONE else t
    out = small if a < ERF_SMALL else big
    return -out if z < 0 else out


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
def _sigmoid(x, y):  # pragma: no cover - compiled
    for i in prange(y.size):
        v = np.float64(x[i])
        e = exp_nonpos(-abs(v))
        s = 1.0 / (1.0 + e)
        y[i] = s if v >= 0 else e * s


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
def _sigmoid_grad(g, x, out):  # pragma: no cover - compiled
    for i in prange(out.size):
        e = exp_nonpos(-abs(np.float64(x[i])))
        d = 1.0 + e
        out[i] = g[i] * (e / (d * d))


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
def _tanh(x, y):  # pragma: no cover - compiled
    # tanh|x| = -m / (2 + m) with m = expm1(-2|x|): no cancellation near 0
    for i in prange(y.size):
        v = np.float64(x[i])
        m = expm1_nonpos(-2.0 * abs(v))
        y[i] = math.copysign(abs(m / (2.0 + m)), v)


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
def _tanh_grad(g, x, out):  # pragma: no cover - compiled
    # 1/cosh(x)^2 = 4e / (1 + e)^2 with e = exp(-2|x|)
    for i in prange(out.size):
        e = exp_nonpos(-2.0 * abs(np.float64(x[i])))
        d = 1.0 + e
        out[i] = g[i] * (4.0 * e / (d * d))


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
def _gelu(x, y):  # pragma: no cover - compiled
    for i in prange(y.size):
        v = np.float64(x[i])
        r = (0.5 * v) * (1.0 + _erf(v * _SQRT_HALF))
        y[i] = 0.0 if v == -np.inf else r


@njit(parallel=True, cache=True, nogil=True, fastmath={"contract"})
def _gelu_grad(g, x, out):  # pragma: no cover - compiled
    # gelu'(x) = Phi(x) + x phi(x); the second term's limit at +-inf is 0
    for i in prange(out.size):
        v = np.float64(x[i])
        cdf = 0.5 * (1.0 + _erf(v * _SQRT_HALF))
        slope = v * (_INV_SQRT_2PI * exp_nonpos(-0.5 * v * v))
        out[i] = g[i] * (cdf + (0.0 if abs(v) == np.inf else slope))


_FORWARD = {"sigmoid": _sigmoid, "tanh": _tanh, "gelu": _gelu}
_BACKWARD = {"sigmoid": _sigmoid_grad, "tanh": _tanh_grad, "gelu": _gelu_grad}
# rough cost of one element in multiply-adds, for the choice of one thread or all
_WORK = {"sigmoid": 20, "tanh": 24, "gelu": 40}


def forward(name, x):
    """``name(x)`` of a float32 or float64 array, same dtype and shape."""
    y = np.empty(x.shape, x.dtype)
    with _backend.threads_for(_WORK[name] * y.size):
        _FORWARD[name](np.ascontiguousarray(x).reshape(-1), y.reshape(-1))
    return y


def backward(name, g, x):
    """``g * name'(x)`` for ``g`` and ``x`` of one float dtype and shape."""
    out = np.empty(x.shape, g.dtype)
    with _backend.threads_for(_WORK[name] * out.size):
        _BACKWARD[name](np.ascontiguousarray(g).reshape(-1), np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out
