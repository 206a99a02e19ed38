"""Registry entries for the losses: cross_entropy, nll_loss, mse_loss and
binary_cross_entropy_with_logits.

Conventions for the generic tests:

- ``args`` are the differentiable inputs: ``(input,)`` for cross_entropy and nll_loss (whose
  class-index or probability ``target`` travels in ``kwargs``), ``(input, target)`` for mse_loss
  and binary_cross_entropy_with_logits.
- ``reference`` is a loop over samples and positions in plain Python floats (``math.exp``,
  ``math.log``), written from the definitions in PyTorch's documentation.
- ``torch_ref`` is the same call through ``torch.nn.functional`` (NumPy in, NumPy out).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cnnlab.functional._loss import (
    cross_entropy,
    cross_entropy_backward,
    nll_loss,
    nll_loss_backward,
)
from cnnlab.functional._loss_elementwise import (
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
    mse_loss,
    mse_loss_backward,
)
from tests.functional.opinfo import ErrorCase, OpInfo, Sample, rand, rng, torch

# ---------------------------------------------------------------- loop references


def _positions(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every (n, d1, d2, ...) of a batched (N, C, d1, ...) input."""
    return [(n, *rest) for n in range(shape[0]) for rest in np.ndindex(*shape[2:])]


def _at(x: np.ndarray, pos: tuple[int, ...], c: int) -> float:
    return float(x[(pos[0], c, *pos[1:])])


def _log_probs(x: np.ndarray, pos: tuple[int, ...]) -> list[float]:
    scores = [_at(x, pos, c) for c in range(x.shape[1])]
    top = max(scores)
    lse = top + math.log(sum(math.exp(s - top) for s in scores))
    return [s - lse for s in scores]


def _finish(losses: dict, shape: tuple[int, ...], reduction: str, divisor: float, unbatched: bool) -> np.ndarray:
    if reduction == "sum":
        return np.array(math.fsum(losses.values()))
    if reduction == "mean":
        return np.array(math.fsum(losses.values()) / divisor if divisor else math.nan)
    out = np.array([losses[p] for p in _positions(shape)]).reshape((shape[0],) + shape[2:])
    return out[0] if unbatched else out


def naive_cross_entropy(
    input, target, weight=None, reduction="mean", label_smoothing=0.0, ignore_index=-100
) -> np.ndarray:
    x, t = np.asarray(input, dtype=np.float64), np.asarray(target)
    unbatched = x.ndim == 1
    probabilities = t.shape == x.shape
    if unbatched:
        x, t = x[None], t[None]
    n_classes = x.shape[1]
    w = [1.0] * n_classes if weight is None else [float(v) for v in weight]
    eps = label_smoothing
    losses, divisor = {}, 0.0
    for pos in _positions(x.shape):
        logp = _log_probs(x, pos)
        if probabilities:
            smoothed = [(1 - eps) * _at(t, pos, c) + eps / n_classes for c in range(n_classes)]
            losses[pos] = -math.fsum(w[c] * smoothed[c] * logp[c] for c in range(n_classes))
            divisor += 1
        elif int(t[pos]) == ignore_index:
            losses[pos] = 0.0
        else:
            k = int(t[pos])
            uniform = math.fsum(w[c] * logp[c] for c in range(n_classes)) / n_classes
            losses[pos] = -(1 - eps) * w[k] * logp[k] - eps * uniform
            divisor += w[k]
    return _finish(losses, x.shape, reduction, divisor, unbatched)


def naive_nll_loss(input, target, weight=None, reduction="mean", ignore_index=-100) -> np.ndarray:
    x, t = np.asarray(input, dtype=np.float64), np.asarray(target)
    unbatched = x.ndim == 1
    if unbatched:
        x, t = x[None], t[None]
    w = [1.0] * x.shape[1] if weight is None else [float(v) for v in weight]
    losses, divisor = {}, 0.0
    for pos in _positions(x.shape):
        k = int(t[pos])
        losses[pos] = 0.0 if k == ignore_index else -w[k] * _at(x, pos, k)
        divisor += 0.0 if k == ignore_index else w[k]
    return _finish(losses, x.shape, reduction, divisor, unbatched)


def _elementwise(values: list[float], shape: tuple[int, ...], reduction: str) -> np.ndarray:
    if reduction == "sum":
        return np.array(math.fsum(values))
    if reduction == "mean":
        return np.array(math.fsum(values) / len(values))
    return np.array(values).reshape(shape)


