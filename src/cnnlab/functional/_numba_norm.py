"""Compiled BatchNorm kernels (Numba), plain and fused with a ReLU, imported only when Numba is
installed and the backend allows it.

Each pass is one loop over ``x`` viewed as ``(N, C, P)``, its jobs the channels, so every thread
owns whole channels (:func:`cnnlab.functional._backend.run_jobs`); the apply pass alone
(:func:`bn_apply`, with statistics already known: eval mode) takes the rows ``(b, c)`` in memory
order instead.  ``cache=True`` keeps the
compiled code on disk, as for the kernels of :mod:`cnnlab.functional._numba_kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cnnlab.functional import _backend

# ---------------------------------------------------------------------------------------------
# batch norm over x viewed as (N, C, P): one thread per channel.  The sums of a channel
# (_moments, _sums) are functions of their own, in float64 and compiled with 'reassoc' (the
# compiler splits each sum into vector lanes; NaN and infinity keep their IEEE meaning); the
# kernels that call them, and the passes that write values (_apply, _grad_x, inlined into them),
# are compiled without fast-math flags, so each value is rounded as written (_bn_value,
# _bn_grad_value).  Code inlined into a kernel takes the kernel's flags: with the apply pass in a
# 'reassoc' kernel, 1,661 of 9,600 outputs differed in the last bit from (x - mu) * s * gam + bet
# as NumPy rounds it.


@njit(fastmath={"reassoc"}, cache=True, nogil=True)
def _moments(x, c):  # pragma: no cover - compiled
    # (mean, biased variance) of channel c, two passes, float64
    batch, _, positions = x.shape
    count = batch * positions
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
    return mu, sq / count


@njit(inline="always", cache=True)
def _apply_row(src, mu, s, gam, bet, relu, dy):  # pragma: no cover - compiled
    # _apply of one row of a channel
    if relu:
        for p in range(src.shape[0]):
            v = _bn_value(src[p], mu, s, gam, bet)
            dy[p] = 0 if v <= 0 else v  # max(v, 0) with NaN kept, as np.maximum
    else:
        for p in range(src.shape[0]):
            dy[p] = _bn_value(src[p], mu, s, gam, bet)


@njit(inline="always", cache=True)
def _apply(x, c, mu, s, gam, bet, relu, y):  # pragma: no cover - compiled
    for b in range(x.shape[0]):
        _apply_row(x[b, c], mu, s, gam, bet, relu, y[b, c])


@njit(fastmath={"reassoc"}, cache=True, nogil=True)
def _sums(g, x, c, mu, s, gam, bet, zero, relu):  # pragma: no cover - compiled
    # (sum h, sum h * xhat) of channel c, float64; h = g, or g through the fused ReLU's mask
    a = 0.0
    b2 = 0.0
    for b in range(g.shape[0]):
        gg, xx = g[b, c], x[b, c]
        if relu:
            for p in range(g.shape[2]):
                gv, xv = gg[p], xx[p]
                h = zero if _bn_value(xv, mu, s, gam, bet) <= 0 else gv
                a += h
                b2 += h * ((xv - mu) * s)
        else:
            for p in range(g.shape[2]):
                a += gg[p]
                b2 += gg[p] * ((xx[p] - mu) * s)
    return a, b2


@njit(inline="always", cache=True)
def _grad_x(g, x, c, mu, s, gam, bet, zero, relu, mg, mgx, sc, grad_x):  # pragma: no cover - compiled
    for b in range(g.shape[0]):
        gg, xx, out = g[b, c], x[b, c], grad_x[b, c]
        if relu:
            for p in range(g.shape[2]):
                gv, xv = gg[p], xx[p]
                h = zero if _bn_value(xv, mu, s, gam, bet) <= 0 else gv
                out[p] = _bn_grad_value(h, xv, mu, s, mg, mgx, sc)
        else:
            for p in range(g.shape[2]):
                out[p] = _bn_grad_value(gg[p], xx[p], mu, s, mg, mgx, sc)


@_backend.job_kernel
def _bn_apply(x, mean, inv_std, scale, shift, relu, y, first_job, last_job, thread):  # pragma: no cover - compiled
    # jobs: the rows (b, c) of x in memory order, so that each thread streams through one part of
    # x and y (a channel at a time, its rows P values long and C * P apart, took N128 C48 14x14
    # 0.62-0.79 ms against 0.38-0.54 for torch)
    channels = x.shape[1]
    for row in range(np.uint64(first_job), np.uint64(last_job)):
        b, c = row // np.uint64(channels), row % np.uint64(channels)
        _apply_row(x[b, c], mean[c], inv_std[c], scale[c], shift[c], relu, y[b, c])


@_backend.job_kernel
def _bn_forward(x, eps, one, scale, shift, relu, mean_t, var_t, inv_std, y, first_job, last_job, thread
                ):  # pragma: no cover - compiled
    # the moments and _apply in one pass per channel: the channel (100 KB for N128 14x14) is read
    # from memory once and again from the core's cache; mean_t, var_t: the float64 moments in x's
    # dtype (written and read back: the rounding of NumPy's astype), inv_std = 1 / sqrt(var_t + eps)
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        mean_t[c], var_t[c] = _moments(x, c)
        inv_std[c] = _inv_std(var_t[c], eps, one)
        _apply(x, c, mean_t[c], inv_std[c], scale[c], shift[c], relu, y)


@_backend.job_kernel
def _bn_sums(g, x, mean, inv_std, scale, shift, zero, relu, sum_g, sum_gx, first_job, last_job, thread
             ):  # pragma: no cover - compiled
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        sum_g[c], sum_gx[c] = _sums(g, x, c, mean[c], inv_std[c], scale[c], shift[c], zero, relu)


@_backend.job_kernel
def _bn_backward(g, x, mean, inv_std, scale, shift, zero, relu, count, grad_scale, sum_g, sum_gx, mean_g, mean_gx,
                 grad_x, first_job, last_job, thread):  # pragma: no cover - compiled
    # _bn_sums and the input gradient in one pass per channel (the channel's g and x read from memory once
    # and again from the core's cache); mean_g, mean_gx: the sums / count in g's dtype (written and
    # read back, as NumPy's astype rounds them)
    for c in range(np.uint64(first_job), np.uint64(last_job)):  # of channels
        mu, s, gam, bet = mean[c], inv_std[c], scale[c], shift[c]
        sum_g[c], sum_gx[c] = _sums(g, x, c, mu, s, gam, bet, zero, relu)
        mean_g[c], mean_gx[c] = sum_g[c] / count, sum_gx[c] / count
        _grad_x(g, x, c, mu, s, gam, bet, zero, relu, mean_g[c], mean_gx[c], grad_scale[c], grad_x)


# With relu, relu(batch_norm(x)) fused: the output is clamped as it is written, and the backward
# reads the gradient through ReLU's mask (0 where the output is <= 0) as it goes.  The backward
# does not read the output for that mask: it recomputes the value before the clamp from x, which
# it reads anyway, with the same function and so the same rounding as the forward (one array less
# to read in each backward pass; they are bound by memory).  The backward loads ``g`` on every
# path and picks ``zero`` (of its dtype, passed in: made inside, it cost a second of compile time)
# where the mask is 0: a load under the mask's branch (``0 if v <= 0 else g[p]``) kept the loops
# from vectorising, and the int 0 made the gradient's arithmetic float64.  N128 C48 14x14 on 2
# cores: sums 0.8-1.3 -> 0.4-0.5 ms, grad_x 1.2-2.4 -> 0.4 ms, in the arithmetic (and so the
# rounding) of the unfused passes.


@njit(cache=True, nogil=True)
def _bn_value(x, mu, s, gam, bet):  # pragma: no cover - compiled
    # compiled without fast-math flags, also where a fast-math kernel calls it: rounded as written
    return (x - mu) * s * gam + bet


@njit(cache=True, nogil=True)
def _bn_grad_value(h, x, mu, s, mg, mgx, sc):  # pragma: no cover - compiled
    # (as _bn_value: rounded as written)
    return (h - mg - ((x - mu) * s) * mgx) * sc


@njit(cache=True, nogil=True)
def _inv_std(var, eps, one):  # pragma: no cover - compiled
    # one / sqrt(var + eps), all three of x's dtype (as _bn_value: rounded as written)
    return one / np.sqrt(var + eps)


def _as_ncp(a):
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def bn_apply(x, mean, inv_std, scale, shift, relu=False):
    """``y = (x - mean) * inv_std * scale + shift`` per channel (clamped at 0 with ``relu``)."""
    x3 = _as_ncp(x)
    y = np.empty(x3.shape, x.dtype)
    t = x.dtype.type
    _backend.run_jobs(_bn_apply, x3.shape[0] * x3.shape[1], x3, mean.astype(t), inv_std.astype(t), scale.astype(t),
                      shift.astype(t), bool(relu), y, work=2 * x.size, balanced=True)
    return y.reshape(x.shape)


def bn_forward(x, eps, scale, shift, relu=False):
    """The statistics and :func:`bn_apply` in one pass per channel: ``(y, mean, var, inv_std)``,
    the last three in ``x``'s dtype (the moments rounded from float64, ``inv_std = 1 / sqrt(var +
    eps)``)."""
    x3 = _as_ncp(x)
    channels, t = x.shape[1], x.dtype.type
    mean_t, var_t, inv_std = (np.empty(channels, x.dtype) for _ in range(3))
    y = np.empty(x3.shape, x.dtype)
    _backend.run_jobs(_bn_forward, channels, x3, t(eps), t(1), scale.astype(t), shift.astype(t), bool(relu), mean_t,
                      var_t, inv_std, y, work=3 * x.size)
    return y.reshape(x.shape), mean_t, var_t, inv_std


def _relu_args(relu, mean, t):
    """``(scale, shift, relu)`` for the kernels: the fused forward's (``relu``), or placeholders."""
    return (relu[0].astype(t), relu[1].astype(t), True) if relu is not None else (mean, mean, False)


