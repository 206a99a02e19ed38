"""The kernels behind pooling, and the rule that picks one of them for a call.

Every pooling op runs one of two methods (the public ``method=`` argument):

``'numpy'``
    Vectorised over all windows at once, with a Python loop over the kernel taps of the strided
    :func:`~cnnlab.functional._windows.windows` view of the padded input.  The backward scatters
    window gradients back with :func:`~cnnlab.functional._windows.windows_backward` and drops the
    padding.  When the windows tile the input (``kernel_size == stride``, no dilation, no
    padding) ``x[..., :out*k]`` reshaped to ``(N, C, o_1, k_1, o_2, k_2, ...)`` *is* the window
    view, with no copy, and the backward is the same reshape read the other way (each input cell
    belongs to at most one window, so nothing has to be added up).
``'numba'``
    The loop reference compiled (:mod:`cnnlab.functional._numba_pool`), threaded over the
    ``N*C`` planes: one pass that writes each window's maximum and its argmax, one scatter back.

:func:`choose` is the rule: ``'auto'`` takes the compiled kernels whenever the backend allows
them.  Both methods keep the same conventions (the first maximum on ties, the last NaN of a
window holding NaN, padding never chosen, integer sums exact in int64), and the tests run every
op on both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._args import PadPairs, check_choice, result_dtype
from cnnlab.functional._windows import pad, pad_backward, windows, windows_backward

POOL_METHODS = ("auto", "numpy", "numba")
_COMPILED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64))


class Geometry(NamedTuple):
    """Normalised arguments of one pooling call (input always batched)."""

    x: np.ndarray
    batched: bool
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: PadPairs
    full_pads: PadPairs  # pads plus the ceil-mode overhang past the high end
    out: tuple[int, ...]


def tap_positions(out: int, k: int, s: int, d: int, lo: int) -> np.ndarray:
    """Input coordinate ``o*s + t*d - lo`` of every (output index, kernel tap) pair along a dim."""
    return np.arange(out)[:, None] * s + np.arange(k)[None, :] * d - lo


def choose(op: str, method: Any, g: Geometry, *dtypes: np.dtype) -> Any:
    """The compiled kernels' plan for this call, or ``None`` for the NumPy path.

    ``'numpy'`` is the NumPy path; ``'numba'`` the compiled loops, an error if Numba cannot be
    imported; ``'auto'`` the compiled loops whenever the backend allows them
    (:func:`cnnlab.set_backend`).  The compiled loops cover one to three spatial dims with
    ``dtypes`` (the input's after casting integers to int64, and the gradient's) in float32,
    float64 or int64; any other call takes the NumPy path whatever ``method`` says.
    """
    method = check_choice(op, "method", method, POOL_METHODS)
    if method == "numpy":
        return None
    if method == "numba":
        if not _backend.numba_available():
            raise ValueError(f"{op}: method 'numba' needs the numba package (pip install 'cnnlab[fast]'), "
                             f"which is not importable here (or CNNLAB_DISABLE_NUMBA is set)")
    elif not _backend.use_numba(g.x.size * int(math.prod(g.kernel))):
        return None
    if len(g.kernel) > 3 or any(np.dtype(d) not in _COMPILED_DTYPES for d in dtypes):
        return None
    from cnnlab.functional import _numba_pool

    return _numba_pool.plan(g.x.shape[0] * g.x.shape[1], g.x.shape[2:], g.kernel, g.stride, g.dilation,
                            g.pads, g.out)


def _window_view(a: np.ndarray, g: Geometry, value: float = 0) -> np.ndarray:
    """``(*lead, *out, *kernel)`` view of ``a`` padded by ``g.full_pads`` with ``value`` (zeros /
    False by default)."""
    view = windows(pad(a, g.full_pads, value=value), g.kernel, g.stride, g.dilation)
    # In ceil mode the view may hold one window more than the ceil rule keeps: cut to ``out``.
    return view[(Ellipsis, *(slice(0, o) for o in g.out), *(slice(None),) * len(g.kernel))]


def _scatter_windows(grad_windows: np.ndarray, g: Geometry) -> np.ndarray:
    """Adjoint of :func:`_window_view`: add ``(N, C, *out, *kernel)`` window gradients back into
    an input-shaped array (the padding dropped)."""
    padded = [s + lo + hi for s, (lo, hi) in zip(g.x.shape[2:], g.full_pads, strict=True)]
    grad_padded = windows_backward(grad_windows, padded, g.kernel, g.stride, g.dilation)
    return pad_backward(grad_padded, g.x.shape[2:], g.full_pads, "zeros")


# ----------------------------------------------------------------------------------------------
# Max pooling


def max_forward(g: Geometry, plan: Any) -> tuple[np.ndarray, np.ndarray]:
    """Window maxima ``(N, C, *out)`` and the argmax of every window: the flat index into the
    input plane on the compiled path (``plan``), the kernel-tap index on the NumPy path."""
    x = g.x.astype(result_dtype(g.x), copy=False)
    if plan is not None:
        from cnnlab.functional import _numba_pool

        y, idx = _numba_pool.max_forward(x, plan)
        shape = g.x.shape[:2] + g.out
        return y.reshape(shape), idx.reshape(shape)
    if tiles_apply(g.kernel, g.stride, g.dilation, g.full_pads):
        return max_tiles(x, g.kernel, g.out)
    # The maximum over the taps, with padding that can never win (-inf, or the integer minimum),
    # then the argmax: the first tap in the input holding it (ties keep the first maximum, and
    # padding is never chosen), or, in a window holding NaN, its last NaN.
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    view = _window_view(x, g, low)
    taps = [(Ellipsis, *tap) for tap in np.ndindex(*g.kernel)]
    best = view[taps[0]].copy()
    for tap in taps[1:]:
        np.maximum(best, view[tap], out=best)  # NaN propagates
    padded = any(lo or hi for lo, hi in g.full_pads)
    inside = _window_view(np.ones(x.shape[2:], dtype=bool), g) if padded else None
    arg = np.zeros(best.shape, dtype=np.int64)
    for flat in range(len(taps) - 1, -1, -1):
        value = view[taps[flat]]
        hit = value == best
        if inside is not None:
            hit &= inside[taps[flat]]
        np.copyto(arg, flat, where=hit)
        np.copyto(best, value, where=hit)  # the chosen cell's own value (the sign of a zero)
    if x.dtype.kind == "f" and np.isnan(best).any():
        for flat, tap in enumerate(taps):
            np.copyto(arg, flat, where=np.isnan(view[tap]))
    return best, arg


def max_backward(grad_out: np.ndarray, arg: np.ndarray, plan: Any, g: Geometry) -> np.ndarray:
    """Send each window's gradient (batched ``grad_out``, already of the gradient's dtype) to the
    cell :func:`max_forward` chose; cells chosen by overlapping windows add up."""
    if plan is not None:
        from cnnlab.functional import _numba_pool

        return _numba_pool.max_backward(grad_out, arg, plan).reshape(g.x.shape)
    if tiles_apply(g.kernel, g.stride, g.dilation, g.full_pads):
        return max_tiles_backward(grad_out, arg, g.x.shape, g.kernel)
    size = int(math.prod(g.kernel))
    grad_windows = np.zeros(arg.shape + (size,), dtype=grad_out.dtype)
    np.put_along_axis(grad_windows, arg[..., None], grad_out[..., None], axis=-1)
    return _scatter_windows(grad_windows.reshape(arg.shape + g.kernel), g)


def flat_indices(arg: np.ndarray, plan: Any, g: Geometry) -> np.ndarray:
    """PyTorch's indices from :func:`max_forward`'s argmax: flat indices into each channel's
    unpadded spatial input (the compiled path has them already)."""
    if plan is not None:
        return arg
    n = len(g.kernel)
    taps = np.unravel_index(arg, g.kernel)
    sp = g.x.shape[2:]
    flat = np.zeros(arg.shape, dtype=np.int64)
    for i in range(n):
        shape = [1] * arg.ndim
        shape[2 + i] = g.out[i]
        origin = (np.arange(g.out[i]) * g.stride[i] - g.pads[i][0]).reshape(shape)
        flat = flat * sp[i] + origin + taps[i] * g.dilation[i]
    return flat


# ----------------------------------------------------------------------------------------------
# Average pooling


def plane_sums(x: np.ndarray, n: int) -> np.ndarray:
    """The sums of ``x``'s trailing ``n`` axes (whole planes, as a global average pooling reads
    them): in float64 for floats (with the compiled kernels, each plane summed on both cores
    from the values as they are, :func:`cnnlab.functional._numba_pool.plane_sums`: N32 C512 7x7
    0.64 -> 0.15 ms; else one product with a vector of ones, on the BLAS, of a float64 copy),
    exactly in int64 for integers.  A plane is a short row of memory (7x7 = 49 values at the end
    of a ResNet), which loops over windows handle one tiny window at a time."""
    flat = x.reshape(*x.shape[: x.ndim - n], -1)
    if x.dtype.kind != "f":
        return flat.sum(axis=-1, dtype=np.int64)
    if x.dtype in (np.float32, np.float64) and flat.shape[-1] and _backend.use_numba(x.size):
        # (compiled: each plane summed on both cores, no float64 copy of the input)
        from cnnlab.functional import _numba_pool

        rows = np.ascontiguousarray(flat).reshape(-1, flat.shape[-1])
        return _numba_pool.plane_sums(rows).reshape(flat.shape[:-1])
    return flat.astype(np.float64, copy=False) @ np.ones(flat.shape[-1])


def plane_means(x: np.ndarray, n: int, divisor: Any, dtype: np.dtype) -> np.ndarray:
    """:func:`plane_sums` over ``divisor`` (a number, or an array of one), rounded once to
    ``dtype``: shape ``x.shape`` with the trailing ``n`` axes of size 1."""
    total = plane_sums(x, n) / np.asarray(divisor, dtype=np.float64).reshape(-1)
    return total.astype(dtype, copy=False).reshape(x.shape[: x.ndim - n] + (1,) * n)


def plane_shares(grad: np.ndarray, divisor: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The adjoint of :func:`plane_means`: every cell of an array of ``shape`` gets its plane's
    ``grad / divisor`` (``grad`` has the trailing axes of size 1)."""
    share = grad / divisor
    lead = len(shape) - n_planes_axes(share.shape, shape)
    if (share.dtype in (np.float32, np.float64) and share.size and lead < len(shape)
            and _backend.use_numba(math.prod(shape))):
        # (compiled: each plane's share written on both cores)
        from cnnlab.functional import _numba_pool

        size = math.prod(shape[lead:])
        return _numba_pool.plane_fill(np.ascontiguousarray(share).reshape(-1), size).reshape(shape)
    out = np.empty(shape, dtype=share.dtype)
    np.copyto(out, share)
    return out


