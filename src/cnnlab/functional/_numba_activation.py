"""Compiled kernels (Numba) for the activations other than ReLU: sigmoid, tanh, the exact GELU,
leaky ReLU and ELU, each forward and backward, imported only when Numba is installed and the
backend allows it.

Each kernel is one pass over flat arrays (runs of elements the jobs), computing in float64 and
rounding once to the output's dtype (leaky ReLU: in the array's dtype, as NumPy does), with the
same formulas as the NumPy code of :mod:`cnnlab.functional._smooth` and
:mod:`cnnlab.functional._activation` (whose docstrings derive them). The exponentials are
:func:`cnnlab.functional._numba_math.exp_nonpos` (arithmetic that vectorises, within 2 ulp of
``numpy.exp``) instead of the C library's, so the loops run 4 lanes at a time; NumPy's own version
makes 5-15 passes over the data in float64 on one core. Measured on 2 cores (N64 C256 14x14,
float32, one process, medians): sigmoid forward 35 -> 4.2 ms, tanh backward 40 -> 3.9 ms; see
docs/BENCHMARKS.md (round 10) for the rest.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from cnnlab.functional import _backend
from cnnlab.functional._numba_kernels import contiguous
from cnnlab.functional._numba_math import exp_nonpos, expm1_nonpos, sigmoid
from cnnlab.functional._special import ERF_MACLAURIN, ERF_ONE, ERF_SMALL, ERF_STEP, erf_centre_table

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# erf's Taylor coefficients, one row per centre (contiguous: the row of an element's centre is
# read as one run), and its Maclaurin coefficients (see :mod:`cnnlab.functional._special`)
_ERF_ROWS = np.ascontiguousarray(erf_centre_table().T)
_ERF_LAST = _ERF_ROWS.shape[0] - 1
_M = ERF_MACLAURIN
_M_TUPLE = tuple(float(c) for c in ERF_MACLAURIN)


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


# For float32 results, erfc(z) for z >= 1/2 as exp(-z^2) * erfcx(z), erfcx (the scaled complement,
# smooth and slowly varying) by one polynomial in u, an affine map of t = (z - 2)/(z + 2), which
# takes [1/2, 10] to a short interval (Schonfelder's substitution): arithmetic only, so the loop
# vectorises, where the table of :func:`_erf` is read at a different centre in every lane.  The
# polynomial is the degree-14 Chebyshev interpolant of erfcx (40-digit mpmath values at the
# Chebyshev points, its coefficients turned into powers of u exactly, all below 0.27); it is within
# 4.5e-13 of erfcx on [1/2, 10] (relative), far below a float32 ulp.  Evaluated in Estrin's scheme:
# a chain of 4 multiply-adds instead of 14 (Clenshaw's recurrence over a degree-22 series, accurate
# to 1e-15, was latency-bound: 7.7 ms for the N64 C256 14x14 tensor against 2.7 for an exp).  Past
# z = 10, erfc < 2e-45 (below every float32): u is clamped there.
_ERFCX_K = 2.0
_ERFCX_MID = 1.0 / 30.0  # the middle of t's interval [-3/5, 2/3]
_ERFCX_INV_HALF = 30.0 / 19.0  # 1 / its half-width
_A = (
    0.24142173693072108, -0.2605140458115134, 0.09377488310196799, -0.01991746454984466,
    0.0007857469507593247, 0.0006934339559775661, -6.933426703265622e-05, -3.937155095732011e-05,
    2.5134166787910213e-06, 2.980686514280192e-06, 1.682242286128567e-07, -2.189035620469692e-07,
    -5.1169546995434246e-08, 1.0448829397157702e-08, 5.280627595301746e-09,
)


@njit(inline="always", cache=True, fastmath={"contract"})
def _erfc_big(z, e):  # pragma: no cover - compiled
    """erfc(z) for float64 ``z >= 1/2`` given ``e = exp(-z^2)``, to about 5e-13 relative (see above)."""
    zc = min(z, 10.0)
    u = ((zc - _ERFCX_K) / (zc + _ERFCX_K) - _ERFCX_MID) * _ERFCX_INV_HALF
    u2 = u * u
    u4 = u2 * u2
    low = (_A[0] + u * _A[1]) + u2 * (_A[2] + u * _A[3]) + u4 * ((_A[4] + u * _A[5]) + u2 * (_A[6] + u * _A[7]))
    high = (_A[8] + u * _A[9]) + u2 * (_A[10] + u * _A[11]) + u4 * ((_A[12] + u * _A[13]) + u2 * _A[14])
    return e * (low + (u4 * u4) * high)


@njit(inline="always", cache=True, fastmath={"contract"})
def _cdf32(v, e):  # pragma: no cover - compiled
    """The standard normal CDF of ``v`` (float64) given ``e = exp(-v^2/2)``, for float32 results:
    Maclaurin's erf below |v|/sqrt(2) = 1/2, ``erfc`` above (so the lower tail keeps its relative
    accuracy)."""
    z = abs(v) * _SQRT_HALF
    q = z * z
    q2 = q * q
    q4 = q2 * q2
    m = _M_TUPLE  # Maclaurin's 14 coefficients, in Estrin's scheme (a chain of 4 multiply-adds)
    low = (m[0] + q * m[1]) + q2 * (m[2] + q * m[3]) + q4 * ((m[4] + q * m[5]) + q2 * (m[6] + q * m[7]))
    high = (m[8] + q * m[9]) + q2 * (m[10] + q * m[11]) + q4 * (m[12] + q * m[13])
    half_erf = 0.5 * (z + z * (low + (q4 * q4) * high))
    half_erfc = 0.5 * _erfc_big(max(z, 0.5), e)
    if z < 0.5:
        return 0.5 + half_erf if v >= 0 else 0.5 - half_erf
    return 1.0 - half_erfc if v >= 0 else half_erfc


@_backend.job_kernel(fastmath={"contract"})
def _gelu32(x, y, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        v = np.float64(x[i])
        r = v * _cdf32(v, exp_nonpos(-0.5 * v * v))
        y[i] = 0.0 if v == -np.inf else r


@_backend.job_kernel(fastmath={"contract"})
def _gelu32_grad(g, x, out, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        v = np.float64(x[i])
        e = exp_nonpos(-0.5 * v * v)  # exp(-z^2) of erfc, and the density's
        slope = v * (_INV_SQRT_2PI * e)
        out[i] = g[i] * (_cdf32(v, e) + (0.0 if abs(v) == np.inf else slope))


@_backend.job_kernel(fastmath={"contract"})
def _sigmoid(x, y, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        y[i] = sigmoid(np.float64(x[i]))


@_backend.job_kernel(fastmath={"contract"})
def _sigmoid_grad(g, x, out, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        e = exp_nonpos(-abs(np.float64(x[i])))
        d = 1.0 + e
        out[i] = g[i] * (e / (d * d))


@_backend.job_kernel(fastmath={"contract"})
def _tanh(x, y, first_job, last_job, thread):  # pragma: no cover - compiled
    # tanh|x| = -m / (2 + m) with m = expm1(-2|x|): no cancellation near 0
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        v = np.float64(x[i])
        m = expm1_nonpos(-2.0 * abs(v))
        y[i] = math.copysign(abs(m / (2.0 + m)), v)


@_backend.job_kernel(fastmath={"contract"})
def _tanh_grad(g, x, out, first_job, last_job, thread):  # pragma: no cover - compiled
    # 1/cosh(x)^2 = 4e / (1 + e)^2 with e = exp(-2|x|)
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        e = exp_nonpos(-2.0 * abs(np.float64(x[i])))
        d = 1.0 + e
        out[i] = g[i] * (4.0 * e / (d * d))


@_backend.job_kernel(fastmath={"contract"})
def _gelu(x, y, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        v = np.float64(x[i])
        r = (0.5 * v) * (1.0 + _erf(v * _SQRT_HALF))
        y[i] = 0.0 if v == -np.inf else r


@_backend.job_kernel(fastmath={"contract"})
def _gelu_grad(g, x, out, first_job, last_job, thread):  # pragma: no cover - compiled
    # gelu'(x) = Phi(x) + x phi(x); the second term's limit at +-inf is 0
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        v = np.float64(x[i])
        cdf = 0.5 * (1.0 + _erf(v * _SQRT_HALF))
        slope = v * (_INV_SQRT_2PI * exp_nonpos(-0.5 * v * v))
        out[i] = g[i] * (cdf + (0.0 if abs(v) == np.inf else slope))


# The piecewise activations, with their parameter (``negative_slope``, ``alpha``).  Leaky ReLU
# multiplies in the array's dtype (the parameter comes in that dtype), as NumPy's
# ``x * negative_slope`` does, so the two agree to the bit; ELU takes ``expm1`` in float64.


@_backend.job_kernel
def _leaky_relu(x, y, slope, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        v = x[i]
        y[i] = v if v > 0 else v * slope


@_backend.job_kernel
def _leaky_relu_grad(g, x, out, slope, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        out[i] = g[i] if x[i] > 0 else g[i] * slope


@_backend.job_kernel(fastmath={"contract"})
def _elu(x, y, alpha, first_job, last_job, thread):  # pragma: no cover - compiled
    # x where x > 0 (NaN stays NaN), else alpha * expm1(x)
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        v = np.float64(x[i])
        y[i] = alpha * expm1_nonpos(min(v, 0.0)) if v <= 0 else v


@_backend.job_kernel(fastmath={"contract"})
def _elu_grad(g, x, out, alpha, first_job, last_job, thread):  # pragma: no cover - compiled
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        v = np.float64(x[i])
        out[i] = g[i] * (alpha * exp_nonpos(min(v, 0.0))) if v <= 0 else g[i]


_FORWARD = {"sigmoid": _sigmoid, "tanh": _tanh, "gelu": _gelu, "leaky_relu": _leaky_relu, "elu": _elu}
_BACKWARD = {"sigmoid": _sigmoid_grad, "tanh": _tanh_grad, "gelu": _gelu_grad, "leaky_relu": _leaky_relu_grad,
             "elu": _elu_grad}
# rough cost of one element in multiply-adds, for the choice of one thread or all
_WORK = {"sigmoid": 20, "tanh": 24, "gelu": 40, "leaky_relu": 2, "elu": 20}


_FLOAT32 = {"gelu": (_gelu32, _gelu32_grad)}  # float32 kernels of their own


def forward(name, x, *params):
    """``name(x, *params)`` of a float32 or float64 array, same dtype and shape."""
    y = np.empty(x.shape, x.dtype)
    kernel = _FLOAT32[name][0] if name in _FLOAT32 and x.dtype == np.float32 else _FORWARD[name]
    _backend.run_jobs(kernel, y.size, np.ascontiguousarray(x).reshape(-1), y.reshape(-1), *params,
                      work=_WORK[name] * y.size)
    return y


def backward(name, g, x, *params):
    """``g * name'(x, *params)`` for ``g`` and ``x`` of one float dtype and shape."""
    out = np.empty(x.shape, g.dtype)
    kernel = _FLOAT32[name][1] if name in _FLOAT32 and x.dtype == np.float32 else _BACKWARD[name]
    _backend.run_jobs(kernel, out.size, contiguous(g).reshape(-1), np.ascontiguousarray(x).reshape(-1),
                      out.reshape(-1), *params, work=_WORK[name] * out.size)
    return out
