"""Adaptive average pooling (output size given, windows derived), N-d, with its backward.

Along a spatial dim of length ``in`` pooled to ``out`` cells, output cell ``i`` averages input
cells ``start_i <= j < end_i`` with PyTorch's windows ``start_i = floor(i * in / out)`` and
``end_i = ceil((i + 1) * in / out)``.  The average over a box is a product of one average per
dim, so the op is a chain of small matrix products: along each dim multiply by the ``(out, in)``
averaging matrix ``A[i, j] = 1 / (end_i - start_i)`` for ``start_i <= j < end_i``.  The backward
multiplies by the transposes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np

from cnnlab.functional._args import _describe, check_array, check_ndim, float_dtype
from cnnlab.functional._avg_pool import avg_pool, avg_pool_backward
from cnnlab.functional._pool_kernels import plane_means, plane_shares

# Entries of the box indicator matrix (input cells x output cells of a plane, see
# :func:`_box_matrix`) up to which the pooling is one product with it: each input cell is then
# multiplied by every output cell's 0 or 1, work that grows with both sizes, while the chain of
# per-dim products does few multiplications per cell but moves the data once per dim.  Measured on
# 2 cores, forward / backward: 13x13 -> 6x6 (6,084 entries) 3.3 / 2.9 ms by the chain against
# 1.1 / 0.9 by the product; 7x7 -> 5x5 10.0 / 9.6 against 1.5 / 1.4; 20x20 -> 9x9 (32,400)
# 3.0 / 2.6 against 1.9 / 1.9; 56x56 -> 9x9 (254,016) 3.5 / 2.4 against 4.2 / 4.8.
BOX_PRODUCT_MAX_ENTRIES = 1 << 15

_LAYOUTS = {1: "L", 2: "H, W", 3: "D, H, W"}


def averaging_matrix(size: int, out: int, dtype: Any = np.float64) -> np.ndarray:
    """The ``(out, size)`` matrix whose row ``i`` averages PyTorch's adaptive window ``i``.

    Examples
    --------
    >>> averaging_matrix(5, 3)
    array([[0.5       , 0.5       , 0.        , 0.        , 0.        ],
           [0.        , 0.33333333, 0.33333333, 0.33333333, 0.        ],
           [0.        , 0.        , 0.        , 0.5       , 0.5       ]])
    """
    matrix = np.zeros((out, size), dtype=dtype)
    for i, (start, end) in enumerate(_windows(size, out)):
        matrix[i, start:end] = 1 / (end - start)
    return matrix


def _output_sizes(op: str, output_size: Any, n: int, spatial: Sequence[int]) -> tuple[int, ...]:
    if isinstance(output_size, Sequence) and not isinstance(output_size, str):
        if len(output_size) != n:
            raise ValueError(
                f"{op}: output_size must be an int or a tuple of {n} entries, got {_describe(output_size)}"
            )
        entries = tuple(output_size)
    else:
        entries = (output_size,) * n
    sizes = []
    for entry, size in zip(entries, spatial, strict=True):
        if entry is None:
            sizes.append(size)
            continue
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, Integral):
            raise TypeError(f"{op}: output_size must be ints (or None), got {_describe(output_size)}")
        if entry < 1:
            raise ValueError(f"{op}: output_size must be positive, got {_describe(output_size)}")
        sizes.append(int(entry))
    return tuple(sizes)


def _parse(op: str, x: Any, output_size: Any, n: int | None, exact: bool = False
           ) -> tuple[np.ndarray, bool, tuple[int, ...]]:
    """``(x batched and floating, whether x was unbatched, output sizes)``; with ``exact`` (a
    maximum), booleans and integers as int64 instead of float64."""
    x = check_array(op, "x", x, allow_empty=True)
    if n is None:
        if isinstance(output_size, Sequence) and not isinstance(output_size, str):
            n = len(output_size)
        else:
            n = x.ndim - 2
        if n < 1:
            raise ValueError(f"{op}: x must be (N, C, *spatial) with a spatial dim, got shape {x.shape}")
    layout = f"(N, C, {_LAYOUTS.get(n, f'{n} spatial')}) or unbatched (C, {_LAYOUTS.get(n, f'{n} spatial')})"
    check_ndim(op, "x", x, (n + 1, n + 2), layout)
    unbatched = x.ndim == n + 1
    xb = x[None] if unbatched else x
    if not all(xb.shape[1:]):  # (PyTorch refuses these too; only the batch may be empty)
        raise ValueError(f"{op}: x must have non-zero channels and spatial sizes (only the batch may be "
                         f"empty), got shape {x.shape}")
    sizes = _output_sizes(op, output_size, n, xb.shape[2:])
    dtype = (xb.dtype if xb.dtype.kind == "f" else np.dtype(np.int64)) if exact else float_dtype(xb)
    return xb.astype(dtype, copy=False), unbatched, sizes


def _windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive windows ``[start_i, end_i)`` along a dim of ``size`` cells pooled to ``out``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _box_matrix(spatial: Sequence[int], sizes: Sequence[int], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(S, counts)``: ``S[j, i] = 1`` where input cell ``j`` (flat over ``spatial``) lies in the box
    of output cell ``i`` (flat over ``sizes``), and each box's number of cells."""
    boxes = np.ones((1, 1), dtype=bool)  # (cells so far, outputs so far), built one dim at a time
    for size, out in zip(spatial, sizes, strict=True):
        member = np.zeros((size, out), dtype=bool)
        for i, (start, end) in enumerate(_windows(size, out)):
            member[start:end, i] = True
        boxes = (boxes[:, None, :, None] & member[None, :, None, :]).reshape(boxes.shape[0] * size, -1)
    return boxes.astype(dtype), boxes.sum(axis=0).astype(dtype)


