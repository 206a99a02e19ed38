"""Activation layers: thin modules around the functional activations (no parameters)."""

from __future__ import annotations

from typing import Any

from cnnlab import functional as F
from cnnlab.functional._args import check_choice, check_int, check_scalar
from cnnlab.nn.config import register_module
from cnnlab.nn.module import Module


@register_module
class ReLU(Module):
    """``max(x, 0)`` elementwise; the subgradient at 0 is 0.

    Examples
    --------
    >>> import numpy as np
    >>> ReLU()(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """

    def forward(self, x: Any) -> Any:
        return F.relu(x)

    def config_args(self) -> dict[str, Any]:
        return {}


@register_module
class LeakyReLU(Module):
    """``x`` for ``x > 0``, else ``negative_slope * x``.

    Parameters
    ----------
    negative_slope : float, default 0.01
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(check_scalar("LeakyReLU", "negative_slope", negative_slope))

    def forward(self, x: Any) -> Any:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def config_args(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


@register_module
class ELU(Module):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Parameters
    ----------
    alpha : float, default 1.0
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(check_scalar("ELU", "alpha", alpha))

    def forward(self, x: Any) -> Any:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def config_args(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


@register_module
class GELU(Module):
    """``x * Phi(x)`` (``approximate='tanh'``: the tanh approximation).

    Parameters
    ----------
    approximate : {'none', 'tanh'}, default 'none'
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = check_choice("GELU", "approximate", approximate, ("none", "tanh"))

    def forward(self, x: Any) -> Any:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate='{self.approximate}'"

    def config_args(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


@register_module
class Sigmoid(Module):
    """``1 / (1 + exp(-x))``."""

    def forward(self, x: Any) -> Any:
        return F.sigmoid(x)

    def config_args(self) -> dict[str, Any]:
        return {}


@register_module
class Tanh(Module):
    """Hyperbolic tangent."""

    def forward(self, x: Any) -> Any:
        return F.tanh(x)

    def config_args(self) -> dict[str, Any]:
        return {}


class _SoftmaxBase(Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = check_int(type(self).__name__, "dim", dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def config_args(self) -> dict[str, Any]:
        return {"dim": self.dim}


@register_module
class Softmax(_SoftmaxBase):
    """Softmax along ``dim`` (every slice sums to 1).

    Parameters
    ----------
    dim : int
        Required (PyTorch's implicit choice of dim is deprecated there and absent here).

    Examples
    --------
    >>> import numpy as np
    >>> Softmax(dim=1)(np.zeros((1, 4)))
    array([[0.25, 0.25, 0.25, 0.25]])
    """

    def forward(self, x: Any) -> Any:
        return F.softmax(x, self.dim)


@register_module
class LogSoftmax(_SoftmaxBase):
    """``log(softmax(x))`` along ``dim``, computed stably.

    Parameters
    ----------
    dim : int
        Required.
    """

    def forward(self, x: Any) -> Any:
        return F.log_softmax(x, self.dim)
