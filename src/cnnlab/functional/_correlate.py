"""Signal-processing cross-correlation and convolution of single-channel N-d arrays.

:func:`correlate` does not flip the kernel (it is what a CNN's "conv" layer computes);
:func:`convolve` flips it on every axis.  For stride 1 both agree with
:func:`scipy.signal.correlate` / :func:`scipy.signal.convolve` in all three modes.

Each mode is turned into explicit zero padding, and the padded valid correlation is computed by
one of two methods (``method=``; :func:`choose_correlate_method` is the automatic rule):

``'direct'``
    the defining sum, tap by tap: a Numba loop over output rows when Numba is installed (up to
    3-d, float32/float64/int64), else one vectorised multiply-add per kernel tap.  Exact for
    integer inputs.
``'fft'``
    products of real FFTs (:mod:`cnnlab.functional._fft`), in the input's floating dtype.  Its
    cost grows like ``L log L`` in the padded size ``L`` instead of ``out * K`` in the kernel
    size ``K``, so it wins for large kernels; rounding makes it inexact, so integer inputs are
    refused.

The gradients are correlations too (see :func:`correlate_backward`) and run by the same methods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.functional import _backend, _fft
from cnnlab.functional._args import (
    PadPairs,
    check_array,
    check_choice,
    check_exact_range,
    ntuple,
    out_sizes,
    result_dtype,
)
from cnnlab.functional._conv import _check_grad_out, _conv_backward_core
from cnnlab.functional._windows import flip, pad

MODES = ("valid", "same", "full")
METHODS = ("auto", "direct", "fft")

# The cost model of the automatic rule, in seconds, measured on the 2-core x86 (AVX2) machine of
# docs/BENCHMARKS.md with 1-d, 2-d and 3-d float32/float64 signals (best of repeated runs); keyed by
# the item size of the floating dtype.  Direct: a fixed cost plus one multiply-add per output and
# kernel tap (Numba loop, on one thread or on all of them for large work; its rows get slower when
# short), or, for NumPy's loop, a fixed cost per kernel tap plus one multiply-add per output.
# FFT: a fixed cost per transformed axis plus ``L log2 L`` for the ``L`` cells transformed (in
# overlap-save blocks for long 1-d signals); 1-d transforms cost about 2.5 times as much per cell
# as 2-d and 3-d ones.  For a 512x512 float32 image the crossover
# is near a 13x13 kernel.
_DIRECT_NUMBA_FIXED = 2e-5
_DIRECT_NUMBA_MAC = {4: 6e-11, 8: 1.1e-10}
_DIRECT_NUMBA_MAC_PARALLEL = {4: 4.5e-11, 8: 8e-11}
_DIRECT_NUMBA_SHORT_ROW = 32  # a row of w outputs costs as if it had w + 32
_DIRECT_NUMPY_TAP = 8e-6
_DIRECT_NUMPY_MAC = {4: 5e-10, 8: 9e-10}
_FFT_FIXED = 4e-5
_FFT_FIXED_AXIS = 6e-5
_FFT_UNIT = {4: 5.5e-10, 8: 1.3e-9}
_FFT_1D_FACTOR = 2.5


def _signal_pads(
    op: str, x: np.ndarray, k: np.ndarray, mode: str, dilation: tuple[int, ...]
) -> PadPairs:
    """Padding that turns 'valid' / 'same' / 'full' into a padded valid correlation.

    With ``K = d*(k-1) + 1``: 'full' pads ``K-1`` on both sides; 'same' keeps SciPy's centre of
    the full result, i.e. pads ``K-1 - (K-1)//2`` before and ``(K-1)//2`` after (the odd element
    goes first, unlike PyTorch's 'same'); 'valid' pads nothing, or, when the kernel is at least
    as large as the input in every dim, ``K - n`` on both sides (SciPy's rule: the output is the
    set of shifts where the smaller array lies wholly inside the larger one).
    """
    keff = [d * (s - 1) + 1 for s, d in zip(k.shape, dilation, strict=True)]
    if mode == "full":
        return tuple((e - 1, e - 1) for e in keff)
    if mode == "same":
        return tuple((e - 1 - (e - 1) // 2, (e - 1) // 2) for e in keff)
    if all(e <= s for e, s in zip(keff, x.shape, strict=True)):
        return ((0, 0),) * x.ndim
    if all(e >= s for e, s in zip(keff, x.shape, strict=True)):
        return tuple((e - s, e - s) for e, s in zip(keff, x.shape, strict=True))
    raise ValueError(
        f"{op}: in 'valid' mode the (dilated) kernel must be no larger than x in every dim, or "
        f"at least as large in every dim; got x shape {x.shape} and effective kernel shape "
        f"{tuple(keff)}"
    )


def _signal_args(
    op: str, x: Any, k: Any, mode: Any, stride: Any, dilation: Any
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], tuple[int, ...], PadPairs, np.dtype]:
    x = check_array(op, "x", x, allow_empty=False)  # SciPy refuses empty signals too
    k = check_array(op, "k", k, allow_empty=False)
    if k.ndim != x.ndim:
        raise ValueError(
            f"{op}: x and k must have the same number of dims, got x shape {x.shape} and "
            f"k shape {k.shape}"
        )
    check_choice(op, "mode", mode, MODES)
    stride = ntuple(op, "stride", stride, x.ndim, minimum=1)
    dilation = ntuple(op, "dilation", dilation, x.ndim, minimum=1)
    pads = _signal_pads(op, x, k, mode, dilation)
    out_sizes(op, x.shape, k.shape, stride, pads, dilation)
    check_exact_range(op, k.size, x, k)
    return x, k, stride, dilation, pads, result_dtype(x, k)


def _check_method(op: str, method: Any, dtype: np.dtype) -> str:
    """``method`` checked against :data:`METHODS`; 'fft' only for a floating result dtype."""
    check_choice(op, "method", method, METHODS)
    if method == "fft" and dtype.kind != "f":
        raise ValueError(
            f"{op}: method 'fft' is inexact (rounded floating point) and integer or boolean inputs "
            f"are computed exactly in int64; got method='fft' with all-integer inputs. Use "
            f"method='direct' or 'auto', or pass floating arrays to accept rounding"
        )
    return method


# ---------------------------------------------------------------------------------------------
# the two methods, on a zero-padded valid correlation


def _out_shape(shape: Sequence[int], k_shape: Sequence[int], pads: PadPairs, stride: Sequence[int],
               dilation: Sequence[int]) -> tuple[int, ...]:
    return tuple(
        (n + lo + hi - d * (s - 1) - 1) // st + 1
        for n, s, (lo, hi), st, d in zip(shape, k_shape, pads, stride, dilation, strict=True)
    )


def _numba_ok(ndim: int, dtype: np.dtype, work: float | None = None) -> bool:
    return _backend.use_numba(work) and ndim <= 3 and dtype in (np.float32, np.float64, np.int64)


def _choose(x_shape: Sequence[int], k_shape: Sequence[int], pads: PadPairs, stride: Sequence[int],
            dilation: Sequence[int], dtype: np.dtype) -> str:
    """The automatic rule: 'fft' when its modelled time is below the direct loop's (floats only)."""
    if dtype.kind != "f":
        return "direct"
    size = 4 if dtype.itemsize <= 4 else 8
    ndim = len(x_shape)
    out = _out_shape(x_shape, k_shape, pads, stride, dilation)
    cells, taps = float(math.prod(out)), float(math.prod(k_shape))
    if cells * taps * _DIRECT_NUMPY_MAC[8] + taps * _DIRECT_NUMPY_TAP < _FFT_FIXED + _FFT_FIXED_AXIS:
        return "direct"  # cheaper than the FFT's fixed cost alone, whichever loop runs it
    if _numba_ok(ndim, np.dtype(dtype), cells * taps):
        from cnnlab.functional import _numba_correlate

        row = min(out[-1], _numba_correlate.CHUNK)
        slowdown = (row + _DIRECT_NUMBA_SHORT_ROW) / row
        per_mac = (_DIRECT_NUMBA_MAC_PARALLEL if _numba_correlate.parallel(cells * taps) else _DIRECT_NUMBA_MAC)[size]
        direct = _DIRECT_NUMBA_FIXED + cells * taps * per_mac * slowdown
    else:
        direct = taps * (_DIRECT_NUMPY_TAP + cells * _DIRECT_NUMPY_MAC[size])
    keff = [d * (s - 1) + 1 for s, d in zip(k_shape, dilation, strict=True)]
    unit = _FFT_UNIT[size] * (_FFT_1D_FACTOR if ndim == 1 else 1.0)
    fft = _FFT_FIXED + _FFT_FIXED_AXIS * ndim + _fft.fft_cost(x_shape, keff, pads) * unit
    return "fft" if fft < direct else "direct"


