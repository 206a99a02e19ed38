"""The column matrix of the GEMM convolutions (:mod:`cnnlab.functional._conv_kernels`, their
backward :mod:`cnnlab.functional._conv_backward_kernels`), in the channel-major layout
``cols[c*K + t, b*P + p] = xp[b, c, p*stride + t*dilation]`` of shape ``(C*K, N*P)``, and its
adjoint; and the shape helpers those modules use.

``xp`` is the input zero-padded by ``pads`` (``((lo, hi), ...)`` per spatial dim, or None).  The
compiled kernels (:mod:`cnnlab.functional._numba_kernels`, written for 2-d and 3-d; a 1-d problem
is viewed as 2-d with a height of 1) read the padding as zeros without a padded copy and never
write its gradient; the NumPy fallback pads a copy and crops the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._windows import pad, pad_backward, windows

__all__ = ["col2im_cm", "im2col_cm"]


def _out_shape(xp_shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
               dilation: Sequence[int], pads: Sequence[tuple[int, int]] | None = None) -> tuple[int, ...]:
    """The output size of ``xp`` (padded further by ``pads``, when given)."""
    return tuple(
        (size - d * (k - 1) - 1) // s + 1
        for size, k, s, d in zip(_with_pads(xp_shape, pads)[2:], kernel, stride, dilation, strict=True)
    )


def _with_pads(shape: Sequence[int], pads: Sequence[tuple[int, int]] | None) -> tuple[int, ...]:
    """``shape`` with ``pads`` added to its spatial dims."""
    if not pads:
        return tuple(shape)
    return (*shape[:2], *(size + lo + hi for size, (lo, hi) in zip(shape[2:], pads, strict=True)))


def _zero_pad(x: np.ndarray, pads: Sequence[tuple[int, int]] | None) -> np.ndarray:
    """A zero-padded copy of ``x`` (``x`` itself without padding): :func:`_windows.pad`."""
    return pad(x, pads) if pads else x


def _crop(grad: np.ndarray, pads: Sequence[tuple[int, int]] | None) -> np.ndarray:
    """The adjoint of :func:`_zero_pad`, the gradient of the unpadded input: :func:`_windows.pad_backward`."""
    if not pads:
        return grad
    inner = [size - lo - hi for size, (lo, hi) in zip(grad.shape[2:], pads, strict=True)]
    return pad_backward(grad, inner, pads, "zeros")


def im2col_cm(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
              pads: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """``cols[c*K + t, b*P + p] = xp[b, c, p*stride + t*dilation]``: shape ``(C*K, N*P)``, where
    ``xp`` is taken zero-padded by ``pads`` (the compiled kernel reads the padding as zeros
    without making a padded copy)."""
    batch, channels = xp.shape[:2]
    n = len(kernel)
    if _backend.use_numba(xp.size * int(math.prod(kernel))) and n <= 2 and xp.dtype.kind in "fi":
        from cnnlab.functional import _numba_kernels as nk

        x2, k2, s2, d2 = _as_2d(xp, kernel, stride, dilation)
        return nk.im2col(x2, k2, s2, d2, _pads2(pads, n))
    if n == 3 and _backend.use_numba(xp.size * int(math.prod(kernel))) and xp.dtype.kind in "fi":
        from cnnlab.functional import _numba_kernels as nk

        return nk.im2col3(xp, tuple(kernel), tuple(stride), tuple(dilation), pads or ((0, 0),) * 3)
    view = windows(_zero_pad(xp, pads), kernel, stride, dilation)  # (N, C, *out, *k)
    out = view.shape[2 : 2 + n]
    order = (1, *range(2 + n, 2 + 2 * n), 0, *range(2, 2 + n))  # (C, *k, N, *out)
    # copied into an array of its own (never a view of the input): a released backward may
    # overwrite it (see _conv_backward_kernels.gemm_grad_x)
    cols = np.empty((channels * int(math.prod(kernel)), batch * int(math.prod(out))), dtype=xp.dtype)
    cols.reshape(channels, *kernel, batch, *out)[...] = view.transpose(order)
    return cols


def col2im_cm(cols: np.ndarray, xp_shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
              dilation: Sequence[int], into: np.ndarray | None = None,
              pads: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Adjoint of :func:`im2col_cm`: add every column entry back to the input cell it came from
    (into a new array, or into the contiguous array ``into`` of shape ``xp_shape``, overwritten);
    entries that came from the padding ``pads`` are dropped."""
    n = len(kernel)
    out = _out_shape(xp_shape, kernel, stride, dilation, pads)
    if _backend.use_numba(cols.size) and n <= 2 and cols.dtype.kind in "fi":
        from cnnlab.functional import _numba_kernels as nk

        shape2 = tuple(xp_shape[:2]) + (1,) * (2 - n) + tuple(xp_shape[2:])
        k2, s2, d2 = _pad2(kernel, 1), _pad2(stride, 1), _pad2(dilation, 1)
        target = None if into is None else into.reshape(shape2)
        result = nk.col2im(cols, shape2, k2, s2, d2, _pad2(out, 1), _pads2(pads, n), into=target)
        return result.reshape(xp_shape)
    if n == 3 and _backend.use_numba(cols.size) and cols.dtype.kind in "fi":
        from cnnlab.functional import _numba_kernels as nk

        return nk.col2im3(cols, tuple(xp_shape), tuple(kernel), tuple(stride), tuple(dilation), out,
                          pads or ((0, 0),) * 3, into=into)
    batch, channels = xp_shape[:2]
    padded = _with_pads(xp_shape, pads)
    grid = cols.reshape(channels, *kernel, batch, *out)
    result = np.zeros((batch, channels, *padded[2:]), dtype=cols.dtype)
    for tap in np.ndindex(*kernel):
        target = tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilation, out, stride, strict=True)
        )
        result[(slice(None), slice(None), *target)] += grid[(slice(None), *tap)].swapaxes(0, 1)
    result = _crop(result, pads)
    if into is None:
        return result
    np.copyto(into.reshape(result.shape), result)
    return into


def _pads2(pads: Sequence[tuple[int, int]] | None, n: int) -> tuple[tuple[int, int], ...]:
    """``pads`` for the 2-d kernels: ``((0, 0), (0, 0))`` for none, a height of 1 unpadded in 1-d."""
    full = tuple(pads) if pads else ((0, 0),) * n
    return ((0, 0),) * (2 - n) + full


def _pad2(values: Sequence[int], fill: int) -> tuple[int, ...]:
    return (fill,) * (2 - len(values)) + tuple(values)


def _as_2d(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> tuple:
    """View a 1-d problem as 2-d with a height of 1 (the Numba kernels are written for 2-d)."""
    if len(kernel) == 2:
        return xp, tuple(kernel), tuple(stride), tuple(dilation)
    return xp[:, :, None, :], _pad2(kernel, 1), _pad2(stride, 1), _pad2(dilation, 1)
