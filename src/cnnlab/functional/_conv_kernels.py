"""The kernels behind every convolution's forward: one padded, batched, grouped correlation.

Everything here works on a batched input ``(N, C, *sp)`` and a weight ``(O, C_g, *k)``.  The input
is either already padded (``xp``) or comes with the zero padding ``pads`` to apply, which the GEMM
path reads as zeros while it builds its columns (no padded copy is made, and col2im never writes
the padding's gradient), and the compiled direct kernels of depthwise layers pad plane by plane in
a buffer of their thread; the other direct problems and the 1x1 path pad a copy.  Either way the
kernels compute

    y[b, o, p] = sum_{c, t} xp[b, g*C_g + c, p*s + t*d] * w[o, c, t]        (g = o // O_g)

by one of five methods (``conv(..., method=...)`` chooses; :func:`choose_method` is the rule):

``'gemm'``
    im2col then one matrix product per group.  The columns are laid out channel-major,
    ``cols[(c, t), (b, p)]`` of shape ``(C*K, N*P)``, so the whole batch is a single
    ``(O_g, C_g*K) @ (C_g*K, N*P)`` product: the BLAS sees one large GEMM, not N small ones.
    The same matrix serves the backward pass: ``grad_w = G @ cols.T`` (one GEMM over the whole
    batch) and ``grad_cols = W.T @ G`` folded back by col2im (a scatter-add per kernel tap).
    A 1x1 kernel (stride 1) needs no im2col and no copy at all: each sample's ``(C, P)`` plane is
    already its column matrix, so ``y[b] = W @ x[b]`` is one batched product whose result is
    channel-first as it stands, and so are ``grad_x[b] = W.T @ g[b]`` and
    ``grad_w = sum_b g[b] @ x[b].T``.  A layer whose column
    matrix is large (over :data:`BLOCK_BYTES`) runs the same products on blocks of samples, so
    each block's columns are built, used and dropped while still in cache.  A forward that builds
    its columns in one block keeps them for the backward pass (up to :data:`KEEP_COLUMNS_BYTES`);
    a blocked one keeps ``xp``, not ``K`` copies of it, and the backward rebuilds each block.
``'direct'``
    the defining sum as loops over kernel taps (NumPy: one vectorised multiply-add per tap; Numba,
    when installed: the naive loop with the output position innermost, threads over samples and
    channels).  It wins where a GEMM has little to do per copied value: depthwise convolutions
    (one input channel per group) and first layers with a single input channel.  A first
    layer's gradients are sums over the whole batch: with stride 1 and one group, the blocked
    kernels of :mod:`cnnlab.functional._numba_blocked` compute them, four filters (or input
    channels) per value read; a strided first layer's go to the GEMM path with 'auto'
    (:func:`choose_backward`), whose two large products beat the one-filter loops.
``'implicit'``
    float32 with the compiled kernels: the products of the GEMM path without its column matrix,
    read from the padded input where it lies (:mod:`cnnlab.functional._implicit`); the weight
    gradient the same way, and the input gradient as correlations of the padded upstream
    gradient with the transposed weights, one per phase of the stride (by the GEMM path's
    ``W.T @ G`` and col2im for fewer than 8 input channels per group, or non-finite weights).
    Other dtypes, or no Numba, run the GEMM path.
``'winograd'``
    float32 3x3 and 5x5 kernels of stride 1 and one group (2-d, any dilation and padding),
    compiled: every 2 x 2 outputs of a filter from 16 products per input channel instead of 36
    (3x3), or 36 instead of 100 (5x5) (:mod:`cnnlab.functional._winograd`), the input gradient
    the same way, and a 3x3 layer's weight gradient from the same transforms' adjoint (a 5x5
    layer's by the implicit kernels); all read the padding as zeros, with no padded copy.  A
    call with a value that is not finite, and any other layer, runs as ``'implicit'``.

``'fft'``
    float32 and float64 layers by products of spectra (:mod:`cnnlab.functional._fft_conv`): each
    input plane's and filter plane's spectrum made once, the channels summed bin by bin, each
    output plane transformed back; the backward from the kept spectra.  Integers, and values that
    are not finite, run as ``'implicit'``.

Here the rules that choose a method (:func:`choose_method`, :func:`choose_backward`) and the
forward; the adjoints, from what the forward saves, are in
:mod:`cnnlab.functional._conv_backward_kernels`.
Forward functions return the output and what backward needs (the column matrix, or the padded
input), so backward never recomputes the forward; backward functions take a ``needs`` pair
``(input, weight)`` and skip a gradient nobody wants (the first layer's image gradient).
Integer inputs run the same code in int64, so results stay exact.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cnnlab.functional import _backend, _blas, _fft_conv, _implicit, _pointwise, _winograd
from cnnlab.functional._columns import (
    _as_2d,
    _out_shape,
    _pad2,
    _pads2,
    _with_pads,
    _zero_pad,
    im2col_cm,
)
from cnnlab.functional._windows import windows

CONV_METHODS = ("auto", "gemm", "direct", "implicit", "winograd", "fft")


class Saved(NamedTuple):
    """What a forward keeps for its backward (one of ``cols`` / ``xp`` is set)."""

    method: str
    cols: np.ndarray | None  # (C*K, N*P) im2col matrix
    xp: np.ndarray | None  # the input, padded or with ``pads`` to apply: direct, 1x1 and blocked GEMM paths
    xp_shape: tuple[int, ...]
    weight: np.ndarray
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    out: tuple[int, ...]
    # how the backward runs: 'same' as the forward, or 'gemm' for a direct forward whose gradients
    # the GEMM path computes faster (see choose_backward), or an implicit one's (_gemm_backward_pays)
    backward: str = "same"
    # zero padding around ``xp`` that the kernels apply on the fly (the GEMM path, and the buffered
    # direct kernels: ``xp`` is then the unpadded input), and zero padding to crop from the input
    # gradient at the end (the other direct problems and the 1x1 path, which pad a copy);
    # ``((lo, hi), ...)`` per spatial dim, or None
    pads: tuple[tuple[int, int], ...] | None = None
    crop: tuple[tuple[int, int], ...] | None = None
    # the Winograd forward's blocked input ``(xb, hn, wn)`` (cnnlab.functional._winograd.blocked)
    blocked: tuple | None = None
    # the FFT forward's spectra of the input and the weight (cnnlab.functional._fft_conv.Spectra)
    spectra: object | None = None


def choose_method(xp_shape: Sequence[int], weight_shape: Sequence[int], groups: int,
                  stride: Sequence[int] | None = None, dtype: np.dtype | None = None,
                  dilation: Sequence[int] | None = None, pads: Sequence[tuple[int, int]] | None = None,
                  backward: bool = True) -> str:
    """The automatic rule: ``'direct'`` when the Numba kernels are available and either the
    convolution is depthwise (one input and one output channel per group) or it has at
    most :data:`DIRECT_MAX_CHANNELS` input channels per group (an image's or a signal's first layer)
    and, 2-d, output rows :data:`DIRECT_MIN_WIDTH_PER_TAP` times the kernel's width or, 1-d,
    :data:`DIRECT_MIN_LENGTH_1D` outputs, or fewer
    filters per group than the implicit kernels take (and a kernel wider than 1x1), and a unit
    stride along the width; otherwise ``'implicit'`` for float32 (``dtype``) with the Numba
    kernels, except 1x1 kernels of stride 1 with :data:`cnnlab.functional._pointwise.MIN_POSITIONS` output
    positions a sample or more, and ``'gemm'``; of the implicit ones, 3x3 and 5x5
    layers of stride 1 and one group with enough channels, filters and tiles take ``'winograd'``
    (:func:`cnnlab.functional._winograd.chosen`; ``dilation``: the layer's), and kernels of 25 or
    more taps ``'fft'`` where its model of time is the lower (:func:`cnnlab.functional._fft_conv.chosen`;
    ``pads``: the zero padding that ``xp_shape`` includes, which sets its transforms' lengths;
    ``backward``: whether a backward follows, which the FFT's model weighs).

    The implicit products skip the column matrix, the BLAS's own packing of it and the
    channel-first copy of the product.  Measured on 2 cores, forward+backward, interleaved in one
    process (GEMM path / implicit / torch, ms): N64 C32 14x14 -> 64 k3 p1 30-33 / 17-19 / 16-17,
    N16 C64 56x56 -> 64 153-170 / 113-117 / 109-119, N32 C32 32x32 -> 64 s2 21-26 / 14-18 /
    14-20, the same with dilation 2 (28x28 -> 32) 35-36 / 19-20 / 23-31; a ``convnet`` training
    step 86.5 / 80.8 / 95.0.  It needs :data:`cnnlab.functional._implicit.MIN_LANES` filters per
    group (its register block holds 16; :data:`IMPLICIT_MIN_FILTERS_STRIDED` for a layer strided
    along the last axis), a forward of at least
    :data:`cnnlab.functional._implicit.MIN_FLOPS` FLOPs (a smaller call is mostly the kernels'
    fixed costs) and at least :data:`cnnlab.functional._implicit.MIN_POSITIONS` output positions
    (:data:`cnnlab.functional._implicit.MIN_POSITIONS_FEW_FILTERS` with at most
    :data:`cnnlab.functional._implicit.FEW_FILTERS` filters per group, and
    :data:`cnnlab.functional._implicit.MIN_POSITIONS_DEEP` where those filters have at least
    :data:`cnnlab.functional._implicit.DEEP_TAPS` taps each), and fewer than
    :data:`cnnlab.functional._implicit.MANY_FILTERS` filters per group, but for kernels of
    :data:`MANY_FILTERS_MIN_TAPS` taps or more a channel with at most
    :data:`MANY_FILTERS_MAX_CHANNELS` channels a group (Winograd's layers are taken before; with
    fewer positions the implicit kernels' jobs are too few to share out, and the BLAS's product wins).
    A layer whose products mostly read the zero padding (:func:`dense_share` at most
    :data:`IMPLICIT_MAX_DENSE_SHARE`) takes them from
    :data:`cnnlab.functional._implicit.MIN_POSITIONS_FEW_FILTERS` positions on, whatever its filters:
    they skip those products, which the GEMM path computes.
    A 1x1 kernel of stride 1 needs no column matrix at all, and keeps its batched products where
    each sample's product is wide enough; with fewer positions the GEMM path copies the input into
    its column matrix, and the implicit kernels are faster (forward+backward, 2 cores, GEMM path /
    implicit / torch, ms: N64 C128 8x8 -> 8 1.41 / 0.92 / 1.09-2.98; N32 C256 7x7 -> 64 2.10 / 1.84 /
    2.20-3.46; N64 C64 14x14 -> 128 5.88 / 4.95 / 5.49-5.62; N128 C24 14x14 -> 48 3.13 / 2.30 / 2.90-7.21).

    With so few input channels the im2col matrix has only ``C*K`` rows: building it and copying
    the product back to channel-first order cost more than the product, and the direct loop wins
    (measured on 2 cores: a 1-channel 28x28 first layer 1.2-2x faster, 3 channels the same or
    faster).  That holds for the direct kernels that unroll a kernel row (unit stride along the
    width); a strided first layer is 2-8x faster by im2col (N8 C3 224x224 -> 64 k7 stride 2, a
    ResNet stem: forward 218 against 26 ms, forward+backward 302 against 81 ms; N64 C3 32x32 -> 32
    k3 stride 2: 6.2 against 2.1 ms and 11.9 against 5.3 ms).  Without Numba the GEMM is the
    faster of the two NumPy paths.
    """
    out_ch, cg = weight_shape[0], weight_shape[1]
    work = float(math.prod(xp_shape)) * float(math.prod(weight_shape[1:]))
    if not _backend.use_numba(work):
        return "gemm"
    if cg == 1 and out_ch == groups and len(weight_shape) - 2 <= 2:
        return "direct"
    unit_width = stride is None or stride[-1] == 1
    last_dilation = 1 if dilation is None else dilation[-1]
    if cg <= DIRECT_MAX_CHANNELS and unit_width and (
            len(weight_shape) == 4 and _wide_rows(xp_shape[-1], weight_shape[-1], last_dilation, out_ch // groups)
            or len(weight_shape) == 3 and _long_signal(xp_shape[-1], weight_shape[-1], last_dilation)):
        return "direct"
    if (len(weight_shape) == 4 and out_ch // groups < _implicit.MIN_LANES and unit_width
            and not _pointwise.is_pointwise(weight_shape[2:], stride or ())):
        return "direct"  # (too few filters per group for the implicit kernels: see DIRECT_MAX_CHANNELS)
    # (the forward's FLOPs, from the input's size: the output has about size / stride positions)
    positions = float(xp_shape[0]) * float(math.prod(xp_shape[2:])) / math.prod(stride or (1,))
    flops = 2.0 * positions * float(math.prod(weight_shape))
    steps = stride or (1,) * (len(weight_shape) - 2)
    out_sizes = [(n - k) // s + 1 for n, k, s in zip(xp_shape[2:], weight_shape[2:], steps, strict=True)]
    outputs = xp_shape[0] * math.prod(out_sizes)
    few = out_ch // groups <= _implicit.FEW_FILTERS
    deep = math.prod(weight_shape[1:]) >= _implicit.DEEP_TAPS
    # (a layer whose products mostly read the zero padding: the implicit kernels skip them)
    sparse = (outputs >= _implicit.MIN_POSITIONS_FEW_FILTERS and pads is not None
              and dense_share(xp_shape[2:], weight_shape[2:], steps, dilation, pads) <= IMPLICIT_MAX_DENSE_SHARE)
    min_filters = _implicit.MIN_LANES if unit_width else IMPLICIT_MIN_FILTERS_STRIDED
    if (dtype is not None and np.dtype(dtype) == np.float32 and out_ch // groups >= min_filters
            and flops >= _implicit.MIN_FLOPS and (outputs >= _implicit.MIN_POSITIONS or (
                outputs >= _implicit.MIN_POSITIONS_FEW_FILTERS and few) or (
                outputs >= _implicit.MIN_POSITIONS_DEEP and few and deep) or sparse)
            and not _pointwise.takes(weight_shape[2:], steps, out_sizes)):
        dilation = (1,) * (len(weight_shape) - 2) if dilation is None else tuple(dilation)
        winograd = _winograd.chosen(xp_shape, weight_shape, groups, steps, dilation)
        x_shape = tuple(xp_shape[:2]) + tuple(n - lo - hi for n, (lo, hi) in zip(
            xp_shape[2:], pads or ((0, 0),) * len(steps), strict=True))
        if _fft_conv.chosen(x_shape, weight_shape, groups, pads, steps, dilation, winograd, backward):
            return "fft"
        if winograd:
            return "winograd"
        if out_ch // groups < _implicit.MANY_FILTERS or sparse or (
                cg <= MANY_FILTERS_MAX_CHANNELS and math.prod(weight_shape[2:]) >= MANY_FILTERS_MIN_TAPS):
            return "implicit"
    return "gemm"


# Where a group has :data:`cnnlab.functional._implicit.MANY_FILTERS` filters, 'auto' still takes the
# implicit kernels for kernels of at least this many taps a channel and at most this many input
# channels a group: the layers that made that threshold had 128 channels or more.  Measured on the
# Zen 4, 2 threads, settled calls alternating in one process, forward by GEMM / implicit / torch,
# then forward+backward (ms): N1 C32 32x32 -> 512 k7 p3 9.24 / 8.19 / 7.76, 28.8 / 27.0 / 26.7;
# N1 C8 56x56 -> 512 k7 p3 8.28 / 6.91 / 6.95, 23.9 / 23.9 / 29.3; N8 C8 28x28 -> 512 k5 p2 8.95 /
# 7.52 / 7.11; N4 C48 16x16 -> 512 k5 p2 7.97 / 6.90 / 6.16, 23.9 / 21.6 / 18.5; N4 C64 16x16 k5 p2
# 10.0 / 8.65 / 7.47, 27.6 / 24.7 / 21.7; N8 C32 28x28 k5 p2 29.7 / 25.2 / 23.5.  3x3 kernels tie
# or lose: N2 C32 16x16 -> 512 k3 p1 4.34 / 4.44 (forward+backward), N2 C128 16x16 10.4 / 10.5.
MANY_FILTERS_MAX_CHANNELS = 64
MANY_FILTERS_MIN_TAPS = 25


# Filters per group from which 'auto' takes the implicit kernels for a layer strided along the last
# axis (unit-stride layers with fewer than :data:`cnnlab.functional._implicit.MIN_LANES` take the
# direct kernels): 4 of the block's 16 lanes computing still beats the GEMM path's many small
# products, and the input gradient pairs from 4 channels a group
# (:data:`cnnlab.functional._implicit.GRAD_X_MIN_LANES`).  Measured on the Zen 4, 2 threads,
# settled calls alternating in one process, forward by GEMM / implicit / torch, then
# forward+backward (ms): ResNeXt's N32 C128 56x56 -> 128 k3 s2 p1 g32 (4 a group) 19.3 / 9.7 /
# 8.1, 62.7 / 30.0 / 53.7; N32 C96 28x28 -> 96 g16 (6) 4.4 / 2.1 / 3.4, 10.5 / 6.9 / 11.6; N64 C32
# 28x28 -> 16 g4 (4) 3.1 / 1.7 / 2.1, 7.1 / 4.8 / 7.2; N32 C256 14x14 -> 256 g64 (4) 3.4 / 1.6 /
# 2.0, 7.0 / 5.2 / 8.0; N64 C16 28x28 -> 4 1.9 / 1.0 / 1.6, 3.6 / 2.6 / 7.4.  With 2 a group
# the forward wins (N32 C64 28x28 -> 64 g32 2.6 / 1.6) but the backward loses (5.7 / 6.6).
IMPLICIT_MIN_FILTERS_STRIDED = 4


# The share of a layer's products (output positions times taps) that read the input, not its zero
# padding, up to which 'auto' takes the implicit kernels, which skip the padding's products (the GEMM
# path multiplies its zeros), with :data:`cnnlab.functional._implicit.MIN_POSITIONS_FEW_FILTERS`
# output positions or more, whatever the filters and positions the other thresholds ask for.
# Measured on 2 cores, forward+backward, one process alternating, GEMM path / implicit / torch
# (ms): N64 C3 7x7x7 -> 512 k7 s2 p3 (share 0.36) 73.3 / 50.1 / 98.5, forward alone 27.8 / 13.0 /
# 11.1; N1 C128 7x7x7 -> 128 k5 p2 (0.57) 29.7 / 21.6 / 15.3; N16 C128 5x5 -> 256 k5 p2 (0.58)
# 15.3 / 13.4 / 10.7; N8 C128 7x7 -> 256 k7 p3 (0.57) 31.2 / 25.8 / 20.7.  Above it the GEMM path
# wins as often as not: N8 C512 7x7 -> 512 k5 p2 (0.69) 106.7 / 127.5; N16 C256 5x5 -> 256 k3
# p1 (0.75) 11.4 / 11.9; N2 C128 6x6x6 -> 512 k3 p1 (0.70) 27.5 / 30.5; but N4 C64 8x8x8 -> 512
# k3 p1 (0.77) 59.1 / 51.6.  With fewer positions it loses: N1 C512 4x4x4 -> 512 k3 p1 (0.58, 64
# positions) 22.6 / 31.9.
IMPLICIT_MAX_DENSE_SHARE = 0.6


def dense_share(padded: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                dilation: Sequence[int] | None, pads: Sequence[tuple[int, int]]) -> float:
    """The share of a convolution's products (output positions times kernel taps) whose input
    value lies inside the input, not in its zero padding ``pads`` (``padded``: the spatial sizes
    with the padding; one factor per axis, each the mean over that axis's outputs of the taps that
    land inside).  Kept per geometry: the loop over outputs and taps took 14 us of each call's
    23 us choice of method for the stride-2 layer."""
    return _dense_share(tuple(padded), tuple(kernel), tuple(stride), tuple(dilation or (1,) * len(kernel)),
                        tuple(map(tuple, pads)))


@functools.lru_cache(maxsize=256)
def _dense_share(padded: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...], pads: tuple[tuple[int, int], ...]) -> float:
    share = 1.0
    for n, k, s, d, (lo, hi) in zip(padded, kernel, stride, dilation, pads, strict=True):
        out = (n - d * (k - 1) - 1) // s + 1
        if out <= 0:
            return 1.0
        inside = sum(1 for o in range(out) for t in range(k) if lo <= o * s + t * d < n - hi)
        share *= inside / (out * k)
    return share


# Input channels per group up to which a 2-d convolution takes the direct kernels (see above).
# Layers with fewer filters per group than the implicit kernels take (MIN_LANES: grouped layers
# of 4 filters a group, or a few filters of many channels) take them too, at a unit stride along
# the width: the GEMM path's column matrix is a copy per filter of the input there.  Measured on 2
# cores, forward+backward, one process with settled threads (GEMM path / direct / torch, ms),
# float32: N32 C128 28x28 -> 128 k3 p1 groups 32 57.7 / 25.0 / 39.8; N32 C64 28x28 -> 64 groups
# 16 34.0 / 12.7 / 16.7; N32 C256 14x14 -> 256 groups 64 36.3 / 17.4 / 20.6; N16 C32 56x56 -> 32
# groups 8 29.0 / 10.6 / 17.2; N16 C64 28x28 -> 64 k5 p2 groups 16 36.6 / 13.6 / 20.9; N32 C128
# 28x28 -> 64 groups 16 (8 channels a group) 52.0 / 24.1 / 32.8; N32 C128 28x28 -> 8 groups 2
# 52.5 / 21.2 / 32.7; N32 C64 28x28 -> 4 29.2 / 11.0 / 10.6; N64 C32 14x14 -> 4 9.2 / 7.1 / 4.4;
# float64 N32 C64 28x28 -> 64 groups 16 50.0 / 25.7.  Strided along the width (N32 C128 28x28 ->
# 128 s2 groups 32: 17.1 / 24.1 / 10.8) they keep the other paths, as first layers do.
DIRECT_MAX_CHANNELS = 3
# Output columns per column of the (dilated) kernel from which those first layers take the direct
# kernels: they run along a row of the output, and on rows short for the kernel the other paths
# win.  Measured on 2 cores, forward+backward, one process with settled threads (direct / the rule's
# other choice or the GEMM path / torch, ms): N32 C1 7x7 -> 256 k3 p1 5.4 / 1.7 / 6.0, N64 C3 7x7 ->
# 256 k5 p2 13.8 / 5.2 / 6.5, N32 C3 14x14 -> 256 k7 p3 24.1 / 12.1 / 17.6; against it N64 C1 14x14
# -> 256 k3 p1 10.2 / 13.8 / 13.9, N64 C1 16x16 -> 64 k5 p2 3.5 / 4.4 / 6.3, N32 C3 28x28 -> 64 k7
# p3 15.8 / 19.0 / 30.8; at 14x14 with a 5x5 kernel either wins by turns.
DIRECT_MIN_WIDTH_PER_TAP = 3
# With few filters the direct kernels' work shrinks with them, while the implicit kernels' fixed
# costs stay: first layers of at most DIRECT_FEW_FILTERS filters a group and a kernel of
# DIRECT_FEW_FILTERS_MIN_KERNEL columns or more take the direct kernels from
# DIRECT_FEW_FILTERS_MIN_WIDTH_PER_TAP output columns per kernel column.  Measured on the Zen 4
# (round 55), forward+backward through autograd, settled calls alternating in one process, the
# rule's choice before (implicit) / direct / torch (ms): N64 C3 16x16 -> 8 k7 p3 3.16 / 2.21 /
# 3.53, -> 16 4.75 / 3.34 / 3.69; N64 C3 14x14 -> 8 k5 p2 2.01 / 1.35 / 3.95, -> 16 2.09 / 1.94
# (again 2.29 / 1.87); N64 C1 16x16 -> 8 k7 1.79 / 1.35; N32 C3 14x14 -> 8 k7 1.76 / 1.20; N64 C1
# 14x14 -> 16 k5 1.67 / 1.28; N64 C3 10x10 -> 8 k5 1.36 / 0.98; N8 C3 16x16 -> 16 k7 1.47 / 0.94
# / 1.31; N64 C2 14x14 -> 12 k5 1.88 / 1.40; N64 C1 12x12 -> 8 k5 (GEMM path) 1.07 / 0.91.
# Against it: 32 filters (N64 C3 16x16 -> 32 k7 5.06 / 5.81, N64 C3 14x14 -> 32 k5 3.76 / 4.66),
# rows under 2 columns a kernel column (N64 C3 12x12 -> 16 k7 2.43 / 2.59), and 3x3 kernels on
# 7x7 and 8x8 images (GEMM path 0.62 / 0.67 and 0.70 / 0.81).
DIRECT_FEW_FILTERS = 16
DIRECT_FEW_FILTERS_MIN_KERNEL = 5
DIRECT_FEW_FILTERS_MIN_WIDTH_PER_TAP = 2


# Output positions from which a 1-d first layer (at most DIRECT_MAX_CHANNELS channels a group, unit
# stride) takes the direct kernels, its signal one row.  Measured on 2 cores, forward+backward, one
# process alternating (the rule's other choice / direct / torch, ms): N32 C3 L512 -> 128 k3 p1 4.40 /
# 2.03 / 4.0-9.3, N32 C1 L1024 -> 32 k7 2.38 / 1.26 / 2.5-6.2, N16 C2 L2048 -> 64 k9 5.16 / 4.04 /
# 6.0-6.5, N64 C1 L128 -> 32 k5 p2 1.13 / 0.83 / 1.6-5.0, N16 C3 L128 -> 64 k5 1.11 / 0.77 /
# 1.3-4.4; against it N100 C1 L40 -> 32 k5 p2 0.79 / 1.13 / 1.3-2.8 and N64 C1 L96 -> 32 k5 0.86
# / 1.56 / 1.6-3.5 (N32 C3 L112 -> 16 k3 0.52 / 0.47, about even).
DIRECT_MIN_LENGTH_1D = 128


def _long_signal(padded: int, kernel: int, dilation: int) -> bool:
    """Whether a unit-stride 1-d layer of ``padded`` input positions gives at least
    :data:`DIRECT_MIN_LENGTH_1D` outputs."""
    return padded - dilation * (kernel - 1) >= DIRECT_MIN_LENGTH_1D


def _wide_rows(padded: int, kernel: int, dilation: int, filters: int) -> bool:
    """Whether a unit-stride axis of ``padded`` input columns gives at least
    :data:`DIRECT_MIN_WIDTH_PER_TAP` output columns per column of the dilated kernel, or
    :data:`DIRECT_FEW_FILTERS_MIN_WIDTH_PER_TAP` for at most :data:`DIRECT_FEW_FILTERS` ``filters``
    a group and a kernel of :data:`DIRECT_FEW_FILTERS_MIN_KERNEL` columns or more."""
    extent = dilation * (kernel - 1) + 1
    per_tap = DIRECT_MIN_WIDTH_PER_TAP
    if filters <= DIRECT_FEW_FILTERS and kernel >= DIRECT_FEW_FILTERS_MIN_KERNEL:
        per_tap = DIRECT_FEW_FILTERS_MIN_WIDTH_PER_TAP
    return padded - extent + 1 >= per_tap * extent


def choose_backward(weight_shape: Sequence[int], groups: int, stride: Sequence[int] | None = None) -> str:
    """How the backward of a convolution whose forward ``'auto'`` made direct runs: ``'direct'``
    for depthwise layers and for first layers the blocked kernels take (:func:`_blocked_applies`);
    otherwise ``'gemm'`` (columns rebuilt from the padded input) with at least
    :data:`GEMM_BACKWARD_MIN_OUT` filters per group, ``'direct'`` with fewer.

    A first layer's gradients are sums over the whole batch.  Measured on 2 cores, N64 C3 32x32
    -> 32 k3 p1, weight / input gradient: GEMM path 5.4 / 4.3 ms, blocked kernels 2.4 / 2.3, the
    one-filter direct kernels 7.8 / 5.2 (those lose to the GEMM path for strided layers with
    many filters, N64 C1 28x28 -> 32 k5: 7.4 -> 1.9 and 2.9 -> 2.0 ms, but not with LeNet-5's 6
    filters, 1.32 against 1.35 ms, where the columns would add 5 MB to a step's memory).
    Depthwise layers' products are one row each: direct 5.3 / 3.0 ms against GEMM 11.4 / 74.
    """
    out_ch, cg = weight_shape[0], weight_shape[1]
    if cg == 1 and out_ch == groups:
        return "direct"
    if stride is not None and _blocked_applies(weight_shape, stride, groups):
        return "direct"
    return "gemm" if out_ch // groups >= GEMM_BACKWARD_MIN_OUT else "direct"


def _blocked_applies(weight_shape: Sequence[int], stride: Sequence[int], groups: int) -> bool:
    """Whether :mod:`cnnlab.functional._numba_blocked` computes this convolution's gradients (when
    the compiled kernels run): stride 1, one group, few input channels, several filters, 1-d or 2-d."""
    return (len(weight_shape) - 2 in (1, 2) and all(s == 1 for s in stride) and groups == 1
            and 1 < weight_shape[0] and weight_shape[1] <= BLOCKED_MAX_CHANNELS)


def _gemm_backward_pays(weight_shape: Sequence[int], groups: int, stride: Sequence[int]) -> bool:
    """Whether a convolution whose forward 'auto' gives the implicit kernels takes its gradients
    from the GEMM path instead (columns rebuilt from the input the forward kept): a stride above 1
    along the last axis (else the input gradient runs pairs of positions, its lanes full), from
    :data:`cnnlab.functional._implicit.GRAD_X_MIN_LANES` to fewer than
    :data:`IMPLICIT_GEMM_BACKWARD_MAX_CHANNELS` input channels per group (with fewer, the input
    gradient is the GEMM path's already) and at least :data:`IMPLICIT_GEMM_BACKWARD_MIN_FILTERS`
    filters per group."""
    return (_implicit.GRAD_X_MIN_LANES <= weight_shape[1] < IMPLICIT_GEMM_BACKWARD_MAX_CHANNELS
            and weight_shape[0] // groups >= IMPLICIT_GEMM_BACKWARD_MIN_FILTERS and stride[-1] > 1)


# The input gradient of a strided layer runs each phase of the stride with the input channels as the
# register block's 16 lanes (the roles of channels and filters swap), one position at a time: with
# fewer than 16 channels a group, lanes stay idle, and the weight gradient's sums over a position's
# few taps (channels times kernel) are short.  The GEMM path's two products do better there from 64
# filters on, while the implicit forward stays faster than the GEMM path's. Measured on the Zen 3
# (AVX2), 2 threads, forward+backward through autograd, settled calls alternating in one process,
# implicit backward / GEMM backward / torch (ms): N16 C8 32x32 -> 256 k3 s2 6.60 / 5.15 / 5.07; N16
# C8 64x64 -> 128 k3 s2 13.82 / 11.06 / 10.75; N32 C8 64x64 -> 128 24.86 / 21.30 / 22.14; N16 C8
# 32x32 -> 256 k5 s2 13.67 / 9.68 / 9.53; N32 C8 16x16 -> 256 3.88 / 3.00 / 5.77; N16 C12 64x64 ->
# 128 16.07 / 15.81; N8 C8 32x32 -> 64 1.70 / 1.53.  With fewer than MIN_LANES channels (the input
# gradient the GEMM path's already) the weight gradient alone would change, and it wins or loses by
# shape: N16 C4 64x64 -> 128 9.45 / 7.51, N8 C3 224x224 -> 64 k3 s2 27.3 / 19.3, but a ResNet's
# first layer N8 C3 224x224 -> 64 k7 s2 47.6 / 55.3 (N2: 15.1 / 15.6), N64 C3 112x112 -> 64 k3 s2
# 46.8 / 50.4.  Not with 32 filters (N16 C8 48x48 -> 32 2.64 / 2.83, N16 C12 48x48 -> 32 2.64 /
# 3.13, N16 C8 64x64 -> 32 k5 7.36 / 8.08) nor 16 channels (N16 C16 32x32 -> 128 4.40 / 4.49), nor
# with a unit stride along the last axis, where the input gradient's blocks of 8 channels at 2
# positions fill the lanes (strides (2, 1): N16 C8 32x32 -> 256 12.45 / 12.06, N16 C8 64x64 -> 128
# 29.31 / 30.18, N16 C12 32x32 -> 128 8.93 / 9.40; (1, 2): 15.44 / 12.56, 29.82 / 30.01, 12.87 /
# 12.50).  At stride 1 it wins on small images (N16 C8 14x14 -> 256 4.57 / 4.07) and loses on others
# (N16 C12 16x16 -> 64 3.26 / 3.96, conv1d N16 C8 L512 -> 128 4.20 / 4.64, conv3d N32 C8 14^3 -> 128
# 108 / 115), so stride 1 keeps the implicit backward.  From 4 channels, since the implicit input
# gradient runs from :data:`cnnlab.functional._implicit.GRAD_X_MIN_LANES` (Zen 4, forward+backward,
# implicit backward / GEMM backward / torch, ms: N16 C4 32x32 -> 256 k3 s2 p1 4.58 / 3.40 / 8.90,
# N16 C6 32x32 -> 128 2.94 / 2.64 / 5.40; with the input gradient by col2im the implicit backward
# took 3.79 and 2.79).
IMPLICIT_GEMM_BACKWARD_MAX_CHANNELS = 16
IMPLICIT_GEMM_BACKWARD_MIN_FILTERS = 64


# Input channels up to which the blocked backward kernels run (their block, _numba_blocked.BLOCK).
BLOCKED_MAX_CHANNELS = 4


GEMM_BACKWARD_MIN_OUT = 16


# ---------------------------------------------------------------------------------------------
# forward


def forward(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], dilation: Sequence[int], groups: int,
            method: str = "auto", bias: np.ndarray | None = None, save: bool = False,
            pads: Sequence[tuple[int, int]] | None = None) -> tuple[np.ndarray, Saved | None]:
    """``(y, saved)`` for the correlation above of ``x`` zero-padded by ``pads`` (``((lo, hi), ...)``
    per spatial dim; None: ``x`` is ``xp``); ``saved`` is None unless ``save``.

    The GEMM path reads the padding as zeros while it builds the columns, and never makes a
    padded copy of ``x``; the direct and 1x1 paths pad a copy."""
    stride, dilation = tuple(stride), tuple(dilation)
    pads = tuple(pads) if pads and any(lo or hi for lo, hi in pads) else None
    kernel = weight.shape[2:]
    xp_shape = _with_pads(x.shape, pads)
    out = _out_shape(xp_shape, kernel, stride, dilation)
    backward_method, saved_as = "same", "direct"
    if method == "auto":
        method = choose_method(xp_shape, weight.shape, groups, stride, np.result_type(x, weight), dilation, pads,
                               backward=save)
        if method == "direct":
            backward_method = choose_backward(weight.shape, groups, stride)
        elif method == "implicit" and _blocked_forward_pays(x, weight, stride, dilation, groups, out):
            # (the forward by the direct kernels from a padded copy, saved for the implicit kernels'
            # backward as their own forward leaves it)
            method, saved_as = "direct", "implicit"
        elif method == "implicit" and save and _gemm_backward_pays(weight.shape, groups, stride):
            backward_method = "gemm"  # (the GEMM path's gradients, from the input the forward keeps)
    if method == "direct":
        if (saved_as == "direct" and pads and _direct_compiled(x, weight, out)
                and _direct_buffered(weight.shape, groups, pads)):
            y = _direct_forward(x, weight, stride, dilation, groups, out, pads)  # (the kernels pad each plane)
            saved = Saved("direct", None, x, x.shape, weight, stride, dilation, groups, out, backward_method,
                          pads=pads)
        else:
            xp = _zero_pad(x, pads)
            y = _direct_forward(xp, weight, stride, dilation, groups, out)
            saved = Saved(saved_as, None, xp, xp.shape, weight, stride, dilation, groups, out, backward_method,
                          crop=pads)
        if bias is not None:
            y += bias.reshape((-1,) + (1,) * len(out))
        return y, (saved if save else None)
    if method == "fft":
        if _fft_conv.applies(x, weight):
            y, spectra = _fft_conv.forward(x, weight, stride, dilation, groups, pads, out, bias, save)
            return y, (Saved("fft", None, x, x.shape, weight, stride, dilation, groups, out, pads=pads,
                             spectra=spectra) if save else None)
        method = "implicit"  # (integers stay exact, and a value that is not finite would reach every output)
    if method == "winograd":
        done = _winograd.forward(x, weight, stride, dilation, groups, pads, out, bias)
        if done is not None:
            return done[0], (Saved("winograd", None, x, x.shape, weight, stride, dilation, groups, out, pads=pads,
                                   blocked=done[1]) if save else None)
        method = "implicit"  # (not a 3x3 float32 layer of stride 1, or a value not finite)
    if method == "implicit" and not _implicit.applies(x, weight):
        method = "gemm"  # (other dtypes, or no compiled kernels)
    if method == "implicit":
        y, src, left = _implicit.forward(x, weight, stride, dilation, groups, pads, bias)
        return y, (Saved("implicit", None, src, src.shape, weight, stride, dilation, groups, out, backward_method,
                         pads=left, crop=None if left else pads) if save else None)
    if _pointwise.takes(kernel, stride, out):
        xp = _zero_pad(x, pads)
        y = _pointwise.forward(xp, weight, groups, bias)
        saved = (Saved("pointwise", None, xp, xp.shape, weight, stride, dilation, groups, out, crop=pads)
                 if save else None)
        return y, saved
    step = chunk(x.shape, kernel, out, x.dtype.itemsize)
    kept = None  # the column matrix, when small enough to keep for the backward pass
    compiled = _columns_compiled(x.shape, kernel)
    if step >= x.shape[0]:  # one block
        cols = im2col_cm(x, kernel, stride, dilation, pads)
        y = _gemm_forward(cols, weight, groups, x.shape[0], out, bias, compiled=compiled)
        kept = cols if cols.nbytes <= KEEP_COLUMNS_BYTES else None
    else:  # large layers: blocks of samples whose columns stay in cache
        y = np.empty((x.shape[0], weight.shape[0], *out), dtype=np.result_type(x, weight))
        for start in range(0, x.shape[0], step):
            part = x[start:start + step]
            _gemm_forward(im2col_cm(part, kernel, stride, dilation, pads), weight, groups, part.shape[0], out, bias,
                          into=y[start:start + step], compiled=compiled)
    if not save:
        return y, None
    # without the columns, the backward pass rebuilds them block by block from the input
    return y, Saved("gemm", kept, None if kept is not None else x, x.shape, weight, stride, dilation, groups, out,
                    pads=pads)


# Column blocks above this many bytes are built and consumed a block of samples at a time: the
# full matrix of a large layer (``C*K`` times the input size) would go out to main memory twice,
# while a block is written and read back from cache, and the backward pass rebuilds it instead
# of keeping it (less memory).  Blocks much smaller than this lose more than they gain: each is a
# separate, smaller product, and a small im2col block runs on one thread.  Measured on a 2-core
# x86 machine (32 MiB of L3) in one process: 4 -> 16 MiB took the 14x14 layer's forward 6.6 ->
# 5.3 ms and the stride-2 layer's 6.8 -> 4.5 ms; 16 -> 32 MiB took fwd+bwd of the dilated layer
# 25.8 -> 23.1 ms, the convnet's second layer (N128 C24 14x14 -> 48) 25.6 -> 22.2 ms and the
# 56x56 one 134.6 -> 131.5 ms, while 64 MiB made the 56x56 one slower (162 ms).  Any value gives
# the same result.
BLOCK_BYTES = 32 << 20
# A forward keeps its column matrix for the backward pass only up to this size (so: whenever it
# is built in one block); larger ones are rebuilt from the padded input, since keeping ``K``
# copies of every input of a large layer would multiply the peak memory of training.  Measured on
# 2 cores, one process, A/B against 1 MiB: the 14x14 layer's forward+backward 21.2 -> 19.3 ms,
# the stride-2 layer's 19.6 -> 16.4 ms; peak memory of a training step LeNet-5 8.5 -> 11.9 MiB
# (torch: 9.6), convnet 71.7 -> 99.7 MiB with 32 MiB blocks (torch: 90.8), for a convnet step
# about 8% faster.
KEEP_COLUMNS_BYTES = BLOCK_BYTES


def chunk(xp_shape: Sequence[int], kernel: Sequence[int], out: Sequence[int], itemsize: int,
          block_bytes: int | None = None) -> int:
    """Samples per block of at most ``block_bytes`` (:data:`BLOCK_BYTES` when None) of column
    matrix: all of them when the whole column matrix is small."""
    per_sample = xp_shape[1] * int(math.prod(kernel)) * int(math.prod(out)) * itemsize
    return max(1, (BLOCK_BYTES if block_bytes is None else block_bytes) // max(1, per_sample))


def _columns_compiled(x_shape: Sequence[int], kernel: Sequence[int]) -> bool:
    """Whether the GEMM path of a layer with this input and kernel runs the compiled kernels for
    its column matrix (the rule of :func:`im2col_cm`), and so for the product's transposes."""
    return _backend.use_numba(math.prod(x_shape) * math.prod(kernel))


def _gemm_forward(cols: np.ndarray, weight: np.ndarray, groups: int, batch: int, out: tuple[int, ...],
                  bias: np.ndarray | None, into: np.ndarray | None = None, compiled: bool = False) -> np.ndarray:
    """The product, copied channel-first into a new array or into ``into`` (a block of the output);
    by a compiled kernel when ``compiled`` (the columns were built by one: the layer is large
    enough for the compiled kernels)."""
    out_ch = weight.shape[0]
    w = weight.reshape(groups, out_ch // groups, -1)  # (G, O_g, C_g*K)
    c = cols.reshape(groups, -1, cols.shape[1])  # (G, C_g*K, N*P)
    prod = _blas.matmul(w[0], c[0]) if groups == 1 else _blas.matmul(w, c).reshape(out_ch, -1)  # (O, N*P)
    if compiled and prod.dtype.char in "fd" and prod.flags.c_contiguous:
        from cnnlab.functional import _numba_kernels as nk

        y = nk.channel_first(prod, batch, bias, None if into is None else into.reshape(batch, out_ch, -1))
        return y.reshape(batch, out_ch, *out)
    prod = prod.reshape(out_ch, batch, -1).swapaxes(0, 1)  # (N, O, P) view
    y = (np.empty((batch, out_ch, prod.shape[2]), dtype=prod.dtype) if into is None
         else into.reshape(batch, out_ch, prod.shape[2]))
    if bias is None:
        np.copyto(y, prod)
    else:  # the bias is added during the copy that makes the output channel-first
        np.add(prod, bias.reshape(-1, 1).astype(prod.dtype, copy=False), out=y)
    return y.reshape(batch, out_ch, *out)


# Input channels up to which a layer the rule gives the implicit kernels takes its forward from
# the direct kernels' register blocks (:func:`cnnlab.functional._numba_blocked.forward`: 16
# positions of a row a vector, stored as they come) where its output rows are whole vectors of
# at least BLOCKED_FORWARD_MIN_WIDTH; the backward stays the implicit kernels'.  With so few
# channels the implicit kernels' sums run over few taps (72 for 8 channels of 3x3) between the
# transposes that store them.  Measured on 2 cores, forward, one process with settled threads
# (implicit / blocks / torch, ms): N32 C8 32x32 -> 64 k3 p1 2.99 / 1.89 / 1.70, N32 C12 32x32 ->
# 64 4.08 / 3.29 / 2.56, N16 C8 32x32 -> 128 k5 5.47 / 4.65 / 4.02, N16 C4 64x64 -> 32 2.30 /
# 1.22 / 2.20, N32 C8 32x32 -> 16 0.92 / 0.80 / 1.28; against it rows of 14-28 (N64 C8 14x14 -> 64
# 0.98 / 2.49, N32 C8 28x28 -> 64 1.72 / 1.68, N16 C8 24x24 -> 64 0.99 / 1.09) and of 16 (N32
# C8 16x16 -> 32 0.51 / 0.63), and 16 channels (N32 C16 32x32 -> 64 4.26 / 3.67, where Winograd
# takes 3.46).
BLOCKED_FORWARD_MAX_CHANNELS = 12
BLOCKED_FORWARD_MIN_WIDTH = 32


def _blocked_forward_pays(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], dilation: Sequence[int],
                          groups: int, out: Sequence[int]) -> bool:
    """Whether the automatic rule's implicit layer takes its forward from the direct kernels'
    register blocks instead (:data:`BLOCKED_FORWARD_MAX_CHANNELS`): float32, 2-d, one group, stride
    and dilation 1, output rows a multiple of 16 and at least :data:`BLOCKED_FORWARD_MIN_WIDTH`."""
    from cnnlab.functional import _numba_blocked as nb

    return (len(out) == 2 and groups == 1 and weight.shape[1] <= BLOCKED_FORWARD_MAX_CHANNELS
            and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and out[1] >= BLOCKED_FORWARD_MIN_WIDTH
            and out[1] % nb.F_POSITIONS == 0 and x.dtype == np.float32 and weight.dtype == np.float32
            and _direct_compiled(x, weight, out))


def _direct_compiled(x: np.ndarray, weight: np.ndarray, out: Sequence[int]) -> bool:
    """Whether the direct loops run compiled (Numba) for this problem, rather than in NumPy."""
    return _backend.use_numba(x.size * weight[0].size) and len(out) <= 2 and x.dtype.kind in "fi"


def _direct_buffered(weight_shape: Sequence[int], groups: int, pads: Sequence[tuple[int, int]]) -> bool:
    """Whether the compiled direct kernels pad ``x`` plane by plane themselves (depthwise-like
    problems: :func:`cnnlab.functional._numba_direct.buffered`) instead of reading a padded copy."""
    from cnnlab.functional import _numba_direct as nd

    return nd.buffered(weight_shape, groups, _pads2(pads, len(weight_shape) - 2))


def _direct_forward(xp: np.ndarray, weight: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...],
                    groups: int, out: tuple[int, ...], pads: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """The direct loops on ``xp`` (zero-padded further by ``pads``: compiled buffered problems only);
    float32 2-d problems without groups, with rows of at least 16 outputs and a unit stride along
    them, by the register blocks of :func:`cnnlab.functional._numba_blocked.forward`."""
    n = len(out)
    if _direct_compiled(xp, weight, out):
        from cnnlab.functional import _numba_blocked as nb
        from cnnlab.functional import _numba_direct as nd

        if n == 2 and not any(lo or hi for lo, hi in pads or ()) and nb.forward_applies(xp, weight, stride, groups,
                                                                                          out):
            return nb.forward(xp, weight, stride, dilation, out)

        x2, _, s2, d2 = _as_2d(xp, weight.shape[2:], stride, dilation)
        w2 = weight if n == 2 else weight[:, :, None, :]
        y = nd.direct_forward(x2, w2, s2, d2, groups, _pad2(out, 1), _pads2(pads, n))
        return y.reshape(xp.shape[0], weight.shape[0], *out)
    batch = xp.shape[0]
    out_ch, cg = weight.shape[:2]
    og = out_ch // groups
    y = np.zeros((batch, groups, og, int(math.prod(out))), dtype=np.result_type(xp, weight))
    view = windows(xp, weight.shape[2:], stride, dilation)  # (N, C, *out, *k)
    w = weight.reshape(groups, og, cg, -1)
    for i, tap in enumerate(np.ndindex(*weight.shape[2:])):
        xs = view[(Ellipsis, *tap)].reshape(batch, groups, cg, -1)  # (N, G, C_g, P)
        if cg == 1:
            y += w[None, :, :, :, i] * xs
        else:
            y += np.matmul(w[:, :, :, i], xs)
    return y.reshape(batch, out_ch, *out)
