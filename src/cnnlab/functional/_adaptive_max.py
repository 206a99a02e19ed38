"""Adaptive max pooling (output size given, windows derived), N-d, with its backward.

The windows are adaptive average pooling's (:mod:`cnnlab.functional._adaptive`): along a spatial
dim of length ``in`` pooled to ``out`` cells, output cell ``i`` takes input cells ``start_i <= j <
end_i``, ``start_i = floor(i * in / out)``, ``end_i = ceil((i + 1) * in / out)``; across dims the
windows are boxes, and each output cell is its box's largest value.  Which cell is "the" maximum
matters for the indices and the gradient, and is PyTorch's: the first maximum in row-major order
over the box (``-0.0`` and ``0.0`` tie), or, where the box holds a NaN, its last NaN (the output
is then NaN).

Four paths choose the same cells (:func:`adaptive_max_forward`): a compiled scan of each plane
for one output cell, max pooling's kernels for windows that do not overlap, a compiled scan of
each box (:mod:`cnnlab.functional._numba_adaptive`), and, without Numba, NumPy one dim at a time,
last dim first: along the last dim each window's winner (value and position), then along the dim
before it the winner among those, and so on.  The first maximum in row-major order of a box is
the first maximum, along its first dim, of the rows' first maxima; its last NaN is the last NaN
of the last row holding one, likewise; so the dim by dim winner is the box's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._adaptive import _batched_grad_out, _windows
from cnnlab.functional._adaptive import _parse as _parse_float
from cnnlab.functional._args import check_bool, result_dtype


def adaptive_max_forward(xb: np.ndarray, sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(y, indices)`` of a batched ``xb`` ``(N, C, *spatial)`` pooled to ``sizes``: each output
    cell's box maximum and its flat index in the input plane (row-major over ``spatial``).  To a
    single cell (global max pooling) by a compiled scan of each plane where the backend allows
    it.  Where every size divides its input's, the windows are max pooling's with kernel = stride = ``in /
    out`` (the same choice of cell on ties and NaN), run by its kernels (N32 C256 14x14 -> 7x7,
    forward+backward: 5.4 ms, against 10.3 by the kernel below); otherwise by the compiled kernel
    (:func:`cnnlab.functional._numba_adaptive.adaptive_max`, each box scanned in row-major order, a
    plane a job) where the backend allows it, else dim by dim (:func:`_dim_winners`)."""
    spatial = xb.shape[2:]
    compiled = xb.dtype in (np.float32, np.float64, np.int64) and _backend.use_numba(xb.size)
    if compiled and all(out == 1 for out in sizes) and xb.size:
        # (global max pooling: each plane one short row, scanned by the compiled kernel)
        from cnnlab.functional import _numba_adaptive

        vals, idx = _numba_adaptive.plane_argmax(np.ascontiguousarray(xb).reshape(-1, math.prod(spatial)))
        shape = (*xb.shape[:2], *sizes)
        return vals.reshape(shape), idx.reshape(shape)
    if _disjoint(spatial, sizes):
        from cnnlab.functional._pool import max_pool

        kernel = tuple(size // out for size, out in zip(spatial, sizes, strict=True))
        return max_pool(xb, kernel, return_indices=True)
    if compiled and len(sizes) <= 3:
        # (compiled: a plane a job, each box scanned in row-major order)
        from cnnlab.functional import _numba_adaptive

        lead = (1,) * (3 - len(sizes))
        planes = np.ascontiguousarray(xb).reshape(-1, *lead, *spatial)
        windows = [[(0, 1)]] * len(lead) + [_windows(size, out) for size, out in zip(spatial, sizes, strict=True)]
        y, idx = _numba_adaptive.adaptive_max(planes, windows)
        return y.reshape(*xb.shape[:2], *sizes), idx.reshape(*xb.shape[:2], *sizes)
    values, flat, pitch = xb, None, 1
    for axis in range(len(sizes) - 1, -1, -1):
        values, flat = _dim_winners(values, flat, 2 + axis, spatial[axis], sizes[axis], pitch)
        pitch *= spatial[axis]
    return values, flat


def _dim_winners(values: np.ndarray, flat: np.ndarray | None, at: int, size: int, out: int, pitch: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One dim's step of :func:`adaptive_max_forward`: along axis ``at`` (``size`` cells, each a
    winner of the dims done so far, at the flat indices ``flat``, None before the first), each of
    the ``out`` windows' winner and its flat index (``pitch``: the cells of the dims done so far).
    The windows are gathered as one ``(out, longest)`` block, a shorter window's row ending in
    repeats of its last cell (a repeat neither beats nor ties with a different cell: the first
    maximum and the last NaN stay the same cells)."""
    windows = _windows(size, out)
    longest = max(end - start for start, end in windows)
    cells = np.array([[min(start + j, end - 1) for j in range(longest)] for start, end in windows], np.int64)
    block = np.take(values, cells, axis=at)  # (..., out, longest, ...)
    nan = np.isnan(block) if block.dtype.kind == "f" else None
    j = np.argmax(block, axis=at + 1)  # (the first maximum; NumPy's argmax takes the first NaN)
    if nan is not None:
        last_nan = longest - 1 - np.argmax(np.flip(nan, axis=at + 1), axis=at + 1)
        j = np.where(nan.any(axis=at + 1), last_nan, j)
    j = np.expand_dims(j, at + 1)
    winner = np.take_along_axis(block, j, axis=at + 1).squeeze(at + 1)
    cell = np.take_along_axis(np.expand_dims(cells, tuple(range(at)) + tuple(range(at + 2, block.ndim))), j,
                              axis=at + 1).squeeze(at + 1)
    index = cell * pitch
    if flat is not None:
        index = index + np.take_along_axis(np.take(flat, cells, axis=at), j, axis=at + 1).squeeze(at + 1)
    return winner, index


def adaptive_max_scatter(grad_out: np.ndarray, indices: np.ndarray, x_shape: Sequence[int], dtype: Any,
                         disjoint: bool = False) -> np.ndarray:
    """``grad_x`` of shape ``x_shape`` (batched) from the batched ``grad_out`` and the forward's
    ``indices``: each output cell's gradient added to the input cell it took (overlapping windows
    that took the same cell add up, in float64, rounded once).  ``disjoint``: the windows do not
    overlap (every size divides its input's), so each cell takes at most one gradient, written
    as it is."""
    planes = int(np.prod(x_shape[:2]))
    plane = int(np.prod(x_shape[2:]))
    if grad_out.size == 0:
        return np.zeros(x_shape, dtype)
    if disjoint:
        grad_x = np.zeros((planes, plane), dtype)
        np.put_along_axis(grad_x, indices.reshape(planes, -1), grad_out.reshape(planes, -1).astype(dtype, copy=False),
                          axis=1)
        return grad_x.reshape(x_shape)
    where = (np.arange(planes, dtype=np.int64)[:, None] * plane + indices.reshape(planes, -1)).reshape(-1)
    if np.dtype(dtype).kind != "f":  # (integer gradients stay exact)
        grad_x = np.zeros(planes * plane, dtype)
        np.add.at(grad_x, where, grad_out.reshape(-1).astype(dtype, copy=False))
        return grad_x.reshape(x_shape)
    sums = np.bincount(where, weights=grad_out.reshape(-1).astype(np.float64), minlength=planes * plane)
    return sums.astype(dtype, copy=False).reshape(x_shape)


def _disjoint(spatial: Sequence[int], sizes: Sequence[int]) -> bool:
    """Whether the adaptive windows of ``spatial`` pooled to ``sizes`` do not overlap."""
    return all(size % out == 0 for size, out in zip(spatial, sizes, strict=True))


def _parse(op: str, x: Any, output_size: Any, n: int | None) -> tuple[np.ndarray, bool, tuple[int, ...]]:
    """Adaptive average pooling's checks, ``x`` keeping its dtype (a maximum is exact): booleans
    and integers as int64."""
    return _parse_float(op, x, output_size, n, exact=True)


def _pooled(op: str, x: Any, output_size: Any, n: int | None, return_indices: Any) -> tuple[Any, tuple]:
    """``(result, saved)``: what the op returns (the pooled values, with ``return_indices`` and
    the indices), and what its backward needs (the batched indices, ``x``'s batched shape and
    dtype, whether ``x`` was unbatched)."""
    return_indices = check_bool(op, "return_indices", return_indices)
    xb, unbatched, sizes = _parse(op, x, output_size, n)
    y, indices = adaptive_max_forward(xb, sizes)
    pooled = (y[0], indices[0]) if unbatched else (y, indices)
    return (pooled if return_indices else pooled[0]), (indices, xb.shape, xb.dtype, unbatched)


def _scattered(grad_out: np.ndarray, saved: tuple) -> np.ndarray:
    """The backward from ``grad_out`` (batched or not: the scatter reads it plane by plane) and
    :func:`_pooled`'s ``saved``: float ``x`` keeps its dtype, integer ``x`` takes ``grad_out``'s
    (integers as int64)."""
    indices, x_shape, x_dtype, unbatched = saved
    dtype = x_dtype if x_dtype.kind == "f" else result_dtype(grad_out)
    grad_x = adaptive_max_scatter(grad_out, indices, x_shape, dtype, _disjoint(x_shape[2:], indices.shape[2:]))
    return grad_x[0] if unbatched else grad_x


def _adaptive_max_pool(op: str, x: Any, output_size: Any, n: int | None, return_indices: Any) -> Any:
    return _pooled(op, x, output_size, n, return_indices)[0]


def _adaptive_max_pool_backward(op: str, grad_out: Any, x: Any, output_size: Any, n: int | None) -> np.ndarray:
    xb, unbatched, sizes = _parse(op, x, output_size, n)
    g = _batched_grad_out(op, grad_out, xb, sizes, unbatched)
    _, indices = adaptive_max_forward(xb, sizes)
    return _scattered(g, (indices, xb.shape, xb.dtype, unbatched))


def adaptive_max_pool(x: Any, output_size: int | None | Sequence[int | None], return_indices: bool = False) -> Any:
    r"""Max pooling to a given output size, over any number of spatial dims.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; boolean, integer or floating.
    output_size : int, None or tuple of (int or None)
        Output size per spatial dim (``None`` keeps that dim's size).  The number of spatial dims
        is ``len(output_size)`` for a tuple and ``x.ndim - 2`` (a batched input) for an int; use
        :func:`adaptive_max_pool1d`, ``2d`` or ``3d`` to fix it.
    return_indices : bool, default False
        Also return, per output cell, the flat index (row-major over the input's spatial dims)
        of the cell it took, as PyTorch does.

    Shape
    -----
    ``(N, C, *in) -> (N, C, *output_size)``; any output size >= 1 works, also larger than the
    input (windows then overlap).

    Returns
    -------
    numpy.ndarray, or (numpy.ndarray, numpy.ndarray of int64)
        The pooled values (floats keep their dtype; booleans and integers give exact int64), and
        with ``return_indices`` the indices.

    Raises
    ------
    TypeError
        Non-numeric ``x``, non-int output sizes, a non-bool ``return_indices``.
    ValueError
        Wrong ``x.ndim``, empty channel or spatial dims, output sizes < 1, a tuple of the wrong
        length.

    Notes
    -----
    Per dim the windows are ``start_i = floor(i*in/out) <= j < end_i = ceil((i+1)*in/out)``
    (PyTorch's, as in :func:`adaptive_avg_pool`), and across dims boxes:
    ``y[b, c, i] = max_{j in box(i)} x[b, c, j]``.  The cell taken (its index, and the one that
    gets the gradient) is the first maximum in row-major order over the box, or the box's last
    NaN where it holds one (the output is then NaN).

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_max_pool(np.array([[[1, 3, 3, 2, 5, 5]]]), (2,), return_indices=True)
    (array([[[3, 5]]]), array([[[1, 4]]]))
    """
    return _adaptive_max_pool("adaptive_max_pool", x, output_size, None, return_indices)


def adaptive_max_pool1d(x: Any, output_size: int | None | Sequence[int | None], return_indices: bool = False) -> Any:
    """1-d :func:`adaptive_max_pool`: ``x`` is ``(N, C, L)`` or ``(C, L)``."""
    return _adaptive_max_pool("adaptive_max_pool1d", x, output_size, 1, return_indices)


def adaptive_max_pool2d(x: Any, output_size: int | None | Sequence[int | None], return_indices: bool = False) -> Any:
    """2-d :func:`adaptive_max_pool`: ``x`` is ``(N, C, H, W)`` or ``(C, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_max_pool2d(np.arange(20.0).reshape(1, 4, 5), (3, 2))
    array([[[ 7.,  9.],
            [12., 14.],
            [17., 19.]]])
    """
    return _adaptive_max_pool("adaptive_max_pool2d", x, output_size, 2, return_indices)


def adaptive_max_pool3d(x: Any, output_size: int | None | Sequence[int | None], return_indices: bool = False) -> Any:
    """3-d :func:`adaptive_max_pool`: ``x`` is ``(N, C, D, H, W)`` or ``(C, D, H, W)``."""
    return _adaptive_max_pool("adaptive_max_pool3d", x, output_size, 3, return_indices)


# Backward: y[i] = x[a(i)] with a(i) the cell output i took, so grad_x[j] = sum over the outputs
# i with a(i) = j of grad_out[i]: each output's gradient goes to its cell, and a cell taken by
# several overlapping windows gets the sum.
def adaptive_max_pool_backward(grad_out: Any, x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """Gradient ``grad_x`` of :func:`adaptive_max_pool`: each output cell's gradient sent to the
    input cell it took (see its Notes), summed where windows overlap.

    Returns
    -------
    numpy.ndarray
        Shape of ``x``; dtype of ``x`` for a float ``x``, else ``grad_out``'s (integers as int64).

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_max_pool_backward(np.ones((1, 1, 3)), np.array([[[1.0, 3.0, 3.0, 2.0]]]), 3)
    array([[[0., 2., 1., 0.]]])
    """
    return _adaptive_max_pool_backward("adaptive_max_pool_backward", grad_out, x, output_size, None)


def adaptive_max_pool1d_backward(grad_out: Any, x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool1d`."""
    return _adaptive_max_pool_backward("adaptive_max_pool1d_backward", grad_out, x, output_size, 1)


def adaptive_max_pool2d_backward(grad_out: Any, x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool2d`."""
    return _adaptive_max_pool_backward("adaptive_max_pool2d_backward", grad_out, x, output_size, 2)


def adaptive_max_pool3d_backward(grad_out: Any, x: Any, output_size: int | None | Sequence[int | None]) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool3d`."""
    return _adaptive_max_pool_backward("adaptive_max_pool3d_backward", grad_out, x, output_size, 3)


def adaptive_max_pool_saving(op: str, n: int | None):
    """``(forward_saving, backward_saved)`` for :func:`cnnlab.functional._dispatch.differentiable`:
    the forward keeps the cell each output took, so the backward is one scatter (no second max
    search)."""

    def forward_saving(needs, x, output_size, return_indices=False):
        return _pooled(op, x, output_size, n, return_indices)

    def backward_saved(grad_out, saved, needs):
        return _scattered(np.asarray(grad_out), saved)

    return forward_saving, backward_saved
