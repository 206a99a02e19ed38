"""Registry entries for the activations: relu, leaky_relu, elu, gelu, sigmoid, tanh, softmax and
log_softmax.

Conventions for the generic tests:

- ``reference`` is the element-by-element loop from ``_naive`` with the op's signature.
- ``torch_ref`` is the same call through ``torch.nn.functional`` (NumPy in, NumPy out).
- Float samples keep every entry at least 0.05 away from 0, the kink of relu, leaky_relu and
  elu, so that central differences are valid; kinks are tested on their own in
  ``test_activation.py``.
- Only relu is exact on integers (``exact_int``); the other ops yield no integer samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cnnlab.functional._activation import (
    elu,
    elu_backward,
    leaky_relu,
    leaky_relu_backward,
    relu,
    relu_backward,
)
from cnnlab.functional._naive import (
    naive_elu,
    naive_gelu,
    naive_leaky_relu,
    naive_log_softmax,
    naive_relu,
    naive_sigmoid,
    naive_softmax,
    naive_tanh,
)
from cnnlab.functional._smooth import gelu, gelu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward
from cnnlab.functional._softmax import log_softmax, log_softmax_backward, softmax, softmax_backward
from tests.functional.opinfo import ErrorCase, OpInfo, Sample, rand, to_torch, torch

SHAPES: list[tuple[int, ...]] = [(7,), (3, 5), (2, 3, 4), (2, 3, 4, 5)]

# (shape, dim) for softmax and log_softmax: every axis of every rank, positive and negative.
SOFTMAX_DIMS: list[tuple[tuple[int, ...], int]] = [
    ((7,), 0),
    ((7,), -1),
    ((3, 5), 1),
    ((3, 5), -2),
    ((2, 3, 4), 0),
    ((2, 3, 4), 1),
    ((2, 3, 4), -1),
    ((2, 3, 4, 5), 1),
    ((2, 3, 4, 5), -1),
]


def away_from_kink(x: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """Push entries with ``|x| < margin`` out to ``+-(|x| + margin)``, keeping their sign."""
    near = np.abs(x) < margin
    return np.where(near, np.where(x < 0, x - margin, x + margin), x).astype(x.dtype)


def _float_samples(dtype: np.dtype) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    for i, shape in enumerate(SHAPES):
        yield shape, away_from_kink(rand(shape, dtype, seed=i))


def _elementwise_samples(options: list[dict[str, Any]]) -> Callable[[np.dtype], Iterator[Sample]]:
    """Every shape with every option set; wider inputs (x3) for the last option on rank >= 3."""

    def samples(dtype: np.dtype) -> Iterator[Sample]:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            return
        for shape, x in _float_samples(dtype):
            for kwargs in options:
                yield Sample((x,), dict(kwargs), desc=f"{len(shape)}-D")
            if len(shape) >= 3:
                yield Sample(((x * 3).astype(dtype),), dict(options[-1]), desc=f"{len(shape)}-D wide")

    return samples


def _relu_samples(dtype: np.dtype) -> Iterator[Sample]:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        for shape, x in _float_samples(dtype):
            yield Sample((x,), desc=f"{len(shape)}-D")
    else:  # integers (zeros included: the kink does not matter for exact values)
        for i, shape in enumerate(SHAPES):
            yield Sample((rand(shape, dtype, seed=10 + i),), desc=f"{len(shape)}-D int")
        yield Sample((np.array([[2, 0], [3, 5]], dtype=dtype),), desc="lecture conv output")


def _softmax_samples(dtype: np.dtype) -> Iterator[Sample]:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return
    for i, (shape, dim) in enumerate(SOFTMAX_DIMS):
        x = rand(shape, dtype, seed=20 + i)
        if i % 3 == 2:  # a wider spread: some probabilities near 0 and 1
            x = (x * 5).astype(dtype)
        yield Sample((x,), {"dim": dim}, desc=f"{len(shape)}-D dim={dim}")


def _common_errors(name: str, kwargs: dict[str, Any]) -> list[ErrorCase]:
    return [
        ErrorCase((np.array([["a", "b"]]),), dict(kwargs), TypeError, f"{name}: x must have a boolean, integer"),
        ErrorCase((np.ones(2, dtype=complex),), dict(kwargs), TypeError, f"{name}: x must have a boolean"),
        ErrorCase((None,), dict(kwargs), TypeError, f"{name}: x must be a numeric array"),
        ErrorCase(([[1.0, 2.0], [3.0]],), dict(kwargs), ValueError, f"{name}: x must be a rectangular"),
        ErrorCase((np.array(["2020"], dtype="datetime64[s]"),), dict(kwargs), TypeError,
                  f"{name}: x must have a boolean"),
    ]


def _errors_for(name: str, required: dict[str, Any], extra: list[ErrorCase]) -> Callable[[], list[ErrorCase]]:
    return lambda: _common_errors(name, required) + extra


X = np.linspace(-1.0, 1.0, 6).reshape(2, 3)


def _scalar_errors(name: str, arg: str) -> list[ErrorCase]:
    return [
        ErrorCase((X,), {arg: "0.1"}, TypeError, f"{name}: {arg} must be a real number, got '0.1'"),
        ErrorCase((X,), {arg: 1j}, TypeError, f"{name}: {arg} must be a real number"),
        ErrorCase((X,), {arg: None}, TypeError, f"{name}: {arg} must be a real number"),
        ErrorCase((X,), {arg: True}, TypeError, f"{name}: {arg} must be a real number"),
        ErrorCase((X,), {arg: float("nan")}, ValueError, f"{name}: {arg} must be a real number, got nan"),
    ]


def _dim_errors(name: str) -> list[ErrorCase]:
    return [
        ErrorCase((X,), {"dim": 5}, ValueError, rf"{name}: dim must be in \[-2, 1\] for a 2-D input, got 5"),
        ErrorCase((X,), {"dim": -3}, ValueError, rf"{name}: dim must be in \[-2, 1\] for a 2-D input, got -3"),
        ErrorCase((X,), {"dim": 1.0}, TypeError, f"{name}: dim must be an int, got 1.0"),
        ErrorCase((X,), {"dim": None}, TypeError, f"{name}: dim must be an int, got None"),
        ErrorCase((X,), {"dim": True}, TypeError, f"{name}: dim must be an int"),
    ]


_GELU_ERRORS = [
    ErrorCase(
        (X,), {"approximate": "fast"}, ValueError, r"gelu: approximate must be one of \['none', 'tanh'\], got 'fast'"
    ),
    ErrorCase((X,), {"approximate": None}, TypeError, "gelu: approximate must be one of"),
]


def _torch_fn(fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """Wrap a ``torch.nn.functional`` call: NumPy in, NumPy out."""
    if torch is None or fn is None:
        return None
    return lambda x, **kwargs: fn(to_torch(x), **kwargs).numpy()


_F = torch.nn.functional if torch is not None else None

OPS: list[OpInfo] = [
    OpInfo(
        name="relu",
        op=relu,
        backward=relu_backward,
        reference=naive_relu,
        samples=_relu_samples,
        errors=_errors_for("relu", {}, []),
        exact_int=True,
        torch_ref=_torch_fn(_F and _F.relu),
    ),
    OpInfo(
        name="leaky_relu",
        op=leaky_relu,
        backward=leaky_relu_backward,
        reference=naive_leaky_relu,
        samples=_elementwise_samples([{}, {"negative_slope": 0.2}, {"negative_slope": -0.5}, {"negative_slope": 1.5}]),
        errors=_errors_for("leaky_relu", {}, _scalar_errors("leaky_relu", "negative_slope")),
        torch_ref=_torch_fn(_F and _F.leaky_relu),
    ),
    OpInfo(
        name="elu",
        op=elu,
        backward=elu_backward,
        reference=naive_elu,
        samples=_elementwise_samples([{}, {"alpha": 0.5}, {"alpha": 2.0}]),
        errors=_errors_for("elu", {}, _scalar_errors("elu", "alpha")),
        torch_ref=_torch_fn(_F and _F.elu),
    ),
    OpInfo(
        name="gelu",
        op=gelu,
        backward=gelu_backward,
        reference=naive_gelu,
        samples=_elementwise_samples([{}, {"approximate": "tanh"}]),
        errors=_errors_for("gelu", {}, _GELU_ERRORS),
        torch_ref=_torch_fn(_F and _F.gelu),
    ),
    OpInfo(
        name="sigmoid",
        op=sigmoid,
        backward=sigmoid_backward,
        reference=naive_sigmoid,
        samples=_elementwise_samples([{}]),
        errors=_errors_for("sigmoid", {}, []),
        torch_ref=_torch_fn(torch and torch.sigmoid),
    ),
    OpInfo(
        name="tanh",
        op=tanh,
        backward=tanh_backward,
        reference=naive_tanh,
        samples=_elementwise_samples([{}]),
        errors=_errors_for("tanh", {}, []),
        torch_ref=_torch_fn(torch and torch.tanh),
    ),
    OpInfo(
        name="softmax",
        op=softmax,
        backward=softmax_backward,
        reference=naive_softmax,
        samples=_softmax_samples,
        errors=_errors_for("softmax", {"dim": 0}, _dim_errors("softmax")),
        torch_ref=_torch_fn(_F and _F.softmax),
    ),
    OpInfo(
        name="log_softmax",
        op=log_softmax,
        backward=log_softmax_backward,
        reference=naive_log_softmax,
        samples=_softmax_samples,
        errors=_errors_for("log_softmax", {"dim": 0}, _dim_errors("log_softmax")),
        torch_ref=_torch_fn(_F and _F.log_softmax),
    ),
]
