"""The deep-learning convolution layer ``conv`` (a cross-correlation, as in PyTorch) with its
backward, and the one kernel every convolution in cnnlab runs on.

One general N-d implementation; ``conv1d/2d/3d`` only fix the number of spatial dims.
:func:`cnnlab.functional._conv_kernels.forward` is the correlation of a batched input, zero-padded
on the fly, with a grouped weight (im2col and one matrix product, or direct loops).  The backward
pass reuses it (see the derivation above :func:`conv_backward`), and so do the signal-processing
:mod:`~cnnlab.functional._correlate` ops and the transposed conv.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional import _conv_backward_kernels as backward_kernels
from cnnlab.functional import _conv_kernels as kernels
from cnnlab.functional._args import (
    PadPairs,
    check_array,
    check_batch_only_empty,
    check_choice,
    check_exact_range,
    check_ndim,
    ntuple,
    out_sizes,
    padding_pairs,
    result_dtype,
    same_padding,
)
from cnnlab.functional._windows import PAD_MODES, dilate, flip, pad, pad_backward

# ---------------------------------------------------------------------------------------------
# the deep-learning layer: conv


@dataclass(frozen=True)
class _ConvArgs:
    x: np.ndarray  # batched (N, C, *sp)
    weight: np.ndarray
    bias: np.ndarray | None
    unbatched: bool
    stride: tuple[int, ...]
    pads: PadPairs
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str
    out: tuple[int, ...]
    dtype: np.dtype


def _check_groups(op: str, groups: Any) -> int:
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"{op}: groups must be a positive int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups}")
    return int(groups)


def _check_bias(op: str, bias: Any, channels: int) -> np.ndarray | None:
    if bias is None:
        return None
    bias = check_array(op, "bias", bias)
    if bias.shape != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},), got shape {bias.shape}")
    return bias


def _batched(op: str, x: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    layout = f"(N, C, {n} spatial) or unbatched (C, {n} spatial)"
    check_ndim(op, "x", x, (n + 1, n + 2), layout)
    return (x[None], True) if x.ndim == n + 1 else (x, False)


def _spatial_dims(op: str, weight: np.ndarray, n: int | None, layout: str) -> int:
    """The number of spatial dims: fixed by a 1d/2d/3d name, else ``weight.ndim - 2`` (>= 1)."""
    if n is None:
        n = weight.ndim - 2
        if n < 1:
            raise ValueError(
                f"{op}: weight must be ({layout}) with at least one spatial dim, got shape {weight.shape}"
            )
    else:
        check_ndim(op, "weight", weight, (n + 2,), layout)
    return n


def _conv_args(
    op: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
    groups: Any, padding_mode: Any, n: int | None,
) -> _ConvArgs:
    """The checked arguments of a convolution (each error names the op, the argument, what it
    expects and what it got).  For arrays with a floating dtype and plain ``int``, ``str`` or
    int-tuple settings, the checks depend on nothing but the shapes, dtypes and settings, so the
    settings' checked forms are kept for the next call with the same ones (:data:`_CHECKED`):
    12 us of checks per call, against 2.3 us (a MNIST-1D step calls it 3 times)."""
    key = _settings_key(op, x, weight, bias, stride, padding, dilation, groups, padding_mode, n)
    kept = _CHECKED.get(key) if key is not None else None
    if kept is not None:
        unbatched, stride, pads, dilation, groups, out, dtype = kept
        return _ConvArgs(x[None] if unbatched else x, weight, bias, unbatched, stride, pads, dilation, groups,
                         padding_mode, out, dtype)
    a = _checked_args(op, x, weight, bias, stride, padding, dilation, groups, padding_mode, n)
    if key is not None:
        if len(_CHECKED) >= CHECKED_ENTRIES:
            _CHECKED.clear()
        _CHECKED[key] = (a.unbatched, a.stride, a.pads, a.dilation, a.groups, a.out, a.dtype)
    return a


# Settings whose checks passed, by :func:`_settings_key` (at most CHECKED_ENTRIES; then afresh).
_CHECKED: dict[tuple, tuple] = {}
CHECKED_ENTRIES = 512


def _settings_key(op: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
                  padding_mode: Any, n: int | None) -> tuple | None:
    """What the checks of :func:`_checked_args` depend on, where that is all they depend on: NumPy
    arrays (not subclasses, not lists) of which one is floating (integer inputs have their values
    checked), and settings that are plain ints, strs or tuples or lists of ints (``2``, ``2.0``,
    ``True`` and ``np.int64(2)`` are equal keys of a dict, not equal settings: only the first is
    kept); else None."""
    if type(x) is not np.ndarray or type(weight) is not np.ndarray or not (bias is None or type(bias) is np.ndarray):
        return None
    if x.dtype.kind != "f" and weight.dtype.kind != "f" and (bias is None or bias.dtype.kind != "f"):
        return None
    settings = []
    for value in (stride, padding, dilation, groups, padding_mode):
        kind = type(value)
        if kind is int or kind is str or (kind is tuple and all(type(v) is int for v in value)):
            settings.append(value)
        elif kind is list and all(type(v) is int for v in value):
            # (a list of ints, as the nn layers pass their padding: kept apart from the tuple of the
            # same ints, which the checks may read otherwise)
            settings.append((list, *value))
        else:
            return None
    return (op, n, x.shape, x.dtype, weight.shape, weight.dtype, None if bias is None else (bias.shape, bias.dtype),
            *settings)


def _checked_args(
    op: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
    groups: Any, padding_mode: Any, n: int | None,
) -> _ConvArgs:
    x = check_array(op, "x", x, allow_empty=True)
    weight = check_array(op, "weight", weight)
    n = _spatial_dims(op, weight, n, "out_channels, in_channels/groups, *kernel")
    xb, unbatched = _batched(op, x, n)
    check_batch_only_empty(op, "x", x if not unbatched else x[None])
    groups = _check_groups(op, groups)
    channels, out_ch, cg = xb.shape[1], weight.shape[0], weight.shape[1]
    if channels % groups:
        raise ValueError(f"{op}: in_channels {channels} is not divisible by groups {groups}")
    if out_ch % groups:
        raise ValueError(f"{op}: out_channels {out_ch} is not divisible by groups {groups}")
    if cg * groups != channels:
        raise ValueError(
            f"{op}: weight expects {cg * groups} input channels ({cg} per group x {groups} "
            f"groups), got x with {channels} channels (x shape {x.shape})"
        )
    bias = _check_bias(op, bias, out_ch)
    stride = ntuple(op, "stride", stride, n, minimum=1)
    dilation = ntuple(op, "dilation", dilation, n, minimum=1)
    check_choice(op, "padding_mode", padding_mode, PAD_MODES)
    spatial, kernel = xb.shape[2:], weight.shape[2:]
    if isinstance(padding, str):
        check_choice(op, "padding", padding, ("valid", "same"))
        pads = ((0, 0),) * n if padding == "valid" else same_padding(spatial, kernel, stride, dilation)
    else:
        pads = padding_pairs(op, padding, n)
    if padding_mode in ("reflect", "circular"):
        for i, ((lo, hi), size) in enumerate(zip(pads, spatial, strict=True)):
            limit = size - 1 if padding_mode == "reflect" else size
            if lo > limit or hi > limit:
                raise ValueError(
                    f"{op}: padding_mode '{padding_mode}' needs padding <= {limit} in spatial dim "
                    f"{i} (input size {size}), got ({lo}, {hi})"
                )
    out = out_sizes(op, spatial, kernel, stride, pads, dilation)
    dtype = result_dtype(xb, weight, *(() if bias is None else (bias,)))
    check_exact_range(op, int(math.prod(weight.shape[1:])), xb, weight, bias)
    return _ConvArgs(xb, weight, bias, unbatched, stride, pads, dilation, groups, padding_mode, out, dtype)


def _check_method(op: str, method: Any) -> str:
    return check_choice(op, "method", method, kernels.CONV_METHODS)


def _conv(
    op: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
    groups: Any, padding_mode: Any, n: int | None, method: Any = "auto",
) -> np.ndarray:
    method = _check_method(op, method)
    a = _conv_args(op, x, weight, bias, stride, padding, dilation, groups, padding_mode, n)
    _wake_threads(a.x.shape[0], a.out, a.weight.shape)
    y = _empty_output(a)
    if y is None:
        xin, kpads = _kernel_input(a.x.astype(a.dtype, copy=False), a.pads, a.padding_mode)
        bias = None if a.bias is None else a.bias.astype(a.dtype, copy=False)
        y, _ = kernels.forward(xin, a.weight.astype(a.dtype, copy=False), a.stride, a.dilation, a.groups, method,
                               bias, pads=kpads)
    return y[0] if a.unbatched else y


# A convolution (forward or backward) of at least this many multiply-adds wakes the kernels'
# sleeping helper threads as it starts (:func:`_wake_threads`); a smaller one leaves them to its
# first parallel job, if it has one.  An early wake is a helper taking the GIL and a 2 ms spin,
# whether or not the op hands it work: the MNIST-1D CNN's layers (none of whose kernels runs on two
# threads) and LeNet-5's woke them at every pass, and their training steps ran up to 11% slower
# (round 52, docs/BENCHMARKS.md); single layers this large, timed cold, gain or lose within noise.
EARLY_WAKE_MIN_WORK = 5e7


def _wake_threads(batch: int, out: Sequence[int], weight_shape: Sequence[int]) -> None:
    """Wake the kernels' sleeping helper threads as a large convolution (forward or backward)
    starts, one of at least :data:`EARLY_WAKE_MIN_WORK` multiply-adds (``batch`` times the ``out``
    positions times the weight's values), so that they are watching for its first parallel kernel
    by the time the checks and tables before it are done (:func:`_backend.wake_threads`)."""
    work = float(batch) * math.prod(out) * math.prod(weight_shape)
    if work >= EARLY_WAKE_MIN_WORK:
        _backend.wake_threads(work)


def _kernel_input(x: np.ndarray, pads: PadPairs, padding_mode: str) -> tuple[np.ndarray, PadPairs | None]:
    """``(input, pads)`` for the kernels: zero padding is theirs to apply (the GEMM path reads it as
    zeros without a padded copy); the other modes are padded here."""
    if padding_mode == "zeros":
        return x, pads
    return pad(x, pads, padding_mode), None


def _empty_output(a: _ConvArgs) -> np.ndarray | None:
    """The output of an empty batch (``N = 0``, as PyTorch allows), else None."""
    if a.x.shape[0]:
        return None
    return np.zeros((0, a.weight.shape[0], *a.out), dtype=a.dtype)


def conv(
    x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1,
    padding: Any = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
    padding_mode: str = "zeros", method: str = "auto",
) -> np.ndarray:
    """N-d convolution layer (a cross-correlation, as in every deep-learning library).

    The number of spatial dims is ``weight.ndim - 2``.  :func:`conv1d`, :func:`conv2d` and
    :func:`conv3d` are this op with that number fixed.

    Parameters
    ----------
    x : array_like
        Input ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``.
    weight : array_like
        Filters ``(C_out, C_in / groups, *kernel)``: each filter looks for one feature.
    bias : array_like, optional
        ``(C_out,)``, added to every output position of its channel.
    stride : int or tuple of int, default 1
        Step between neighbouring windows.
    padding : int, tuple, tuple of (lo, hi) pairs, 'valid' or 'same', default 0
        Cells added around each spatial dim.  An int pads every side equally, a tuple gives one
        symmetric amount per dim, ``((lo, hi), ...)`` pads asymmetrically (as JAX and ONNX allow).
        'valid' means no padding.  'same' gives ``out = ceil(in / stride)`` by the TensorFlow /
        ONNX SAME_UPPER rule: total padding ``max((out-1)*stride + dilation*(k-1) + 1 - in, 0)``,
        half of it (rounded down) before and the rest, the odd cell, after; with stride 1 this is
        exactly PyTorch's ``padding='same'``.
    dilation : int or tuple of int, default 1
        Spacing between kernel taps; 1 means none.
    groups : int, default 1
        Split channels into groups convolved separately; ``C_in`` and ``C_out`` must be
        divisible by it.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        How padded cells are filled, as in PyTorch's ``nn.Conv`` layers.
    method : {'auto', 'gemm', 'direct', 'implicit', 'winograd', 'fft'}, default 'auto'
        The kernel that computes the sum (all give the same result up to float rounding, and
        integer inputs stay exact on every method): ``'gemm'`` is im2col and one matrix product
        for the whole batch (a 1x1 kernel skips im2col); ``'direct'`` loops over kernel taps
        (compiled with Numba when installed); ``'implicit'`` is the matrix product without the
        column matrix, read from the padded input by compiled float32 kernels (other dtypes,
        or no Numba: ``'gemm'``); ``'winograd'`` computes 2 x 2 outputs with 16 products per
        input channel instead of 36 (F(2x2, 3x3): float32 3x3 kernels of stride 1, one group,
        2-d), or 36 instead of 100 (F(2x2, 5x5): 5x5 kernels, the same layers; the weight
        gradient by ``'implicit'``; ``'auto'`` takes it for 16-64 channels and filters, since its
        error grows with them); other layers: ``'implicit'``; its rounding error follows the
        largest values of a 4 x 4 (6 x 6) tile rather than of the kernel's window.  ``'fft'``
        multiplies the spectra of every input plane and every filter plane bin by bin, summing
        over the channels there, and transforms each output plane back (float32 and float64,
        any dims, stride, dilation and groups; compiled transforms for float32 1-d and 2-d
        layers); its cost hardly depends on the kernel's size, so ``'auto'`` takes it for 5x5
        and larger float32 kernels where its model of time is the lower
        (:func:`cnnlab.functional._fft_conv.chosen`); its error grows with the log of the
        transform's length, not with the taps summed; integers, and values that are not
        finite, run ``'implicit'`` instead.  ``'auto'`` follows
        :func:`cnnlab.functional._conv_kernels.choose_method` and :func:`cnnlab.set_backend`.

    Shape
    -----
    ``out = floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1`` per spatial dim.

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, *out)`` (unbatched in, unbatched out).  Integer inputs give exact int64
        (uint8 images cannot overflow); float32 stays float32, float64 stays float64.

    Raises
    ------
    TypeError
        Non-numeric arrays, non-integer stride/padding/dilation/groups.
    ValueError
        Wrong ndim, channels not divisible by groups, stride or dilation < 1, negative padding,
        a kernel larger than the padded input, empty arrays, an unknown padding or padding_mode.

    Notes
    -----
    ``y[b, o, p] = bias[o] + sum_{c, t} x_pad[b, g*C_g + c, p*stride + t*dilation] * w[o, c, t]``
    where ``g = o // (C_out / groups)`` and ``C_g = C_in / groups``.

    Examples
    --------
    The lecture's example: one 3x3 image, one 2x2 filter, stride 1.

    >>> conv2d([[[1, 0, 2], [3, 1, 0], [0, 0, 4]]], [[[[1, 0], [0, 1]]]])
    array([[[2, 0],
            [3, 5]]])
    """
    return _conv("conv", x, weight, bias, stride, padding, dilation, groups, padding_mode, None, method)


def conv1d(
    x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1,
    padding: Any = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
    padding_mode: str = "zeros", method: str = "auto",
) -> np.ndarray:
    """1-d :func:`conv`: ``x`` is ``(N, C_in, L)`` or ``(C_in, L)``, weight ``(C_out, C_in/groups, k)``."""
    return _conv("conv1d", x, weight, bias, stride, padding, dilation, groups, padding_mode, 1, method)


def conv2d(
    x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1,
    padding: Any = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
    padding_mode: str = "zeros", method: str = "auto",
) -> np.ndarray:
    """2-d :func:`conv`: ``x`` is ``(N, C_in, H, W)`` or ``(C_in, H, W)``, weight ``(C_out, C_in/groups, kH, kW)``.

    Examples
    --------
    >>> conv2d([[[1, 0, 2], [3, 1, 0], [0, 0, 4]]], [[[[1, 0], [0, 1]]]], padding="same").tolist()
    [[[2, 0, 2], [3, 5, 0], [0, 0, 4]]]
    """
    return _conv("conv2d", x, weight, bias, stride, padding, dilation, groups, padding_mode, 2, method)


def conv3d(
    x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1,
    padding: Any = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
    padding_mode: str = "zeros", method: str = "auto",
) -> np.ndarray:
    """3-d :func:`conv`: ``x`` is ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``,
    weight ``(C_out, C_in/groups, kD, kH, kW)``."""
    return _conv("conv3d", x, weight, bias, stride, padding, dilation, groups, padding_mode, 3, method)


def _check_grad_out(op: str, grad_out: Any, shape: tuple[int, ...]) -> np.ndarray:
    grad_out = check_array(op, "grad_out", grad_out, allow_empty=True)
    if grad_out.shape != tuple(shape):
        raise ValueError(
            f"{op}: grad_out must have the output's shape {tuple(shape)}, got {grad_out.shape}"
        )
    return grad_out


# Backward of y[b,o,p] = sum_{c,t} xp[b, g*C_g + c, p*s + t*d] * w[o,c,t]   (g = o // O_g).
#
# grad_w[o,c,t] = sum_{b,p} grad_out[b,o,p] * xp[b, g*C_g + c, p*s + t*d]
#   : a correlation of the input with grad_out, i.e. grad_out (O_g x N*P per group) times the
#     forward's im2col matrix of xp (C_g*K x N*P, transposed): one GEMM over the whole batch.
# grad_xp[b, g*C_g + c, q] = sum_{o in g} sum_{p,t : p*s + t*d = q} grad_out[b,o,p] * w[o,c,t]
#   : a transposed conv of grad_out with the same weight; computed as W.T @ grad_out (one GEMM)
#     followed by col2im, the adjoint of im2col (see _conv_backward_kernels.backward).
# grad_x is grad_xp without its padding: zero padding is dropped by the kernels themselves (col2im
# never writes it), the other modes fold the border back onto the cells it copied (pad_backward).
# grad_b[o] = sum_{b,p} grad_out[b,o,p].
class ConvSaved(NamedTuple):
    """What :func:`conv_forward_saving` keeps for :func:`conv_backward_saved`."""

    kernel: kernels.Saved | None  # None for an empty batch
    x_shape: tuple[int, ...]  # batched
    pads: PadPairs
    padding_mode: str
    unbatched: bool
    has_bias: bool
    dtype: np.dtype
    weight_shape: tuple[int, ...]
    # the unpadded input, when the forward dropped its small padded copy (see REPAD_BYTES)
    x: np.ndarray | None = None


# A zero-padded input of at most this many bytes that the backward needs (the direct kernels, or
# GEMM columns rebuilt) is not kept: the backward pads the input again, which costs microseconds,
# while for small models these copies are a noticeable share of a training step's memory.  Larger
# inputs keep their padded copy.
REPAD_BYTES = 1 << 20


def saving_pair(op: str, n: int | None) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(forward_saving, backward_saved)`` for the op named ``op`` with ``n`` spatial dims
    (None: from the weight), as :func:`~cnnlab.functional._dispatch.differentiable` takes them."""
    return functools.partial(_conv_forward_saving, op, n), conv_backward_saved


