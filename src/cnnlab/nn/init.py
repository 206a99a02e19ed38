"""Weight initialisation, in place, with PyTorch's formulas (``torch.nn.init``).

Every function fills a :class:`~cnnlab.Tensor` (or :class:`~cnnlab.nn.Parameter`, or a NumPy
array) in place and returns it.  Random ones take an optional ``generator`` (a
:class:`numpy.random.Generator`); without one they draw from :func:`cnnlab.random.default_generator`,
so ``cnnlab.manual_seed(s)`` makes initialisation reproducible.  Values are drawn in float64 and
cast to the tensor's dtype.

For a weight of shape ``(out, in, *kernel)`` (or ``(out, in)``), ``fan_in = in * prod(kernel)``
and ``fan_out = out * prod(kernel)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.autograd import Tensor
from cnnlab.functional._args import check_choice, check_scalar
from cnnlab.random import resolve_generator

__all__ = [
    "calculate_gain", "constant_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
    "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]

_LINEAR_NAMES = (
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "sigmoid",
)
_NONLINEARITIES = (*_LINEAR_NAMES, "tanh", "relu", "leaky_relu", "selu")


def _array(op: str, tensor: Any) -> np.ndarray:
    """The array to fill in place (a Tensor's ``data`` or the ndarray itself)."""
    data = tensor.data if isinstance(tensor, Tensor) else tensor
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{op}: tensor must be a Tensor, Parameter or numpy array, got {type(tensor).__name__}")
    if data.dtype.kind != "f":
        raise TypeError(f"{op}: tensor must be floating point, got dtype {data.dtype}")
    return data


def _fill(op: str, tensor: Any, values: Any) -> Any:
    data = _array(op, tensor)
    data[...] = values
    return tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    r"""The recommended gain for a nonlinearity (PyTorch's table).

    ``linear``, ``conv*``, ``conv_transpose*``, ``sigmoid``: 1; ``tanh``: 5/3; ``relu``:
    :math:`\sqrt 2`; ``leaky_relu``: :math:`\sqrt{2 / (1 + a^2)}` with ``a = param`` (default 0.01);
    ``selu``: 3/4.

    Raises
    ------
    TypeError
        ``nonlinearity`` not a str, ``param`` not a number.
    ValueError
        An unknown nonlinearity.

    Examples
    --------
    >>> round(calculate_gain("leaky_relu", 5 ** 0.5), 6)
    0.57735
    """
    check_choice("calculate_gain", "nonlinearity", nonlinearity, _NONLINEARITIES)
    if nonlinearity in _LINEAR_NAMES:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(check_scalar("calculate_gain", "param", param))
        return math.sqrt(2.0 / (1 + slope**2))
    return 3.0 / 4  # selu


def calculate_fan_in_and_fan_out(tensor: Any) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``.

    Raises
    ------
    ValueError
        For fewer than 2 dims.
    """
    data = _array("calculate_fan_in_and_fan_out", tensor)
    if data.ndim < 2:
        raise ValueError(
            f"calculate_fan_in_and_fan_out: fan in and fan out need a tensor with at least 2 dims, "
            f"got shape {data.shape}"
        )
    receptive = int(np.prod(data.shape[2:], dtype=np.int64))
    return data.shape[1] * receptive, data.shape[0] * receptive


def _fan(op: str, tensor: Any, mode: str) -> int:
    check_choice(op, "mode", mode, ("fan_in", "fan_out"))
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"{op}: {mode} is 0 for a tensor of shape {_array(op, tensor).shape}")
    return fan


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0, generator: np.random.Generator | None = None) -> Any:
    """Fill with draws from ``U(a, b)``."""
    lo, hi = check_scalar("uniform_", "a", a), check_scalar("uniform_", "b", b)
    if lo > hi:
        raise ValueError(f"uniform_: a must be <= b, got a={lo}, b={hi}")
    rng = resolve_generator("uniform_", generator)
    return _fill("uniform_", tensor, rng.uniform(lo, hi, _array("uniform_", tensor).shape))


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0, generator: np.random.Generator | None = None) -> Any:
    """Fill with draws from ``N(mean, std^2)``."""
    mean, std = check_scalar("normal_", "mean", mean), check_scalar("normal_", "std", std)
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    rng = resolve_generator("normal_", generator)
    return _fill("normal_", tensor, rng.normal(mean, std, _array("normal_", tensor).shape))


def constant_(tensor: Any, val: float) -> Any:
    """Fill with ``val``."""
    return _fill("constant_", tensor, check_scalar("constant_", "val", val))


def zeros_(tensor: Any) -> Any:
    """Fill with 0."""
    return _fill("zeros_", tensor, 0)


def ones_(tensor: Any) -> Any:
    """Fill with 1."""
    return _fill("ones_", tensor, 1)


def xavier_uniform_(tensor: Any, gain: float = 1.0, generator: np.random.Generator | None = None) -> Any:
    r"""Glorot/Xavier uniform: ``U(-a, a)`` with
    :math:`a = \mathrm{gain}\sqrt{6 / (\mathrm{fan\_in} + \mathrm{fan\_out})}`."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = check_scalar("xavier_uniform_", "gain", gain) * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Any, gain: float = 1.0, generator: np.random.Generator | None = None) -> Any:
    r"""Glorot/Xavier normal: ``N(0, std^2)`` with
    :math:`\mathrm{std} = \mathrm{gain}\sqrt{2 / (\mathrm{fan\_in} + \mathrm{fan\_out})}`."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = check_scalar("xavier_normal_", "gain", gain) * math.sqrt(2.0 / (fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(
    tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Any:
    r"""He/Kaiming uniform: ``U(-bound, bound)`` with :math:`\mathrm{bound} = \mathrm{gain}\sqrt{3/\mathrm{fan}}`.

    Parameters
    ----------
    tensor : Tensor, Parameter or ndarray
        At least 2-D.
    a : float, default 0
        Negative slope of the leaky ReLU that follows (used by the gain for ``leaky_relu``).
    mode : {'fan_in', 'fan_out'}, default 'fan_in'
        ``fan_in`` keeps the forward pass's variance, ``fan_out`` the backward pass's.
    nonlinearity : str, default 'leaky_relu'
        Passed to :func:`calculate_gain` with ``a``.
    generator : numpy.random.Generator, optional

    Notes
    -----
    PyTorch's default for ``Conv`` and ``Linear`` weights is ``kaiming_uniform_(w, a=sqrt(5))``:
    gain :math:`\sqrt{1/3}`, hence bound :math:`1/\sqrt{\mathrm{fan\_in}}`.

    Examples
    --------
    >>> import numpy as np
    >>> w = kaiming_uniform_(np.zeros((8, 4)), a=5 ** 0.5, generator=np.random.default_rng(0))
    >>> bool(np.abs(w).max() <= 1 / np.sqrt(4))
    True
    """
    gain = calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(_fan("kaiming_uniform_", tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Any:
    r"""He/Kaiming normal: ``N(0, std^2)`` with :math:`\mathrm{std} = \mathrm{gain}/\sqrt{\mathrm{fan}}`
    (arguments as :func:`kaiming_uniform_`)."""
    gain = calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(_fan("kaiming_normal_", tensor, mode))
    return normal_(tensor, 0.0, std, generator)
