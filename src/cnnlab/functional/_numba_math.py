"""Elementary functions for the compiled elementwise kernels (Numba), written so that LLVM
vectorises the loops that call them.

Numba compiles ``math.exp`` to a call into the C library, one element at a time: a loop that
calls it is never vectorised (Numba's vector math library, SVML, needs an Intel build of LLVM
that llvmlite's wheels are not).  The functions here are plain arithmetic (multiplications,
additions, one reinterpretation of bits), inlined into the calling loop, so a loop over float32
or float64 values runs 4 lanes at a time with AVX2.  They compute in float64: a float32 result
rounded from them is the float64 value rounded once, as from NumPy's own float64 functions.

- :func:`exp_nonpos` is ``exp(a)`` for ``a <= 0`` (every caller here needs only that: the
  sigmoid, tanh and softmax take ``exp`` of ``-|x|`` or of ``x - max``), to about 1 ulp of
  float64, subnormal results included, 0 below -746, NaN for NaN;
- :func:`expm1_nonpos` is ``exp(a) - 1`` for ``a <= 0``, accurate relative to the result near 0
  (the tanh takes it of ``-2|x|``);
- :func:`log1p_unit` is ``log(1 + e)`` for ``0 <= e <= 1``.
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

# exp(a) = 2^n * exp(r) with n = round(a / ln 2) and r = a - n ln 2 (|r| <= ln(2)/2 = 0.347),
# ln 2 split in a high part with trailing zero bits (n * _LN2_HI is exact for |n| < 2^11) and the
# rest (Cody and Waite's reduction).  exp(r) by its Taylor series to r^13 (the next term is below
# 4e-18 of the result), evaluated in Estrin's scheme: pairs of terms first, so that the chain of
# dependent multiply-adds is 4 long instead of 13.  n is found without a float-to-int conversion
# (AVX2 has none for 64-bit lanes): adding 1.5 * 2^52 rounds ``a / ln 2`` to an integer held in
# the low bits of the sum's mantissa, and shifting those bits into the exponent field gives 2^n.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 to 32 bits: n * _LN2_HI is exact
_LN2_LO = 1.9082149292705877e-10  # ln 2 - _LN2_HI
_ROUNDER = 6755399441055744.0  # 1.5 * 2^52
_EXP_MIN = -746.0  # exp(-746) < 2^-1075: rounds to 0
# 2^n is built as 2^(n + 54) * 2^-54, so that n down to -1076 has a normal first factor and the
# result, where subnormal, is rounded once by the last multiplication
_BIAS_BITS = (1023 + 54) << 52
_TWO_M54 = 5.551115123125783e-17  # 2^-54

_C2, _C3, _C4, _C5 = 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120
_C6, _C7, _C8, _C9 = 1.0 / 720, 1.0 / 5040, 1.0 / 40320, 1.0 / 362880
_C10, _C11, _C12, _C13 = 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800


@intrinsic
def _bits(typingctx, value):  # pragma: no cover - compiled
    """The bits of a float64 as an int64 (no conversion: the same 64 bits)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, value):  # pragma: no cover - compiled
    """The float64 whose bits are the int64 ``value``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(inline="always", cache=True, fastmath={"contract"})
def exp_nonpos(a):  # pragma: no cover - compiled
    """``exp(a)`` of a float64 ``a <= 0`` (see the module's notes)."""
    a = max(a, _EXP_MIN)  # (NaN stays NaN: max keeps its first argument when the comparison fails)
    t = a * _LOG2E + _ROUNDER
    n = t - _ROUNDER
    r = (a - n * _LN2_HI) - n * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    p01 = 1.0 + r
    p23 = _C2 + r * _C3
    p45 = _C4 + r * _C5
    p67 = _C6 + r * _C7
    p89 = _C8 + r * _C9
    pab = _C10 + r * _C11
    pcd = _C12 + r * _C13
    low = p01 + r2 * p23
    mid = p45 + r2 * p67
    high = p89 + r2 * pab + r4 * pcd
    p = low + r4 * (mid + r4 * high)
    return (p * _from_bits((_bits(t) << 52) + _BIAS_BITS)) * _TWO_M54


@njit(inline="always", cache=True, fastmath={"contract"})
def sigmoid(v):  # pragma: no cover - compiled
    """``1 / (1 + exp(-v))`` of a float64, from ``e = exp(-|v|)`` (which never overflows):
    ``1 / (1 + e)`` for ``v >= 0``, ``e / (1 + e)`` below."""
    e = exp_nonpos(-abs(v))
    s = 1.0 / (1.0 + e)
    return s if v >= 0 else e * s


# expm1(a) = a + a^2/2! + ... : for -ln 2 < a <= 0 its Taylor series to a^17 (the next term is
# below 1e-17 of the result), for smaller ``a`` exp(a) - 1, which then loses at most one bit to
# cancellation (exp(a) < 1/2)
_EXPM1_SERIES = 0.6931471805599453  # ln 2
_D = tuple(1.0 / math.factorial(k) for k in range(2, 18))  # 1/2!, ..., 1/17!


@njit(inline="always", cache=True, fastmath={"contract"})
def expm1_nonpos(a):  # pragma: no cover - compiled
    """``exp(a) - 1`` of a float64 ``a <= 0``, with full relative accuracy near 0."""
    a2 = a * a
    a4 = a2 * a2
    a8 = a4 * a4
    # sum_{k=2..17} a^(k-2)/k!, in Estrin's scheme
    q0 = (_D[0] + a * _D[1]) + a2 * (_D[2] + a * _D[3])
    q1 = (_D[4] + a * _D[5]) + a2 * (_D[6] + a * _D[7])
    q2 = (_D[8] + a * _D[9]) + a2 * (_D[10] + a * _D[11])
    q3 = (_D[12] + a * _D[13]) + a2 * (_D[14] + a * _D[15])
    series = a + a2 * ((q0 + a4 * q1) + a8 * (q2 + a4 * q3))
    return series if a > -_EXPM1_SERIES else exp_nonpos(a) - 1.0


# log1p(e) for 0 <= e <= 1 as 2 atanh(s) with s = e / (2 + e) in [0, 1/3]: the odd series
# 2 (s + s^3/3 + s^5/5 + ...) to s^35 (the next term is below 1e-17 of the sum), in Estrin's
# scheme in s^2.  (The softplus of BCE with logits takes log1p(exp(-|x|)).)
_ODD = tuple(1.0 / (2 * k + 1) for k in range(18))  # 1, 1/3, ..., 1/35


@njit(inline="always", cache=True, fastmath={"contract"})
def log1p_unit(e):  # pragma: no cover - compiled
    """``log(1 + e)`` of a float64 ``0 <= e <= 1`` (to a few ulp)."""
    s = e / (2.0 + e)
    q = s * s
    q2 = q * q
    q4 = q2 * q2
    q8 = q4 * q4
    c = _ODD
    a = (c[0] + q * c[1]) + q2 * (c[2] + q * c[3]) + q4 * ((c[4] + q * c[5]) + q2 * (c[6] + q * c[7]))
    b = (c[8] + q * c[9]) + q2 * (c[10] + q * c[11]) + q4 * ((c[12] + q * c[13]) + q2 * (c[14] + q * c[15]))
    return 2.0 * s * (a + q8 * (b + q8 * (c[16] + q * c[17])))
