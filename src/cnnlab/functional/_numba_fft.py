"""The compiled float32 transforms of the FFT convolution (Numba): the spectra of 1-d and 2-d
planes and their inverses, packed as the bin-by-bin products of
:mod:`cnnlab.functional._numba_fft_products` read and write them (:mod:`cnnlab.functional._fft_conv`).

**Transforms** (:func:`spectra`, :func:`planes`). Not FFTs: dense sums, ``L`` terms a bin and axis
instead of ``log L``, but vectorised (along a row, its bins 16 a vector; down the columns, 4 bins at
a time, or 2 without AVX-512: :func:`_make_spectra`) and with no call per plane: SciPy's transforms
took 0.7-0.9 ms for the 1024 planes of a 16 x 16 layer on one worker, plus 0.2-0.4 ms a packing
(``_numba_fft_products._pack``, still used for theirs), and the dense sums write the packed layout
themselves. Each value enters at its position in the period (``Axis``: the input's own, a dilated
kernel's taps, a strided output's places less the padding), so no zero-filled copy is made, and the
inverse computes the wanted positions only. Their tables of cosines and sines are made in float64
and rounded once.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._backend import read_only
from cnnlab.functional._numba_fft_products import LANES, _put, narrow
from cnnlab.functional._numba_implicit import _named
from cnnlab.functional._numba_simd import wfma_at, wload, wstore, wstore_lanes, wzero


def _make_spectra(four):
    """:func:`_spectra`'s kernel with blocks of 4 rows (``four``: 8 running sums of 16 lanes, 16
    AVX-512 registers) or of 2 (without AVX-512, whose 16 registers the 4 rows' sums overfill):
    each value's sum in the same order either way."""
    def kernel(src, cw, sw, ch, sh, nsh, dims, dst, scratch, first_job, last_job, thread):  # pragma: no cover
        # the 2-d real DFT of each plane src[r] (a x b values) at the periods lh, lw, its values at the
        # positions the tables were made for, by dense sums: along each row (bins of the last axis,
        # 16 a vector: t = sum_b x[., b] (cw[b] + i sw[b])), then down each column (bin fh: sum_a t[a]
        # (ch[fh, a] - i sh[fh, a])); written packed (dst[chunk, r, part, lane], bins flattened fh
        # first), zeros past the last bin
        a_n, b_n, lh, bw, vb, chunks, rows = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]
        buf = scratch[thread]
        rowlen = vb * 32
        xs = a_n * rowlen  # (the spectra by row fh and vector, before they are flattened)
        flat = xs + lh * rowlen  # (flattened: real parts, then imaginary parts from flat + half)
        half = chunks * 16 + 16
        for r in range(np.uint64(first_job), np.uint64(last_job)):
            base = r * a_n * b_n
            for a0 in range(0, a_n, 4 if four else 2):
                a1 = min(a0 + 1, a_n - 1)
                a2 = min(a0 + 2, a_n - 1)
                a3 = min(a0 + 3, a_n - 1)
                for v in range(vb):
                    c0 = wzero()
                    c1 = wzero()
                    c2 = wzero()
                    c3 = wzero()
                    s0 = wzero()
                    s1 = wzero()
                    s2 = wzero()
                    s3 = wzero()
                    for j in range(b_n):
                        cv = wload(cw, (j * vb + v) * 16)
                        sv = wload(sw, (j * vb + v) * 16)
                        c0 = wfma_at(c0, src, base + a0 * b_n + j, cv)
                        s0 = wfma_at(s0, src, base + a0 * b_n + j, sv)
                        c1 = wfma_at(c1, src, base + a1 * b_n + j, cv)
                        s1 = wfma_at(s1, src, base + a1 * b_n + j, sv)
                        if four:
                            c2 = wfma_at(c2, src, base + a2 * b_n + j, cv)
                            s2 = wfma_at(s2, src, base + a2 * b_n + j, sv)
                            c3 = wfma_at(c3, src, base + a3 * b_n + j, cv)
                            s3 = wfma_at(s3, src, base + a3 * b_n + j, sv)
                    if four:
                        _put(buf, a3 * rowlen + v * 32, c3, s3)
                        _put(buf, a2 * rowlen + v * 32, c2, s2)
                    _put(buf, a1 * rowlen + v * 32, c1, s1)
                    _put(buf, a0 * rowlen + v * 32, c0, s0)
            for f0 in range(0, lh, 4 if four else 2):
                f1 = min(f0 + 1, lh - 1)
                f2 = min(f0 + 2, lh - 1)
                f3 = min(f0 + 3, lh - 1)
                for v in range(vb):
                    xr0 = wzero()
                    xr1 = wzero()
                    xr2 = wzero()
                    xr3 = wzero()
                    xi0 = wzero()
                    xi1 = wzero()
                    xi2 = wzero()
                    xi3 = wzero()
                    for a in range(a_n):
                        tr = wload(buf, a * rowlen + v * 32)
                        ti = wload(buf, a * rowlen + v * 32 + 16)
                        xr0 = wfma_at(wfma_at(xr0, ch, f0 * a_n + a, tr), sh, f0 * a_n + a, ti)
                        xi0 = wfma_at(wfma_at(xi0, ch, f0 * a_n + a, ti), nsh, f0 * a_n + a, tr)
                        xr1 = wfma_at(wfma_at(xr1, ch, f1 * a_n + a, tr), sh, f1 * a_n + a, ti)
                        xi1 = wfma_at(wfma_at(xi1, ch, f1 * a_n + a, ti), nsh, f1 * a_n + a, tr)
                        if four:
                            xr2 = wfma_at(wfma_at(xr2, ch, f2 * a_n + a, tr), sh, f2 * a_n + a, ti)
                            xi2 = wfma_at(wfma_at(xi2, ch, f2 * a_n + a, ti), nsh, f2 * a_n + a, tr)
                            xr3 = wfma_at(wfma_at(xr3, ch, f3 * a_n + a, tr), sh, f3 * a_n + a, ti)
                            xi3 = wfma_at(wfma_at(xi3, ch, f3 * a_n + a, ti), nsh, f3 * a_n + a, tr)
                    if four:
                        _put(buf, xs + f3 * rowlen + v * 32, xr3, xi3)
                        _put(buf, xs + f2 * rowlen + v * 32, xr2, xi2)
                    _put(buf, xs + f1 * rowlen + v * 32, xr1, xi1)
                    _put(buf, xs + f0 * rowlen + v * 32, xr0, xi0)
            # flattened in increasing order: a vector's lanes past the row's last bin land on the next
            # row's first bins, which are written after it
            for f in range(lh):
                for v in range(vb):
                    wstore(buf, flat + f * bw + v * 16, wload(buf, xs + f * rowlen + v * 32))
                    wstore(buf, flat + half + f * bw + v * 16, wload(buf, xs + f * rowlen + v * 32 + 16))
            for i in range(lh * bw, chunks * 16):
                buf[flat + i] = 0.0
                buf[flat + half + i] = 0.0
            for c in range(chunks):
                at = (c * rows + r) * 32
                wstore(dst, at, wload(buf, flat + c * 16))
                wstore(dst, at + 16, wload(buf, flat + half + c * 16))
    return kernel


