"""Correlation by the FFT: the ``method='fft'`` path of :func:`cnnlab.functional.correlate`.

The valid correlation of a zero-padded signal ``xp = pad(x, (lo, hi))`` with a kernel ``k`` of
(dilated) length ``K`` is a window of the linear convolution of ``x`` with the flipped kernel:

    y[j] = sum_t xp[j + t] * k[t] = sum_t x[j - lo + t] * k[t] = (x * flip(k))[j - lo + K - 1]

so each output index ``j`` reads convolution index ``m = j + K - 1 - lo``.  The convolution is
computed as a *circular* one of period ``L`` (a product of FFTs), which equals the linear one
at index ``m`` as long as no other term ``m + q*L`` of the linear result (support
``[0, n + K - 2]``) is folded onto it.  For the indices wanted, ``m`` in
``[K - 1 - lo, n - 1 + hi]``, that holds when ``L >= n + max(lo, hi)``: ``L = n`` for 'valid'
(not the ``n + K - 1`` of a full linear convolution), ``n + K - 1`` for 'full', and about
``n + K/2`` for 'same'.  ``L`` is then rounded up to a length the FFT is fast on.

Real inputs use real FFTs (half the work); float32 stays float32 (single-precision FFTs), float64
float64.  Transforms are done one axis at a time so that the zero padding of a small kernel costs
nothing on the axes not yet transformed, and the inverse only finishes the rows that are kept.
A long 1-d signal is cut into overlapping blocks instead (overlap-save, :func:`tile_lengths`), so
that each FFT stays in the cache.
SciPy's :mod:`scipy.fft` is used when installed (its ``workers`` follow
:func:`cnnlab.functional.get_num_threads` for transforms of at least :data:`PARALLEL_CELLS`
cells, one worker below), else :mod:`numpy.fft`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._windows import dilate, flip

try:
    import scipy.fft as _scipy_fft
except ImportError:  # pragma: no cover - exercised where SciPy is absent
    _scipy_fft = None


def _smooth_len(n: int) -> int:
    """The smallest ``m >= n`` whose only prime factors are 2, 3 and 5 (NumPy's fast lengths)."""
    best = 1 << max(n - 1, 0).bit_length()  # a power of two is always a candidate
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fast_len(n: int) -> int:
    """A length ``>= n`` on which the FFT in use is fast (``scipy.fft.next_fast_len`` for real
    transforms, else 2-3-5-smooth).

    Examples
    --------
    >>> fast_len(512), fast_len(513) in (520, 525, 540)
    (512, True)
    """
    if _scipy_fft is not None:
        return int(_scipy_fft.next_fast_len(n, real=True))
    return _smooth_len(n)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """float16 is transformed in float32 (no half-precision FFT); other floats keep theirs."""
    return np.dtype(np.float32) if dtype.itemsize < 4 else dtype


# Overlap-save blocks: BLOCK_FACTOR kernel lengths each (at least MIN_BLOCK cells), used on signals
# longer than TILE_MIN_BLOCKS blocks.
BLOCK_FACTOR = 8
MIN_BLOCK = 1024
TILE_MIN_BLOCKS = 4

# Cells transformed below which the FFTs run on one worker (a 1024x1024 image is the first size
# above): smaller transforms gain little from a second worker, and on a machine whose other cores
# are busy the call waits for the slowest worker to be scheduled again (milliseconds each time).
PARALLEL_CELLS = 1 << 20


def workers(cells: int) -> int:
    """SciPy ``workers`` for a transform of ``cells`` cells: cnnlab's thread count, or 1 if small."""
    return _backend.get_num_threads() if cells >= PARALLEL_CELLS else 1


def _fft_axis(a: np.ndarray, n: int, axis: int, real: bool, threads: int) -> np.ndarray:
    if _scipy_fft is not None:
        fn = _scipy_fft.rfft if real else _scipy_fft.fft
        return fn(a, n=n, axis=axis, workers=threads, overwrite_x=not real)
    return (np.fft.rfft if real else np.fft.fft)(a, n=n, axis=axis)


def _ifft_axis(a: np.ndarray, n: int, axis: int, real: bool, threads: int) -> np.ndarray:
    if _scipy_fft is not None:
        fn = _scipy_fft.irfft if real else _scipy_fft.ifft
        return fn(a, n=n, axis=axis, workers=threads, overwrite_x=True)
    return (np.fft.irfft if real else np.fft.ifft)(a, n=n, axis=axis)


def _forward(a: np.ndarray, lengths: Sequence[int], threads: int) -> np.ndarray:
    """The real n-d FFT of ``a`` zero-padded to ``lengths``, one axis at a time (last first)."""
    last = a.ndim - 1
    spec = _fft_axis(a, lengths[last], last, True, threads)
    for axis in range(last - 1, -1, -1):
        spec = _fft_axis(spec, lengths[axis], axis, False, threads)
    return spec


def tile_lengths(x_shape: Sequence[int], kernel_shape: Sequence[int], pads: Sequence[tuple[int, int]]
                 ) -> tuple[int, ...] | None:
    """Block lengths for overlap-save (None where one FFT over the whole signal is better).

    An axis is cut into blocks of ``B = fast_len(BLOCK_FACTOR * K)`` cells (each block keeps
    ``B - K + 1`` outputs) when the padded signal is longer than ``TILE_MIN_BLOCKS * B`` *and* the
    signal is 1-d: a long 1-d FFT leaves the cache (a 10**6-point one costs three times as much
    per point as a 8192-point one), while the rows and columns of an image fit, so images gain
    nothing from blocks.  Other axes get one block of their whole padded length.
    """
    if len(x_shape) != 1:
        return None
    (n,), (kd,), ((lo, hi),) = x_shape, kernel_shape, pads
    block = fast_len(max(BLOCK_FACTOR * kd, MIN_BLOCK))
    if n + lo + hi < TILE_MIN_BLOCKS * block:
        return None
    return (block,)


def tiled_cost(x_shape: Sequence[int], kernel_shape: Sequence[int], pads: Sequence[tuple[int, int]],
               blocks: Sequence[int]) -> float:
    """``cells * log2(block cells)`` summed over the overlap-save blocks."""
    tiles = 1
    for n, kd, (lo, hi), b in zip(x_shape, kernel_shape, pads, blocks, strict=True):
        tiles *= -(-(n + lo + hi - kd + 1) // (b - kd + 1))
    cells = math.prod(blocks)
    return float(tiles * cells) * max(math.log2(cells), 1.0)


def plan(x_shape: Sequence[int], kernel_shape: Sequence[int], pads: Sequence[tuple[int, int]]
         ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(lengths, first, count)``: the FFT length per axis, and the first convolution index and
    the number of stride-1 outputs kept (``kernel_shape`` is the dilated kernel's)."""
    lengths, first, count = [], [], []
    for n, kd, (lo, hi) in zip(x_shape, kernel_shape, pads, strict=True):
        lengths.append(fast_len(n + max(lo, hi, 0)))
        first.append(kd - 1 - lo)
        count.append(n + lo + hi - kd + 1)
    return tuple(lengths), tuple(first), tuple(count)


def fft_cost(x_shape: Sequence[int], kernel_shape: Sequence[int], pads: Sequence[tuple[int, int]]) -> float:
    """``L log2 L`` with ``L`` the number of cells transformed (the model of the FFT's time), for
    the blocks of overlap-save where :func:`correlate_fft` uses them."""
    blocks = tile_lengths(x_shape, kernel_shape, pads)
    if blocks is not None:
        return tiled_cost(x_shape, kernel_shape, pads, blocks)
    lengths, _, _ = plan(x_shape, kernel_shape, pads)
    size = float(math.prod(lengths))
    return size * max(np.log2(size), 1.0)


def correlate_fft(x: np.ndarray, k: np.ndarray, pads: Sequence[tuple[int, int]], stride: Sequence[int],
                  dilation: Sequence[int], dtype: Any) -> np.ndarray:
    """``y[j] = sum_t pad(x, pads)[j*stride + t*dilation] * k[t]`` by FFTs, in ``dtype`` (floating).

    Padding up to ``dilation*(k - 1)`` per side (all the 'valid', 'same' and 'full' modes need)
    is implicit in the FFT length; only padding beyond that (a kernel smaller than a side's
    padding, as in a gradient) is added to ``x`` first.
    """
    dtype = np.dtype(dtype)
    work = _compute_dtype(dtype)
    kd = dilate(np.asarray(k, dtype=work), tuple(dilation))
    x = np.asarray(x, dtype=work)
    blocks = tile_lengths(x.shape, kd.shape, pads)
    if blocks is not None:
        return _correlate_blocks(x, kd, pads, stride, blocks, dtype)
    extra = tuple((max(lo - e + 1, 0), max(hi - e + 1, 0)) for e, (lo, hi) in zip(kd.shape, pads, strict=True))
    if any(lo or hi for lo, hi in extra):
        x = np.pad(x, extra)
        pads = tuple((lo - a, hi - b) for (lo, hi), (a, b) in zip(pads, extra, strict=True))
    lengths, first, count = plan(x.shape, kd.shape, pads)
    threads = workers(math.prod(lengths))
    spec = _forward(x, lengths, threads)
    spec *= _forward(flip(kd, kd.ndim), lengths, threads)
    last = x.ndim - 1
    for axis in range(last):  # inverse on the leading axes, keeping only the wanted rows
        spec = _ifft_axis(spec, lengths[axis], axis, False, threads)
        keep = slice(first[axis], first[axis] + count[axis], stride[axis])
        spec = spec[(slice(None),) * axis + (keep,)]
    y = _ifft_axis(spec, lengths[last], last, True, threads)
    y = y[(Ellipsis, slice(first[last], first[last] + count[last], stride[last]))]
    return np.ascontiguousarray(y, dtype=dtype)


def _correlate_blocks(x: np.ndarray, kd: np.ndarray, pads: Sequence[tuple[int, int]], stride: Sequence[int],
                      blocks: Sequence[int], dtype: np.dtype) -> np.ndarray:
    """Overlap-save: the padded signal cut into overlapping blocks of ``B`` cells, ``S = B - K + 1``
    apart; each block's circular convolution with the flipped kernel is exact on its last ``S``
    cells (``m >= K - 1``: no wrapped term reaches them), which are the block's ``S`` outputs.
    All blocks go through one batched FFT."""
    n = x.ndim
    count = [size + lo + hi - e + 1 for size, (lo, hi), e in zip(x.shape, pads, kd.shape, strict=True)]
    step = [b - e + 1 for b, e in zip(blocks, kd.shape, strict=True)]
    tiles = [-(-c // s) for c, s in zip(count, step, strict=True)]
    need = [(t - 1) * s + b for t, s, b in zip(tiles, step, blocks, strict=True)]
    xp = np.zeros(need, dtype=x.dtype)  # the padded signal, zero-extended to whole blocks
    xp[tuple(slice(lo, lo + size) for (lo, _), size in zip(pads, x.shape, strict=True))] = x
    view = np.lib.stride_tricks.sliding_window_view(xp, tuple(blocks))
    view = view[tuple(slice(0, None, s) for s in step)][tuple(slice(0, t) for t in tiles)]  # (T..., B...)
    axes = tuple(range(n, 2 * n))
    threads = workers(math.prod(tiles) * math.prod(blocks))
    if _scipy_fft is not None:
        spec = _scipy_fft.rfftn(view, axes=axes, workers=threads)
        spec *= _scipy_fft.rfftn(flip(kd, n), s=tuple(blocks), axes=tuple(range(n)), workers=threads)
        y = _scipy_fft.irfftn(spec, s=tuple(blocks), axes=axes, workers=threads, overwrite_x=True)
    else:
        spec = np.fft.rfftn(view, axes=axes)
        spec *= np.fft.rfftn(flip(kd, n), s=tuple(blocks), axes=tuple(range(n)))
        y = np.fft.irfftn(spec, s=tuple(blocks), axes=axes)
    y = y[(Ellipsis, *(slice(e - 1, e - 1 + s) for e, s in zip(kd.shape, step, strict=True)))]  # (T..., S...)
    order = [i for axis in range(n) for i in (axis, n + axis)]  # (T0, S0, T1, S1, ...)
    y = y.transpose(order).reshape([t * s for t, s in zip(tiles, step, strict=True)])
    y = y[tuple(slice(0, c, st) for c, st in zip(count, stride, strict=True))]
    return np.ascontiguousarray(y, dtype=dtype)