def _fast_path(spatial: Sequence[int], sizes: Sequence[int]) -> str | None:
    """``'pool'`` when every dim divides into equal windows (average pooling with kernel = stride
    = ``in / out``, whose compiled kernels sum each window and divide once), ``'box'`` for a small
    box matrix (:data:`BOX_PRODUCT_MAX_ENTRIES`: one product with it), else None (the chain of
    averaging products)."""
    if all(size % out == 0 for size, out in zip(spatial, sizes, strict=True)):
        return "pool"
    if math.prod(spatial) * math.prod(sizes) <= BOX_PRODUCT_MAX_ENTRIES:
        return "box"
    return None


def _contract(a: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Multiply the trailing ``len(matrices)`` axes of ``a`` by ``matrices`` (one each, from the
    right: axis ``-n + k`` of ``a`` meets axis 1 of ``matrices[k]``)."""
    n = len(matrices)
    for k, m in enumerate(matrices):
        axis = a.ndim - n + k
        a = np.moveaxis(np.moveaxis(a, axis, -1) @ m.T, -1, axis)
    return np.ascontiguousarray(a)


def _adaptive_avg_pool(op: str, x: Any, output_size: Any, n: int | None) -> np.ndarray:
    xb, unbatched, sizes = _parse(op, x, output_size, n)
    if all(s == 1 for s in sizes):  # global average pooling: plane sums, rounded once
        y = plane_means(xb, len(sizes), math.prod(xb.shape[2:]), xb.dtype)
        return y[0] if unbatched else y
    path = _fast_path(xb.shape[2:], sizes)
    if path == "pool":  # equal windows: average pooling with kernel = stride
        y = avg_pool(xb, tuple(s // o for s, o in zip(xb.shape[2:], sizes, strict=True)))
    elif path == "box":  # the window sums as one product, then one division per output cell
        box, counts = _box_matrix(xb.shape[2:], sizes, xb.dtype)
        planes = xb.reshape(-1, box.shape[0])
        y = np.divide(planes @ box, counts).reshape(*xb.shape[:2], *sizes)
    else:
        mats = [averaging_matrix(s, o, xb.dtype) for s, o in zip(xb.shape[2:], sizes, strict=True)]
        y = _contract(xb, mats)
    return y[0] if unbatched else y


def _batched_grad_out(op: str, grad_out: Any, xb: np.ndarray, sizes: tuple[int, ...], unbatched: bool
                      ) -> np.ndarray:
    """``grad_out`` checked against the output's shape (of the batched ``xb`` pooled to
    ``sizes``, unbatched where ``x`` was) and batched, its dtype as given."""
    g = check_array(op, "grad_out", grad_out, allow_empty=True)
    shape = xb.shape[:2] + sizes
    if unbatched:
        shape = shape[1:]
    if g.shape != shape:
        raise ValueError(f"{op}: grad_out must have the output's shape {shape}, got {_describe(g)}")
    return g[None] if unbatched else g


def _adaptive_avg_pool_backward(op: str, grad_out: Any, x: Any, output_size: Any, n: int | None) -> np.ndarray:
    xb, unbatched, sizes = _parse(op, x, output_size, n)
    gb = _batched_grad_out(op, grad_out, xb, sizes, unbatched).astype(xb.dtype, copy=False)
    if all(s == 1 for s in sizes):  # global: every cell gets its plane's share
        grad_x = plane_shares(gb, xb.dtype.type(math.prod(xb.shape[2:])), xb.shape)
        return grad_x[0] if unbatched else grad_x
    path = _fast_path(xb.shape[2:], sizes)
    if path == "pool":
        grad_x = avg_pool_backward(gb, xb, tuple(s // o for s, o in zip(xb.shape[2:], sizes, strict=True)))
    elif path == "box":  # each output cell's share, then spread over its box by one product
        box, counts = _box_matrix(xb.shape[2:], sizes, xb.dtype)
        shares = np.divide(gb.reshape(-1, box.shape[1]), counts)
        grad_x = (shares @ box.T).reshape(xb.shape)
    else:
        mats = [averaging_matrix(s, o, xb.dtype).T for s, o in zip(xb.shape[2:], sizes, strict=True)]
        grad_x = _contract(gb, mats)
    return grad_x[0] if unbatched else grad_x


def adaptive_avg_pool(x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    r"""Average pooling to a given output size, over any number of spatial dims.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``.
    output_size : int, None or tuple of (int or None)
        Output size per spatial dim (``None`` keeps that dim's size).  The number of spatial dims
        is ``len(output_size)`` for a tuple and ``x.ndim - 2`` (a batched input) for an int; use
        :func:`adaptive_avg_pool1d`, ``2d`` or ``3d`` to fix it.

    Shape
    -----
    ``(N, C, *in) -> (N, C, *output_size)``; any output size >= 1 works, also larger than the
    input (windows then overlap).

    Returns
    -------
    numpy.ndarray
        Floating inputs keep their dtype; integer inputs give float64.

    Raises
    ------
    TypeError
        Non-numeric ``x``, non-int output sizes.
    ValueError
        Wrong ``x.ndim``, output sizes < 1, a tuple of the wrong length.

    Notes
    -----
    Per dim, ``y[i] = mean(x[start_i:end_i])`` with ``start_i = floor(i*in/out)`` and
    ``end_i = ceil((i+1)*in/out)`` (PyTorch's windows); across dims the windows are boxes.
    With ``output_size=1`` this is global average pooling.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_avg_pool(np.arange(10.0).reshape(1, 1, 2, 5), (1, 3))
    array([[[[3. , 4.5, 6. ]]]])
    """
    return _adaptive_avg_pool("adaptive_avg_pool", x, output_size, None)


def adaptive_avg_pool1d(x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """1-d :func:`adaptive_avg_pool`: ``x`` is ``(N, C, L)`` or ``(C, L)``."""
    return _adaptive_avg_pool("adaptive_avg_pool1d", x, output_size, 1)


def adaptive_avg_pool2d(x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """2-d :func:`adaptive_avg_pool`: ``x`` is ``(N, C, H, W)`` or ``(C, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_avg_pool2d(np.arange(4.0).reshape(1, 2, 2), 1)
    array([[[1.5]]])
    """
    return _adaptive_avg_pool("adaptive_avg_pool2d", x, output_size, 2)


def adaptive_avg_pool3d(x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """3-d :func:`adaptive_avg_pool`: ``x`` is ``(N, C, D, H, W)`` or ``(C, D, H, W)``."""
    return _adaptive_avg_pool("adaptive_avg_pool3d", x, output_size, 3)


# Backward: y = x x_1 A_1 ... x_n A_n (one averaging matrix per spatial dim) is linear in x, so
# grad_x = grad_out x_1 A_1^T ... x_n A_n^T: each output cell's gradient is spread evenly over
# its window, and cells in overlapping windows add up the shares.
def adaptive_avg_pool_backward(grad_out: Any, x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """Gradient ``grad_x`` of :func:`adaptive_avg_pool`: each output cell's gradient spread
    evenly over its window.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_avg_pool_backward(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 2, 2)), 1)
    array([[[[0.25, 0.25],
             [0.25, 0.25]]]])
    """
    return _adaptive_avg_pool_backward("adaptive_avg_pool_backward", grad_out, x, output_size, None)


def adaptive_avg_pool1d_backward(grad_out: Any, x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool1d`."""
    return _adaptive_avg_pool_backward("adaptive_avg_pool1d_backward", grad_out, x, output_size, 1)


def adaptive_avg_pool2d_backward(grad_out: Any, x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool2d`."""
    return _adaptive_avg_pool_backward("adaptive_avg_pool2d_backward", grad_out, x, output_size, 2)


def adaptive_avg_pool3d_backward(grad_out: Any, x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool3d`."""
    return _adaptive_avg_pool_backward("adaptive_avg_pool3d_backward", grad_out, x, output_size, 3)
