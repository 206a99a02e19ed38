"""Window machinery: padding (and its adjoint), sliding-window views, scatter-add, dilation.

This is the one home of the code that turns an array into its windows.  Every function works on
the last ``len(kernel)`` axes ("spatial" axes) and leaves the leading axes alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cnnlab.functional._args import PadPairs

PAD_MODES = ("zeros", "reflect", "replicate", "circular")


def _pad_index(size: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """Source index in the unpadded axis for every position of the padded axis (lo, hi >= 0)."""
    pos = np.arange(-lo, size + hi)
    if mode == "replicate":
        return np.clip(pos, 0, size - 1)
    if mode == "circular":
        return pos % size
    if mode == "reflect":
        # Reflect about the edge samples without repeating them: -1 -> 1, size -> size - 2.
        if size == 1:
            return np.zeros_like(pos)
        period = 2 * (size - 1)
        p = np.abs(pos) % period
        return np.where(p < size, p, period - p)
    raise ValueError(f"pad: mode must be one of {list(PAD_MODES)}, got {mode!r}")


def pad(x: np.ndarray, pads: PadPairs, mode: str = "zeros", value: float = 0) -> np.ndarray:
    """Pad the last ``len(pads)`` axes of ``x``.

    ``mode`` is ``'zeros'`` (constant ``value``), ``'reflect'``, ``'replicate'`` or ``'circular'``
    with PyTorch's meanings.  Negative entries crop (used internally by transposed convolutions):
    the positive amounts are padded first, then the negative ones cropped, so every axis ends up
    with ``size + lo + hi`` cells even when a crop is larger than the input.
    """
    n = len(pads)
    lead = x.ndim - n
    pos = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)
    if any(lo or hi for lo, hi in pos):
        if mode == "zeros" and value == 0:  # calloc'd zeros and one copy of the interior
            out = np.zeros(x.shape[:lead] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[lead:], pos,
                                                                                      strict=True)), x.dtype)
            out[(Ellipsis, *(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[lead:], pos, strict=True)))] = x
            x = out
        elif mode == "zeros":
            x = np.pad(x, ((0, 0),) * lead + pos, mode="constant", constant_values=value)
        else:
            for i, (lo, hi) in enumerate(pos):
                if lo or hi:
                    x = _gather_border(x, lead + i, lo, hi, mode)
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        crop = tuple(slice(max(-lo, 0), x.shape[lead + i] - max(-hi, 0)) for i, (lo, hi) in enumerate(pads))
        x = x[(Ellipsis, *crop)]
    return x


def pad_backward(grad: np.ndarray, in_spatial: Sequence[int], pads: PadPairs, mode: str) -> np.ndarray:
    """Adjoint of :func:`pad`: fold the gradient of the padded array back onto the input.

    In reverse order of :func:`pad`: cropped cells get a zero gradient back, then zero padding
    just drops the border, while the other modes copied input cells into the border, so those
    border gradients are added back to their source cells (one border cell at a time, so a cell
    used several times gets each).
    """
    n = len(pads)
    lead = grad.ndim - n
    if mode == "zeros" and all(lo >= 0 and hi >= 0 for lo, hi in pads):  # drop the border: one copy
        inner = tuple(slice(lo, lo + size) for (lo, _), size in zip(pads, in_spatial, strict=True))
        return np.ascontiguousarray(grad[(Ellipsis, *inner)])
    for i, (lo, hi) in enumerate(pads):
        axis = lead + i
        clo, chi = max(-lo, 0), max(-hi, 0)
        if clo or chi:
            widths = [(0, 0)] * grad.ndim
            widths[axis] = (clo, chi)
            grad = np.pad(grad, widths)
        plo, phi = max(lo, 0), max(hi, 0)
        if plo or phi:
            size = in_spatial[i]
            if mode == "zeros":
                grad = np.take(grad, np.arange(plo, plo + size), axis=axis)
            else:
                grad = _fold_border(grad, axis, size, plo, phi, mode)
    return grad


def _at(axis: int, index: int | slice) -> tuple:
    """The index tuple that takes ``index`` along ``axis``."""
    return (slice(None),) * axis + (index,)


# The border cells of a padded axis are few (the padding), its interior many: the interior is one
# copy, and each border cell one slab copied from (or, backward, added into) its source.  Before,
# a gather by ``np.take`` and a scatter by ``np.add.at`` handled every cell by index: a reflect-
# padded N32 C32 56x56 conv spent 177 ms of its 406 ms forward+backward in ``np.add.at`` (89 per axis).
def _border(size: int, lo: int, hi: int, mode: str) -> list[tuple[int, int]]:
    """``(position, source)`` of each border cell of a padded axis, low side first."""
    source = _pad_index(size, lo, hi, mode)
    return [(q, int(source[q])) for q in (*range(lo), *range(lo + size, lo + size + hi))]


def _gather_border(x: np.ndarray, axis: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """``x`` padded by ``(lo, hi)`` cells along ``axis`` in ``mode`` (not ``'zeros'``)."""
    size = x.shape[axis]
    shape = list(x.shape)
    shape[axis] = size + lo + hi
    out = np.empty(shape, dtype=x.dtype)
    out[_at(axis, slice(lo, lo + size))] = x
    for q, src in _border(size, lo, hi, mode):
        out[_at(axis, q)] = x[_at(axis, src)]
    return out


def _fold_border(grad: np.ndarray, axis: int, size: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """Adjoint of :func:`_gather_border`: the interior's gradient, with each border cell's added
    to its source cell (in the order of the border cells, low side first)."""
    folded = np.array(grad[_at(axis, slice(lo, lo + size))], copy=True)
    for q, src in _border(size, lo, hi, mode):
        folded[_at(axis, src)] += grad[_at(axis, q)]
    return folded


def windows(
    x: np.ndarray, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> np.ndarray:
    """Read-only strided view of shape ``(*lead, *out, *kernel)`` over the last ``n`` axes.

    ``view[..., o_1..o_n, k_1..k_n] = x[..., o_1*s_1 + k_1*d_1, ..., o_n*s_n + k_n*d_n]`` with
    ``out_i = floor((size_i - d_i*(k_i-1) - 1) / s_i) + 1``.  No data is copied.
    """
    n = len(kernel)
    lead = x.ndim - n
    sizes = x.shape[lead:]
    out = tuple(
        (size - d * (k - 1) - 1) // s + 1
        for size, k, s, d in zip(sizes, kernel, stride, dilation, strict=True)
    )
    st = x.strides[lead:]
    shape = x.shape[:lead] + out + tuple(kernel)
    strides = (
        x.strides[:lead]
        + tuple(a * s for a, s in zip(st, stride, strict=True))
        + tuple(a * d for a, d in zip(st, dilation, strict=True))
    )
    return np.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)


def windows_backward(
    grad_windows: np.ndarray,
    padded_spatial: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> np.ndarray:
    """Adjoint of :func:`windows`: scatter-add window gradients into an array of the padded shape.

    One vectorised add per kernel tap (a loop over taps, never over output positions).
    """
    n = len(kernel)
    lead_shape = grad_windows.shape[: grad_windows.ndim - 2 * n]
    out = grad_windows.shape[len(lead_shape) : len(lead_shape) + n]
    result = np.zeros(lead_shape + tuple(padded_spatial), dtype=grad_windows.dtype)
    for tap in np.ndindex(*kernel):
        target = tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s)
            for t, d, o, s in zip(tap, dilation, out, stride, strict=True)
        )
        result[(Ellipsis, *target)] += grad_windows[(Ellipsis, *tap)]
    return result


def dilate(x: np.ndarray, factor: Sequence[int]) -> np.ndarray:
    """Insert ``factor - 1`` zeros between neighbouring elements of the last ``len(factor)`` axes."""
    n = len(factor)
    if all(f == 1 for f in factor):
        return x
    lead = x.ndim - n
    shape = x.shape[:lead] + tuple(
        (size - 1) * f + 1 for size, f in zip(x.shape[lead:], factor, strict=True)
    )
    out = np.zeros(shape, dtype=x.dtype)
    out[(Ellipsis, *(slice(None, None, f) for f in factor))] = x
    return out


def flip(x: np.ndarray, n: int) -> np.ndarray:
    """Reverse the last ``n`` axes (turns a correlation kernel into a convolution kernel)."""
    return x[(Ellipsis, *(slice(None, None, -1),) * n)]


def im2col(
    xp: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Windows of a padded batched input as one matrix per group and sample.

    Returns ``cols`` of shape ``(groups, N, C_g * K, P)`` (``K`` kernel taps, ``P`` output
    positions) with ``cols[g, b, c*K + t, p] = xp[b, g*C_g + c, p*stride + t*dilation]``, and the
    output spatial shape.  Output positions stay the fastest axis, as they are in ``xp``, so the
    copy reads memory in order and ``W @ cols[g, b]`` is already channel-first.
    """
    n = len(kernel)
    batch, channels = xp.shape[:2]
    view = windows(xp, kernel, stride, dilation)  # (N, C, *out, *k)
    out = view.shape[2 : 2 + n]
    view = view.reshape(batch, groups, channels // groups, *out, *kernel)
    # -> (G, N, C_g, *k, *out): the copy made here is the im2col matrix
    order = (1, 0, 2, *range(3 + n, 3 + 2 * n), *range(3, 3 + n))
    cols = view.transpose(order).reshape(groups, batch, -1, int(math.prod(out)))
    return cols, out