def _direct(x: np.ndarray, k: np.ndarray, pads: PadPairs, stride: Sequence[int], dilation: Sequence[int],
            out: tuple[int, ...]) -> np.ndarray:
    """``y[j] = sum_t pad(x)[j*stride + t*dilation] * k[t]``, tap by tap (``x``, ``k`` in one dtype)."""
    xp = pad(x, pads)
    if _numba_ok(x.ndim, x.dtype, math.prod(out) * k.size):
        from cnnlab.functional import _numba_correlate

        return _numba_correlate.correlate(xp, k, tuple(stride), tuple(dilation), out)
    y = np.zeros(out, dtype=x.dtype)
    term = np.empty(out, dtype=x.dtype)
    for tap in np.ndindex(*k.shape):  # one multiply-add over the whole output per kernel tap
        window = tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilation, out, stride, strict=True)
        )
        np.multiply(xp[window], k[tap], out=term)
        y += term
    return y


def _correlate_core(op: str, x: np.ndarray, k: np.ndarray, pads: PadPairs, stride: Sequence[int],
                    dilation: Sequence[int], dtype: np.dtype, method: str) -> np.ndarray:
    """The padded valid correlation in ``dtype`` by ``method`` ('auto' resolved here)."""
    if method == "auto":
        method = _choose(x.shape, k.shape, pads, stride, dilation, dtype)
    out = _out_shape(x.shape, k.shape, pads, stride, dilation)
    if method == "fft":
        return _fft.correlate_fft(x, k, pads, stride, dilation, dtype)
    if method == "direct":
        return _direct(x.astype(dtype, copy=False), k.astype(dtype, copy=False), pads, stride, dilation, out)
    raise ValueError(f"{op}: method must be one of {list(METHODS)}, got {method!r}")


