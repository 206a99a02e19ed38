"""Transposed convolution (the adjoint of :func:`~cnnlab.functional._conv.conv` in its input),
with its backward.  PyTorch's argument order: ``(x, weight, bias, stride, padding,
output_padding, groups, dilation)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.functional import _backend, _implicit, _implicit_grad_x
from cnnlab.functional import _conv_backward_kernels as backward_kernels
from cnnlab.functional import _conv_kernels as kernels
from cnnlab.functional._args import (
    PadPairs,
    check_array,
    check_batch_only_empty,
    check_exact_range,
    ntuple,
    padding_pairs,
    result_dtype,
)
from cnnlab.functional._conv import (
    _batched,
    _check_bias,
    _check_grad_out,
    _check_groups,
    _conv_transpose_core,
    _spatial_dims,
    bias_grad,
    crop_then_pads,
)


@dataclass(frozen=True)
class _TransposeArgs:
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    unbatched: bool
    stride: tuple[int, ...]
    pads: PadPairs
    output_padding: tuple[int, ...]
    groups: int
    dilation: tuple[int, ...]
    out: tuple[int, ...]
    dtype: np.dtype


def _transpose_args(
    op: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, output_padding: Any,
    groups: Any, dilation: Any, n: int | None,
) -> _TransposeArgs:
    x = check_array(op, "x", x, allow_empty=True)
    weight = check_array(op, "weight", weight)
    n = _spatial_dims(op, weight, n, "in_channels, out_channels/groups, *kernel")
    xb, unbatched = _batched(op, x, n)
    check_batch_only_empty(op, "x", xb)
    groups = _check_groups(op, groups)
    channels = xb.shape[1]
    if channels % groups:
        raise ValueError(f"{op}: in_channels {channels} is not divisible by groups {groups}")
    if weight.shape[0] != channels:
        raise ValueError(
            f"{op}: weight's first dim must equal in_channels {channels}, got weight shape "
            f"{weight.shape}"
        )
    bias = _check_bias(op, bias, weight.shape[1] * groups)
    stride = ntuple(op, "stride", stride, n, minimum=1)
    dilation = ntuple(op, "dilation", dilation, n, minimum=1)
    pads = padding_pairs(op, padding, n)
    output_padding = ntuple(op, "output_padding", output_padding, n, minimum=0)
    for i, (op_, s, d) in enumerate(zip(output_padding, stride, dilation, strict=True)):
        if op_ >= max(s, d):
            raise ValueError(
                f"{op}: output_padding must be smaller than stride or dilation in spatial dim "
                f"{i}, got output_padding {op_} with stride {s} and dilation {d}"
            )
    out = []
    for i, (size, k, s, (lo, hi), d, op_) in enumerate(
        zip(xb.shape[2:], weight.shape[2:], stride, pads, dilation, output_padding, strict=True)
    ):
        o = (size - 1) * s - lo - hi + d * (k - 1) + op_ + 1
        if o <= 0:
            raise ValueError(
                f"{op}: padding ({lo}, {hi}) is too large in spatial dim {i}: output size would "
                f"be {o} = ({size} - 1) * {s} - {lo} - {hi} + {d} * ({k} - 1) + {op_} + 1"
            )
        out.append(o)
    dtype = result_dtype(xb, weight, *(() if bias is None else (bias,)))
    # each output sums at most every (input channel, kernel tap) product
    check_exact_range(op, weight.shape[0] // groups * int(np.prod(weight.shape[2:])), xb, weight, bias)
    return _TransposeArgs(
        xb, weight, bias, unbatched, stride, pads, output_padding, groups, dilation, tuple(out), dtype
    )


def _conv_transpose(
    op: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, output_padding: Any,
    groups: Any, dilation: Any, n: int | None,
) -> np.ndarray:
    a = _transpose_args(op, x, weight, bias, stride, padding, output_padding, groups, dilation, n)
    if a.x.shape[0] == 0:  # an empty batch gives an empty output, as in PyTorch
        y = np.zeros((0, a.weight.shape[1] * a.groups, *a.out), dtype=a.dtype)
        return y[0] if a.unbatched else y
    x, w = a.x.astype(a.dtype, copy=False), a.weight.astype(a.dtype, copy=False)
    if _scatter_applies(a):
        y = _scatter_forward(x, w, a)
    else:
        y = _conv_transpose_core(x, w, a.stride, a.pads, a.output_padding, a.groups, a.dilation)
    if a.bias is not None:
        y += a.bias.astype(a.dtype).reshape((-1,) + (1,) * len(a.stride))
    return y[0] if a.unbatched else y


def _scatter_applies(a: _TransposeArgs) -> bool:
    """Whether the forward runs as the conv's input gradient (:func:`_scatter_forward`): strided
    problems, where the other way, a correlation of ``x`` dilated by the stride, would multiply
    the inserted zeros too (3 of every 4 cells at stride 2 in 2-d)."""
    return any(s > 1 for s in a.stride)


def _scatter_forward(x: np.ndarray, w: np.ndarray, a: _TransposeArgs) -> np.ndarray:
    """The transposed conv as what it is the adjoint of: the input gradient of the conv with the
    same weight and arguments, taken at ``grad_out = x``.  That is ``col2im(W.T @ X)`` (the GEMM
    path's input gradient), one block of samples at a time where the columns are large: each
    input cell's products with every tap are added into the output cells they reach.

    The conv reads the output zero-padded by ``(lo, hi - output_padding)`` and gives ``x``'s size.
    Where ``output_padding`` exceeds ``hi``, the last cells (up to all of them) lie past every
    window (no tap reaches them): they are 0, and the scatter fills the rest."""
    batch, channels = x.shape[0], a.weight.shape[1] * a.groups
    extra = tuple(min(o, max(0, op_ - hi)) for o, (_, hi), op_ in zip(a.out, a.pads, a.output_padding, strict=True))
    pads = tuple((lo, hi - op_ + e) for (lo, hi), op_, e in zip(a.pads, a.output_padding, extra, strict=True))
    reached = tuple(o - e for o, e in zip(a.out, extra, strict=True))
    if not all(reached):  # (a crop past every cell the taps reach)
        return np.zeros((batch, channels, *a.out), dtype=a.dtype)
    if _implicit_applies(x, w):
        y = _implicit_grad_x.grad_x(x, w, (batch, channels, *reached), pads, a.stride, a.dilation, a.groups)
    else:
        y = _gemm_scatter(x, w, a, (batch, channels, *reached), pads)
    if not any(extra):
        return y
    full = np.zeros((batch, channels, *a.out), dtype=a.dtype)
    full[(slice(None), slice(None), *(slice(0, r) for r in reached))] = y
    return full


def _implicit_applies(x: np.ndarray, w: np.ndarray) -> bool:
    """Whether the strided forward runs as the implicit kernels' input gradient
    (:func:`cnnlab.functional._implicit_grad_x.grad_x`, its phases skip the stride's zeros as the
    scatter does): float32, the compiled kernels, what that input gradient needs of the weight
    (:func:`cnnlab.functional._implicit.grad_x_applies`, with
    :data:`cnnlab.functional._implicit.MIN_LANES` channels a group), and as many positions as the automatic
    rule asks of the implicit kernels (:data:`cnnlab.functional._implicit.MIN_POSITIONS`).
    Measured on 2 cores, col2im / implicit, ms: N16 C32 14x14 -> 16 k4 s2 p1 1.71 / 1.54; N8
    C128 14x14 -> 64 k4 s2 p1 4.14 / 3.67; N8 C256 7x7 -> 128 k2 s2 (392 positions) 1.49 / 2.55."""
    positions = x.shape[0] * int(np.prod(x.shape[2:]))  # (those of the conv whose input gradient this is)
    return (x.dtype == np.float32 and w.dtype == np.float32 and 1 <= w.ndim - 2 <= 3
            and positions >= _implicit.MIN_POSITIONS and _backend.use_numba(float(x.size) * float(w[0].size))
            and _implicit.grad_x_applies(w, _implicit.MIN_LANES))


def _gemm_scatter(x: np.ndarray, w: np.ndarray, a: _TransposeArgs, shape: tuple[int, ...],
                  pads: PadPairs) -> np.ndarray:
    """``col2im(W.T @ X)`` into a new array of ``shape``, a block of samples at a time."""
    batch = x.shape[0]
    y = np.empty(shape, dtype=a.dtype)
    saved = kernels.Saved("gemm", None, None, y.shape, w, a.stride, a.dilation, a.groups, x.shape[2:], pads=pads)
    step = kernels.chunk(y.shape, w.shape[2:], x.shape[2:], x.dtype.itemsize)
    for start in range(0, batch, step):
        part = x[start:start + step]
        backward_kernels.gemm_grad_x(backward_kernels.grad_matrix(part, saved), saved, (part.shape[0], *y.shape[1:]),
                                     into=y[start:start + step])
    return y


def conv_transpose(
    x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1, padding: Any = 0,
    output_padding: int | Sequence[int] = 0, groups: int = 1, dilation: int | Sequence[int] = 1,
) -> np.ndarray:
    """N-d transposed convolution (the adjoint of :func:`conv` in ``x``), PyTorch's argument order.

    Parameters
    ----------
    x : array_like
        ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
    weight : array_like
        ``(C_in, C_out / groups, *kernel)`` (the layout of the conv it transposes).
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation : int or tuple of int, default 1
    padding : int, tuple or tuple of (lo, hi) pairs, default 0
        Removes ``dilation*(k-1) - padding`` ... i.e. crops ``lo``/``hi`` cells of the full output.
    output_padding : int or tuple of int, default 0
        Extra cells at the end of each dim (smaller than stride or dilation), to pick one of the
        input sizes a strided conv maps to the same output size.
    groups : int, default 1

    Shape
    -----
    ``out = (in - 1)*stride - pad_lo - pad_hi + dilation*(k - 1) + output_padding + 1``.

    Notes
    -----
    ``y[b, g*O_g + o, i*stride + t*dilation - pad_lo] += x[b, c, i] * w[c, o, t]``: every input
    cell stamps a scaled copy of its filter into the output.

    Examples
    --------
    >>> conv_transpose2d([[[1, 2], [3, 4]]], [[[[1, 1], [1, 1]]]], stride=2)
    array([[[1, 1, 2, 2],
            [1, 1, 2, 2],
            [3, 3, 4, 4],
            [3, 3, 4, 4]]])
    """
    return _conv_transpose(
        "conv_transpose", x, weight, bias, stride, padding, output_padding, groups, dilation, None
    )


def conv_transpose1d(
    x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1, padding: Any = 0,
    output_padding: int | Sequence[int] = 0, groups: int = 1, dilation: int | Sequence[int] = 1,
) -> np.ndarray:
    """1-d :func:`conv_transpose`."""
    return _conv_transpose(
        "conv_transpose1d", x, weight, bias, stride, padding, output_padding, groups, dilation, 1
    )


def conv_transpose2d(
    x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1, padding: Any = 0,
    output_padding: int | Sequence[int] = 0, groups: int = 1, dilation: int | Sequence[int] = 1,
) -> np.ndarray:
    """2-d :func:`conv_transpose`."""
    return _conv_transpose(
        "conv_transpose2d", x, weight, bias, stride, padding, output_padding, groups, dilation, 2
    )


def conv_transpose3d(
    x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1, padding: Any = 0,
    output_padding: int | Sequence[int] = 0, groups: int = 1, dilation: int | Sequence[int] = 1,
) -> np.ndarray:
    """3-d :func:`conv_transpose`."""
    return _conv_transpose(
        "conv_transpose3d", x, weight, bias, stride, padding, output_padding, groups, dilation, 3
    )


# Backward of the transposed conv y = T(x, w): T is the adjoint of the conv map x -> conv(x, w)
# with the same stride/padding/dilation/groups, so grad_x = conv(grad_out, w) (same stride,
# padding, dilation, groups).  For the weight, y[q] = sum x[c,i] w[c,o,t] over i*s + t*d - lo = q,
# so grad_w[c,o,t] = sum_{b,i} x[b,c,i] * grad_out_pad[b, g*O_g + o, i*s + t*d]: the weight
# gradient of a conv whose input is grad_out and whose upstream gradient is x, i.e. again a
# correlation of grad_out's windows with x (the forward's im2col).
def conv_transpose_backward(
    grad_out: Any, x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1,
    padding: Any = 0, output_padding: int | Sequence[int] = 0, groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients ``(grad_x, grad_w, grad_b)`` of :func:`conv_transpose` (and its 1d/2d/3d forms).

    ``grad_x`` is the conv of ``grad_out`` with the same weight and arguments; ``grad_w`` the
    correlation of ``grad_out`` with ``x``.
    """
    op = "conv_transpose_backward"
    a = _transpose_args(op, x, weight, bias, stride, padding, output_padding, groups, dilation, None)
    shape = (a.x.shape[0], a.weight.shape[1] * a.groups, *a.out)
    grad_out = _check_grad_out(op, grad_out, shape[1:] if a.unbatched else shape)
    dtype = result_dtype(grad_out, a.x, a.weight)
    g = (grad_out[None] if a.unbatched else grad_out).astype(dtype, copy=False)
    xb = a.x.astype(dtype, copy=False)
    w = a.weight.astype(dtype, copy=False)
    # extend the high padding by output_padding so the conv's windows cover grad_out exactly
    cpads = tuple((lo, hi - op_) for (lo, hi), op_ in zip(a.pads, a.output_padding, strict=True))
    gc, zeros = crop_then_pads(g, cpads)  # (the GEMM path reads the padding as zeros: no padded copy)
    if xb.shape[0] == 0:
        grad_x, grad_w = np.zeros(xb.shape, dtype), np.zeros(w.shape, dtype)
    else:
        # one forward on grad_out (its method by the automatic rule) gives grad_x and keeps what grad_w reads
        grad_x, saved = kernels.forward(gc, w, a.stride, a.dilation, a.groups, "auto", save=True, pads=zeros)
        grad_w = backward_kernels.backward(xb, saved, (False, True))[1]
    grad_b = None if a.bias is None else bias_grad(g)
    return (grad_x[0] if a.unbatched else grad_x), grad_w, grad_b
