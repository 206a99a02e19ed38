"""The Tensor's own basic operators: NumPy forward and backward pairs.

Arithmetic, reductions, shape changes, indexing and a few elementwise functions.  Each
``op(...)`` works on NumPy arrays (or Python scalars) and each ``op_backward(grad_out, ...)``
takes the same arguments after ``grad_out`` and returns one gradient per differentiable input,
following the convention of :mod:`cnnlab.functional` (see ``functional/_dispatch.py``).
:mod:`cnnlab.autograd` wraps them with ``differentiable`` to make the Tensor methods.

A backward returns ``None`` for an operand that is not an array (a Python scalar such as the
``2`` in ``x * 2``): constants need no gradient.  Broadcast operands get the sum of the
gradient over the broadcast axes (:func:`unbroadcast`).  Backward functions never modify
``grad_out`` in place: the engine may hand the same array to several inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._args import check_dim

Dims = int | Sequence[int] | None


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``.

    Examples
    --------
    >>> unbroadcast(np.ones((2, 3, 4)), (3, 1)).tolist()
    [[8.0], [8.0], [8.0]]
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def axes(op: str, dim: Dims, ndim: int) -> tuple[int, ...]:
    """Normalise ``dim`` (None = all axes, an int, or a sequence of ints) to sorted axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if not isinstance(dim, (tuple, list)) else dim
    # A 0-d tensor accepts dim 0 and -1, as in torch.
    normal = [check_dim(op, d, max(ndim, 1)) for d in dims]
    if len(set(normal)) != len(normal):
        raise ValueError(f"{op}: dim must not repeat an axis, got {dim}")
    return tuple(sorted(normal)) if ndim > 0 else ()


def _expand(grad: np.ndarray, ax: tuple[int, ...], keepdim: bool, shape: tuple) -> np.ndarray:
    """Undo a reduction: put back the reduced axes of ``grad`` and broadcast it to ``shape``."""
    if not keepdim:
        grad = np.expand_dims(grad, ax)
    return np.broadcast_to(grad, shape)


# ---------------------------------------------------------------- arithmetic (broadcasting)


def add(a: Any, b: Any) -> np.ndarray:
    return np.add(a, b)


def add_backward(grad_out: np.ndarray, a: Any, b: Any) -> tuple:
    return (
        unbroadcast(grad_out, a.shape) if _is_array(a) else None,
        unbroadcast(grad_out, b.shape) if _is_array(b) else None,
    )


def sub(a: Any, b: Any) -> np.ndarray:
    return np.subtract(a, b)


def sub_backward(grad_out: np.ndarray, a: Any, b: Any) -> tuple:
    return (
        unbroadcast(grad_out, a.shape) if _is_array(a) else None,
        unbroadcast(-grad_out, b.shape) if _is_array(b) else None,
    )


def mul(a: Any, b: Any) -> np.ndarray:
    return np.multiply(a, b)


def mul_backward(grad_out: np.ndarray, a: Any, b: Any) -> tuple:
    return (
        unbroadcast(grad_out * b, a.shape) if _is_array(a) else None,
        unbroadcast(grad_out * a, b.shape) if _is_array(b) else None,
    )


def div(a: Any, b: Any) -> np.ndarray:
    return np.true_divide(a, b)


def div_backward(grad_out: np.ndarray, a: Any, b: Any) -> tuple:
    # d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2
    return (
        unbroadcast(grad_out / b, a.shape) if _is_array(a) else None,
        unbroadcast(-grad_out * a / (b * b), b.shape) if _is_array(b) else None,
    )


def power(base: Any, exponent: Any) -> np.ndarray:
    return np.power(base, exponent)


def power_backward(grad_out: np.ndarray, base: Any, exponent: Any) -> tuple:
    """As torch: the base gets 0 where the exponent is 0 (even at base 0), and the exponent
    gets 0 where the base is 0 and the exponent is non-negative (instead of ``0 * log 0``)."""
    grad_base = grad_exp = None
    with np.errstate(divide="ignore", invalid="ignore"):
        if _is_array(base):
            local = np.where(exponent == 0, 0, exponent * np.power(base, exponent - 1))
            grad_base = unbroadcast(grad_out * local, base.shape)
        if _is_array(exponent):
            zero = (np.asarray(base) == 0) & (exponent >= 0)
            local = np.where(zero, 0, np.power(base, exponent) * np.log(base))
            grad_exp = unbroadcast(grad_out * local, exponent.shape)
    return grad_base, grad_exp


