"""Which kernel rows each block of the implicit kernels' positions runs, on a zero-padded copy.

Where the implicit forward (or the input gradient of stride 1) reads a zero-padded copy, the
rows of padding at the top and bottom of an image (planes, in 3-d) meet only zeros.  A
:class:`Frame` says where the copy's values lie along its first spatial axis, and :func:`boxes`
gives each block of positions the range of kernel rows that some of its positions read inside
them; the kernel (:mod:`cnnlab.functional._numba_implicit`) runs, of each channel, only those
rows' taps, in their order.  Pure NumPy, once per geometry (kept with the read-only tables by
:func:`cnnlab.functional._numba_implicit._memo`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Frame(NamedTuple):
    """Where the zero padding of a ``src`` of :func:`cnnlab.functional._numba_implicit.taps_forward`
    lies, so that its blocks of positions skip the kernel rows (planes, in 3-d) that read only
    padding: each plane of
    ``src`` is C-contiguous of shape ``shape``, with values at ``lo <= i < hi`` along its first
    axis (zeros before and after: the padding of the kernel rows that are skipped; the other
    axes' cells are read as they are).  A phase's taps come ``channels`` after another (of the
    input, or the filters for an input gradient), each channel's in ``slabs`` equal slabs of its
    kernel rows, the first axis's index ``j`` reading the row ``step * j`` further on than its
    slab 0."""

    shape: tuple[int, ...]
    lo: int
    hi: int
    step: int
    slabs: int
    channels: int


def boxes(pos: np.ndarray, pstart: np.ndarray, yoff: np.ndarray, delta: np.ndarray, dstart: np.ndarray,
          frame: Frame | None, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``(kgrid, box)`` of :func:`cnnlab.functional._numba_implicit.taps_forward`'s kernel: per
    phase, its taps a channel and a slab (without a ``frame``, all of the phase's taps as one
    channel and one slab), and per block of ``rows`` positions the range ``[lo, hi)`` of slabs
    holding every tap that one of its positions reads inside ``frame``'s rows (none without a
    frame).  A tap outside a position's range reads padding alone; a block's range also holds its
    other positions' (a zero times a finite weight adds nothing: the caller passes a frame only
    where the weights are finite).  A position's row is found from its first tap (channel 0,
    slab 0: ``pos + delta[dstart[f]]``, a cell of ``src``), so that windows that start in the
    padding of another axis are placed right."""
    taps = np.diff(dstart)
    grid = taps // frame.channels if frame else taps
    if frame is None or np.any(taps == 0) or np.any(grid * frame.channels != taps) or np.any(grid % frame.slabs):
        return _frozen(np.repeat(taps, 2).astype(np.int64), np.zeros((0, 2), np.int64))
    kgrid = np.stack([grid, grid // frame.slabs], axis=1).reshape(-1).astype(np.int64)
    first = np.repeat(delta[dstart[:-1]], np.diff(pstart))  # (each position's phase's first tap)
    cell = np.unravel_index((pos + first) % int(math.prod(frame.shape)), frame.shape)[0].astype(np.int64)
    lo = np.maximum(0, -((cell - frame.lo) // frame.step))  # (the first j with cell + j*step >= lo)
    hi = np.minimum(frame.slabs, (frame.hi - 1 - cell) // frame.step + 1)
    # (a position that reads padding alone along another axis keeps its range: a superset is right)
    none = (hi <= lo) | (yoff < 0)  # (reads padding alone, or a padding entry)
    lo[none], hi[none] = frame.slabs, 0
    box = np.stack([lo.reshape(-1, rows).min(axis=1), hi.reshape(-1, rows).max(axis=1)], axis=1)
    return _frozen(kgrid, np.ascontiguousarray(box))


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.flags.writeable = False
    return arrays