def naive_mse_loss(input, target, reduction="mean") -> np.ndarray:
    x, t = np.broadcast_arrays(np.asarray(input, dtype=np.float64), np.asarray(target, dtype=np.float64))
    values = [(float(a) - float(b)) ** 2 for a, b in zip(x.flat, t.flat, strict=True)]
    return _elementwise(values, x.shape, reduction)


def naive_bce_with_logits(input, target, weight=None, reduction="mean", pos_weight=None) -> np.ndarray:
    x = np.asarray(input, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    w = np.broadcast_to(1.0 if weight is None else np.asarray(weight, dtype=np.float64), x.shape)
    pw = np.broadcast_to(1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64), x.shape)
    values = []
    for idx in np.ndindex(*x.shape):
        z, y = float(x[idx]), float(t[idx])
        # log sigmoid(z) and log(1 - sigmoid(z)) = log sigmoid(-z), each without overflow
        log_sig = -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))
        log_one_minus = log_sig - z
        values.append(-float(w[idx]) * (float(pw[idx]) * y * log_sig + (1 - y) * log_one_minus))
    return _elementwise(values, x.shape, reduction)


# ---------------------------------------------------------------- samples


def _class_target(shape: tuple[int, ...], n_classes: int, seed: int, ignore: int | None = None) -> np.ndarray:
    t = rng(seed).integers(0, n_classes, size=shape)
    if ignore is not None and t.size > 1:
        t.flat[:: max(2, t.size // 3)] = ignore
    return t


def _prob_target(shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    z = rng(seed).random(shape) * 4
    p = np.exp(z) / np.exp(z).sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
    return p.astype(dtype)


def _weight(n_classes: int, dtype: Any, seed: int) -> np.ndarray:
    return (0.2 + rng(seed).random(n_classes)).astype(dtype)


def _ce_samples(dtype: np.dtype) -> Iterator[Sample]:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return
    x2, x4 = rand((4, 5), dtype, seed=1), rand((2, 3, 4, 3), dtype, seed=2)
    t2, t4 = _class_target((4,), 5, 3), _class_target((2, 4, 3), 3, 4)
    w5, w3 = _weight(5, dtype, 5), _weight(3, dtype, 6)
    for reduction in ("mean", "sum", "none"):
        yield Sample((x2,), {"target": t2, "reduction": reduction}, desc="(N, C)")
        yield Sample((x2,), {"target": t2, "weight": w5, "reduction": reduction}, desc="weighted")
        yield Sample((x4,), {"target": t4, "weight": w3, "reduction": reduction}, desc="(N, C, d1, d2)")
        yield Sample((x4,), {"target": _prob_target(x4.shape, dtype, 7), "reduction": reduction}, desc="probs 4-D")
    t_ign = _class_target((4,), 5, 8, ignore=-100)
    yield Sample((x2,), {"target": t_ign, "weight": w5}, desc="ignore -100")
    yield Sample((x2,), {"target": t2, "ignore_index": int(t2[0])}, desc="ignore a class")
    yield Sample((x4,), {"target": _class_target((2, 4, 3), 3, 9, ignore=1), "ignore_index": 1}, desc="ignore 4-D")
    for eps in (0.1, 1.0):
        yield Sample((x2,), {"target": t_ign, "weight": w5, "label_smoothing": eps}, desc="smoothing")
        yield Sample((x4,), {"target": t4, "label_smoothing": eps, "reduction": "none"}, desc="smoothing 4-D")
    yield Sample(
        (x2,), {"target": _prob_target((4, 5), dtype, 10), "weight": w5, "label_smoothing": 0.2}, desc="probs weighted"
    )
    yield Sample((x2[0],), {"target": np.array(2)}, desc="unbatched")
    yield Sample((x2[0],), {"target": np.array(2), "reduction": "none", "label_smoothing": 0.3}, desc="unbatched none")
    yield Sample((x2[0],), {"target": _prob_target((5,), dtype, 11)}, desc="unbatched probs")
    yield Sample(((x2 * 40).astype(dtype),), {"target": t2}, desc="large logits")


def _nll_samples(dtype: np.dtype) -> Iterator[Sample]:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return
    x2, x4 = rand((4, 5), dtype, seed=12), rand((2, 3, 4, 3), dtype, seed=13)
    t2, t4 = _class_target((4,), 5, 14, ignore=-100), _class_target((2, 4, 3), 3, 15)
    for reduction in ("mean", "sum", "none"):
        yield Sample((x2,), {"target": t2, "reduction": reduction}, desc="(N, C) ignore")
        yield Sample((x2,), {"target": t2, "weight": _weight(5, dtype, 16), "reduction": reduction}, desc="weighted")
        yield Sample((x4,), {"target": t4, "weight": _weight(3, dtype, 17), "reduction": reduction}, desc="4-D")
    yield Sample((x4,), {"target": t4, "ignore_index": 0}, desc="ignore class 0")
    yield Sample((x2[1],), {"target": np.array(4)}, desc="unbatched")


def _mse_samples(dtype: np.dtype) -> Iterator[Sample]:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return
    for i, shape in enumerate([(5,), (3, 4), (2, 3, 2, 2)]):
        for reduction in ("mean", "sum", "none"):
            yield Sample((rand(shape, dtype, 20 + i), rand(shape, dtype, 30 + i)), {"reduction": reduction})
    yield Sample((rand((3, 4), dtype, 40), rand((4,), dtype, 41)), {}, desc="broadcast target")
    yield Sample((rand((3, 1), dtype, 42), rand((1, 4), dtype, 43)), {"reduction": "sum"}, desc="broadcast both")


def _bce_samples(dtype: np.dtype) -> Iterator[Sample]:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return
    x, t = rand((4, 3), dtype, 50), rng(51).random((4, 3)).astype(dtype)
    w, pw = _weight(3, dtype, 52), (rng(53).random(3) * 3).astype(dtype)
    for reduction in ("mean", "sum", "none"):
        yield Sample((x, t), {"reduction": reduction})
        yield Sample((x, t), {"weight": w, "pos_weight": pw, "reduction": reduction}, desc="weights")
    yield Sample((x, t), {"pos_weight": pw}, desc="pos_weight")
    yield Sample((x, (t > 0.5).astype(dtype)), {"weight": w[:, None][:1]}, desc="hard targets")
    x4 = rand((2, 3, 2, 2), dtype, 54)
    yield Sample((x4, rng(55).random(x4.shape).astype(dtype)), {"reduction": "sum"}, desc="4-D")
    yield Sample(((x * 30).astype(dtype), t), {}, desc="large logits")


# ---------------------------------------------------------------- errors

X = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
T = np.array([0, 2, 1, 1])


def _ce_errors() -> list[ErrorCase]:
    name = "cross_entropy"
    return [
        ErrorCase((X,), {"target": T.astype(float)}, TypeError, f"{name}: target must be integer class indices"),
        ErrorCase((X,), {"target": np.zeros((4, 3), dtype=int)}, TypeError, f"{name}: a target of the input's shape"),
        ErrorCase((X,), {"target": T[:3]}, ValueError, rf"{name}: target must have shape \(4,\) for input of shape"),
        ErrorCase((X,), {"target": np.array([0, 3, 1, 1])}, ValueError, f"{name}: target 3 is out of bounds for 3"),
        ErrorCase((X,), {"target": np.array([0, -2, 1, 1])}, ValueError, f"{name}: target -2 is out of bounds"),
        ErrorCase((X,), {"target": T, "weight": np.ones(4)}, ValueError, rf"{name}: weight must have shape \(3,\)"),
        ErrorCase((X,), {"target": T, "reduction": "avg"}, ValueError, f"{name}: reduction must be one of"),
        ErrorCase((X,), {"target": T, "reduction": None}, TypeError, f"{name}: reduction must be one of"),
        ErrorCase((X,), {"target": T, "label_smoothing": 1.5}, ValueError, rf"{name}: label_smoothing must be in \[0"),
        ErrorCase((X,), {"target": T, "label_smoothing": "0.1"}, TypeError, f"{name}: label_smoothing must be a real"),
        ErrorCase((X,), {"target": T, "ignore_index": 1.0}, TypeError, f"{name}: ignore_index must be an int"),
        ErrorCase(
            (X,), {"target": np.full((4, 3), 1 / 3), "ignore_index": 0}, ValueError, f"{name}: ignore_index is not"
        ),
        ErrorCase((np.array(1.0),), {"target": np.array(0)}, ValueError, f"{name}: input must be"),
        ErrorCase((np.array([["a"]]),), {"target": T}, TypeError, f"{name}: input must have a boolean, integer"),
        ErrorCase((np.ones((0, 3)),), {"target": T}, ValueError, rf"{name}: target must have shape \(0,\)"),
    ]


def _nll_errors() -> list[ErrorCase]:
    name = "nll_loss"
    return [
        ErrorCase((X,), {"target": T.astype(float)}, TypeError, f"{name}: target must be integer class indices"),
        ErrorCase((X,), {"target": T[:, None]}, ValueError, rf"{name}: target must have shape \(4,\)"),
        ErrorCase((X,), {"target": np.array([0, 5, 1, 1])}, ValueError, f"{name}: target 5 is out of bounds"),
        ErrorCase((X,), {"target": T, "weight": np.ones((3, 1))}, ValueError, f"{name}: weight must have shape"),
        ErrorCase((X,), {"target": T, "reduction": "max"}, ValueError, f"{name}: reduction must be one of"),
        ErrorCase((X,), {"target": T, "ignore_index": None}, TypeError, f"{name}: ignore_index must be an int"),
    ]


def _mse_errors() -> list[ErrorCase]:
    name = "mse_loss"
    return [
        ErrorCase((X, np.ones(4)), {}, ValueError, rf"{name}: input of shape \(4, 3\) and target of shape \(4,\)"),
        ErrorCase((X, X), {"reduction": "mean "}, ValueError, f"{name}: reduction must be one of"),
        ErrorCase((X, None), {}, TypeError, f"{name}: target must be a numeric array"),
        ErrorCase((np.array(["a"]), X), {}, TypeError, f"{name}: input must have a boolean, integer"),
    ]


def _bce_errors() -> list[ErrorCase]:
    name = "binary_cross_entropy_with_logits"
    return [
        ErrorCase((X, X[:, :1]), {}, ValueError, rf"{name}: target must have the input's shape \(4, 3\)"),
        ErrorCase((X, X), {"weight": np.ones(4)}, ValueError, rf"{name}: weight of shape \(4,\) does not broadcast"),
        ErrorCase((X, X), {"pos_weight": np.ones((2, 4, 3))}, ValueError, f"{name}: pos_weight of shape"),
        ErrorCase((X, X), {"reduction": "all"}, ValueError, f"{name}: reduction must be one of"),
        ErrorCase((X, "a"), {}, TypeError, f"{name}: target must be a numeric array"),
    ]


# ---------------------------------------------------------------- torch


def _torch_loss(name: str) -> Callable[..., Any] | None:
    """``torch.nn.functional.<name>`` with NumPy in and out (integer targets as int64)."""
    if torch is None:
        return None
    fn = getattr(torch.nn.functional, name)

    def convert(value: Any) -> Any:
        if isinstance(value, np.ndarray):  # np.array keeps 0-d targets 0-d
            return torch.from_numpy(np.array(value, dtype=np.int64 if value.dtype.kind in "iu" else value.dtype))
        return value

    def call(*args: Any, **kwargs: Any) -> np.ndarray:
        target = kwargs.get("target")
        if kwargs.get("reduction") == "none" and target is not None and np.ndim(args[0]) == 1 and np.ndim(target) == 0:
            # torch 2.13 fails on an unbatched class-index target with label smoothing and no
            # reduction; it documents unbatched input as a batch of one, so ask it that way.
            out = call(args[0][None], **{**kwargs, "target": np.asarray(target)[None]})
            return out[0]
        with warnings.catch_warnings():  # mse_loss warns when it broadcasts
            warnings.simplefilter("ignore", UserWarning)
            out = fn(*[convert(a) for a in args], **{k: convert(v) for k, v in kwargs.items()})
        return out.numpy()

    return call


OPS: list[OpInfo] = [
    OpInfo(
        name="cross_entropy",
        op=cross_entropy,
        backward=cross_entropy_backward,
        reference=naive_cross_entropy,
        samples=_ce_samples,
        errors=_ce_errors,
        torch_ref=_torch_loss("cross_entropy"),
    ),
    OpInfo(
        name="nll_loss",
        op=nll_loss,
        backward=nll_loss_backward,
        reference=naive_nll_loss,
        samples=_nll_samples,
        errors=_nll_errors,
        torch_ref=_torch_loss("nll_loss"),
    ),
    OpInfo(
        name="mse_loss",
        op=mse_loss,
        backward=mse_loss_backward,
        reference=naive_mse_loss,
        samples=_mse_samples,
        errors=_mse_errors,
        n_diff=2,
        torch_ref=_torch_loss("mse_loss"),
    ),
    OpInfo(
        name="binary_cross_entropy_with_logits",
        op=binary_cross_entropy_with_logits,
        backward=binary_cross_entropy_with_logits_backward,
        reference=naive_bce_with_logits,
        samples=_bce_samples,
        errors=_bce_errors,
        n_diff=2,
        torch_ref=_torch_loss("binary_cross_entropy_with_logits"),
    ),
]
