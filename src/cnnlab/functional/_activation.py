"""The ReLU family (``relu``, ``leaky_relu``, ``elu``), each with its backward (vector-Jacobian
product) beside it, and the argument handling every activation shares.  The smooth activations
(``gelu``, ``sigmoid``, ``tanh``) live in :mod:`cnnlab.functional._smooth`.

Every forward takes ``x`` and returns an array of the same shape.  Every backward takes
``grad_out`` (the gradient of the loss with respect to the forward's output) and the forward's
input ``x``, and returns ``grad_x``.  Backward passes recompute what they need from ``x``.

Dtypes: ``relu`` is exact on integers (boolean and integer inputs give ``int64``, as every exact
op of the library does); floating inputs keep their dtype; every other activation computes
integer inputs in ``float64``.  A backward returns the floating dtype of ``grad_out`` and ``x``
promoted together (``float64`` when both are integer; ``relu_backward`` stays exact instead).

Subgradients at kinks follow PyTorch: ``relu'(0) = 0``, ``leaky_relu'(0) = negative_slope``,
``elu'(0) = alpha``.  ``softmax`` and ``log_softmax`` live in :mod:`cnnlab.functional._softmax`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._args import (
    check_array,
    check_scalar,
    float_dtype,
    result_dtype,
)

__all__ = [
    "elu",
    "elu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "relu",
    "relu_backward",
]

# --------------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------------
def _float_input(op: str, x: Any) -> np.ndarray:
    arr = check_array(op, "x", x, allow_empty=True)
    return arr.astype(float_dtype(arr), copy=False)


def _backward_inputs(op: str, grad_out: Any, x: Any, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``grad_out`` and ``x`` (same shape) and cast both to the gradient's dtype."""
    g = check_array(op, "grad_out", grad_out, allow_empty=True)
    xa = check_array(op, "x", x, allow_empty=True)
    if g.shape != xa.shape:
        raise ValueError(f"{op}: grad_out must have the shape of x {xa.shape}, got {g.shape}")
    if exact:
        dtype = result_dtype(g, xa)
    else:
        floats = [a.dtype for a in (g, xa) if a.dtype.kind == "f"]
        dtype = np.result_type(*floats) if floats else np.dtype(np.float64)
    return g.astype(dtype, copy=False), xa.astype(dtype, copy=False)



def _fast(name: str, *arrays: np.ndarray, param: float | None = None) -> np.ndarray | None:
    """``name``'s forward (of ``x``) or backward (of ``grad_out, x``) by the compiled kernels of
    :mod:`._numba_activation`, or None where they do not apply: only float32 or float64 arrays
    large enough to pay for a compiled call, while the backend allows them.  ``param`` (leaky
    ReLU's slope, ELU's alpha) is passed in ``x``'s dtype for leaky ReLU, in float64 for ELU."""
    x = arrays[-1]
    if not _backend.float_kernels_take(x):
        return None
    from cnnlab.functional import _numba_activation as na

    params = () if param is None else ((x.dtype.type if name == "leaky_relu" else float)(param),)
    return na.forward(name, x, *params) if len(arrays) == 1 else na.backward(name, *arrays, *params)

# --------------------------------------------------------------------------------------------
# ReLU family
# --------------------------------------------------------------------------------------------
def relu(x: Any) -> np.ndarray:
    r"""Rectified linear unit, ``max(x, 0)`` elementwise.

    Parameters
    ----------
    x : array_like
        Input of any shape; boolean, integer or floating.

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``.  Exact on integers: boolean and integer inputs give ``int64``;
        floating inputs keep their dtype.  NaN stays NaN.

    Raises
    ------
    TypeError
        If ``x`` is not numeric.
    ValueError
        If ``x`` is empty or ragged.

    Notes
    -----
    .. math:: \mathrm{relu}(x) = \max(x, 0)

    Examples
    --------
    The output of the lecture's convolution passes through unchanged, as integers:

    >>> relu(np.array([[2, 0], [3, 5]]))
    array([[2, 0],
           [3, 5]])
    >>> relu(np.array([-1.5, 0.0, 2.0], dtype=np.float32))
    array([0., 0., 2.], dtype=float32)
    """
    arr = check_array("relu", "x", x, allow_empty=True)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.int64)
    elif _backend.float_kernels_take(arr):
        from cnnlab.functional import _numba_kernels as nk

        return nk.relu(arr)  # both cores; np.maximum runs on one
    return np.maximum(arr, arr.dtype.type(0))


