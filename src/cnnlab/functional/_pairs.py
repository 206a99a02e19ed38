"""Which positions of the implicit kernels' tables run in pairs (``span`` 2), as NumPy tables.

A group of at most 8 filters (or input channels, for the input gradient) would leave half of the
register block's 16 lanes idle; there the kernels of :mod:`cnnlab.functional._numba_implicit` hold
each filter at two adjacent positions.  This module splits their tables, once per geometry (kept
with the tables by :func:`cnnlab.functional._numba_implicit._memo`), into the positions that pair
(a position and the next one where that is the next value in the input and the next in the
output, or a stride further on for an input gradient's cells, taken in order: :func:`_pairing`)
and those left single, which keep one position a row in a second call: the forward's and the
input gradient's phases (:func:`split_pairs`) and the weight gradient's segments
(:func:`split_segments`, which also joins short segments class by class).
"""

from __future__ import annotations

import functools

import numpy as np

from cnnlab.functional._numba_implicit import ROWS, _memo, starts


def split_pairs(pos: np.ndarray, pstart: np.ndarray, yoff: np.ndarray, delta: np.ndarray, dstart: np.ndarray,
                out_step: int = 1) -> tuple[tuple | None, tuple | None]:
    """``(paired, rest)``: the phases of :func:`cnnlab.functional._numba_implicit.taps_forward`
    split into the positions that pair (in order, a position and the next one where that is the next
    value in the input and ``out_step`` further on in the output: ``pos + 1``, ``yoff + out_step``;
    :func:`_pairing`) and those that do not, each ``(phases, pos, pstart, yoff, delta, dstart)``
    (``phases``: the index of each part's phase, a phase in both where some of its positions pair
    and some do not; the paired ones' ``pos``, ``yoff`` the first position of each pair; each part
    padded to a multiple of ``ROWS`` as the tables are), or None where no position is of that kind.
    In a 2-d layer the rows pair two by two; a row of odd width leaves one position, and the left
    and right edges, a column wide, pair not at all.  ``out_step``: the output's distance between a
    pair's positions instead of 1 (an input gradient's cells of one phase of a stride lie that
    stride apart; the kernel then stores a pair's two values apart).  Kept for the next call with
    the same read-only tables."""
    return _memo((pos, pstart, yoff, delta, dstart), ("pairs", out_step),
                 functools.partial(_split_pairs, pos, pstart, yoff, delta, dstart, out_step))


def _split_pairs(pos: np.ndarray, pstart: np.ndarray, yoff: np.ndarray, delta: np.ndarray, dstart: np.ndarray,
                 out_step: int = 1) -> tuple[tuple | None, tuple | None]:
    kinds: tuple[list, list] = ([], [])  # (phase, its positions, its offsets, its taps) paired / not
    for f in range(pstart.shape[0] - 1):
        p, y = pos[pstart[f]:pstart[f + 1]], yoff[pstart[f]:pstart[f + 1]]
        taps = delta[dstart[f]:dstart[f + 1]]
        real = int(np.count_nonzero(y >= 0))  # (the padding entries come last)
        first, single = _pairing(p[:real], y[:real], out_step)
        for kind, at in zip(kinds, (first, single), strict=True):
            if at.size:
                lead, lead_y = p[at], y[at]
                extra = -lead.size % ROWS
                kind.append((f, np.concatenate([lead, np.full(extra, lead[0], np.int64)]),
                             np.concatenate([lead_y, np.full(extra, -1, np.int64)]), taps))
    return tuple(_phase_tables(k) if k else None for k in kinds)


