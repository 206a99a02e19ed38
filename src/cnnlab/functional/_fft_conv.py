"""Convolution layers by the FFT: the ``method='fft'`` path of :func:`cnnlab.functional.conv`.

A layer's output is, for each sample ``n`` and filter ``o``, a sum over its group's input
channels ``c`` of correlations ``x[n, c] (*) w[o, c]``.  Each correlation becomes a product of
spectra, and the sum over channels a sum of products taken bin by bin, so with the spectra of
every input plane and every filter plane made once, the whole layer is

    Z[n, o, f] = sum_c X[n, c, f] * conj(W[o, c, f])                       (every bin f)

and one inverse transform per output plane: ``C_g`` complex multiply-adds per bin instead of a
kernel's ``K`` taps per output, the transforms' cost shared by all filters (input planes) and all
samples (filter planes).  That is what makes large kernels cheap: a 7x7 layer's forward does 49
multiply-adds per output and channel, its spectra about 4 real ones per bin, whatever the kernel.

The circular correlation of period ``L`` (per axis), ``z[m] = sum_j x[(m + j) mod L] w[j]``, with
``x`` the unpadded input zero-filled to ``L``, gives output ``i`` of stride ``s`` and padding
``lo`` (before) / ``hi`` (after) at ``m = (i*s - lo) mod L`` as long as ``L >= S + max(lo, hi)``
(``S`` the input's length) and ``L`` holds the dilated kernel: every index the window reads is
then either the input's own or a zero of the fill, never another input cell folded onto it
(:func:`cnnlab.functional._fft.plan` derives the same length for one signal).  The same period
serves the backward:

    grad_x:  GX[n, c, f] = sum_o G[n, o, f] * W[o, c, f]          (a circular convolution)
    grad_w:  GW[o, c, f] = sum_n conj(G[n, o, f]) * X[n, c, f]    (a correlation; then the first
                                                                     taps, every ``d``-th dilated)

with ``G`` the spectrum of the upstream gradient placed at the forward's indices ``(i*s - lo) mod
L``.  The forward keeps ``X`` and ``W`` for them, so the backward makes one transform per
upstream plane and one inverse per gradient plane.

Float32 layers of 1 or 2 spatial dims with periods up to :data:`DENSE_MAX_PERIOD` run all of it
compiled (:mod:`cnnlab.functional._numba_fft`: dense transforms written in the products' packed
layout, their inverses at the outputs' positions only, the products by register blocks) where
Numba is in use.  Others transform by :mod:`scipy.fft` when installed, else :mod:`numpy.fft`
(:mod:`cnnlab.functional._fft` picks; real-to-complex along the last axis), and multiply by the
compiled products (complex64) or one batched complex matrix product per bin (``numpy.matmul``).

Exactness: the FFT rounds (its error grows with ``log L``, not with the taps, and on normal values
it is below the implicit kernels': 7x7 layers of 32 channels, 2.6e-7 of the largest output against
1.7e-6), so integer inputs, and any input or weight that is not finite (one NaN would reach every
output through the transforms), do not come here (:func:`applies`): they run the exact paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cnnlab.functional import _backend, _fft
from cnnlab.functional._columns import _out_shape
from cnnlab.functional._windows import dilate

PadPairs = tuple[tuple[int, int], ...]


class Spectra(NamedTuple):
    """What an FFT forward keeps for its backward: the spectra of the input (``x_spec``) and of the
    dilated weight (``w_spec``), complex ``(N, C, *bins)`` and ``(O, C_g, *bins)``, or packed by
    the compiled transforms (``packed``: their count of 16-bin chunks), and the periods."""

    x_spec: np.ndarray
    w_spec: np.ndarray
    lengths: tuple[int, ...]
    x_spatial: tuple[int, ...]
    packed: int = 0
    dtype: np.dtype = np.dtype(np.float32)


def applies(x: np.ndarray, weight: np.ndarray) -> bool:
    """Whether the FFT path takes this call: float32 or float64 values, all finite (see above)."""
    dtype = np.result_type(x, weight)
    if dtype not in (np.float32, np.float64):
        return False
    return bool(np.isfinite(x).all() and np.isfinite(weight).all())


def _extent(kernel: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """The dilated kernel's size per axis."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))