def relu_backward(grad_out: Any, x: Any) -> np.ndarray:
    """Gradient of :func:`relu` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient of the loss with respect to ``relu(x)``; same shape as ``x``.
    x : array_like
        The forward's input.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, same shape.  Exact: integer ``grad_out`` and ``x`` give ``int64``.

    Raises
    ------
    TypeError
        If an input is not numeric.
    ValueError
        If an input is empty or the shapes differ.

    Notes
    -----
    ``grad_x = grad_out`` where ``x > 0`` and ``0`` where ``x <= 0``: at the kink the subgradient
    0 is chosen, as in PyTorch (a NaN ``x`` passes ``grad_out`` through, as PyTorch does).

    Examples
    --------
    >>> relu_backward(np.array([1.0, 1.0, 1.0]), np.array([-2.0, 0.0, 3.0]))
    array([0., 0., 1.])
    """
    g, xa = _backward_inputs("relu_backward", grad_out, x, exact=True)
    return np.where(xa <= 0, g.dtype.type(0), g)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> np.ndarray:
    r"""Leaky ReLU: ``x`` where ``x > 0``, else ``negative_slope * x``.

    Parameters
    ----------
    x : array_like
        Input of any shape.
    negative_slope : float, default 0.01
        Slope for non-positive inputs (any real number).

    Returns
    -------
    numpy.ndarray
        Same shape; floating inputs keep their dtype, integer inputs give ``float64``.

    Raises
    ------
    TypeError
        If ``x`` is not numeric or ``negative_slope`` is not a real number.
    ValueError
        If ``x`` is empty or ``negative_slope`` is NaN.

    Notes
    -----
    .. math:: \mathrm{leaky\_relu}(x) = \begin{cases} x & x > 0 \\ s\,x & x \le 0 \end{cases}

    Examples
    --------
    >>> leaky_relu(np.array([-2, 0, 3]), negative_slope=0.5)
    array([-1.,  0.,  3.])
    """
    slope = float(check_scalar("leaky_relu", "negative_slope", negative_slope))
    arr = _float_input("leaky_relu", x)
    if (fast := _fast("leaky_relu", arr, param=slope)) is not None:
        return fast
    return np.where(arr > 0, arr, arr * slope)


def leaky_relu_backward(grad_out: Any, x: Any, negative_slope: float = 0.01) -> np.ndarray:
    """Gradient of :func:`leaky_relu` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient with respect to the output; same shape as ``x``.
    x : array_like
        The forward's input.
    negative_slope : float, default 0.01
        The forward's slope.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, same shape, floating.

    Raises
    ------
    TypeError
        If an input is not numeric or ``negative_slope`` is not a real number.
    ValueError
        If an input is empty or the shapes differ.

    Notes
    -----
    ``grad_x = grad_out`` where ``x > 0`` and ``negative_slope * grad_out`` where ``x <= 0``:
    at the kink the slope of the left piece is chosen, as in PyTorch.

    Examples
    --------
    >>> leaky_relu_backward(np.ones(3), np.array([-1.0, 0.0, 1.0]), negative_slope=0.1)
    array([0.1, 0.1, 1. ])
    """
    slope = float(check_scalar("leaky_relu_backward", "negative_slope", negative_slope))
    g, xa = _backward_inputs("leaky_relu_backward", grad_out, x)
    if (fast := _fast("leaky_relu", g, xa, param=slope)) is not None:
        return fast
    return np.where(xa > 0, g, g * slope)


