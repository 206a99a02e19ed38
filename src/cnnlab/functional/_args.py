"""Argument normalisation, validation and output-size arithmetic shared by every operator.

Each helper takes the name of the public op and of the argument it checks, so that an error
reads like ``conv2d: stride must be positive integers, got (0, 1)``.  Validation happens once,
at the public entry point, before any work is done.  Wrong types or dtypes raise ``TypeError``;
wrong values or shapes raise ``ValueError``.  Nothing here uses ``assert``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np

PadPairs = tuple[tuple[int, int], ...]

_NUMERIC_KINDS = "biuf"


def _describe(value: Any) -> str:
    """Short description of a received value for an error message."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_array(op: str, name: str, x: Any, allow_empty: bool = False) -> np.ndarray:
    """Return ``x`` as a numeric NumPy array, non-empty unless ``allow_empty``.

    Lists, tuples and scalars are converted with ``np.asarray``.  Booleans count as integers.
    Operators pass ``allow_empty=True`` for inputs PyTorch accepts with zero elements (a batch of
    0 samples) and then check the other dims themselves (:func:`check_batch_only_empty`).

    Raises
    ------
    TypeError
        If ``x`` cannot become an array or its dtype is not boolean, integer or floating point.
    ValueError
        If ``x`` is ragged, or empty where ``allow_empty`` is False.
    """
    if isinstance(x, (str, bytes, dict, set)) or x is None:
        raise TypeError(f"{op}: {name} must be a numeric array, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{op}: {name} must be a rectangular numeric array, got a ragged sequence ({exc})"
        ) from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"{op}: {name} must have a boolean, integer or floating dtype, got dtype {arr.dtype}"
        )
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{op}: {name} must not be empty, got shape {arr.shape}")
    return arr


def check_batch_only_empty(op: str, name: str, x: np.ndarray, batch_axis: int = 0) -> None:
    """Allow a zero-size batch axis (PyTorch returns an empty result) but no other zero dim."""
    zero = [i for i, size in enumerate(x.shape) if size == 0 and i != batch_axis]
    if zero:
        raise ValueError(
            f"{op}: {name} must not be empty in dim {zero[0]} (only the batch dim may be 0), got shape {x.shape}"
        )


def result_dtype(*arrays: np.ndarray) -> np.dtype:
    """The dtype an exact operator computes and returns in.

    All-integer (or boolean) inputs accumulate in ``int64`` so that uint8 images never overflow;
    otherwise the floating inputs decide (float32 stays float32, float64 stays float64) and
    integer inputs are promoted to that float type.
    """
    floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
    if not floats:
        return np.dtype(np.int64)
    return np.result_type(*floats)


_INT64_MAX = 2**63 - 1


def _max_abs(a: np.ndarray) -> int:
    """The largest magnitude in ``a`` as a Python int (no overflow, even for int64's minimum)."""
    if a.size == 0:
        return 0
    return max(abs(int(a.max())), abs(int(a.min())))


def check_exact_range(op: str, terms: int, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> None:
    """Refuse all-integer inputs whose exact sums of ``terms`` products could overflow int64.

    The exact integer path accumulates in int64; a sum of ``terms`` products of entries of ``x``
    and ``weight`` (plus a bias) stays below ``2**63`` when
    ``terms * max|x| * max|weight| + max|bias| <= 2**63 - 1``.  Beyond that bound the result could
    wrap silently, so the op refuses before any work and names the numbers.  Floating inputs pass.

    Examples
    --------
    >>> import numpy as np
    >>> check_exact_range("conv2d", 4, np.array([2**31]), np.array([2**31]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: conv2d: these integer inputs could overflow int64 in the exact sums: up to 4 products of ...
    """
    arrays = (x, weight) if bias is None else (x, weight, bias)
    if any(a.dtype.kind == "f" for a in arrays):
        return
    mx, mw = _max_abs(x), _max_abs(weight)
    bound = terms * mx * mw + (0 if bias is None else _max_abs(bias))
    if bound > _INT64_MAX:
        raise ValueError(
            f"{op}: these integer inputs could overflow int64 in the exact sums: up to {terms} products of "
            f"|x| <= {mx} and |weight| <= {mw} reach {bound} > 2**63 - 1; use smaller integers, or float64"
        )


def float_dtype(x: np.ndarray) -> np.dtype:
    """The floating dtype for a non-exact op (activations): floats keep theirs, ints get float64."""
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)