def bn_sums(g, x, mean, inv_std, relu=None):
    """``(sum g, sum g * xhat)`` per channel with ``xhat = (x - mean) * inv_std`` (float64 sums);
    with ``relu = (scale, shift)`` (those of the fused forward), ``g`` is first zeroed where that
    forward's output is <= 0."""
    sg, sgx = np.empty(g.shape[1], np.float64), np.empty(g.shape[1], np.float64)
    t = x.dtype.type
    mean_t = mean.astype(t)
    scale, shift, on = _relu_args(relu, mean_t, t)
    _backend.run_jobs(_bn_sums, g.shape[1], _as_ncp(g), _as_ncp(x), mean_t, inv_std.astype(t), scale, shift,
                      g.dtype.type(0), on, sg, sgx, work=2 * g.size)
    return sg, sgx


def bn_backward(g, x, mean, inv_std, scale, relu=None):
    """:func:`bn_sums` and the input gradient ``(g - mean_g - xhat * mean_gx) * scale`` (``mean_g
    = sum_g / count``, ``mean_gx = sum_gx / count``, ``count`` the values per channel, both
    rounded to ``g``'s dtype) in one pass per channel: ``(grad_x, sum_g, sum_gx)``."""
    g3 = _as_ncp(g)
    out = np.empty(g3.shape, g.dtype)
    t = g.dtype.type
    mean_t = mean.astype(t)
    gam, bet, on = _relu_args(relu, mean_t, t)
    channels = g.shape[1]
    sg, sgx = np.empty(channels, np.float64), np.empty(channels, np.float64)
    mg, mgx = np.empty(channels, g.dtype), np.empty(channels, g.dtype)
    _backend.run_jobs(_bn_backward, channels, g3, _as_ncp(x), mean_t, inv_std.astype(t), gam, bet, g.dtype.type(0), on,
                      g3.shape[0] * g3.shape[2], scale.astype(t), sg, sgx, mg, mgx, out, work=3 * g.size)
    return out.reshape(g.shape), sg, sgx
