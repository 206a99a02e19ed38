"""Figures of a training run: curves from ``metrics.jsonl``, the confusion matrix, the worst mistakes."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.viz._common import as_matrix, figure, finish

CURVES = "curves.png"
CONFUSION = "confusion.png"
MOST_WRONG = "most_wrong.png"


def read_metrics(run: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The per-epoch records of a run folder's ``metrics.jsonl`` (or of that file itself).

    A last line cut short (a run being written) is skipped.

    Raises
    ------
    FileNotFoundError
        When there is no ``metrics.jsonl``.
    """
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"read_metrics: no metrics.jsonl at {path}")
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "epoch" in record:
            records.append(record)
    return records


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(r["epoch"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_training_curves(run: Any, path: str | os.PathLike[str] | None = None) -> Any:
    """Loss, accuracy and learning rate per epoch.

    Parameters
    ----------
    run : str, os.PathLike or list of dict
        A run folder (or its ``metrics.jsonl``), or the records themselves.
    path : str or os.PathLike, optional
        Save there (PNG or SVG by suffix) and close the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    records = run if isinstance(run, list) else read_metrics(run)
    if not records:
        raise ValueError("plot_training_curves: the run has no completed epoch yet")
    fig = figure(10.0, 3.2)
    panels = (("loss", ("train_loss", "val_loss")), ("accuracy", ("train_acc", "val_acc")), ("learning rate", ("lr",)))
    for k, (title, keys) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1)
        for key in keys:
            xs, ys = _series(records, key)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key.replace("_", " "))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0] and len(keys) > 1:
            ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.16, top=0.88, wspace=0.3)
    return finish("plot_training_curves", fig, path)


def plot_confusion_matrix(confusion: Any, classes: Sequence[str] | None = None,
                          path: str | os.PathLike[str] | None = None) -> Any:
    """A confusion matrix (rows: true class, columns: predicted), with counts in the cells.

    Parameters
    ----------
    confusion : array_like
        ``(K, K)`` counts.
    classes : sequence of str, optional
        The class names (default ``0 .. K-1``).
    path : str or os.PathLike, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    op = "plot_confusion_matrix"
    cm = as_matrix(op, "confusion", confusion, 2)
    if cm.shape[0] != cm.shape[1]:
        raise ValueError(f"{op}: confusion must be square (K, K), got shape {cm.shape}")
    k = cm.shape[0]
    names = [str(c) for c in (classes if classes is not None else range(k))]
    if len(names) != k:
        raise ValueError(f"{op}: {len(names)} class names for a {k} x {k} confusion matrix")
    size = round(min(9.0, max(4.0, 0.5 * k + 2)), 2)
    fig = figure(size, size)
    ax = fig.add_axes((0.18, 0.15, 0.78, 0.75))
    ax.imshow(cm, cmap="Blues", interpolation="nearest")
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = cm.sum()
    accuracy = np.trace(cm) / total if total else 0.0
    ax.set_title(f"confusion matrix (accuracy {100 * accuracy:.1f}%)", fontsize=10)
    if k <= 20:
        top = cm.max() or 1
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7 if k > 10 else 8,
                        color="white" if cm[i, j] > top / 2 else "black")
    return finish(op, fig, path)


def most_wrong(probabilities: Any, targets: Any, count: int = 16) -> np.ndarray:
    """Indices of the misclassified examples the model was most sure about, surest first.

    Ranked by the probability given to the (wrong) predicted class.

    Examples
    --------
    >>> most_wrong([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], [1, 1, 1]).tolist()
    [0, 2]
    """
    op = "most_wrong"
    p = as_matrix(op, "probabilities", probabilities, 2)
    y = np.asarray(targets)
    if y.shape != (p.shape[0],) or y.dtype.kind not in "iu":
        raise ValueError(f"{op}: targets must be {p.shape[0]} class indices, got shape {y.shape} dtype {y.dtype}")
    predicted = p.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    order = np.argsort(-p[wrong, predicted[wrong]], kind="stable")
    return wrong[order][:count]


def plot_most_wrong(x: Any, targets: Any, probabilities: Any, classes: Sequence[str] | None = None,
                    path: str | os.PathLike[str] | None = None, *, count: int = 16) -> Any:
    """A grid of the test examples the model gets most wrong: ``true -> predicted (p%)``.

    Parameters
    ----------
    x : array_like
        The examples: images ``(N, C, H, W)`` or ``(N, H, W)``; signals ``(N, L)`` or ``(N, C, L)``
        with at most 4 channels.
    targets : array_like
        ``(N,)`` class indices.
    probabilities : array_like
        ``(N, K)`` the model's class probabilities.
    classes : sequence of str, optional
    path : str or os.PathLike, optional
    count : int, default 16

    Returns
    -------
    matplotlib.figure.Figure
    """
    op = "plot_most_wrong"
    xs = as_matrix(op, "x", x, (2, 3, 4))
    picked = most_wrong(probabilities, targets, count)
    p = np.asarray(probabilities, dtype=np.float64)
    names = [str(c) for c in (classes if classes is not None else range(p.shape[1]))]
    shown = max(1, len(picked))
    cols = min(8, max(1, math.ceil(math.sqrt(shown))))
    rows = math.ceil(shown / cols)
    fig = figure(round(1.6 * cols, 2), round(1.75 * rows + 0.4, 2))
    fig.suptitle(f"the {len(picked)} test examples the model gets most wrong", fontsize=9)
    # (N, L) and (N, C, L) with a few channels are signals; (N, H, W) and (N, C, H, W) images
    signal = xs.ndim == 2 or (xs.ndim == 3 and xs.shape[1] <= 4)
    for n, i in enumerate(picked):
        ax = fig.add_subplot(rows, cols, n + 1)
        example = xs[i]
        if signal:
            for channel in np.atleast_2d(example):
                ax.plot(channel, linewidth=0.8)
        else:
            img = example if example.ndim == 2 else (example[0] if example.shape[0] == 1 else
                                                       np.moveaxis(example, 0, -1))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        pred = int(p[i].argmax())
        ax.set_title(f"{names[int(np.asarray(targets)[i])]} -> {names[pred]} ({100 * p[i, pred]:.0f}%)", fontsize=7)
    if not len(picked):
        ax = fig.add_subplot(1, 1, 1)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center")
    return finish(op, fig, path)


def _confusion(predicted: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(targets * k + predicted, minlength=k * k).reshape(k, k)


def write_run_figures(run: str | os.PathLike[str], *, probabilities: Any = None, targets: Any = None,
                      x: Any = None, classes: Sequence[str] | None = None, model: Any = None,
                      metadata: Any = None) -> list[Path]:
    """Write a run folder's figures: ``curves.png`` and, given test predictions, ``confusion.png``
    and ``most_wrong.png``.  Returns the paths written.

    Parameters
    ----------
    run : str or os.PathLike
        The run folder (with ``metrics.jsonl``).
    probabilities, targets : array_like, optional
        The model's test-set class probabilities ``(N, K)`` and the true classes ``(N,)``.
    x : array_like, optional
        The raw test examples, for ``most_wrong.png``.
    classes : sequence of str, optional
    model : Module, optional
        Without ``probabilities``: the model that gives them for ``x``.
    metadata : dict, optional
        With ``model``: the checkpoint's record of its preprocessing (see :func:`prepare_input`).
    """
    from cnnlab.viz._data import predict_probabilities

    folder = Path(run)
    if probabilities is None and model is not None and x is not None:
        probabilities = predict_probabilities(model, x, metadata)
    written = []
    records = read_metrics(folder)
    if records:
        plot_training_curves(records, folder / CURVES)
        written.append(folder / CURVES)
    if probabilities is not None and targets is not None:
        p = as_matrix("write_run_figures", "probabilities", probabilities, 2)
        y = np.asarray(targets).astype(np.int64)
        plot_confusion_matrix(_confusion(p.argmax(axis=1), y, p.shape[1]), classes, folder / CONFUSION)
        written.append(folder / CONFUSION)
        if x is not None:
            plot_most_wrong(x, y, p, classes, folder / MOST_WRONG)
            written.append(folder / MOST_WRONG)
    return written


def plot_run(run: str | os.PathLike[str], checkpoint: str = "last.safetensors") -> list[Path]:
    """Write a finished run folder's figures: ``curves.png`` from its ``metrics.jsonl`` and, with the
    model of ``checkpoint`` on its data set's test split, ``confusion.png`` and ``most_wrong.png``.

    The data set, its classes and preprocessing are those the checkpoint records (what
    ``cnnlab train`` writes); when its data cannot be loaded only the curves are drawn.

    Returns
    -------
    list of pathlib.Path
        The figures written.
    """
    import cnnlab
    from cnnlab.data import load_dataset
    from cnnlab.viz._data import load_checkpoint

    folder = Path(run)
    path = folder / checkpoint
    if not path.is_file():
        return write_run_figures(folder)
    meta = dict((cnnlab.load_metadata(path) or {}).get("metadata") or {})
    settings = meta.get("settings") or {}
    try:
        data = load_dataset(str(meta.get("data", "")), seed=int(settings.get("seed", 0) or 0),
                            image_size=settings.get("image_size"), rgb=bool(settings.get("rgb", False)))
    except (ValueError, OSError, ImportError):
        return write_run_figures(folder)
    return write_run_figures(folder, model=load_checkpoint(path), metadata=meta, x=data.x_test,
                             targets=data.y_test, classes=meta.get("classes") or data.classes)
