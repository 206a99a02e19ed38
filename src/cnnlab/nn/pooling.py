"""Pooling layers: ``MaxPool1d/2d/3d``, ``AvgPool1d/2d/3d``, ``AdaptiveAvgPool1d/2d/3d``, ``AdaptiveMaxPool1d/2d/3d``.

Arguments are PyTorch's and are kept as given (an int stays an int), as PyTorch does; they are
checked when the layer is built.  The layers have no parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab import functional as F
from cnnlab.functional._args import _describe, check_bool, ntuple, padding_pairs
from cnnlab.nn import _ops
from cnnlab.nn.config import register_module
from cnnlab.nn.module import Module


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _as_given(value: Any) -> Any:
    """An int stays an int; a sequence becomes a tuple (of ints or pairs)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(_as_given(v) for v in value)
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value


class _PoolNd(Module):
    """Shared arguments of max and average pooling."""

    _n: int = 0

    def _setup(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any) -> None:
        op, n = type(self).__name__, self._n
        ntuple(op, "kernel_size", kernel_size, n, minimum=1)
        if stride is not None:
            ntuple(op, "stride", stride, n, minimum=1)
        padding_pairs(op, padding, n)
        ntuple(op, "dilation", dilation, n, minimum=1)
        self.kernel_size = _as_given(kernel_size)
        self.stride = _as_given(kernel_size if stride is None else stride)  # PyTorch's default
        self.padding = _as_given(padding)
        self.dilation = _as_given(dilation)
        self.ceil_mode = check_bool(op, "ceil_mode", ceil_mode)


