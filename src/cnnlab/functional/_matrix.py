"""The matrix form of convolution: the dense matrix ``M`` with ``M @ x.ravel() == op(x).ravel()``.

Every operator here is linear in its input, so for a fixed input shape and kernel it *is* a matrix.
:func:`conv_matrix` writes that matrix down directly from index arithmetic: output position ``p``
and kernel tap ``t`` read input position ``p*stride - pad_lo + t*dilation``, so row ``p`` of ``M``
holds ``kernel[t]`` in column ``p*stride - pad_lo + t*dilation`` (nothing where that falls in the
zero padding).  In 2-D, with rows and columns in C (row-major) order, this matrix is doubly block
Toeplitz.  Its transpose is the transposed convolution (:func:`conv_transpose_matrix`), which is the
reason the gradient of a convolution with respect to its input is a transposed convolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np

from cnnlab.functional._args import (
    PadPairs,
    _describe,
    check_array,
    check_choice,
    ntuple,
    out_sizes,
    padding_pairs,
    result_dtype,
    same_padding,
)

__all__ = ["conv_matrix", "conv_transpose_matrix"]

OPS = ("correlate", "convolve", "conv")
MODES = ("valid", "same", "full")

# A dense matrix is a teaching device: refuse sizes that would take gigabytes.
MAX_ENTRIES = 50_000_000


def _check_shape(op: str, name: str, shape: Any, ndim: int, what: str) -> tuple[int, ...]:
    """An input shape: a sequence of ``ndim`` positive ints."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"{op}: {name} must be a tuple of ints ({what}), got {_describe(shape)}")
    for v in shape:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, Integral):
            raise TypeError(
                f"{op}: {name} must be a tuple of ints ({what}), got {_describe(shape)}"
            )
    if len(shape) != ndim:
        raise ValueError(
            f"{op}: {name} must have {ndim} entries ({what}) to match the kernel, "
            f"got {tuple(shape)}"
        )
    if any(v < 1 for v in shape):
        raise ValueError(f"{op}: {name} must be positive integers, got {tuple(shape)}")
    return tuple(int(v) for v in shape)


def _check_size(op: str, rows: int, cols: int) -> None:
    if rows * cols > MAX_ENTRIES:
        raise ValueError(
            f"{op}: the dense matrix would have {rows} x {cols} = {rows * cols} entries "
            f"(more than {MAX_ENTRIES}); the matrix form is meant for small examples"
        )


