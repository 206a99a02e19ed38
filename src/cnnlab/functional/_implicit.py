"""The implicit-GEMM method of a convolution (``method='implicit'``): float32 products read from
the padded input where it lies, by the compiled kernels of :mod:`cnnlab.functional._numba_implicit`.

A convolution of ``xp`` (padded, ``(N, C, *sp)``) with ``w`` (``(O, C_g, *k)``) is, for every
output position ``p`` and filter ``o`` of group ``g``,

    y[b, o, p] = sum_{c, t} xp[b, g*C_g + c, p*s + t*d] * w[o, c, t]

and in the flat array ``xp`` the input value of tap ``(c, t)`` for position ``(b, p)`` lies at
``pos[b, p] + delta[c, t]``: ``pos`` the offset where the position's window starts, ``delta`` the
tap's offset inside a window.  The kernels take these two offset tables, so stride, dilation,
groups and 1-, 2- or 3-d problems are all the same call.

- forward: ``taps_forward`` over the padded input;
- weight gradient: ``grad_w[o, (c, t)] = sum_{b, p} g[b, o, p] * xp[pos[b, p] + delta[c, t]]``,
  ``taps_grad_w`` with the upstream gradient copied channels-last;
- input gradient (:func:`grad_x`): an input cell ``i = q*s + r`` receives ``g[b, o, (i + lo - t*d)
  / s] * w[o, c, t]`` from the taps with ``(r + lo - t*d) % s == 0``; so for each phase ``r`` of
  the stride (one with stride 1; all in one call), ``taps_forward`` over ``gp``, the upstream
  gradient zero-padded so that every such index lands inside it, with the phase's taps of the
  weights transposed (channels and filters swap places): the adjoint is a correlation again.  Its zero border is
  multiplied by every weight, so non-finite weights (``inf * 0`` would be ``nan``, a pair the
  definition does not have), and layers with fewer than :data:`MIN_LANES` input channels per
  group, take the GEMM path's col2im instead (:func:`grad_x_applies`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._columns import _out_shape, _zero_pad

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


def grad_x_applies(weight: np.ndarray) -> bool:
    """Whether the input gradient runs as implicit correlations: at least :data:`MIN_LANES`
    input channels per group, and finite weights (the padded upstream gradient's zero border
    meets every weight, and ``inf * 0`` is ``nan``)."""
    return weight.shape[1] >= MIN_LANES and bool(np.isfinite(weight).all())


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


def _tap_offsets(channels: int, plane: int, kernel: Sequence[int], dilation: Sequence[int],
                 pitch: Sequence[int]) -> np.ndarray:
    """``delta[c, t]`` (flat, int64): ``c*plane + sum_i t_i*d_i*pitch_i``."""
    return _window_starts(channels, plane, kernel, dilation, pitch, [0] * len(kernel))


def _padded(values: np.ndarray, multiple: int, fill: int) -> np.ndarray:
    extra = -values.shape[0] % multiple
    return values if not extra else np.concatenate([values, np.full(extra, fill, dtype=values.dtype)])


def _pack(matrix: np.ndarray, cols: int = _COLS) -> np.ndarray:
    """``(O, K)`` float32 -> flat ``wpk[o // cols, k, o % cols]``, zeros past row ``O`` (``cols``:
    the filters of a register block, 16 here, 6 in :func:`cnnlab.functional._numba_blocked.forward`)."""
    from cnnlab.functional import _numba_implicit as ni

    return ni.pack(matrix[None], np.arange(matrix.shape[1]), cols)


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


@functools.lru_cache(maxsize=64)
def _tables(batch: int, channels: int, spatial: tuple[int, ...], out_ch: int, cg: int, kernel: tuple[int, ...],
            out: tuple[int, ...], step: tuple[int, ...], dilation: tuple[int, ...]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pos, yoff, delta)`` of a convolution's forward (and, without ``pos``'s padding entries,
    of its weight gradient); cached, since a training run asks for the same few geometries every
    step, and read-only.  ``delta`` addresses group 0's channels: a group's are ``g*C_g*plane``
    further."""
    plane, pitch, npos = int(math.prod(spatial)), _pitches(spatial), int(math.prod(out))
    pos = _padded(_window_starts(batch, channels * plane, out, step, pitch, [0] * len(out)), _ROWS, 0)
    yoff = (np.arange(batch, dtype=np.int64)[:, None] * (out_ch * npos) + np.arange(npos, dtype=np.int64)).reshape(-1)
    return _frozen(pos, _padded(yoff, _ROWS, -1), _tap_offsets(cg, plane, kernel, dilation, pitch))


