"""Inside a model: its filters, the feature maps of every layer, and a bank of classic filters.

"Each filter looks for one feature": :func:`plot_filter_bank` applies hand-made filters (edges in
both directions, blur, sharpen, Laplacian) to a real image and puts the first-layer filters a
trained model learned, with their feature maps on the same image, under them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

import cnnlab
from cnnlab import functional as F
from cnnlab import nn
from cnnlab.viz._common import as_matrix, figure, finish

CLASSIC_FILTERS: dict[str, np.ndarray] = {
    "vertical edges": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "horizontal edges": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
    "blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
}
"""Hand-made 3 x 3 filters: Sobel edges (vertical, horizontal), Gaussian blur, sharpen, Laplacian."""

_CONVS = (nn.Conv1d, nn.Conv2d)


@dataclass(eq=False)
class LayerOutput:
    """What one top-level layer of a model did to one example (batch axis dropped)."""

    name: str
    module: Any
    input: np.ndarray
    output: np.ndarray

    @property
    def is_conv(self) -> bool:
        return isinstance(self.module, _CONVS)


def _example(op: str, model: Any, x: Any) -> np.ndarray:
    a = as_matrix(op, "x", x, (1, 2, 3, 4))
    if a.ndim == 1:
        a = a[None]  # a 1-D signal: one channel
    first = next((m for m in _modules(model) if isinstance(m, _CONVS)), None)
    spatial = 1 if isinstance(first, nn.Conv1d) else 2
    if a.ndim == spatial:
        a = a[None]
    if a.ndim == spatial + 2:
        if a.shape[0] != 1:
            raise ValueError(f"{op}: x must hold one example, got a batch of {a.shape[0]}")
        a = a[0]
    return a.astype(np.float32)


def _modules(model: Any) -> list[Any]:
    if isinstance(model, nn.Sequential):
        return list(model.children())
    return [model]


def layer_outputs(model: Any, x: Any) -> list[LayerOutput]:
    """Run ``model`` on one example and record each top-level layer's input and output.

    Parameters
    ----------
    model : Module
        An :class:`~cnnlab.nn.Sequential` (each child is a layer); any other module is one layer.
    x : array_like
        One example: ``(C, H, W)``, ``(H, W)``, ``(C, L)`` or ``(L,)`` (a batch of one is accepted).

    Returns
    -------
    list of LayerOutput
        In order; the model runs in eval mode without recording gradients.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"layer_outputs: model must be a cnnlab.nn.Module, got {type(model).__name__}")
    current = _example("layer_outputs", model, x)[None]
    was_training = model.training
    model.eval()
    records = []
    try:
        with cnnlab.no_grad():
            for name, module in (model.named_children() if isinstance(model, nn.Sequential) else [("model", model)]):
                out = np.asarray(module(cnnlab.Tensor(current)).data)
                records.append(LayerOutput(name, module, current[0], out[0]))
                current = out
    finally:
        model.train(was_training)
    return records


def _first_conv(op: str, model: Any, layer: int | None) -> Any:
    convs = [m for m in _modules(model) if isinstance(m, _CONVS)]
    if not convs:
        raise ValueError(f"{op}: the model has no Conv1d or Conv2d layer at its top level")
    if layer is None:
        return convs[0]
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(convs):
        raise ValueError(f"{op}: layer must be an int in [0, {len(convs) - 1}] (the conv layers), got {layer!r}")
    return convs[layer]


def _grid(count: int, columns: int | None = None) -> tuple[int, int]:
    cols = columns or max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / cols), cols


