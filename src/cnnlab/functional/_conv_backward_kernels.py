"""The backward of every convolution: the adjoints of the padded, batched, grouped correlation
that :func:`cnnlab.functional._conv_kernels.forward` computes, from what that forward saved
(:class:`cnnlab.functional._conv_kernels.Saved`).

:func:`backward` runs each gradient by the forward's method (the methods, and the rules that
choose them, :func:`~cnnlab.functional._conv_kernels.choose_method` and
:func:`~cnnlab.functional._conv_kernels.choose_backward`, are described in
:mod:`cnnlab.functional._conv_kernels`): the GEMM path's ``grad_w = G @ cols.T``
(:func:`_gemm_grad_w`) and ``col2im(W.T @ G)`` (:func:`gemm_grad_x`), from the column matrix the
forward kept or block by block from its input; the 1x1 path's batched products; the direct
loops (compiled: :mod:`cnnlab.functional._numba_direct` and
:mod:`cnnlab.functional._numba_direct_grad_w`; otherwise NumPy's, here), and for first layers
the blocked kernels of :mod:`cnnlab.functional._numba_blocked` where they apply; the implicit and
Winograd kernels' own gradients (:mod:`cnnlab.functional._implicit`,
:mod:`cnnlab.functional._winograd`), each with the way back described at its function.  A
gradient that ``needs`` does not ask for is not computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.functional import (
    _backend,
    _blas,
    _fft_conv,
    _implicit,
    _implicit_grad_w,
    _implicit_grad_x,
    _pointwise,
    _winograd,
)
from cnnlab.functional._columns import _as_2d, _crop, _pads2, _with_pads, _zero_pad, col2im_cm, im2col_cm
from cnnlab.functional._conv_kernels import (
    Saved,
    _blocked_applies,
    _columns_compiled,
    _direct_buffered,
    _direct_compiled,
    chunk,
)
from cnnlab.functional._windows import windows


# From y[b,o,p] = sum_{c,t} xp[b, g*C_g + c, p*s + t*d] * w[o,c,t]:
#   grad_w[o,c,t] = sum_{b,p} grad_out[b,o,p] * xp[b, g*C_g + c, p*s + t*d]
#                 = (G @ cols.T)[o, (c,t)]   with G[o, (b,p)] = grad_out[b,o,p]
#   grad_xp[b, g*C_g + c, q] = sum_{o in g} sum_{p,t: p*s + t*d = q} grad_out[b,o,p] * w[o,c,t]
#                 = col2im(W.T @ G)          (a transposed conv of grad_out with w)
def backward(grad_out: np.ndarray, saved: Saved, needs: tuple[bool, bool] = (True, True), release: bool = False
             ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(grad_x, grad_w)`` from the forward's ``saved``: the gradient of the input the forward
    was given (unpadded, when it was given ``pads``); an entry is None where ``needs`` says so.

    ``release``: ``saved`` is not used again, so its column matrix may be overwritten (by the
    column gradient, after the weight gradient has read it)."""
    # once here, not in each kernel's wrapper: a sum's gradient arrives as a broadcast view
    if _backend.fillable(grad_out):
        from cnnlab.functional import _numba_kernels

        grad_out = _numba_kernels.filled(grad_out)
    else:
        grad_out = np.ascontiguousarray(grad_out)
    if saved.method == "implicit":
        return _implicit_backward(grad_out, saved, needs)
    if saved.method == "winograd":
        return _winograd_backward(grad_out, saved, needs)
    if saved.method == "fft":
        if grad_out.dtype.kind == "f" and np.isfinite(grad_out).all():
            return _fft_conv.backward(grad_out, saved.spectra, saved.weight.shape, saved.stride, saved.dilation,
                                      saved.groups, saved.pads, needs)
        # (a value that is not finite would reach every gradient through the transforms: the GEMM
        # path's, from the input the forward kept)
        saved = saved._replace(method="gemm", spectra=None)
    blocked = _blocked_needs(grad_out, saved, needs)
    rest = (needs[0] and not blocked[0], needs[1] and not blocked[1])
    grad_x = grad_w = None
    if any(rest):
        grad_xp, grad_w = _backward(grad_out, saved, rest, release)
        grad_x = None if grad_xp is None else _crop(grad_xp, saved.crop)
    if any(blocked):
        from cnnlab.functional import _numba_blocked as nb

        bx, bw = nb.gradients(grad_out, saved.xp, saved.weight, saved.dilation, saved.crop, blocked)
        grad_x, grad_w = (bx if blocked[0] else grad_x), (bw if blocked[1] else grad_w)
    return grad_x, grad_w


