"""Object size and a model: the receptive field of every layer, and which objects each can see.

A cell of a layer's output depends on an ``r x r`` patch of the input, its receptive field.  An
object (an edge, a stroke, a whole digit) can only be recognised by a cell whose field covers it:
smaller fields see parts of it, and a field much larger than the input adds nothing.
:func:`model_field` walks the conv and pooling layers of a model (1-D or 2-D, nested containers
included) with the recurrence ``r_out = r_in + (k - 1) d j_in``, ``j_out = j_in s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnlab.explain._expr import Heading, Items, Para
from cnnlab.explain._rendered import Rendered

OP = "model_field"


def _first(value: Any) -> int:
    """The first axis of a layer's (tuple) argument."""
    if isinstance(value, (tuple, list)):
        return int(value[0])
    return int(value)


def _layers(model: Any) -> list[tuple[str, int, int, int]]:
    """``(name, kernel, stride, dilation)`` of each conv or pooling layer, in order (first axis)."""
    out = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if kind.startswith(("Conv", "MaxPool", "AvgPool")) and not kind.startswith("ConvTranspose"):
            if not hasattr(module, "kernel_size"):
                continue
            out.append((f"{name or 'model'} ({kind})", _first(module.kernel_size),
                        _first(module.stride), _first(getattr(module, "dilation", 1))))
    return out


class ModelField(Rendered):
    """The receptive field per layer of a model and the object sizes each layer covers.

    Attributes
    ----------
    rows : list of (str, int, int, int, int)
        ``(layer, kernel, stride, field r, jump j)``.
    input_size : int
        The input's side (length for 1-D).
    sizes : list of int
        The object sizes (in input cells) asked about.
    """

    def __init__(self, name: str, rows: list, input_size: int, sizes: list[int]) -> None:
        self.name, self.rows, self.input_size, self.sizes = name, rows, input_size, sizes

    @property
    def field(self) -> int:
        """The receptive field of the last conv or pooling layer."""
        return self.rows[-1][3] if self.rows else 1

    def first_layer_covering(self, size: int) -> str | None:
        """The first layer whose cells see a whole object of ``size`` cells (None: none does)."""
        for layer, _, _, r, _ in self.rows:
            if r >= size:
                return layer
        return None

    def document_blocks(self, cells: int | None = None) -> list:
        lines = [f"{layer}: kernel {k}, stride {s} -> one cell sees {r} input cells, neighbours are {j} apart"
                 for layer, k, s, r, j in self.rows]
        seen = []
        for size in self.sizes:
            layer = self.first_layer_covering(size)
            if size > self.input_size:
                seen.append(f"{size} cells: larger than the {self.input_size}-cell input")
            elif layer is None:
                seen.append(f"{size} cells: no layer sees all of it (the last field is {self.field}); only the "
                            "fully connected head combines the parts")
            else:
                seen.append(f"{size} cells: first seen whole by {layer}")
        return [
            Heading(f"Receptive fields of {self.name}", 1),
            Para("Starting from r = 1, j = 1, a layer with kernel k, stride s and dilation d gives r_out = r_in + "
                 "(k - 1)*d*j_in and j_out = j_in*s (the first axis; square kernels give the same on the other)."),
            Items(lines or ["no conv or pooling layer: every output sees the whole input through dense layers"]),
            Heading("Which object sizes can it see?", 2),
            Para("An object is recognised by a cell whose field covers it; cells of earlier layers see its parts "
                 "(edges, corners), cells of later layers the whole. Objects larger than the last field are only "
                 "put together by the dense head, so a network built for small objects struggles with large ones "
                 "and the reverse: the scale experiment (cnnlab scale) measures it."),
            Items(seen),
        ]


def model_field(model: Any, input_shape: Sequence[int], *, name: str = "the model",
                sizes: Sequence[int] | None = None) -> ModelField:
    """The receptive field of every conv and pooling layer of ``model``.

    Parameters
    ----------
    model : cnnlab.nn.Module
        Any model; its conv and pooling layers are found in order (nested ones too).
    input_shape : sequence of int
        One sample's shape ``(C, L)`` or ``(C, H, W)``; the last axis gives the input size.
    name : str
        The model's name in the text.
    sizes : sequence of int, optional
        Object sizes to ask about; by default 2, 4, 8, ... up to the input size.

    Returns
    -------
    ModelField

    Examples
    --------
    >>> from cnnlab.training.models import build_model
    >>> field = model_field(build_model("lenet5"), (1, 28, 28), name="lenet5")
    >>> [r for _, _, _, r, _ in field.rows]
    [5, 6, 14, 16]
    >>> field.first_layer_covering(10)
    '3 (Conv2d)'
    """
    if not hasattr(model, "named_modules"):
        raise TypeError(f"{OP}: model must be a cnnlab.nn.Module, got {type(model).__name__}")
    if len(input_shape) < 2:
        raise ValueError(f"{OP}: input_shape must be (C, L) or (C, H, W), got {tuple(input_shape)}")
    size = int(input_shape[-1])
    rows, r, j = [], 1, 1
    for layer, k, s, d in _layers(model):
        r, j = r + (k - 1) * d * j, j * s
        rows.append((layer, k, s, r, j))
    if sizes is None:
        sizes, v = [], 2
        while v < size:
            sizes.append(v)
            v *= 2
        sizes.append(size)
    return ModelField(name, rows, size, [int(v) for v in sizes])
