"""Max pooling over any number of spatial dims, with its backward beside it, and the window geometry
that average pooling (:mod:`cnnlab.functional._avg_pool`) shares.

Arguments follow PyTorch (``NCHW`` layout, ``stride=None`` meaning ``stride = kernel_size``,
``ceil_mode``, ``count_include_pad``, ``divisor_override``) with three extensions: ``(lo, hi)``
padding pairs, dilation for average pooling, and padding larger than half the kernel (allowed as
long as every window still covers at least one input cell).

This module checks the arguments, computes the output size and the averaging divisors, and
hands the work to :mod:`cnnlab.functional._pool_kernels`: a NumPy path (a loop over kernel taps
on a strided window view) or compiled Numba loops, chosen by ``method=``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.functional._args import (
    PadPairs,
    check_array,
    check_batch_only_empty,
    check_bool,
    check_ndim,
    ntuple,
    out_sizes,
    padding_pairs,
    result_dtype,
)
from cnnlab.functional._pool_kernels import (
    Geometry,
    choose,
    flat_indices,
    max_backward,
    max_forward,
    tap_positions,
)

_LAYOUTS = {1: "L", 2: "H, W", 3: "D, H, W"}


def _geometry(
    op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: Any,
    n: int | None,
) -> Geometry:
    """Validate every argument and compute the output size before any work is done."""
    x = check_array(op, "x", x, allow_empty=True)
    if n is None:
        if isinstance(kernel_size, Sequence) and not isinstance(kernel_size, str):
            n = len(kernel_size)
            if n == 0:
                raise ValueError(f"{op}: kernel_size must not be empty, got {kernel_size!r}")
        else:
            n = x.ndim - 2
            if n < 1:
                raise ValueError(
                    f"{op}: with an int kernel_size x must be batched (N, C, *spatial) with at "
                    f"least one spatial dim, got shape {x.shape}"
                )
    layout = _LAYOUTS.get(n, f"{n} spatial dims")
    check_ndim(op, "x", x, (n + 1, n + 2), f"(C, {layout}) unbatched or (N, C, {layout}) batched")
    kernel = ntuple(op, "kernel_size", kernel_size, n, minimum=1)
    # stride None or () means "same as kernel_size", as in PyTorch
    empty_tuple = isinstance(stride, Sequence) and not isinstance(stride, str) and len(stride) == 0
    stride = kernel if stride is None or empty_tuple else ntuple(op, "stride", stride, n, minimum=1)
    pads = padding_pairs(op, padding, n)
    dilation = ntuple(op, "dilation", dilation, n, minimum=1)
    ceil_mode = check_bool(op, "ceil_mode", ceil_mode)
    batched = x.ndim == n + 2
    if batched:
        check_batch_only_empty(op, "x", x)
    elif x.size == 0:
        raise ValueError(f"{op}: x must not be empty, got shape {x.shape}")
    xb = x if batched else x[None]
    out, full = _layout(op, xb.shape[2:], kernel, stride, pads, dilation, ceil_mode)
    return Geometry(xb, batched, kernel, stride, dilation, pads, full, out)


@functools.lru_cache(maxsize=512)
def _layout(op: str, sp: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
            pads: PadPairs, dilation: tuple[int, ...], ceil_mode: bool) -> tuple[tuple[int, ...], PadPairs]:
    """Output size and padding with the ceil-mode overhang, checked (cached: a network pools the
    same shapes at every step)."""
    out = out_sizes(op, sp, kernel, stride, pads, dilation, ceil_mode)
    full = []
    for i, (size, k, s, d, (lo, hi), o) in enumerate(
        zip(sp, kernel, stride, dilation, pads, out, strict=True)
    ):
        pos = tap_positions(o, k, s, d, lo)
        empty = np.flatnonzero(~((pos >= 0) & (pos < size)).any(axis=1))
        if empty.size:
            raise ValueError(
                f"{op}: padding {(lo, hi)} in spatial dim {i} leaves output window {empty[0]} "
                f"with no input cell (input size {size}, kernel {k}, stride {s}, dilation {d}); "
                f"reduce the padding"
            )
        overhang = (o - 1) * s + d * (k - 1) + 1 - (size + lo + hi)
        full.append((lo, hi + max(overhang, 0)))
    return out, tuple(full)


def _check_grad_out(op: str, grad_out: Any, g: Geometry) -> np.ndarray:
    grad_out = check_array(op, "grad_out", grad_out, allow_empty=True)
    expected = g.x.shape[:2] + g.out if g.batched else g.x.shape[1:2] + g.out
    if grad_out.shape != expected:
        raise ValueError(
            f"{op}: grad_out must have the output shape {expected}, got shape {grad_out.shape}"
        )
    return grad_out if g.batched else grad_out[None]


# ----------------------------------------------------------------------------------------------
# Max pooling


def max_pool(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    method: str = "auto",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max pooling over the trailing spatial dims of ``(N, C, *spatial)`` or ``(C, *spatial)``.

    The number of spatial dims ``n`` is ``len(kernel_size)`` when ``kernel_size`` is a tuple, and
    ``x.ndim - 2`` (a batched input) when it is an int.  Use :func:`max_pool1d`,
    :func:`max_pool2d` or :func:`max_pool3d` to fix ``n`` and pool unbatched inputs with an int
    kernel size.

    Parameters
    ----------
    x : array_like
        Input of shape ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; bool, int or float.
    kernel_size : int or tuple of n ints
        Window size ``k`` per spatial dim.
    stride : int or tuple of n ints, optional
        Step between windows; ``None`` (default) means ``stride = kernel_size``.
    padding : int, tuple of n ints or tuple of n (lo, hi) pairs, default 0
        Implicit ``-inf`` cells added on each side; padding cells are never the maximum.  Unlike
        PyTorch, padding may exceed half the kernel as long as every window covers an input cell.
    dilation : int or tuple of n ints, default 1
        Spacing between kernel taps (1 means contiguous windows).
    ceil_mode : bool, default False
        Round the output size up, keeping a last partial window only if it starts inside the
        input or the low padding (PyTorch's rule).  Cells past the high padding are ignored.
    return_indices : bool, default False
        Also return the argmax of every window.
    method : {'auto', 'numpy', 'numba'}, default 'auto'
        Which kernels run (the results are the same): ``'numpy'`` loops over the kernel taps on
        a strided window view (a reshape when the windows tile the input); ``'numba'`` runs
        compiled loops over the windows, threaded over the ``N*C`` planes (an error if Numba is
        not installed); ``'auto'`` takes ``'numba'`` where the backend allows it (see
        :func:`cnnlab.set_backend`).  More than three spatial dims, and dtypes other than
        float32, float64 and integers, always take the NumPy path.

    Returns
    -------
    y : ndarray
        Window maxima, shape ``(N, C, *out)`` (``(C, *out)`` for an unbatched input).  Integer
        and bool inputs give exact ``int64``; float inputs keep their dtype.
    indices : ndarray of int64, only if ``return_indices``
        PyTorch's indices: for each output cell the flat (row-major) index of the chosen cell in
        its channel's unpadded spatial input.

    Shape
    -----
    ``out = floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1`` per spatial dim,
    with ``ceil`` instead of ``floor`` in ceil mode (minus one if that last window would start at
    or past ``in + pad_lo``).

    Raises
    ------
    TypeError
        Non-numeric ``x``; non-int sizes; non-bool flags; a non-string ``method``.
    ValueError
        Wrong ``x.ndim``, empty ``x``, non-positive sizes, negative padding, a kernel larger than
        the padded input, a window lying wholly in the padding, an unknown ``method``, or
        ``method='numba'`` without Numba.

    Notes
    -----
    ``y[b, c, p] = max_{t in [0, k)^n, 0 <= p*s + t*d - pad_lo < in} x[b, c, p*s + t*d - pad_lo]``.

    NaN propagates: a window holding NaN gives NaN (its last NaN is the argmax, as in PyTorch).
    On ties the first maximum in row-major kernel order is the argmax; :func:`max_pool_backward`
    sends the whole gradient to that one cell.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> max_pool(x, (2, 2))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> y, idx = max_pool(np.array([[3, 1, 4, 1, 5]]), (2,), ceil_mode=True, return_indices=True)
    >>> y, idx
    (array([[3, 4, 5]]), array([[0, 2, 4]]))
    """
    return _max_pool("max_pool", None, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, method)