class _MaxPoolNd(_PoolNd):
    def __init__(
        self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
        return_indices: bool = False, ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self._setup(kernel_size, stride, padding, dilation, ceil_mode)
        self.return_indices = check_bool(type(self).__name__, "return_indices", return_indices)

    def forward(self, x: Any) -> Any:
        return self._op(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                        self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    def config_args(self) -> dict[str, Any]:
        return {
            "kernel_size": _jsonable(self.kernel_size), "stride": _jsonable(self.stride),
            "padding": _jsonable(self.padding), "dilation": _jsonable(self.dilation),
            "return_indices": self.return_indices, "ceil_mode": self.ceil_mode,
        }


@register_module
class MaxPool1d(_MaxPoolNd):
    """1-d max pooling; see :class:`MaxPool2d`."""

    _n = 1
    _op = staticmethod(F.max_pool1d)


@register_module
class MaxPool2d(_MaxPoolNd):
    """2-d max pooling: the largest value of each window.

    Parameters
    ----------
    kernel_size : int or tuple of int
    stride : int or tuple of int, optional
        Default ``kernel_size`` (non-overlapping windows).
    padding : int or tuple of int, default 0
        Implicit ``-inf`` cells.
    dilation : int or tuple of int, default 1
    return_indices : bool, default False
        Return ``(output, indices)``: PyTorch's flat index of each window's maximum.
    ceil_mode : bool, default False
        Round the output size up.

    Shape
    -----
    ``out = floor((in + 2*padding - dilation*(k-1) - 1) / stride) + 1`` (``ceil`` in ceil mode).

    Notes
    -----
    On ties the first maximum (row-major in the window) takes the whole gradient.

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """

    _n = 2
    _op = staticmethod(F.max_pool2d)


@register_module
class MaxPool3d(_MaxPoolNd):
    """3-d max pooling; see :class:`MaxPool2d`."""

    _n = 3
    _op = staticmethod(F.max_pool3d)


class _AvgPoolNd(_PoolNd):
    def _avg_setup(self, kernel_size: Any, stride: Any, padding: Any, ceil_mode: Any, count_include_pad: Any,
                   divisor_override: Any) -> None:
        op = type(self).__name__
        self._setup(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = check_bool(op, "count_include_pad", count_include_pad)
        if divisor_override is not None:
            if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, np.integer)):
                raise TypeError(
                    f"{op}: divisor_override must be a positive int or None, got {_describe(divisor_override)}"
                )
            if divisor_override < 1:
                raise ValueError(f"{op}: divisor_override must be a positive int or None, got {divisor_override}")
        self.divisor_override = divisor_override

    def forward(self, x: Any) -> Any:
        return self._op(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                        self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def config_args(self) -> dict[str, Any]:
        args = {
            "kernel_size": _jsonable(self.kernel_size), "stride": _jsonable(self.stride),
            "padding": _jsonable(self.padding), "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }
        if self._n > 1:
            args["divisor_override"] = self.divisor_override
        return args


@register_module
class AvgPool1d(_AvgPoolNd):
    """1-d average pooling; see :class:`AvgPool2d` (no ``divisor_override``, as in PyTorch)."""

    _n = 1
    _op = staticmethod(F.avg_pool1d)

    def __init__(
        self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0, ceil_mode: bool = False, count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self._avg_setup(kernel_size, stride, padding, ceil_mode, count_include_pad, None)


class _AvgPool23(_AvgPoolNd):
    def __init__(
        self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0, ceil_mode: bool = False, count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self._avg_setup(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


@register_module
class AvgPool2d(_AvgPool23):
    """2-d average pooling: the mean of each window.

    Parameters
    ----------
    kernel_size : int or tuple of int
    stride : int or tuple of int, optional
        Default ``kernel_size``.
    padding : int or tuple of int, default 0
        Zero cells.
    ceil_mode : bool, default False
    count_include_pad : bool, default True
        Whether padding cells count in the divisor.
    divisor_override : int, optional
        Divide by this instead.

    Examples
    --------
    >>> import numpy as np
    >>> AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """

    _n = 2
    _op = staticmethod(F.avg_pool2d)


@register_module
class AvgPool3d(_AvgPool23):
    """3-d average pooling; see :class:`AvgPool2d`."""

    _n = 3
    _op = staticmethod(F.avg_pool3d)


class _AdaptivePoolNd(Module):
    """Shared argument of adaptive average and max pooling: the output size."""

    _n: int = 0

    def __init__(self, output_size: int | None | Sequence[int | None]) -> None:
        super().__init__()
        op, n = type(self).__name__, self._n
        if isinstance(output_size, Sequence) and not isinstance(output_size, str):
            entries = tuple(output_size)
        else:
            entries = (output_size,) * n
        if len(entries) != n:
            raise ValueError(f"{op}: output_size must be an int or a tuple of {n} (int or None), got {output_size!r}")
        for entry in entries:
            if entry is not None:
                ntuple(op, "output_size", entry, 1, minimum=1)
        self.output_size = _as_given(output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"

    def config_args(self) -> dict[str, Any]:
        return {"output_size": _jsonable(self.output_size)}


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    def forward(self, x: Any) -> Any:
        return self._op(x, self.output_size)


@register_module
class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """1-d adaptive average pooling; see :class:`AdaptiveAvgPool2d`."""

    _n = 1
    _op = staticmethod(_ops.adaptive_avg_pool1d)


@register_module
class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """2-d average pooling to a fixed output size (``1`` gives global average pooling).

    Parameters
    ----------
    output_size : int, None or tuple of (int or None)
        ``(H_out, W_out)``; None keeps that dim.  Any size >= 1 works.

    Notes
    -----
    Output cell ``i`` averages input cells ``floor(i*in/out) <= j < ceil((i+1)*in/out)`` per dim
    (PyTorch's windows).

    Examples
    --------
    >>> import numpy as np
    >>> AdaptiveAvgPool2d(1)(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[[[1.5]],
    <BLANKLINE>
            [[5.5]]]])
    """

    _n = 2
    _op = staticmethod(_ops.adaptive_avg_pool2d)


@register_module
class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """3-d adaptive average pooling; see :class:`AdaptiveAvgPool2d`."""

    _n = 3
    _op = staticmethod(_ops.adaptive_avg_pool3d)


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    def __init__(self, output_size: int | None | Sequence[int | None], return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = check_bool(type(self).__name__, "return_indices", return_indices)

    def forward(self, x: Any) -> Any:
        return self._op(x, self.output_size, self.return_indices)

    def config_args(self) -> dict[str, Any]:
        return {**super().config_args(), "return_indices": self.return_indices}


@register_module
class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """1-d adaptive max pooling; see :class:`AdaptiveMaxPool2d`."""

    _n = 1
    _op = staticmethod(F.adaptive_max_pool1d)


@register_module
class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """2-d max pooling to a fixed output size (``1`` gives global max pooling).

    Parameters
    ----------
    output_size : int, None or tuple of (int or None)
        ``(H_out, W_out)``; None keeps that dim.  Any size >= 1 works.
    return_indices : bool, default False
        Return ``(output, indices)``: PyTorch's flat index of the cell each output took.

    Notes
    -----
    Output cell ``i`` takes the largest of input cells ``floor(i*in/out) <= j < ceil((i+1)*in/out)``
    per dim (PyTorch's windows); on ties the first maximum in row-major order takes the gradient,
    and a window holding a NaN gives NaN (its last NaN takes the gradient).

    Examples
    --------
    >>> import numpy as np
    >>> AdaptiveMaxPool2d(1)(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[[[3.]],
    <BLANKLINE>
            [[7.]]]])
    """

    _n = 2
    _op = staticmethod(F.adaptive_max_pool2d)


@register_module
class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """3-d adaptive max pooling; see :class:`AdaptiveMaxPool2d`."""

    _n = 3
    _op = staticmethod(F.adaptive_max_pool3d)
