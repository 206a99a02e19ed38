"""Special functions the activations need, in float64, without SciPy (the core is NumPy only)."""

from __future__ import annotations

import math

import numpy as np

# --------------------------------------------------------------------------------------------
# erf in float64 without SciPy
#
# |z| < 0.375: Maclaurin series  erf(a) = (2/sqrt(pi)) * sum_k (-1)^k a^(2k+1) / (k! (2k+1)),
#   evaluated as a + a*p(a^2) where p's constant term is 2/sqrt(pi) - 1, so the leading term
#   a is exact and p only adds a correction of relative size 0.13.
# 0.375 <= |z| < 6.0625: Taylor expansion about the nearest centre c = j/8 (|h| = |a - c| <=
#   1/16).  The derivatives of erf are erf^(n+1)(c) = (2/sqrt(pi)) (-1)^n H_n(c) exp(-c^2) with
#   the Hermite polynomials H_0 = 1, H_1 = 2c, H_(n+1) = 2c H_n - 2n H_(n-1); erf(c) itself comes
#   from the C library (math.erf).  The correction h*P(h) is at most a fifth of erf(c), so
#   rounding errors in it barely reach the result.
# |z| >= 6.0625: erf = +-1 exactly in float64 (erfc(6) < 2.2e-17).
# Measured against 40-digit mpmath: at most ~1 ulp (tests/functional/test_activation.py).
# --------------------------------------------------------------------------------------------
_ERF_SMALL = 0.375
_ERF_STEP = 0.125
_ERF_CENTRES = 49  # c = 0, 1/8, ..., 6
_ERF_TERMS = 12  # Taylor terms about each centre
_ERF_ONE = (_ERF_CENTRES - 0.5) * _ERF_STEP
_TWO_OVER_SQRT_PI_MINUS_1 = 0.12837916709551257390  # 2/sqrt(pi) - 1 to 20 digits


def _erf_maclaurin() -> np.ndarray:
    coef = [(-1) ** k * 2.0 / math.sqrt(math.pi) / (math.factorial(k) * (2 * k + 1)) for k in range(14)]
    coef[0] = _TWO_OVER_SQRT_PI_MINUS_1
    return np.array(coef)


def _erf_taylor_table() -> np.ndarray:
    """``table[n, j]``: the n-th Taylor coefficient of erf about ``c = j * _ERF_STEP``."""
    table = np.empty((_ERF_TERMS, _ERF_CENTRES))
    for j in range(_ERF_CENTRES):
        c = j * _ERF_STEP
        scale = 2.0 / math.sqrt(math.pi) * math.exp(-c * c)
        table[0, j] = math.erf(c)
        herm_prev, herm = 0.0, 1.0  # H_(n-1)(c)/(n-1)!, H_n(c)/n!
        for n in range(_ERF_TERMS - 1):
            table[n + 1, j] = scale * (-1) ** n * herm / (n + 1)
            herm_prev, herm = herm, (2.0 * c * herm - 2.0 * herm_prev) / (n + 1)
    return table


_ERF_MACLAURIN = _erf_maclaurin()
_ERF_TABLE = _erf_taylor_table()


def erf(z: np.ndarray) -> np.ndarray:
    """The error function of a float64 array, vectorised, to about 1 ulp (NaN stays NaN)."""
    a = np.abs(z)
    out = np.empty_like(a)
    small = a < _ERF_SMALL
    s = a[small]
    q = s * s
    p = np.full_like(s, _ERF_MACLAURIN[-1])
    for coef in _ERF_MACLAURIN[-2::-1]:
        p = coef + p * q
    out[small] = s + s * p
    big = ~small
    b = np.minimum(a[big], _ERF_ONE)  # NaN passes through, inf is clamped
    j = np.fmin(np.rint(b / _ERF_STEP), _ERF_CENTRES - 1).astype(np.intp)
    h = b - j * _ERF_STEP  # exact
    t = _ERF_TABLE[-1, j]
    for n in range(_ERF_TERMS - 2, -1, -1):
        t = _ERF_TABLE[n, j] + t * h
    out[big] = np.where(b >= _ERF_ONE, 1.0, t)
    return np.copysign(out, z)


# the names the compiled kernels (:mod:`cnnlab.functional._numba_activation`) evaluate erf with
ERF_SMALL, ERF_STEP, ERF_ONE, ERF_MACLAURIN = _ERF_SMALL, _ERF_STEP, _ERF_ONE, _ERF_MACLAURIN


def erf_centre_table() -> np.ndarray:
    """A copy of the Taylor coefficients of erf, ``table[n, j]`` about the centre ``j * ERF_STEP``."""
    return _ERF_TABLE.copy()
