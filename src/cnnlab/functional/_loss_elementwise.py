"""The elementwise losses, each with its backward beside it, as PyTorch defines them: mean squared
error and binary cross entropy with logits.  Their reductions are those of
:mod:`cnnlab.functional._loss` (whose helpers they share); each ``*_backward(grad_out,
*same_arguments)`` returns the gradients with respect to ``input`` and ``target``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._args import check_array, check_choice, float_dtype
from cnnlab.functional._loss import _REDUCTIONS, _grad_scale, _reduce, _sum_to_shape

# ---------------------------------------------------------------- mean squared error


def _mse_parse(x: Any, target: Any, reduction: str) -> tuple[np.ndarray, np.ndarray]:
    x = check_array("mse_loss", "input", x, allow_empty=True)
    target = check_array("mse_loss", "target", target, allow_empty=True)
    check_choice("mse_loss", "reduction", reduction, _REDUCTIONS)
    try:
        np.broadcast_shapes(x.shape, target.shape)
    except ValueError:
        raise ValueError(
            f"mse_loss: input of shape {x.shape} and target of shape {target.shape} "
            "do not broadcast"
        ) from None
    dtype = np.result_type(float_dtype(x), float_dtype(target))
    return x.astype(dtype, copy=False), target.astype(dtype, copy=False)


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> np.ndarray:  # noqa: A002
    """Squared error ``(input - target)^2``, broadcasting the two, then reduced.

    Examples
    --------
    >>> import numpy as np
    >>> float(mse_loss(np.array([1.0, 2.0]), np.array([0.0, 0.0])))
    2.5
    """
    x, target = _mse_parse(input, target, reduction)
    loss = (x - target) ** 2
    return _reduce(loss, reduction, loss.size)


def mse_loss_backward(
    grad_out: Any,
    input: Any,  # noqa: A002
    target: Any,
    reduction: str = "mean",
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of :func:`mse_loss`: ``2 (input - target) grad_out`` for ``input`` and its
    negative for ``target`` (divided by the element count for ``"mean"``), each summed over
    the axes broadcasting stretched."""
    x, target = _mse_parse(input, target, reduction)
    diff = x - target
    grad = 2 * diff * _grad_scale(grad_out, reduction, diff.size, diff.dtype)
    return _sum_to_shape(grad, x.shape), _sum_to_shape(-grad, target.shape)


# ---------------------------------------------------------------- binary cross entropy


def _bce_parse(x, target, weight, reduction, pos_weight) -> tuple:
    op = "binary_cross_entropy_with_logits"
    x = check_array(op, "input", x, allow_empty=True)
    target = check_array(op, "target", target, allow_empty=True)
    check_choice(op, "reduction", reduction, _REDUCTIONS)
    if target.shape != x.shape:
        raise ValueError(
            f"{op}: target must have the input's shape {x.shape}, got {target.shape}"
        )
    dtype = np.result_type(float_dtype(x), float_dtype(target))
    arrays = [x.astype(dtype, copy=False), target.astype(dtype, copy=False)]
    for name, extra in (("weight", weight), ("pos_weight", pos_weight)):
        if extra is not None:
            extra = check_array(op, name, extra)
            try:
                fits = np.broadcast_shapes(extra.shape, x.shape) == x.shape
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(
                    f"{op}: {name} of shape {extra.shape} does not broadcast to the input's "
                    f"shape {x.shape}"
                )
            extra = extra.astype(dtype, copy=False)
        arrays.append(extra)
    return tuple(arrays)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    """``log(1 / (1 + exp(-x))) = -(max(-x, 0) + log1p(exp(-|x|)))``, stable for any ``x``."""
    return -(np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x))))


def binary_cross_entropy_with_logits(
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> np.ndarray:
    """Binary cross-entropy between ``sigmoid(input)`` and targets in [0, 1], from logits.

    Parameters
    ----------
    input : array_like
        Logits, any shape.
    target : array_like
        Targets of the input's shape (probabilities of the positive class).
    weight : array_like, optional
        Rescaling of each element, broadcastable to the input.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"`` divides by the number of elements.
    pos_weight : array_like, optional
        Weight of the positive term, broadcastable to the input (usually one per class,
        along the last axis).

    Raises
    ------
    TypeError
        For non-numeric arrays.
    ValueError
        For a target not of the input's shape, a weight that does not broadcast to it, or a
        bad reduction.

    Notes
    -----
    ``loss = -weight (pos_weight y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))``, computed as
    ``weight ((1 - y) x - (1 + (pos_weight - 1) y) log sigmoid(x))`` with a stable log-sigmoid.

    Examples
    --------
    >>> import numpy as np
    >>> float(binary_cross_entropy_with_logits(np.array([0.0]), np.array([1.0])))  # log 2
    0.6931471805599453
    """
    x, y, weight, pos_weight = _bce_parse(input, target, weight, reduction, pos_weight)
    if weight is None and pos_weight is None and _backend.float_kernels_take(x):
        from cnnlab.functional import _numba_loss

        loss = _numba_loss.bce_with_logits(x, y)
        return _reduce(loss, reduction, loss.size)
    log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
    loss = (1 - y) * x - log_weight * _log_sigmoid(x)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, loss.size)


def binary_cross_entropy_with_logits_backward(
    grad_out: Any,
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of :func:`binary_cross_entropy_with_logits` for ``input`` and ``target``.

    Notes
    -----
    With ``l = 1 + (pos_weight - 1) y``: ``d loss / d x = weight (l sigmoid(x) - pos_weight y)``
    and ``d loss / d y = -weight (x + (pos_weight - 1) log sigmoid(x))``.
    """
    x, y, weight, pos_weight = _bce_parse(input, target, weight, reduction, pos_weight)
    scale = _grad_scale(grad_out, reduction, x.size, x.dtype)
    if weight is None and pos_weight is None and np.ndim(scale) == 0 and _backend.float_kernels_take(x):
        from cnnlab.functional import _numba_loss

        return _numba_loss.bce_with_logits_backward(x, y, scale)
    log_sig = _log_sigmoid(x)
    if pos_weight is None:
        grad_x = np.exp(log_sig) - y
        grad_y = -x
    else:
        grad_x = (1 + (pos_weight - 1) * y) * np.exp(log_sig) - pos_weight * y
        grad_y = -x - (pos_weight - 1) * log_sig
    if weight is not None:
        scale = scale * weight
    return grad_x * scale, grad_y * scale
