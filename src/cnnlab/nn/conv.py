"""Convolution layers: ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``.

One class per family does the work for any number of spatial dims; the named classes fix that
number and the functional op they call.  Arguments, weight layouts, parameter names and default
initialisation are PyTorch's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab import functional as F
from cnnlab.functional._args import _describe, check_bool, check_choice, check_positive_int, ntuple, padding_pairs
from cnnlab.functional._windows import PAD_MODES
from cnnlab.nn import init
from cnnlab.nn.config import register_module
from cnnlab.nn.module import Module, Parameter, check_dtype


def _padding(op: str, padding: Any, n: int) -> tuple | str:
    """``'valid'``/``'same'``, or one entry per dim: an int, or a ``(lo, hi)`` pair where the two
    sides differ."""
    if isinstance(padding, str):
        return check_choice(op, "padding", padding, ("valid", "same"))
    pairs = padding_pairs(op, padding, n)
    return tuple(lo if lo == hi else (lo, hi) for lo, hi in pairs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def reset_conv_like(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default initialisation of Conv and Linear layers: weight
    ``kaiming_uniform_(a=sqrt(5))`` (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) and bias
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


class _ConvBase(Module):
    """Shared constructor checks and description of the conv and transposed-conv layers."""

    _n: int = 0
    _transposed: bool = False

    def _setup(
        self, in_channels: Any, out_channels: Any, kernel_size: Any, stride: Any, dilation: Any,
        groups: Any, bias: Any, padding_mode: Any, dtype: Any,
    ) -> None:
        op, n = type(self).__name__, self._n
        self.in_channels = check_positive_int(op, "in_channels", in_channels)
        self.out_channels = check_positive_int(op, "out_channels", out_channels)
        self.groups = check_positive_int(op, "groups", groups)
        if self.in_channels % self.groups:
            raise ValueError(f"{op}: in_channels {in_channels} is not divisible by groups {groups}")
        if self.out_channels % self.groups:
            raise ValueError(f"{op}: out_channels {out_channels} is not divisible by groups {groups}")
        self.kernel_size = ntuple(op, "kernel_size", kernel_size, n, minimum=1)
        self.stride = ntuple(op, "stride", stride, n, minimum=1)
        self.dilation = ntuple(op, "dilation", dilation, n, minimum=1)
        self.padding_mode = check_choice(op, "padding_mode", padding_mode, PAD_MODES)
        dtype = check_dtype(op, dtype)
        if self._transposed:
            shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        else:
            shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if check_bool(op, "bias", bias):
            self.bias = Parameter(np.empty(self.out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the weights with PyTorch's default initialisation."""
        reset_conv_like(self.weight, self.bias)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._n:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self._n:
            text += f", dilation={self.dilation}"
        if self._transposed and self.output_padding != (0,) * self._n:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class _ConvNd(_ConvBase):
    """Convolution layer over ``_n`` spatial dims (see :class:`Conv2d` for the documentation)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1, padding: Any = 0, dilation: int | Sequence[int] = 1,
        groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype: Any = None,
    ) -> None:
        super().__init__()
        self.padding = _padding(type(self).__name__, padding, self._n)
        self._setup(in_channels, out_channels, kernel_size, stride, dilation, groups, bias, padding_mode, dtype)

    def forward(self, x: Any) -> Any:
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return self._op(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups, self.padding_mode)

    def config_args(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels, "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size), "stride": list(self.stride),
            "padding": _jsonable(self.padding), "dilation": list(self.dilation), "groups": self.groups,
            "bias": self.bias is not None, "padding_mode": self.padding_mode, "dtype": self._dtype_name(),
        }


@register_module
class Conv1d(_ConvNd):
    """1-d convolution layer: ``(N, C_in, L) -> (N, C_out, L_out)``; see :class:`Conv2d`."""

    _n = 1
    _op = staticmethod(F.conv1d)


@register_module
class Conv2d(_ConvNd):
    r"""2-d convolution layer (a cross-correlation, as in PyTorch): ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output (the number of filters).
    kernel_size : int or tuple of int
    stride : int or tuple of int, default 1
    padding : int, tuple, tuple of (lo, hi) pairs, 'valid' or 'same', default 0
        'same' keeps the size (``out = ceil(in / stride)``; with stride 1 exactly PyTorch's
        'same', and unlike PyTorch also allowed with larger strides).
    dilation : int or tuple of int, default 1
    groups : int, default 1
        ``in_channels`` and ``out_channels`` must be divisible by it.
    bias : bool, default True
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter
        ``(out_channels, in_channels / groups, kH, kW)``, initialised
        ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = in_channels / groups * kH * kW``
        (PyTorch's ``kaiming_uniform_(a=sqrt(5))``).
    bias : Parameter or None
        ``(out_channels,)``, initialised from the same uniform distribution.

    Shape
    -----
    ``out = floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1`` per spatial dim.

    Notes
    -----
    .. math::

        y[b, o, i, j] = \mathrm{bias}[o]
            + \sum_{c, u, v} x_{pad}[b, g C_g + c, i s_0 + u d_0, j s_1 + v d_1] \, w[o, c, u, v]

    with ``g = o // (out_channels / groups)`` and ``C_g = in_channels / groups``.

    Examples
    --------
    >>> import numpy as np
    >>> conv = Conv2d(1, 6, 5)
    >>> conv
    Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
    >>> conv(np.zeros((2, 1, 28, 28), dtype=np.float32)).shape
    (2, 6, 24, 24)
    """

    _n = 2
    _op = staticmethod(F.conv2d)


@register_module
class Conv3d(_ConvNd):
    """3-d convolution layer: ``(N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)``; see :class:`Conv2d`."""

    _n = 3
    _op = staticmethod(F.conv3d)


class _ConvTransposeNd(_ConvBase):
    """Transposed convolution over ``_n`` spatial dims (see :class:`ConvTranspose2d`)."""

    _transposed = True

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
        output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
        dilation: int | Sequence[int] = 1, padding_mode: str = "zeros", dtype: Any = None,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        if padding_mode != "zeros":
            raise ValueError(f"{op}: only padding_mode 'zeros' is supported, got {padding_mode!r}")
        self.padding = _padding(op, padding, self._n)
        if isinstance(self.padding, str):
            raise ValueError(f"{op}: padding must be an int or a tuple, got {padding!r}")
        self._setup(in_channels, out_channels, kernel_size, stride, dilation, groups, bias, padding_mode, dtype)
        self.output_padding = ntuple(op, "output_padding", output_padding, self._n, minimum=0)
        for i, (extra, s, d) in enumerate(zip(self.output_padding, self.stride, self.dilation, strict=True)):
            if extra >= max(s, d):
                raise ValueError(
                    f"{op}: output_padding must be smaller than stride or dilation in spatial dim {i}, "
                    f"got output_padding {extra} with stride {s} and dilation {d}"
                )

    def _output_padding(self, x: Any, output_size: Any) -> tuple[int, ...]:
        """The output_padding that gives ``output_size`` (PyTorch's ``forward(x, output_size)``)."""
        op, n = type(self).__name__, self._n
        if output_size is None:
            return self.output_padding
        sizes = list(ntuple(op, "output_size", output_size, len(output_size), minimum=1)) if isinstance(
            output_size, Sequence) else None
        if sizes is None or len(sizes) not in (n, n + 2):
            raise ValueError(f"{op}: output_size must hold {n} (or {n + 2}) sizes, got {_describe(output_size)}")
        sizes = sizes[-n:]
        extras = []
        pads = padding_pairs(op, list(self.padding), n)
        for i, (size, k, s, d, (lo, hi), want) in enumerate(
            zip(np.shape(x)[-n:], self.kernel_size, self.stride, self.dilation, pads, sizes, strict=True)
        ):
            smallest = (size - 1) * s - lo - hi + d * (k - 1) + 1
            if not smallest <= want < smallest + max(s, d):
                raise ValueError(
                    f"{op}: output_size {want} in spatial dim {i} is not reachable; it must be in "
                    f"[{smallest}, {smallest + max(s, d) - 1}]"
                )
            extras.append(want - smallest)
        return tuple(extras)

    def forward(self, x: Any, output_size: Sequence[int] | None = None) -> Any:
        output_padding = self._output_padding(x, output_size)
        return self._op(
            x, self.weight, self.bias, self.stride, list(self.padding), output_padding, self.groups, self.dilation
        )

    def config_args(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels, "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size), "stride": list(self.stride),
            "padding": _jsonable(self.padding), "output_padding": list(self.output_padding),
            "groups": self.groups, "bias": self.bias is not None, "dilation": list(self.dilation),
            "padding_mode": self.padding_mode, "dtype": self._dtype_name(),
        }


@register_module
class ConvTranspose1d(_ConvTransposeNd):
    """1-d transposed convolution layer; see :class:`ConvTranspose2d`."""

    _n = 1
    _op = staticmethod(F.conv_transpose1d)


@register_module
class ConvTranspose2d(_ConvTransposeNd):
    r"""2-d transposed convolution layer (the adjoint of :class:`Conv2d` in its input).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple of int
    stride : int or tuple of int, default 1
    padding : int or tuple of int, default 0
        Cells cropped from each side of the full output.
    output_padding : int or tuple of int, default 0
        Cells added at the end of each dim; smaller than stride or dilation.
    groups : int, default 1
    bias : bool, default True
    dilation : int or tuple of int, default 1
    padding_mode : 'zeros'
        The only mode (as in PyTorch).
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter
        ``(in_channels, out_channels / groups, kH, kW)``; PyTorch's default initialisation with
        ``fan_in = out_channels / groups * kH * kW`` (computed from the weight's shape, as PyTorch does).
    bias : Parameter or None

    Shape
    -----
    ``out = (in - 1)*stride - pad_lo - pad_hi + dilation*(k - 1) + output_padding + 1``;
    ``forward(x, output_size)`` picks ``output_padding`` to reach ``output_size``.

    Examples
    --------
    >>> import numpy as np
    >>> up = ConvTranspose2d(4, 2, 2, stride=2)
    >>> up(np.zeros((1, 4, 5, 5), dtype=np.float32)).shape
    (1, 2, 10, 10)
    """

    _n = 2
    _op = staticmethod(F.conv_transpose2d)


@register_module
class ConvTranspose3d(_ConvTransposeNd):
    """3-d transposed convolution layer; see :class:`ConvTranspose2d`."""

    _n = 3
    _op = staticmethod(F.conv_transpose3d)
