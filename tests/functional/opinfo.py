"""A small operator registry (after PyTorch's OpInfo): per op, its forward, backward, loop
reference, optional torch/SciPy oracles, a sample generator and an error-input generator.

Family modules (``ops_conv.py``, ``ops_pool.py``, ``ops_activation.py``) each define ``OPS``;
generic tests in ``test_registry.py`` loop over :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:  # optional oracles
    import torch
except ImportError:  # pragma: no cover - exercised where torch is absent
    torch = None
try:
    import scipy.signal as scipy_signal
except ImportError:  # pragma: no cover
    scipy_signal = None


@dataclass
class Sample:
    """One call: ``op(*args, **kwargs)``.  ``args`` are the differentiable inputs in order
    (``None`` for an absent optional input such as a bias); ``kwargs`` the rest."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    desc: str = ""

    def __repr__(self) -> str:
        shapes = [None if a is None else np.shape(a) for a in self.args]
        return f"Sample({self.desc or ''} shapes={shapes} kwargs={self.kwargs})"


@dataclass
class ErrorCase:
    """Bad input and the exception (type and message regex) it must raise."""

    args: tuple
    kwargs: dict
    exc: type[Exception]
    match: str


@dataclass
class OpInfo:
    """Everything the generic tests need to know about one operator.

    - ``op(*args, **kwargs)``: the public forward on NumPy arrays.
    - ``backward(grad_out, *args, **kwargs)``: gradients of the differentiable inputs; a tuple
      with one entry per ``args`` entry (``None`` where that input is ``None``), or a bare array
      when ``n_diff == 1``.
    - ``reference(*args, **kwargs)``: the loop reference (from ``_naive``), same signature as op.
    - ``samples(dtype)``: an iterable of :class:`Sample` whose float inputs have ``dtype``
      (for an integer dtype: integer inputs, only if ``exact_int``).
    - ``errors()``: an iterable of :class:`ErrorCase`.
    - ``torch_ref`` / ``scipy_ref``: the same call on the peer library, returning NumPy.
    """

    name: str
    op: Callable[..., Any]
    backward: Callable[..., Any]
    reference: Callable[..., Any]
    samples: Callable[[np.dtype], Iterable[Sample]]
    errors: Callable[[], Iterable[ErrorCase]]
    n_diff: int = 1
    exact_int: bool = False
    torch_ref: Callable[..., Any] | None = None
    scipy_ref: Callable[..., Any] | None = None
    # which sample kwargs scipy supports (scipy_ref is only used where this returns True)
    scipy_ok: Callable[[Sample], bool] = lambda s: True

    def grads(self, grad_out: np.ndarray, sample: Sample) -> tuple:
        out = self.backward(grad_out, *sample.args, **sample.kwargs)
        return out if self.n_diff > 1 else (out,)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def rand(shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    """Random values: floats in [-2, 2), integers in [-5, 5] (uint8 in [0, 255])."""
    g = rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (g.random(shape) * 4 - 2).astype(dtype)
    if dtype == np.uint8:
        return g.integers(0, 256, size=shape).astype(dtype)
    return g.integers(-5, 6, size=shape).astype(dtype)


def as_tuple(value: Any, n: int) -> tuple[int, ...]:
    """``int | sequence`` -> an ``n``-tuple of ints, for the references (written here rather than
    imported from ``cnnlab.functional._args`` so the oracle shares no code with the op)."""
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),) * n


def as_pairs(padding: Any, n: int) -> tuple[tuple[int, int], ...]:
    """``int | tuple of ints | tuple of (lo, hi)`` -> ``n`` ``(lo, hi)`` pairs, for the references."""
    if not isinstance(padding, (tuple, list)):
        return ((int(padding), int(padding)),) * n
    return tuple((int(p[0]), int(p[1])) if isinstance(p, (tuple, list)) else (int(p), int(p)) for p in padding)


def to_torch(a: Any) -> Any:
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))
