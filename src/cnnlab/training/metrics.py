"""Classification metrics on NumPy arrays: accuracy, the confusion matrix, per-class accuracy.

Predictions may be given as class indices ``(N,)`` or as scores ``(N, K)`` (logits or
probabilities; the predicted class is the arg-max, the first one on ties, as ``numpy.argmax``).
Targets are class indices ``(N,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["accuracy", "confusion_matrix", "format_confusion_matrix", "per_class_accuracy", "predicted_classes"]


def _labels(op: str, name: str, values: Any) -> np.ndarray:
    arr = np.asarray(getattr(values, "data", values))
    if arr.ndim != 1:
        raise ValueError(f"{op}: {name} must be class indices of shape (N,), got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{op}: {name} must hold integer class indices, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{op}: {name} must be non-negative class indices, found {int(arr.min())}")
    return arr.astype(np.int64, copy=False)


def predicted_classes(predictions: Any) -> np.ndarray:
    """Class indices from indices ``(N,)`` or from scores ``(N, K)`` (arg-max over the last axis).

    Examples
    --------
    >>> predicted_classes(np.array([[0.1, 2.0], [3.0, -1.0]]))
    array([1, 0])
    """
    arr = np.asarray(getattr(predictions, "data", predictions))
    if arr.ndim == 2:
        return np.argmax(arr, axis=1)
    if arr.ndim == 1:
        return _labels("predicted_classes", "predictions", arr)
    raise ValueError(f"predicted_classes: predictions must be indices (N,) or scores (N, K), got shape {arr.shape}")


def _pair(op: str, predictions: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    pred = predicted_classes(predictions)
    true = _labels(op, "targets", targets)
    if len(pred) != len(true):
        raise ValueError(f"{op}: {len(pred)} predictions but {len(true)} targets")
    return pred, true


def accuracy(predictions: Any, targets: Any) -> float:
    """The fraction of predictions equal to the targets (NaN for no samples).

    Parameters
    ----------
    predictions : array_like
        Class indices ``(N,)`` or scores ``(N, K)``.
    targets : array_like
        Class indices ``(N,)``.

    Returns
    -------
    float
        In ``[0, 1]``.

    Raises
    ------
    ValueError
        If the shapes do not fit or an index is negative.
    TypeError
        If the targets are not integers.

    Examples
    --------
    >>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), np.array([0, 1, 1]))
    0.6666666666666666
    """
    pred, true = _pair("accuracy", predictions, targets)
    if len(true) == 0:
        return float("nan")
    return float(np.mean(pred == true))


def confusion_matrix(predictions: Any, targets: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class ``i`` predicted as class ``j``.

    Parameters
    ----------
    predictions : array_like
        Class indices ``(N,)`` or scores ``(N, K)``.
    targets : array_like
        Class indices ``(N,)``.
    num_classes : int or None, optional
        Size of the matrix; by default the number of score columns, else the largest index + 1.

    Returns
    -------
    numpy.ndarray
        int64, shape ``(num_classes, num_classes)``; rows are true classes, columns predictions,
        so the diagonal holds the correct predictions and each row sums to that class's count.

    Raises
    ------
    ValueError
        If an index is ``>= num_classes``, or the shapes do not fit.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
    array([[1, 0, 0],
           [0, 1, 0],
           [0, 1, 1]])
    """
    pred, true = _pair("confusion_matrix", predictions, targets)
    if num_classes is None:
        scores = np.asarray(getattr(predictions, "data", predictions))
        k = scores.shape[1] if scores.ndim == 2 else 0
        num_classes = max(k, int(pred.max(initial=-1)) + 1, int(true.max(initial=-1)) + 1)
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"confusion_matrix: num_classes must be an int, got {num_classes!r}")
    n = int(num_classes)
    for name, arr in (("predictions", pred), ("targets", true)):
        if arr.size and arr.max() >= n:
            raise ValueError(f"confusion_matrix: {name} hold class {int(arr.max())} but num_classes is {n}")
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (true, pred), 1)
    return counts


def per_class_accuracy(confusion: Any) -> np.ndarray:
    """Each class's accuracy (its recall): the diagonal of a confusion matrix over its row sums.

    A class with no samples gets NaN.

    Examples
    --------
    >>> per_class_accuracy(np.array([[3, 1], [0, 0]]))
    array([0.75,  nan])
    """
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"per_class_accuracy: expected a square confusion matrix, got shape {cm.shape}")
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)


def format_confusion_matrix(confusion: Any, class_names: Sequence[str] | None = None) -> str:
    """A plain-text table: one row per true class, one column per predicted class, then the
    class's accuracy.

    Examples
    --------
    >>> print(format_confusion_matrix(np.array([[3, 1], [0, 2]]), ["cat", "dog"]))
    true \\ predicted    0   1  accuracy
    0 cat               3   1     75.0%
    1 dog               0   2    100.0%
    """
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"format_confusion_matrix: expected a square matrix, got shape {cm.shape}")
    n = cm.shape[0]
    names = [str(k) for k in range(n)] if class_names is None else [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"format_confusion_matrix: {len(names)} class names for {n} classes")
    labels = [f"{k} {name}" if name != str(k) else name for k, name in enumerate(names)]
    head = "true \\ predicted"
    left = max(len(head), *(len(label) for label in labels))
    cell = max(4, len(str(int(cm.max(initial=0)))) + 1)
    acc = per_class_accuracy(cm)
    lines = [f"{head:<{left}} " + "".join(f"{k:>{cell}}" for k in range(n)) + f"{'accuracy':>10}"]
    for k in range(n):
        value = "n/a" if np.isnan(acc[k]) else f"{100 * acc[k]:.1f}%"
        lines.append(f"{labels[k]:<{left}} " + "".join(f"{int(v):>{cell}}" for v in cm[k]) + f"{value:>10}")
    return "\n".join(lines)
