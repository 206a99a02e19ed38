"""The numbers of a worked solution: which arithmetic they use, and how each format writes them.

A solution computes in one of three arithmetics, chosen from its inputs:

- ``"integer"``: every input is an integer; arrays are ``int64`` and every conv, ReLU and
  max-pool result is an exact integer.
- ``"rational"``: some input is a :class:`fractions.Fraction` and none is a float; arrays have ``dtype=object`` and
  hold Python ``int`` and ``Fraction`` values, so every result is an exact rational.  Average
  pooling of integers switches to this arithmetic (4/3 stays 4/3).
- ``"float"``: some input is a float; arrays keep their floating dtype (exact inputs are
  converted, as Python turns ``Fraction(1, 2) * 0.5`` into a float).
"""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Integral, Real
from typing import Any

import numpy as np

INTEGER, RATIONAL, FLOAT = "integer", "rational", "float"


def is_exact(a: np.ndarray) -> bool:
    """True for the object arrays of ``int`` / ``Fraction`` that rational arithmetic uses."""
    return a.dtype == object


def arithmetic_of(a: np.ndarray) -> str:
    """``"integer"``, ``"rational"`` or ``"float"`` for an array of a solution."""
    if a.dtype == object:
        return RATIONAL
    return FLOAT if a.dtype.kind == "f" else INTEGER


def _exact_scalar(v: Any) -> int | Fraction:
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, Integral):
        return int(v)
    if isinstance(v, Fraction):
        return v
    return Fraction(float(v))  # exact value of the binary float


def to_exact(a: np.ndarray) -> np.ndarray:
    """Object array of Python ``int`` / ``Fraction`` holding exactly the values of ``a``.

    Floats become the Fraction of their exact binary value; NaN and infinities cannot, and raise
    ``ValueError``.
    """
    out = np.empty(a.shape, dtype=object)
    for index, v in np.ndenumerate(a):
        if isinstance(v, (float, np.floating)) and not math.isfinite(v):
            raise ValueError(f"explain: {v} has no exact rational value")
        out[index] = _exact_scalar(v)
    return out


def to_float(a: np.ndarray) -> np.ndarray:
    """``float64`` copy of an exact (object) array, for the transcendental activations."""
    return np.array([float(v) for v in a.ravel()], dtype=np.float64).reshape(a.shape)


def as_values(op: str, name: str, value: Any) -> np.ndarray:
    """The user's numbers as an ``int64``, floating or exact (object) array.

    Booleans and integers become ``int64`` (Python ints too large for it stay exact), floating
    arrays keep their dtype, and any :class:`~fractions.Fraction` makes the whole array exact.

    Raises
    ------
    TypeError
        For strings, complex numbers or other non-real entries.
    ValueError
        For ragged nesting or an empty array.
    """
    if isinstance(value, (str, bytes, dict, set)) or value is None:
        raise TypeError(f"{op}: {name} must be an array of real numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise ValueError(f"{op}: {name} must be rectangular, got a ragged nesting of lists") from None
    if arr.size == 0:
        raise ValueError(f"{op}: {name} must not be empty, got shape {arr.shape}")
    if arr.dtype.kind == "b" or arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and int(arr.max()) > 2**63 - 1:
            return to_exact(arr)
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        return arr
    if arr.dtype != object:
        raise TypeError(f"{op}: {name} must hold real numbers, got dtype {arr.dtype}")
    flat = list(arr.ravel())
    for v in flat:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, Real):
            if isinstance(v, (list, tuple, np.ndarray)):
                raise ValueError(f"{op}: {name} must be rectangular, got a ragged nesting of lists")
            raise TypeError(f"{op}: {name} must hold real numbers, got {v!r}")
    if any(isinstance(v, Fraction) for v in flat):
        return to_exact(arr)
    if all(isinstance(v, Integral) for v in flat):
        if all(-(2**63) <= int(v) < 2**63 for v in flat):
            return arr.astype(np.int64)
        return to_exact(arr)
    return arr.astype(np.float64)


def common_arithmetic(*arrays: np.ndarray) -> str:
    """The arithmetic for a computation on several inputs: float wins (as in Python, where a
    Fraction times a float is a float), then rational, then integer."""
    kinds = {arithmetic_of(a) for a in arrays}
    if FLOAT in kinds:
        return FLOAT
    return RATIONAL if RATIONAL in kinds else INTEGER


# ---------------------------------------------------------------------------------------------
# writing numbers


def plain(v: Any, precision: int = 6) -> str:
    """A number as text: ``5``, ``-4/3``, ``0.333333``, ``2.0``, ``-inf``, ``nan``."""
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, Fraction):
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    if isinstance(v, Integral):
        return str(int(v))
    f = float(v)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    text = f"{f:.{precision}g}"
    if "e" not in text and "." not in text and "n" not in text:
        text += ".0"
    return text


def latex(v: Any, precision: int = 6) -> str:
    """A number in LaTeX: ``5``, ``-\\frac{4}{3}``, ``0.333333``, ``-\\infty``."""
    if isinstance(v, Fraction) and v.denominator != 1:
        sign = "-" if v < 0 else ""
        return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"
    text = plain(v, precision)
    if text in ("inf", "-inf"):
        return text.replace("inf", "\\infty")
    if text == "nan":
        return "\\mathrm{NaN}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa} \\times 10^{{{int(exponent)}}}"
    return text


def is_negative(v: Any) -> bool:
    try:
        return bool(v < 0)
    except TypeError:
        return False


def is_fraction(v: Any) -> bool:
    return isinstance(v, Fraction) and v.denominator != 1