def _conv_forward_saving(
    op: str, n: int | None, needs: Sequence[bool], x: Any, weight: Any, bias: Any = None, stride: Any = 1,
    padding: Any = 0, dilation: Any = 1, groups: Any = 1, padding_mode: str = "zeros", method: str = "auto",
) -> tuple[np.ndarray, ConvSaved]:
    """:func:`conv` that also returns what its backward needs (the column matrix or padded input).

    ``needs`` says which of ``(x, weight, bias)`` will want a gradient; with neither ``x`` nor
    ``weight`` wanted nothing large is kept.
    """
    method = _check_method(op, method)
    a = _conv_args(op, x, weight, bias, stride, padding, dilation, groups, padding_mode, n)
    _wake_threads(a.x.shape[0], a.out, a.weight.shape)
    y = _empty_output(a)
    saved = None
    if y is None:
        source = a.x.astype(a.dtype, copy=False)
        xin, kpads = _kernel_input(source, a.pads, a.padding_mode)
        b = None if a.bias is None else a.bias.astype(a.dtype, copy=False)
        keep = bool(needs[0] or needs[1])
        y, saved = kernels.forward(
            xin, a.weight.astype(a.dtype, copy=False), a.stride, a.dilation, a.groups, method, b, save=keep,
            pads=kpads,
        )
    unpadded = None
    if (saved is not None and saved.xp is not None and saved.xp is not source and a.padding_mode == "zeros"
            and saved.xp.nbytes <= REPAD_BYTES):
        unpadded, saved = source, saved._replace(xp=None)
    ctx = ConvSaved(
        saved, a.x.shape, a.pads, a.padding_mode, a.unbatched, a.bias is not None, a.dtype, a.weight.shape, unpadded
    )
    return (y[0] if a.unbatched else y), ctx


