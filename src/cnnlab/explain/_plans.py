"""The validated plan of a worked solution's pipeline: one plan per stage (a convolution, an
activation or a pooling), checked against the shape of the stage's input before anything runs.

Each ``_plan_*`` function turns a stage's specification (:mod:`cnnlab.explain._spec`) into the
operands its operator takes (filters as ``(O, C, kH, kW)``, pads as ``((top, bottom), (left,
right))``, the output size) and raises the library's usual errors, naming the stage, for a stage
that cannot run on its input; :func:`_plan` chains them and tracks the arithmetic (integers, exact
fractions or floats) each stage computes in.  :mod:`cnnlab.explain._engine` runs the plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.explain import _numbers as num
from cnnlab.explain._limits import check_values, check_work
from cnnlab.explain._spec import ACTIVATIONS, CONV_MODES, POOL_KINDS, Activation, Conv, Pool
from cnnlab.functional._args import (
    check_bool,
    check_choice,
    check_scalar,
    ntuple,
    out_sizes,
    padding_pairs,
    same_padding,
)
from cnnlab.functional._windows import PAD_MODES

OP = "explain"
_EXACT_ACTIVATIONS = ("relu", "leaky_relu")
AXES = ("rows", "cols")


@dataclass
class _ConvPlan:
    spec: Conv
    filters: np.ndarray  # (O, C, kH, kW)
    bias: np.ndarray | None
    mode: str
    stride: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    padding_mode: str
    out: tuple[int, int]


@dataclass
class _ActivationPlan:
    spec: Activation
    name: str
    params: dict


@dataclass
class _PoolPlan:
    spec: Pool
    kind: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    dilation: tuple[int, int]
    ceil_mode: bool
    count_include_pad: bool
    divisor_override: int | None
    out: tuple[int, int]


def _filters(op: str, value: Any, channels: int) -> np.ndarray:
    """Filters as ``(O, C, kH, kW)`` by the rules of :class:`Conv`."""
    return shaped_filters(op, num.as_values(op, "filters", value), channels, 2, "an input")


def shaped_filters(op: str, w: np.ndarray, channels: int, spatial: int, what: str) -> np.ndarray:
    """Filters ``w`` with ``spatial`` kernel dims as ``(O, C, *k)``: one filter may leave out ``O``,
    and a single channel ``C`` as well; ``what`` names the input in the error (``'an input'``)."""
    if channels == 1 and w.ndim in (spatial, spatial + 1):
        return w.reshape((1 if w.ndim == spatial else w.shape[0], 1, *w.shape[-spatial:]))
    if channels > 1 and w.ndim == spatial + 1 and w.shape[0] == channels:
        return w[None]
    if w.ndim == spatial + 2 and w.shape[1] == channels:
        return w
    k = ", ".join(("kD", "kH", "kW")[-spatial:])
    if channels == 1:
        expected = f"({k}) for one filter or (O, {k}) for several"
    else:
        expected = f"({channels}, {k}) for one filter or (O, {channels}, {k}) for several"
    raise ValueError(
        f"{op}: filters for {what} with {channels} channel{'s' if channels > 1 else ''} must "
        f"be {expected}, got shape {w.shape}"
    )


def _bias(op: str, value: Any, out_channels: int) -> np.ndarray | None:
    if value is None:
        return None
    b = num.as_values(op, "bias", value)
    if b.ndim == 0:
        return np.repeat(b[None], out_channels)
    if b.shape == (out_channels,):
        return b
    raise ValueError(f"{op}: bias must be one number per filter ({out_channels}), got shape {b.shape}")


def _conv_pads(op: str, padding: Any, sizes, kernel, stride, dilation):
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            return same_padding(sizes, kernel, stride, dilation)
        if padding == "full":
            return tuple((d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation, strict=True))
        raise ValueError(
            f"{op}: padding must be an int, a tuple, (lo, hi) pairs, 'valid', 'same' or 'full', "
            f"got {padding!r}"
        )
    return padding_pairs(op, padding, 2)


def check_fit(op: str, what: str, sizes, kernel, dilation, pads, axes: Sequence[str] = AXES) -> None:
    """Say which axis (named by ``axes``) is too small when the (dilated) kernel does not fit the
    padded input."""
    for axis, size, k, d, (lo, hi) in zip(axes, sizes, kernel, dilation, pads, strict=True):
        span = d * (k - 1) + 1
        if span > size + lo + hi:
            dilated = f" (dilated to {span})" if d > 1 else ""
            raise ValueError(
                f"{op}: the {what} is larger than the padded input along {axis}: {what} size "
                f"{k}{dilated} > input {size} + padding {lo} + {hi}"
            )


def extent(channels: int, sizes, pads) -> str:
    """``C x H' x W'`` of a padded input, as a size is said in a limit's message."""
    padded = [size + lo + hi for size, (lo, hi) in zip(sizes, pads, strict=True)]
    return " x ".join(str(v) for v in ([channels] if channels > 1 else []) + padded)


