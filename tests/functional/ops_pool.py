"""Registry entries for the pooling operators: max and average pooling, 1-D to 3-D and N-D, and
adaptive max pooling (its own loop reference, :func:`_adaptive_max_reference`, scans each box in
row-major order as PyTorch's CPU loop does).

Conventions for the generic tests:

- ``reference`` has the op's signature; it normalises the arguments and calls the loop
  references :func:`naive_max_pool` / :func:`naive_avg_pool` on a batched input.
- ``torch_ref`` returns ``None`` for a sample PyTorch cannot run: asymmetric ``(lo, hi)`` padding,
  padding above ``k // 2``, dilated average pooling, more than three spatial dims, or a 3-D
  average pooling whose kernel is larger than the input (a ceil-mode window hanging past the end,
  which torch's max pooling and 1-D/2-D average pooling accept).  The
  generic test skips the torch comparison for such a sample.  Integer inputs go through torch in
  float64 (its CPU max pooling has no integer kernels) and come back as ``int64``.
- Max pooling is exact on integers (``exact_int``); average pooling of integers is float64.
- Each op appears with ``method='auto'`` and pinned to ``'numpy'`` and (where Numba is
  importable) ``'numba'``, named ``max_pool2d[numpy]`` and so on: every kernel meets the loop
  reference, torch, the dtype rules and the gradient check.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from cnnlab.functional import _backend
from cnnlab.functional._adaptive_max import (
    adaptive_max_pool,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    adaptive_max_pool_backward,
)
from cnnlab.functional._avg_pool import (
    avg_pool,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    avg_pool_backward,
)
from cnnlab.functional._naive import naive_avg_pool, naive_max_pool
from cnnlab.functional._pool import (
    max_pool,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    max_pool_backward,
)
from tests.functional.opinfo import ErrorCase, OpInfo, Sample, as_pairs, as_tuple, rand, to_torch, torch

# (input shape, geometry kwargs).  Spatial sizes <= 7, batch <= 2, channels <= 3.  Every entry
# is valid; together they cover default stride, padding (int, per dim, (lo, hi) pairs, beyond
# half the kernel), dilation, ceil mode (including a dropped last window), unbatched inputs and
# the 1-cell edge case.
GEOMETRIES: dict[int, list[tuple[tuple[int, ...], dict[str, Any]]]] = {
    1: [
        ((2, 3, 7), dict(kernel_size=3)),
        ((2, 3, 7), dict(kernel_size=3, stride=2, padding=1)),
        ((3, 7), dict(kernel_size=2, stride=1)),
        ((2, 2, 6), dict(kernel_size=3, stride=2, ceil_mode=True)),
        ((2, 2, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        ((1, 2, 5), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
        ((2, 2, 7), dict(kernel_size=2, stride=1, dilation=3)),
        ((2, 2, 7), dict(kernel_size=3, stride=2, padding=((2, 0),))),
        ((3, 5), dict(kernel_size=(2,), padding=((0, 1),))),
        ((2, 2, 5), dict(kernel_size=3, stride=1, padding=2)),
        ((2, 2, 7), dict(kernel_size=2, stride=2, padding=1, dilation=2, ceil_mode=True)),
        ((1, 1, 1), dict(kernel_size=1)),
        ((2, 2, 6), dict(kernel_size=(4,), stride=(3,), ceil_mode=True)),
        ((2, 2, 3), dict(kernel_size=4, stride=3, ceil_mode=True)),  # one window, past the end
    ],
    2: [
        ((2, 3, 6, 6), dict(kernel_size=2)),
        ((2, 3, 7, 6), dict(kernel_size=3, stride=2, padding=1)),
        ((3, 5, 7), dict(kernel_size=(2, 3), stride=(1, 2))),
        ((2, 2, 7, 7), dict(kernel_size=3, stride=2, ceil_mode=True)),
        ((2, 2, 6, 7), dict(kernel_size=(3, 2), stride=2, padding=(1, 1), ceil_mode=True)),
        ((1, 2, 5, 5), dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)),
        ((2, 2, 7, 7), dict(kernel_size=2, stride=1, dilation=(2, 3))),
        ((2, 2, 6, 6), dict(kernel_size=3, stride=2, padding=((1, 0), (0, 2)))),
        ((2, 2, 5, 5), dict(kernel_size=2, stride=1, padding=(0, 1))),
        ((1, 2, 5, 6), dict(kernel_size=3, stride=2, padding=2)),
        ((2, 2, 7, 7), dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
        ((1, 1, 1, 1), dict(kernel_size=1)),
        ((3, 4, 4), dict(kernel_size=4)),
        ((2, 1, 7, 5), dict(kernel_size=(3, 2), stride=(2, 1), padding=((0, 1), (1, 1)),
                            ceil_mode=True)),
    ],
    3: [
        ((2, 2, 4, 4, 4), dict(kernel_size=2)),
        ((2, 2, 5, 5, 4), dict(kernel_size=3, stride=2, padding=1)),
        ((2, 4, 5, 5), dict(kernel_size=(2, 2, 3), stride=(1, 2, 1))),
        ((1, 2, 5, 5, 5), dict(kernel_size=2, stride=2, ceil_mode=True)),
        ((1, 2, 5, 4, 5), dict(kernel_size=2, stride=1, dilation=(2, 1, 2))),
        ((1, 2, 4, 5, 4), dict(kernel_size=(2, 3, 2), stride=2,
                               padding=((1, 0), (0, 2), (1, 1)))),
        ((1, 2, 5, 5, 5), dict(kernel_size=3, stride=2, padding=(1, 0, 1), dilation=(1, 1, 2),
                               ceil_mode=True)),
        ((1, 1, 1, 1, 1), dict(kernel_size=1)),
        ((1, 2, 2, 3, 3), dict(kernel_size=(3, 2, 4), stride=2, padding=(1, 0, 0),
                               ceil_mode=True)),
    ],
}

# Averaging options cycled over the geometries so that every count rule meets every n.
AVG_OPTIONS = [
    {},
    dict(count_include_pad=False),
    dict(divisor_override=3),
    dict(divisor_override=-2),  # PyTorch divides by a negative override as given
    dict(count_include_pad=True),
]


def _tuple_kernel(kwargs: dict[str, Any], n: int) -> dict[str, Any]:
    k = kwargs["kernel_size"]
    return {**kwargs, "kernel_size": (k,) * n if isinstance(k, int) else tuple(k)}


def _geometries(n: int | None) -> list[tuple[tuple[int, ...], dict[str, Any]]]:
    """Geometries for a fixed ``n``, or for the generic op (tuple kernels over n = 1..4, plus an
    int kernel on a batched input)."""
    if n is not None:
        return GEOMETRIES[n]
    chosen = []
    for dims, table in GEOMETRIES.items():
        chosen += [(shape, _tuple_kernel(kw, dims)) for shape, kw in table[1::3]]
    chosen.append(((2, 2, 5, 6), dict(kernel_size=2, stride=1, padding=1)))  # int kernel, n = 2
    chosen.append(((1, 2, 3, 3, 3, 3), dict(kernel_size=(2, 2, 2, 2), stride=1,
                                            padding=((0, 1), 0, 1, 0))))  # n = 4
    return chosen


def _samples(n: int | None, avg: bool) -> Callable[[np.dtype], Iterator[Sample]]:
    def samples(dtype: Any) -> Iterator[Sample]:
        for i, (shape, kwargs) in enumerate(_geometries(n)):
            kw = {**kwargs, **AVG_OPTIONS[i % len(AVG_OPTIONS)]} if avg else dict(kwargs)
            yield Sample((rand(shape, dtype, seed=100 + i),), kw, desc=f"geometry {i}")

    return samples


def _normalise(x: np.ndarray, n: int | None, kernel_size: Any, stride: Any, padding: Any,
               dilation: Any) -> tuple[Any, ...]:
    """Batched input, spatial-dim count and tuple arguments for the loop references."""
    x = np.asarray(x)
    if n is None:
        n = len(kernel_size) if isinstance(kernel_size, Sequence) else x.ndim - 2
    batched = x.ndim == n + 2
    kernel = as_tuple(kernel_size, n)
    strides = kernel if stride is None else as_tuple(stride, n)
    pads = as_pairs(padding, n)
    dil = as_tuple(dilation, n)
    return (x if batched else x[None]), batched, n, kernel, strides, pads, dil


def _max_reference(n: int | None) -> Callable[..., np.ndarray]:
    def reference(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        xb, batched, _, kernel, strides, pads, dil = _normalise(
            x, n, kernel_size, stride, padding, dilation)
        y = naive_max_pool(xb, kernel, strides, pads, dil, ceil_mode)
        return y if batched else y[0]

    return reference


def _avg_reference(n: int | None) -> Callable[..., np.ndarray]:
    def reference(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None, dilation=1):
        xb, batched, _, kernel, strides, pads, dil = _normalise(
            x, n, kernel_size, stride, padding, dilation)
        y = naive_avg_pool(xb, kernel, strides, pads, dil, ceil_mode, count_include_pad,
                           divisor_override)
        return y if batched else y[0]

    return reference


def _torch_args(x: Any, n: int | None, kernel_size: Any, stride: Any, padding: Any,
                dilation: Any) -> tuple[Any, ...] | None:
    """Torch-ready arguments, or None where torch does not support the call."""
    if torch is None:
        return None
    _, _, n, kernel, strides, pads, dil = _normalise(x, n, kernel_size, stride, padding, dilation)
    if n > 3 or any(lo != hi or lo > k // 2 for (lo, hi), k in zip(pads, kernel, strict=True)):
        return None
    x = np.asarray(x)
    xt = to_torch(x if x.dtype.kind == "f" else x.astype(np.float64))
    return xt, n, kernel, strides, tuple(lo for lo, _ in pads), dil


def _back(x: np.ndarray, y: Any) -> np.ndarray:
    out = y.detach().numpy()
    return out if np.asarray(x).dtype.kind == "f" else out.astype(np.int64)


def _torch_max(n: int | None) -> Callable[..., np.ndarray | None]:
    def torch_ref(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        args = _torch_args(x, n, kernel_size, stride, padding, dilation)
        if args is None:
            return None
        xt, dims, kernel, strides, pads, dil = args
        fn = {1: torch.nn.functional.max_pool1d, 2: torch.nn.functional.max_pool2d,
              3: torch.nn.functional.max_pool3d}[dims]
        return _back(x, fn(xt, kernel, strides, pads, dil, ceil_mode))

    return torch_ref


def _torch_avg(n: int | None) -> Callable[..., np.ndarray | None]:
    def torch_ref(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None, dilation=1):
        args = _torch_args(x, n, kernel_size, stride, padding, dilation)
        if args is None:
            return None
        xt, dims, kernel, strides, pads, dil = args
        if any(d != 1 for d in dil):
            return None
        F = torch.nn.functional
        if dims == 1:  # torch's avg_pool1d has no divisor_override: pool an (L) as a (1, L)
            y = F.avg_pool2d(xt.unsqueeze(-2), (1, *kernel), (1, *strides), (0, *pads),
                             ceil_mode, count_include_pad, divisor_override)
            return y.squeeze(-2).numpy()
        if dims == 3 and any(k > size for k, size in zip(kernel, xt.shape[-3:], strict=True)):
            return None  # torch's avg_pool3d (only) refuses an input smaller than the kernel
        fn = {2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
        return fn(xt, kernel, strides, pads, ceil_mode, count_include_pad,
                  divisor_override).numpy()

    return torch_ref


def _shape(n: int | None, batched: bool = True, size: int = 4) -> tuple[int, ...]:
    dims = 2 if n is None else n
    return ((2,) if batched else ()) + (3,) + (size,) * dims


def _errors(name: str, n: int | None, avg: bool) -> Callable[[], list[ErrorCase]]:
    def errors() -> list[ErrorCase]:
        dims = 2 if n is None else n
        x = rand(_shape(n), np.float64, seed=1)
        k = (2,) * dims if n is None else 2
        op = rf"^{name}: "
        cases = [
            ErrorCase((rand((3,) * (dims + 3), np.float64, 2),), dict(kernel_size=k), ValueError,
                      op + r"x must be .*got shape"),
            ErrorCase((x,), dict(kernel_size=0 if n else (0,) * dims), ValueError,
                      op + r"kernel_size must be positive"),
            ErrorCase((x,), dict(kernel_size=k, stride=0), ValueError, op + r"stride must be"),
            ErrorCase((x,), dict(kernel_size=k, dilation=-1), ValueError,
                      op + r"dilation must be positive"),
            ErrorCase((x,), dict(kernel_size=k, padding=-1), ValueError,
                      op + r"padding must be non-negative"),
            ErrorCase((x,), dict(kernel_size=k, stride=2, padding=2), ValueError,
                      op + r"padding .* no input cell"),
            ErrorCase((x,), dict(kernel_size=(9,) * dims), ValueError,
                      op + r"kernel is larger than the padded input"),
            ErrorCase((np.zeros((2, 3) + (0,) * dims),), dict(kernel_size=k), ValueError,
                      op + r"x must not be empty in dim 2 \(only the batch dim may be 0\)"),
            ErrorCase((np.full(_shape(n), "a"),), dict(kernel_size=k), TypeError,
                      op + r"x must have a boolean, integer or floating dtype"),
            ErrorCase((x,), dict(kernel_size=2.0 if n else (2.0,) * dims), TypeError,
                      op + r"kernel_size must be an int"),
            ErrorCase((x,), dict(kernel_size=k, ceil_mode=1), TypeError,
                      op + r"ceil_mode must be a bool"),
            ErrorCase((x,), dict(kernel_size=k, padding=((1, 2, 3),) * dims), ValueError,
                      op + r"padding pairs must be \(lo, hi\)"),
        ]
        if n is not None:
            cases.append(ErrorCase((x,), dict(kernel_size=(2,) * (dims + 1)), ValueError,
                                   op + rf"kernel_size must be an int or a tuple of {dims} ints"))
        if avg:
            cases += [
                ErrorCase((x,), dict(kernel_size=k, divisor_override=0), ValueError,
                          op + r"divisor_override must be a non-zero int, got 0"),
                ErrorCase((x,), dict(kernel_size=k, divisor_override=1.5), TypeError,
                          op + r"divisor_override must be None or an int"),
                ErrorCase((x,), dict(kernel_size=k, divisor_override=True), TypeError,
                          op + r"divisor_override must be None or an int"),
                ErrorCase((x,), dict(kernel_size=k, count_include_pad="yes"), TypeError,
                          op + r"count_include_pad must be a bool"),
            ]
        else:
            cases.append(ErrorCase((x,), dict(kernel_size=k, return_indices=None), TypeError,
                                   op + r"return_indices must be a bool"))
        return cases

    return errors


def _max_backward(n: int | None) -> Callable[..., np.ndarray]:
    """``max_pool_backward`` infers n like the generic op; a wrapper fixes it via the kernel."""
    def backward(grad_out, x, kernel_size, *args, **kwargs):
        kernel = kernel_size if n is None or not isinstance(kernel_size, int) else (kernel_size,) * n
        return max_pool_backward(grad_out, x, kernel, *args, **kwargs)

    return backward


def _avg_backward(n: int | None) -> Callable[..., np.ndarray]:
    def backward(grad_out, x, kernel_size, *args, **kwargs):
        kernel = kernel_size if n is None or not isinstance(kernel_size, int) else (kernel_size,) * n
        return avg_pool_backward(grad_out, x, kernel, *args, **kwargs)

    return backward


def _max_info(name: str, op: Callable[..., Any], n: int | None, method: str | None = None) -> OpInfo:
    """The registry entry of a max pooling op; with ``method``, forward and backward are pinned to
    that method (the entry's name says which)."""
    pin = {} if method is None else {"method": method}
    return OpInfo(name=name if method is None else f"{name}[{method}]",
                  op=functools.partial(op, **pin), backward=functools.partial(_max_backward(n), **pin),
                  reference=_max_reference(n), samples=_samples(n, avg=False),
                  errors=_errors(name, n, avg=False), n_diff=1, exact_int=True, torch_ref=_torch_max(n))


def _avg_info(name: str, op: Callable[..., Any], n: int | None, method: str | None = None) -> OpInfo:
    pin = {} if method is None else {"method": method}
    return OpInfo(name=name if method is None else f"{name}[{method}]",
                  op=functools.partial(op, **pin), backward=functools.partial(_avg_backward(n), **pin),
                  reference=_avg_reference(n), samples=_samples(n, avg=True),
                  errors=_errors(name, n, avg=True), n_diff=1, exact_int=False, torch_ref=_torch_avg(n))


# Every op with the automatic choice, and pinned to each method: 'numpy' always, 'numba' where
# Numba is importable (CI runs the suite with and without it).
METHODS: list[str | None] = [None, "numpy"] + (["numba"] if _backend.numba_available() else [])

OPS: list[OpInfo] = [
    info
    for method in METHODS
    for info in (
        _max_info("max_pool", max_pool, None, method),
        _max_info("max_pool1d", max_pool1d, 1, method),
        _max_info("max_pool2d", max_pool2d, 2, method),
        _max_info("max_pool3d", max_pool3d, 3, method),
        _avg_info("avg_pool", avg_pool, None, method),
        _avg_info("avg_pool1d", avg_pool1d, 1, method),
        _avg_info("avg_pool2d", avg_pool2d, 2, method),
        _avg_info("avg_pool3d", avg_pool3d, 3, method),
    )
]


# Adaptive max pooling: (input shape, output_size), for a fixed n and for the generic op (whose n
# is len(output_size), or x.ndim - 2 for an int).  Sizes that divide and that do not, windows that
# overlap (output larger than the input), None (the dim kept), 1 (global), unbatched inputs.
ADAPTIVE_GEOMETRIES: dict[int | None, list[tuple[tuple[int, ...], Any]]] = {
    1: [((2, 3, 7), 3), ((2, 3, 8), 4), ((3, 5), (7,)), ((2, 2, 6), 1), ((1, 2, 5), (None,))],
    2: [((2, 3, 7, 5), (3, 2)), ((2, 2, 6, 6), 3), ((3, 5, 4), (2, None)), ((2, 2, 3, 4), (5, 6)),
        ((1, 2, 5, 7), 1)],
    3: [((1, 2, 4, 5, 3), (2, 3, 2)), ((2, 2, 3, 3, 3), 1), ((2, 3, 4, 4), (2, 2, 5))],
    None: [((2, 2, 7), (3,)), ((2, 2, 5, 6), (2, 4)), ((2, 2, 5, 6), 3), ((1, 2, 3, 4, 3), (2, None, 2)),
           ((1, 1, 3, 3, 3, 4), (2, 2, 2, 3))],
}


def _adaptive_dims(x: np.ndarray, n: int | None, output_size: Any) -> int:
    if n is not None:
        return n
    return len(output_size) if isinstance(output_size, (tuple, list)) else np.ndim(x) - 2


def _adaptive_max_reference(n: int | None) -> Callable[..., np.ndarray]:
    """The loop reference: each output cell scans its box in row-major order, keeping the first
    maximum, or the last NaN (PyTorch's CPU loop)."""
    def reference(x, output_size, return_indices=False):
        x = np.asarray(x)
        dims = _adaptive_dims(x, n, output_size)
        batched = x.ndim == dims + 2
        xb = x if batched else x[None]
        spatial = xb.shape[2:]
        wanted = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * dims
        sizes = tuple(s if o is None else int(o) for s, o in zip(spatial, wanted, strict=True))
        y = np.zeros(xb.shape[:2] + sizes, np.float64 if x.dtype.kind == "f" else np.int64)
        for b, c in itertools.product(range(xb.shape[0]), range(xb.shape[1])):
            for cell in itertools.product(*(range(o) for o in sizes)):
                ranges = [range(i * s // o, -(-(i + 1) * s // o)) for i, s, o in zip(cell, spatial, sizes,
                                                                                    strict=True)]
                best = None
                for at in itertools.product(*ranges):
                    v = xb[(b, c, *at)]
                    if best is None or v > best or v != v:  # (v != v: a NaN, kept if it is the last)
                        best = v
                y[(b, c, *cell)] = best
        return y if batched else y[0]

    return reference


def _torch_adaptive_max(n: int | None) -> Callable[..., np.ndarray | None]:
    def torch_ref(x, output_size, return_indices=False):
        if torch is None:
            return None
        x = np.asarray(x)
        dims = _adaptive_dims(x, n, output_size)
        if dims > 3 or (dims == 1 and isinstance(output_size, (tuple, list)) and None in output_size):
            return None  # (torch's 1-d op refuses None: "must be tuple of ints")
        fn = {1: torch.nn.functional.adaptive_max_pool1d, 2: torch.nn.functional.adaptive_max_pool2d,
              3: torch.nn.functional.adaptive_max_pool3d}[dims]
        xt = to_torch(x if x.dtype.kind == "f" else x.astype(np.float64))
        return _back(x, fn(xt, output_size))

    return torch_ref


def _adaptive_samples(n: int | None) -> Callable[[np.dtype], Iterator[Sample]]:
    def samples(dtype: Any) -> Iterator[Sample]:
        for i, (shape, output_size) in enumerate(ADAPTIVE_GEOMETRIES[n]):
            yield Sample((rand(shape, dtype, seed=300 + i),), dict(output_size=output_size), desc=f"geometry {i}")

    return samples


def _adaptive_errors(name: str, n: int | None) -> Callable[[], list[ErrorCase]]:
    def errors() -> list[ErrorCase]:
        dims = 2 if n is None else n
        x = rand(_shape(n), np.float64, seed=1)
        op = rf"^{name}: "
        cases = [
            ErrorCase((rand((3,) * (dims + 3), np.float64, 2),), dict(output_size=(2,) * dims), ValueError,
                      op + r"x must be .*got shape"),
            ErrorCase((x,), dict(output_size=(0,) * dims), ValueError, op + r"output_size must be positive"),
            ErrorCase((x,), dict(output_size=(2.0,) * dims), TypeError, op + r"output_size must be ints"),
            ErrorCase((x,), dict(output_size=(2,) * dims, return_indices=1), TypeError,
                      op + r"return_indices must be a bool, got 1"),
            ErrorCase((np.zeros((2, 3) + (0,) * dims),), dict(output_size=(2,) * dims), ValueError,
                      op + r"x must have non-zero channels and spatial sizes"),
            ErrorCase((np.full(_shape(n), "a"),), dict(output_size=(2,) * dims), TypeError, op + r"x must"),
        ]
        if n is not None:
            cases.append(ErrorCase((x,), dict(output_size=(2,) * (dims + 1)), ValueError,
                                   op + rf"output_size must be an int or a tuple of {dims} entries"))
        return cases

    return errors


def _adaptive_max_info(name: str, op: Callable[..., Any], n: int | None) -> OpInfo:
    def backward(grad_out, x, output_size, return_indices=False):
        if n is not None and not isinstance(output_size, (tuple, list)):
            output_size = (output_size,) * n  # (the generic backward takes n from a tuple)
        return adaptive_max_pool_backward(grad_out, x, output_size)

    return OpInfo(name=name, op=op, backward=backward, reference=_adaptive_max_reference(n),
                  samples=_adaptive_samples(n), errors=_adaptive_errors(name, n), n_diff=1, exact_int=True,
                  torch_ref=_torch_adaptive_max(n))


OPS += [
    _adaptive_max_info("adaptive_max_pool", adaptive_max_pool, None),
    _adaptive_max_info("adaptive_max_pool1d", adaptive_max_pool1d, 1),
    _adaptive_max_info("adaptive_max_pool2d", adaptive_max_pool2d, 2),
    _adaptive_max_info("adaptive_max_pool3d", adaptive_max_pool3d, 3),
]
