"""1x1 convolutions of stride 1 as batched matrix products, one per sample: no column matrix.

A 1x1 kernel's column matrix is the input itself, channel-major: ``y[b] = W @ x[b]`` needs no
copy when each sample's product is taken as it stands, and its result is channel-first as it
comes.  The GEMM path (:mod:`cnnlab.functional._conv_kernels`) takes these products for layers
with at least :data:`MIN_POSITIONS` output positions per sample (:func:`takes`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cnnlab.functional import _blas

# A 1x1 layer takes its batched products (one per sample) from this many output positions per
# sample; with fewer, each product is too narrow for the BLAS, and the column matrix (for a 1x1
# kernel, the input channel-major: a copy of it) gives one large product instead.  Measured on 2
# cores, forward+backward, batched / columns / torch (ms): N16 C512 7x7 -> 1024 20.5 / 17.1 /
# 16.9; N8 C256 14x14 -> 512 9.60 / 9.60 / 9.85; N128 C24 14x14 -> 48 4.77 / 4.55 / 4.32; N64 C64
# 28x28 -> 128 30.5 / 34.8 / 29.4; N32 C128 28x28 -> 64 13.6 / 15.3 / 14.7.
MIN_POSITIONS = 256


def is_pointwise(kernel: Sequence[int], stride: Sequence[int]) -> bool:
    """Whether a convolution is 1x1 (every kernel size 1) with stride 1."""
    return all(k == 1 for k in kernel) and all(s == 1 for s in stride)


def takes(kernel: Sequence[int], stride: Sequence[int], out: Sequence[int]) -> bool:
    """Whether the GEMM path computes this convolution by the batched products below: 1x1, stride
    1, and at least :data:`MIN_POSITIONS` output positions per sample (``out``: the output's spatial
    sizes)."""
    return is_pointwise(kernel, stride) and math.prod(out) >= MIN_POSITIONS


def forward(x: np.ndarray, weight: np.ndarray, groups: int, bias: np.ndarray | None) -> np.ndarray:
    """A 1x1 convolution as one batched product, ``y[b, g] = W[g] @ x[b, g]``, written channel-first
    as it comes (measured on 2 cores, N64 C64 28x28 -> 128: 13.7 -> 7.5 ms against the
    channel-major column matrix, which needs a transposed copy of the input and of the output)."""
    batch, out_ch = x.shape[0], weight.shape[0]
    w = weight.reshape(groups, out_ch // groups, -1)  # (G, O_g, C_g)
    y = _blas.matmul(w, x.reshape(batch, groups, w.shape[2], -1))  # (N, G, O_g, P)
    if bias is not None:
        y += bias.reshape(groups, -1, 1).astype(y.dtype, copy=False)
    return y.reshape(batch, out_ch, *x.shape[2:])


# The weight gradient of a 1x1 convolution sums per-sample products in chunks of samples whose
# ``(chunk, O, C_g)`` partial results stay under this size.
CHUNK_BYTES = 4 << 20


def backward(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray, groups: int, needs: tuple[bool, bool]
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``grad_x[b, g] = W[g].T @ g[b, g]`` (batched) and ``grad_w[g] = sum_b g[b, g] @ x[b, g].T``:
    summed by the BLAS on each thread (:func:`cnnlab.functional._blas.summed`), or where that does
    not apply batched over a chunk of samples, then summed (measured 8.5 ms against 12.6 ms for the
    one product over channel-major copies of both operands, on the layer above); ``x`` is the input
    the forward read (padded, where it was)."""
    batch, out_ch = x.shape[0], weight.shape[0]
    w = weight.reshape(groups, out_ch // groups, -1)  # (G, O_g, C_g)
    g = grad_out.reshape(batch, groups, w.shape[1], -1)  # (N, G, O_g, P)
    grad_x = grad_w = None
    if needs[0]:
        grad_x = _blas.matmul(w.swapaxes(1, 2), g).reshape(x.shape)
    if needs[1]:
        xs = x.reshape(batch, groups, w.shape[2], -1)
        grad_w = _blas.summed(g, xs.swapaxes(2, 3))  # (each thread's products summed by the BLAS)
        if grad_w is not None:
            return grad_x, grad_w.reshape(weight.shape)
        dtype = np.result_type(grad_out, x)
        step = max(1, CHUNK_BYTES // max(1, w.size * dtype.itemsize))
        grad_w = np.zeros(w.shape, dtype=dtype)
        for start in range(0, batch, step):
            part = _blas.matmul(g[start:start + step], xs[start:start + step].swapaxes(2, 3))
            grad_w += part.sum(axis=0)
        grad_w = grad_w.reshape(weight.shape)
    return grad_x, grad_w