# Input channels from which the blocked kernels compute the input gradient too: its block sums
# 4 input channels at once, so one channel would waste three quarters of its work, and the
# direct kernels' gather (one input channel per group) is faster there: N64 C1 28x28 -> 32 k5
# 1.55 ms against 4.33 blocked (and 1.69 by the GEMM path); with 3 channels the blocked kernel
# wins (N64 C3 32x32 -> 32 k3 p1: 2.76 ms against 5.20 direct and 6.12 GEMM).
BLOCKED_MIN_CHANNELS_X = 2


def _blocked_needs(grad_out: np.ndarray, saved: Saved, needs: tuple[bool, bool]) -> tuple[bool, bool]:
    """Which gradients the blocked kernels compute: those needed, of a direct forward they apply
    to (:func:`cnnlab.functional._conv_kernels._blocked_applies`, from a padded copy) while the
    compiled kernels run, the weight gradient for a finite input and the input gradient for
    finite weights and at least :data:`BLOCKED_MIN_CHANNELS_X` input channels (each kernel
    multiplies zeros by the other operand's values: see :mod:`cnnlab.functional._numba_blocked`)."""
    if (saved.method != "direct" or saved.backward == "gemm" or saved.pads
            or not _blocked_applies(saved.weight.shape, saved.stride, saved.groups)
            or not _direct_compiled(saved.xp, saved.weight, saved.out) or grad_out.dtype.kind not in "fi"):
        return False, False
    many = saved.weight.shape[1] >= BLOCKED_MIN_CHANNELS_X
    return (needs[0] and many and _finite(saved.weight), needs[1] and _finite(saved.xp))


def _finite(a: np.ndarray) -> bool:
    return a.dtype.kind != "f" or bool(np.isfinite(a).all())