def forward(x: np.ndarray, weight: np.ndarray, stride: Sequence[int], dilation: Sequence[int], groups: int,
            pads: Sequence[tuple[int, int]] | None, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(y, xp)``: the convolution of ``x`` zero-padded by ``pads``, and that padded copy (what the
    backward reads): ``y[b, o, p] = bias[o] + sum_{c, t} xp[b, g*C_g + c, p*s + t*d] * w[o, c, t]``."""
    from cnnlab.functional import _numba_implicit as ni

    xp = _padded_input(x, pads)
    batch, channels, spatial = xp.shape[0], xp.shape[1], xp.shape[2:]
    out_ch, cg = weight.shape[:2]
    og = out_ch // groups
    out = _out_shape(xp.shape, weight.shape[2:], stride, dilation)
    pos, yoff, delta = _tables(batch, channels, tuple(spatial), out_ch, cg, tuple(weight.shape[2:]), tuple(out),
                               tuple(stride), tuple(dilation))
    plane = int(math.prod(spatial))
    y = np.empty((batch, out_ch, *out), np.float32)
    pstart, dstart = ni.starts([pos.shape[0]]), ni.starts([delta.shape[0]])
    for g in range(groups):
        rows = slice(g * og, (g + 1) * og)
        wpk = _pack(weight[rows].reshape(og, -1))
        bpk = _bias16(None if bias is None else np.asarray(bias[rows], np.float32), og)
        ni.taps_forward(xp.reshape(-1), wpk, pstart[:1], bpk, pos, pstart, delta + g * cg * plane, dstart, yoff,
                        int(math.prod(out)), g * og, og, y.reshape(-1))
    return y, xp


def grad_w(grad_out: np.ndarray, xp: np.ndarray, weight_shape: Sequence[int], stride: Sequence[int],
           dilation: Sequence[int], groups: int) -> np.ndarray:
    """The weight gradient from the upstream gradient and the padded input the forward kept."""
    from cnnlab.functional import _numba_implicit as ni

    batch, channels, spatial = xp.shape[0], xp.shape[1], xp.shape[2:]
    out_ch, cg = weight_shape[:2]
    og = out_ch // groups
    kernel, out = weight_shape[2:], grad_out.shape[2:]
    plane, npos = int(math.prod(spatial)), int(math.prod(out))
    pos, _, delta = _tables(batch, channels, tuple(spatial), out_ch, cg, tuple(kernel), tuple(out), tuple(stride),
                            tuple(dilation))
    pos = pos[:batch * npos]  # (no padding entries: the positions are the sum's index here)
    taps = int(cg * math.prod(kernel))
    delta = _padded(delta, _ROWS, 0)
    g = np.ascontiguousarray(grad_out, np.float32).reshape(batch, groups, og, npos)
    result = np.empty((groups, og, taps), np.float32)
    for k in range(groups):
        gk = g[:, k] if groups == 1 else np.ascontiguousarray(g[:, k])
        result[k] = ni.taps_grad_w(xp.reshape(-1), gk, pos, delta + k * cg * plane, taps)
    return result.reshape(weight_shape)


def _phases(x_spatial: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
            dilation: tuple[int, ...], pads_lo: tuple[int, ...]) -> tuple[tuple, list[tuple]]:
    """The input gradient's plan: ``(border, phases)``.

    An input cell ``i = q*s + r`` (per axis) receives ``g[(i + lo - t*d) / s] * w[t]`` from the
    taps ``t`` with ``(r + lo - t*d) % s == 0``: for each phase ``r`` (per axis), a correlation
    of ``g`` padded by ``border`` with those taps, at ``e(r, t) = (r + lo - t*d) // s`` plus the
    low border.  Each phase: ``(spatial positions q (shape), taps (flat kernel indices), their
    offsets per axis (lists), r)``; a phase without taps has none (its cells stay zero)."""
    axes = []  # per axis: (low border, high border, [(r, Q, [(t, e)])])
    for size, o, k, s, d, lo in zip(x_spatial, out, kernel, stride, dilation, pads_lo, strict=True):
        rows = []
        for r in range(min(s, size)):
            count = len(range(r, size, s))
            taps = [(t, (r + lo - t * d) // s) for t in range(k) if (r + lo - t * d) % s == 0]
            rows.append((r, count, taps))
        es = [e for _, _, taps in rows for _, e in taps]
        low = max([0] + [-e for e in es])
        high = max([0] + [count - 1 + e + 1 - o for _, count, taps in rows for _, e in taps])
        axes.append((low, high, rows))
    border = tuple((low, high) for low, high, _ in axes)
    phases = []
    for combo in itertools.product(*(rows for _, _, rows in axes)):
        shape = tuple(count for _, count, _ in combo)
        taps = list(itertools.product(*(taps for _, _, taps in combo)))
        flat = [int(np.ravel_multi_index(tuple(t for t, _ in tap), kernel)) for tap in taps]
        # shifts[a][j]: tap j's offset along axis a in the padded gradient
        by_axis = list(zip(*taps, strict=True)) if taps else []
        shifts = [[e + axes[a][0] for _, e in column] for a, column in enumerate(by_axis)]
        phases.append((shape, flat, shifts, tuple(r for r, _, _ in combo)))
    return border, phases


@functools.lru_cache(maxsize=64)
def _grad_x_tables(batch: int, out_ch: int, og: int, channels: int, x_spatial: tuple[int, ...], out: tuple[int, ...],
                   kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
                   pads_lo: tuple[int, ...]) -> tuple[tuple, bool, list[list[int]], tuple[np.ndarray, ...]]:
    """``(border, complete, flats, (pos, pstart, yoff, delta, dstart))`` of :func:`grad_x` (cached
    and read-only, as :func:`_tables`) over the upstream gradient padded by ``border``: for each
    phase with taps, its flat taps in ``flats`` and its tables concatenated into those of
    :func:`cnnlab.functional._numba_implicit.taps_forward` (``delta`` addressing group 0's
    filters), so that one call runs every phase, region by region; ``complete``: every phase has
    taps (else the cells of those without stay zero)."""
    border, phases = _phases(x_spatial, out, kernel, stride, dilation, pads_lo)
    n = len(out)
    g_spatial = [o + lo + hi for o, (lo, hi) in zip(out, border, strict=True)]
    gplane, gpitch = int(math.prod(g_spatial)), _pitches(g_spatial)
    xplane, xpitch = int(math.prod(x_spatial)), _pitches(x_spatial)
    flats, poss, yoffs, deltas = [], [], [], []
    for shape, flat, shifts, r in phases:
        if not flat or not math.prod(shape):
            continue
        poss.append(_padded(_window_starts(batch, out_ch * gplane, shape, [1] * n, gpitch, [0] * n), _ROWS, 0))
        yoffs.append(_padded(_window_starts(batch, channels * xplane, shape, stride, xpitch, r), _ROWS, -1))
        tap_at = sum(np.asarray(sh, np.int64) * pt for sh, pt in zip(shifts, gpitch, strict=True))
        # The taps in the order of their offsets: the adjoint's taps come in falling order, and
        # reading the gradient backwards ran the kernel at half speed (the 14x14 layer's input
        # gradient, one thread: 16.2 ms, 7.4 ms ascending).
        order = np.argsort(tap_at, kind="stable")
        flats.append([flat[i] for i in order])
        deltas.append((np.arange(og, dtype=np.int64)[:, None] * gplane + tap_at[order][None, :]).reshape(-1))
    from cnnlab.functional import _numba_implicit as ni

    def joined(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    tables = (*_frozen(joined(poss)), ni.starts([len(p) for p in poss]), *_frozen(joined(yoffs), joined(deltas)),
              ni.starts([len(d) for d in deltas]))
    return border, all(flat for _, flat, _, _ in phases), flats, tables


def grad_x(grad_out: np.ndarray, weight: np.ndarray, x_shape: Sequence[int], pads: Sequence[tuple[int, int]] | None,
           stride: Sequence[int], dilation: Sequence[int], groups: int) -> np.ndarray:
    """The input gradient (of the unpadded input ``x_shape``): per phase of the stride
    (:func:`_phases`), the correlation of the padded upstream gradient with the weights of the
    phase's taps, transposed (channels and filters swap places); one kernel call per group runs
    all phases, each region's phases one after another (phase by phase over the whole batch, the
    stride-2 layer's input gradient took 7.9 ms against its forward's 4.3: each phase wrote a
    quarter of every cache line of the input gradient, which was out of the cache by the next)."""
    from cnnlab.functional import _numba_implicit as ni

    n = weight.ndim - 2
    pads = tuple(pads) if pads else ((0, 0),) * n
    batch, out_ch = grad_out.shape[:2]
    channels, cg = x_shape[1], weight.shape[1]
    og = out_ch // groups
    x_spatial = tuple(x_shape[2:])
    border, complete, flats, (pos, pstart, yoff, delta, dstart) = _grad_x_tables(
        batch, out_ch, og, channels, x_spatial, tuple(grad_out.shape[2:]), tuple(weight.shape[2:]), tuple(stride),
        tuple(dilation), tuple(lo for lo, _ in pads))
    y = (np.empty if complete else np.zeros)((batch, channels, *x_spatial), np.float32)
    if not flats:
        return y
    gp = _padded_input(np.asarray(grad_out, np.float32), border if any(a or b for a, b in border) else None)
    gplane, xplane = int(math.prod(gp.shape[2:])), int(math.prod(x_spatial))
    w = weight.reshape(groups, og, cg, -1)
    bias = _bias16(None, cg)
    wstart = ni.starts(np.diff(dstart) * bias.shape[0])
    for g in range(groups):
        # rows: the group's input channels; columns: (filter, tap) of each phase's taps
        wpk = np.concatenate([ni.pack(w[g], flat) for flat in flats])
        ni.taps_forward(gp.reshape(-1), wpk, wstart, bias, pos, pstart, delta + g * og * gplane, dstart, yoff, xplane,
                        g * cg, cg, y.reshape(-1))
    return y
