"""Fast paths for pooling: non-overlapping windows as a reshape.

When ``kernel_size == stride``, ``dilation == 1`` and there is no padding, the windows tile the
input: ``x[..., :out*k]`` reshaped to ``(N, C, o_1, k_1, o_2, k_2, ...)`` *is* the window view,
with no copy, and the backward pass is the same reshape read the other way (each input cell
belongs to at most one window, so nothing has to be added up).  The general paths in
:mod:`cnnlab.functional._pool` handle every other case.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def tiles_apply(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                full_pads: Sequence[tuple[int, int]]) -> bool:
    """Whether the windows tile the input (kernel == stride, no dilation, no padding)."""
    return (
        tuple(kernel) == tuple(stride)
        and all(d == 1 for d in dilation)
        and all(lo == 0 and hi == 0 for lo, hi in full_pads)
    )


def _tiles(x: np.ndarray, kernel: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """``(N, C, o_1, k_1, ..., o_n, k_n)`` view of the covered part of ``x``."""
    n = len(kernel)
    covered = x[(Ellipsis, *(slice(0, o * k) for o, k in zip(out, kernel, strict=True)))]
    shape = x.shape[: x.ndim - n] + tuple(v for o, k in zip(out, kernel, strict=True) for v in (o, k))
    return covered.reshape(shape)


def _kernel_axes(n: int) -> tuple[int, ...]:
    return tuple(3 + 2 * i for i in range(n))


def _untile(grad_tiles: np.ndarray, x_shape: Sequence[int], kernel: Sequence[int], out: Sequence[int]
            ) -> np.ndarray:
    """Put a ``(N, C, o_1, k_1, ...)`` gradient back into an array of ``x_shape`` (zeros in the
    uncovered tail)."""
    n = len(kernel)
    covered = tuple(o * k for o, k in zip(out, kernel, strict=True))
    flat = grad_tiles.reshape(tuple(x_shape[: len(x_shape) - n]) + covered)
    if covered == tuple(x_shape[len(x_shape) - n:]):
        return flat
    grad = np.zeros(tuple(x_shape), dtype=grad_tiles.dtype)
    grad[(Ellipsis, *(slice(0, c) for c in covered))] = flat
    return grad


def avg_tiles(x: np.ndarray, kernel: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """Window sums of the tiling windows, shape ``(N, C, *out)``."""
    return _tiles(x, kernel, out).sum(axis=_kernel_axes(len(kernel)))


def avg_tiles_backward(per_window: np.ndarray, x_shape: Sequence[int], kernel: Sequence[int]) -> np.ndarray:
    """Adjoint of the window sum: every cell of window ``p`` gets ``per_window[p]``."""
    n = len(kernel)
    out = per_window.shape[per_window.ndim - n:]
    index = (Ellipsis,) + tuple(x for _ in range(n) for x in (slice(None), None))
    expanded = per_window[index]
    shape = per_window.shape[: per_window.ndim - n] + tuple(v for o, k in zip(out, kernel, strict=True)
                                                          for v in (o, k))
    return _untile(np.broadcast_to(expanded, shape), x_shape, kernel, out)


def max_tiles(x: np.ndarray, kernel: Sequence[int], out: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Maxima of the tiling windows and the flat tap index (row-major in the window) of each.

    Taps are visited in row-major order and a later tap wins only if strictly greater (or NaN),
    so ties keep the first maximum and a NaN window its last NaN, as the general path and
    PyTorch do.
    """
    n = len(kernel)
    view = _tiles(x, kernel, out)
    best = None
    arg = np.zeros(x.shape[: x.ndim - n] + tuple(out), dtype=np.int64)
    check_nan = x.dtype.kind == "f"
    for flat, tap in enumerate(np.ndindex(*kernel)):
        index = (Ellipsis,) + tuple(v for t in tap for v in (slice(None), t))
        value = view[index]
        if best is None:
            best = value.copy()
            continue
        take = value > best
        if check_nan:
            take |= np.isnan(value)
        np.copyto(best, value, where=take)
        arg[take] = flat
    return best, arg


def max_tiles_backward(grad_out: np.ndarray, arg: np.ndarray, x_shape: Sequence[int], kernel: Sequence[int]
                       ) -> np.ndarray:
    """Send each window's gradient to its chosen cell (windows do not overlap: no sums)."""
    n = len(kernel)
    out = grad_out.shape[grad_out.ndim - n:]
    shape = grad_out.shape[: grad_out.ndim - n] + tuple(v for o, k in zip(out, kernel, strict=True) for v in (o, k))
    grad = np.zeros(shape, dtype=grad_out.dtype)
    for flat, tap in enumerate(np.ndindex(*kernel)):
        index = (Ellipsis,) + tuple(v for t in tap for v in (slice(None), t))
        np.copyto(grad[index], grad_out, where=arg == flat)
    return _untile(grad, x_shape, kernel, out)