def _as_int(op: str, name: str, value: Any, full: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {_describe(full)}")
    return int(value)


def ntuple(op: str, name: str, value: Any, n: int, *, minimum: int) -> tuple[int, ...]:
    """Normalise an ``int | sequence of n ints`` argument and check each entry is >= minimum.

    A 1-element sequence is broadcast to all ``n`` dims, as PyTorch does for ``(k,)``.
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == 1 and n > 1:  # PyTorch broadcasts a 1-element tuple to every dim
            value = tuple(value) * n
        if len(value) != n:
            raise ValueError(
                f"{op}: {name} must be an int or a tuple of {n} ints, got {_describe(value)}"
            )
        out = tuple(_as_int(op, name, v, value) for v in value)
    else:
        out = (_as_int(op, name, value, value),) * n
    if any(v < minimum for v in out):
        what = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{op}: {name} must be {what} integers, got {_describe(value)}")
    return out


def padding_pairs(op: str, value: Any, n: int, name: str = "padding") -> PadPairs:
    """Normalise explicit padding to ``((lo, hi),) * n``.

    Accepts an int (same on both sides of every dim), a tuple of ``n`` ints (symmetric per dim),
    or a tuple of ``n`` ``(lo, hi)`` pairs (asymmetric, as in JAX and ONNX); a one-element tuple
    stands for every dim, as in PyTorch.  Negative entries raise ``ValueError``.
    """
    if isinstance(value, str):
        raise ValueError(f"{op}: {name} must be an int or a tuple here, got {value!r}")
    if isinstance(value, Sequence):
        if len(value) == 1 and n > 1:  # a 1-element tuple applies to every dim, as in PyTorch
            value = tuple(value) * n
        if len(value) != n:
            raise ValueError(
                f"{op}: {name} must be an int, a tuple of {n} ints or a tuple of {n} (lo, hi) "
                f"pairs, got {_describe(value)}"
            )
        pairs = []
        for v in value:
            if isinstance(v, Sequence) and not isinstance(v, str):
                if len(v) != 2:
                    raise ValueError(
                        f"{op}: {name} pairs must be (lo, hi), got {_describe(value)}"
                    )
                pairs.append((_as_int(op, name, v[0], value), _as_int(op, name, v[1], value)))
            else:
                p = _as_int(op, name, v, value)
                pairs.append((p, p))
    else:
        p = _as_int(op, name, value, value)
        pairs = [(p, p)] * n
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise ValueError(f"{op}: {name} must be non-negative, got {_describe(value)}")
    return tuple(pairs)


def same_padding(
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> PadPairs:
    """'same' padding by the TensorFlow/ONNX SAME_UPPER rule.

    ``out = ceil(in / stride)``; the total padding is
    ``max((out - 1) * stride + dilation * (k - 1) + 1 - in, 0)``, split with the smaller half
    first and the odd element at the end.  With stride 1 this is PyTorch's ``padding='same'``.
    """
    pairs = []
    for size, k, s, d in zip(in_sizes, kernel, stride, dilation, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def out_size(
    size: int, k: int, stride: int, lo: int, hi: int, dilation: int, ceil_mode: bool = False
) -> int:
    """Output length of a sliding window.

    ``out = floor((size + lo + hi - dilation*(k-1) - 1) / stride) + 1`` (``ceil`` in ceil mode,
    where a last window that would start past the input and the left padding is dropped, as in
    PyTorch's pooling).
    """
    span = size + lo + hi - dilation * (k - 1) - 1
    if ceil_mode:
        # ceil(span / stride) + 1; a window may hang past the end but must start inside
        out = -(-span // stride) + 1
        if out > 0 and (out - 1) * stride >= size + lo:
            out -= 1
        return max(out, 0)
    return max(span // stride + 1, 0)


def out_sizes(
    op: str,
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pads: PadPairs,
    dilation: Sequence[int],
    ceil_mode: bool = False,
) -> tuple[int, ...]:
    """Output sizes for every spatial dim, raising ``ValueError`` if any is <= 0."""
    sizes = []
    for i, (size, k, s, (lo, hi), d) in enumerate(
        zip(in_sizes, kernel, stride, pads, dilation, strict=True)
    ):
        o = out_size(size, k, s, lo, hi, d, ceil_mode)
        if o <= 0:
            raise ValueError(
                f"{op}: kernel is larger than the padded input in spatial dim {i}: "
                f"effective kernel size {d * (k - 1) + 1} (kernel {k}, dilation {d}) > "
                f"padded input size {size + lo + hi} (input {size}, padding ({lo}, {hi}))"
            )
        sizes.append(o)
    return tuple(sizes)


def check_bool(op: str, name: str, value: Any, where: str = "") -> bool:
    """A bool (NumPy's too); ``where`` adds context such as ``" in param group 0"``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool{where}, got {_describe(value)}")
    return bool(value)


def check_choice(op: str, name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{op}: {name} must be one of {list(choices)}, got {_describe(value)}")
    if value not in choices:
        raise ValueError(f"{op}: {name} must be one of {list(choices)}, got {value!r}")
    return value


def check_ndim(op: str, name: str, x: np.ndarray, allowed: Sequence[int], what: str) -> None:
    """Raise ``ValueError`` unless ``x.ndim`` is one of ``allowed``; ``what`` names the layouts."""
    if x.ndim not in allowed:
        dims = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{op}: {name} must be {dims} ({what}), got shape {x.shape}")


def check_scalar(op: str, name: str, value: Any) -> float:
    """A real number (int or float, not bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{op}: {name} must be a real number, got {_describe(value)}")
    if isinstance(value, (complex, np.complexfloating)) or math.isnan(float(value)):
        raise ValueError(f"{op}: {name} must be a real number, got {value!r}")
    return value


def check_dim(op: str, dim: Any, ndim: int) -> int:
    """Normalise a possibly negative axis index."""
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, Integral):
        raise TypeError(f"{op}: dim must be an int, got {_describe(dim)}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{op}: dim must be in [{-ndim}, {ndim - 1}] for a {ndim}-D input, got {dim}")
    return int(dim) % ndim


# ---------------------------------------------------------------------------------------------
# scalar arguments: the one set of checks that layers, optimizers, schedulers, data loaders,
# training and the command line use too


def check_int(op: str, name: str, value: Any, minimum: int | None = None, where: str = "") -> int:
    """An int (Python's or NumPy's, not a bool), at least ``minimum`` when given.

    Examples
    --------
    >>> check_int("DataLoader", "batch_size", 0, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: DataLoader: batch_size must be >= 1, got 0
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{op}: {name} must be an int{where}, got {_describe(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}{where}, got {value}")
    return int(value)


def check_positive_int(op: str, name: str, value: Any, where: str = "") -> int:
    """An int >= 1 (not a bool): sizes, counts, epochs, steps."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{op}: {name} must be a positive int{where}, got {_describe(value)}")
    if value < 1:
        raise ValueError(f"{op}: {name} must be a positive int{where}, got {value}")
    return int(value)


def check_real(op: str, name: str, value: Any, where: str = "") -> float:
    """A real number (int or float, not a bool) as a float; NaN passes (callers that refuse it use
    :func:`check_nonnegative` or compare)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: {name} must be a real number{where}, got {_describe(value)}")
    return float(value)


def check_nonnegative(op: str, name: str, value: Any, where: str = "") -> float:
    """A real number >= 0 (NaN is refused) as a float."""
    number = check_real(op, name, value, where)
    if not number >= 0.0:
        raise ValueError(f"{op}: {name} must be >= 0{where}, got {value!r}")
    return number