def lengths(spatial: Sequence[int], kernel: Sequence[int], pads: PadPairs | None, exact: bool = False
            ) -> tuple[int, ...]:
    """The period per axis: at least ``S + max(lo, hi)`` and the dilated kernel's extent
    ``kernel`` (which, with padding on both sides, can be the larger); that length itself with
    ``exact`` (the dense transforms take any), else a length the FFT is fast on."""
    pads = pads or ((0, 0),) * len(spatial)
    least = [max(n + max(lo, hi), k) for n, k, (lo, hi) in zip(spatial, kernel, pads, strict=True)]
    return tuple(least) if exact else tuple(_fft.fast_len(n) for n in least)


def _transform(a: np.ndarray, periods: Sequence[int]) -> np.ndarray:
    """The real FFT over ``a``'s trailing ``len(periods)`` axes, zero-filled to ``periods``."""
    dims = len(periods)
    axes = tuple(range(a.ndim - dims, a.ndim))
    threads = _fft.workers(a.size)
    if _fft._scipy_fft is not None:
        return _fft._scipy_fft.rfftn(a, s=tuple(periods), axes=axes, workers=threads)
    return np.fft.rfftn(a, s=tuple(periods), axes=axes)


def _inverse(spec: np.ndarray, periods: Sequence[int]) -> np.ndarray:
    """The real planes of period ``periods`` whose half spectra ``spec`` holds (its trailing axes)."""
    dims = len(periods)
    axes = tuple(range(spec.ndim - dims, spec.ndim))
    threads = _fft.workers(spec.size)
    if _fft._scipy_fft is not None:
        return _fft._scipy_fft.irfftn(spec, s=tuple(periods), axes=axes, workers=threads, overwrite_x=True)
    return np.fft.irfftn(spec, s=tuple(periods), axes=axes)


def _positions(out: Sequence[int], stride: Sequence[int], pads: PadPairs | None, periods: Sequence[int]
               ) -> tuple[np.ndarray, ...]:
    """Per axis, the circular index ``(i*s - lo) mod L`` of each output ``i``."""
    pads = pads or ((0, 0),) * len(out)
    return tuple((np.arange(n) * s - lo) % period for n, s, (lo, _), period in zip(out, stride, pads, periods,
                                                                                   strict=True))


