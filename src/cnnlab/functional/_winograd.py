"""The Winograd method of a 3x3 or 5x5 convolution of stride 1 (``method='winograd'``): float32,
by the compiled kernel of :mod:`cnnlab.functional._numba_winograd`.

F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): every
2 x 2 outputs of a filter (``d`` apart along an axis of dilation ``d``) take 16 products per input
channel instead of 36.  With

    B' = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G  = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A' = [[1, 1, 1, 0], [0, 1, -1, -1]]

a tile's outputs are ``A' [sum_c (G w[o, c] G') * (B' d[c] B)] A``, ``d[c]`` its 4 x 4 input values
of channel ``c``.  The input gradient of a stride-1 convolution is the same kind of correlation
(of the upstream gradient, padded by ``(k - 1)*d - lo``, with the weights flipped and their two
channel axes swapped), so it runs the same kernel.  The weight gradient is the transforms'
adjoint, ``G' [sum_tiles (B' d B) * (A dY A')] G`` (:func:`grad_w`): 16 products per tile,
input channel and filter too.  Both kernels read the input from a copy blocked 8 channels to a
vector with the padding written in (:func:`blocked`), which the forward keeps for the weight
gradient; the upstream gradient is blocked once for both gradients.  (A weight gradient whose
padding reaches past the kernel, ``lo > 2*d``, runs on the implicit kernels.)

F(2x2, 5x5), the same tiles of 2 x 2 outputs from 6 x 6 input values: 36 products per input channel
instead of 100 (2.8 times fewer), by the transforms of the points 0, 1, -1, 2, -2 and infinity
(``B'`` is F(4x4, 3x3)'s; ``A' = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]]``; ``G`` maps the taps
to their values at each point over ``prod (p - q)``, applied in float64 by sums of the taps:
``_numba_winograd5._g5``). The forward and the input gradient run the same fused kernel with 36
entries a tile (no BLAS variant; 'auto' takes this method from :data:`MIN_OUTPUTS_5` outputs); the
weight gradient runs on the implicit kernels, because the adjoint's ``G' dU G`` brings the outer
taps' sums out of entries up to 25 times larger: on uniform inputs and 3,840 tiles its largest
error was 2e-5 of the largest value, twice the 1e-5 that every other path keeps (and the tile's
products gained it only 5%).

A call whose output has a value that is not finite is run again by the implicit kernels: the
transforms add and subtract input values, and ``inf - inf`` would be ``nan`` where the defining
sum has ``inf``.

Rounding: the transforms mix the 16 values of a tile, so an output's rounding error scales with
the largest values of its 4 x 4 tile, where the defining sum's scales with those of its 3 x 3
window.  For inputs of similar sizes (activations, images) the two are alike (measured on normal
values: 2.1e-6 against 6.2e-6 for the implicit kernels, docs/BENCHMARKS.md round 20); an input
with a value many orders of magnitude above its neighbours can leave an error of that value
times float32's epsilon on outputs whose windows miss it.  F(2x2, 5x5)'s transforms scale
values by up to 5 (and its ``G`` by 1/24): on normal values its largest forward error was
1.9e-6 to 2.5e-6 of the largest output, against 4e-7 to 1e-6 for the implicit kernels (this round's
five layers of the check in docs/BENCHMARKS.md, round 42).  ``method='implicit'`` keeps the
defining sum's behaviour.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from cnnlab.functional import _backend, _blas

_COLS = 16

# Input channels and filters from which, and up to which, 'auto' takes this method for a float32
# 3x3 layer of stride 1 and one group that it would give the implicit kernels, and the tiles it
# needs (see cnnlab.functional._conv_kernels.choose_method).  Measured on 2 cores, forward+backward,
# Winograd / implicit, ms: N8 C128 28x28 -> 128 23.7 / 35.9, N8 C256 14x14 -> 256 30.0 / 38.0, N8
# C512 14x14 -> 512 (392 tiles, the products by the BLAS) 101-104 / 157 (torch 106-111), N8 C16
# 56x56 -> 16 3.0 / 3.3; against it N8 C512 7x7 -> 512 (128 tiles: the weights' transforms, 16 x
# C x O values each way, weigh as much as the products) 56.6 / 50.6, N64 C8 28x28 -> 16 6.3 / 5.9
# (8 channels: one vector of the transform).
MIN_CHANNELS = 16
MAX_CHANNELS = 512
MIN_TILES = 192
# Input channels times filters from which the 16 products run as matrix products by the BLAS,
# between transforms of runs of tiles (:func:`correlate_by_blas`, :func:`grad_w_by_blas`), instead
# of in the fused kernels' jobs (whose weights, 16 x C x O values, each job reads again, and whose
# weight gradient keeps 16 x C x O sums per thread): for the forward and the input gradient
# (``BLAS_MIN_PRODUCT``) and for the weight gradient (``GRAD_W_BLAS_MIN_PRODUCT``).  Set in round 21
# on a Zen 4 (forward+backward together, N8 14x14 layers, fused / BLAS / torch, ms: 256 -> 256
# 29.4-31.7 / 37.6-48.9 / 31.3-38.2; 512 -> 512 113-164 / 101-104 / 106-111) at 256 x 512 for
# both; measured apart on the Zen 5 of round 38 (2 threads, the fastest of 9-11, OpenBLAS's
# SkylakeX kernels; forward / input gradient / weight gradient, fused and BLAS, ms): N8 C512
# 14x14 -> 256 9.2 / 9.9 / 14.7 and 18.8 / 17.4 / 9.8; N8 C256 -> 512 9.3 / 10.9 / 14.3 and 17.5 /
# 19.9 / 11.9; N8 C384 -> 384 12.2 / 12.6 / 22.2 and 17.6 / 17.0 / 11.4; N8 C512 -> 512 28.2 / 26.8
# / 34.8 and 32.4 / 31.9 / 22.2; N4 C512 28x28 -> 512 39.0 / 35.7 / 46.0 and 42.6 / 41.9 / 32.7;
# the weight gradient alone, fused / BLAS: N8 C256 14x14 -> 256 10.8 / 6.0, N8 C128 14x14 -> 256
# 4.4 / 4.4, N8 C128 28x28 -> 128 4.9 / 6.3, N16 C64 56x56 -> 64 16.0 / 22.6, N64 C32 14x14 -> 64 2.8 / 5.1:
# the forward and input gradient fused up to the largest layers 'auto' sends here, the weight
# gradient by the BLAS from GRAD_W_BLAS_MIN_PRODUCT on.
BLAS_MIN_PRODUCT = 1024 * 512
GRAD_W_BLAS_MIN_PRODUCT = 256 * 256
# Bytes of transformed values (input or output side) per run of tiles of the BLAS's products.
BLAS_CHUNK_BYTES = 16 << 20


def by_blas(weight_shape: Sequence[int], least: int | None = None) -> bool:
    """Whether the 16 products of a 3x3 layer of these weights run by the BLAS: at least ``least``
    (:data:`BLAS_MIN_PRODUCT` when None) input channels times filters.  A 5x5 layer's 36 products
    run in the fused kernels at every size."""
    if weight_shape[-1] != 3:
        return False
    return weight_shape[0] * weight_shape[1] >= (BLAS_MIN_PRODUCT if least is None else least)


def chosen(xp_shape: Sequence[int], weight_shape: Sequence[int], groups: int, stride: Sequence[int],
           dilation: Sequence[int]) -> bool:
    """Whether 'auto' takes this method for a float32 convolution it would give the implicit
    kernels (padded input ``xp_shape``): 2-d, stride 1, one group, and either 3x3 with
    :data:`MIN_CHANNELS` to :data:`MAX_CHANNELS` input channels and filters and at least
    :data:`MIN_TILES` tiles, or 5x5 with :data:`MIN_CHANNELS` to :data:`MAX_CHANNELS_5` of each
    and at least :data:`MIN_OUTPUTS_5` outputs in the batch."""
    if not _layer_fits(weight_shape, stride, groups):
        return False
    out_ch, channels = weight_shape[:2]
    size = weight_shape[-1]
    most = MAX_CHANNELS if size == 3 else MAX_CHANNELS_5
    if not (MIN_CHANNELS <= channels <= most and MIN_CHANNELS <= out_ch <= most):
        return False
    out = [n - (size - 1) * d for n, d in zip(xp_shape[2:], dilation, strict=True)]
    if min(out) < 1:
        return False
    if size == 5:
        return xp_shape[0] * math.prod(out) >= MIN_OUTPUTS_5
    tiles = xp_shape[0] * math.prod(len(tile_bases(o, d)) for o, d in zip(out, dilation, strict=True))
    return tiles >= MIN_TILES


# 5x5 layers 'auto' gives F(2x2, 5x5): MIN_CHANNELS to MAX_CHANNELS_5 input channels and filters,
# and at least MIN_OUTPUTS_5 outputs in the batch (outputs, not tiles: an image of 7x7 outputs takes
# 16 tiles, the products of 64 outputs for 49).  MAX_CHANNELS_5 is the accuracy's: the forward sums
# the input channels' products of transformed values (B' has entries up to 5, A' up to 2), which
# cancel into the output (the input gradient the filters'), and its largest error on normal values
# grows with them; N8 14x14, five draws, largest error over the largest value (the implicit kernels'
# in brackets): 16 channels 2.9e-6 (0.9e-6), 64 5.8e-6 (1.7e-6), 96 9.1e-6 (the input gradient's;
# 2.0e-6), 128 7.2e-6, 256 1.2e-5: past the 1e-5 every path keeps.  Faster there too (N32 C128 28x28
# -> 128 forward+backward 189 / 287 ms), but not taken.  Below MIN_OUTPUTS_5 the weights' two
# transforms (36 x C x O values, forward and input gradient) weigh as much as the products saved.
# Measured on 2 cores (the Zen 4 of docs/BENCHMARKS.md, round 43: the weight gradient on the
# implicit kernels, the weights' transform by _weights5), forward+backward through autograd,
# alternating in one process, median ms (Winograd / implicit / torch; padding 2): N4 C16 16x16 -> 16
# (1024 outputs) 1.14 / 1.22 / 2.47; N8 C64 14x14 -> 64 4.1 / 5.6 / 4.6; N64 C64 7x7 -> 64 10.4 /
# 10.9 / 8.7; N8 C32 16x16 -> 32 2.2 / 2.5 / 4.1; N16 C64 16x16 -> 64 11.4 / 14.1 / 12.1; against it
# N4 C32 12x12 -> 32 (576 outputs) 1.62 / 1.57 / 2.31, N1 C64 28x28 -> 64 (784) 3.6 / 3.6 / 5.6, N32
# C8 24x24 -> 32 (8 channels) 6.2 / 5.5 / 5.8.
MIN_OUTPUTS_5 = 1024
MAX_CHANNELS_5 = 64


def _layer_fits(weight_shape: Sequence[int], stride: Sequence[int], groups: int) -> bool:
    """2-d, a 3x3 or 5x5 kernel, stride 1, one group: the layers the kernels compute."""
    return (len(weight_shape) == 4 and tuple(weight_shape[2:]) in ((3, 3), (5, 5)) and all(s == 1 for s in stride)
            and groups == 1)


def entries(size: int) -> int:
    """The transformed values of a tile, per channel: 16 for a 3x3 kernel (F(2x2, 3x3)), 36 for a
    5x5 one (F(2x2, 5x5))."""
    return (size + 1) * (size + 1)


def applies(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], groups: int) -> bool:
    """Whether the Winograd kernel can run this convolution: float32, :func:`_layer_fits`, and the
    compiled kernels allowed."""
    return (x.dtype == np.float32 and weight.dtype == np.float32 and _layer_fits(weight.shape, stride, groups)
            and _backend.use_numba(float(x.size) * float(weight[0].size)))


def transformed(weight: np.ndarray, swap: bool = False, blas: bool = False) -> np.ndarray:
    """``U = G w[o, c] G'`` of every filter ``o`` and input channel ``c`` (float32, computed in
    float64 and rounded once; zeros past the last filter and, up to a multiple of 8, the last
    channel): flat ``U[xi, o // 16, c, o % 16]`` for the fused kernels, or with ``blas`` the
    ``(16, C8, O8)`` array ``U[xi, c, o]`` for the BLAS's products.  With ``swap``, of the input
    gradient's weights ``w[c, o]`` turned by 180 degrees (its filters are the input channels).
    ``xi`` counts the 16 entries of a 3x3 kernel's ``G`` or the 36 of a 5x5 one's (``_numba_winograd5._g5``;
    the fused kernels' layout only)."""
    import numba

    from cnnlab.functional import _numba_winograd as nw
    from cnnlab.functional import _numba_winograd5 as nw5

    out_ch, channels = weight.shape[:2]
    if swap:
        out_ch, channels = channels, out_ch
    c8 = -(-channels // nw.LANES) * nw.LANES
    size = weight.shape[-1]
    if size == 5:
        if blas:
            raise ValueError("transformed: the BLAS's layout is for 3x3 weights (see by_blas), got a 5x5 kernel")
        u = np.empty(entries(5) * -(-out_ch // _COLS) * _COLS * c8, np.float32)  # (padding written too)
        _backend.run_jobs(nw5._weights5, -(-out_ch // _COLS),
                          _backend.read_only(np.ascontiguousarray(weight, np.float32).reshape(-1)), out_ch, channels,
                          swap, u, np.empty((numba.config.NUMBA_NUM_THREADS, 36 * 16)), work=u.size * 10.0)
        return u
    rows = -(-out_ch // nw.LANES) * nw.LANES if blas else -(-out_ch // _COLS) * _COLS
    u = np.empty(16 * rows * c8, np.float32)  # (every value written, the padding's zeros too)
    _backend.run_jobs(nw._weights, -(-out_ch // _COLS),
                      _backend.read_only(np.ascontiguousarray(weight, np.float32).reshape(-1)), out_ch, channels, swap,
                      blas, u, np.empty((numba.config.NUMBA_NUM_THREADS, 12 + 16 * 16)), work=u.size)
    return u.reshape(16, c8, rows) if blas else u


@functools.lru_cache(maxsize=64)
def tile_bases(size: int, dilation: int) -> np.ndarray:
    """The first output index of each tile along an axis of ``size`` outputs: per residue ``r`` of
    the dilation, ``r, r + 2d, r + 4d, ...`` (a tile covers ``b`` and ``b + d``, the second only
    when it is below ``size``), in increasing order (with dilation 2, ``0, 1, 4, 5, ...``: the
    tiles that share an output line run one after another); read-only int64."""
    bases = sorted(b for r in range(min(dilation, size)) for b in range(r, size, 2 * dilation))
    out = np.asarray(bases, np.int64)
    out.flags.writeable = False
    return out


def blocked(src: np.ndarray, lows: Sequence[int], out: Sequence[int], dilation: Sequence[int],
            at_least: Sequence[int] = (0, 0), size: int = 3) -> tuple[np.ndarray, int, int]:
    """``(xb, hn, wn)``: the float32 ``(N, C, H, W)`` ``src`` zero-padded by ``lows`` in front and
    as far as the tiles of ``out`` outputs reach behind (``size + 1`` input values a tile along an
    axis, ``size`` the kernel's; and to at least ``at_least`` rows and columns), in blocks of 8
    channels (flat ``xb[n, c // 8, h, w, c % 8]``, zeros past the last channel), ``hn x wn`` values
    a plane."""
    from cnnlab.functional import _numba_winograd as nw

    batch, channels, height, width = src.shape
    rows, cols = tile_bases(out[0], dilation[0]), tile_bases(out[1], dilation[1])
    hn = max(int(rows.max()) + size * dilation[0] + 1, at_least[0])
    wn = max(int(cols.max()) + size * dilation[1] + 1, at_least[1])
    cblocks = -(-channels // nw.LANES)
    xb = np.empty(batch * cblocks * hn * wn * nw.LANES, np.float32)
    flat = _backend.read_only(np.ascontiguousarray(src, np.float32).reshape(-1))
    _backend.run_jobs(nw._blocked, batch * cblocks, flat, channels, height, width, lows[0], lows[1], hn, wn, xb,
                      work=xb.size)
    return xb, hn, wn


def _tiles(total: int, size: int = 3) -> int:
    """Tiles per job: at most :data:`~cnnlab.functional._numba_winograd.TILES` (for a 5x5 kernel,
    ``TILES_5``: its 36 entries a tile), a multiple of 6 (the register block's rows)."""
    from cnnlab.functional import _numba_winograd as nw

    return min(nw.TILES if size == 3 else nw.TILES_5, -(-total // nw.ROWS) * nw.ROWS)


def _forward_kernel(size: int):
    """The fused forward kernel for ``size`` x ``size`` weights (F(2x2, 3x3)'s or F(2x2, 5x5)'s)."""
    if size == 5:
        from cnnlab.functional import _numba_winograd5 as nw5

        return nw5._forward5
    from cnnlab.functional import _numba_winograd as nw

    return nw._forward


def correlate(src: np.ndarray, u: np.ndarray, out_ch: int, lows: Sequence[int], out: Sequence[int],
              dilation: Sequence[int], bias: np.ndarray | None = None, block: tuple | None = None, size: int = 3
              ) -> np.ndarray | None:
    """``y[b, o, i, j] = bias[o] + sum_{c, s, t} src[b, c, i - lo_h + s*dh, j - lo_w + t*dw] * w[o, c, s, t]``
    for the float32 ``(N, C, H, W)`` ``src`` (zeros outside it) and ``u`` (:func:`transformed`);
    None when a value came out not finite (the caller then runs another method).  ``block``: the
    :func:`blocked` copy of ``src``, when made already; ``size``: the kernel's, 3 or 5."""
    import numba

    from cnnlab.functional import _numba_simd
    from cnnlab.functional import _numba_winograd as nw

    batch, channels = src.shape[:2]
    rows, cols = tile_bases(out[0], dilation[0]), tile_bases(out[1], dilation[1])
    xb, hn, wn = block if block is not None else blocked(src, lows, out, dilation, size=size)
    total = batch * len(rows) * len(cols)
    blocks = -(-out_ch // _COLS)
    tiles = _tiles(total, size)
    threads = numba.config.NUMBA_NUM_THREADS
    e = entries(size)
    vbuf = np.empty((threads, e * (tiles * nw.CHANNEL_CHUNK + nw.SKEW)), np.float32)
    mbuf = np.empty((threads, e * (blocks * _COLS * tiles + nw.SKEW)), np.float32)
    obuf = np.empty((threads, 5 * _COLS), np.float32)
    checks = np.zeros(threads, np.float32)
    full = np.zeros(blocks * _COLS, np.float32)
    if bias is not None:
        full[:out_ch] = bias
    y = np.empty((batch, out_ch, *out), np.float32)
    cblocks = -(-channels // nw.LANES)
    kernel = _forward_kernel(size)
    _backend.run_jobs(kernel, -(-total // tiles), _backend.read_only(xb), cblocks, hn, wn, dilation[0], dilation[1],
                      rows, cols, _backend.read_only(u), full, out_ch, out[0], out[1], y.reshape(-1), tiles,
                      _numba_simd.WIDE, vbuf, mbuf, obuf, checks,
                      work=float(total) * e * cblocks * 8 * blocks * 16,
                      balanced=True)
    return None if np.isnan(checks).any() else y


def grad_w(block: tuple, x_shape: Sequence[int], gblock: tuple, glows: Sequence[int], grad_shape: Sequence[int],
           dilation: Sequence[int]) -> np.ndarray | None:
    """The weight gradient ``(O, C, 3, 3)`` of a Winograd forward: ``G' dU G`` of the sums ``dU[xi]
    = sum_tiles (B' d B)[xi] * (A dY A')[xi]`` (the adjoint of the forward's transforms), from the
    forward's :func:`blocked` input ``block`` and the upstream gradient blocked as ``gblock``
    (``dY[n, o, i, j]`` at row ``i + glows[0]``, column ``j + glows[1]``); None when a value came
    out not finite.  (``glows`` >= 0: every upstream value lies in the block, which
    :func:`blocked`'s ``at_least`` makes it reach.)"""
    import numba

    from cnnlab.functional import _numba_simd
    from cnnlab.functional import _numba_winograd as nw

    xb, hn, wn = block
    gb, ghn, gwn = gblock
    batch, channels = x_shape[:2]
    out_ch, out = grad_shape[1], tuple(grad_shape[2:])
    rows, cols = tile_bases(out[0], dilation[0]), tile_bases(out[1], dilation[1])
    total = batch * len(rows) * len(cols)
    tiles = _tiles(total)
    jobs = -(-total // tiles)
    blocks = -(-out_ch // _COLS)
    cblocks = -(-channels // nw.LANES)
    c8 = cblocks * nw.LANES
    threads = numba.config.NUMBA_NUM_THREADS
    tail = min(GRAD_W_TAIL, jobs // 5) if threads > 1 else 0
    vbuf = np.zeros((threads, 16 * (tiles * nw.CHANNEL_CHUNK + nw.SKEW)), np.float32)
    zbuf = np.empty((threads, 16 * (blocks * _COLS * tiles + nw.SKEW)), np.float32)
    # (the tail jobs' rows are zeroed by the jobs themselves, on both cores and into their caches:
    # zeroed here, with their sums, they cost the 14x14 layer's weight gradient 0.3 of its 2.6 ms)
    parts = np.empty((threads + tail, 16 * blocks * _COLS * (c8 + nw.LANES)), np.float32)
    parts[:threads] = 0
    _backend.run_jobs(nw._grad_w, jobs, _backend.read_only(xb), cblocks, hn, wn, dilation[0], dilation[1], rows, cols,
                      _backend.read_only(gb), -(-out_ch // nw.LANES), ghn, gwn, glows[0], glows[1], out_ch, out[0],
                      out[1], tiles, jobs - tail, _numba_simd.WIDE, vbuf, zbuf, parts,
                      work=float(total) * 16 * c8 * blocks * 16,
                      tail=tail)
    du = parts.sum(axis=0).reshape(16, blocks, c8 + nw.LANES, _COLS)[:, :, :channels]
    du = du.transpose(0, 2, 1, 3).reshape(16, channels, blocks * _COLS)[:, :, :out_ch]
    gw = _adjoint(du, channels, out_ch)
    return gw if np.isfinite(gw).all() else None


def _adjoint(du: np.ndarray, channels: int, out_ch: int) -> np.ndarray:
    """``(O, C, 3, 3)`` float32: ``G' dU[:, c, o] G`` of the ``(16, C, O)`` sums (in float64)."""
    from cnnlab.functional import _numba_winograd as nw

    gw = np.empty((out_ch, channels, 3, 3), np.float32)
    du = np.asarray(du, np.float32)
    plane, row, step = (s // 4 for s in du.strides)
    if step != 1 or min(plane, row) < 0 or any(s % 4 for s in du.strides):
        du = np.ascontiguousarray(du)
        plane, row = channels * out_ch, out_ch
    # (a slice of the BLAS's (16, C8, O8) sums read in place: the flat run of memory it spans)
    flat = np.lib.stride_tricks.as_strided(du, (15 * plane + (channels - 1) * row + out_ch,), (4,), writeable=False)
    _backend.run_jobs(nw._adjoint, -(-out_ch // 16), flat, channels, out_ch, row, plane, gw.reshape(-1),
                      work=float(du.size) * 4)
    return gw


def _chunks(total: int, width: int) -> list[tuple[int, int]]:
    """``(first, count)`` runs of the ``total`` tiles for the BLAS's products: at most
    :data:`BLAS_CHUNK_BYTES` of transformed values (16 per tile and channel or filter, ``width``
    the larger count) at a time."""
    step = max(1, BLAS_CHUNK_BYTES // (16 * 4 * width))
    return [(first, min(step, total - first)) for first in range(0, total, step)]


def _tile_transforms(block: tuple, channels: int, first: int, count: int, out: Sequence[int],
                     dilation: Sequence[int]) -> np.ndarray:
    """``V[xi, t, c]`` (16, count, C8) of the tiles ``first .. first + count - 1`` of the batch
    from a :func:`blocked` input."""
    from cnnlab.functional import _numba_winograd as nw

    xb, hn, wn = block
    rows, cols = tile_bases(out[0], dilation[0]), tile_bases(out[1], dilation[1])
    cblocks = -(-channels // nw.LANES)
    v = np.empty((16, count, cblocks * nw.LANES), np.float32)
    tiles = _tiles(count)
    _backend.run_jobs(nw._input_all, -(-count // tiles), _backend.read_only(xb), cblocks, hn, wn, dilation[0],
                      dilation[1], rows, cols, first, tiles, v.reshape(-1), work=float(v.size))
    return v


def correlate_by_blas(src: np.ndarray, weight: np.ndarray, swap: bool, lows: Sequence[int], out: Sequence[int],
                      dilation: Sequence[int], bias: np.ndarray | None = None, block: tuple | None = None
                      ) -> np.ndarray | None:
    """:func:`correlate` for large layers: the 16 products as 16 matrix products by the BLAS,
    ``M[xi] = V[xi] @ U[xi]`` of (tiles, C) by (C, O), between the transforms of runs of tiles
    (:func:`_chunks`; ``swap``: the input gradient's weights)."""
    import numba

    from cnnlab.functional import _numba_winograd as nw

    batch, channels = src.shape[:2]
    u = transformed(weight, swap, blas=True)
    out_ch = weight.shape[1] if swap else weight.shape[0]
    rows, cols = tile_bases(out[0], dilation[0]), tile_bases(out[1], dilation[1])
    block = block if block is not None else blocked(src, lows, out, dilation)
    full = np.zeros(u.shape[2], np.float32)
    if bias is not None:
        full[:out_ch] = bias
    y = np.empty((batch, out_ch, *out), np.float32)
    threads = numba.config.NUMBA_NUM_THREADS
    checks = np.zeros(threads, np.float32)
    obuf = np.empty((threads, 5 * _COLS), np.float32)
    for first, count in _chunks(batch * len(rows) * len(cols), max(u.shape[1:])):
        m = _blas.matmul(_tile_transforms(block, channels, first, count, out, dilation), u)
        tiles = _tiles(count)
        _backend.run_jobs(nw._output_all, -(-count // tiles), _backend.read_only(m.reshape(-1)), rows, cols,
                          dilation[0], dilation[1], out_ch, out[0], out[1], full, y.reshape(-1), first, tiles, obuf,
                          checks, work=float(m.size), balanced=True)
    return None if np.isnan(checks).any() else y


def grad_w_by_blas(block: tuple, x_shape: Sequence[int], gblock: tuple, glows: Sequence[int],
                   grad_shape: Sequence[int], dilation: Sequence[int]) -> np.ndarray | None:
    """:func:`grad_w` for large layers: ``dU[xi] = sum over runs of tiles of V[xi]' @ Z[xi]`` by
    the BLAS (the runs added in order)."""
    from cnnlab.functional import _numba_winograd as nw

    gb, ghn, gwn = gblock
    batch, channels = x_shape[:2]
    out_ch, out = grad_shape[1], tuple(grad_shape[2:])
    rows, cols = tile_bases(out[0], dilation[0]), tile_bases(out[1], dilation[1])
    gblocks = -(-out_ch // nw.LANES)
    du = None
    for first, count in _chunks(batch * len(rows) * len(cols), max(gblocks * nw.LANES, -(-channels // 8) * 8)):
        v = _tile_transforms(block, channels, first, count, out, dilation)
        z = np.empty((16, count, gblocks * nw.LANES), np.float32)
        tiles = _tiles(count)
        _backend.run_jobs(nw._grad_all, -(-count // tiles), _backend.read_only(gb), gblocks, ghn, gwn, glows[0],
                          glows[1], dilation[0], dilation[1], rows, cols, out[0], out[1], first, tiles, z.reshape(-1),
                          work=float(z.size))
        part = _blas.matmul(v.transpose(0, 2, 1), z)
        du = part if du is None else np.add(du, part, out=du)
    gw = _adjoint(du[:, :channels, :out_ch], channels, out_ch)
    return gw if np.isfinite(gw).all() else None


# Jobs of the weight gradient (at most, and at most a fifth of them) handed out last, one at a
# time, to whichever thread is free, each into sums of its own (as the implicit kernels'
# GRAD_W_TAIL): the result does not depend on which thread ran a job.
GRAD_W_TAIL = 8


def forward(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], dilation: Sequence[int], groups: int,
            pads: Sequence[tuple[int, int]] | None, out: Sequence[int], bias: np.ndarray | None
            ) -> tuple[np.ndarray, tuple] | None:
    """``(y, block)``: the convolution of ``x`` zero-padded by ``pads`` by the Winograd kernel, and
    the blocked input it read (:func:`blocked`, what the weight gradient reads); None where the
    method does not apply (:func:`applies`) or a value came out not finite."""
    if not applies(x, weight, stride, groups):
        return None
    lows = [lo for lo, _ in pads] if pads else [0, 0]
    size = weight.shape[-1]
    block = blocked(x, lows, out, dilation, size=size)
    bias = None if bias is None else np.asarray(bias, np.float32)
    if by_blas(weight.shape):
        y = correlate_by_blas(x, weight, False, lows, out, dilation, bias, block)
    else:
        y = correlate(x, transformed(weight), weight.shape[0], lows, out, dilation, bias, block, size)
    return None if y is None else (y, block)


def backward(grad_out: np.ndarray, weight: np.ndarray, x_shape: Sequence[int], block: tuple,
             pads: Sequence[tuple[int, int]] | None, dilation: Sequence[int], needs: tuple[bool, bool]
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(grad_x, grad_w)`` of a Winograd forward (None where not needed, or where a value came out
    not finite: the caller computes those another way).  The input gradient is the correlation of
    the upstream gradient, padded by ``(k - 1)*d - lo`` in front (``k`` the kernel's size), with the
    weights turned by 180 degrees and their channel axes swapped; both gradients read one blocked
    copy of the upstream gradient."""
    if grad_out.dtype != np.float32 or weight.dtype != np.float32:
        return None, None
    size = weight.shape[-1]
    lows = [(size - 1) * d - (pads[a][0] if pads else 0) for a, d in enumerate(dilation)]
    # (a padding past the kernel's reach leaves upstream values outside the block: lows < 0; a
    # 5x5 layer's weight gradient is left to the implicit kernels, see the module's notes)
    needs_w = needs[1] and min(lows) >= 0 and size == 3
    if not (needs[0] or needs_w):
        return None, None  # (nothing here to read the blocked upstream gradient)
    x_spatial = tuple(x_shape[2:])
    # (every upstream value inside the block, for the weight gradient, even where the padding
    # reaches past the kernel and the input gradient's tiles do not read it)
    reach = [o + lo for o, lo in zip(grad_out.shape[2:], lows, strict=True)]
    gblock = blocked(grad_out, lows, x_spatial, dilation, reach, size)
    gw = gx = None
    if needs_w:
        gw = (grad_w_by_blas(block, x_shape, gblock, lows, grad_out.shape, dilation)
              if by_blas(weight.shape, GRAD_W_BLAS_MIN_PRODUCT) else
              grad_w(block, x_shape, gblock, lows, grad_out.shape, dilation))
    if needs[0]:
        gx = (correlate_by_blas(grad_out, weight, True, lows, x_spatial, dilation, None, gblock)
              if by_blas(weight.shape) else
              correlate(grad_out, transformed(weight, swap=True), weight.shape[1], lows, x_spatial, dilation, None,
                        gblock, size))
    return gx, gw