# ---------------------------------------------------------------------------------------------
# public ops


def choose_correlate_method(
    x: Any, k: Any, mode: str = "valid", stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
) -> str:
    """The method :func:`correlate` and :func:`convolve` use for ``method='auto'``.

    Like :func:`scipy.signal.choose_conv_method`, but decided by a cost model rather than by
    timing: integer or boolean inputs always get ``'direct'`` (the exact path); floating ones get
    ``'fft'`` when ``FIXED + c_fft * L log2 L < c_direct * out * K``, where ``out`` is the number
    of outputs, ``K`` the number of kernel taps and ``L`` the number of cells the FFTs transform
    (the signal padded as the mode needs, rounded up to fast lengths).  The constants were
    measured for float32 and float64, for the Numba loop and for the NumPy fallback, so the
    answer also depends on whether Numba is in use (:func:`cnnlab.functional.get_backend`).

    Parameters
    ----------
    x, k, mode, stride, dilation
        As for :func:`correlate` (the same rule serves :func:`convolve`: a flip costs nothing).

    Returns
    -------
    str
        ``'direct'`` or ``'fft'``.

    Raises
    ------
    TypeError, ValueError
        As :func:`correlate` does for the same arguments.

    Examples
    --------
    >>> import numpy as np
    >>> choose_correlate_method(np.ones((512, 512)), np.ones((31, 31)))
    'fft'
    >>> choose_correlate_method(np.ones((512, 512)), np.ones((3, 3)))
    'direct'
    >>> choose_correlate_method(np.ones((512, 512), dtype=int), np.ones((31, 31), dtype=int))
    'direct'
    """
    x, k, stride, dilation, pads, dtype = _signal_args("choose_correlate_method", x, k, mode, stride, dilation)
    return _choose(x.shape, k.shape, pads, stride, dilation, dtype)