def conv_backward_saved(
    grad_out: np.ndarray, ctx: ConvSaved, needs: Sequence[bool] = (True, True, True), release: bool = False
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(grad_x, grad_w, grad_b)`` from the saving forward's context; None where not needed.

    With ``release`` (``ctx`` is not used again) the kept column matrix, once the weight gradient
    has read it, is overwritten by the column gradient instead of a second matrix of its size.
    """
    g = np.asarray(grad_out)
    g = (g[None] if ctx.unbatched else g).astype(ctx.dtype, copy=False)
    if ctx.kernel is None:  # empty batch: every gradient is zero (or empty)
        return _empty_grads(g, ctx, needs)
    kernel = ctx.kernel
    _wake_threads(ctx.x_shape[0], kernel.out, ctx.weight_shape)
    if ctx.x is not None:  # the padded input was dropped after the forward: pad it again
        kernel = kernel._replace(xp=pad(ctx.x, ctx.pads, ctx.padding_mode))
    grad_xin, grad_w = backward_kernels.backward(g, kernel, (bool(needs[0]), bool(needs[1])), release=release)
    grad_x = None
    if grad_xin is not None:
        grad_x = _input_grad(grad_xin, ctx.x_shape[2:], ctx.pads, ctx.padding_mode)
        grad_x = grad_x[0] if ctx.unbatched else grad_x
    grad_b = bias_grad(g) if ctx.has_bias and needs[2] else None
    return grad_x, grad_w, grad_b


def bias_grad(grad_out: np.ndarray) -> np.ndarray:
    """``grad_b[o] = sum over b, p of grad_out[b, o, p]`` (``grad_out`` batched, channels second).

    Summed over the batch first (whole contiguous planes added at a time), then along each
    channel's positions: NumPy's one reduction over the axes ``(0, 2, ...)`` walks the array in
    short strided pieces, 45-56 us against 5-8 us for the MNIST-1D CNN's (100, 25, 19)-(100, 25,
    5) gradients, 56 against 34 us for LeNet-5's (64, 6, 28, 28).  Another order of the same
    additions: float results differ from that reduction's by rounding only."""
    g = grad_out.reshape(grad_out.shape[0], grad_out.shape[1], -1)
    return g.sum(axis=0).sum(axis=1)


