"""The implicit-GEMM method of a convolution (``method='implicit'``): float32 products read from
the input where it lies, by the compiled kernels of :mod:`cnnlab.functional._numba_implicit`.

A convolution of ``xp`` (``x`` zero-padded, ``(N, C, *sp)``) with ``w`` (``(O, C_g, *k)``) is,
for every output position ``p`` and filter ``o`` of group ``g``,

    y[b, o, p] = sum_{c, t} xp[b, g*C_g + c, p*s + t*d] * w[o, c, t]

and in the flat array ``x`` the input value of tap ``(c, t)`` for position ``(b, p)`` lies at
``pos[b, p] + delta[c, t]``: ``pos`` the offset where the position's window starts (before the
padding is taken off), ``delta`` the tap's offset inside a window.  The kernels take these offset
tables, so stride, dilation, groups and 1-, 2- or 3-d problems are all the same call.  The taps
that read padding are left out rather than read from a padded copy: the positions whose windows
keep the same taps inside the input form a class (the interior, the edges, the corners), each
with its own taps (:func:`_tables`).  A term of the definition is then missing only where a
zero meets a value that is not finite (``inf * 0`` is ``nan``), and those calls run on a padded
copy instead.  Where a padded copy is read (classes would cost more), with finite weights each
block of positions skips the kernel rows that read the copy's zero border alone
(:class:`cnnlab.functional._frames.Frame`); likewise the input gradient of stride 1 on its
bordered upstream gradient.

- forward: ``taps_forward``, the classes its phases;
- weight gradient (:func:`cnnlab.functional._implicit_grad_w.grad_w`): ``grad_w[o, (c, t)] =
  sum_{b, p} g[b, o, p] * xp[pos[b, p] + delta[c, t]]``, ``taps_grad_w``
  (:mod:`cnnlab.functional._numba_implicit_grad_w`) with the upstream gradient copied
  channels-last, image by image;
- input gradient (:func:`cnnlab.functional._implicit_grad_x.grad_x`): an input cell ``i = q*s +
  r`` receives ``g[b, o, (i + lo - t*d) / s] * w[o, c, t]`` from the taps with ``(r + lo - t*d) %
  s == 0``; so for each phase ``r`` of the stride (one with stride 1) and class of its cells,
  ``taps_forward`` over the upstream gradient, with the class's taps of the weights transposed
  (channels and filters swap places): the adjoint is a correlation again, all in one call.
  Non-finite weights (the sum has no term there, but a zero padding would multiply them), and
  layers with fewer than :data:`GRAD_X_MIN_LANES` input channels per group, take the GEMM path's
  col2im instead (:func:`grad_x_applies`).

Every group runs in one call of each kernel.  Groups of at most :data:`PAIR_LANES` filters (or
input channels, for the input gradient) run blocks of 8 filters at 2 adjacent positions where the
positions pair (neighbours along the last axis that read neighbouring inputs: a forward's at a
unit stride there, an input gradient's cells of one phase whatever the stride, stored a stride
apart; :mod:`cnnlab.functional._pairs`): the positions that pair in one call, the others (the
left and right edges, a column wide, and an odd row's last) in a second one.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._columns import _out_shape, _with_pads, _zero_pad

_ROWS, _COLS = 6, 16  # the kernels' register block: positions (or taps) by filters


def applies(x: np.ndarray, weight: np.ndarray) -> bool:
    """Whether the implicit kernels run for this problem: float32 input and weight, 1- to 3-d,
    and the compiled kernels allowed (:func:`cnnlab.functional._backend.use_numba`)."""
    return (x.dtype == np.float32 and weight.dtype == np.float32 and 1 <= weight.ndim - 2 <= 3
            and _backend.use_numba(float(x.size) * float(weight[0].size)))


# Filters per group (forward, weight gradient) or input channels per group (input gradient)
# from which the implicit kernels run: the register block holds 16 of them, so with fewer than 8
# more than half of its lanes would compute padding (measured on 2 cores, the input gradient of
# N8 C3 224x224 -> 64 k7 s2: 142 ms, 3 of 16 lanes used, against 60 ms by col2im).
MIN_LANES = 8
# Lanes (filters, or input channels for the input gradient) per group up to which the kernels run
# blocks of 8 filters at 2 adjacent positions (span 2), where the layer's positions come in such
# pairs (neighbours reading neighbouring inputs: a forward's at a unit stride along the last axis,
# an input gradient's cells of one phase; each row's positions two by two): 16 filters a block
# would leave half the lanes idle.
PAIR_LANES = 8
# Input channels per group from which a convolution's input gradient runs as implicit correlations
# (:func:`grad_x_applies`): its cells of one phase pair (span 2), so 4 channels fill half the
# block's lanes, as 8 filters of a paired forward do.  Measured on the Zen 4, 2 threads,
# forward+backward through autograd with an implicit forward, settled calls alternating in one
# process, input gradient by col2im / implicit (ms): N64 C6 14x14 -> 16 k5 (LeNet-5's second
# layer) 2.64 / 2.31; N32 C6 28x28 -> 32 k3 p1 4.91 / 4.07; N64 C4 28x28 -> 16 k3 p1 4.84 / 4.02;
# N16 C5 56x56 -> 32 k3 p1 8.05 / 7.45; N64 C7 14x14 -> 32 k3 p1 3.42 / 2.77; N8 C6 64x64 -> 16 k5
# p2 8.04 / 5.41; stride 2: N32 C6 28x28 -> 32 2.55 / 2.33, N32 C4 32x32 -> 64 3.28 / 3.27.  With 3
# channels they tie (N64 C3 8x8 -> 32 k3 p1 1.63 / 1.64; N32 C3 32x32 -> 32 s2 2.48 / 2.45).  A
# transposed convolution's forward, which is such an input gradient, keeps :data:`MIN_LANES`
# (N16 C64 28x28 -> 4 k4 s2 p1: 2.34 ms by col2im, 2.97 implicit).
GRAD_X_MIN_LANES = 4


# Multiply-adds (times 2: FLOPs) of a forward from which 'auto' takes the implicit kernels: below it
# a call is mostly its fixed costs (offset tables, packed weights, three parallel launches), which
# the GEMM path's few NumPy calls undercut.  Measured on 2 cores, training steps in one process,
# implicit / GEMM path: the MNIST-1D CNN (conv1d layers of 3.4 and 1.9 MFLOP) 6.3 / 5.1 ms,
# LeNet-5 (its second layer 31 MFLOP) 14.8 / 17.9 ms.
MIN_FLOPS = 1e7


# Output positions (over the batch) from which 'auto' takes the implicit kernels: with fewer, the
# GEMM path's product wins.  Measured on 2 cores, 3x3 layers, forward / forward+backward, GEMM
# path time over implicit: N1 C512 7x7 -> 512 (49 positions) 0.58 / 1.09; N8 C512 7x7 (392)
# 0.88 / 0.95; N1 C128 14x14 (196) 0.72 / 0.74; N2 C64 14x14 (392) 0.84 / 0.83; N16 C64 7x7
# (784) 0.97 / 0.92; N16 C256 7x7 (784) 1.17 / 1.07; N8 C64 14x14 (1,568) 1.20 / 1.02.
MIN_POSITIONS = 512
# Positions from which, and filters per group up to which, 'auto' takes them all the same: the
# GEMM path's column matrix (C*K values a position) weighs most against the product where the
# filters are few.  Measured on 2 cores, forward+backward, one process with settled threads, GEMM
# path time over implicit: N1 16x16 (256 positions) -> 16 k5 p2 C128 1.53, C512 1.73; -> 64 k3 p1
# C512 1.01, k7 p3 C128 1.23; N8 7x7 (392) -> 16 k3 C128 1.44, k7 C512 3.35; -> 64 k5 C512 1.45;
# against it -> 256 (N1 16x16 k5 C512 0.76, N8 7x7 k3 C512 0.91).
MIN_POSITIONS_FEW_FILTERS = 256
FEW_FILTERS = 64
# Positions from which, with at most FEW_FILTERS filters per group and at least DEEP_TAPS taps a
# position (input channels per group times the kernel's size), 'auto' takes them all the same: the
# column matrix is DEEP_TAPS values or more a position, and copying it costs more than the product.
# Measured on 2 cores, forward+backward, one process with settled threads, fastest of 31, GEMM path
# / implicit / torch (ms): N1 C512 14x14 -> 8 k5 p2 (196 positions) 3.73 / 2.40 / 1.82; N1 C512
# 10x10 -> 8 k5 p2 (100) 2.71 / 1.66 / 1.29; N2 C512 7x7 -> 16 k5 p2 (98) 1.99 / 1.43 / 0.95; N2
# C256 8x8 -> 16 k5 p2 (128) 1.55 / 1.12 / 0.96; N1 C128 14x14 -> 32 k7 p3 2.79 / 1.51 / 1.29; N1
# C512 12x12 -> 32 k3 p1 1.85 / 1.59 / 1.32; N1 C512 10x10 -> 32 k3 p1 1.20 / 1.15 / 1.09, -> 64
# 1.85 / 1.66 / 1.48; N2 C512 7x7 -> 64 k3 p1 2.01 / 1.79 / 1.39.  With fewer taps the GEMM path
# keeps them: N1 C128 14x14 -> 16 k3 p1 (1,152 taps) 1.16 / 1.19, N1 C256 8x8 -> 16 k3 p1 1.02 /
# 1.10, N2 C64 8x8 -> 32 k3 p1 0.90 / 0.99.
MIN_POSITIONS_DEEP = 96
DEEP_TAPS = 4096
# Filters per group from which 'auto' takes the GEMM path instead (but for Winograd's layers): the
# implicit kernels stream every filter's packed weights past each job's positions, and OpenBLAS's
# blocked product reuses them better.  Measured on 2 cores, forward+backward, one process with
# settled threads, GEMM path / implicit (ms): N8 C128 28x28 -> 512 k5 p2 359 / 441 (torch 303),
# N16 C256 14x14 -> 512 k5 352 / 413, N8 C128 16x16 -> 512 k7 225 / 255, N2 C128 16x16 -> 512 k3
# 10.6 / 12.1, conv1d N1 C256 L512 -> 512 k3 9.8 / 13.0; 384 filters even (N4 C64 56x56 k5 278 /
# 271, N16 C128 14x14 k5 135 / 141).
MANY_FILTERS = 512


# When the kernels skip the padding (classes of positions, :func:`_tables`) rather than read a
# padded copy.  The classes' taps beyond a position's full set (``extra``) cost ``PACK_COST``
# copied values each per filter, and the weight gradient runs each image's classes as segments,
# a segment's block of 6 taps and 16 filters ``SEGMENT_COST``; skipping pays where these stay
# below the padded copy they replace.  The rule was measured when each class packed its own
# copy of its taps' weights (since round 34 the classes read one packing through a table of
# rows, ``wtap``); it still sends the layers measured then and since to the faster route:
# padded copy / classes, forward+backward, 2 cores, one process (ms), then: the stride-2 layer
# N32 C32 32x32 -> 64 8.96 / 8.08 (classes chosen); N32 C32 28x28 -> 64 stride 1 20.0 / 21.4,
# N64 C64 7x7 -> 64 6.7 / 6.6, N8 C512 7x7 -> 512 47 / 84 (padded chosen); round 34, with one
# packing: the layer N32 C16 24x24 -> 32 k5 p2 9.1 / 9.6, N32 C32 28x28 -> 64 k5 p2
# 41.4 / 42.0, N64 C64 7x7 -> 64 k5 p2 14.4 / 24.2, N8 C512 7x7 -> 512 48.8 / 56.7, N64 C256
# 8x8 -> 64 k7 p3 97.5 / 238 (padded chosen), the stride-2 layer 8.07 / 8.13 (classes).
PACK_COST = 4.0
SEGMENT_COST = 40.0
# A padded copy's products of its zero border (multiply-adds, a filter's, for every position and
# tap that reads the border), in copied values: the classes skip them.  Since round 40 the weight
# gradient joins short segments class by class (:func:`_joined_segments`), and the classes won
# where each image's segments were short: 2 cores, one process, padded copy / classes (ms), the
# forward, input and weight gradients timed apart and added: N64 C256 7x7 -> 64 k7 s2 p3 (half the
# taps read the border) 24.2 / 18.6 (forward 8.7 / 5.2), N64 C256 8x8 -> 64 k7 p3 88.7 / 75.3;
# forward+backward through autograd: N64 C64 7x7 -> 64 k5 p2 10.4 / 7.7, N64 C64 7x7 -> 64 k3 p1
# 4.8 / 4.1, the layer N32 C16 24x24 -> 32 k5 p2 7.45 / 7.34; the padded copy kept: N8
# C512 14x14 -> 64 k7 s2 p3 23.8 / 25.4, N8 C512 7x7 -> 512 31.2 / 31.1, N2 C128 28x28 -> 128 k5
# s2 p2 7.0 / 7.0.
PRODUCT_COST = 0.1
# Whether a forward whose positions run in pairs (at most PAIR_LANES filters a group, a unit stride
# along the last axis) reads a padded copy wherever its output rows are of even width, whatever
# :func:`classes_pay` says: on the copy every position pairs, while the classes leave the left and
# right edges (a column wide) to a second call at half the lanes.  The rule's model counts neither.
# Measured on the Zen 4 (AVX-512), 2 threads, one process alternating, classes / padded copy,
# forward+backward (ms): N32 C64 28x28 -> 64 g8 8.18 / 7.37, N16 C64 56x56 -> 64 g8 16.8 / 15.1,
# N32 C256 14x14 -> 256 g32 9.97 / 9.41, N32 C128 8x8 -> 128 g16 2.12 / 1.90, N32 C64 10x10 -> 64
# g8 1.97 / 1.73, 12x12 2.49 / 2.03, N32 C32 16x16 -> 32 k5 p2 g4 3.51 / 3.05, N32 C64 28x28 -> 8
# 7.51 / 6.90, N64 C16 14x14 -> 8 2.16 / 2.07, N8 C32 112x112 -> 32 g4 13.9 / 13.7.  At odd widths
# the copy's rows leave a position single too, and the classes win or tie: N32 C128 7x7 -> 128
# g16 2.14 / 2.28 (and 2.49 / 2.62), N64 C256 7x7 -> 256 g32 7.27 / 8.01, N32 C64 13x13 -> 64 g8
# 2.99 / 2.98, 27x27 8.97 / 9.54.
PAIRS_PADDED = True


# Whether the products on a zero-padded copy skip the kernel rows (planes, in 3-d) that read its
# padding alone (:class:`cnnlab.functional._frames.Frame`).
SKIP_BORDER = True


def _finite(weight: np.ndarray) -> bool:
    """Whether every value of the weight is finite (compiled for float32: one pass, both cores)."""
    if weight.dtype == np.float32 and _backend.use_numba(weight.size):
        from cnnlab.functional._numba_kernels import all_finite

        return all_finite(weight)
    return bool(np.isfinite(weight).all())


def grad_x_applies(weight: np.ndarray, min_lanes: int | None = None) -> bool:
    """Whether the input gradient runs as implicit correlations: at least ``min_lanes`` input
    channels per group (None: :data:`GRAD_X_MIN_LANES`), and finite weights (the padded upstream
    gradient's zero border meets every weight, and ``inf * 0`` is ``nan``)."""
    return weight.shape[1] >= (GRAD_X_MIN_LANES if min_lanes is None else min_lanes) and _finite(weight)


def _pitches(spatial: Sequence[int]) -> list[int]:
    """Element distance between neighbours along each spatial axis of a C-contiguous plane."""
    return [int(math.prod(spatial[i + 1:])) for i in range(len(spatial))]


def _window_starts(batch: int, batch_stride: int, out: Sequence[int], step: Sequence[int],
                   pitch: Sequence[int], first: Sequence[int]) -> np.ndarray:
    """``pos[b, p]`` (flat, int64): ``b*batch_stride + sum_i (first_i + p_i*step_i) * pitch_i``."""
    starts = np.arange(batch, dtype=np.int64).reshape((batch,) + (1,) * len(out)) * batch_stride
    for axis, (size, s, pt, f) in enumerate(zip(out, step, pitch, first, strict=True)):
        shape = [1] * (len(out) + 1)
        shape[axis + 1] = size
        starts = starts + ((f + np.arange(size, dtype=np.int64) * s) * pt).reshape(shape)
    return starts.reshape(-1)


def _padded(values: np.ndarray, multiple: int, fill: int) -> np.ndarray:
    extra = -values.shape[0] % multiple
    return values if not extra else np.concatenate([values, np.full(extra, fill, dtype=values.dtype)])


def _pack(matrix: np.ndarray, cols: int = _COLS) -> np.ndarray:
    """``(O, K)`` float32 -> flat ``wpk[o // cols, k, o % cols]``, zeros past row ``O`` (``cols``:
    the filters of a register block, 16 here, 6 in :func:`cnnlab.functional._numba_blocked.forward`)."""
    from cnnlab.functional import _numba_implicit as ni

    return ni.pack(matrix[None], _every_tap(matrix.shape[1]), cols)  # (the same taps' array: its plan kept)


def _bias16(bias: np.ndarray | None, rows: int) -> np.ndarray:
    full = np.zeros(-(-rows // _COLS) * _COLS, np.float32)
    if bias is not None:
        full[:rows] = bias
    return full


def _padded_input(x: np.ndarray, pads: Sequence[tuple[int, int]] | None) -> np.ndarray:
    """``x`` zero-padded by ``pads`` (C-contiguous): on both cores by the compiled kernel for 1-
    and 2-d float32 inputs (the 14x14 layer's padded upstream gradient, 4 MB: 1.2 ms by NumPy's
    zeros and copy), else by :func:`cnnlab.functional._windows.pad`."""
    if pads and x.dtype == np.float32 and x.ndim <= 4 and all(lo >= 0 and hi >= 0 for lo, hi in pads):
        from cnnlab.functional import _numba_kernels

        return _numba_kernels.pad_planes(x, pads)
    return np.ascontiguousarray(_zero_pad(x, pads))


def _frozen(*tables: np.ndarray) -> tuple[np.ndarray, ...]:
    for table in tables:
        table.flags.writeable = False
    return tables


def _runs(count: int, first: int, step: int, offsets: Sequence[int], size: int) -> list[tuple[int, int, tuple]]:
    """Along one axis, the output indices ``q = 0 .. count-1`` (window start ``first + q*step``) in
    runs ``(q0, length, valid)`` of the same taps ``valid``: those ``j`` whose cell ``first +
    q*step + offsets[j]`` lies in ``0 .. size-1`` (the others read the zero padding)."""
    runs: list[tuple[int, int, tuple]] = []
    for q in range(count):
        at = first + q * step
        valid = tuple(j for j, off in enumerate(offsets) if 0 <= at + off < size)
        if runs and runs[-1][2] == valid:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1, valid)
        else:
            runs.append((q, 1, valid))
    return runs


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class Tables(NamedTuple):
    """A convolution's classes of output positions (:func:`_tables`): class ``f`` has the
    positions ``pos[pstart[f]:pstart[f+1]]`` (padding entries to a multiple of :data:`_ROWS` last,
    with ``yoff < 0``), each read at ``pos + delta[k]`` for its taps
    ``delta[dstart[f]:dstart[f+1]]`` (flat weight taps ``flats[f]``), and written at ``yoff`` (its
    first filter's).  The weight gradient's taps ``delta6`` / ``dstart6`` / ``tapmap`` come in
    blocks of :data:`_ROWS`, padded with a valid offset and tap ``-1``, and its positions
    ``wpos`` (upstream gradient at ``wgoff``) image by image, in segments ``seg[i] .. seg[i+1]-1``
    of class ``segf[i]``.  ``tapless``: some output reads only padding; ``border``: ``(axis, q0,
    length)``, the runs of output indices along an axis that miss a tap there (every position
    with a padding tap lies in one)."""

    flats: tuple[np.ndarray, ...]
    pos: np.ndarray
    pstart: np.ndarray
    yoff: np.ndarray
    delta: np.ndarray
    dstart: np.ndarray
    delta6: np.ndarray
    dstart6: np.ndarray
    tapmap: np.ndarray
    wpos: np.ndarray
    wgoff: np.ndarray
    seg: np.ndarray
    segf: np.ndarray
    tapless: bool
    border: list[tuple[int, int, int]]


@functools.lru_cache(maxsize=64)
def _tables(batch: int, channels: int, spatial: tuple[int, ...], out_ch: int, cg: int, kernel: tuple[int, ...],
            out: tuple[int, ...], step: tuple[int, ...], dilation: tuple[int, ...], lows: tuple[int, ...]) -> Tables:
    """The classes of a convolution's output positions over its unpadded input (``spatial``,
    zero padding ``lows`` before it, the padding after it implied by ``out``): the positions
    whose windows read the same taps inside the input form a class (in 2-d, the interior, the
    edges and the corners), and the kernels skip the taps that read padding, with no padded copy
    of the input (the stride-2 layer's, N32 C32 34x34: 0.44 ms of its 9.2 ms step).  Cached,
    since a training run asks for the same few geometries every step, and read-only; ``delta``
    addresses group 0's channels (a group's are ``g*C_g*plane`` further)."""
    plane, pitch, npos = int(math.prod(spatial)), _pitches(spatial), int(math.prod(out))
    ktaps = int(math.prod(kernel))
    axes = [_runs(o, -lo, s, [t * d for t in range(k)], n)
            for o, lo, s, d, k, n in zip(out, lows, step, dilation, kernel, spatial, strict=True)]
    classes, tapless = [], False
    for combo in itertools.product(*axes):
        if not all(valid for _, _, valid in combo):
            tapless = True  # (its outputs are the bias alone)
            continue
        shape = [length for _, length, _ in combo]
        pos = _window_starts(batch, channels * plane, shape, step, pitch,
                             [q0 * s - lo for (q0, _, _), s, lo in zip(combo, step, lows, strict=True)])
        yoff = _window_starts(batch, out_ch * npos, shape, [1] * len(out), _pitches(out), [q0 for q0, _, _ in combo])
        taps = list(itertools.product(*(valid for _, _, valid in combo)))
        at = np.array([sum(t * d * pt for t, d, pt in zip(tap, dilation, pitch, strict=True)) for tap in taps],
                      np.int64)
        flat = np.array([np.ravel_multi_index(tap, kernel) for tap in taps], np.int64)
        channel = np.arange(cg, dtype=np.int64)[:, None]
        classes.append((pos, yoff, (channel * plane + at).reshape(-1), (channel * ktaps + flat).reshape(-1)))
    classes.sort(key=lambda c: -c[0].size)  # (the interior first: see below)
    # the weight gradient's positions image by image, each image's classes one after another
    # (class by class over the batch, an edge's positions read a new image every few positions,
    # out of the caches: the stride-2 layer's weight gradient took 3.5 ms, not 2.9)
    per_image = [c[0].size // batch for c in classes]
    wpos, wgoff = ((np.concatenate([c[i].reshape(batch, -1) for c in classes], axis=1).reshape(-1) if classes
                    else np.zeros(0, np.int64)) for i in (0, 1))
    seg = (np.arange(batch, dtype=np.int64)[:, None] * sum(per_image)
           + np.concatenate([[0], np.cumsum(per_image)[:-1]]).astype(np.int64)[None, :len(classes)]).reshape(-1)
    seg = np.append(seg, batch * sum(per_image))
    segf = np.tile(np.arange(len(classes), dtype=np.int64), batch)
    pos = [_padded(c[0], _ROWS, c[0][0]) for c in classes]
    yoff = [_padded(c[1], _ROWS, -1) for c in classes]
    delta6 = [_padded(c[2], _ROWS, c[2][0]) for c in classes]
    tapmap = [_padded(c[3], _ROWS, -1) for c in classes]
    from cnnlab.functional import _numba_implicit as ni

    return Tables(_frozen(*(c[3] for c in classes)), *_frozen(_joined(pos)), ni.starts([p.size for p in pos]),
                  *_frozen(_joined(yoff), _joined([c[2] for c in classes])),
                  ni.starts([c[2].size for c in classes]), *_frozen(_joined(delta6)),
                  ni.starts([d.size for d in delta6]), *_frozen(_joined(tapmap)),
                  *_frozen(wpos, wgoff, seg, segf), tapless,
                  [(a, q0, length) for a, runs in enumerate(axes) for q0, length, valid in runs
                   if len(valid) < kernel[a]])


def _geometry(src: np.ndarray, weight_shape: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
              pads: Sequence[tuple[int, int]] | None, out: Sequence[int]) -> Tables:
    n = len(weight_shape) - 2
    lows = tuple(lo for lo, _ in pads) if pads else (0,) * n
    return _tables(src.shape[0], src.shape[1], tuple(src.shape[2:]), weight_shape[0], weight_shape[1],
                   tuple(weight_shape[2:]), tuple(out), tuple(stride), tuple(dilation), lows)


def classes_pay(tables: Tables, padded_values: float, out_ch: int, full_taps: int) -> bool:
    """Whether reading the unpadded input by the classes of ``tables`` costs less than a padded
    copy of ``padded_values`` values and the products of its zero border (see
    :data:`PACK_COST`, :data:`PRODUCT_COST`): ``full_taps`` is a position's taps without padding
    (``C_g * prod(k)``), the classes' taps beyond it are run and segmented extra; the weight
    gradient's segments are counted as its kernel gets them (:func:`_joined_segments`).  The
    answer is kept for the same (cached, read-only) tables and numbers: its NumPy steps took 50 us
    of the issue's layer's forward, run after the previous kernel had emptied the caches."""
    from cnnlab.functional import _numba_implicit as ni

    key = (tables.dstart, tables.dstart6, tables.wpos, tables.wgoff, tables.seg, tables.segf, tables.pstart)
    return ni._memo(key, ("pays", padded_values, out_ch, full_taps, PACK_COST, SEGMENT_COST, PRODUCT_COST),
                    functools.partial(_classes_pay, tables, padded_values, out_ch, full_taps))


def _classes_pay(tables: Tables, padded_values: float, out_ch: int, full_taps: int) -> bool:
    extra = float(tables.dstart[-1] - full_taps)
    taps6 = np.diff(tables.dstart6)
    joined = _joined_segments(tables.wpos, tables.wgoff, tables.seg, tables.segf)[3]
    segments = max(0.0, float(taps6[joined].sum() - full_taps)) / _ROWS * -(-out_ch // _COLS)
    wasted = float(np.dot(np.diff(tables.pstart), full_taps - np.diff(tables.dstart)))  # (a filter's products)
    return PACK_COST * extra * out_ch + SEGMENT_COST * segments <= padded_values + PRODUCT_COST * wasted * out_ch


def forward(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], dilation: Sequence[int], groups: int,
            pads: Sequence[tuple[int, int]] | None, bias: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, int], ...] | None]:
    """``(y, src, pads)``: the convolution of ``x`` zero-padded by ``pads``,
    ``y[b, o, p] = bias[o] + sum_{c, t} xp[b, g*C_g + c, p*s + t*d] * w[o, c, t]``, and what the
    backward reads: ``x`` itself with ``pads`` still to apply (the kernels skip the taps that
    read padding: :func:`_tables`), or a padded copy with ``pads`` None: where skipping costs
    more (:func:`classes_pay`), or where it would leave out a term of the definition (a weight
    that is not finite: ``inf * 0`` is ``nan`` there; outputs that read only padding)."""

    pads = tuple(pads) if pads else None
    kernel = weight.shape[2:]
    out = _out_shape(_with_pads(x.shape, pads), kernel, stride, dilation)
    src, frame = np.ascontiguousarray(x), None
    if pads:
        tables = _geometry(x, weight.shape, stride, dilation, pads, out)
        padded = float(math.prod(_with_pads(x.shape, pads)))
        pays = classes_pay(tables, padded, weight.shape[0], int(math.prod(weight.shape[1:])))
        if pays and PAIRS_PADDED and _pairs_fill_rows(weight.shape[0] // groups, stride, out):
            pays = False  # (every position pairs on the padded copy: see PAIRS_PADDED)
        finite = _finite(weight)
        if tables.tapless or not pays or not finite:
            if finite and SKIP_BORDER:  # (the blocks skip the kernel rows that read the copy's zero border alone)
                frame = _frame(x.shape[2:], pads, dilation[0], kernel[0], weight.shape[1])
            src, pads = _padded_input(x, pads), None
    if not pads:
        tables = _geometry(src, weight.shape, stride, dilation, None, out)
    out_ch, cg = weight.shape[:2]
    og = out_ch // groups
    y = np.empty((src.shape[0], out_ch, *out), np.float32)
    gsrc = cg * int(math.prod(src.shape[2:]))  # (a group's input channels further on)
    phases = (tables.pos, tables.pstart, tables.yoff, tables.delta, tables.dstart)
    for flats, part, span in _phase_parts(og, stride[-1], tables.flats, phases):
        _forward_call(src, weight, bias, groups, flats, part, y, gsrc, span, frame=frame)
    return y, src, pads


def _pairs_fill_rows(filters: int, stride: Sequence[int], out: Sequence[int]) -> bool:
    """Whether a forward's positions would all pair on a padded copy (:data:`PAIRS_PADDED`): at
    most :data:`PAIR_LANES` ``filters`` a group, a unit stride along the last axis and output rows
    of even width."""
    return filters <= PAIR_LANES and stride[-1] == 1 and out[-1] % 2 == 0


def _frame(spatial: Sequence[int], pads: Sequence[tuple[int, int]], step: int, slabs: int, channels: int):
    """The :class:`cnnlab.functional._frames.Frame` of a copy of planes ``spatial``
    zero-padded by ``pads`` (the first axis's kernel rows ``step`` apart, ``slabs`` of them, the
    taps of ``channels`` channels a phase)."""
    from cnnlab.functional._frames import Frame

    shape = tuple(n + lo + hi for n, (lo, hi) in zip(spatial, pads, strict=True))
    return Frame(shape, pads[0][0], pads[0][0] + spatial[0], step, slabs, channels)


def _forward_call(src: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, groups: int,
                  flats: Sequence[np.ndarray], phases: tuple, y: np.ndarray, gsrc: int, span: int,
                  frame=None) -> None:
    """The products of :func:`forward` for the ``phases`` ``(pos, pstart, yoff, delta, dstart)``
    (taps ``flats``) into ``y``: every group in one call where a group's filters fit a block
    (with ``span`` 2, each filter's weights and bias twice), else a call per group; ``frame``:
    where ``src``'s zero padding lies, whose taps the blocks skip (finite weights only)."""
    from cnnlab.functional import _numba_implicit as ni

    out_ch = weight.shape[0]
    og = out_ch // groups
    pos, pstart, yoff, delta, dstart = run_phases(phases, span, og)
    cstride = int(math.prod(y.shape[2:]))
    w = weight.reshape(groups, og, -1)
    b = None if bias is None else np.asarray(bias, np.float32).reshape(groups, og)
    if span == 2:
        w, b = np.repeat(w, 2, axis=1), None if b is None else np.repeat(b, 2, axis=1)
    packs = _group_packs(w, span * og)
    wtap = _tap_rows(flats, 1, 0)  # (a forward's flat taps index its packed weights' rows)
    if packs.wpk is not None:  # (every group in one call)
        bpk = np.zeros((groups, -(-span * og // _COLS) * _COLS), np.float32)  # (each group's bias, padded to 16s)
        if b is not None:
            bpk[:, :span * og] = b
        ni.taps_forward(src.reshape(-1), packs.wpk, wtap, bpk.reshape(-1), pos, pstart, delta, dstart, yoff,
                        cstride, 0, og, y.reshape(-1), groups, gsrc, og, span=span, frame=frame)
        return
    for g in range(groups):
        ni.taps_forward(src.reshape(-1), packs(g), wtap, _bias16(None if b is None else b[g], og), pos, pstart,
                        delta + g * gsrc, dstart, yoff, cstride, g * og, og, y.reshape(-1), frame=frame)


def _phase_parts(lanes: int, in_step: int, flats: Sequence[np.ndarray], phases: tuple, out_step: int = 1
                 ) -> list[tuple]:
    """``[(flats, phases, span)]``: the calls that run the ``phases`` ``(pos, pstart, yoff, delta,
    dstart)`` (taps ``flats``) of a product with ``lanes`` filters (or input channels) a group.
    With at most :data:`PAIR_LANES` of them and neighbours along the last axis one value apart in
    the input (``in_step``: a forward's stride there; an input gradient's 1), the phases'
    positions that pair (:func:`cnnlab.functional._pairs.split_pairs`, the pair's second position
    ``out_step`` further on in the output: 1 for a forward, the stride for an input gradient) in
    blocks of 8 at 2 positions (span 2) and the others with 16 a block; else all of them in one
    call."""
    from cnnlab.functional import _pairs

    if lanes > PAIR_LANES or in_step != 1:
        return [(flats, phases, 1)]
    return [([flats[f] for f in part[0]], part[1:], span)
            for part, span in zip(_pairs.split_pairs(*phases, out_step=out_step), (2, 1), strict=True)
            if part is not None]


class _Packs:
    """The packed weights of every group (:func:`_group_packs`): ``packs(g) -> wpk``, and ``wpk``
    where they are one array (every group's, one after another), else None."""

    def __init__(self, make, wpk: np.ndarray | None = None) -> None:
        self._make, self.wpk = make, wpk

    def __call__(self, g: int) -> np.ndarray:
        return self._make(g)


def _group_packs(w: np.ndarray, lanes: int) -> _Packs:
    """The weights of every tap packed once for each group ``g`` (``w[g]``: ``(A, lanes, T)`` or
    ``(lanes, T)``, rows the kernels' lanes; :func:`cnnlab.functional._numba_implicit.pack`): the
    classes of positions read them through their taps' rows (:func:`_tap_rows`), so that none
    needs a packing of its own (the input gradient of N32 C16 24x24 -> 32 k5 p2 packed 185,000
    values for its 25 classes, against 12,800 once).  Where a group's lanes fit one block of
    the register block (at most 16), or there is one group, every group is packed in one
    parallel call, group after group: one call instead of one per group (N32 C256 14x14 -> 256
    in 32 groups packed its weights 32 times a pass, each a hand-off to the threads), and the
    kernels run every group in one call too.  Otherwise a call per group."""
    from cnnlab.functional import _numba_implicit as ni

    groups = w.shape[0]
    w = w.reshape(groups, -1, lanes, w.shape[-1])  # (G, A, lanes, T)
    every = _every_tap(w.shape[-1])
    if groups > 1 and lanes > ni.COLS:
        return _Packs(lambda g: ni.pack(w[g], every))
    wpk = ni.pack(w.reshape(-1, lanes, w.shape[-1]), every)
    return _Packs(lambda g: wpk, wpk)


@functools.lru_cache(maxsize=64)
def _every_tap(taps: int) -> np.ndarray:
    """``0 .. taps-1`` (int64, read-only): a packing of every tap, the same array each time (so
    that the packing's plan is found again, :func:`cnnlab.functional._numba_implicit._memo`)."""
    return _frozen(np.arange(taps, dtype=np.int64))[0]


def _tap_rows(flats: Sequence[np.ndarray], rows: int, taps: int) -> np.ndarray:
    """The row in the packed weights (:func:`_group_packs`) of each tap of the phases' taps
    ``flats`` as the kernels read them: ``flats[f][j]`` for a forward (``rows`` 1: its flat taps
    are the rows); for an input gradient, whose rows are ``(filter a, kernel tap t)`` with
    ``taps`` kernel taps, ``a * taps + flats[f][j]``, filter by filter (``rows`` filters), as its
    ``delta`` (int64, read-only; kept for the same read-only ``flats``)."""
    from cnnlab.functional import _numba_implicit as ni

    def make() -> np.ndarray:
        parts = [(np.arange(rows, dtype=np.int64)[:, None] * taps + np.asarray(f, np.int64)[None, :]).reshape(-1)
                 for f in flats]
        return _frozen(_joined(parts))[0]

    return ni._memo(list(flats), ("rows", rows, taps), make)


def _joined_segments(pos: np.ndarray, goff: np.ndarray, seg: np.ndarray, segf: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(pos, goff, seg, segf)`` of the weight gradient's kernel with its segments joined: the
    kernel loads and stores a segment's sums once per block of taps, so that short segments cost
    more in loads and stores than in products.  Segments shorter than
    :data:`cnnlab.functional._pairs.SMALL_SEGMENT` go after the others, class by class (each
    class's positions in their order), as :func:`cnnlab.functional._pairs.split_segments` does
    for the pairs; then each run of segments of one class is one segment (the kernel adds a
    segment's positions onto the sums in order, so a run gives the same sums as its segments one
    after another).  A padded copy has one class, one segment an image: N64 C256 7x7 -> 64 k7 s2,
    16 positions an image, loaded and stored its 3.2 MB of sums 64 times; with the padding's
    classes (16, of one position an image each), 1,024 times."""
    from cnnlab.functional import _numba_implicit as ni
    from cnnlab.functional._pairs import SMALL_SEGMENT

    def join() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        length = np.diff(seg)
        small = length < SMALL_SEGMENT
        order = np.concatenate([np.flatnonzero(~small), np.flatnonzero(small)[np.argsort(segf[small], kind="stable")]])
        if small.any():
            take = np.concatenate([np.arange(seg[i], seg[i + 1]) for i in order])
            p, g, f = pos[take], goff[take], segf[order]
            s = ni.starts(length[order])
        else:
            p, g, f, s = pos, goff, segf, seg
        first = np.flatnonzero(np.diff(f, prepend=-1))  # (the segments that start a run of one class)
        joined = (p, g, np.append(s[first], s[-1]), f[first])
        for a in joined:
            a.flags.writeable = False
        return joined

    return ni._memo((pos, goff, seg, segf), ("joined",), join)


# Whether the input gradient takes the bordered copy where that makes every block a run
# (:func:`cnnlab.functional._implicit_grad_x._runs_pay`), and the one-position-a-row calls'
# rows are re-tiled into whole blocks (:func:`run_phases`).
RUN_BLOCKS = True
# The most positions that re-tiling rows into whole blocks may add, as a share of a call's
# (:func:`run_phases`).  One thread, the fastest of 101 forwards, as they are / re-tiled (ms): N64
# C16 14x14 -> 16 k5 (rows of 10, 20% more positions) 0.60-0.62 / 0.52-0.53, N32 C32 12x12 -> 16 k3
# (rows of 10) 0.252 / 0.230, N32 C16 22x22 -> 16 k7 (rows of 16, 12.5%) 1.27 / 1.19; against it
# N64 C32 16x16 -> 16 k3 (rows of 14, 29%) 0.82 / 0.83-0.86.  Two panels gain nothing from runs of
# rows of 3 taps and take rows of 5 a tap at a time: N64 C32 16x16 -> 64 k3 2.67-2.81 / 3.25-3.45.
RUN_EXTRA = 0.2


def run_phases(phases: tuple, span: int, lanes: int) -> tuple:
    """The ``phases`` ``(pos, pstart, yoff, delta, dstart)`` of a kernel call with ``span``
    positions a row and ``lanes`` filters (input channels, for the input gradient) a group, their
    rows re-tiled into whole blocks of positions one after another
    (:func:`cnnlab.functional._pairs.aligned_runs`) where the kernels take such a block a row of
    taps at a time and that pays: one position a row, one panel of filters, the wide blocks of
    AVX-512, at most :data:`RUN_EXTRA` more positions; else as they are."""
    from cnnlab.functional import _numba_simd, _pairs

    if span != 1 or lanes > _COLS or not RUN_BLOCKS or not _numba_simd.WIDE:
        return phases
    pos, pstart, yoff, delta, dstart = phases
    runs = _pairs.aligned_runs(pos, pstart, yoff, RUN_EXTRA)
    return phases if runs is None else (*runs, delta, dstart)
