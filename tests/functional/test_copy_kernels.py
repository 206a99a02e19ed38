"""Compiled kernels that move values without arithmetic: zero padding of planes (the implicit
convolution's padded input and upstream gradient) and ReLU's backward from one broadcast value
(a ``sum``'s gradient).  Oracles: ``np.pad`` and ``np.where``, element by element and bit for bit,
on two threads with the parallel threshold at 0 so that every job split is reached."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import Tensor
from cnnlab.functional import _backend

pytestmark = pytest.mark.skipif(not _backend.numba_available(), reason="needs numba")


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setattr(_backend, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setitem(_backend._state, "threads", 2)


@pytest.mark.parametrize("shape, pads", [
    ((3, 4, 5, 6), ((1, 1), (1, 1))), ((2, 3, 7, 4), ((2, 0), (0, 3))), ((1, 5, 1, 1), ((0, 0), (2, 2))),
    ((4, 2, 9), ((3, 1),)), ((2, 2, 3, 3), ((0, 4), (5, 0))), ((0, 3, 4, 4), ((1, 1), (1, 1))),
    # rows of 8 or more float32 values: copied in vectors of 8, the last one overlapping
    ((2, 3, 5, 8), ((1, 2), (3, 1))), ((2, 2, 4, 14), ((1, 1), (1, 1))), ((1, 2, 3, 17), ((0, 0), (0, 0))),
    ((3, 1, 2, 16), ((0, 3), (2, 0))), ((2, 1, 0, 9), ((1, 1), (1, 1))), ((3, 2, 40), ((0, 5),)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pad_planes_is_numpys_zero_padding(two_threads, shape, pads, dtype):
    from cnnlab.functional._numba_kernels import pad_planes

    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    x.reshape(-1)[:1] = np.nan if x.size else 0  # a NaN stays where it is, and the border is zeros
    transposed = np.swapaxes(np.swapaxes(x, -1, -2).copy(), -1, -2)  # the same values, not C-ordered
    for source in (x, transposed, np.broadcast_to(x[:1, :1], shape)):
        got = pad_planes(source, pads)
        want = np.pad(source, ((0, 0), (0, 0), *pads))
        assert got.dtype == x.dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
        assert not np.signbit(got[np.pad(np.zeros(shape, bool), ((0, 0), (0, 0), *pads), constant_values=True)]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("value", [1.0, -2.5, 0.0, np.inf, np.nan])
def test_relu_backward_of_one_broadcast_value(two_threads, dtype, value):
    """``g`` broadcast from one value: the kernel reads that value; the result is ``np.where``'s."""
    from cnnlab.functional._numba_kernels import relu_grad

    y = np.random.default_rng(1).standard_normal((7, 3, 5)).astype(dtype)
    y.reshape(-1)[:4] = [0.0, -0.0, np.nan, np.inf]
    g = np.broadcast_to(np.asarray(value, dtype), y.shape)
    want = np.where(y <= 0, dtype(0), g)
    got = relu_grad(g, y)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    partial = np.broadcast_to(np.arange(5, dtype=dtype), y.shape)  # broadcast, but not one value
    np.testing.assert_array_equal(relu_grad(partial, y), np.where(y <= 0, dtype(0), partial))


def test_gradient_of_a_sum_reaches_a_leaf_as_an_array_of_its_own():
    """``sum``'s backward passes a read-only broadcast view; the leaf's ``.grad`` is still a
    writeable array of its own, and a second backward adds to it."""
    x = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    x.sum().backward()
    assert x.grad.flags.writeable and x.grad.flags.owndata and np.array_equal(x.grad, np.ones((2, 3)))
    x.grad[0, 0] = 5.0
    (x * 2).mean().backward()
    np.testing.assert_allclose(x.grad, np.array([[5, 1, 1], [1, 1, 1]]) + 2 / 6, rtol=1e-6)
