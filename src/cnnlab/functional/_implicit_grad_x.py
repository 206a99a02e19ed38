"""The input gradient of the implicit method (:func:`grad_x`; see
:mod:`cnnlab.functional._implicit`, whose settings it reads: :data:`~cnnlab.functional._implicit.PACK_COST`,
``SKIP_BORDER``, ``PAIR_LANES``, ``RUN_BLOCKS``): an input cell ``i = q*s + r`` receives ``g[b, o,
(i + lo - t*d) / s] * w[o, c, t]`` from the taps with ``(r + lo - t*d) % s == 0``; so for each
phase ``r`` of the stride and class of its cells, the forward kernel
(:func:`cnnlab.functional._numba_implicit.taps_forward`) over the upstream gradient, with the
class's taps of the weights transposed (channels and filters swap places), every phase and class
in one call.  Where the classes' extra taps cost more than a zero-bordered copy of the upstream
gradient, or where the copy makes every block of positions a run (:func:`_runs_pay`), the
products read that copy instead (:func:`_grad_x_plan`)."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np

from cnnlab.functional import _implicit as im


def _grad_x_axes(x_spatial: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...],
                 stride: tuple[int, ...], dilation: tuple[int, ...], pads_lo: tuple[int, ...]) -> list[list[tuple]]:
    """Per axis, the input gradient's phases ``(r, taps, runs)``: an input cell ``i = q*s + r``
    receives ``g[q + e] * w[t]`` from the taps ``(t, e)`` with ``(r + lo - t*d) % s == 0``,
    ``e = (r + lo - t*d) // s``, where ``q + e`` lies in the upstream gradient (``runs``: the
    phase's cells ``q`` in runs of the same valid taps, :func:`cnnlab.functional._implicit._runs`)."""
    axes = []
    for size, o, k, s, d, lo in zip(x_spatial, out, kernel, stride, dilation, pads_lo, strict=True):
        rows = []
        for r in range(min(s, size)):
            taps = [(t, (r + lo - t * d) // s) for t in range(k) if (r + lo - t * d) % s == 0]
            rows.append((r, taps, im._runs(len(range(r, size, s)), 0, 1, [e for _, e in taps], o)))
        axes.append(rows)
    return axes


def _grad_x_border(x_spatial: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...],
                   stride: tuple[int, ...], dilation: tuple[int, ...], pads_lo: tuple[int, ...]
                   ) -> tuple[tuple[int, int], ...]:
    """The zero border around the upstream gradient inside which every tap of every phase's
    cells lands (per axis, before and after)."""
    border = []
    for a, rows in enumerate(_grad_x_axes(x_spatial, out, kernel, stride, dilation, pads_lo)):
        pairs = [(len(range(r, x_spatial[a], stride[a])), e) for r, taps, _ in rows for _, e in taps]
        border.append((max([0] + [-e for _, e in pairs]), max([0] + [count + e - out[a] for count, e in pairs])))
    return tuple(border)


@functools.lru_cache(maxsize=64)
def _grad_x_tables(batch: int, out_ch: int, og: int, channels: int, x_spatial: tuple[int, ...], out: tuple[int, ...],
                   kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
                   pads_lo: tuple[int, ...]) -> tuple[bool, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """``(complete, flats, (pos, pstart, yoff, delta, dstart))`` of :func:`grad_x` over the
    unpadded upstream gradient: for each phase of the stride (:func:`_grad_x_axes`) and each
    class of its cells that read the same taps inside the gradient, its flat taps in ``flats``
    and its tables concatenated into those of
    :func:`cnnlab.functional._numba_implicit.taps_forward` (``delta`` addressing group 0's
    filters), so that one call runs every phase and class, region by region (cached and
    read-only, as :func:`cnnlab.functional._implicit._tables`); ``complete``: every cell has a tap (else the others stay
    zero)."""
    n = len(out)
    gplane, gpitch = int(math.prod(out)), im._pitches(out)
    xplane, xpitch = int(math.prod(x_spatial)), im._pitches(x_spatial)
    flats, poss, yoffs, deltas = [], [], [], []
    complete = True
    for phase in itertools.product(*_grad_x_axes(x_spatial, out, kernel, stride, dilation, pads_lo)):
        for combo in itertools.product(*(runs for _, _, runs in phase)):
            if not all(valid for _, _, valid in combo):
                complete = False
                continue
            shape = [length for _, length, _ in combo]
            starts = im._window_starts(batch, out_ch * gplane, shape, [1] * n, gpitch, [q0 for q0, _, _ in combo])
            poss.append(im._padded(starts, im._ROWS, starts[0]))  # (padding entries: a real position's)
            yoffs.append(im._padded(im._window_starts(batch, channels * xplane, shape, stride, xpitch,
                                                [r + q0 * s for (r, _, _), (q0, _, _), s in
                                                 zip(phase, combo, stride, strict=True)]), im._ROWS, -1))
            taps = list(itertools.product(*([taps[j] for j in valid] for (_, taps, _), (_, _, valid) in
                                            zip(phase, combo, strict=True))))
            tap_at = np.array([sum(e * pt for (_, e), pt in zip(tap, gpitch, strict=True)) for tap in taps], np.int64)
            flat = [int(np.ravel_multi_index(tuple(t for t, _ in tap), kernel)) for tap in taps]
            # The taps in the order of their offsets: the adjoint's taps come in falling order, and
            # reading the gradient backwards ran the kernel at half speed (the 14x14 layer's input
            # gradient, one thread: 16.2 ms, 7.4 ms ascending).
            order = np.argsort(tap_at, kind="stable")
            flats.append(np.array(flat, np.int64)[order])
            deltas.append((np.arange(og, dtype=np.int64)[:, None] * gplane + tap_at[order][None, :]).reshape(-1))
    from cnnlab.functional import _numba_implicit as ni

    tables = (*im._frozen(im._joined(poss)), ni.starts([len(p) for p in poss]),
              *im._frozen(im._joined(yoffs), im._joined(deltas)), ni.starts([len(d) for d in deltas]))
    return complete, im._frozen(*flats), tables


@functools.lru_cache(maxsize=64)
def _grad_x_plan(batch: int, out_ch: int, og: int, channels: int, cg_all: int, x_spatial: tuple[int, ...],
                 out: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
                 lows: tuple[int, ...], pack_cost: float, runs: bool = False
                 ) -> tuple[tuple[tuple[int, int], ...] | None, tuple]:
    """``(border, tables)`` of :func:`grad_x`: classes over the upstream gradient itself
    (``border`` None), or, where the classes' extra taps cost more than a copy of the gradient
    with a zero ``border`` (see :data:`cnnlab.functional._implicit.PACK_COST`) or ``runs``
    (:func:`_runs_pay`), the tables over that copy (a phase's taps then all inside it, one class
    each). The rule was made when each class packed its own weights (N8 C512 7x7 -> 512 packed
    for 33 ms against 0.2 ms of copying); with one packing for all (round 34) the layers it
    sends to the copy ran about as fast by classes (the input gradient alone, the fastest of 41
    rounds, copy / classes, ms: N64 C64 7x7 -> 64 k5 3.47 / 3.37, N32 C64 7x7 -> 64 k3 1.20 /
    1.16, N64 C64 8x8 -> 64 k3 2.22 / 2.25, N8 C512 7x7 -> 512 19.7 / 18.2, their medians as far
    apart the other way), and it was kept. ``cg_all``: the input channels of all groups;
    ``pack_cost``: ``PACK_COST`` (an argument, so that the cache holds the choice for the value
    it was made with)."""
    plan = _grad_x_tables(batch, out_ch, og, channels, x_spatial, out, kernel, stride, dilation, lows)
    border = _grad_x_border(x_spatial, out, kernel, stride, dilation, lows)
    bordered = tuple(o + lo + hi for o, (lo, hi) in zip(out, border, strict=True))
    other = _grad_x_tables(batch, out_ch, og, channels, x_spatial, bordered, kernel, stride, dilation,
                           tuple(lo + b * s for lo, (b, _), s in zip(lows, border, stride, strict=True)))
    extra = sum(len(f) for f in plan[1]) - sum(len(f) for f in other[1])
    if pack_cost * extra * og * cg_all > batch * out_ch * math.prod(bordered) or runs:
        return border, other
    return None, plan


def _runs_pay(cg: int, x_spatial: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> bool:
    """Whether the input gradient runs on a zero-bordered copy of the upstream gradient because
    every block of its positions is then a run along a row, which the one-panel kernel takes a
    row of taps at a time (:func:`cnnlab.functional._numba_panels._panel_run_taps`): unit stride
    and dilation, rows of the input a multiple of the block's 6 positions, one panel of 16 input
    channels a group (more than :data:`cnnlab.functional._implicit.PAIR_LANES`), AVX-512. By
    classes, the interior's rows (shorter by the kernel's width less one) break the blocks. The
    issue's layer N32 C16 24x24 -> 32 k5 p2, input gradient on one thread, fastest of 31 (ms):
    classes 3.2-3.4, bordered 2.3 (round 36, the kernel time alone)."""
    from cnnlab.functional import _numba_simd

    return (im.RUN_BLOCKS and _numba_simd.WIDE and im.PAIR_LANES < cg <= im._COLS and all(s == 1 for s in stride)
            and all(d == 1 for d in dilation) and x_spatial[-1] % im._ROWS == 0)


def grad_x(grad_out: np.ndarray, weight: np.ndarray, x_shape: Sequence[int], pads: Sequence[tuple[int, int]] | None,
           stride: Sequence[int], dilation: Sequence[int], groups: int) -> np.ndarray:
    """The input gradient (of the unpadded input ``x_shape``): per phase of the stride
    (:func:`_grad_x_axes`) and class of its cells, the correlation of the upstream gradient with
    the weights of the class's taps, transposed (channels and filters swap places); one kernel
    call per group runs all of them, each region's one after another (phase by phase over the
    whole batch, the stride-2 layer's input gradient took 7.9 ms against its forward's 4.3: each
    phase wrote a quarter of every cache line of the input gradient, which was out of the cache
    by the next).  The taps that would read outside the upstream gradient are skipped, with no
    padded copy of it."""

    n = weight.ndim - 2
    pads = tuple(pads) if pads else ((0, 0),) * n
    batch, out_ch = grad_out.shape[:2]
    channels, cg = x_shape[1], weight.shape[1]
    og = out_ch // groups
    x_spatial = tuple(x_shape[2:])
    out, kernel, stride, dilation = tuple(grad_out.shape[2:]), tuple(weight.shape[2:]), tuple(stride), tuple(dilation)
    lows = tuple(lo for lo, _ in pads)
    g = np.ascontiguousarray(grad_out, np.float32)
    border, plan = _grad_x_plan(batch, out_ch, og, channels, cg * groups, x_spatial, out, kernel, stride, dilation,
                                lows, im.PACK_COST, _runs_pay(cg, x_spatial, stride, dilation))
    frame = None
    if border:
        g = im._padded_input(g, border)
        if im.SKIP_BORDER and all(s == 1 for s in stride):  # (one phase, every tap of the kernel: its grid)
            frame = im._frame(out, border, dilation[0], kernel[0], og)
    complete, flats, phases = plan
    y = (np.empty if complete else np.zeros)((batch, channels, *x_spatial), np.float32)
    if not flats:
        return y
    gsrc = og * int(math.prod(g.shape[2:]))  # (a group's filters further on)
    # (cells paired by input channels: neighbours in a phase read neighbouring values of g, and
    # lie a stride apart in the input gradient)
    for part_flats, part, span in im._phase_parts(cg, 1, flats, phases, out_step=stride[-1]):
        _grad_x_call(g, weight, groups, part_flats, part, y, gsrc, span, frame=frame, pair_step=stride[-1])
    return y


def _grad_x_call(g: np.ndarray, weight: np.ndarray, groups: int, flats: Sequence[np.ndarray], phases: tuple,
                 y: np.ndarray, gsrc: int, span: int, frame=None, pair_step: int = 1) -> None:
    """The products of :func:`grad_x` for the ``phases`` ``(pos, pstart, yoff, delta, dstart)``
    (taps ``flats``) into ``y``: the rows of a group's weights are its input channels, the columns
    ``(filter, tap)`` of each class's taps; every group in one call where a group's channels fit
    a block (with ``span`` 2, each channel's weights twice), else a call per group."""
    from cnnlab.functional import _numba_implicit as ni

    out_ch, cg = weight.shape[:2]
    og = out_ch // groups
    pos, pstart, yoff, delta, dstart = im.run_phases(phases, span, cg)
    xplane = int(math.prod(y.shape[2:]))
    w = weight.reshape(groups, og, cg, -1)
    packs = im._group_packs(np.repeat(w, 2, axis=2) if span == 2 else w, span * cg)
    wtap = im._tap_rows(flats, og, w.shape[-1])  # (filter a's tap t: row a * taps + t of the packed weights)
    if packs.wpk is not None:  # (every group in one call)
        ni.taps_forward(g.reshape(-1), packs.wpk, wtap, np.zeros(groups * -(-span * cg // ni.COLS) * ni.COLS,
                                                                 np.float32),
                        pos, pstart, delta, dstart, yoff, xplane, 0, cg, y.reshape(-1), groups, gsrc, cg,
                        span=span, frame=frame, pair_step=pair_step)
        return
    for k in range(groups):
        ni.taps_forward(g.reshape(-1), packs(k), wtap, im._bias16(None, cg), pos, pstart, delta + k * gsrc, dstart,
                        yoff, xplane, k * cg, cg, y.reshape(-1), span=span, frame=frame, pair_step=pair_step)
