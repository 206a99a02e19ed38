"""Compiled BatchNorm kernels (Numba), plain and fused with a ReLU, imported only when Numba is
installed and the backend allows it.

Each pass is one loop over ``x`` viewed as ``(N, C, P)``, its jobs the channels, so every thread
owns whole channels (:func:`cnnlab.functional._backend.run_jobs`).  ``cache=True`` keeps the
compiled code on disk, as for the kernels of :mod:`cnnlab.functional._numba_kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cnnlab.functional import _backend

# ---------------------------------------------------------------------------------------------
# batch norm over x viewed as (N, C, P): one thread per channel, sums in float64 ('reassoc' lets
# the compiler split each sum into vector lanes; NaN and infinity keep their IEEE meaning)


@_backend.job_kernel(fastmath={"reassoc"})
def _bn_stats(x, mean, var, first_job, last_job, thread):  # pragma: no cover - compiled
    batch, channels, positions = x.shape
    count = batch * positions
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        total = 0.0
        for b in range(batch):
            row = x[b, c]
            for p in range(positions):
                total += row[p]
        mu = total / count
        sq = 0.0
        for b in range(batch):
            row = x[b, c]
            for p in range(positions):
                d = row[p] - mu
                sq += d * d
        mean[c] = mu
        var[c] = sq / count


@_backend.job_kernel
def _bn_apply(x, mean, inv_std, scale, shift, y, first_job, last_job, thread):  # pragma: no cover - compiled
    batch, channels, positions = x.shape
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        mu, s, gam, bet = mean[c], inv_std[c], scale[c], shift[c]
        for b in range(batch):
            src, dy = x[b, c], y[b, c]
            for p in range(positions):
                dy[p] = _bn_value(src[p], mu, s, gam, bet)


@_backend.job_kernel(fastmath={"reassoc"})
def _bn_sums(g, x, mean, inv_std, sum_g, sum_gx, first_job, last_job, thread):  # pragma: no cover - compiled
    batch, channels, positions = g.shape
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        mu, s = mean[c], inv_std[c]
        a = 0.0
        b2 = 0.0
        for b in range(batch):
            gg, xx = g[b, c], x[b, c]
            for p in range(positions):
                a += gg[p]
                b2 += gg[p] * ((xx[p] - mu) * s)
        sum_g[c] = a
        sum_gx[c] = b2


@_backend.job_kernel
def _bn_grad_x(g, x, mean, inv_std, mean_g, mean_gx, scale, grad_x,
               first_job, last_job, thread):  # pragma: no cover - compiled
    batch, channels, positions = g.shape
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        mu, s, mg, mgx, sc = mean[c], inv_std[c], mean_g[c], mean_gx[c], scale[c]
        for b in range(batch):
            gg, xx, out = g[b, c], x[b, c], grad_x[b, c]
            for p in range(positions):
                out[p] = (gg[p] - mg - ((xx[p] - mu) * s) * mgx) * sc


# the same three passes for relu(batch_norm(x)) fused: the output is clamped as it is written, and
# the backward reads the gradient through ReLU's mask (0 where the output is <= 0) as it goes.  The
# backward does not read the output for that mask: it recomputes the value before the clamp from
# x, which it reads anyway, with the same function and so the same rounding as the forward (one
# array less to read in each backward pass; they are bound by memory).  The backward loads ``g``
# on every path and picks ``zero`` (of its dtype, passed in: made inside, it cost a second of
# compile time) where the mask is 0: a load under the mask's branch (``0 if v <= 0 else g[p]``)
# kept the loops from vectorising, and the int 0 made the gradient's arithmetic float64.
# N128 C48 14x14 on 2 cores: sums 0.8-1.3 -> 0.4-0.5 ms, grad_x 1.2-2.4 -> 0.4 ms, in the
# arithmetic (and so the rounding) of the unfused kernels above.


@njit(cache=True, nogil=True)
def _bn_value(x, mu, s, gam, bet):  # pragma: no cover - compiled
    # compiled without fast-math flags, also where a fast-math kernel calls it: rounded as written
    return (x - mu) * s * gam + bet


@_backend.job_kernel
def _bn_apply_relu(x, mean, inv_std, scale, shift, y, first_job, last_job, thread):  # pragma: no cover - compiled
    batch, channels, positions = x.shape
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        mu, s, gam, bet = mean[c], inv_std[c], scale[c], shift[c]
        for b in range(batch):
            src, dy = x[b, c], y[b, c]
            for p in range(positions):
                v = _bn_value(src[p], mu, s, gam, bet)
                dy[p] = 0 if v <= 0 else v  # max(v, 0) with NaN kept, as np.maximum


@_backend.job_kernel(fastmath={"reassoc"})
def _bn_relu_sums(g, x, mean, inv_std, scale, shift, zero, sum_g, sum_gx,
                  first_job, last_job, thread):  # pragma: no cover - compiled
    batch, channels, positions = g.shape
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        mu, s, gam, bet = mean[c], inv_std[c], scale[c], shift[c]
        a = 0.0
        b2 = 0.0
        for b in range(batch):
            gg, xx = g[b, c], x[b, c]
            for p in range(positions):
                gv, xv = gg[p], xx[p]
                h = zero if _bn_value(xv, mu, s, gam, bet) <= 0 else gv
                a += h
                b2 += h * ((xv - mu) * s)
        sum_g[c] = a
        sum_gx[c] = b2


@_backend.job_kernel
def _bn_relu_grad_x(g, x, mean, inv_std, scale, shift, zero, mean_g, mean_gx, grad_scale,
                    grad_x, first_job, last_job, thread):  # pragma: no cover - compiled
    batch, channels, positions = g.shape
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        mu, s, gam, bet = mean[c], inv_std[c], scale[c], shift[c]
        mg, mgx, sc = mean_g[c], mean_gx[c], grad_scale[c]
        for b in range(batch):
            gg, xx, out = g[b, c], x[b, c], grad_x[b, c]
            for p in range(positions):
                gv, xv = gg[p], xx[p]
                h = zero if _bn_value(xv, mu, s, gam, bet) <= 0 else gv
                out[p] = (h - mg - ((xv - mu) * s) * mgx) * sc


def _as_ncp(a):
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def bn_statistics(x):
    """``(mean, biased var)`` per channel of a floating ``(N, C, ...)`` array (float64 sums)."""
    x3 = _as_ncp(x)
    mean, var = np.empty(x.shape[1], np.float64), np.empty(x.shape[1], np.float64)
    _backend.run_jobs(_bn_stats, x3.shape[1], x3, mean, var, work=2 * x.size)
    return mean, var


def bn_apply(x, mean, inv_std, scale, shift, relu=False):
    """``y = (x - mean) * inv_std * scale + shift`` per channel (clamped at 0 with ``relu``)."""
    x3 = _as_ncp(x)
    y = np.empty(x3.shape, x.dtype)
    t = x.dtype.type
    _backend.run_jobs(_bn_apply_relu if relu else _bn_apply, x3.shape[1], x3, mean.astype(t), inv_std.astype(t),
                      scale.astype(t), shift.astype(t), y, work=2 * x.size)
    return y.reshape(x.shape)


def bn_sums(g, x, mean, inv_std, relu=None):
    """``(sum g, sum g * xhat)`` per channel with ``xhat = (x - mean) * inv_std`` (float64 sums);
    with ``relu = (scale, shift)`` (those of the fused forward), ``g`` is first zeroed where that
    forward's output is <= 0."""
    sg, sgx = np.empty(g.shape[1], np.float64), np.empty(g.shape[1], np.float64)
    t = x.dtype.type
    if relu is None:
        _backend.run_jobs(_bn_sums, g.shape[1], _as_ncp(g), _as_ncp(x), mean.astype(t), inv_std.astype(t), sg, sgx,
                          work=2 * g.size)
    else:
        _backend.run_jobs(_bn_relu_sums, g.shape[1], _as_ncp(g), _as_ncp(x), mean.astype(t), inv_std.astype(t),
                          relu[0].astype(t), relu[1].astype(t), g.dtype.type(0), sg, sgx, work=2 * g.size)
    return sg, sgx


def bn_grad_x(g, x, mean, inv_std, mean_g, mean_gx, scale, relu=None):
    """``(g - mean_g - xhat * mean_gx) * scale`` per channel, ``xhat = (x - mean) * inv_std``
    (``g`` masked through the fused ReLU as in :func:`bn_sums`)."""
    g3 = _as_ncp(g)
    out = np.empty(g3.shape, g.dtype)
    t = g.dtype.type
    tail = (mean_g.astype(t), mean_gx.astype(t), scale.astype(t), out)
    if relu is None:
        _backend.run_jobs(_bn_grad_x, g3.shape[1], g3, _as_ncp(x), mean.astype(t), inv_std.astype(t), *tail,
                          work=2 * g.size)
    else:
        _backend.run_jobs(_bn_relu_grad_x, g3.shape[1], g3, _as_ncp(x), mean.astype(t), inv_std.astype(t),
                          relu[0].astype(t), relu[1].astype(t), g.dtype.type(0), *tail, work=2 * g.size)
    return out.reshape(g.shape)