def _input_grad(grad_xin: np.ndarray, spatial: Sequence[int], pads: PadPairs, padding_mode: str) -> np.ndarray:
    """The input's gradient from the kernels' (which is already unpadded for zero padding)."""
    if padding_mode == "zeros":
        return grad_xin
    return pad_backward(grad_xin, spatial, pads, padding_mode)


def _empty_grads(g: np.ndarray, ctx: ConvSaved, needs: Sequence[bool]) -> tuple:
    """Gradients of an empty batch: an empty ``grad_x`` and zero ``grad_w`` / ``grad_b`` (no terms)."""
    grad_x = np.zeros(ctx.x_shape, dtype=ctx.dtype) if needs[0] else None
    grad_w = np.zeros(ctx.weight_shape, dtype=ctx.dtype) if needs[1] else None
    grad_b = np.zeros(ctx.weight_shape[0], dtype=ctx.dtype) if ctx.has_bias and needs[2] else None
    return (grad_x[0] if ctx.unbatched and grad_x is not None else grad_x), grad_w, grad_b


def _conv_backward_core(
    grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: tuple[int, ...],
    pads: PadPairs, dilation: tuple[int, ...], groups: int, padding_mode: str, method: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All three gradients from plain arrays (batched, already in the compute dtype)."""
    if x.shape[0] == 0:
        return np.zeros(x.shape, grad_out.dtype), np.zeros(weight.shape, grad_out.dtype), np.zeros(
            weight.shape[0], grad_out.dtype)
    xin, kpads = _kernel_input(x, pads, padding_mode)
    _, saved = kernels.forward(xin, weight, stride, dilation, groups, method, save=True, pads=kpads)
    grad_xin, grad_w = backward_kernels.backward(grad_out, saved)
    grad_x = _input_grad(grad_xin, x.shape[2:], pads, padding_mode)
    grad_b = bias_grad(grad_out)
    return grad_x, grad_w, grad_b


def conv_backward(
    grad_out: Any, x: Any, weight: Any, bias: Any = None, stride: int | Sequence[int] = 1,
    padding: Any = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
    padding_mode: str = "zeros", method: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients ``(grad_x, grad_w, grad_b)`` of :func:`conv` (and conv1d/2d/3d).

    Takes the upstream gradient ``grad_out`` (the output's shape) and the forward's arguments.
    ``grad_x`` is a transposed convolution of ``grad_out`` with the weight, ``grad_w`` a
    correlation of the (padded) input with ``grad_out``, ``grad_b`` the sum of ``grad_out`` over
    batch and positions (``None`` when ``bias`` is ``None``).  Gradients through 'reflect',
    'replicate' and 'circular' padding are added back to the cells that were copied.

    Examples
    --------
    >>> gx, gw, gb = conv_backward([[[[1, 1], [1, 1]]]], [[[[1, 0, 2], [3, 1, 0], [0, 0, 4]]]],
    ...                            [[[[1, 0], [0, 1]]]], bias=[0])
    >>> gx[0, 0]
    array([[1, 1, 0],
           [1, 2, 1],
           [0, 1, 1]])
    >>> gw[0, 0], gb
    (array([[5, 3],
           [4, 5]]), array([4]))
    """
    a = _conv_args("conv_backward", x, weight, bias, stride, padding, dilation, groups, padding_mode, None)
    shape = (a.x.shape[0], a.weight.shape[0], *a.out)
    grad_out = _check_grad_out("conv_backward", grad_out, shape[1:] if a.unbatched else shape)
    dtype = result_dtype(grad_out, a.x, a.weight)
    gb = grad_out[None] if a.unbatched else grad_out
    grad_x, grad_w, grad_b = _conv_backward_core(
        gb.astype(dtype, copy=False), a.x.astype(dtype, copy=False),
        a.weight.astype(dtype, copy=False), a.stride, a.pads, a.dilation, a.groups, a.padding_mode,
        _check_method("conv_backward", method),
    )
    return (grad_x[0] if a.unbatched else grad_x), grad_w, (None if a.bias is None else grad_b)




# ---------------------------------------------------------------------------------------------
# transposed convolution


def _conv_transpose_core(
    x: np.ndarray, weight: np.ndarray, stride: Sequence[int], pads: PadPairs,
    output_padding: Sequence[int], groups: int, dilation: Sequence[int],
) -> np.ndarray:
    """``y[b, g*O_g + o, i*s + t*d - lo] += x[b, c, i] * w[c, o, t]`` for ``c`` in group ``g``.

    Substituting ``t' = k-1-t`` and ``u = x`` dilated by ``s`` (zeros between cells) gives
    ``y[q] = sum_{t'} u_pad[q + t'*d] * w_flip[t']`` with ``u`` padded by ``d*(k-1) - lo`` before
    and ``d*(k-1) - hi + output_padding`` after (negative amounts crop): a plain correlation with
    the flipped kernel whose in/out channel axes are swapped within each group.
    """
    n = weight.ndim - 2
    in_ch, og = weight.shape[:2]
    kernel = weight.shape[2:]
    cg = in_ch // groups
    w = weight.reshape(groups, cg, og, *kernel).swapaxes(1, 2).reshape(groups * og, cg, *kernel)
    u = dilate(x, stride)
    tpads = tuple(
        (d * (k - 1) - lo, d * (k - 1) - hi + op)
        for d, k, (lo, hi), op in zip(dilation, kernel, pads, output_padding, strict=True)
    )
    u, zeros = crop_then_pads(u, tpads)
    return kernels.forward(u, flip(w, n), (1,) * n, dilation, groups, pads=zeros)[0]


def crop_then_pads(x: np.ndarray, pads: PadPairs) -> tuple[np.ndarray, PadPairs]:
    """``x`` padded by ``pads`` (``(lo, hi)`` per trailing spatial dim; negative amounts crop, after
    the padding, as in :func:`~cnnlab.functional._windows.pad`) as ``(x cropped, the non-negative
    zero padding left)``: the conv kernels read that padding as zeros, so no padded copy of ``x``
    is made.  Where the crops take a whole axis of ``x`` or more, what is left is padding only: that
    is :func:`~cnnlab.functional._windows.pad`'s copy, with no padding left."""
    n = len(pads)
    sizes = x.shape[x.ndim - n:]
    cuts = [(max(0, -lo), max(0, -hi)) for lo, hi in pads]  # cells cropped at each end
    if any(a + b >= size for size, (a, b) in zip(sizes, cuts, strict=True)):
        return pad(x, pads), ((0, 0),) * n
    crop = tuple(slice(a, size - b) for size, (a, b) in zip(sizes, cuts, strict=True))
    return x[(Ellipsis, *crop)], tuple((max(0, lo), max(0, hi)) for lo, hi in pads)
