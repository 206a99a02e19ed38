"""The fully connected (affine) layer ``linear`` with its backward beside it."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.functional import _blas
from cnnlab.functional._args import check_array, check_exact_range, check_ndim, result_dtype


def _linear_args(op: str, x: Any, weight: Any, bias: Any) -> tuple[np.ndarray, ...]:
    x = check_array(op, "x", x, allow_empty=True)
    weight = check_array(op, "weight", weight)
    check_ndim(op, "weight", weight, (2,), "out_features, in_features")
    if x.ndim == 0:
        raise ValueError(f"{op}: x must have at least one dim (*, in_features), got a scalar")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"{op}: x's last dim {x.shape[-1]} does not match in_features {weight.shape[1]} "
            f"(x shape {x.shape}, weight shape {weight.shape})"
        )
    if bias is not None:
        bias = check_array(op, "bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"{op}: bias must have shape ({weight.shape[0]},), got shape {bias.shape}")
    dtype = result_dtype(x, weight, *(() if bias is None else (bias,)))
    check_exact_range(op, weight.shape[1], x, weight, bias)
    cast = [a if a is None else a.astype(dtype, copy=False) for a in (x, weight, bias)]
    return tuple(cast)


def linear(x: Any, weight: Any, bias: Any = None) -> np.ndarray:
    r"""Affine map ``y = x W^T + b`` over the last axis (PyTorch's ``F.linear``).

    Parameters
    ----------
    x : array_like
        Input ``(*, in_features)``: any number of leading (batch) dims.
    weight : array_like
        ``(out_features, in_features)``: row ``o`` holds the weights of output unit ``o``.
    bias : array_like, optional
        ``(out_features,)``.

    Shape
    -----
    ``(*, in_features) -> (*, out_features)``.

    Returns
    -------
    numpy.ndarray
        Integer inputs give exact int64; float32 stays float32, float64 stays float64.

    Raises
    ------
    TypeError
        Non-numeric arrays.
    ValueError
        ``weight`` not 2-D, ``x``'s last dim not ``in_features``, a bias of the wrong shape, empty
        arrays.

    Notes
    -----
    .. math:: y[\dots, o] = b[o] + \sum_i x[\dots, i] \, W[o, i]

    Examples
    --------
    >>> linear([[1, 2]], [[1, 0], [1, 1], [0, -1]], [0, 0, 10])
    array([[1, 3, 8]])
    """
    x, weight, bias = _linear_args("linear", x, weight, bias)
    y = _blas.matmul(x.reshape(-1, x.shape[-1]), weight.T).reshape(*x.shape[:-1], weight.shape[0])
    if bias is not None:
        y = y + bias
    return y


# Backward of y[..., o] = b[o] + sum_i x[..., i] W[o, i]:
#   grad_x[..., i] = sum_o grad_out[..., o] W[o, i]          (grad_out @ W)
#   grad_W[o, i]   = sum_{...} grad_out[..., o] x[..., i]     (grad_out^T @ x over all leading dims)
#   grad_b[o]      = sum_{...} grad_out[..., o]
def linear_backward(
    grad_out: Any, x: Any, weight: Any, bias: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients ``(grad_x, grad_w, grad_b)`` of :func:`linear` (``grad_b`` is None without bias).

    Examples
    --------
    >>> gx, gw, gb = linear_backward([[1, 1, 1]], [[1, 2]], [[1, 0], [1, 1], [0, -1]], [0, 0, 10])
    >>> gx, gw, gb
    (array([[2, 0]]), array([[1, 2],
           [1, 2],
           [1, 2]]), array([1, 1, 1]))
    """
    x, weight, bias = _linear_args("linear_backward", x, weight, bias)
    grad_out = check_array("linear_backward", "grad_out", grad_out, allow_empty=True)
    shape = x.shape[:-1] + (weight.shape[0],)
    if grad_out.shape != shape:
        raise ValueError(f"linear_backward: grad_out must have the output's shape {shape}, got {grad_out.shape}")
    dtype = result_dtype(grad_out, x, weight)
    g = grad_out.astype(dtype, copy=False)
    g2 = g.reshape(-1, weight.shape[0])
    grad_x = _blas.matmul(g2, weight.astype(dtype, copy=False)).reshape(x.shape)
    grad_w = _blas.matmul(g2.T, x.astype(dtype, copy=False).reshape(-1, weight.shape[1]))
    grad_b = None if bias is None else g2.sum(axis=0)
    return grad_x, grad_w, grad_b