def _show(ax: Any, a: np.ndarray, cmap: str = "gray", symmetric: bool = False) -> None:
    if symmetric:
        m = float(np.abs(a).max()) or 1.0
        ax.imshow(a, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest")
    else:
        ax.imshow(a, cmap=cmap, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_filters(source: Any, path: str | os.PathLike[str] | None = None, *, layer: int | None = None,
                 max_filters: int = 64) -> Any:
    """A conv layer's filters as a grid of images (red positive, blue negative).

    Parameters
    ----------
    source : Module or array_like
        A model (its first conv layer, or the ``layer``-th) or a weight ``(O, C, kH, kW)`` or ``(O, C, k)``.
    path : str or os.PathLike, optional
        Save there (PNG or SVG by suffix) and close the figure.
    layer : int, optional
        Which of the model's top-level conv layers (0 is the first).
    max_filters : int, default 64
        Show at most this many filters; for several input channels each row is a filter and
        each column a channel (at most 8).

    Returns
    -------
    matplotlib.figure.Figure
    """
    op = "plot_filters"
    if isinstance(source, nn.Module):
        weight = np.asarray(_first_conv(op, source, layer).weight.data, dtype=np.float64)
    else:
        weight = as_matrix(op, "weight", source, (3, 4))
    if weight.ndim == 3:
        weight = weight[:, :, None, :]  # a 1-D filter is a 1 x k image
    if isinstance(max_filters, bool) or not isinstance(max_filters, int) or max_filters < 1:
        raise ValueError(f"{op}: max_filters must be an int >= 1, got {max_filters!r}")
    weight = weight[:max_filters]
    count, channels = weight.shape[:2]
    if channels == 1:
        rows, cols = _grid(count)
        cells = [(n, 0) for n in range(count)]
    else:
        rows, cols = count, min(channels, 8)
        cells = [(n, c) for n in range(count) for c in range(cols)]
    size = min(1.0, 10.0 / max(rows, cols))
    fig = figure(round(max(3.0, cols * size + 0.4), 2), round(rows * size + 0.6, 2))
    fig.suptitle(f"{weight.shape[0]} filters {tuple(weight.shape[1:])}", fontsize=9)
    for k, (n, c) in enumerate(cells):
        ax = fig.add_subplot(rows, cols, k + 1)
        _show(ax, weight[n, c], "RdBu_r", symmetric=True)
    return finish(op, fig, path)


def _maps_of(record: LayerOutput) -> np.ndarray | None:
    out = record.output
    return out if out.ndim in (2, 3) else None


def plot_feature_maps(model: Any, x: Any, path: str | os.PathLike[str] | None = None, *, max_maps: int = 8) -> Any:
    """The input and the feature maps of every layer for one example; the class probabilities last.

    Images show as grey maps; 1-D signals (MNIST-1D) as line plots.  A row per layer with
    spatial output (conv, activation, pooling), at most ``max_maps`` channels each.

    Parameters
    ----------
    model : Module
    x : array_like
        One example (see :func:`layer_outputs`).
    path : str or os.PathLike, optional
    max_maps : int, default 8

    Returns
    -------
    matplotlib.figure.Figure
    """
    op = "plot_feature_maps"
    if isinstance(max_maps, bool) or not isinstance(max_maps, int) or max_maps < 1:
        raise ValueError(f"{op}: max_maps must be an int >= 1, got {max_maps!r}")
    records = layer_outputs(model, x)
    rows = [("input", records[0].input)] + [(f"{r.name}: {type(r.module).__name__}", _maps_of(r)) for r in records]
    rows = [(label, maps) for label, maps in rows if maps is not None]
    logits = records[-1].output
    cols = max_maps
    fig = figure(round(1.2 * cols + 1.6, 2), round(1.25 * (len(rows) + 1) + 0.3, 2))
    grid = fig.add_gridspec(len(rows) + 1, cols + 1, width_ratios=[1.4] + [1] * cols, hspace=0.5)
    for i, (label, maps) in enumerate(rows):
        head = fig.add_subplot(grid[i, 0])
        head.set_axis_off()
        head.text(0, 0.5, f"{label}\n{tuple(maps.shape)}", fontsize=7, va="center")
        for c in range(min(cols, maps.shape[0])):
            ax = fig.add_subplot(grid[i, c + 1])
            if maps.ndim == 2:  # (C, L): a signal per channel
                ax.plot(maps[c], linewidth=0.8)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                _show(ax, maps[c], "viridis")
    ax = fig.add_subplot(grid[len(rows), 1:])
    if logits.ndim == 1:
        probs = np.asarray(F.softmax(logits[None].astype(np.float64), dim=1))[0]
        ax.bar(range(len(probs)), probs, color="#3182bd")
        ax.set_xticks(range(len(probs)))
        ax.set_ylim(0, 1)
        ax.set_title(f"class probabilities (predicted {int(np.argmax(probs))})", fontsize=8)
        ax.tick_params(labelsize=7)
    else:
        ax.set_axis_off()
    return finish(op, fig, path)


def plot_filter_bank(image: Any, model: Any = None, path: str | os.PathLike[str] | None = None, *,
                     model_input: Any = None, max_learned: int = 8) -> Any:
    """Classic filters on a real image, next to a trained model's first-layer filters on it.

    Row 1: the image and the classic filters (:data:`CLASSIC_FILTERS`); row 2: each filter's
    feature map (correlation with padding 1).  With a model whose first layer is a
    :class:`~cnnlab.nn.Conv2d` on one channel: row 3, its learned filters; row 4, their feature
    maps on the same image (the layer itself, with its stride, padding and bias).

    Parameters
    ----------
    image : array_like
        A grey image ``(H, W)``.
    model : Module, optional
    path : str or os.PathLike, optional
    model_input : array_like, optional
        The image as the model expects it (e.g. normalised with the training mean and standard
        deviation); defaults to ``image``.
    max_learned : int, default 8

    Returns
    -------
    matplotlib.figure.Figure
    """
    op = "plot_filter_bank"
    img = as_matrix(op, "image", image, 2)
    names = list(CLASSIC_FILTERS)
    learned = maps = None
    if model is not None:
        conv = _first_conv(op, model, None)
        if not isinstance(conv, nn.Conv2d) or conv.in_channels != 1:
            raise ValueError(f"{op}: the model's first conv layer must be a Conv2d on 1 channel, got {conv!r}")
        x = img if model_input is None else as_matrix(op, "model_input", model_input, 2)
        learned = np.asarray(conv.weight.data, dtype=np.float64)[:max_learned, 0]
        with cnnlab.no_grad():
            maps = np.asarray(conv(cnnlab.Tensor(x[None, None].astype(np.float32))).data)[0, :max_learned]
    cols = 1 + max(len(names), 0 if learned is None else len(learned))
    rows = 2 if learned is None else 4
    fig = figure(round(1.5 * cols, 2), round(1.6 * rows + 0.3, 2))
    fig.suptitle("each filter looks for one feature", fontsize=10)
    ax = fig.add_subplot(rows, cols, 1)
    _show(ax, img)
    ax.set_title("image", fontsize=8)
    bank = np.stack([CLASSIC_FILTERS[n] for n in names])[:, None]
    responses = np.asarray(F.conv2d(img[None, None], bank, None, 1, 1))[0]
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 2)
        _show(ax, CLASSIC_FILTERS[name], "RdBu_r", symmetric=True)
        ax.set_title(name, fontsize=8)
        ax = fig.add_subplot(rows, cols, cols + k + 2)
        _show(ax, responses[k])
    if learned is not None:
        ax = fig.add_subplot(rows, cols, 2 * cols + 1)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "learned\nfilters\n(layer 1)", ha="center", va="center", fontsize=8)
        for k in range(len(learned)):
            ax = fig.add_subplot(rows, cols, 2 * cols + k + 2)
            _show(ax, learned[k], "RdBu_r", symmetric=True)
            ax.set_title(f"filter {k}", fontsize=8)
            ax = fig.add_subplot(rows, cols, 3 * cols + k + 2)
            _show(ax, maps[k])
    return finish(op, fig, path)