def correlate(
    x: Any, k: Any, mode: str = "valid", stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1, method: str = "auto",
) -> np.ndarray:
    """Cross-correlation of an N-d signal with an N-d kernel (no kernel flip).

    Parameters
    ----------
    x : array_like
        The signal, any number of dims.
    k : array_like
        The kernel, with ``k.ndim == x.ndim``.
    mode : {'valid', 'same', 'full'}, default 'valid'
        As in :func:`scipy.signal.correlate`: 'full' is every overlap, 'valid' only full
        overlaps, 'same' the centre of 'full' with the shape of ``x`` (odd padding first).
    stride : int or tuple of int, default 1
        Keep every ``stride``-th output (counted from the first one of the mode).
    dilation : int or tuple of int, default 1
        Spacing between kernel taps; 1 means none.
    method : {'auto', 'direct', 'fft'}, default 'auto'
        'direct' evaluates the sum below (exact for integers); 'fft' multiplies real FFTs
        (floating inputs only, rounding errors of order ``eps * sum|x||k|``); 'auto' takes
        'direct' for integer inputs and otherwise the one a cost model expects to be faster
        (:func:`choose_correlate_method`: 'fft' for large kernels).

    Shape
    -----
    With ``K = dilation*(k-1) + 1``: 'valid' gives ``floor((n - K) / stride) + 1``, 'full'
    ``floor((n + K - 2) / stride) + 1`` and 'same' ``floor((n - 1) / stride) + 1`` per dim.

    Returns
    -------
    numpy.ndarray
        int64 for integer (or boolean) inputs, exact; otherwise the floating dtype of the inputs
        (float32 stays float32 by either method).

    Raises
    ------
    TypeError
        For a non-numeric input, a non-integer stride/dilation or a non-string method.
    ValueError
        For mismatched dims, an empty input, a bad mode or method, stride or dilation < 1, or
        ``method='fft'`` with integer inputs (their exact result is the direct method's).

    Notes
    -----
    ``y[j] = sum_t x[j*stride + t*dilation - pad_lo] * k[t]`` (out-of-range ``x`` is zero).
    This is what a CNN's "conv" layer computes; :func:`convolve` flips ``k`` first.
    The FFT method computes the correlation as a circular convolution of period
    ``L >= n + max(pad_lo, pad_hi)`` per dim (``L = n`` in 'valid' mode), which equals the linear
    one on every kept output; see :mod:`cnnlab.functional._fft`.

    Examples
    --------
    >>> correlate([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [[1, 0], [0, 1]])
    array([[2, 0],
           [3, 5]])
    >>> correlate([1, 2, 3], [0, 1, 0.5], mode="same")
    array([2. , 3.5, 3. ])
    >>> correlate([1.0, 2.0, 3.0], [0.0, 1.0, 0.5], mode="same", method="fft").round(12)
    array([2. , 3.5, 3. ])
    """
    x, k, stride, dilation, pads, dtype = _signal_args("correlate", x, k, mode, stride, dilation)
    method = _check_method("correlate", method, dtype)
    return _correlate_core("correlate", x, k, pads, stride, dilation, dtype, method)


