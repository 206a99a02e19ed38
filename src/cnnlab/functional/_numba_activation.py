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


# For float32 results, the normal CDF's tail ``Q(v) = erfc(|v|/sqrt 2) / 2`` as ``exp(-v^2/2) *
# erfcx(z) / 2`` (``z = |v|/sqrt 2``), erfcx (the scaled complement, smooth and slowly varying) by
# one polynomial in u, an affine map of t = (z - 7/2)/(z + 7/2), which takes [0, 21/2] to
# [-1, 1/2] (Schonfelder's substitution); then ``Phi(v) = 1 - Q`` for ``v >= 0`` and ``Q`` below,
# so the lower tail keeps its relative accuracy and the upper half has no cancellation (``Q <=
# 1/2``).  Arithmetic only, so the loop vectorises, and one branch for every ``v``: an earlier
# version took Maclaurin's series of erf below z = 1/2 and a second polynomial above, and, with
# both computed in every lane, ran 2.6 ns a value on one core against 1.9 for this one.  The
# polynomial is the degree-15 Chebyshev interpolant of erfcx on [0, 21/2] (40-digit mpmath values
# at the Chebyshev points of u, its coefficients turned into powers of u in the same precision;
# their magnitudes sum to 1.0002, so evaluating them adds no error of its own); it is within 8.1e-13
# of erfcx there (relative), far below a float32 ulp.  Evaluated in Estrin's scheme (a chain of 4
# multiply-adds instead of 15).  Past z = 21/2 (|v| = 14.85) the GELU, ``v * Phi(v)``, is below
# 6e-49, which rounds to zero in float32: z is clamped there.  (The earlier version stopped at z =
# 10, where ``|v|`` times the tail still reaches float32's subnormals: for v from -14.36 to -14.15
# its results were a subnormal ulp off, 102 of 20,001 values there.)
_ERFCX_K = 3.5
_ERFCX_LAST = 10.5
_ERFCX_SCALE, _ERFCX_SHIFT = 4.0 / 3.0, 1.0 / 3.0  # u = (t - (-1/4)) / (3/4)
_A = (
    0.245119123345138, -0.332232932793862, 0.22372152145234123, -0.12236799742631009,
    0.053628236169971595, -0.018162439940564715, 0.004343820075645238, -0.0005261644787257522,
    -6.47927527806269e-05, 3.72069157103776e-05, -2.2179961268321145e-06, -1.8130429972943607e-06,
    2.760745692130436e-07, 9.551838584189743e-08, -1.6495508162028257e-08, -4.878365226089508e-09,
)


@njit(inline="always", cache=True, fastmath={"contract"})
def _cdf32(v, e):  # pragma: no cover - compiled
    """The standard normal CDF of ``v`` (float64) given ``e = exp(-v^2/2)``, for float32 results,
    to about 8e-13 relative (see above)."""
    z = min(abs(v) * _SQRT_HALF, _ERFCX_LAST)
    u = (z - _ERFCX_K) / (z + _ERFCX_K) * _ERFCX_SCALE + _ERFCX_SHIFT
    u2 = u * u
    u4 = u2 * u2
    a = _A
    low = ((a[0] + u * a[1]) + u2 * (a[2] + u * a[3])) + u4 * ((a[4] + u * a[5]) + u2 * (a[6] + u * a[7]))
    high = ((a[8] + u * a[9]) + u2 * (a[10] + u * a[11])) + u4 * ((a[12] + u * a[13]) + u2 * (a[14] + u * a[15]))
    tail = 0.5 * e * (low + (u4 * u4) * high)
    return 1.0 - tail if v >= 0 else tail


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
    # (NaN in x gives NaN, as PyTorch's vectorised ELU backward does: v + g is NaN there)
    for i in range(np.uint64(first_job), np.uint64(last_job)):
        v = np.float64(x[i])
        neg = g[i] * (alpha * exp_nonpos(min(v, 0.0)))
        out[i] = g[i] if v > 0 else (neg if v <= 0 else v + g[i])


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
