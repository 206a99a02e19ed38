"""Loss functions on NumPy arrays, each with its backward beside it, as PyTorch defines them.

``cross_entropy`` and ``nll_loss`` take scores of shape ``(N, C)``, ``(N, C, d1, d2, ...)`` or
unbatched ``(C,)`` with class-index targets of shape ``(N,)``, ``(N, d1, d2, ...)`` or ``()``;
``cross_entropy`` also takes class-probability targets of the input's shape.  Losses are
computed in the input's floating dtype (integer inputs in float64).

Reductions: ``"none"`` keeps one loss per sample (and position); ``"sum"`` adds them;
``"mean"`` divides the sum by the total weight of the non-ignored targets for class-index
targets (the number of targets when no ``weight`` is given), and by the number of samples and
positions otherwise.  If every target is ignored the mean is ``0 / 0 = nan``, as in PyTorch.

Ignored targets, as in PyTorch: an ignored entry's loss is 0 whatever its scores (a NaN or
infinite score there does not reach the loss), and its gradient is 0 whatever the mean's divisor
(with every target ignored, the mean is nan but the gradient is 0, not ``0 * inf``; only scores
that are themselves not finite give a NaN through the softmax's gradient, as in PyTorch).  The
mean of class-index targets whose total weight is 0 is nan, with or without label smoothing
(PyTorch divides each part of the smoothed loss by that total).

Each ``*_backward(grad_out, *same_arguments)`` returns the gradient with respect to ``input``.
``mse_loss`` and ``binary_cross_entropy_with_logits`` live in
:mod:`cnnlab.functional._loss_elementwise`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.functional._args import check_array, check_choice, check_scalar, float_dtype
from cnnlab.functional._softmax import softmax_parts

_REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------- shared helpers


def _reduce(loss: np.ndarray, reduction: str, count: Any) -> np.ndarray:
    """Apply ``reduction``; ``count`` is the divisor of ``"mean"`` (a mean over a divisor of 0 is
    nan, as PyTorch's ``0 / 0``, even where the losses do not sum to 0)."""
    if reduction == "none":
        return loss
    total = np.sum(loss, dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(total)
    if count == 0:
        return np.asarray(np.nan, dtype=loss.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(total / count, dtype=loss.dtype)


def _grad_scale(grad_out: Any, reduction: str, count: Any, dtype: np.dtype) -> np.ndarray:
    """The factor each element's local gradient is multiplied by (broadcastable to them); a mean
    over a divisor of 0 (every target ignored, or class weights summing to 0) is nan, as its loss
    is (:func:`_reduce`): PyTorch's ``0 * (grad_out / 0)``, not the ``+-inf`` of ``grad_out / 0``."""
    grad_out = np.asarray(grad_out, dtype=dtype)
    if reduction == "mean" and count == 0:
        return np.full_like(grad_out, np.nan)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad_out / count
    return grad_out


def _sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a gradient over the axes that broadcasting added or stretched."""
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


def _check_input(op: str, x: Any) -> np.ndarray:
    x = check_array(op, "input", x, allow_empty=True)
    if x.ndim == 0:
        raise ValueError(f"{op}: input must be (C,), (N, C) or (N, C, d1, ...), got a 0-d array")
    return x.astype(float_dtype(x), copy=False)


def _check_weight(op: str, weight: Any, n_classes: int, dtype: np.dtype) -> np.ndarray | None:
    if weight is None:
        return None
    weight = check_array(op, "weight", weight)
    if weight.shape != (n_classes,):
        raise ValueError(
            f"{op}: weight must have shape ({n_classes},), one entry per class, "
            f"got shape {weight.shape}"
        )
    return weight.astype(dtype, copy=False)


def _check_ignore_index(op: str, ignore_index: Any) -> int:
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(
        ignore_index, (int, np.integer)
    ):
        raise TypeError(f"{op}: ignore_index must be an int, got {ignore_index!r}")
    return int(ignore_index)


def _batched(x: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give an unbatched ``(C,)`` input a batch axis (and its target)."""
    if x.ndim == 1:
        return x[None], target[None]
    return x, target


def _class_targets(
    op: str, x: np.ndarray, target: Any, weight: np.ndarray | None, ignore_index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check class indices for batched ``x`` (N, C, ...) and return ``(index, mask, w_t)``:
    the target with ignored entries set to 0, the mask of kept entries, and each entry's
    weight ``weight[target]`` (0 where ignored)."""
    n_classes = x.shape[1]
    expected = x.shape[:1] + x.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{op}: target must have shape {expected} for input of shape {x.shape}, "
            f"got {target.shape}"
        )
    kept = target != ignore_index
    index = np.where(kept, target, 0).astype(np.intp)
    if index.size and (index.min() < 0 or index.max() >= n_classes):  # (two reductions, not a mask)
        bad = (index < 0) | (index >= n_classes)
        raise ValueError(
            f"{op}: target {target[bad].flat[0]} is out of bounds for {n_classes} classes"
        )
    if weight is None:  # (each kept entry's weight is 1)
        return index, kept, kept.astype(x.dtype)
    return index, kept, np.where(kept, weight[index], 0).astype(x.dtype)


def _picked(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``x[n, index[n], ...]``: each entry's value at its target class (``x`` ``(N, C, ...)``,
    ``index`` ``(N, ...)``); plain indexing for 2-d ``x``, 3 us against 10 along an axis."""
    if x.ndim == 2:
        return x[np.arange(x.shape[0]), index]
    return np.take_along_axis(x, index[:, None], axis=1)[:, 0]


def _check_class_target(op: str, target: Any) -> np.ndarray:
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must be integer class indices, got dtype {target.dtype}")
    return target


# ---------------------------------------------------------------- cross entropy


def _ce_parse(
    x: Any, target: Any, weight: Any, reduction: str, label_smoothing: Any, ignore_index: Any
) -> tuple:
    """Validate and return ``(x, target, weight, smoothing, ignore_index, probabilities)`` with
    ``x`` batched; ``probabilities`` tells which kind of target was given."""
    op = "cross_entropy"
    x = _check_input(op, x)
    check_choice(op, "reduction", reduction, _REDUCTIONS)
    eps = float(check_scalar(op, "label_smoothing", label_smoothing))
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    ignore_index = _check_ignore_index(op, ignore_index)
    probabilities = np.shape(target) == x.shape
    if probabilities:
        target = check_array(op, "target", target, allow_empty=True)
        if target.dtype.kind != "f":
            raise TypeError(
                f"{op}: a target of the input's shape holds class probabilities and must be "
                f"floating point, got dtype {target.dtype}"
            )
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index is not supported for probability targets")
        target = target.astype(x.dtype, copy=False)
    else:
        target = _check_class_target(op, target)
    n_classes = x.shape[1] if x.ndim > 1 else x.shape[0]
    weight = _check_weight(op, weight, n_classes, x.dtype)
    x, target = _batched(x, target)
    return x, target, weight, eps, ignore_index, probabilities


def _ce_target_weights(x, target, weight, eps, ignore_index, probabilities):
    """``q`` with ``loss = -sum_c q[:, c] * log_softmax(x)[:, c]`` per sample, and the divisor
    of the mean.  Index targets: ``q_c = (1-eps) w_t [c == t] + eps/C * w_c`` where kept, 0 where
    ignored; probability targets: ``q_c = w_c ((1-eps) t_c + eps/C)``."""
    n_classes = x.shape[1]
    class_shape = (1, n_classes) + (1,) * (x.ndim - 2)
    w = np.ones(class_shape, dtype=x.dtype) if weight is None else weight.reshape(class_shape)
    if probabilities:
        q = w * (target * (1 - eps) + eps / n_classes)
        return q, q[:, 0].size
    index, kept, w_t = _class_targets("cross_entropy", x, target, weight, ignore_index)
    q = np.zeros_like(x)
    np.put_along_axis(q, index[:, None], ((1 - eps) * w_t)[:, None], axis=1)
    if eps > 0:
        q += (eps / n_classes) * w * kept[:, None]
    return q, w_t.sum()


def cross_entropy(
    input: Any,  # noqa: A002 - PyTorch's name
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> np.ndarray:
    """Cross-entropy between the softmax of scores (logits) and class targets.

    Parameters
    ----------
    input : array_like
        Unnormalised scores, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
    target : array_like
        Integer class indices of shape ``()``, ``(N,)`` or ``(N, d1, ...)`` with values in
        ``[0, C)`` or equal to ``ignore_index``; or floating class probabilities of the
        input's shape.
    weight : array_like, optional
        A rescaling weight per class, shape ``(C,)``.
    reduction : {"mean", "sum", "none"}, default "mean"
    label_smoothing : float, default 0.0
        Mixes the target with the uniform distribution: ``(1 - eps) * target + eps / C``.
    ignore_index : int, default -100
        A class-index target value that contributes neither loss nor gradient.

    Returns
    -------
    numpy.ndarray
        A 0-d array, or with ``reduction="none"`` one loss per sample and position.

    Raises
    ------
    TypeError
        For a non-numeric input, non-integer class indices or integer probabilities.
    ValueError
        For a wrong target or weight shape, an index out of ``[0, C)``, a bad reduction or
        ``label_smoothing`` outside ``[0, 1]``.

    Notes
    -----
    With ``log p = log_softmax(input, dim=1)`` (computed with the log-sum-exp shift) and class
    indices ``t``, sample ``n`` has
    ``loss_n = -(1 - eps) w[t_n] log p[n, t_n] - (eps / C) sum_c w[c] log p[n, c]``,
    and ``"mean"`` divides the sum of the kept losses by ``sum_n w[t_n]`` over kept samples.
    With probabilities ``y``: ``loss_n = -sum_c w[c] ((1 - eps) y[n, c] + eps / C) log p[n, c]``
    and ``"mean"`` divides by the number of samples and positions.

    Examples
    --------
    >>> import numpy as np
    >>> float(cross_entropy(np.array([[0.0, 0.0]]), np.array([1])))  # log 2
    0.6931471805599453
    """
    parsed = _ce_parse(input, target, weight, reduction, label_smoothing, ignore_index)
    return _ce_forward(parsed, reduction, np.ndim(input) == 1)[0]


def _ce_forward(parsed: tuple, reduction: str, unbatched: bool) -> tuple[np.ndarray, tuple]:
    """The loss of :func:`cross_entropy` from its parsed arguments, and what its backward needs:
    ``(p, logp, targets)``: ``p = softmax(x, 1)``, ``logp = log_softmax(x, 1)`` where the loss
    reads every class (probability targets, label smoothing; else None) and ``targets``, the
    ``(index, kept, w_t)`` of class-index targets (None for probabilities)."""
    x, target, weight, eps, ignore_index, probs = parsed
    p, shift, log_total = softmax_parts(x, 1)  # log_softmax(x, 1) = (x - shift) - log_total
    logp = targets = None
    if probs or eps > 0:
        with np.errstate(invalid="ignore"):  # -inf - -inf: NaN, as log_softmax gives
            logp = ((x - shift) - log_total).astype(x.dtype, copy=False)
    if probs:
        q, count = _ce_target_weights(x, target, weight, eps, ignore_index, probs)
        loss = -np.sum(q * logp, axis=1)
    else:
        # Gather the target's log-probability so that a -inf elsewhere cannot give 0 * -inf.
        targets = index, kept, w_t = _class_targets("cross_entropy", x, target, weight, ignore_index)
        with np.errstate(invalid="ignore"):
            picked = (_picked(x, index) - shift[:, 0]) - log_total[:, 0]
        # (an ignored entry's loss is 0, whatever its scores: PyTorch skips it)
        loss = np.where(kept, -(1 - eps) * w_t * picked.astype(x.dtype, copy=False), 0)
        if eps > 0:
            class_shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
            w = 1 if weight is None else weight.reshape(class_shape)
            loss = loss - (eps / x.shape[1]) * np.where(kept, np.sum(w * logp, axis=1), 0)
        count = w_t.sum()
    if unbatched and reduction == "none":
        loss = loss[0]
    return _reduce(loss.astype(x.dtype, copy=False), reduction, count), (p, logp, targets)


def cross_entropy_backward(
    grad_out: Any,
    input: Any,  # noqa: A002 - PyTorch's name
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> np.ndarray:
    """Gradient of :func:`cross_entropy` with respect to ``input``.

    Notes
    -----
    With ``loss_n = -sum_c q[n, c] log p[n, c]`` (``q`` the weighted, smoothed target; see
    :func:`cross_entropy`) and ``d log p[n, c] / d x[n, j] = [c == j] - p[n, j]``:
    ``d loss_n / d x[n, j] = p[n, j] sum_c q[n, c] - q[n, j]``, times ``grad_out`` (divided by
    the mean's divisor for ``"mean"``).
    """
    return cross_entropy_backward_all(grad_out, input, target, weight, reduction, label_smoothing,
                                      ignore_index)[0]


def _ce_scale(grad_out: Any, reduction: str, count: Any, x: np.ndarray, kept: np.ndarray | None = None
              ) -> np.ndarray:
    """``grad_out`` over the mean's divisor, shaped to broadcast against ``(N, C, d1, ...)``; 0 for
    the entries that ``kept`` (``(N, d1, ...)``, class-index targets) marks ignored, so that their
    gradient is 0 even where the divisor is (PyTorch's); a kept entry's is nan there
    (:func:`_grad_scale`: PyTorch's NaN at the target reaches the whole row through the softmax)."""
    scale = _grad_scale(grad_out, reduction, count, x.dtype)
    if reduction == "none":
        scale = scale.reshape((x.shape[0], 1) + x.shape[2:])
    if kept is not None:
        scale = np.where(kept[:, None], scale, 0).astype(x.dtype, copy=False)
    return scale


def _ce_grads(grad_out: Any, parsed: tuple, saved: tuple, reduction: str, shapes: tuple,
              needs: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(grad_input, grad_target)`` of :func:`cross_entropy` from its parsed arguments and what
    :func:`_ce_forward` saved; ``shapes`` are those of ``input`` and ``target`` and the target's
    dtype.  A gradient that ``needs`` does not ask for, or that does not exist, is None."""
    x, target, weight, eps, ignore_index, probs = parsed
    p, logp, targets = saved
    input_shape, target_shape, target_dtype = shapes
    grad_x = grad_t = None
    if needs[0] and targets is not None and eps == 0:
        # q is w_t at the target and 0 elsewhere: grad = (p - [c == t]) w_t grad_out (/ count)
        index, kept, w_t = targets
        coef = w_t[:, None] * _ce_scale(grad_out, reduction, w_t.sum(), x, kept)
        grad = p * coef
        if grad.ndim == 2:  # (one entry per row: plain indexing, 3 us against 10 along an axis)
            rows = np.arange(grad.shape[0])
            grad[rows, index] -= coef[:, 0]
        else:
            column = np.take_along_axis(grad, index[:, None], axis=1)
            np.put_along_axis(grad, index[:, None], column - coef, axis=1)
        grad_x = grad.reshape(input_shape).astype(x.dtype, copy=False)
    elif needs[0]:
        q, count = _ce_target_weights(x, target, weight, eps, ignore_index, probs)
        kept = None if probs else targets[1]
        grad = (p * np.sum(q, axis=1, keepdims=True) - q) * _ce_scale(grad_out, reduction, count, x, kept)
        grad_x = grad.reshape(input_shape).astype(x.dtype, copy=False)
    if probs and needs[1]:
        class_shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        w = np.ones(class_shape, dtype=x.dtype) if weight is None else weight.reshape(class_shape)
        count = x.shape[0] * int(math.prod(x.shape[2:]))
        grad_t = -(1 - eps) * w * logp * _ce_scale(grad_out, reduction, count, x)
        grad_t = grad_t.reshape(target_shape).astype(target_dtype, copy=False)
    return grad_x, grad_t


def _target_shapes(input: Any, target: Any, x: np.ndarray) -> tuple:  # noqa: A002
    target_dtype = np.asarray(target).dtype
    return np.shape(input), np.shape(target), target_dtype if target_dtype.kind == "f" else x.dtype


def cross_entropy_backward_all(
    grad_out: Any,
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradients ``(grad_input, grad_target)`` of :func:`cross_entropy`.

    ``grad_target`` is None for class-index targets (they are not differentiable) and, for a
    target of class probabilities (knowledge distillation, label mixing), the derivative of
    ``loss_n = -sum_c w_c ((1 - eps) t[n, c] + eps / C) log p[n, c]``:
    ``d loss_n / d t[n, c] = -(1 - eps) w_c log p[n, c]``, times ``grad_out`` (divided by the
    mean's divisor for ``"mean"``), as PyTorch gives it.

    Examples
    --------
    >>> import numpy as np
    >>> gx, gt = cross_entropy_backward_all(1.0, np.array([[0.0, 0.0]]), np.array([[0.5, 0.5]]))
    >>> gt  # -log(1/2) for each class
    array([[0.69314718, 0.69314718]])
    """
    needs = (True, True)
    _, saved = cross_entropy_forward_saving(needs, input, target, weight, reduction, label_smoothing, ignore_index)
    return cross_entropy_backward_saved(grad_out, saved, needs)


def cross_entropy_forward_saving(
    needs: Any,
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> tuple[np.ndarray, tuple]:
    """:func:`cross_entropy` and what its backward needs (the softmax, the parsed targets), so
    that the backward neither parses the arguments again nor recomputes the softmax."""
    parsed = _ce_parse(input, target, weight, reduction, label_smoothing, ignore_index)
    loss, saved = _ce_forward(parsed, reduction, np.ndim(input) == 1)
    return loss, (parsed, saved, reduction, _target_shapes(input, target, parsed[0]))


def cross_entropy_backward_saved(grad_out: Any, saved: tuple, needs: Any) -> tuple:
    """:func:`cross_entropy_backward_all` from what :func:`cross_entropy_forward_saving` kept."""
    parsed, forward_saved, reduction, shapes = saved
    return _ce_grads(grad_out, parsed, forward_saved, reduction, shapes, needs)


# ---------------------------------------------------------------- negative log-likelihood


def _nll_parse(x: Any, target: Any, weight: Any, reduction: str, ignore_index: Any) -> tuple:
    op = "nll_loss"
    x = _check_input(op, x)
    check_choice(op, "reduction", reduction, _REDUCTIONS)
    ignore_index = _check_ignore_index(op, ignore_index)
    target = _check_class_target(op, target)
    n_classes = x.shape[1] if x.ndim > 1 else x.shape[0]
    weight = _check_weight(op, weight, n_classes, x.dtype)
    x, target = _batched(x, target)
    return x, _class_targets(op, x, target, weight, ignore_index)


def nll_loss(
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> np.ndarray:
    """Negative log-likelihood of class targets given log-probabilities.

    Parameters
    ----------
    input : array_like
        Log-probabilities (e.g. from ``log_softmax``), shape ``(C,)``, ``(N, C)`` or
        ``(N, C, d1, ...)``.
    target : array_like
        Integer class indices, shape ``()``, ``(N,)`` or ``(N, d1, ...)``.
    weight : array_like, optional
        A rescaling weight per class, shape ``(C,)``.
    reduction : {"mean", "sum", "none"}, default "mean"
    ignore_index : int, default -100
        A target value that contributes neither loss nor gradient.

    Returns
    -------
    numpy.ndarray
        ``loss_n = -w[t_n] input[n, t_n]`` reduced; ``"mean"`` divides by ``sum_n w[t_n]``
        over the kept targets.

    Raises
    ------
    TypeError
        For a non-numeric input or non-integer targets.
    ValueError
        For a wrong target or weight shape, an index out of ``[0, C)`` or a bad reduction.

    Examples
    --------
    >>> import numpy as np
    >>> nll_loss(np.log(np.array([[0.25, 0.75]])), np.array([1]), reduction="none")
    array([0.28768207])
    """
    x, (index, kept, w_t) = _nll_parse(input, target, weight, reduction, ignore_index)
    # (an ignored entry's loss is 0, whatever its input: PyTorch skips it)
    loss = np.where(kept, -w_t * np.take_along_axis(x, index[:, None], axis=1)[:, 0], 0).astype(x.dtype, copy=False)
    if np.ndim(input) == 1 and reduction == "none":
        loss = loss[0]
    return _reduce(loss, reduction, w_t.sum())


def nll_loss_backward(
    grad_out: Any,
    input: Any,  # noqa: A002
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> np.ndarray:
    """Gradient of :func:`nll_loss` with respect to ``input``: ``-w[t_n] * grad_out`` at
    ``input[n, t_n]`` (divided by ``sum_n w[t_n]`` for ``"mean"``), zero elsewhere."""
    x, (index, kept, w_t) = _nll_parse(input, target, weight, reduction, ignore_index)
    scale = _grad_scale(grad_out, reduction, w_t.sum(), x.dtype)
    if reduction == "none":
        scale = scale.reshape(w_t.shape)
    scale = np.where(kept, scale, 0).astype(x.dtype, copy=False)  # (an ignored entry's gradient is 0)
    grad = np.zeros_like(x)
    np.put_along_axis(grad, index[:, None], (-w_t * scale)[:, None], axis=1)
    return grad.reshape(np.shape(input))
