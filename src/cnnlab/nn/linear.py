"""``Linear`` (fully connected), ``Flatten`` and ``Identity``."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.autograd import Tensor
from cnnlab.functional._args import check_bool, check_dim, check_int, check_positive_int
from cnnlab.nn import _ops
from cnnlab.nn.config import register_module
from cnnlab.nn.conv import reset_conv_like
from cnnlab.nn.module import Module, Parameter, check_dtype


@register_module
class Linear(Module):
    r"""Fully connected layer ``y = x W^T + b``: ``(*, in_features) -> (*, out_features)``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter
        ``(out_features, in_features)``, initialised ``U(-1/sqrt(in_features), 1/sqrt(in_features))``
        (PyTorch's ``kaiming_uniform_(a=sqrt(5))``).
    bias : Parameter or None
        ``(out_features,)``, from the same distribution.

    Examples
    --------
    >>> import numpy as np
    >>> fc = Linear(120, 84)
    >>> fc
    Linear(in_features=120, out_features=84, bias=True)
    >>> fc(np.zeros((2, 120), dtype=np.float32)).shape
    (2, 84)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = check_positive_int("Linear", "in_features", in_features)
        self.out_features = check_positive_int("Linear", "out_features", out_features)
        dtype = check_dtype("Linear", dtype)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        if check_bool("Linear", "bias", bias):
            self.bias = Parameter(np.empty(self.out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the weights with PyTorch's default initialisation."""
        reset_conv_like(self.weight, self.bias)

    def forward(self, x: Any) -> Any:
        return _ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def config_args(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "dtype": self._dtype_name()}


@register_module
class Flatten(Module):
    """Merge dims ``start_dim`` to ``end_dim`` (inclusive) into one.

    Parameters
    ----------
    start_dim : int, default 1
        The default keeps the batch dim: ``(N, C, H, W) -> (N, C*H*W)``.
    end_dim : int, default -1

    Examples
    --------
    >>> import numpy as np
    >>> Flatten()(np.zeros((2, 16, 5, 5))).shape
    (2, 400)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = check_int("Flatten", "start_dim", start_dim)
        self.end_dim = check_int("Flatten", "end_dim", end_dim)

    def forward(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            return x.flatten(self.start_dim, self.end_dim)
        x = np.asarray(x)
        start = check_dim("Flatten", self.start_dim, max(x.ndim, 1))
        end = check_dim("Flatten", self.end_dim, max(x.ndim, 1))
        if start > end:
            raise ValueError(
                f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} for shape {x.shape}"
            )
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def config_args(self) -> dict[str, Any]:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


@register_module
class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for a removed layer)."""

    def forward(self, x: Any) -> Any:
        return x

    def config_args(self) -> dict[str, Any]:
        return {}
