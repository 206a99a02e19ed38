"""Softmax and log-softmax along a dim, stable for large inputs, with their backward passes."""

from __future__ import annotations

from typing import Any

import numpy as np

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
    e = np.exp(_shifted(work, axis))
    return (e / np.sum(e, axis=axis, keepdims=True)).reshape(arr.shape)


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
    e = np.exp(_shifted(work, axis))
    y = e / np.sum(e, axis=axis, keepdims=True)
    gw = g.reshape(work.shape)
    return (y * (gw - np.sum(gw * y, axis=axis, keepdims=True))).reshape(xa.shape)


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
    z = _shifted(work, axis)
    return (z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))).reshape(arr.shape)


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
    e = np.exp(_shifted(work, axis))
    y = e / np.sum(e, axis=axis, keepdims=True)
    gw = g.reshape(work.shape)
    return (gw - y * np.sum(gw, axis=axis, keepdims=True)).reshape(xa.shape)