def elu(x: Any, alpha: float = 1.0) -> np.ndarray:
    r"""Exponential linear unit: ``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Parameters
    ----------
    x : array_like
        Input of any shape.
    alpha : float, default 1.0
        Scale of the negative part (any real number).

    Returns
    -------
    numpy.ndarray
        Same shape; floating inputs keep their dtype, integer inputs give ``float64``.

    Raises
    ------
    TypeError
        If ``x`` is not numeric or ``alpha`` is not a real number.
    ValueError
        If ``x`` is empty or ``alpha`` is NaN.

    Notes
    -----
    .. math:: \mathrm{elu}(x) = \begin{cases} x & x > 0 \\
              \alpha\,(e^{x} - 1) & x \le 0 \end{cases}

    ``exp(x) - 1`` is computed with ``expm1``, accurate for tiny ``|x|`` (as PyTorch does).

    Examples
    --------
    >>> elu(np.array([-np.inf, 0.0, 2.0]), alpha=2.0)
    array([-2.,  0.,  2.])
    """
    a = float(check_scalar("elu", "alpha", alpha))
    arr = _float_input("elu", x)
    if (fast := _fast("elu", arr, param=a)) is not None:
        return fast
    return np.where(arr <= 0, a * np.expm1(np.minimum(arr, 0)), arr)


def elu_backward(grad_out: Any, x: Any, alpha: float = 1.0) -> np.ndarray:
    """Gradient of :func:`elu` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient with respect to the output; same shape as ``x``.
    x : array_like
        The forward's input.
    alpha : float, default 1.0
        The forward's ``alpha``.

    Returns
    -------
    numpy.ndarray
        ``grad_x``, same shape, floating.

    Raises
    ------
    TypeError
        If an input is not numeric or ``alpha`` is not a real number.
    ValueError
        If an input is empty or the shapes differ.

    Notes
    -----
    ``grad_x = grad_out`` where ``x > 0`` and ``alpha * exp(x) * grad_out`` where ``x <= 0``; at
    ``x = 0`` this gives ``alpha`` (the left derivative), as in PyTorch; where ``x`` is NaN, NaN
    (as PyTorch's vectorised kernel gives).

    Examples
    --------
    >>> elu_backward(np.ones(3), np.array([-np.inf, 0.0, 1.0]), alpha=2.0)
    array([0., 2., 1.])
    """
    a = float(check_scalar("elu_backward", "alpha", alpha))
    g, xa = _backward_inputs("elu_backward", grad_out, x)
    if (fast := _fast("elu", g, xa, param=a)) is not None:
        return fast
    # (NaN in x gives NaN: np.minimum keeps it, as PyTorch's vectorised ELU backward does)
    return np.where(xa > 0, g, g * (a * np.exp(np.minimum(xa, 0))))


# --------------------------------------------------------------------------------------------
# saving pairs (used on Tensors): the backward reads the forward's output instead of recomputing


def relu_forward_saving(needs: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`relu` and all its backward needs: ``keep``, a ``np.bool_`` array, True where the
    output is not ``<= 0`` (``x > 0`` iff ``y > 0``; NaN is kept).  One byte a value instead of the
    output itself, which is then freed as soon as the next layer is done with it: in a LeNet-5
    training step (batch 64) the forward held 1.54 MiB of ReLU outputs until their backward."""
    arr = check_array("relu", "x", x, allow_empty=True)
    if arr.dtype.kind == "f" and _backend.float_kernels_take(arr):
        from cnnlab.functional import _numba_kernels as nk

        return nk.relu_keep(arr)
    y = relu(arr)
    return y, np.logical_not(y <= 0)


def relu_backward_saved(grad_out: np.ndarray, keep: np.ndarray, needs: Any) -> np.ndarray:
    """``grad_out`` where ``keep`` (:func:`relu_forward_saving`'s: the output positive or NaN), else 0,
    as :func:`relu_backward`."""
    g = np.asarray(grad_out)
    if g.dtype.kind == "f" and _backend.use_numba(keep.size):
        from cnnlab.functional import _numba_kernels as nk

        return nk.relu_grad_kept(g, keep)  # one branch-free pass (np.where branches on every element)
    return np.where(keep, g, g.dtype.type(0))