def _products(a: np.ndarray, b: np.ndarray, groups: int, conj_a: bool, conj_b: bool, kind: str) -> np.ndarray:
    """The bin-by-bin sums of products of two spectra (complex, ``(..., bins)``), as the module's
    notes write them: ``kind`` 'forward' ``Z[n, o] = sum_c A[n, c] conj(B[o, c])``, 'grad_x'
    ``Z[n, c] = sum_o A[n, o] B[o, c]``, 'grad_w' ``Z[o, c] = sum_n conj(A[n, o]) B[n, c]``,
    channels of one group with one another."""
    if a.dtype == np.complex64 and b.dtype == np.complex64 and _backend.use_numba(float(a.size) * b.shape[1]):
        from cnnlab.functional import _numba_fft_products

        return _numba_fft_products.products(a, b, groups, conj_a, conj_b, kind)
    a = np.conj(a) if conj_a else a
    b = np.conj(b) if conj_b else b
    bins = a.shape[-1]
    if kind == "forward":  # a: (N, C), b: (O, C_g)
        n, c = a.shape[:2]
        o = b.shape[0]
        left = a.reshape(n, groups, c // groups, bins).transpose(3, 1, 0, 2)  # (F, G, N, C_g)
        right = b.reshape(groups, o // groups, c // groups, bins).transpose(3, 0, 2, 1)  # (F, G, C_g, O_g)
        z = np.matmul(np.ascontiguousarray(left), np.ascontiguousarray(right))  # (F, G, N, O_g)
        return np.ascontiguousarray(z.transpose(2, 1, 3, 0)).reshape(n, o, bins)
    if kind == "grad_x":  # a: (N, O), b: (O, C_g)
        n, o = a.shape[:2]
        cg = b.shape[1]
        left = a.reshape(n, groups, o // groups, bins).transpose(3, 1, 0, 2)  # (F, G, N, O_g)
        right = b.reshape(groups, o // groups, cg, bins).transpose(3, 0, 1, 2)  # (F, G, O_g, C_g)
        z = np.matmul(np.ascontiguousarray(left), np.ascontiguousarray(right))  # (F, G, N, C_g)
        return np.ascontiguousarray(z.transpose(2, 1, 3, 0)).reshape(n, groups * cg, bins)
    # grad_w: a: (N, O), b: (N, C)
    n, o = a.shape[:2]
    c = b.shape[1]
    left = a.reshape(n, groups, o // groups, bins).transpose(3, 1, 2, 0)  # (F, G, O_g, N)
    right = b.reshape(n, groups, c // groups, bins).transpose(3, 1, 0, 2)  # (F, G, N, C_g)
    z = np.matmul(np.ascontiguousarray(left), np.ascontiguousarray(right))  # (F, G, O_g, C_g)
    return np.ascontiguousarray(z.transpose(1, 2, 3, 0)).reshape(o, c // groups, bins)


# Periods up to which float32 layers of 1 or 2 spatial dims take the compiled dense transforms
# (:func:`cnnlab.functional._numba_fft.spectra`: a sum over every value per bin, ``L**2`` work
# per axis instead of ``L log L``, but vectorised and with no call per plane).  Past 64 the
# transforms' share grows, and the rule's model (fitted up to 64) still picks: measured on 2
# cores, forward+backward, one process alternating (implicit / FFT / torch, ms): N4 C64 64x64 ->
# 64 k7 p3 (period 70) 93.9 / 55.6 / 89.8, N8 C16 80x80 -> 32 k7 37.6 / 22.4 / 36.6, N8 C32
# 100x100 -> 32 k9 p4 180.9 / 116.7 / 182.8, all taken; not taken: N8 C64 72x72 -> 64 k7 228 /
# 188 (a ratio over FFT_MARGIN), N32 C8 96x96 -> 16 k7 65.8 / 67.6, N16 C16 64x64 -> 16 k5 (F(2x2,
# 5x5) 11.9) 13.8 / 15.8; SciPy's transforms, past 128, took 359 ms on N2 C32 128x128 -> 32 k7
# (implicit 48).
DENSE_MAX_PERIOD = 128


def _dense(dtype: np.dtype, periods: Sequence[int], work: float) -> bool:
    return (dtype == np.float32 and len(periods) <= 2 and max(periods) <= DENSE_MAX_PERIOD
            and _backend.use_numba(work))


def _axes(counts: Sequence[int], steps: Sequence[int], offsets: Sequence[int], periods: Sequence[int]) -> tuple:
    """``(rows, columns)`` :class:`cnnlab.functional._numba_fft.Axis` of a plane (a 1-d signal:
    one row of period 1)."""
    from cnnlab.functional._numba_fft import Axis

    found = [Axis(*a) for a in zip(counts, steps, offsets, periods, strict=True)]
    return (Axis(1, 1, 0, 1), found[0]) if len(found) == 1 else (found[0], found[1])


def _dense_forward(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], dilation: Sequence[int],
                   groups: int, pads: PadPairs | None, out: Sequence[int], periods: tuple[int, ...]
                   ) -> tuple[np.ndarray, Spectra]:
    from cnnlab.functional import _numba_fft as nf
    from cnnlab.functional import _numba_fft_products as nfp

    n, c = x.shape[:2]
    o, cg = weight.shape[:2]
    dims = len(out)
    lows = [lo for lo, _ in pads] if pads else [0] * dims
    x_axes = _axes(x.shape[2:], (1,) * dims, (0,) * dims, periods)
    w_axes = _axes(weight.shape[2:], dilation, (0,) * dims, periods)
    y_axes = _axes(out, stride, lows, periods)
    chunks = nf.chunks_of(*x_axes)
    x_spec = nf.spectra(np.ascontiguousarray(x).reshape(n * c, x_axes[0].count, -1), *x_axes)
    w_spec = nf.spectra(np.ascontiguousarray(weight).reshape(o * cg, w_axes[0].count, -1), *w_axes)
    z, _ = nfp.packed_products(x_spec, (n, c), w_spec, (o, cg), groups, False, True, "forward", chunks)
    y = nf.planes(z, n * o, *y_axes).reshape(n, o, *out)
    return y, Spectra(x_spec, w_spec, periods, tuple(x.shape[2:]), chunks, np.dtype(np.float32))


def _dense_backward(g: np.ndarray, spectra: Spectra, weight_shape: Sequence[int], stride: Sequence[int],
                    dilation: Sequence[int], groups: int, pads: PadPairs | None, needs: tuple[bool, bool]
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
    from cnnlab.functional import _numba_fft as nf
    from cnnlab.functional import _numba_fft_products as nfp

    n, o = g.shape[:2]
    out = g.shape[2:]
    dims = len(out)
    cg = weight_shape[1]
    c = cg * groups
    periods = spectra.lengths
    lows = [lo for lo, _ in pads] if pads else [0] * dims
    g_axes = _axes(out, stride, lows, periods)
    g_spec = nf.spectra(np.ascontiguousarray(g).reshape(n * o, g_axes[0].count, -1), *g_axes)
    grad_x = grad_w = None
    if needs[0]:
        z, _ = nfp.packed_products(g_spec, (n, o), spectra.w_spec, (o, cg), groups, False, False, "grad_x",
                                  spectra.packed)
        x_axes = _axes(spectra.x_spatial, (1,) * dims, (0,) * dims, periods)
        grad_x = nf.planes(z, n * c, *x_axes).reshape(n, c, *spectra.x_spatial)
    if needs[1]:
        z, _ = nfp.packed_products(g_spec, (n, o), spectra.x_spec, (n, c), groups, True, False, "grad_w",
                                  spectra.packed)
        w_axes = _axes(weight_shape[2:], dilation, (0,) * dims, periods)
        grad_w = nf.planes(z, o * cg, *w_axes).reshape(weight_shape)
    return grad_x, grad_w


def forward(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], dilation: Sequence[int], groups: int,
            pads: PadPairs | None, out: Sequence[int], bias: np.ndarray | None, save: bool
            ) -> tuple[np.ndarray, Spectra | None]:
    """``(y, spectra)``: the layer's output (``x`` unpadded, ``pads`` its zero padding) in the
    dtype of ``x`` and ``weight`` (float32 or float64, :func:`applies`), and what its backward
    needs when ``save``."""
    dtype = np.result_type(x, weight)
    x, weight = x.astype(dtype, copy=False), weight.astype(dtype, copy=False)
    dims = len(out)
    spatial = tuple(x.shape[2:])
    extent = _extent(weight.shape[2:], dilation)
    periods = lengths(spatial, extent, pads, exact=True)
    if _dense(dtype, periods, float(x.size) * weight.shape[0]):
        y, spectra = _dense_forward(x, weight, stride, dilation, groups, pads, out, periods)
    else:
        y, spectra = _spectral_forward(x, weight, stride, dilation, groups, pads, out, lengths(spatial, extent, pads))
    if bias is not None:
        y += bias.astype(dtype, copy=False).reshape((-1,) + (1,) * dims)
    return y, (spectra if save else None)


def _spectral_forward(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], dilation: Sequence[int],
                      groups: int, pads: PadPairs | None, out: Sequence[int], periods: tuple[int, ...]
                      ) -> tuple[np.ndarray, Spectra]:
    """The forward by SciPy's or NumPy's transforms (any dims and float dtype), at fast periods."""
    dtype = x.dtype
    wd = dilate(weight, tuple(dilation))
    x_spec = _transform(x, periods)
    w_spec = _transform(wd, periods)
    n, c = x.shape[:2]
    o = weight.shape[0]
    z = _products(x_spec.reshape(n, c, -1), w_spec.reshape(o, weight.shape[1], -1), groups, False, True, "forward")
    full = _inverse(z.reshape(n, o, *x_spec.shape[2:]), periods)
    picks = _positions(out, stride, pads, periods)
    y = np.ascontiguousarray(full[(slice(None), slice(None)) + np.ix_(*picks)], dtype=dtype)
    return y, Spectra(x_spec, w_spec, periods, tuple(x.shape[2:]), 0, dtype)


def backward(grad_out: np.ndarray, spectra: Spectra, weight_shape: Sequence[int], stride: Sequence[int],
             dilation: Sequence[int], groups: int, pads: PadPairs | None, needs: tuple[bool, bool]
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(grad_x, grad_w)`` of an FFT forward from its ``spectra`` (None where ``needs`` says so);
    ``grad_x`` of the unpadded input."""
    dtype = spectra.dtype
    g = grad_out.astype(dtype, copy=False)
    if spectra.packed:
        return _dense_backward(g, spectra, weight_shape, stride, dilation, groups, pads, needs)
    n, o = g.shape[:2]
    out = g.shape[2:]
    periods = spectra.lengths
    placed = np.zeros((n, o, *periods), dtype=dtype)
    placed[(slice(None), slice(None)) + np.ix_(*_positions(out, stride, pads, periods))] = g
    g_spec = _transform(placed, periods)
    bins_shape = g_spec.shape[2:]
    g_rows = g_spec.reshape(n, o, -1)
    c = spectra.x_spec.shape[1]
    grad_x = grad_w = None
    if needs[0]:
        z = _products(g_rows, spectra.w_spec.reshape(o, c // groups, -1), groups, False, False, "grad_x")
        full = _inverse(z.reshape(n, c, *bins_shape), periods)
        keep = tuple(slice(0, s) for s in spectra.x_spatial)
        grad_x = np.ascontiguousarray(full[(slice(None), slice(None)) + keep], dtype=dtype)
    if needs[1]:
        z = _products(g_rows, spectra.x_spec.reshape(n, c, -1), groups, True, False, "grad_w")
        full = _inverse(z.reshape(o, c // groups, *bins_shape), periods)
        taps = tuple(slice(0, (k - 1) * d + 1, d) for k, d in zip(weight_shape[2:], dilation, strict=True))
        grad_w = np.ascontiguousarray(full[(slice(None), slice(None)) + taps], dtype=dtype)
    return grad_x, grad_w


def _vectors(n: int) -> int:
    return -(-n // 16)


def _fours(n: int) -> int:
    return -(-n // 4) * 4


def _plane_in(a: int, b: int, lh: int, lw: int) -> float:
    """Vector operations of one plane's spectrum (:func:`cnnlab.functional._numba_fft.spectra`):
    the sums along rows and down columns (4 rows at a time), and the copies into packed chunks."""
    bw = lw // 2 + 1
    vb, chunks = _vectors(bw), _vectors(lh * bw)
    return float(_fours(a) * b * vb * 2 + _fours(lh) * a * vb * 4 + 4 * lh * vb + 4 * chunks)


def _plane_out(a: int, b: int, lh: int, lw: int) -> float:
    """Vector operations of one plane's inverse at ``a x b`` positions (``planes``)."""
    bw = lw // 2 + 1
    vb, chunks = _vectors(bw), _vectors(lh * bw)
    return float(_fours(a) * lh * vb * 4 + _fours(a) * _vectors(b) * bw * 2 + 4 * chunks)


def work(x_shape: Sequence[int], weight_shape: Sequence[int], groups: int, pads: PadPairs | None,
         stride: Sequence[int], dilation: Sequence[int], backward: bool = True, traffic: float = 0.5) -> float:
    """The compiled path's forward+backward (the forward alone unless ``backward``) in 16-lane
    vector multiply-adds (its model of time): the spectra of the input, weight and upstream
    gradient planes, the three products (4.4 a bin chunk, sample, filter and channel: 32
    multiply-adds and 6 signs' products a step of a 2 x 4 block), and the inverses of the output,
    input gradient and weight gradient planes; and ``traffic`` units a packed spectrum's value
    written and read again."""
    n, c = x_shape[:2]
    o, cg = weight_shape[:2]
    spatial, kernel = list(x_shape[2:]), list(weight_shape[2:])
    periods = list(lengths(spatial, _extent(kernel, dilation), pads, exact=True))
    out = list(_out_shape(x_shape, kernel, stride, dilation, pads))
    if len(spatial) == 1:
        spatial, kernel, out, periods = [1] + spatial, [1] + kernel, [1] + out, [1] + periods
    lh, lw = periods
    chunks = _vectors(lh * (lw // 2 + 1))
    if not backward:
        planes = (n * c * _plane_in(*spatial, lh, lw) + o * cg * _plane_in(*kernel, lh, lw)
                  + n * o * _plane_out(*out, lh, lw))
        blocks = _fours(o) * 2 * -(-n // 2) * cg
        return planes + 4.4 * blocks * chunks + traffic * (n * c + o * cg + n * o) * chunks * 32
    planes = (n * c * (_plane_in(*spatial, lh, lw) + _plane_out(*spatial, lh, lw))
              + o * cg * (_plane_in(*kernel, lh, lw) + _plane_out(*kernel, lh, lw))
              + n * o * (_plane_in(*out, lh, lw) + _plane_out(*out, lh, lw)))
    # the products by 2 x 4 blocks (a block past the last row or column computed anyway), and the
    # packed spectra each written and read again (traffic units a value: large layers' spectra
    # leave the caches, and a batch of one has its weight gradient's products one step long)
    blocks = (_fours(o) * 2 * -(-n // 2) * cg + _fours(cg) * 2 * -(-n // 2) * o
              + _fours(cg) * 2 * -(-o // 2) * n)
    spectra = 2.0 * (n * c + o * cg + n * o) * chunks * 32
    return planes + 4.4 * blocks * chunks + traffic * spectra

# The automatic rule (:func:`chosen`): float32 layers of 1 or 2 spatial dims, one group, kernels of
# at least FFT_MIN_TAPS taps (5x5 and larger; the 3x3 Winograd method beat this one on every 3x3
# layer measured), periods the dense transforms take, and a modelled time below FFT_MARGIN of the
# other method's.  Models (:class:`Model`), ms on 2 cores: this method fft_fixed + fft_ms_per_unit
# per million units of :func:`work`; the implicit kernels direct_fixed + direct_ms_per_mac per
# million 16-lane multiply-adds of the forward and both gradients (F(2x2, 5x5)'s:
# winograd5_ms_per_unit per million of its 36 products a tile for the forward and input gradient
# and the implicit weight gradient).
FFT_MIN_TAPS = 25
FFT_MARGIN = 0.85
# Bytes of packed spectra (of the inputs, filters and upstream gradients: those live at once, the
# first two from the forward to the backward) above which 'auto' leaves a layer to the other
# methods: a filter plane's spectrum is the period's size, not the kernel's (a 7x7 filter of a
# 56x56 layer: 7.4 kB against 196 B), so a layer of 256 x 256 such filters would hold 0.9 GB.
FFT_MAX_SPECTRA_BYTES = 96 * 2**20


class Model(NamedTuple):
    """The automatic rule's model of time of each method (ms; see the comment above)."""

    fft_fixed: float
    fft_ms_per_unit: float
    traffic: float  # (:func:`work`'s units a spectrum's value written and read again)
    direct_fixed: float
    direct_ms_per_mac: float
    winograd5_fixed: float  # (forward+backward; half of it for a forward alone)
    winograd5_ms_per_unit: float


# By the compiled kernels' vector width (cnnlab.functional._numba_simd.WIDE).  True (AVX-512):
# fitted in round 44 to 28 layers' forward+backward on the Zen 4 of docs/BENCHMARKS.md.  False
# (AVX2, 16-lane operations compiled as two 8-lane ones, and the narrow FFT kernels of
# cnnlab.functional._numba_fft_products.NARROW_KERNELS): refitted in round 47 on a Zen 3 to 14
# layers of this method by least squares of the relative error (0.28 ms a unit of work, 0.55 a
# unit of traffic, in a slow spell of the shared machine: scaled by its 1.4), and F(2x2, 5x5)'s
# to two layers (a large fixed cost: its transforms of the weights and the implicit weight
# gradient's set-up).  Forward+backward, FFT / F(2x2, 5x5) / implicit / torch, ms on the Zen 3 in
# that spell: N32 C16 24x24 -> 32 k5 p2 10.1 / 12.5 / 13.1 / 13.2; N8 C64 28x28 -> 64 k5 21.1 /
# 23.5 / 39.2 / 34.8; N4 C64 56x56 -> 64 k5 54.8 / 40.7 / 57.0 / 52.0 (a weight gradient of
# 4,096 spectra summed over 4 samples: traffic); N8 C32 64x64 -> 32 k5 31.4 / 30.1 / 40.7 / 32.0;
# N4 C128 6x6 -> 512 k5 27.3 / 29.1 / 16.0 / 10.3; N8 C64 28x28 -> 64 k7 15.5 / - / 49.1 / 41.2.
MODELS = {True: Model(0.6, 0.21, 0.5, 0.3, 0.16, 0.3, 0.28), False: Model(0.8, 0.2, 2.2, 0.5, 0.23, 3.0, 0.27)}


def model() -> Model:
    """The :class:`Model` of this machine's compiled kernels (AVX-512 or not), read at each call."""
    try:
        from cnnlab.functional import _numba_simd
    except ImportError:  # (no Numba: the rule is not used)
        return MODELS[True]
    return MODELS[bool(_numba_simd.WIDE)]


def chosen(x_shape: Sequence[int], weight_shape: Sequence[int], groups: int, pads: PadPairs | None,
           stride: Sequence[int], dilation: Sequence[int], winograd: bool, backward: bool = True) -> bool:
    """Whether 'auto' takes this method for a float32 layer it would give the implicit kernels
    (``winograd``: or F(2x2, 5x5)), for its forward and backward (the forward alone unless
    ``backward``: a third of the other method's work, and of this one's the input's and weight's
    spectra, one product and the output's inverse): see :data:`FFT_MIN_TAPS` and the models above."""
    kernel = weight_shape[2:]
    if groups != 1 or len(kernel) > 2 or math.prod(kernel) < FFT_MIN_TAPS:
        return False
    periods = lengths(x_shape[2:], _extent(kernel, dilation), pads, exact=True)
    if max(periods) > DENSE_MAX_PERIOD:
        return False
    n, c = x_shape[:2]
    o = weight_shape[0]
    bins = math.prod(periods[:-1]) * (periods[-1] // 2 + 1)
    if (n * c + o * c + n * o) * _vectors(bins) * 16 * 8 > FFT_MAX_SPECTRA_BYTES:
        return False
    out = _out_shape(x_shape, kernel, stride, dilation, pads)
    macs = float(n) * o * c * math.prod(out) / 16  # (16-lane multiply-adds of one pass)
    m = model()
    if winograd:
        units = macs * 36 / 4 if not backward else 2 * macs * 36 / 4 + macs * math.prod(kernel)
        direct = m.winograd5_fixed * (1.0 if backward else 0.5) + m.winograd5_ms_per_unit * units / 1e6
    else:
        direct = m.direct_fixed + m.direct_ms_per_mac * (3 if backward else 1) * macs * math.prod(kernel) / 1e6
    units = work(x_shape, weight_shape, groups, pads, stride, dilation, backward, m.traffic)
    fft = m.fft_fixed * (1.0 if backward else 0.5) + m.fft_ms_per_unit * units / 1e6
    return fft < FFT_MARGIN * direct
