"""Compiled direct correlation of one signal with one kernel, up to 3-d (Numba).

Imported only when Numba is installed and the backend allows it (``_backend.use_numba()``).
The kernel is the loop of the definition

    y[a, b, e] = sum_{i, j, l} xp[a*s0 + i*d0, b*s1 + j*d1, e*s2 + l*d2] * k[i, j, l]

with the loop order chosen for the cache: each job owns a piece of one output row (so no two
threads write one cell, and a long 1-d signal still splits over threads), and accumulates all the
kernel's taps into it while it sits in L1, with the output position ``e`` innermost (a multiply-add
over contiguous cells that the compiler vectorises).  With a unit stride along the row, taps are
taken four at a time, so that the row is loaded and stored once per four multiply-adds (the stores,
not the arithmetic, bound the simple loop).  1-d and 2-d problems are viewed as 3-d with
leading sizes of 1.  Integer inputs run in int64 and stay exact.
"""

from __future__ import annotations

import numpy as np

from cnnlab.functional import _backend

# Output cells per job along the last axis: a 512-wide image row is one job; a long 1-d signal
# becomes many, so that threads share it.
CHUNK = 4096

# Multiply-adds below which the loop runs on the calling thread only: about 6 ms of work on one
# core.  Waking a second thread saves at most half of that, and on a machine whose other cores are
# busy the whole call waits for the slowest thread to be scheduled again (milliseconds each time).
PARALLEL_MACS = 1e8


def parallel(work: float) -> bool:
    """Whether a correlation of ``work`` multiply-adds runs on all of cnnlab's threads."""
    return work >= PARALLEL_MACS and _backend.get_num_threads() > 1


@_backend.job_kernel
def _correlate_jobs(xp, k, s0, s1, s2, d0, d1, d2, y, first, last, thread):  # pragma: no cover - compiled
    """Jobs ``first <= job < last`` (``thread``: unused, for
    :func:`cnnlab.functional._backend.run_jobs`); a job is one output row ``(a, b)`` and one chunk of it."""
    o1, o2 = y.shape[1], y.shape[2]
    k0, k1, k2 = k.shape
    chunks = (o2 + CHUNK - 1) // CHUNK
    for job in range(first, last):
        row = job // chunks
        start = (job % chunks) * CHUNK
        stop = min(start + CHUNK, o2)
        width = stop - start
        a = row // o1
        b = row % o1
        dst = y[a, b, start:stop]
        for i in range(k0):
            plane = xp[a * s0 + i * d0]
            for j in range(k1):
                src = plane[b * s1 + j * d1]
                t = 0
                if s2 == 1:  # four taps per pass over dst: one load and store of it per four multiply-adds
                    while t + 4 <= k2:
                        w0, w1, w2, w3 = k[i, j, t], k[i, j, t + 1], k[i, j, t + 2], k[i, j, t + 3]
                        off = start + t * d2
                        q0 = src[off:off + width]
                        q1 = src[off + d2:off + d2 + width]
                        q2 = src[off + 2 * d2:off + 2 * d2 + width]
                        q3 = src[off + 3 * d2:off + 3 * d2 + width]
                        for e in range(width):
                            dst[e] += (w0 * q0[e] + w1 * q1[e]) + (w2 * q2[e] + w3 * q3[e])
                        t += 4
                while t < k2:
                    wv = k[i, j, t]
                    off = start * s2 + t * d2
                    if s2 == 1:
                        seg = src[off:off + width]
                        for e in range(width):
                            dst[e] += wv * seg[e]
                    else:
                        for e in range(width):
                            dst[e] += wv * src[off + e * s2]
                    t += 1


def correlate(xp: np.ndarray, k: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...],
              out: tuple[int, ...]) -> np.ndarray:
    """The valid correlation of the padded ``xp`` with ``k`` (1-3 dims, same dtype), ``out`` cells."""
    lead = (1,) * (3 - xp.ndim)
    y = np.zeros(lead + tuple(out), dtype=xp.dtype)
    args = (np.ascontiguousarray(xp).reshape(lead + xp.shape), np.ascontiguousarray(k).reshape(lead + k.shape),
            *(lead + tuple(stride)), *(lead + tuple(dilation)), y)
    jobs = y.shape[0] * y.shape[1] * -(-y.shape[2] // CHUNK)
    # (jobs write disjoint pieces of y; below PARALLEL_MACS the calling thread does them all)
    _backend.run_jobs(_correlate_jobs, jobs, *args, work=y.size * k.size, min_work=PARALLEL_MACS)
    return y.reshape(out)