def neg(x: np.ndarray) -> np.ndarray:
    return np.negative(x)


def neg_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    return -grad_out


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a, b)


def matmul_backward(grad_out: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple:
    """``out = a @ b`` with NumPy's rules: a 1-D ``a`` is a row (k,) -> (1, k), a 1-D ``b`` a
    column (k,) -> (k, 1), leading (batch) axes broadcast.  With 2-D views ``A``, ``B`` and
    ``G`` of the same rank: ``dA = G @ B^T`` and ``dB = A^T @ G``, summed over broadcast batch
    axes and reshaped back to the operand's shape."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = grad_out
    if b.ndim == 1:  # put back the column axis first: with both 1-D, grad_out is 0-d
        g2 = g2[..., None]
    if a.ndim == 1:
        g2 = g2[..., None, :]
    grad_a = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
    grad_b = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
    return grad_a, grad_b


# ---------------------------------------------------------------- reductions


def sum_(x: np.ndarray, dim: Dims = None, keepdim: bool = False) -> np.ndarray:
    ax = axes("sum", dim, x.ndim)
    if len(ax) == x.ndim and x.ndim:  # every value: the same sum, large arrays on two threads
        total = _backend.sum_all(x)
        return np.reshape(total, (1,) * x.ndim) if keepdim else total
    return np.sum(x, axis=ax, keepdims=keepdim)


def sum_backward(grad_out: np.ndarray, x: np.ndarray, dim: Dims = None, keepdim: bool = False):
    # a read-only broadcast view, as PyTorch's expand: the tape copies it only where a leaf keeps
    # it as its .grad, and an op's backward reads it (ReLU's without copying it out)
    return _expand(grad_out, axes("sum", dim, x.ndim), keepdim, x.shape)


def mean(x: np.ndarray, dim: Dims = None, keepdim: bool = False) -> np.ndarray:
    return np.mean(x, axis=axes("mean", dim, x.ndim), keepdims=keepdim)


def mean_backward(grad_out: np.ndarray, x: np.ndarray, dim: Dims = None, keepdim: bool = False):
    ax = axes("mean", dim, x.ndim)
    count = int(math.prod([x.shape[d] for d in ax]))
    return _expand(grad_out / count, ax, keepdim, x.shape)  # (a view, as sum_backward's)


def amax(x: np.ndarray, dim: Dims = None, keepdim: bool = False) -> np.ndarray:
    return np.max(x, axis=axes("amax", dim, x.ndim), keepdims=keepdim)


def amin(x: np.ndarray, dim: Dims = None, keepdim: bool = False) -> np.ndarray:
    return np.min(x, axis=axes("amin", dim, x.ndim), keepdims=keepdim)


def _extreme_backward(grad_out, x, dim, keepdim, reduce) -> np.ndarray:
    """Ties share the gradient evenly (torch's amax/amin and full ``max()``/``min()``)."""
    ax = axes("amax", dim, x.ndim)
    hit = (x == reduce(x, axis=ax, keepdims=True)).astype(grad_out.dtype)
    share = hit / hit.sum(axis=ax, keepdims=True)
    return _expand(grad_out, ax, keepdim, x.shape) * share


def amax_backward(grad_out: np.ndarray, x: np.ndarray, dim: Dims = None, keepdim: bool = False):
    return _extreme_backward(grad_out, x, dim, keepdim, np.max)


def amin_backward(grad_out: np.ndarray, x: np.ndarray, dim: Dims = None, keepdim: bool = False):
    return _extreme_backward(grad_out, x, dim, keepdim, np.min)


def max_dim(x: np.ndarray, dim: int, keepdim: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Values and (first) indices of the maxima along ``dim``."""
    d = axes("max", dim, x.ndim)
    axis = d[0] if d else None
    idx = np.expand_dims(np.argmax(x, axis=axis), axis) if axis is not None else np.argmax(x)
    return _take_and_index(x, idx, axis, keepdim)


def min_dim(x: np.ndarray, dim: int, keepdim: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Values and (first) indices of the minima along ``dim``."""
    d = axes("min", dim, x.ndim)
    axis = d[0] if d else None
    idx = np.expand_dims(np.argmin(x, axis=axis), axis) if axis is not None else np.argmin(x)
    return _take_and_index(x, idx, axis, keepdim)


def _take_and_index(x, idx, axis, keepdim) -> tuple[np.ndarray, np.ndarray]:
    if axis is None:  # 0-d input
        return x.copy(), np.asarray(idx, dtype=np.int64)
    values = np.take_along_axis(x, idx, axis=axis)
    if not keepdim:
        values, idx = np.squeeze(values, axis), np.squeeze(idx, axis)
    return values, idx.astype(np.int64)


def _select_backward(grad_out, x, dim, keepdim, pick) -> np.ndarray:
    """The whole gradient goes to the selected (first extreme) index along ``dim``."""
    _, idx = pick(x, dim, True)
    if x.ndim == 0:
        return np.array(grad_out, copy=True)
    axis = axes("max", dim, x.ndim)[0]
    grad_x = np.zeros(x.shape, dtype=grad_out.dtype)
    g = grad_out if keepdim else np.expand_dims(grad_out, axis)
    np.put_along_axis(grad_x, idx, g, axis=axis)
    return grad_x


def max_dim_backward(grad_out: np.ndarray, x: np.ndarray, dim: int, keepdim: bool = False):
    return _select_backward(grad_out, x, dim, keepdim, max_dim)


def min_dim_backward(grad_out: np.ndarray, x: np.ndarray, dim: int, keepdim: bool = False):
    return _select_backward(grad_out, x, dim, keepdim, min_dim)


# ---------------------------------------------------------------- shapes and indexing


def reshape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.reshape(x, shape)


def reshape_backward(grad_out: np.ndarray, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.reshape(grad_out, x.shape)


def permute(x: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    return np.transpose(x, dims)


def permute_backward(grad_out: np.ndarray, x: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    return np.transpose(grad_out, np.argsort(dims))


def getitem(x: np.ndarray, index: Any) -> np.ndarray:
    return x[index]


def getitem_backward(grad_out: np.ndarray, x: np.ndarray, index: Any) -> np.ndarray:
    """Scatter-add: an element picked several times (repeated advanced indices) collects the
    sum of its gradients."""
    grad_x = np.zeros(x.shape, dtype=grad_out.dtype)
    np.add.at(grad_x, index, grad_out)
    return grad_x


def astype(x: np.ndarray, dtype: Any) -> np.ndarray:
    return x.astype(dtype)


def astype_backward(grad_out: np.ndarray, x: np.ndarray, dtype: Any) -> np.ndarray:
    return grad_out.astype(x.dtype)


# ---------------------------------------------------------------- elementwise functions


def exp(x: np.ndarray) -> np.ndarray:
    return np.exp(x)


def exp_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    return grad_out * np.exp(x)


def log(x: np.ndarray) -> np.ndarray:
    return np.log(x)


def log_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    return grad_out / x


def sqrt(x: np.ndarray) -> np.ndarray:
    return np.sqrt(x)


def sqrt_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    return grad_out / (2 * np.sqrt(x))


def abs_(x: np.ndarray) -> np.ndarray:
    return np.abs(x)


def abs_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Subgradient 0 at x == 0 (``sign(0) = 0``), as torch."""
    return grad_out * np.sign(x)


def clamp(x: np.ndarray, min: float | None = None, max: float | None = None) -> np.ndarray:  # noqa: A002
    out = x
    if min is not None:
        out = np.maximum(out, min)
    if max is not None:
        out = np.minimum(out, max)
    return out if out is not x else x.copy()


def clamp_backward(grad_out: np.ndarray, x: np.ndarray, min=None, max=None) -> np.ndarray:  # noqa: A002
    """The gradient passes where ``min <= x <= max`` (boundaries included), as torch."""
    keep = np.ones(x.shape, dtype=bool)
    if min is not None:
        keep &= x >= min
    if max is not None:
        keep &= x <= max
    return grad_out * keep