def _pairing(pos: np.ndarray, out: np.ndarray, out_step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(first, single)``: the indices of the positions ``pos`` (written at ``out``) that begin a
    pair, taken in order (a position and the next one where that is the next value in the input
    and ``out_step`` further on in the output), and of those left single: in each chain of such
    neighbours, its 1st and 2nd, 3rd and 4th, ... positions pair, and an odd chain's last is single."""
    count = pos.size
    index = np.arange(count, dtype=np.int64)
    link = np.zeros(count, bool)  # (position i and i + 1 neighbours)
    link[:-1] = (pos[1:] == pos[:-1] + 1) & (out[1:] == out[:-1] + out_step)
    begins = np.ones(count, bool)
    begins[1:] = ~link[:-1]
    along = index - np.maximum.accumulate(np.where(begins, index, 0))  # (place in its chain)
    first = (along % 2 == 0) & link
    return index[first], index[(along % 2 == 0) & ~link]


def _phase_tables(phases: list) -> tuple:
    """``(phases, pos, pstart, yoff, delta, dstart)`` of the phases ``(f, pos, yoff, delta)``, read-only."""
    out = (np.array([f for f, _, _, _ in phases], np.int64), np.concatenate([p for _, p, _, _ in phases]),
           starts([len(p) for _, p, _, _ in phases]), np.concatenate([y for _, _, y, _ in phases]),
           np.concatenate([d for _, _, _, d in phases]), starts([len(d) for _, _, _, d in phases]))
    for a in out:
        a.flags.writeable = False
    return out


# Positions (pairs, where paired) below which :func:`split_segments` joins a class's segments.
SMALL_SEGMENT = 48


def split_segments(pos: np.ndarray, goff: np.ndarray, seg: np.ndarray, segf: np.ndarray
                   ) -> tuple[tuple | None, tuple | None]:
    """``(paired, rest)``: the segments of :func:`cnnlab.functional._numba_implicit_grad_w.taps_grad_w`
    split as :func:`split_pairs` splits the forward's phases (pairs in both the input and the
    upstream gradient; a segment's positions that pair in one kind, those left single in the
    other), each ``(pos, goff, seg, segf)`` (the paired ones' ``pos``, ``goff`` the first position
    of each pair), or None; in each, the segments shorter than :data:`SMALL_SEGMENT` are joined
    class by class (in order) after the others."""
    return _memo((pos, goff, seg, segf), ("pairs",), functools.partial(_split_segments, pos, goff, seg, segf))


def _split_segments(pos: np.ndarray, goff: np.ndarray, seg: np.ndarray, segf: np.ndarray
                    ) -> tuple[tuple | None, tuple | None]:
    kinds: tuple[list, list] = ([], [])
    for i in range(segf.shape[0]):
        p, g = pos[seg[i]:seg[i + 1]], goff[seg[i]:seg[i + 1]]
        for kind, at in zip(kinds, _pairing(p, g), strict=True):
            if at.size:
                kind.append((p[at], g[at], segf[i]))
    out = []
    for kind in kinds:
        if not kind:
            out.append(None)
            continue
        # segments shorter than SMALL_SEGMENT joined class by class, after the others: a segment
        # costs its taps' sums loaded and stored once per block of taps, and the left and right
        # edges of a 14x14 layer, 12 positions an image, took 1.3 ms of its 3.6 ms weight gradient
        large = [k for k in kind if len(k[0]) >= SMALL_SEGMENT]
        small: dict[int, list] = {}
        for p, g, f in kind:
            if len(p) < SMALL_SEGMENT:
                small.setdefault(int(f), []).append((p, g))
        kind = large + [(np.concatenate([p for p, _ in parts]), np.concatenate([g for _, g in parts]), f)
                        for f, parts in small.items()]
        tables = (np.concatenate([p for p, _, _ in kind]), np.concatenate([g for _, g, _ in kind]),
                  starts([len(p) for p, _, _ in kind]), np.array([f for _, _, f in kind], np.int64))
        for a in tables:
            a.flags.writeable = False
        out.append(tables)
    return tuple(out)


def aligned_runs(pos: np.ndarray, pstart: np.ndarray, yoff: np.ndarray, most: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(pos, pstart, yoff)``: the positions of a one-position-a-row call re-tiled so that each
    row of at least ``ROWS`` of them (a chain of positions one after another in the input) fills
    whole blocks of ``ROWS``, the row's last block moved back to end with the row and its first
    places, computed in the block before too, written nowhere (``yoff`` -1): every such block is
    then a run, which the kernels take a row of taps at a time
    (:func:`cnnlab.functional._numba_panels._panel_run_taps`), the same sums in the same order for
    every position; the positions of shorter rows follow each phase's blocks, in order.  None
    where every row fills whole blocks already, or where the positions computed would grow by
    more than a share ``most`` of the table's.  Kept for the next call with the same read-only
    tables."""
    return _memo((pos, pstart, yoff), ("runs", most), functools.partial(_aligned_runs, pos, pstart, yoff, most))


def _aligned_runs(pos: np.ndarray, pstart: np.ndarray, yoff: np.ndarray, most: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    out_pos, out_y, sizes, ragged = [], [], [], False
    for f in range(pstart.shape[0] - 1):
        p, y = pos[pstart[f]:pstart[f + 1]], yoff[pstart[f]:pstart[f + 1]]
        real = y >= 0
        p, y = p[real], y[real]
        count = p.size
        begins = np.ones(count, bool)
        begins[1:] = p[1:] != p[:-1] + 1
        first = np.flatnonzero(begins)
        length = np.diff(np.append(first, count))
        long = length >= ROWS
        ragged = ragged or bool(np.any(length[long] % ROWS))
        # the long rows' blocks: block j of a row from its first place + min(ROWS*j, length - ROWS)
        blocks = -(-length[long] // ROWS)
        row_first = np.repeat(first[long], blocks)
        j = np.arange(row_first.size) - np.repeat(np.cumsum(blocks) - blocks, blocks)
        start = row_first + np.minimum(ROWS * j, np.repeat(length[long], blocks) - ROWS)
        at = (start[:, None] + np.arange(ROWS)).reshape(-1)
        again = (at < np.repeat(row_first + ROWS * j, ROWS)).reshape(-1)  # (computed in the block before)
        rest = np.flatnonzero(np.repeat(~long, length))
        extra = -rest.size % ROWS
        fill = p[0] if count else 0
        out_pos.append(np.concatenate([p[at], p[rest], np.full(extra, fill, np.int64)]))
        out_y.append(np.concatenate([np.where(again, -1, y[at]), y[rest], np.full(extra, -1, np.int64)]))
        sizes.append(out_pos[-1].size)
    if not ragged or sum(sizes) > (1 + most) * (pstart[-1] - pstart[0]):
        return None
    out = (np.concatenate(out_pos), starts(sizes), np.concatenate(out_y))
    for a in out:
        a.flags.writeable = False
    return out
