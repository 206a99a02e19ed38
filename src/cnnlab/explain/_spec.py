"""The stages of a pipeline to explain: :class:`Conv`, :class:`Activation` and :class:`Pool`.

A stage spec only records what the user asked for.  :func:`cnnlab.explain.explain` validates it
against the shape of the stage's input, once, before any arithmetic is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONV_MODES = ("correlate", "convolve")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh")
POOL_KINDS = ("max", "avg")

ACTIVATION_NAMES = {
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "gelu": "GELU",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
}


@dataclass(frozen=True, eq=False)
class Conv:
    """A convolution layer: slide each filter over the input and sum the products.

    Parameters
    ----------
    filters : array_like or sequence of array_like
        For a 2-D input ``(H, W)``: one filter ``(kH, kW)`` or several ``(O, kH, kW)``.  For an
        input with channels ``(C, H, W)``: one filter ``(C, kH, kW)`` or several
        ``(O, C, kH, kW)``.  A list of filters of one shape is stacked.
    mode : {'correlate', 'convolve'}, default 'correlate'
        'correlate' is the CNN layer (no flip, what PyTorch's ``conv2d`` computes); 'convolve'
        is the true convolution, which flips each filter by 180 degrees first.
    stride, dilation : int or (int, int), default 1
    padding : int, (int, int), ((lo, hi), (lo, hi)), 'valid', 'same' or 'full', default 0
        'same' follows the TensorFlow/ONNX SAME_UPPER rule (PyTorch's 'same' for stride 1):
        ``out = ceil(in / stride)`` and the odd padding cell goes at the end.  'full' pads
        ``dilation*(k-1)`` on every side.
    bias : number or sequence of numbers, optional
        One per filter.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
    label : str, default 'F'
        The filter's name in the solution (several filters are F1, F2, ...).
    """

    filters: Any
    mode: str = "correlate"
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    bias: Any = None
    padding_mode: str = "zeros"
    label: str = "F"


@dataclass(frozen=True, eq=False)
class Activation:
    """An element-wise activation.

    Parameters
    ----------
    name : {'relu', 'leaky_relu', 'elu', 'gelu', 'sigmoid', 'tanh'}, default 'relu'
    negative_slope : float, default 0.01
        For 'leaky_relu'.
    alpha : float, default 1.0
        For 'elu'.
    approximate : {'none', 'tanh'}, default 'none'
        For 'gelu'.
    """

    name: str = "relu"
    negative_slope: Any = 0.01
    alpha: Any = 1.0
    approximate: str = "none"


@dataclass(frozen=True, eq=False)
class Pool:
    """Max or average pooling, applied to every channel separately.

    Parameters
    ----------
    kind : {'max', 'avg'}, default 'max'
    kernel_size : int or (int, int), default 2
    stride : int or (int, int), optional
        Defaults to ``kernel_size``, as in PyTorch.
    padding : int, (int, int) or ((lo, hi), (lo, hi)), default 0
        Max pooling pads with ``-inf`` (never chosen), average pooling with zeros.
    dilation : int or (int, int), default 1
    ceil_mode : bool, default False
        Round the output size up (PyTorch's rule: the last window must start inside the input
        or the left padding).
    count_include_pad : bool, default True
        For 'avg': whether padding zeros count in the divisor.
    divisor_override : int, optional
        For 'avg': divide by this instead.
    """

    kind: str = "max"
    kernel_size: Any = 2
    stride: Any = None
    padding: Any = 0
    dilation: Any = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: Any = None


Stage = Conv | Activation | Pool
