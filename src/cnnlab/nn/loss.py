"""Loss layers calling the functional losses: ``CrossEntropyLoss``, ``NLLLoss``, ``MSELoss``,
``BCEWithLogitsLoss``.  Class weights are buffers, as in PyTorch (so they appear in
``state_dict``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.autograd import Tensor
from cnnlab.functional._args import check_array, check_choice, check_int, check_scalar
from cnnlab.nn import _ops
from cnnlab.nn.config import register_module
from cnnlab.nn.module import Module

_REDUCTIONS = ("none", "mean", "sum")


def _data(value: Any) -> Any:
    return None if value is None else value.data


def _listed(buffer: Tensor | None) -> Any:
    return None if buffer is None else buffer.data.tolist()


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_choice(type(self).__name__, "reduction", reduction, _REDUCTIONS)

    def _weight_buffer(self, name: str, value: Any) -> None:
        if value is None:
            self.register_buffer(name, None)
            return
        array = check_array(type(self).__name__, name, value.data if isinstance(value, Tensor) else value)
        if array.dtype.kind != "f":
            array = array.astype(np.float64)
        self.register_buffer(name, Tensor(np.array(array, copy=True)))


@register_module
class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits and class targets (indices or probabilities);
    see :func:`cnnlab.functional._loss.cross_entropy`.

    Parameters
    ----------
    weight : array_like of shape (C,), optional
        Class weights.
    ignore_index : int, default -100
    reduction : {'none', 'mean', 'sum'}, default 'mean'
    label_smoothing : float, default 0.0

    Examples
    --------
    >>> import numpy as np
    >>> round(float(CrossEntropyLoss()(np.zeros((2, 4)), np.array([0, 3]))), 6) == round(float(np.log(4)), 6)
    True
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self._weight_buffer("weight", weight)
        self.ignore_index = check_int("CrossEntropyLoss", "ignore_index", ignore_index)
        self.label_smoothing = float(check_scalar("CrossEntropyLoss", "label_smoothing", label_smoothing))

    def forward(self, input: Any, target: Any) -> Any:  # noqa: A002 - PyTorch's name
        return _ops.cross_entropy(input, target, _data(self.weight), self.reduction, self.label_smoothing,
                                  self.ignore_index)

    def config_args(self) -> dict[str, Any]:
        return {"weight": _listed(self.weight), "ignore_index": self.ignore_index, "reduction": self.reduction,
                "label_smoothing": self.label_smoothing}


@register_module
class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities and class indices;
    see :func:`cnnlab.functional._loss.nll_loss`.

    Parameters
    ----------
    weight : array_like of shape (C,), optional
    ignore_index : int, default -100
    reduction : {'none', 'mean', 'sum'}, default 'mean'
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self._weight_buffer("weight", weight)
        self.ignore_index = check_int("NLLLoss", "ignore_index", ignore_index)

    def forward(self, input: Any, target: Any) -> Any:  # noqa: A002
        return _ops.nll_loss(input, target, _data(self.weight), self.reduction, self.ignore_index)

    def config_args(self) -> dict[str, Any]:
        return {"weight": _listed(self.weight), "ignore_index": self.ignore_index, "reduction": self.reduction}


@register_module
class MSELoss(_Loss):
    """Mean squared error; see :func:`cnnlab.functional._loss_elementwise.mse_loss`.

    Parameters
    ----------
    reduction : {'none', 'mean', 'sum'}, default 'mean'
    """

    def forward(self, input: Any, target: Any) -> Any:  # noqa: A002
        return _ops.mse_loss(input, target, self.reduction)

    def config_args(self) -> dict[str, Any]:
        return {"reduction": self.reduction}


@register_module
class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits (sigmoid built in, numerically stable);
    see :func:`cnnlab.functional._loss_elementwise.binary_cross_entropy_with_logits`.

    Parameters
    ----------
    weight : array_like, optional
        Rescales each element's loss (broadcast against the input).
    reduction : {'none', 'mean', 'sum'}, default 'mean'
    pos_weight : array_like, optional
        Weight of the positive term, per class (broadcast along the last dim).
    """

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self._weight_buffer("weight", weight)
        self._weight_buffer("pos_weight", pos_weight)

    def forward(self, input: Any, target: Any) -> Any:  # noqa: A002
        return _ops.binary_cross_entropy_with_logits(input, target, _data(self.weight), self.reduction,
                                                     _data(self.pos_weight))

    def config_args(self) -> dict[str, Any]:
        return {"weight": _listed(self.weight), "reduction": self.reduction, "pos_weight": _listed(self.pos_weight)}
