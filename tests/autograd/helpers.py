"""Helpers of the autograd tests: seeded inputs, a central-difference gradient check, and torch
when it is installed."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import Tensor, no_grad

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def rand(*shape, seed=0, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def gradcheck(fn, *arrays, eps=1e-6, rtol=1e-6, atol=1e-8, seed=1):
    """Compare the engine's gradients of ``<fn(*tensors), g>`` with central differences."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    assert isinstance(out, Tensor) and out.requires_grad
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(g)
    for k, (a, t) in enumerate(zip(arrays, tensors, strict=True)):
        numeric = np.zeros_like(a)
        for idx in np.ndindex(*a.shape):
            values = []
            for sign in (1, -1):
                moved = [b.copy() for b in arrays]
                moved[k][idx] += sign * eps
                with no_grad():
                    values.append(float(np.sum(fn(*[Tensor(b) for b in moved]).data * g)))
            numeric[idx] = (values[0] - values[1]) / (2 * eps)
        assert t.grad is not None and t.grad.shape == a.shape
        np.testing.assert_allclose(t.grad, numeric, rtol=rtol, atol=atol, err_msg=f"input {k}")