def n_planes_axes(share_shape: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """How many trailing axes of ``shape`` are the planes that ``share_shape`` (``shape`` with
    those axes of size 1) broadcasts over: 0 where the leading axes differ or the dimensions do."""
    if len(share_shape) != len(shape):
        return 0
    k = len(shape)
    while k and share_shape[k - 1] == 1:
        k -= 1
    return len(shape) - k if tuple(share_shape[:k]) == tuple(shape[:k]) else 0


def _whole_planes(g: Geometry) -> bool:
    """Whether the only window is the whole (unpadded, undilated) plane."""
    return (tuple(g.kernel) == tuple(g.x.shape[2:]) and all(o == 1 for o in g.out)
            and all(d == 1 for d in g.dilation) and all(lo == 0 and hi == 0 for lo, hi in g.full_pads))


def avg_forward(g: Geometry, plan: Any, divisor: np.ndarray) -> np.ndarray:
    """Window sums divided by ``divisor`` (shape ``out``; its dtype is the output's), batched.
    Integers are summed exactly in int64 before the division; a window that is the whole plane
    is summed in float64 (:func:`plane_sums`) and rounded once, after the division."""
    x = g.x.astype(result_dtype(g.x), copy=False)
    if _whole_planes(g):
        return plane_means(x, len(g.kernel), divisor, divisor.dtype)
    if plan is not None:
        from cnnlab.functional import _numba_pool

        return _numba_pool.avg_forward(x, plan, divisor).reshape(g.x.shape[:2] + g.out)
    if tiles_apply(g.kernel, g.stride, g.dilation, g.full_pads):
        total = avg_tiles(x, g.kernel, g.out)
    else:
        total = _window_view(x, g).sum(axis=tuple(range(-len(g.kernel), 0)))
    return total.astype(divisor.dtype, copy=False) / divisor


def avg_backward(grad_out: np.ndarray, plan: Any, divisor: np.ndarray, g: Geometry) -> np.ndarray:
    """Adjoint of :func:`avg_forward` for a batched ``grad_out`` (``divisor`` of its dtype):
    every input tap of window ``p`` gets ``grad_out[p] / divisor[p]``."""
    if _whole_planes(g):
        return plane_shares(grad_out, divisor, g.x.shape)
    if plan is not None:
        from cnnlab.functional import _numba_pool

        return _numba_pool.avg_backward(grad_out, plan, divisor).reshape(g.x.shape)
    per_window = grad_out / divisor
    if tiles_apply(g.kernel, g.stride, g.dilation, g.full_pads):
        return avg_tiles_backward(per_window, g.x.shape, g.kernel)
    n = len(g.kernel)
    grad_windows = np.broadcast_to(per_window[(Ellipsis, *(None,) * n)], per_window.shape + g.kernel)
    return _scatter_windows(grad_windows, g)


# ----------------------------------------------------------------------------------------------
# Tiling windows (kernel == stride, no dilation, no padding): a reshape


def tiles_apply(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                full_pads: Sequence[tuple[int, int]]) -> bool:
    """Whether the windows tile the input (kernel == stride, no dilation, no padding)."""
    return (
        tuple(kernel) == tuple(stride)
        and all(d == 1 for d in dilation)
        and all(lo == 0 and hi == 0 for lo, hi in full_pads)
    )


def _tiles(x: np.ndarray, kernel: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """``(N, C, o_1, k_1, ..., o_n, k_n)`` view of the covered part of ``x``."""
    n = len(kernel)
    covered = x[(Ellipsis, *(slice(0, o * k) for o, k in zip(out, kernel, strict=True)))]
    shape = x.shape[: x.ndim - n] + tuple(v for o, k in zip(out, kernel, strict=True) for v in (o, k))
    return covered.reshape(shape)


def _kernel_axes(n: int) -> tuple[int, ...]:
    return tuple(3 + 2 * i for i in range(n))


def _untile(grad_tiles: np.ndarray, x_shape: Sequence[int], kernel: Sequence[int], out: Sequence[int]
            ) -> np.ndarray:
    """Put a ``(N, C, o_1, k_1, ...)`` gradient back into an array of ``x_shape`` (zeros in the
    uncovered tail)."""
    n = len(kernel)
    covered = tuple(o * k for o, k in zip(out, kernel, strict=True))
    flat = grad_tiles.reshape(tuple(x_shape[: len(x_shape) - n]) + covered)
    if covered == tuple(x_shape[len(x_shape) - n:]):
        return flat
    grad = np.zeros(tuple(x_shape), dtype=grad_tiles.dtype)
    grad[(Ellipsis, *(slice(0, c) for c in covered))] = flat
    return grad


def avg_tiles(x: np.ndarray, kernel: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """Window sums of the tiling windows, shape ``(N, C, *out)``."""
    return _tiles(x, kernel, out).sum(axis=_kernel_axes(len(kernel)))


def avg_tiles_backward(per_window: np.ndarray, x_shape: Sequence[int], kernel: Sequence[int]) -> np.ndarray:
    """Adjoint of the window sum: every cell of window ``p`` gets ``per_window[p]``."""
    n = len(kernel)
    out = per_window.shape[per_window.ndim - n:]
    index = (Ellipsis,) + tuple(x for _ in range(n) for x in (slice(None), None))
    expanded = per_window[index]
    shape = per_window.shape[: per_window.ndim - n] + tuple(v for o, k in zip(out, kernel, strict=True)
                                                          for v in (o, k))
    return _untile(np.broadcast_to(expanded, shape), x_shape, kernel, out)


def max_tiles(x: np.ndarray, kernel: Sequence[int], out: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Maxima of the tiling windows and the flat tap index (row-major in the window) of each.

    Taps are visited in row-major order and a later tap wins only if strictly greater (or NaN),
    so ties keep the first maximum and a NaN window its last NaN, as the general path and
    PyTorch do.
    """
    n = len(kernel)
    view = _tiles(x, kernel, out)
    best = None
    arg = np.zeros(x.shape[: x.ndim - n] + tuple(out), dtype=np.int64)
    check_nan = x.dtype.kind == "f"
    for flat, tap in enumerate(np.ndindex(*kernel)):
        index = (Ellipsis,) + tuple(v for t in tap for v in (slice(None), t))
        value = view[index]
        if best is None:
            best = value.copy()
            continue
        take = value > best
        if check_nan:
            take |= np.isnan(value)
        np.copyto(best, value, where=take)
        arg[take] = flat
    return best, arg


def max_tiles_backward(grad_out: np.ndarray, arg: np.ndarray, x_shape: Sequence[int], kernel: Sequence[int]
                       ) -> np.ndarray:
    """Send each window's gradient to its chosen cell (windows do not overlap: no sums)."""
    n = len(kernel)
    out = grad_out.shape[grad_out.ndim - n:]
    shape = grad_out.shape[: grad_out.ndim - n] + tuple(v for o, k in zip(out, kernel, strict=True) for v in (o, k))
    grad = np.zeros(shape, dtype=grad_out.dtype)
    for flat, tap in enumerate(np.ndindex(*kernel)):
        index = (Ellipsis,) + tuple(v for t in tap for v in (slice(None), t))
        np.copyto(grad[index], grad_out, where=arg == flat)
    return _untile(grad, x_shape, kernel, out)
