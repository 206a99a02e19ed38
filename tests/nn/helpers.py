"""Shared helpers of the nn tests: the torch oracle, gradient checks, tolerances."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from cnnlab import Tensor
from cnnlab.nn import Module

try:
    import torch
except ImportError:  # pragma: no cover - exercised where torch is absent
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

# (rtol, atol) for comparisons with PyTorch, per dtype
TOL = {np.dtype(np.float32): (1e-5, 1e-6), np.dtype(np.float64): (1e-10, 1e-12)}


def close(actual: Any, expected: Any, dtype: Any, what: str = "") -> None:
    rtol, atol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol, err_msg=what)


def torch_dtype(dtype: Any) -> Any:
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def to_numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy()


def numerical_grad(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``array`` (perturbed in place)."""
    grad = np.zeros_like(array, dtype=np.float64)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        up = f()
        flat[i] = saved - eps
        down = f()
        flat[i] = saved
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_module_gradients(
    module: Module, x: np.ndarray, prepare: Callable[[], None] = lambda: None, rtol: float = 1e-6,
    atol: float = 1e-8,
) -> None:
    """Float64 gradient check of ``module`` at ``x``: the gradients of ``sum(module(x) * G)``
    with respect to ``x`` and every parameter, by backward and by central differences.
    ``prepare()`` runs before every forward (to reset a random generator, say)."""
    rng = np.random.default_rng(123)
    x = np.array(x, dtype=np.float64)
    prepare()
    out = module(Tensor(x))
    weights = rng.standard_normal(out.shape)

    def loss() -> float:
        prepare()
        return float((np.asarray(module(Tensor(x)).data) * weights).sum())

    module.zero_grad()
    xt = Tensor(x, requires_grad=True)
    prepare()
    (module(xt) * weights).sum().backward()
    np.testing.assert_allclose(xt.grad, numerical_grad(loss, x), rtol=rtol, atol=atol, err_msg="grad of input")
    for name, param in module.named_parameters():
        expected = numerical_grad(loss, param.data)
        np.testing.assert_allclose(param.grad, expected, rtol=rtol, atol=atol, err_msg=f"grad of {name}")
