"""The weight gradient of the implicit method (:func:`grad_w`; see
:mod:`cnnlab.functional._implicit`, whose tables it reads): ``grad_w[o, (c, t)] = sum_{b, p}
g[b, o, p] * xp[pos[b, p] + delta[c, t]]`` by the compiled kernel
:func:`cnnlab.functional._numba_implicit_grad_w.taps_grad_w`, over the classes of positions of
:func:`cnnlab.functional._implicit._tables` (the taps that read padding skipped), or over a
zero-padded copy of the input where the upstream gradient is not finite at a position whose taps
would read padding."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cnnlab.functional import _implicit as im


def _border_finite(grad_out: np.ndarray, tables: im.Tables) -> bool:
    """Whether the upstream gradient is finite at every position with a tap that reads padding
    (the definition multiplies it by zero there, and ``inf * 0`` is ``nan``): the runs of
    ``tables.border``, slice by slice."""
    for axis, q0, length in tables.border:
        index = [slice(None)] * grad_out.ndim
        index[2 + axis] = slice(q0, q0 + length)
        if not np.isfinite(grad_out[tuple(index)]).all():
            return False
    return True


def grad_w(grad_out: np.ndarray, src: np.ndarray, pads: Sequence[tuple[int, int]] | None,
           weight_shape: Sequence[int], stride: Sequence[int], dilation: Sequence[int], groups: int) -> np.ndarray:
    """The weight gradient from the upstream gradient and what the forward kept: the input
    ``src`` with the zero padding ``pads`` still to apply (whose taps the kernels skip, unless the
    upstream gradient is not finite where they would be read: then on a padded copy), or already
    padded (``pads`` None).

    The gradient's border is checked only when the sums come out not finite (or some output
    reads padding alone): a value that is not finite at a position with a tap inside the input
    makes that tap's sum not finite (``inf * x`` is ``inf`` or ``nan``, and no sum of it is
    finite), so finite sums mean a finite border.  (Checking first cost 65 us of the stride-2
    layer's 2.1 ms weight gradient.)"""
    out = grad_out.shape[2:]
    g = np.ascontiguousarray(grad_out, np.float32)
    tables = im._geometry(src, weight_shape, stride, dilation, pads, out)
    if pads and tables.tapless and not _border_finite(g, tables):
        return _grad_w_padded(g, src, pads, weight_shape, stride, dilation, groups)
    result = _grad_w_sums(g, src, tables, weight_shape, groups)
    if pads and not tables.tapless and not np.isfinite(result).all() and not _border_finite(g, tables):
        return _grad_w_padded(g, src, pads, weight_shape, stride, dilation, groups)
    return result


def _grad_w_padded(g: np.ndarray, src: np.ndarray, pads: Sequence[tuple[int, int]], weight_shape: Sequence[int],
                   stride: Sequence[int], dilation: Sequence[int], groups: int) -> np.ndarray:
    """:func:`grad_w` on a zero-padded copy of ``src`` (every tap read, padding included)."""
    src = im._padded_input(src, pads)
    tables = im._geometry(src, weight_shape, stride, dilation, None, g.shape[2:])
    return _grad_w_sums(g, src, tables, weight_shape, groups)


def _grad_w_sums(g: np.ndarray, src: np.ndarray, tables: im.Tables, weight_shape: Sequence[int], groups: int
                 ) -> np.ndarray:
    """The weight gradient's sums by :func:`cnnlab.functional._numba_implicit_grad_w.taps_grad_w`, group
    by group, over the positions and taps of ``tables``."""
    from cnnlab.functional import _numba_implicit_grad_w as nw
    from cnnlab.functional import _pairs

    out = g.shape[2:]
    batch, spatial = src.shape[0], src.shape[2:]
    out_ch, cg = weight_shape[:2]
    og = out_ch // groups
    plane, npos = int(math.prod(spatial)), int(math.prod(out))
    taps = int(cg * math.prod(weight_shape[2:]))
    g = g.reshape(batch, out_ch, npos)
    # (every group in one call, group k's filters read where they lie in the whole gradient: a
    # copy of each group's took N32 C256 14x14 -> 256 in 32 groups 0.95 of its 6.3 ms)
    segments = (tables.wpos, tables.wgoff, tables.seg, tables.segf)
    # (with at most PAIR_LANES filters a group, the segments' positions that pair in panels of 8
    # filters at 2 positions, the others' sums added)
    parts = (zip(_pairs.split_segments(*segments), (2, 1), strict=True) if og <= im.PAIR_LANES
             else [(im._joined_segments(tables.wpos, tables.wgoff, tables.seg, tables.segf), 1)])
    result = None
    for part, span in parts:
        if part is not None:
            sums = nw.taps_grad_w(src.reshape(-1), g, *part, tables.delta6, tables.dstart6, tables.tapmap, taps, og,
                                  groups, cg * plane, span=span)
            result = sums if result is None else result + sums
    if result is None:  # (no positions at all)
        result = np.zeros((out_ch, taps), np.float32)
    return result.reshape(weight_shape)