def _signal_geometry(
    op: str,
    in_sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    mode: str,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Output sizes and left offsets of a signal-processing correlation.

    With ``K = dilation*(k-1) + 1`` the full correlation has ``n + K - 1`` entries and reads the
    input from ``K - 1`` cells before its start; 'same' keeps ``n`` entries centred as SciPy does
    (offset ``ceil((K-1)/2)``, so an odd excess falls at the start); 'valid' keeps the
    ``n - K + 1`` full overlaps at offset 0, or, when the kernel is at least as large as the
    input in every dim, SciPy's swapped rule: the ``K - n + 1`` shifts where the input lies
    wholly under the kernel, at offset ``K - n``.  Then every ``stride``-th entry is kept.
    """
    spans = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
    if mode == "full":
        lengths = tuple(n + e - 1 for n, e in zip(in_sizes, spans, strict=True))
        offsets = tuple(e - 1 for e in spans)
    elif mode == "same":
        lengths, offsets = in_sizes, tuple(e // 2 for e in spans)
    elif mode == "valid":
        if all(e <= n for n, e in zip(in_sizes, spans, strict=True)):
            lengths = tuple(n - e + 1 for n, e in zip(in_sizes, spans, strict=True))
            offsets = (0,) * len(spans)
        elif all(e >= n for n, e in zip(in_sizes, spans, strict=True)):
            lengths = tuple(e - n + 1 for n, e in zip(in_sizes, spans, strict=True))
            offsets = tuple(e - n for n, e in zip(in_sizes, spans, strict=True))
        else:
            raise ValueError(
                f"{op}: in 'valid' mode the (dilated) kernel must be no larger than the input "
                f"in every dim, or at least as large in every dim; got input shape {in_sizes} "
                f"and effective kernel shape {spans}"
            )
    else:
        raise ValueError(f"{op}: mode must be one of {list(MODES)}, got {mode!r}")
    outs = tuple((length - 1) // s + 1 for length, s in zip(lengths, stride, strict=True))
    return outs, offsets


def _build(
    in_shape: tuple[int, ...],
    weight: np.ndarray,
    out_sp: tuple[int, ...],
    stride: tuple[int, ...],
    offsets: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    dtype: np.dtype,
) -> np.ndarray:
    """Dense matrix of ``y[o, p] = sum_{c, t} x[g(o)*C_g + c, p*s - lo + t*d] * w[o, c, t]``.

    ``in_shape`` is ``(C, *sp)``, ``weight`` is ``(O, C_g, *k)`` and ``out_sp`` the output's
    spatial sizes.  Rows are ``(o, *p)`` and columns ``(c, *i)`` in C order.  All index arrays are
    built at once by broadcasting; the only loop is over the (few) spatial dims.
    """
    channels, *sp = in_shape
    out_ch, cg, *kernel = weight.shape
    n = len(sp)
    og = out_ch // groups
    n_out, n_in = math.prod(out_sp), math.prod(sp)

    # Per spatial dim: the input index read by output position o_i and tap t_i, shaped to
    # broadcast over (*out, *kernel); cells in the zero padding are masked out.
    flat_in = np.zeros((1,) * (2 * n), dtype=np.int64)
    valid = np.ones((1,) * (2 * n), dtype=bool)
    in_strides = [math.prod(sp[i + 1 :]) for i in range(n)]
    for i in range(n):
        pos = (
            np.arange(out_sp[i])[:, None] * stride[i]
            - offsets[i]
            + np.arange(kernel[i])[None, :] * dilation[i]
        )
        shape = [1] * (2 * n)
        shape[i], shape[n + i] = out_sp[i], kernel[i]
        pos = pos.reshape(shape)
        flat_in = flat_in + pos * in_strides[i]
        valid = valid & (pos >= 0) & (pos < sp[i])
    full = tuple(out_sp) + tuple(kernel)
    flat_in = np.broadcast_to(flat_in, full)
    valid = np.broadcast_to(valid, full)
    flat_out = np.broadcast_to(np.arange(n_out).reshape(tuple(out_sp) + (1,) * n), full)
    flat_tap = np.broadcast_to(np.arange(math.prod(kernel)).reshape((1,) * n + tuple(kernel)), full)
    idx_out, idx_in, idx_tap = flat_out[valid], flat_in[valid], flat_tap[valid]

    o = np.arange(out_ch)[:, None, None]
    c = np.arange(cg)[None, :, None]
    rows = o * n_out + idx_out[None, None, :]
    cols = ((o // og) * cg + c) * n_in + idx_in[None, None, :]
    vals = weight.reshape(out_ch, cg, -1)[:, :, idx_tap]
    matrix = np.zeros((out_ch * n_out, channels * n_in), dtype=dtype)
    # For a fixed row, distinct (channel, tap) pairs read distinct columns, so plain assignment
    # writes every entry exactly once.
    matrix[np.broadcast_to(rows, vals.shape), np.broadcast_to(cols, vals.shape)] = vals
    return matrix


def conv_matrix(
    input_shape: Sequence[int],
    kernel: Any,
    *,
    op: str = "correlate",
    mode: str = "valid",
    stride: int | Sequence[int] = 1,
    padding: int | str | Sequence[int] | Sequence[tuple[int, int]] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> np.ndarray:
    """The matrix ``M`` of a convolution: ``M @ x.ravel()`` equals the operator's output, raveled.

    For a fixed input shape and kernel every operator in this module is linear in ``x``, so it is
    a matrix.  ``M`` is built from index arithmetic alone (which input cell each output cell reads
    through each kernel tap), never by running the operator.

    Parameters
    ----------
    input_shape : tuple of int
        For ``op='correlate'`` or ``'convolve'``: the shape of the single-channel N-d signal,
        with as many entries as ``kernel`` has dims.  For ``op='conv'``: the unbatched input
        shape ``(C, *spatial)``.
    kernel : array_like
        For ``'correlate'``/``'convolve'``: the N-d kernel.  For ``'conv'``: the weight
        ``(O, C / groups, *k)``.
    op : {'correlate', 'convolve', 'conv'}, default 'correlate'
        Which operator: :func:`cnnlab.functional._correlate` (signal-processing cross-correlation),
        :func:`cnnlab.functional.convolve` (the kernel flipped), or the deep-learning
        :func:`cnnlab.functional._conv` (a cross-correlation over channels, without bias).
    mode : {'valid', 'same', 'full'}, default 'valid'
        Output extent for ``'correlate'``/``'convolve'``, as in SciPy (``'same'`` is centred,
        with an odd excess of padding at the start).  Must stay ``'valid'`` for ``'conv'``.
    stride, dilation : int or tuple of int, default 1
        Step between outputs and between kernel taps (``dilation=1`` means none).
    padding : int, tuple, tuple of (lo, hi) pairs, 'valid' or 'same', default 0
        Zero padding, for ``op='conv'`` only.  ``'same'`` gives ``out = ceil(in / stride)``
        with an odd excess of padding at the end (the ONNX SAME_UPPER rule, which is PyTorch's
        ``padding='same'`` when ``stride=1``).
    groups : int, default 1
        Channel groups, for ``op='conv'`` only.
    padding_mode : {'zeros'}, default 'zeros'
        Only zero padding is supported here.

    Returns
    -------
    numpy.ndarray
        ``M`` of shape ``(prod(output_shape), prod(input_shape))``, where ``output_shape`` is
        the shape the operator returns (``(O, *out)`` for ``'conv'``).  Its dtype is the
        kernel's for floating kernels and ``int64`` for integer or boolean kernels, so integer
        problems stay exact.

    Raises
    ------
    TypeError
        If ``input_shape`` is not a tuple of ints, the kernel is not numeric, or an option has
        the wrong type.
    ValueError
        If the shapes do not match, an option has a bad value, an option is given to an ``op``
        that does not use it, the output would be empty, or the matrix would be too large
        (more than ``MAX_ENTRIES`` entries).

    Shape
    -----
    ``out = floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1`` per spatial dim,
    where for ``'correlate'``/``'convolve'`` the padding is ``K - 1`` on both sides for
    ``'full'``, ``ceil((K-1)/2)`` before and ``floor((K-1)/2)`` after for ``'same'`` and none
    for ``'valid'`` (``K = dilation*(k-1) + 1``).

    Notes
    -----
    Row ``p`` (an output position, raveled) and column ``i`` (an input position, raveled) hold

    .. math:: M[p, i] = \\sum_t k[t] \\, [\\, i = p \\cdot s - \\mathrm{lo} + t \\cdot d \\,]

    (for ``'convolve'`` with ``k`` flipped; for ``'conv'`` with the channel blocks
    ``M[(o, p), (c, i)]`` using ``w[o, c - g(o) C_g]`` inside the group ``g(o)`` of ``o`` and
    zero outside it).  An entry depends on ``i - p*s`` only, so with ``stride=1`` each 1-D
    matrix is Toeplitz (constant along diagonals).  In 2-D, cut ``M`` into blocks of
    ``out_w`` rows and ``in_w`` columns: block ``(a, b)`` maps input row ``b`` to output row
    ``a``; it is the Toeplitz matrix of kernel row ``b - a*s + lo`` (zero if there is none), so
    the blocks are themselves arranged as a Toeplitz matrix: ``M`` is *doubly block Toeplitz*.
    In N-d the nesting goes N levels deep.

    The transpose ``M.T`` maps an output-shaped array back to the input shape: it is the
    transposed convolution :func:`cnnlab.functional._conv_transpose` with the same weight (see
    :func:`conv_transpose_matrix`).  Because the gradient of ``y = M x`` with respect to ``x``
    is ``M.T @ grad_out``, the input gradient of a convolution is a transposed convolution.

    Examples
    --------
    The lecture's 3x3 input and 2x2 kernel: ``M`` is 4x9 and ``M @ I.ravel()`` is the
    'valid' correlation ``[[2, 0], [3, 5]]``, raveled.

    >>> import numpy as np
    >>> from cnnlab.functional._matrix import conv_matrix
    >>> I = np.array([[1, 0, 2], [3, 1, 0], [0, 0, 4]])
    >>> F = np.array([[1, 0], [0, 1]])
    >>> M = conv_matrix(I.shape, F)
    >>> M
    array([[1, 0, 0, 0, 1, 0, 0, 0, 0],
           [0, 1, 0, 0, 0, 1, 0, 0, 0],
           [0, 0, 0, 1, 0, 0, 0, 1, 0],
           [0, 0, 0, 0, 1, 0, 0, 0, 1]])
    >>> M @ I.ravel()
    array([2, 0, 3, 5])

    A deep-learning convolution with two channels, stride 2 and padding 1:

    >>> w = np.ones((1, 2, 3, 3))
    >>> conv_matrix((2, 4, 4), w, op="conv", stride=2, padding=1).shape
    (4, 32)
    """
    name = "conv_matrix"
    check_choice(name, "op", op, OPS)
    check_choice(name, "padding_mode", padding_mode, ("zeros", "reflect", "replicate", "circular"))
    if padding_mode != "zeros":
        raise ValueError(
            f"{name}: padding_mode must be 'zeros' (only zero padding has this matrix form "
            f"here), got {padding_mode!r}"
        )
    weight = check_array(name, "kernel", kernel)
    dtype = result_dtype(weight)

    if op in ("correlate", "convolve"):
        if not (isinstance(padding, Integral) and not isinstance(padding, bool) and padding == 0):
            raise ValueError(
                f"{name}: padding is used by op='conv' only; for op={op!r} choose mode "
                f"('valid', 'same' or 'full'), got padding={_describe(padding)}"
            )
        if not (isinstance(groups, Integral) and not isinstance(groups, bool) and groups == 1):
            raise ValueError(
                f"{name}: groups is used by op='conv' only, got groups={_describe(groups)}"
            )
        check_choice(name, "mode", mode, MODES)
        n = weight.ndim
        sp = _check_shape(name, "input_shape", input_shape, n, "one size per kernel dim")
        stride_t = ntuple(name, "stride", stride, n, minimum=1)
        dilation_t = ntuple(name, "dilation", dilation, n, minimum=1)
        out_sp, offsets = _signal_geometry(name, sp, weight.shape, mode, stride_t, dilation_t)
        if op == "convolve":
            weight = weight[(slice(None, None, -1),) * n]
        _check_size(name, math.prod(out_sp), math.prod(sp))
        return _build(
            (1, *sp), weight[None, None], out_sp, stride_t, offsets, dilation_t, 1, dtype
        )

    # op == "conv"
    if mode != "valid":
        raise ValueError(
            f"{name}: mode is used by op='correlate' and op='convolve' only; for op='conv' "
            f"use padding, got mode={mode!r}"
        )
    if weight.ndim < 3:
        raise ValueError(
            f"{name}: kernel must be a weight of shape (O, C/groups, *k) with at least one "
            f"spatial dim for op='conv', got shape {weight.shape}"
        )
    n = weight.ndim - 2
    shape = _check_shape(name, "input_shape", input_shape, n + 1, "(C, *spatial), unbatched")
    channels, *sp = shape
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, Integral):
        raise TypeError(f"{name}: groups must be an int, got {_describe(groups)}")
    if groups < 1:
        raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
    out_ch, cg = weight.shape[:2]
    if channels % groups:
        raise ValueError(f"{name}: in_channels {channels} is not divisible by groups {groups}")
    if out_ch % groups:
        raise ValueError(f"{name}: out_channels {out_ch} is not divisible by groups {groups}")
    if cg != channels // groups:
        raise ValueError(
            f"{name}: kernel must have in_channels / groups = {channels // groups} input "
            f"channels (dim 1), got weight shape {weight.shape} for input shape {shape}"
        )
    stride_t = ntuple(name, "stride", stride, n, minimum=1)
    dilation_t = ntuple(name, "dilation", dilation, n, minimum=1)
    kernel_sp = weight.shape[2:]
    pads: PadPairs
    if padding == "valid":
        pads = ((0, 0),) * n
    elif padding == "same":
        pads = same_padding(sp, kernel_sp, stride_t, dilation_t)
    elif isinstance(padding, str):
        raise ValueError(
            f"{name}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}"
        )
    else:
        pads = padding_pairs(name, padding, n)
    out_sp = out_sizes(name, sp, kernel_sp, stride_t, pads, dilation_t)
    _check_size(name, out_ch * math.prod(out_sp), channels * math.prod(sp))
    return _build(
        shape, weight, out_sp, stride_t, tuple(lo for lo, _ in pads), dilation_t, groups, dtype
    )


def conv_transpose_matrix(
    input_shape: Sequence[int],
    weight: Any,
    *,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    output_padding: int | Sequence[int] = 0,
    groups: int = 1,
    dilation: int | Sequence[int] = 1,
) -> np.ndarray:
    """The matrix of a transposed convolution: ``M @ x.ravel() == conv_transpose(x, w).ravel()``.

    It is the transpose of :func:`conv_matrix` for the convolution that maps the transposed
    convolution's output shape back to its input shape with the same weight.

    Parameters
    ----------
    input_shape : tuple of int
        Unbatched input shape ``(C_in, *spatial)`` of the transposed convolution.
    weight : array_like
        Weight ``(C_in, O / groups, *k)``, as for :func:`cnnlab.functional._conv_transpose`.
    stride, dilation : int or tuple of int, default 1
        Stride and dilation of the convolution being transposed.
    padding : int, tuple or tuple of (lo, hi) pairs, default 0
        Padding of the convolution being transposed: it crops the transposed output.
    output_padding : int or tuple of int, default 0
        Extra cells at the end of each output dim; must be smaller than stride or dilation.
    groups : int, default 1
        Channel groups.

    Returns
    -------
    numpy.ndarray
        ``M`` of shape ``(O * prod(out), C_in * prod(spatial))``, dtype as in
        :func:`conv_matrix`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If shapes, groups, padding or output_padding do not fit, or the output is empty.

    Shape
    -----
    ``out = (in - 1)*stride - pad_lo - pad_hi + dilation*(k-1) + output_padding + 1``.

    Notes
    -----
    A convolution ``y = C x`` from shape ``(O, *out)`` to ``(C_in, *in)`` with this weight (read
    as ``(C_in, O/groups, *k)``, i.e. C_in output channels) has
    ``floor(((in - 1)*s + output_padding) / s) + 1 = in`` outputs per dim.  The transposed
    convolution is ``C.T``: every input cell scatters ``x * w`` into the cells it would have
    been read from.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnlab.functional._matrix import conv_matrix, conv_transpose_matrix
    >>> w = np.arange(1, 5).reshape(1, 1, 2, 2)
    >>> T = conv_transpose_matrix((1, 2, 2), w)
    >>> T.shape
    (9, 4)
    >>> bool((T == conv_matrix((1, 3, 3), w, op="conv").T).all())
    True
    """
    name = "conv_transpose_matrix"
    w = check_array(name, "weight", weight)
    if w.ndim < 3:
        raise ValueError(
            f"{name}: weight must have shape (C_in, O/groups, *k) with at least one spatial "
            f"dim, got shape {w.shape}"
        )
    n = w.ndim - 2
    shape = _check_shape(name, "input_shape", input_shape, n + 1, "(C_in, *spatial), unbatched")
    in_ch, *sp = shape
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, Integral):
        raise TypeError(f"{name}: groups must be an int, got {_describe(groups)}")
    if groups < 1:
        raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
    if in_ch % groups:
        raise ValueError(f"{name}: in_channels {in_ch} is not divisible by groups {groups}")
    if w.shape[0] != in_ch:
        raise ValueError(
            f"{name}: weight must have in_channels = {in_ch} rows (dim 0), got weight shape "
            f"{w.shape} for input shape {shape}"
        )
    stride_t = ntuple(name, "stride", stride, n, minimum=1)
    dilation_t = ntuple(name, "dilation", dilation, n, minimum=1)
    pads = padding_pairs(name, padding, n)
    out_pad = ntuple(name, "output_padding", output_padding, n, minimum=0)
    for i, (p, s, d) in enumerate(zip(out_pad, stride_t, dilation_t, strict=True)):
        if p >= max(s, d):
            raise ValueError(
                f"{name}: output_padding must be smaller than stride or dilation, got "
                f"output_padding {p} with stride {s} and dilation {d} in spatial dim {i}"
            )
    kernel_sp = w.shape[2:]
    out_sp = []
    for i, (size, s, (lo, hi), d, k, p) in enumerate(
        zip(sp, stride_t, pads, dilation_t, kernel_sp, out_pad, strict=True)
    ):
        o = (size - 1) * s - lo - hi + d * (k - 1) + p + 1
        if o <= 0:
            raise ValueError(
                f"{name}: output size {o} <= 0 in spatial dim {i} (input {size}, stride {s}, "
                f"padding ({lo}, {hi}), dilation {d}, kernel {k}, output_padding {p})"
            )
        out_sp.append(o)
    out_channels = w.shape[1] * groups
    _check_size(name, out_channels * math.prod(out_sp), in_ch * math.prod(sp))
    forward = _build(
        (out_channels, *out_sp),
        w,
        tuple(sp),
        stride_t,
        tuple(lo for lo, _ in pads),
        dilation_t,
        groups,
        result_dtype(w),
    )
    return np.ascontiguousarray(forward.T)
