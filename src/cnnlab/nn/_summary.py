"""``summary(model, input_shape)``: a table of a model's layers, like torchinfo.

For every submodule: its output shape, its parameter count, the receptive field of its outputs
and its multiply-adds, found by running one forward pass on zeros (without gradients, in
evaluation mode, restoring the modes afterwards) with forward hooks on every module.

Receptive field (size per spatial dim, in input cells) and jump (distance in input cells between
neighbouring outputs) follow the chain of layers in execution order, starting from ``r = 1``,
``j = 1``:

- a convolution or pooling window of size ``k``, dilation ``d``, stride ``s``:
  ``r_out = r_in + (k - 1) * d * j_in`` and ``j_out = j_in * s``;
- a transposed convolution, which needs ``ceil(((k-1)*d + 1) / s)`` neighbouring inputs per output:
  ``r_out = r_in + (ceil(((k-1)*d + 1) / s) - 1) * j_in`` and ``j_out = j_in / s``;
- adaptive pooling from ``in`` to ``out`` cells: its widest window as ``k`` and ``s = in / out``;
- the first ``Linear`` after a ``Flatten`` sees the whole flattened map of extent ``L``:
  ``r_out = r_in + (L - 1) * j_in``;
- elementwise layers (activations, normalisation, dropout) change nothing.

Multiply-adds are counted for convolutions (``output elements * C_in/groups * prod(kernel)``),
transposed convolutions (``input elements * C_out/groups * prod(kernel)``) and ``Linear``
(``output elements * in_features``), for the whole batch given; other layers count 0.  The
formulas assume a chain: for models with branches the receptive field column is not meaningful.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.autograd import Tensor, no_grad
from cnnlab.functional._adaptive import averaging_matrix
from cnnlab.nn.conv import _ConvNd, _ConvTransposeNd
from cnnlab.nn.linear import Flatten, Linear
from cnnlab.nn.module import Module
from cnnlab.nn.pooling import _AdaptivePoolNd, _AvgPoolNd, _MaxPoolNd


@dataclass
class LayerSummary:
    """One row of a :class:`ModelSummary`."""

    name: str
    kind: str
    depth: int
    output_shape: tuple[int, ...] | None
    params: int
    trainable_params: int
    receptive_field: tuple[float, ...] | None
    jump: tuple[float, ...] | None
    mult_adds: int


@dataclass
class ModelSummary:
    """What :func:`summary` returns; ``str()`` gives the table."""

    model_name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None
    layers: list[LayerSummary]
    total_params: int
    trainable_params: int
    total_mult_adds: int

    def __str__(self) -> str:
        header = ("Layer (type)", "Output Shape", "Param #", "Receptive field", "Mult-Adds")
        rows = [header]
        for layer in self.layers:
            rows.append((
                "  " * (layer.depth - 1) + f"{layer.name} ({layer.kind})",
                "-" if layer.output_shape is None else str(list(layer.output_shape)),
                f"{layer.params:,}",
                _format_field(layer.receptive_field),
                f"{layer.mult_adds:,}",
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        line = "=" * (sum(widths) + 2 * (len(widths) - 1))

        def fmt(row: tuple[str, ...]) -> str:
            cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
            return "  ".join(cells).rstrip()

        body = [line, fmt(header), line, *(fmt(row) for row in rows[1:]), line]
        body += [
            f"Model: {self.model_name}",
            f"Input shape: {list(self.input_shape)}",
            f"Output shape: {'-' if self.output_shape is None else list(self.output_shape)}",
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"Total mult-adds: {self.total_mult_adds:,}",
            line,
        ]
        return "\n".join(body)

    __repr__ = __str__


def _format_field(field: tuple[float, ...] | None) -> str:
    if field is None:
        return "-"
    return "x".join(f"{v:g}" for v in field)


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, tuple) and value:
        value = value[0]  # (output, indices) of a max pool
    if isinstance(value, (Tensor, np.ndarray)):
        return tuple(value.shape)
    return None


def _widest_window(size: int, out: int) -> int:
    """Length of the longest of the adaptive-pooling windows from ``size`` cells to ``out``."""
    return int((averaging_matrix(size, out) > 0).sum(axis=1).max())


def _is_leaf(module: Module) -> bool:
    return not any(True for _ in module.children())


def _per_dim(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


class _Tracker:
    """Receptive field and jump along the executed chain of leaf layers."""

    def __init__(self, n: int) -> None:
        self.field: list[float] | None = [1.0] * n if n else None
        self.jump: list[float] = [1.0] * n
        self.flat_extent: tuple[int, ...] | None = None

    def window(self, kernel: tuple, stride: tuple, dilation: tuple) -> None:
        if self.field is None or len(kernel) != len(self.field):
            return
        for i, (k, s, d) in enumerate(zip(kernel, stride, dilation, strict=True)):
            self.field[i] += (k - 1) * d * self.jump[i]
            self.jump[i] *= s

    def update(self, module: Module, inputs: tuple, output: Any) -> None:
        if self.field is None:
            return
        in_shape = _shape(inputs[0]) if inputs else None
        n = len(self.field)
        if isinstance(module, _ConvNd):
            self.window(module.kernel_size, module.stride, module.dilation)
        elif isinstance(module, _MaxPoolNd):
            self.window(_per_dim(module.kernel_size, n), _per_dim(module.stride, n), _per_dim(module.dilation, n))
        elif isinstance(module, _AvgPoolNd):
            self.window(_per_dim(module.kernel_size, n), _per_dim(module.stride, n), (1,) * n)
        elif isinstance(module, _ConvTransposeNd) and len(module.kernel_size) == n:
            for i, (k, s, d) in enumerate(zip(module.kernel_size, module.stride, module.dilation, strict=True)):
                self.field[i] += (math.ceil(((k - 1) * d + 1) / s) - 1) * self.jump[i]
                self.jump[i] /= s
        elif isinstance(module, _AdaptivePoolNd) and in_shape is not None:
            out_shape = _shape(output)
            if out_shape is not None and len(in_shape) >= n:
                sizes = zip(in_shape[-n:], out_shape[-n:], strict=True)
                kernel, stride = zip(*((_widest_window(a, b), a / b) for a, b in sizes), strict=True)
                self.window(kernel, stride, (1,) * n)
        elif isinstance(module, Flatten) and in_shape is not None and len(in_shape) >= n + 2:
            self.flat_extent = tuple(in_shape[-n:])
        elif isinstance(module, Linear) and self.flat_extent is not None:
            for i, extent in enumerate(self.flat_extent):
                self.field[i] += (extent - 1) * self.jump[i]
            self.flat_extent = None


def _mult_adds(module: Module, inputs: tuple, output: Any) -> int:
    out_shape = _shape(output)
    if isinstance(module, _ConvNd) and out_shape is not None:
        return int(np.prod(out_shape)) * int(np.prod(module.weight.shape[1:]))
    if isinstance(module, _ConvTransposeNd) and inputs:
        in_shape = _shape(inputs[0])
        return 0 if in_shape is None else int(np.prod(in_shape)) * int(np.prod(module.weight.shape[1:]))
    if isinstance(module, Linear) and out_shape is not None:
        return int(np.prod(out_shape)) * module.in_features
    return 0


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise TypeError(f"summary: input_shape must be a non-empty tuple of ints, got {input_shape!r}")
    for size in input_shape:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise TypeError(f"summary: input_shape must be a tuple of ints, got {input_shape!r}")
        if size < 1:
            raise ValueError(f"summary: input_shape must hold positive sizes, got {tuple(input_shape)}")
    return tuple(int(s) for s in input_shape)


def summary(model: Module, input_shape: tuple[int, ...], dtype: Any = None) -> ModelSummary:
    """Summarise ``model`` for an input of shape ``input_shape`` (batch dim included).

    Parameters
    ----------
    model : Module
    input_shape : tuple of int
        E.g. ``(1, 1, 32, 32)``; every dim after the first two is spatial (receptive fields
        are tracked over them).
    dtype : dtype, optional
        Of the zeros fed in; default the dtype of the model's first parameter (else float32).

    Returns
    -------
    ModelSummary
        ``.layers`` (one :class:`LayerSummary` per submodule, depth first), the totals, and a
        table as its ``str``.

    Raises
    ------
    TypeError
        ``model`` is not a Module, ``input_shape`` not a tuple of ints.
    ValueError
        Non-positive sizes; errors of the forward pass propagate.

    Examples
    --------
    >>> from cnnlab.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
    >>> net = Sequential(Conv2d(1, 4, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(4 * 3 * 3, 10))
    >>> s = summary(net, (1, 1, 8, 8))
    >>> s.total_params, s.total_mult_adds, s.layers[2].receptive_field
    (410, 1656, (4.0, 4.0))
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be a Module, got {type(model).__name__}")
    shape = _check_shape(input_shape)
    if dtype is None:
        first = next(iter(model.parameters()), None)
        dtype = np.float32 if first is None else first.dtype
    modules = list(model.named_modules())
    modules = modules[1:] if len(modules) > 1 else [(type(model).__name__, model)]
    records: dict[int, dict[str, Any]] = {}
    tracker = _Tracker(max(len(shape) - 2, 0))

    def hook(module: Module, inputs: tuple, output: Any) -> None:
        record = records.setdefault(id(module), {"mult_adds": 0})
        record["shape"] = _shape(output)
        if _is_leaf(module):
            tracker.update(module, inputs, output)
            record["mult_adds"] += _mult_adds(module, inputs, output)
            record["field"] = None if tracker.field is None else tuple(tracker.field)
            record["jump"] = None if tracker.field is None else tuple(tracker.jump)

    handles = [module.register_forward_hook(hook) for _, module in modules]
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with no_grad():
            output = model(Tensor(np.zeros(shape, dtype=dtype)))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            object.__setattr__(module, "training", mode)

    layers = []
    for name, module in modules:
        params = list(module.parameters())
        record = records.get(id(module), {})
        mult_adds = record.get("mult_adds", 0)
        field, jump = record.get("field"), record.get("jump")
        if not _is_leaf(module):  # a container: its children's totals, its last leaf's field
            mult_adds = sum(records.get(id(m), {}).get("mult_adds", 0) for m in module.modules() if m is not module
                            and _is_leaf(m))
            leaves = [records[id(m)] for m in module.modules() if id(m) in records and "field" in records[id(m)]]
            field, jump = (leaves[-1]["field"], leaves[-1]["jump"]) if leaves else (None, None)
        layers.append(LayerSummary(
            name=name, kind=type(module).__name__, depth=name.count(".") + 1,
            output_shape=record.get("shape"), params=sum(p.numel() for p in params),
            trainable_params=sum(p.numel() for p in params if p.requires_grad),
            receptive_field=field, jump=jump, mult_adds=mult_adds,
        ))
    all_params = list(model.parameters())
    leaf_records = [records[id(m)] for _, m in modules if id(m) in records and _is_leaf(m)]
    return ModelSummary(
        model_name=type(model).__name__, input_shape=shape, output_shape=_shape(output), layers=layers,
        total_params=sum(p.numel() for p in all_params),
        trainable_params=sum(p.numel() for p in all_params if p.requires_grad),
        total_mult_adds=sum(r["mult_adds"] for r in leaf_records),
    )
