"""Average pooling over any number of spatial dims, with its backward beside it.

Arguments follow PyTorch (``count_include_pad``, ``divisor_override``, ``ceil_mode``) with the
extensions of :mod:`cnnlab.functional._pool` (``(lo, hi)`` padding pairs, dilation, padding larger
than half the kernel while every window still covers an input cell).  This module checks the
arguments and computes the averaging divisors; the shared window geometry is
:mod:`cnnlab.functional._pool`'s, and :mod:`cnnlab.functional._pool_kernels` does the work.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np

from cnnlab.functional._args import (
    PadPairs,
    _describe,
    check_bool,
    float_dtype,
    result_dtype,
)
from cnnlab.functional._pool import _check_grad_out, _geometry
from cnnlab.functional._pool_kernels import (
    Geometry,
    avg_backward,
    avg_forward,
    choose,
    tap_positions,
)


def _check_divisor(op: str, divisor_override: Any) -> int | None:
    if divisor_override is None:
        return None
    if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(divisor_override, Integral):
        raise TypeError(f"{op}: divisor_override must be None or an int, got "
                        f"{_describe(divisor_override)}")
    if divisor_override == 0:  # PyTorch divides by a negative override too, and refuses only 0
        raise ValueError(f"{op}: divisor_override must be a non-zero int, got {divisor_override}")
    return int(divisor_override)


def _avg_divisor(g: Geometry, count_include_pad: bool, divisor_override: int | None,
                 dtype: np.dtype) -> np.ndarray:
    """Divisor of every output cell, shape ``out``: the number of taps landing in the padded
    input (``count_include_pad``) or in the real input, unless overridden.  Read-only (cached)."""
    return _divisor(g.x.shape[2:], g.kernel, g.stride, g.dilation, g.pads, g.out, count_include_pad,
                    divisor_override, np.dtype(dtype))


@functools.lru_cache(maxsize=512)
def _divisor(sp: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
             dilation: tuple[int, ...], pads: PadPairs, out: tuple[int, ...], count_include_pad: bool,
             divisor_override: int | None, dtype: np.dtype) -> np.ndarray:
    if divisor_override is not None:
        divisor = np.full(out, divisor_override, dtype=dtype)
        divisor.flags.writeable = False
        return divisor
    divisor = np.ones((), dtype=np.int64)
    for size, k, s, d, (lo, hi), o in zip(sp, kernel, stride, dilation, pads, out, strict=True):
        pos = tap_positions(o, k, s, d, lo)
        low, high = (-lo, size + hi) if count_include_pad else (0, size)
        count = ((pos >= low) & (pos < high)).sum(axis=1)
        divisor = np.multiply.outer(divisor, count)
    divisor = divisor.astype(dtype)
    divisor.flags.writeable = False
    return divisor


def _avg_args(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: Any,
              count_include_pad: Any, divisor_override: Any, dilation: Any,
              n: int | None) -> tuple[Geometry, np.ndarray]:
    g = _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode, n)
    count_include_pad = check_bool(op, "count_include_pad", count_include_pad)
    divisor_override = _check_divisor(op, divisor_override)
    divisor = _avg_divisor(g, count_include_pad, divisor_override, float_dtype(g.x))
    return g, divisor


def _avg_pool(op: str, n: int | None, x: Any, kernel_size: Any, stride: Any, padding: Any,
              ceil_mode: Any, count_include_pad: Any, divisor_override: Any,
              dilation: Any, method: Any) -> np.ndarray:
    g, divisor = _avg_args(op, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override, dilation, n)
    plan = choose(op, method, g, result_dtype(g.x), divisor.dtype)
    y = avg_forward(g, plan, divisor)
    return y if g.batched else y[0]


def avg_pool_saving(op: str, n: int | None):
    """``(forward_saving, backward_saved)`` for :func:`differentiable`: the forward keeps the
    checked geometry and the divisors, so the backward is the scatter alone (no second parse)."""

    def forward_saving(needs, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True, divisor_override=None, dilation=1, method="auto"):
        g, divisor = _avg_args(op, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                               divisor_override, dilation, n)
        grad_dtype = float_dtype(g.x)
        plan = choose(op, method, g, result_dtype(g.x), grad_dtype)
        y = avg_forward(g, plan, divisor)
        saved = (g._replace(x=np.empty((0,), g.x.dtype)), g.x.shape, divisor, plan, grad_dtype)
        return (y if g.batched else y[0]), saved

    def backward_saved(grad_out, saved, needs):
        g, x_shape, divisor, plan, dtype = saved
        g = g._replace(x=np.broadcast_to(np.zeros((), g.x.dtype), x_shape))
        grad = np.asarray(grad_out, dtype=dtype)
        grad_x = avg_backward(grad if g.batched else grad[None], plan, divisor.astype(dtype, copy=False), g)
        return grad_x if g.batched else grad_x[0]

    return forward_saving, backward_saved


def avg_pool(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    dilation: int | Sequence[int] = 1,
    method: str = "auto",
) -> np.ndarray:
    """Average pooling over the trailing spatial dims of ``(N, C, *spatial)`` or ``(C, *spatial)``.

    ``n`` is ``len(kernel_size)`` for a tuple ``kernel_size`` and ``x.ndim - 2`` for an int;
    :func:`avg_pool1d`, :func:`avg_pool2d` and :func:`avg_pool3d` fix ``n``.

    Parameters
    ----------
    x : array_like
        Input of shape ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; bool, int or float.
    kernel_size : int or tuple of n ints
        Window size ``k`` per spatial dim.
    stride : int or tuple of n ints, optional
        Step between windows; ``None`` (default) means ``stride = kernel_size``.
    padding : int, tuple of n ints or tuple of n (lo, hi) pairs, default 0
        Implicit zeros on each side.  May exceed half the kernel while every window still covers
        an input cell.
    ceil_mode : bool, default False
        Round the output size up (PyTorch's rule, see :func:`max_pool`).
    count_include_pad : bool, default True
        Whether padding cells count in the divisor.
    divisor_override : int, optional
        A positive int used as the divisor of every window instead of the count.
    dilation : int or tuple of n ints, default 1
        Spacing between kernel taps (PyTorch has none; ONNX ``AveragePool`` has it).
    method : {'auto', 'numpy', 'numba'}, default 'auto'
        Which kernels run, as in :func:`max_pool`.

    Returns
    -------
    y : ndarray
        Window means, shape ``(N, C, *out)`` (``(C, *out)`` unbatched).  Float inputs keep their
        dtype; integer and bool inputs give ``float64``.

    Shape
    -----
    ``out = floor((in + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1`` per spatial dim,
    ``ceil`` in ceil mode (minus one if that last window would start at or past ``in + pad_lo``).

    Raises
    ------
    TypeError
        Non-numeric ``x``; non-int sizes or ``divisor_override``; non-bool flags; a non-string
        ``method``.
    ValueError
        As :func:`max_pool`, and ``divisor_override <= 0``.

    Notes
    -----
    ``y[b, c, p] = (1 / D_p) * sum_{t in [0, k)^n} xpad[b, c, p*s + t*d]`` with zero padding.

    The divisor ``D_p`` is ``divisor_override`` when given.  Otherwise it counts the taps
    ``p*s + t*d - pad_lo`` (per dim, multiplied over dims) that lie in ``[-pad_lo, in + pad_hi)``
    when ``count_include_pad`` (the padded input: taps hanging past the high padding in ceil mode
    are not counted), or in ``[0, in)`` when not (input cells only).  With ``dilation = 1`` this
    is exactly PyTorch's divisor; with dilation it counts the taps, not the cells spanned.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool(np.arange(16.0).reshape(1, 1, 4, 4), (2, 2))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> avg_pool(np.array([[[1.0, 2.0, 3.0]]]), 2, padding=1)
    array([[[0.5, 2.5]]])
    >>> avg_pool(np.array([[[1.0, 2.0, 3.0]]]), 2, padding=1, count_include_pad=False)
    array([[[1. , 2.5]]])
    """
    return _avg_pool("avg_pool", None, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, dilation, method)


def avg_pool1d(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    dilation: int | Sequence[int] = 1,
    method: str = "auto",
) -> np.ndarray:
    """1-D average pooling of ``(N, C, L)`` or ``(C, L)``; :func:`avg_pool` with one spatial dim.

    See :func:`avg_pool` for the parameters, shape rule and divisor.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool1d(np.array([[1, 2, 3, 4]]), 2)
    array([[1.5, 3.5]])
    """
    return _avg_pool("avg_pool1d", 1, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, dilation, method)


def avg_pool2d(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    dilation: int | Sequence[int] = 1,
    method: str = "auto",
) -> np.ndarray:
    """2-D average pooling of ``(N, C, H, W)`` or ``(C, H, W)``; :func:`avg_pool` with n = 2.

    See :func:`avg_pool` for the parameters, shape rule and divisor.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool2d(np.array([[[2.0, 0.0], [3.0, 5.0]]]), 2)
    array([[[2.5]]])
    """
    return _avg_pool("avg_pool2d", 2, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, dilation, method)


def avg_pool3d(
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    dilation: int | Sequence[int] = 1,
    method: str = "auto",
) -> np.ndarray:
    """3-D average pooling of ``(N, C, D, H, W)`` or ``(C, D, H, W)``; :func:`avg_pool` with n = 3.

    See :func:`avg_pool` for the parameters, shape rule and divisor.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool3d(np.arange(8.0).reshape(1, 2, 2, 2), 2)
    array([[[[3.5]]]])
    """
    return _avg_pool("avg_pool3d", 3, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, dilation, method)


def avg_pool_backward(
    grad_out: Any,
    x: Any,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    dilation: int | Sequence[int] = 1,
    method: str = "auto",
) -> np.ndarray:
    """Gradient of :func:`avg_pool` with respect to ``x``.

    Parameters
    ----------
    grad_out : array_like
        Gradient of the loss with respect to the pooled output (its shape).
    x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, method
        The forward call's arguments; ``n`` is inferred as in :func:`avg_pool`, so pass
        ``kernel_size`` as a tuple for an unbatched input.

    Returns
    -------
    grad_x : ndarray
        Shape of ``x``; dtype of ``x`` for a float ``x``, else ``grad_out``'s float dtype
        (``float64`` for integer ``grad_out``).

    Notes
    -----
    Average pooling is linear, so ``grad_x`` is its adjoint applied to ``grad_out``:
    ``grad_xpad[b, c, p*s + t*d] += grad_out[b, c, p] / D_p`` for every window ``p`` and tap
    ``t``, after which the padding (and any ceil-mode overhang) is dropped.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool_backward(np.ones((1, 1, 2)), np.zeros((1, 1, 3)), 2, stride=1)
    array([[[0.5, 1. , 0.5]]])
    """
    op = "avg_pool_backward"
    g, divisor = _avg_args(op, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override, dilation, None)
    grad_out = _check_grad_out(op, grad_out, g)
    dtype = g.x.dtype if g.x.dtype.kind == "f" else float_dtype(grad_out)
    plan = choose(op, method, g, dtype)
    grad_x = avg_backward(grad_out.astype(dtype, copy=False), plan, divisor.astype(dtype, copy=False), g)
    return grad_x if g.batched else grad_x[0]