_spectra = _named(_make_spectra(True), "_spectra")
_spectra_narrow = _named(_make_spectra(False), "_spectra_narrow")


def _make_planes(four):
    """:func:`_planes`'s kernel, its sums down the columns by blocks of 4 rows (``four``) or of 2
    (as :func:`_make_spectra`; the sums along the rows, 4 of 16 lanes, fit either way)."""
    def kernel(src, ihc, ihs, ihns, iwc, iws, dims, dst, scratch, first_job, last_job, thread):  # pragma: no cover
        # the inverse of _spectra for each packed spectrum src[., r]: the real plane's values at the
        # out_a x out_b positions the tables were made for (ihc/ihs: cos/sin of each row position's
        # phase for each bin fh, over lh; iwc/iws: those of the columns, times each bin's weight in a
        # real signal, 1 or 2, over lw), written to dst[r] (out_a x out_b, contiguous)
        lh, bw, vb, chunks, rows = dims[0], dims[1], dims[2], dims[3], dims[4]
        out_a, out_b, vo = dims[5], dims[6], dims[7]
        buf = scratch[thread]
        half = chunks * 16 + 16
        ts = 2 * half  # (the rows' sums by bin of the last axis: out_a x vb vectors, real and imaginary)
        rowlen = vb * 32
        for r in range(np.uint64(first_job), np.uint64(last_job)):
            for c in range(chunks):
                at = (c * rows + r) * 32
                wstore(buf, c * 16, wload(src, at))
                wstore(buf, half + c * 16, wload(src, at + 16))
            for a0 in range(0, out_a, 4 if four else 2):
                a1 = min(a0 + 1, out_a - 1)
                a2 = min(a0 + 2, out_a - 1)
                a3 = min(a0 + 3, out_a - 1)
                for v in range(vb):
                    tr0 = wzero()
                    tr1 = wzero()
                    tr2 = wzero()
                    tr3 = wzero()
                    ti0 = wzero()
                    ti1 = wzero()
                    ti2 = wzero()
                    ti3 = wzero()
                    for f in range(lh):
                        xr = wload(buf, f * bw + v * 16)
                        xi = wload(buf, half + f * bw + v * 16)
                        tr0 = wfma_at(wfma_at(tr0, ihc, a0 * lh + f, xr), ihns, a0 * lh + f, xi)
                        ti0 = wfma_at(wfma_at(ti0, ihs, a0 * lh + f, xr), ihc, a0 * lh + f, xi)
                        tr1 = wfma_at(wfma_at(tr1, ihc, a1 * lh + f, xr), ihns, a1 * lh + f, xi)
                        ti1 = wfma_at(wfma_at(ti1, ihs, a1 * lh + f, xr), ihc, a1 * lh + f, xi)
                        if four:
                            tr2 = wfma_at(wfma_at(tr2, ihc, a2 * lh + f, xr), ihns, a2 * lh + f, xi)
                            ti2 = wfma_at(wfma_at(ti2, ihs, a2 * lh + f, xr), ihc, a2 * lh + f, xi)
                            tr3 = wfma_at(wfma_at(tr3, ihc, a3 * lh + f, xr), ihns, a3 * lh + f, xi)
                            ti3 = wfma_at(wfma_at(ti3, ihs, a3 * lh + f, xr), ihc, a3 * lh + f, xi)
                    if four:
                        _put(buf, ts + a3 * rowlen + v * 32, tr3, ti3)
                        _put(buf, ts + a2 * rowlen + v * 32, tr2, ti2)
                    _put(buf, ts + a1 * rowlen + v * 32, tr1, ti1)
                    _put(buf, ts + a0 * rowlen + v * 32, tr0, ti0)
            for a0 in range(0, out_a, 4):
                a1 = min(a0 + 1, out_a - 1)
                a2 = min(a0 + 2, out_a - 1)
                a3 = min(a0 + 3, out_a - 1)
                for u in range(vo):
                    y0 = wzero()
                    y1 = wzero()
                    y2 = wzero()
                    y3 = wzero()
                    for f in range(bw):
                        cv = wload(iwc, (f * vo + u) * 16)
                        sv = wload(iws, (f * vo + u) * 16)
                        lane = (f // 16) * 32 + f % 16
                        at = ts + a0 * rowlen + lane
                        y0 = wfma_at(wfma_at(y0, buf, at, cv), buf, at + 16, sv)
                        at = ts + a1 * rowlen + lane
                        y1 = wfma_at(wfma_at(y1, buf, at, cv), buf, at + 16, sv)
                        at = ts + a2 * rowlen + lane
                        y2 = wfma_at(wfma_at(y2, buf, at, cv), buf, at + 16, sv)
                        at = ts + a3 * rowlen + lane
                        y3 = wfma_at(wfma_at(y3, buf, at, cv), buf, at + 16, sv)
                    hi = min(16, out_b - u * 16)
                    base = r * out_a * out_b + u * 16
                    wstore_lanes(dst, base + a3 * out_b, y3, 0, hi)
                    wstore_lanes(dst, base + a2 * out_b, y2, 0, hi)
                    wstore_lanes(dst, base + a1 * out_b, y1, 0, hi)
                    wstore_lanes(dst, base + a0 * out_b, y0, 0, hi)
    return kernel


_planes = _named(_make_planes(True), "_planes")
_planes_narrow = _named(_make_planes(False), "_planes_narrow")


class Axis(NamedTuple):
    """Where a plane's values lie along one axis of the period: ``count`` values at
    ``(i*step - offset) mod period`` (the input: step 1; the dilated kernel: its dilation; the
    output and its gradient: the stride, less the padding before)."""

    count: int
    step: int
    offset: int
    period: int

    def phases(self) -> np.ndarray:
        """``2 pi / period`` times each value's position (float64, ``(count,)``)."""
        pos = (np.arange(self.count) * self.step - self.offset) % self.period
        return 2.0 * np.pi * pos / self.period


def _vectors(n: int) -> int:
    return -(-n // LANES)


@functools.lru_cache(maxsize=256)
def _row_tables(axis: Axis) -> tuple[np.ndarray, np.ndarray]:
    """``(cos, -sin)`` of each bin ``f < period // 2 + 1`` (columns, 16 a vector, zeros past the
    last) at each position (rows) of the last axis, for the forward sums."""
    bins = axis.period // 2 + 1
    angle = np.outer(axis.phases(), np.arange(bins))
    width = _vectors(bins) * LANES
    c, s = np.zeros((axis.count, width)), np.zeros((axis.count, width))
    c[:, :bins], s[:, :bins] = np.cos(angle), -np.sin(angle)
    return read_only(c.astype(np.float32)), read_only(s.astype(np.float32))


@functools.lru_cache(maxsize=256)
def _column_tables(axis: Axis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cos, sin, -sin)`` of each bin (rows) at each position (columns) of the first axis."""
    angle = np.outer(np.arange(axis.period), axis.phases())
    c, s = np.cos(angle), np.sin(angle)
    return tuple(read_only(t.astype(np.float32)) for t in (c, s, -s))


@functools.lru_cache(maxsize=256)
def _inverse_column_tables(axis: Axis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cos, sin, -sin) / period`` of each position (rows) for each bin (columns) of the first axis."""
    angle = np.outer(axis.phases(), np.arange(axis.period))
    c, s = np.cos(angle) / axis.period, np.sin(angle) / axis.period
    return tuple(read_only(t.astype(np.float32)) for t in (c, s, -s))


@functools.lru_cache(maxsize=256)
def _inverse_row_tables(axis: Axis) -> tuple[np.ndarray, np.ndarray]:
    """``(w cos, -w sin) / period`` of each bin (rows) at each position (columns, 16 a vector,
    zeros past the last) of the last axis, ``w`` the bin's weight in a real signal's half spectrum
    (1 for the first bin and, for an even period, the last; 2 for the others)."""
    bins = axis.period // 2 + 1
    weight = np.full(bins, 2.0)
    weight[0] = 1.0
    if axis.period % 2 == 0:
        weight[-1] = 1.0
    angle = np.outer(np.arange(bins), axis.phases())
    width = _vectors(axis.count) * LANES
    c, s = np.zeros((bins, width)), np.zeros((bins, width))
    c[:, :axis.count] = weight[:, None] * np.cos(angle) / axis.period
    s[:, :axis.count] = -weight[:, None] * np.sin(angle) / axis.period
    return read_only(c.astype(np.float32)), read_only(s.astype(np.float32))


def chunks_of(rows_axis: Axis, cols_axis: Axis) -> int:
    """Chunks of 16 bins of a plane's spectrum of these periods."""
    return _vectors(rows_axis.period * (cols_axis.period // 2 + 1))


def _scratch(size: int) -> np.ndarray:
    return np.empty((_backend.kernel_threads(), size), dtype=np.float32)


def spectra(planes: np.ndarray, rows_axis: Axis, cols_axis: Axis) -> np.ndarray:
    """The packed 2-d real DFTs of the float32 ``planes`` (``(P, rows_axis.count,
    cols_axis.count)``, contiguous) at the axes' periods, each value at its axis position."""
    count = planes.shape[0]
    lh, bw = rows_axis.period, cols_axis.period // 2 + 1
    vb, chunks = _vectors(bw), chunks_of(rows_axis, cols_axis)
    cw, sw = _row_tables(cols_axis)
    ch, sh, nsh = _column_tables(rows_axis)
    dims = np.array((rows_axis.count, cols_axis.count, lh, bw, vb, chunks, count), dtype=np.int64)
    size = (rows_axis.count + lh) * vb * 32 + 2 * (chunks * LANES + LANES)
    dst = np.empty(chunks * count * 2 * LANES, dtype=np.float32)
    work = float(count) * (rows_axis.count * cols_axis.count + lh * rows_axis.count) * vb * 32
    kernel = _spectra_narrow if narrow() else _spectra
    _backend.run_jobs(kernel, count, read_only(planes.reshape(-1)), cw, sw, ch, sh, nsh, read_only(dims), dst,
                      _scratch(size), work=work)
    return dst


def planes(packed: np.ndarray, count: int, rows_axis: Axis, cols_axis: Axis) -> np.ndarray:
    """The real planes (float32, ``(count, rows_axis.count, cols_axis.count)``) whose packed
    spectra ``packed`` holds, at the axes' positions: the inverse of :func:`spectra`."""
    lh, bw = rows_axis.period, cols_axis.period // 2 + 1
    vb, chunks, vo = _vectors(bw), chunks_of(rows_axis, cols_axis), _vectors(cols_axis.count)
    ihc, ihs, ihns = _inverse_column_tables(rows_axis)
    iwc, iws = _inverse_row_tables(cols_axis)
    dims = np.array((lh, bw, vb, chunks, count, rows_axis.count, cols_axis.count, vo), dtype=np.int64)
    size = 2 * (chunks * LANES + LANES) + rows_axis.count * vb * 32
    dst = np.empty((count, rows_axis.count, cols_axis.count), dtype=np.float32)
    work = float(count) * rows_axis.count * (lh * vb + bw * vo) * 32
    kernel = _planes_narrow if narrow() else _planes
    _backend.run_jobs(kernel, count, read_only(packed), ihc, ihs, ihns, iwc, iws, read_only(dims), dst.reshape(-1),
                      _scratch(size), work=work)
    return dst
