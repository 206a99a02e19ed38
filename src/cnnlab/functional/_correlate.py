"""Signal-processing cross-correlation and convolution of single-channel N-d arrays.

:func:`correlate` does not flip the kernel (it is what a CNN's "conv" layer computes);
:func:`convolve` flips it on every axis.  For stride 1 both agree with
:func:`scipy.signal.correlate` / :func:`scipy.signal.convolve` in all three modes.  Both run on
the conv kernel of :mod:`cnnlab.functional._conv` with the mode turned into explicit padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.functional._args import (
    PadPairs,
    check_array,
    check_choice,
    check_exact_range,
    ntuple,
    out_sizes,
    result_dtype,
)
from cnnlab.functional._conv import _check_grad_out, _conv_backward_core, _correlate_padded
from cnnlab.functional._windows import flip, pad

MODES = ("valid", "same", "full")


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


def correlate(
    x: Any, k: Any, mode: str = "valid", stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
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

    Shape
    -----
    With ``K = dilation*(k-1) + 1``: 'valid' gives ``floor((n - K) / stride) + 1``, 'full'
    ``floor((n + K - 2) / stride) + 1`` and 'same' ``floor((n - 1) / stride) + 1`` per dim.

    Returns
    -------
    numpy.ndarray
        int64 for integer (or boolean) inputs, exact; otherwise the floating dtype of the inputs.

    Raises
    ------
    TypeError
        For a non-numeric input or a non-integer stride/dilation.
    ValueError
        For mismatched dims, an empty input, a bad mode, stride or dilation < 1.

    Notes
    -----
    ``y[j] = sum_t x[j*stride + t*dilation - pad_lo] * k[t]`` (out-of-range ``x`` is zero).
    This is what a CNN's "conv" layer computes; :func:`convolve` flips ``k`` first.

    Examples
    --------
    >>> correlate([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [[1, 0], [0, 1]])
    array([[2, 0],
           [3, 5]])
    >>> correlate([1, 2, 3], [0, 1, 0.5], mode="same")
    array([2. , 3.5, 3. ])
    """
    x, k, stride, dilation, pads, dtype = _signal_args("correlate", x, k, mode, stride, dilation)
    xp = pad(x.astype(dtype, copy=False), pads)
    y = _correlate_padded(xp[None, None], k.astype(dtype, copy=False)[None, None], stride, dilation, 1)
    return y[0, 0]


def correlate_backward(
    grad_out: Any, x: Any, k: Any, mode: str = "valid", stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients ``(grad_x, grad_k)`` of :func:`correlate` for an upstream ``grad_out``.

    A correlation is a one-channel conv with explicit padding, so this is
    :func:`conv_backward` with that padding (see the derivation there).

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
    x, k, stride, dilation, pads, dtype = _signal_args(
        "correlate_backward", x, k, mode, stride, dilation
    )
    grad_out = _check_grad_out(
        "correlate_backward", grad_out, correlate(x, k, mode, stride, dilation).shape
    )
    dtype = result_dtype(grad_out, x, k)
    gx, gk, _ = _conv_backward_core(
        grad_out.astype(dtype)[None, None], x.astype(dtype)[None, None],
        k.astype(dtype)[None, None], stride, pads, dilation, 1, "zeros",
    )
    return gx[0, 0], gk[0, 0]


def convolve(
    x: Any, k: Any, mode: str = "valid", stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
) -> np.ndarray:
    """True convolution of an N-d signal with an N-d kernel: the kernel is flipped on every axis.

    ``convolve(x, k) == correlate(x, flip(k))`` in every mode, matching
    :func:`scipy.signal.convolve` for stride 1.  Arguments, shapes, dtypes and errors are those
    of :func:`correlate`.

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
    x, k, stride, dilation, _, _ = _signal_args("convolve", x, k, mode, stride, dilation)
    return correlate(x, flip(k, k.ndim), mode, stride, dilation)


def convolve_backward(
    grad_out: Any, x: Any, k: Any, mode: str = "valid", stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients ``(grad_x, grad_k)`` of :func:`convolve`: those of the correlation with the
    flipped kernel, with ``grad_k`` flipped back."""
    x, k, stride, dilation, _, _ = _signal_args("convolve_backward", x, k, mode, stride, dilation)
    gx, gk = correlate_backward(grad_out, x, flip(k, k.ndim), mode, stride, dilation)
    return gx, flip(gk, k.ndim).copy()