def _max_pool(
    op: str, n: int | None, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
    ceil_mode: Any, return_indices: Any, method: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    g = _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode, n)
    return_indices = check_bool(op, "return_indices", return_indices)
    plan = choose(op, method, g, result_dtype(g.x))
    y, arg = max_forward(g, plan)
    if not return_indices:
        return y if g.batched else y[0]
    idx = flat_indices(arg, plan, g)
    return (y, idx) if g.batched else (y[0], idx[0])


def max_pool1d(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    method: str = "auto",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """1-D max pooling of ``(N, C, L)`` or ``(C, L)``; :func:`max_pool` with one spatial dim.

    See :func:`max_pool` for the parameters, shape rule, tie and NaN conventions.

    Examples
    --------
    >>> import numpy as np
    >>> max_pool1d(np.array([[1.0, 3.0, 2.0, 5.0, 4.0]]), 2, stride=1)
    array([[3., 3., 5., 5.]])
    """
    return _max_pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, method)


def max_pool2d(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    method: str = "auto",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-D max pooling of ``(N, C, H, W)`` or ``(C, H, W)``; :func:`max_pool` with two spatial dims.

    See :func:`max_pool` for the parameters, shape rule, tie and NaN conventions.

    Examples
    --------
    The lecture example: a ReLU output ``[[2, 0], [3, 5]]`` pooled by a 2x2 window with stride 1.

    >>> import numpy as np
    >>> max_pool2d(np.array([[[2, 0], [3, 5]]]), 2, stride=1)
    array([[[5]]])
    """
    return _max_pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, method)


def max_pool3d(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    method: str = "auto",
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """3-D max pooling of ``(N, C, D, H, W)`` or ``(C, D, H, W)``; :func:`max_pool` with n = 3.

    See :func:`max_pool` for the parameters, shape rule, tie and NaN conventions.

    Examples
    --------
    >>> import numpy as np
    >>> max_pool3d(np.arange(8.0).reshape(1, 2, 2, 2), 2)
    array([[[[7.]]]])
    """
    return _max_pool("max_pool3d", 3, x, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, method)


def max_pool_backward(
    grad_out: Any,
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    method: str = "auto",
) -> np.ndarray:
    """Gradient of :func:`max_pool` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient of the loss with respect to the pooled output (its shape).
    x, kernel_size, stride, padding, dilation, ceil_mode, method
        The forward call's arguments; ``n`` is inferred as in :func:`max_pool`, so pass
        ``kernel_size`` as a tuple for an unbatched input.

    Returns
    -------
    grad_x : ndarray
        Shape of ``x``; dtype of ``x`` for a float ``x``, else ``grad_out``'s (ints as ``int64``).

    Notes
    -----
    ``grad_x[b, c, i] = sum_p grad_out[b, c, p] * [i = argmax of window p]``: each window sends its
    gradient to one cell (the first maximum on ties, the last NaN in a NaN window), and cells
    chosen by several overlapping windows accumulate.

    Examples
    --------
    >>> import numpy as np
    >>> max_pool_backward(np.ones((1, 1, 2)), np.array([[[1.0, 3.0, 2.0]]]), 2, stride=1)
    array([[[0., 2., 0.]]])
    """
    op = "max_pool_backward"
    g = _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode, None)
    grad_out = _check_grad_out(op, grad_out, g)
    dtype = g.x.dtype if g.x.dtype.kind == "f" else result_dtype(grad_out)
    plan = choose(op, method, g, result_dtype(g.x), dtype)
    _, arg = max_forward(g, plan)
    grad_x = max_backward(grad_out.astype(dtype, copy=False), arg, plan, g)
    return grad_x if g.batched else grad_x[0]


def max_pool_saving(op: str, n: int | None):
    """``(forward_saving, backward_saved)`` for :func:`differentiable`: the forward keeps the
    chosen tap of every window, so the backward is one scatter (no second max search)."""

    def forward_saving(needs, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False, method="auto"):
        g = _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode, n)
        return_indices = check_bool(op, "return_indices", return_indices)
        grad_dtype = g.x.dtype if g.x.dtype.kind == "f" else np.dtype(np.float64)
        plan = choose(op, method, g, result_dtype(g.x), grad_dtype)
        y, arg = max_forward(g, plan)
        saved = (g._replace(x=np.empty((0,), g.x.dtype)), g.x.shape, arg, plan, grad_dtype)
        if not g.batched:
            y = y[0]
        if return_indices:
            idx = flat_indices(arg, plan, g)
            return (y, idx if g.batched else idx[0]), saved
        return y, saved

    def backward_saved(grad_out, saved, needs):
        g, x_shape, arg, plan, dtype = saved
        g = g._replace(x=np.broadcast_to(np.zeros((), g.x.dtype), x_shape))
        grad = np.asarray(grad_out, dtype=dtype)
        grad_x = max_backward(grad if g.batched else grad[None], arg, plan, g)
        return grad_x if g.batched else grad_x[0]

    return forward_saving, backward_saved
