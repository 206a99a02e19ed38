"""The stages of a worked solution: every intermediate matrix, every output cell's arithmetic.

All arrays of a solution are stored with a channel axis, ``(C, H, W)``; :attr:`Solution.output`
drops it again for a single-channel result of a 2-D input.  Positions (``rows``, ``cols``) index
the *grid* a stage shows: its input with the padding added (and, for pooling in ceil mode, the
cells past the padding that a last window overhangs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.explain._spec import Activation, Conv, Pool

# roles of the cells of a shown grid
INPUT, PAD, OUTSIDE = 0, 1, 2


@dataclass(frozen=True)
class DimShape:
    """The output-size arithmetic along one axis.

    ``out = floor((size + lo + hi - dilation*(kernel-1) - 1) / stride) + 1`` (``ceil`` in
    ceil mode, minus one when that last window would start past the input and the left padding).
    """

    axis: str
    size: int
    kernel: int
    stride: int
    dilation: int
    lo: int
    hi: int
    ceil_mode: bool
    out: int

    @property
    def span(self) -> int:
        """The numerator ``size + lo + hi - dilation*(kernel-1) - 1``."""
        return self.size + self.lo + self.hi - self.dilation * (self.kernel - 1) - 1

    @property
    def rounded(self) -> int:
        """``floor(span / stride)`` or ``ceil(span / stride)`` in ceil mode."""
        return -(-self.span // self.stride) if self.ceil_mode else self.span // self.stride

    @property
    def dropped(self) -> bool:
        """True when ceil mode's extra last window was dropped (it would start in the padding)."""
        return self.ceil_mode and self.rounded + 1 != self.out

    @property
    def remainder(self) -> int:
        return self.span % self.stride


@dataclass(eq=False)
class ConvCell:
    """One output cell of a conv: ``value = sum(products) (+ bias)``.

    ``index`` is ``(filter, row, col)``; ``window``, ``kernel`` and ``products`` are
    ``(C, kH, kW)``; ``kernel`` is the filter as applied (flipped for a true convolution).
    """

    index: tuple[int, int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    bias: Any
    value: Any


@dataclass(eq=False)
class PoolCell:
    """One output cell of a pooling stage.

    ``window`` holds the grid values under the window (``None`` past the padding) and ``roles``
    whether each is an input cell, padding or outside.  For max pooling ``terms`` are the input
    values in row-major order and ``chosen`` is the ``(row, col)`` grid position of the maximum;
    for average pooling ``terms`` are the summed values and ``divisor`` the count.
    """

    index: tuple[int, int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    window: np.ndarray
    roles: np.ndarray
    terms: list
    chosen: tuple[int, int] | None
    divisor: int | None
    value: Any


@dataclass(eq=False)
class ActivationCell:
    """``value = f(arg)`` for the output cell ``index = (channel, row, col)``."""

    index: tuple[int, int, int]
    arg: Any
    value: Any


@dataclass(eq=False)
class ConvStage:
    """A conv stage: ``output[o] = sum_c correlate(input[c], applied[o, c]) (+ bias[o])``."""

    kind = "conv"
    spec: Conv
    label: str
    input_label: str
    filter_labels: list[str]
    mode: str
    input: np.ndarray
    filters: np.ndarray  # (O, C, kH, kW) as given
    applied: np.ndarray  # as used: the flipped filters for mode 'convolve'
    flipped: np.ndarray  # the filters rotated by 180 degrees
    bias: np.ndarray | None
    stride: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    padding: Any
    padding_mode: str
    grid: np.ndarray  # (C, Hp, Wp): the padded input
    roles: np.ndarray  # (Hp, Wp)
    output: np.ndarray
    other_output: np.ndarray  # what the other operation (convolve <-> correlate) gives
    shape: list[DimShape]
    cells: list[ConvCell]
    arithmetic: str
    scipy_same: dict | None = None  # SciPy's 'same' padding and result where it differs
    left_out: int = 0  # output cells not worked out (a large stage works out a few)

    @property
    def symmetric(self) -> bool:
        """Whether every filter equals its 180-degree rotation (then both operations agree)."""
        return bool(np.all(self.filters == self.flipped))


@dataclass(eq=False)
class ActivationStage:
    """An element-wise activation ``output = f(input)``."""

    kind = "activation"
    spec: Activation
    label: str
    input_label: str
    name: str
    input: np.ndarray
    output: np.ndarray
    cells: list[ActivationCell]
    arithmetic: str
    notes: list[str] = field(default_factory=list)
    left_out: int = 0  # cells not worked out (only the first few changed cells of a large stage)


@dataclass(eq=False)
class PoolStage:
    """A pooling stage, applied to each channel separately."""

    kind = "pool"
    spec: Pool
    label: str
    input_label: str
    pool: str  # 'max' or 'avg'
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    ceil_mode: bool
    count_include_pad: bool
    divisor_override: int | None
    input: np.ndarray
    grid: np.ndarray  # (C, Hg, Wg) object: values, the pad value, None outside
    roles: np.ndarray  # (Hg, Wg)
    output: np.ndarray
    shape: list[DimShape]
    cells: list[PoolCell]
    arithmetic: str
    left_out: int = 0  # output cells not worked out (a large stage works out a few)
