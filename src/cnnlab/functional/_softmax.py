"""Softmax and log-softmax along a dim, stable for large inputs, with their backward passes.

Two methods compute them: the NumPy formulas below (the complete fallback, also for integer
inputs, which give float64), and for non-empty float32/float64 arrays the compiled kernels of
:mod:`cnnlab.functional._numba_softmax` whenever :func:`cnnlab.functional._backend.use_numba`
allows them (one pass per step, in float64, rounded once into the input's dtype).  On Tensors the
backward reads the forward's output (``softmax_forward_saving`` / ``softmax_backward_saved`` and
the log-softmax pair) instead of recomputing it from ``x``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._activation import _backward_inputs, _float_input
from cnnlab.functional._args import check_dim

__all__ = ["log_softmax", "log_softmax_backward", "softmax", "softmax_backward"]


def _softmax_dim(op: str, dim: Any, x: np.ndarray) -> tuple[int, np.ndarray]:
    """Normalise ``dim``; a 0-d input is treated as 1-D (dim 0 or -1), as PyTorch does."""
    axis = check_dim(op, dim, max(x.ndim, 1))
    return axis, x.reshape(1) if x.ndim == 0 else x


# --------------------------------------------------------------------------------------------
# softmax family
# --------------------------------------------------------------------------------------------
def _shifted(x: np.ndarray, axis: int) -> np.ndarray:
    """``x - max(x, axis)``: every entry <= 0, so ``exp`` cannot overflow.

    A slice that is all ``-inf`` (or holds ``+inf``) gives NaN, as in PyTorch.
    """
    if x.size == 0:  # nothing to shift (an empty batch, or no classes)
        return x.copy()
    m = np.max(x, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):  # -big - big = -inf is harmless: exp gives 0
        return x - m


def _kernels_apply(x: np.ndarray) -> bool:
    """Whether the compiled kernels take ``x``: a non-empty float32/float64 array, Numba allowed."""
    return x.size > 0 and _backend.float_kernels_take(x)


def _forward(x: np.ndarray, axis: int, log: bool) -> np.ndarray:
    """``softmax(x, axis)``, or ``log_softmax`` if ``log``, of a floating array with ``ndim >= 1``."""
    if _kernels_apply(x):
        from cnnlab.functional import _numba_softmax as ns

        return ns.forward(x, axis, log)[0]
    z = _shifted(x, axis)
    if log:
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_parts(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``softmax(x, axis)`` with each slice's maximum ``m`` and ``log(sum(exp(x - m)))`` (kept
    dims), for :func:`cross_entropy <cnnlab.functional.cross_entropy>`: ``log_softmax(x)`` is
    ``(x - m) - log_total``.  ``x`` is floating with ``ndim >= 1`` and a non-empty ``axis``; the
    two statistics are float64 from the kernels, else of ``x``'s dtype."""
    if _kernels_apply(x):
        from cnnlab.functional import _numba_softmax as ns

        return ns.forward(x, axis, False)
    if x.shape[axis] == 0:  # no classes: nothing to normalise (the statistics are never read)
        kept = x.shape[:axis] + (1,) + x.shape[axis + 1:]
        return x.copy(), np.zeros(kept, x.dtype), np.zeros(kept, x.dtype)
    m = np.max(x, axis=axis, keepdims=True)
    # (one errstate for all: -inf - -inf, a slice that is all -inf, gives NaN; log 0 is -inf)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        e = np.exp(x - m)
        total = np.sum(e, axis=axis, keepdims=True)
        return e / total, m, np.log(total)


def _grad(g: np.ndarray, y: np.ndarray, axis: int, log: bool) -> np.ndarray:
    """The input gradient from the forward's output ``y`` (``softmax``, or ``log_softmax`` if
    ``log``) and ``g``, the gradient with respect to ``y`` (same shape).  The result's dtype is
    that of the floating ones among ``g`` and ``y`` (float64 if neither is), as
    :func:`softmax_backward` gives."""
    floats = [a.dtype for a in (g, y) if a.dtype.kind == "f"]
    dtype = np.result_type(*floats) if floats else np.dtype(np.float64)
    g, y = g.astype(dtype, copy=False), y.astype(dtype, copy=False)
    if _kernels_apply(y):
        from cnnlab.functional import _numba_softmax as ns

        return ns.backward(y, g, axis, log)
    if log:  # d log_softmax(x)_i / dx_k = delta_ik - softmax(x)_k
        return g - np.exp(y) * np.sum(g, axis=axis, keepdims=True)
    return y * (g - np.sum(g * y, axis=axis, keepdims=True))