def _plan_conv(op: str, spec: Conv, shape: tuple[int, int, int], exact: bool = False) -> _ConvPlan:
    channels, *sizes = shape
    check_choice(op, "mode", spec.mode, CONV_MODES)
    filters = _filters(op, spec.filters, channels)
    bias = _bias(op, spec.bias, filters.shape[0])
    kernel = filters.shape[2:]
    stride = ntuple(op, "stride", spec.stride, 2, minimum=1)
    dilation = ntuple(op, "dilation", spec.dilation, 2, minimum=1)
    check_choice(op, "padding_mode", spec.padding_mode, PAD_MODES)
    pads = _conv_pads(op, spec.padding, sizes, kernel, stride, dilation)
    if spec.padding_mode in ("reflect", "circular"):
        for axis, (lo, hi), size in zip(AXES, pads, sizes, strict=True):
            limit = size - 1 if spec.padding_mode == "reflect" else size
            if max(lo, hi) > limit:
                raise ValueError(
                    f"{op}: padding_mode '{spec.padding_mode}' needs padding <= {limit} along "
                    f"{axis} (input size {size}), got ({lo}, {hi})"
                )
    check_fit(op, "filter", sizes, kernel, dilation, pads)
    padded = channels * (sizes[0] + sum(pads[0])) * (sizes[1] + sum(pads[1]))
    check_values(op, f"the padded input ({extent(channels, sizes, pads)})", padded)
    out = out_sizes(op, sizes, kernel, stride, pads, dilation)
    check_values(op, "the output", filters.shape[0] * out[0] * out[1])
    exact = (exact or num.is_exact(filters) or (bias is not None and num.is_exact(bias))) and not (
        filters.dtype.kind == "f" or (bias is not None and bias.dtype.kind == "f"))
    check_work(op, "the conv", filters.shape[0] * out[0] * out[1] * filters[0].size, exact)
    return _ConvPlan(spec, filters, bias, spec.mode, stride, pads, dilation, spec.padding_mode, out)


def plan_activation(op: str, spec: Activation) -> _ActivationPlan:
    """The activation ``spec`` checked: its name and the parameters it takes."""
    name = check_choice(op, "activation", spec.name, ACTIVATIONS)
    params: dict = {}
    if name == "leaky_relu":
        params["negative_slope"] = check_scalar(op, "negative_slope", spec.negative_slope)
    elif name == "elu":
        params["alpha"] = check_scalar(op, "alpha", spec.alpha)
    elif name == "gelu":
        params["approximate"] = check_choice(op, "approximate", spec.approximate, ("none", "tanh"))
    return _ActivationPlan(spec, name, params)


def _plan_pool(op: str, spec: Pool, shape: tuple[int, int, int], arithmetic: str = num.FLOAT) -> _PoolPlan:
    _, *sizes = shape
    kind = check_choice(op, "pool", spec.kind, POOL_KINDS)
    kernel = ntuple(op, "kernel_size", spec.kernel_size, 2, minimum=1)
    stride = kernel if spec.stride is None else ntuple(op, "stride", spec.stride, 2, minimum=1)
    pads = padding_pairs(op, spec.padding, 2)
    dilation = ntuple(op, "dilation", spec.dilation, 2, minimum=1)
    ceil_mode = check_bool(op, "ceil_mode", spec.ceil_mode)
    count_include_pad = check_bool(op, "count_include_pad", spec.count_include_pad)
    divisor = spec.divisor_override
    if divisor is not None:
        divisor = ntuple(op, "divisor_override", divisor, 1, minimum=1)[0]
    check_fit(op, "pooling window", sizes, kernel, dilation, pads)
    check_values(op, f"the padded input ({extent(shape[0], sizes, pads)})",
                 shape[0] * (sizes[0] + sum(pads[0])) * (sizes[1] + sum(pads[1])))
    out = out_sizes(op, sizes, kernel, stride, pads, dilation, ceil_mode)
    # exact fractions are slow: rationals are averaged one window at a time, and the average of
    # integers makes one Fraction per output cell
    per_cell = 1 if arithmetic == num.INTEGER else kernel[0] * kernel[1]
    check_work(op, "the pooling", shape[0] * out[0] * out[1] * per_cell,
               arithmetic == num.RATIONAL or (arithmetic == num.INTEGER and kind == "avg"))
    for axis, size, k, s, d, (lo, _), o in zip(AXES, sizes, kernel, stride, dilation, pads, out, strict=True):
        for p in range(o):
            taps = [p * s + t * d - lo for t in range(k)]
            if not any(0 <= q < size for q in taps):
                raise ValueError(
                    f"{op}: pool padding {pads} leaves window {p} along {axis} with no input cell "
                    f"(input size {size}, kernel {k}, stride {s}); reduce the padding"
                )
    return _PoolPlan(spec, kind, kernel, stride, pads, dilation, ceil_mode, count_include_pad,
                     divisor, out)


def _plan(shape: tuple[int, int, int], stages: Sequence[Any], arithmetic: str = num.FLOAT) -> list:
    """Validate every stage against the shape of its input; ``arithmetic`` (of the input) decides
    which stages compute in exact fractions, and so which work limit applies."""
    if isinstance(stages, (Conv, Activation, Pool, str)):
        stages = [stages]
    plans = []
    for i, spec in enumerate(stages, start=1):
        if isinstance(spec, str):
            spec = Activation(spec)
        if isinstance(spec, Conv):
            plan = _plan_conv(f"{OP} (conv stage {i})", spec, shape, arithmetic == num.RATIONAL)
            shape = (plan.filters.shape[0], *plan.out)
            arithmetic = num.common_arithmetic(
                np.empty(0, dtype=object if arithmetic == num.RATIONAL else
                         np.float64 if arithmetic == num.FLOAT else np.int64),
                plan.filters, *(() if plan.bias is None else (plan.bias,)))
        elif isinstance(spec, Activation):
            plan = plan_activation(f"{OP} (activation stage {i})", spec)
            if plan.name not in _EXACT_ACTIVATIONS:
                arithmetic = num.FLOAT
        elif isinstance(spec, Pool):
            plan = _plan_pool(f"{OP} (pool stage {i})", spec, shape, arithmetic)
            shape = (shape[0], *plan.out)
            if plan.kind == "avg" and arithmetic == num.INTEGER:
                arithmetic = num.RATIONAL
        else:
            raise TypeError(
                f"{OP}: stage {i} must be a Conv, Activation or Pool (or an activation name), "
                f"got {type(spec).__name__}"
            )
        plans.append(plan)
    return plans