# Gradients, for stride 1 (``P = pad_lo``, ``K_d = dilation*(k-1) + 1``), from
# y[j] = sum_t x[j + t*d - P] * k[t]:
#   grad_k[t] = sum_j grad_out[j] * pad(x)[j + t*d]
#             = a valid correlation of pad(x) with grad_out as the kernel, output stride d;
#   grad_x[q] = sum_{j, t: j + t*d - P = q} grad_out[j] * k[t] = sum_u grad_out[q + u*d - (K_d-1-P)] * flip(k)[u]
#             = a correlation of grad_out, padded by (K_d-1-P, K_d-1-pad_hi), with flip(k), dilation d.
# Both are correlations again, so each runs by the method chosen (or given) for its own shapes.
def correlate_backward(
    grad_out: Any, x: Any, k: Any, mode: str = "valid", stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1, method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients ``(grad_x, grad_k)`` of :func:`correlate` for an upstream ``grad_out``.

    Both gradients are correlations (see the derivation in the source), computed with ``method``
    ('auto' decides for each of the two on its own shapes).  With a stride > 1 they are those of
    a one-channel :func:`conv` with the mode's padding (see the derivation there).

    Examples
    --------
    >>> gx, gk = correlate_backward([[1, 0], [0, 0]], [[1, 0, 2], [3, 1, 0], [0, 0, 4]],
    ...                             [[1, 0], [0, 1]])
    >>> gx
    array([[1, 0, 0],
           [0, 1, 0],
           [0, 0, 0]])
    >>> gk
    array([[1, 0],
           [3, 1]])
    """
    op = "correlate_backward"
    x, k, stride, dilation, pads, dtype = _signal_args(op, x, k, mode, stride, dilation)
    grad_out = _check_grad_out(op, grad_out, _out_shape(x.shape, k.shape, pads, stride, dilation))
    dtype = result_dtype(grad_out, x, k)
    method = _check_method(op, method, dtype)
    if any(s != 1 for s in stride):
        gx, gk, _ = _conv_backward_core(
            grad_out.astype(dtype)[None, None], x.astype(dtype)[None, None],
            k.astype(dtype)[None, None], stride, pads, dilation, 1, "zeros",
        )
        return gx[0, 0], gk[0, 0]
    keff = [d * (s - 1) + 1 for s, d in zip(k.shape, dilation, strict=True)]
    grad_pads = tuple((e - 1 - lo, e - 1 - hi) for e, (lo, hi) in zip(keff, pads, strict=True))
    ones = (1,) * x.ndim
    grad_x = _correlate_core(op, grad_out, flip(k, k.ndim), grad_pads, ones, dilation, dtype, method)
    grad_k = _correlate_core(op, x, grad_out, pads, dilation, ones, dtype, method)
    return grad_x, grad_k


def convolve(
    x: Any, k: Any, mode: str = "valid", stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1, method: str = "auto",
) -> np.ndarray:
    """True convolution of an N-d signal with an N-d kernel: the kernel is flipped on every axis.

    ``convolve(x, k) == correlate(x, flip(k))`` in every mode, matching
    :func:`scipy.signal.convolve` for stride 1.  Arguments (``method`` included: the same rule,
    :func:`choose_correlate_method`, applies), shapes, dtypes and errors are those of
    :func:`correlate`.

    Notes
    -----
    ``y[j] = sum_t x[j - t] * k[t]`` in 'full' mode (stride and dilation 1); a CNN's "conv" layer
    is :func:`correlate`, which does not flip.

    Examples
    --------
    >>> convolve([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [[1, 2], [3, 4]])
    array([[11,  8],
           [15,  8]])
    >>> correlate([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [[4, 3], [2, 1]])
    array([[11,  8],
           [15,  8]])
    """
    x, k, stride, dilation, _, dtype = _signal_args("convolve", x, k, mode, stride, dilation)
    _check_method("convolve", method, dtype)
    return correlate(x, flip(k, k.ndim), mode, stride, dilation, method)


def convolve_backward(
    grad_out: Any, x: Any, k: Any, mode: str = "valid", stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1, method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients ``(grad_x, grad_k)`` of :func:`convolve`: those of the correlation with the
    flipped kernel, with ``grad_k`` flipped back."""
    x, k, stride, dilation, _, dtype = _signal_args("convolve_backward", x, k, mode, stride, dilation)
    _check_method("convolve_backward", method, result_dtype(np.asarray(grad_out), x, k))
    gx, gk = correlate_backward(grad_out, x, flip(k, k.ndim), mode, stride, dilation, method)
    return gx, flip(gk, k.ndim).copy()