def softmax(x: Any, dim: int) -> np.ndarray:
    r"""Softmax along ``dim``: ``exp(x) / sum(exp(x))``, so every slice sums to 1.

    Parameters
    ----------
    x : array_like
        Input of any shape (a 0-d input counts as 1-D, as in PyTorch).
    dim : int
        The axis to normalise over; negative values count from the end.

    Returns
    -------
    numpy.ndarray
        Same shape; floating inputs keep their dtype, integer inputs give ``float64``.

    Raises
    ------
    TypeError
        If ``x`` is not numeric or ``dim`` is not an int.
    ValueError
        If ``x`` is empty or ``dim`` is out of range.

    Notes
    -----
    .. math:: \mathrm{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}},
              \qquad m = \max_j x_j

    Subtracting the maximum changes nothing mathematically and keeps ``exp`` from overflowing.
    ``-inf`` entries get probability 0; a slice that is entirely ``-inf`` gives NaN, as in
    PyTorch.

    Examples
    --------
    >>> softmax(np.array([[0.0, 0.0], [1000.0, -np.inf]]), dim=1)
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    arr = _float_input("softmax", x)
    axis, work = _softmax_dim("softmax", dim, arr)
    return _forward(work, axis, False).reshape(arr.shape)


def softmax_backward(grad_out: Any, x: Any, dim: int) -> np.ndarray:
    """Gradient of :func:`softmax` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient with respect to the output; same shape as ``x``.
    x : array_like
        The forward's input.
    dim : int
        The forward's ``dim``.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, same shape, floating.

    Raises
    ------
    TypeError
        If an input is not numeric or ``dim`` is not an int.
    ValueError
        If an input is empty, the shapes differ or ``dim`` is out of range.

    Notes
    -----
    With ``y = softmax(x)``, ``dy_i/dx_k = y_i (delta_ik - y_k)``, so
    ``grad_x = y * (grad_out - sum(grad_out * y, dim))``.

    Examples
    --------
    >>> softmax_backward(np.array([[1.0, 0.0]]), np.array([[0.0, 0.0]]), dim=1)
    array([[ 0.25, -0.25]])
    """
    g, xa = _backward_inputs("softmax_backward", grad_out, x)
    axis, work = _softmax_dim("softmax_backward", dim, xa)
    y = _forward(work, axis, False)
    return _grad(g.reshape(work.shape), y, axis, False).reshape(xa.shape)


def log_softmax(x: Any, dim: int) -> np.ndarray:
    r"""Logarithm of :func:`softmax` along ``dim``, computed without forming the softmax.

    Parameters
    ----------
    x : array_like
        Input of any shape (a 0-d input counts as 1-D, as in PyTorch).
    dim : int
        The axis to normalise over; negative values count from the end.

    Returns
    -------
    numpy.ndarray
        Same shape; floating inputs keep their dtype, integer inputs give ``float64``.

    Raises
    ------
    TypeError
        If ``x`` is not numeric or ``dim`` is not an int.
    ValueError
        If ``x`` is empty or ``dim`` is out of range.

    Notes
    -----
    .. math:: \mathrm{log\_softmax}(x)_i = (x_i - m) - \log \sum_j e^{x_j - m},
              \qquad m = \max_j x_j

    Finite for any finite input (the sum is at least 1); ``-inf`` entries stay ``-inf``.

    Examples
    --------
    >>> log_softmax(np.array([-1e4, 1e4]), dim=0)
    array([-20000.,      0.])
    """
    arr = _float_input("log_softmax", x)
    axis, work = _softmax_dim("log_softmax", dim, arr)
    return _forward(work, axis, True).reshape(arr.shape)


def log_softmax_backward(grad_out: Any, x: Any, dim: int) -> np.ndarray:
    """Gradient of :func:`log_softmax` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient with respect to the output; same shape as ``x``.
    x : array_like
        The forward's input.
    dim : int
        The forward's ``dim``.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, same shape, floating.

    Raises
    ------
    TypeError
        If an input is not numeric or ``dim`` is not an int.
    ValueError
        If an input is empty, the shapes differ or ``dim`` is out of range.

    Notes
    -----
    ``d log_softmax(x)_i / dx_k = delta_ik - softmax(x)_k``, so
    ``grad_x = grad_out - softmax(x) * sum(grad_out, dim)``.

    Examples
    --------
    >>> log_softmax_backward(np.array([1.0, 0.0]), np.array([0.0, 0.0]), dim=0)
    array([ 0.5, -0.5])
    """
    g, xa = _backward_inputs("log_softmax_backward", grad_out, x)
    axis, work = _softmax_dim("log_softmax_backward", dim, xa)
    y = _forward(work, axis, True)
    return _grad(g.reshape(work.shape), y, axis, True).reshape(xa.shape)


# --------------------------------------------------------------------------------------------
# the pairs used on Tensors: the backward reads the forward's output instead of recomputing it
# --------------------------------------------------------------------------------------------
def _forward_saving(op: str, x: Any, dim: int, log: bool) -> tuple[np.ndarray, tuple]:
    arr = _float_input(op, x)
    axis, work = _softmax_dim(op, dim, arr)
    y = _forward(work, axis, log)
    return y.reshape(arr.shape), (y, axis, arr.shape)


def _backward_saved(grad_out: Any, saved: tuple, log: bool) -> np.ndarray:
    y, axis, shape = saved
    return _grad(np.asarray(grad_out).reshape(y.shape), y, axis, log).reshape(shape)


def softmax_forward_saving(needs: Any, x: Any, dim: int) -> tuple[np.ndarray, tuple]:
    """:func:`softmax` and what its backward needs: the output ``y`` (and the axis)."""
    return _forward_saving("softmax", x, dim, False)


def softmax_backward_saved(grad_out: Any, saved: tuple, needs: Any) -> np.ndarray:
    """``grad_x = y * (grad_out - sum(grad_out * y, dim))`` from the saved output ``y``."""
    return _backward_saved(grad_out, saved, False)


def log_softmax_forward_saving(needs: Any, x: Any, dim: int) -> tuple[np.ndarray, tuple]:
    """:func:`log_softmax` and what its backward needs: the output ``log p`` (and the axis)."""
    return _forward_saving("log_softmax", x, dim, True)


def log_softmax_backward_saved(grad_out: Any, saved: tuple, needs: Any) -> np.ndarray:
    """``grad_x = grad_out - exp(log p) * sum(grad_out, dim)`` from the saved output ``log p``."""
    return _backward_saved(grad_out, saved, True)