def _backward(grad_out: np.ndarray, saved: Saved, needs: tuple[bool, bool], release: bool = False
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    if saved.method == "direct" and saved.backward != "gemm":
        return _direct_backward(grad_out, saved, needs)
    if saved.method == "pointwise":
        return _pointwise.backward(grad_out, saved.xp, saved.weight, saved.groups, needs)
    if saved.cols is not None:
        g = grad_matrix(grad_out, saved)
        grad_w = _gemm_grad_w(g, saved.cols, saved) if needs[1] else None
        # (the weight gradient has read the columns: a released matrix holds the column gradient)
        scratch = saved.cols if release else None
        grad_xp = gemm_grad_x(g, saved, saved.xp_shape, scratch=scratch) if needs[0] else None
        return grad_xp, grad_w
    xp, kernel = saved.xp, saved.weight.shape[2:]
    step = chunk(xp.shape, kernel, saved.out, xp.dtype.itemsize)
    # the dtype of W.T @ G, as in the one-block path above (the blocks are written into it)
    grad_xp = np.empty(xp.shape, dtype=np.result_type(grad_out, saved.weight)) if needs[0] else None
    grad_w = None
    for start in range(0, xp.shape[0], step):
        part = xp[start:start + step]
        g = grad_matrix(grad_out[start:start + step], saved)
        if needs[1]:  # the block's columns are rebuilt, used and dropped before grad_x needs memory
            gw = _gemm_grad_w(g, im2col_cm(part, kernel, saved.stride, saved.dilation, saved.pads), saved)
            grad_w = gw if grad_w is None else np.add(grad_w, gw, out=grad_w)
        if needs[0]:
            gemm_grad_x(g, saved, part.shape, into=grad_xp[start:start + step])
    return grad_xp, grad_w


def _implicit_backward(grad_out: np.ndarray, saved: Saved, needs: tuple[bool, bool]
                       ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(grad_x, grad_w)`` of an implicit forward, whose ``saved.xp`` is its input with the
    padding ``saved.pads`` still to apply, or already padded by ``saved.crop``.  A forward that
    'auto' gave the GEMM path's gradients (``saved.backward``, see
    :func:`cnnlab.functional._conv_kernels._gemm_backward_pays`), a float64 upstream gradient, or a
    backend that no longer allows the compiled kernels takes the GEMM path from the same input."""
    if saved.backward == "gemm" or grad_out.dtype != np.float32 or not _implicit.applies(saved.xp, saved.weight):
        grad_xp, grad_w = _backward(grad_out, saved._replace(method="gemm", backward="same"), needs)
        return (None if grad_xp is None else _crop(grad_xp, saved.crop)), grad_w
    grad_w = (_implicit_grad_w.grad_w(grad_out, saved.xp, saved.pads, saved.weight.shape, saved.stride,
                                      saved.dilation, saved.groups) if needs[1] else None)
    grad_x = None
    if needs[0] and _implicit.grad_x_applies(saved.weight):
        unpadded = tuple((-lo, -hi) for lo, hi in saved.crop) if saved.crop else None
        grad_x = _implicit_grad_x.grad_x(grad_out, saved.weight, _with_pads(saved.xp_shape, unpadded),
                                  saved.pads or saved.crop, saved.stride, saved.dilation, saved.groups)
    elif needs[0]:
        grad_x = _crop(_gemm_grad_x_blocks(grad_out, saved), saved.crop)
    return grad_x, grad_w


# Bytes of column gradient (``W.T @ G``) per block of samples of :func:`_gemm_grad_x_blocks`: the
# block's product stays in the caches for its col2im, and a block pays the calls' fixed costs
# once.  Measured on 2 threads, the input gradient of an implicit forward, blocks of the whole
# batch / 1 / 2 / 4 MiB, the fastest of 21 alternating in one process (ms): N64 C3 56x56 -> 8 k7
# s2 p3 (29 MB of column gradient) 7.07 / 4.77 / 4.43 / 3.91; N64 C6 14x14 -> 16 k5 (3.8 MB)
# 0.40 / 0.56 / 0.51 / 0.43; N32 C6 28x28 -> 32 k3 p1 (5.4 MB) 0.76 / 1.00 / 0.81 / 0.76; N64 C3
# 32x32 -> 32 k3 s2 p1 0.53 / 0.53 / 0.51 / 0.53.  2 MiB since round 47: LeNet-5's second layer
# (N64 C6 14x14 -> 16 k5) made its training step's peak, 3.8 MB of column gradient at once; its
# step's peak resident growth 9.95 -> 8.14 MiB (torch 7.0-9.9), its step 8.8 -> 9.1 and 9.3 -> 9.8
# ms (settled, alternating in one process; 1 MiB: 9.6, 10.1).
GRAD_X_BLOCK_BYTES = 2 << 20


def _gemm_grad_x_blocks(grad_out: np.ndarray, saved: Saved) -> np.ndarray:
    """:func:`gemm_grad_x` of the whole batch, a block of samples at a time
    (:data:`GRAD_X_BLOCK_BYTES` of column gradient each), into one array: the implicit forward's
    input gradient for the layers its kernels do not take (too few input channels a group)."""
    shape = tuple(saved.xp_shape)
    step = chunk(shape, saved.weight.shape[2:], grad_out.shape[2:], grad_out.itemsize, GRAD_X_BLOCK_BYTES)
    if step >= shape[0]:
        return gemm_grad_x(grad_matrix(grad_out, saved), saved, shape)
    grad_xp = np.empty(shape, np.result_type(grad_out, saved.weight))
    for start in range(0, shape[0], step):
        part = grad_out[start:start + step]
        gemm_grad_x(grad_matrix(part, saved), saved, (part.shape[0], *shape[1:]), into=grad_xp[start:start + step])
    return grad_xp


def _winograd_backward(grad_out: np.ndarray, saved: Saved, needs: tuple[bool, bool]
                       ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(grad_x, grad_w)`` of a Winograd forward, whose ``saved.xp`` is its unpadded input
    (``saved.pads``: its padding) and ``saved.blocked`` the blocked copy it read: both by the
    Winograd kernels (:func:`cnnlab.functional._winograd.backward`), or, for one that gave a value
    that is not finite (or a float64 upstream gradient), as an implicit forward's backward would."""
    grad_x, grad_w = _winograd.backward(grad_out, saved.weight, saved.xp.shape, saved.blocked, saved.pads,
                                        saved.dilation, needs)
    rest = (needs[0] and grad_x is None, needs[1] and grad_w is None)
    if any(rest):
        other_x, other_w = _implicit_backward(grad_out, saved._replace(method="implicit", blocked=None), rest)
        grad_x, grad_w = (other_x if rest[0] else grad_x), (other_w if rest[1] else grad_w)
    return grad_x, grad_w


def grad_matrix(grad_out: np.ndarray, saved: Saved) -> np.ndarray:
    """``G[g, o, (b, p)] = grad_out[b, g*O_g + o, p]``, contiguous: shape ``(G, O_g, N*P)``."""
    out_ch, groups = saved.weight.shape[0], saved.groups
    batch = grad_out.shape[0]
    g3 = grad_out.reshape(batch, out_ch, -1)
    if g3.dtype.char in "fd" and g3.flags.c_contiguous and _columns_compiled(saved.xp_shape, saved.weight.shape[2:]):
        from cnnlab.functional import _numba_kernels as nk

        return nk.channel_major(g3).reshape(groups, out_ch // groups, -1)
    g = np.ascontiguousarray(g3.swapaxes(0, 1))
    return g.reshape(groups, out_ch // groups, -1)


# Bytes of a one-group weight gradient from which the GEMM path multiplies ``G @ cols.T`` as it
# stands, not as ``(cols @ G.T).T`` and a transposed copy: NumPy's copy reads one value a cache line,
# and for a wide gradient one a page.  Measured on 2 cores, float32 (O, C*K, N*P), transposed and
# copied / as it stands, ms: (512, 4608, 392) 20.6 / 10.7, (512, 2304, 392) 10.2 / 5.9, (256, 2304,
# 1568) 11.6 / 11.0, (256, 1152, 392) 1.7 / 1.4; below, either wins by turns: (64, 576, 6272) 3.4 /
# 4.2, (128, 1152, 3136) 5.8 / 6.4, (128, 1152, 1568) 3.4 / 3.2.
GRAD_W_AS_IS_BYTES = 1 << 20


def _gemm_grad_w(g: np.ndarray, cols: np.ndarray, saved: Saved) -> np.ndarray:
    """``grad_w = G @ cols.T`` per group, computed as ``(cols @ G.T).T`` (the shared dimension ``N*P``
    the contiguous one of both operands, and the product's copy small), or for one group and a
    gradient of at least :data:`GRAD_W_AS_IS_BYTES`, as it stands."""
    groups = saved.groups
    c = cols.reshape(groups, -1, cols.shape[1])  # (G, C_g*K, N*P)
    if groups == 1 and g.shape[1] * c.shape[1] * np.result_type(c, g).itemsize >= GRAD_W_AS_IS_BYTES:
        return _blas.matmul(g[0], c[0].T).reshape(saved.weight.shape)
    grad_w = (_blas.matmul(c[0], g[0].T).T if groups == 1
              else _blas.matmul(c, g.swapaxes(1, 2)).swapaxes(1, 2))
    return np.ascontiguousarray(grad_w).reshape(saved.weight.shape)


def gemm_grad_x(g: np.ndarray, saved: Saved, xp_shape: Sequence[int], into: np.ndarray | None = None,
                scratch: np.ndarray | None = None) -> np.ndarray:
    """``col2im(W.T @ G)``: the gradient of the padded input of one block of samples (written into
    ``into``, a contiguous block of the whole gradient, when given).  ``W.T @ G`` is written into
    ``scratch`` (an array of its own, no longer needed: the released column matrix) when that has
    its shape and dtype."""
    weight, groups = saved.weight, saved.groups
    out_ch = weight.shape[0]
    w = weight.reshape(groups, out_ch // groups, -1)
    shape = (w.shape[2] * groups, g.shape[2])
    if (scratch is None or scratch.shape != shape or scratch.dtype != np.result_type(w, g)
            or not scratch.flags.owndata or not scratch.flags.c_contiguous or not scratch.flags.writeable):
        scratch = None
    # (C*K, N*P); one group as a 2-d product: NumPy hands a transposed 2-d operand to the BLAS as
    # it is, while a stack of one transposed matrix took a path twice as slow
    if groups == 1:
        grad_cols = _blas.matmul(w[0].T, g[0], out=scratch)
    else:
        out = None if scratch is None else scratch.reshape(groups, w.shape[2], g.shape[2])
        grad_cols = _blas.matmul(w.swapaxes(1, 2), g, out=out).reshape(shape)
    kernel = weight.shape[2:]
    return col2im_cm(grad_cols, xp_shape, kernel, saved.stride, saved.dilation, into=into, pads=saved.pads)


def _direct_backward(grad_out: np.ndarray, saved: Saved, needs: tuple[bool, bool]
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
    xp, weight, groups = saved.xp, saved.weight, saved.groups
    stride, dilation, out = saved.stride, saved.dilation, saved.out
    n = len(out)
    # ``saved.pads``: a buffered forward kept ``x`` itself; the compiled kernels pad it plane by plane
    # (when the backend still allows them), and the gradient they give is already ``x``'s
    if _direct_compiled(xp, weight, out) and (not saved.pads or _direct_buffered(weight.shape, groups, saved.pads)):
        from cnnlab.functional import _numba_direct as nd
        from cnnlab.functional import _numba_direct_grad_w as ndw

        x2, _, s2, d2 = _as_2d(xp, weight.shape[2:], stride, dilation)
        w2 = weight if n == 2 else weight[:, :, None, :]
        g2 = grad_out if n == 2 else grad_out[:, :, None, :]
        g2 = np.ascontiguousarray(g2)
        p2 = _pads2(saved.pads, n)
        grad_w = ndw.direct_grad_w(x2, g2, w2.shape, s2, d2, groups, p2).reshape(weight.shape) if needs[1] else None
        grad_xp = nd.direct_grad_x(g2, w2, x2.shape, s2, d2, groups, p2).reshape(xp.shape) if needs[0] else None
        return grad_xp, grad_w
    pads = saved.pads
    xp = _zero_pad(xp, pads)
    batch = xp.shape[0]
    out_ch, cg = weight.shape[:2]
    og = out_ch // groups
    kernel = weight.shape[2:]
    g = grad_out.reshape(batch, groups, og, -1)  # (N, G, O_g, P)
    w = weight.reshape(groups, og, cg, -1)
    view = windows(xp, kernel, stride, dilation)
    grad_w = np.zeros(w.shape, dtype=grad_out.dtype) if needs[1] else None
    grad_xp = np.zeros(xp.shape, dtype=grad_out.dtype) if needs[0] else None
    for i, tap in enumerate(np.ndindex(*kernel)):
        if needs[1]:
            xs = view[(Ellipsis, *tap)].reshape(batch, groups, cg, -1)  # (N, G, C_g, P)
            grad_w[:, :, :, i] = np.einsum("ngop,ngcp->goc", g, xs)
        if needs[0]:
            target = tuple(
                slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilation, out, stride, strict=True)
            )
            if og == 1:
                contrib = w[None, :, 0, :, i, None] * g  # (N, G, C_g, P) since O_g = 1
            else:
                contrib = np.matmul(w[:, :, :, i].swapaxes(1, 2), g)  # (N, G, C_g, P)
            grad_xp[(slice(None), slice(None), *target)] += contrib.reshape(batch, -1, *out)
    grad_xp = None if grad_xp is None else _crop(grad_xp, pads)  # (only when the forward was buffered)
    return grad_xp, (None if grad_w is None else grad_w.reshape(weight.shape))
