"""Registry entries for the convolution family: correlate, convolve, conv1d/2d/3d (and the
generic conv), conv_transpose1d/2d/3d."""

from __future__ import annotations

import itertools

import numpy as np

from cnnlab.functional import _naive
from cnnlab.functional._conv import conv, conv1d, conv2d, conv3d, conv_backward
from cnnlab.functional._conv_transpose import (
    conv_transpose,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    conv_transpose_backward,
)
from cnnlab.functional._correlate import convolve, convolve_backward, correlate, correlate_backward
from tests.functional.opinfo import (
    ErrorCase,
    OpInfo,
    Sample,
    as_pairs,
    as_tuple,
    rand,
    scipy_signal,
    to_torch,
    torch,
)

# ------------------------------------------------------------------ correlate / convolve


def _signal_samples(dtype: np.dtype):
    seed = itertools.count()
    shapes = [((7,), (3,)), ((6,), (6,)), ((3,), (5,)), ((5, 4), (2, 3)), ((4, 4), (3, 2)),
              ((2, 3), (3, 4)), ((4, 3, 3), (2, 2, 2))]
    for (xs, ks), mode in itertools.product(shapes, ("valid", "same", "full")):
        x, k = rand(xs, dtype, next(seed)), rand(ks, dtype, next(seed))
        yield Sample((x, k), {"mode": mode}, f"{xs}*{ks}")
    for mode in ("valid", "same", "full"):
        yield Sample((rand((9, 8), dtype, next(seed)), rand((3, 2), dtype, next(seed))),
                     {"mode": mode, "stride": 2, "dilation": (2, 1)}, "stride/dilation")
        yield Sample((rand((8,), dtype, next(seed)), rand((2,), dtype, next(seed))),
                     {"mode": mode, "stride": 3, "dilation": 3}, "1d stride/dilation")


def _signal_ref(flip: bool):
    def ref(x, k, mode="valid", stride=1, dilation=1):
        x, k = np.asarray(x), np.asarray(k)
        if flip:
            k = k[(slice(None, None, -1),) * k.ndim]
        return _naive.naive_correlate(x, k, mode, as_tuple(stride, x.ndim), as_tuple(dilation, x.ndim))
    return ref


def _signal_errors(name: str):
    def errors():
        x, k = np.ones((4, 4)), np.ones((2, 2))
        return [
            ErrorCase((np.ones(4), k), {}, ValueError, f"{name}: x and k must have the same number of dims"),
            ErrorCase((x, k), {"mode": "middle"}, ValueError, f"{name}: mode must be one of"),
            ErrorCase((x, k), {"mode": 3}, TypeError, f"{name}: mode must be one of"),
            ErrorCase((x, k), {"stride": 0}, ValueError, f"{name}: stride must be positive"),
            ErrorCase((x, k), {"dilation": (1, 1, 1)}, ValueError, f"{name}: dilation must be an int or a tuple of 2"),
            ErrorCase((x, k), {"stride": 1.5}, TypeError, f"{name}: stride must be an int"),
            ErrorCase((np.ones((0, 3)), k), {}, ValueError, f"{name}: x must not be empty"),
            ErrorCase((np.array([["a", "b"]]), k), {}, TypeError,
                      f"{name}: x must have a boolean, integer or floating"),
            ErrorCase((x, np.ones((2, 2), dtype=complex)), {}, TypeError, f"{name}: k must have a boolean"),
            ErrorCase(([[1, 2], [3]], k), {}, ValueError, f"{name}: x must be a rectangular"),
            ErrorCase((np.ones((4, 2)), np.ones((2, 3))), {}, ValueError, f"{name}: in 'valid' mode"),
            ErrorCase(("abc", k), {}, TypeError, f"{name}: x must be a numeric array, got str"),
        ]
    return errors


def _scipy(fn_name: str):
    def ref(x, k, mode="valid", stride=1, dilation=1):
        return getattr(scipy_signal, fn_name)(x, k, mode=mode, method="direct")
    return ref


def _signal_scipy_ok(s: Sample) -> bool:
    return s.kwargs.get("stride", 1) == 1 and s.kwargs.get("dilation", 1) == 1


# ------------------------------------------------------------------ conv


def _conv_samples(n: int):
    """Samples over shape x stride x padding x dilation x groups x padding_mode, batched or not."""

    def samples(dtype: np.dtype):
        seed = itertools.count()
        sp = {1: (7,), 2: (5, 6), 3: (4, 3, 4)}[n]
        k = {1: (3,), 2: (3, 2), 3: (2, 2, 1)}[n]
        paddings = [0, 1, tuple(range(1, n + 1)), tuple((i % 2, (i + 1) % 3) for i in range(n)),
                    "same", "valid"]
        configs = [
            # (batch, groups, cin_per_group, out_per_group, stride, dilation, padding_mode)
            (2, 1, 2, 2, 1, 1, "zeros"),
            (1, 2, 1, 2, 2, 1, "zeros"),
            (None, 1, 1, 1, 1, 2, "zeros"),
            (2, 3, 1, 1, (1, 2, 1)[:n], 1, "zeros"),
            (1, 1, 2, 1, 1, 1, "reflect"),
            (None, 2, 1, 1, 2, 1, "replicate"),
            (1, 1, 1, 2, 1, 1, "circular"),
        ]
        for (batch, groups, cg, og, stride, dilation, mode), padding in itertools.product(configs, paddings):
            if mode != "zeros" and padding == "same" and stride != 1:
                continue
            shape = (groups * cg, *sp) if batch is None else (batch, groups * cg, *sp)
            x = rand(shape, dtype, next(seed))
            w = rand((groups * og, cg, *k), dtype, next(seed))
            b = rand((groups * og,), dtype, next(seed)) if next(seed) % 2 else None
            kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
                      "padding_mode": mode}
            yield Sample((x, w, b), kwargs, f"{n}d {mode} pad={padding}")
        # 1x1 kernels (a path of their own: one batched product, no im2col), strided or padded too
        for batch, groups, cg, og, stride, padding in [(2, 1, 3, 2, 1, 0), (None, 2, 2, 3, 1, 1),
                                                       (3, 3, 1, 2, 1, 0), (1, 1, 2, 2, 2, 0)]:
            shape = (groups * cg, *sp) if batch is None else (batch, groups * cg, *sp)
            x = rand(shape, dtype, next(seed))
            w = rand((groups * og, cg) + (1,) * n, dtype, next(seed))
            b = rand((groups * og,), dtype, next(seed)) if groups != 3 else None
            yield Sample((x, w, b), {"stride": stride, "padding": padding, "groups": groups}, f"{n}d 1x1")
        # same with stride > 1 (SAME_UPPER), odd and even sizes
        for size in (5, 6):
            x = rand((1, 1) + (size,) * n, dtype, next(seed))
            w = rand((2, 1) + (2,) * n, dtype, next(seed))
            yield Sample((x, w, None), {"stride": 2, "padding": "same"}, "same stride 2")
    return samples


def _conv_ref(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    x, weight = np.asarray(x), np.asarray(weight)
    n = weight.ndim - 2
    unbatched = x.ndim == n + 1
    xb = x[None] if unbatched else x
    stride = as_tuple(stride, n)
    dilation = as_tuple(dilation, n)
    if padding == "same":  # the reference's own 'same' rule, not the op's
        pads = _naive.naive_same_padding(xb.shape[2:], weight.shape[2:], stride, dilation)
    elif padding == "valid":
        pads = ((0, 0),) * n
    else:
        pads = as_pairs(padding, n)
    dtype = np.int64 if x.dtype.kind in "biu" and weight.dtype.kind in "biu" else np.result_type(x, weight)
    y = _naive.naive_conv(xb.astype(dtype), weight.astype(dtype), None if bias is None else np.asarray(bias),
                          stride, pads, dilation, groups, padding_mode)
    return y[0] if unbatched else y


def _torch_conv(n: int):
    def ref(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
        if x.dtype.kind != "f":
            return None
        pads = padding
        if isinstance(padding, tuple) and any(isinstance(p, tuple) for p in padding):
            return None  # torch has no asymmetric padding
        if padding == "same" and (stride != 1 or padding_mode != "zeros"):
            return None  # torch refuses 'same' with stride > 1
        if padding_mode != "zeros" and isinstance(padding, str):
            return None
        cls = [None, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d][n]
        layer = cls(weight.shape[1] * groups, weight.shape[0], weight.shape[2:], stride, pads, dilation,
                    groups, bias is not None, padding_mode, dtype=to_torch(x).dtype)
        with torch.no_grad():
            layer.weight.copy_(to_torch(weight))
            if bias is not None:
                layer.bias.copy_(to_torch(bias))
            return layer(to_torch(x)).numpy()
    return ref


def _conv_errors(name: str, fn_n: int | None):
    n = fn_n or 2

    def errors():
        x = np.ones((1, 4) + (5,) * n)
        w = np.ones((2, 4) + (3,) * n)
        return [
            ErrorCase((np.ones((5,) * n), w), {}, ValueError, rf"{name}: x must be {n + 1}-D or {n + 2}-D"),
            ErrorCase((x, np.ones((2, 2) + (3,) * n)), {"groups": 3}, ValueError,
                      f"{name}: in_channels 4 is not divisible by groups 3"),
            ErrorCase((x, np.ones((3, 2) + (3,) * n)), {"groups": 2}, ValueError,
                      f"{name}: out_channels 3 is not divisible by groups 2"),
            ErrorCase((x, np.ones((2, 3) + (3,) * n)), {}, ValueError, f"{name}: weight expects 3 input channels"),
            ErrorCase((x, w), {"stride": 0}, ValueError, f"{name}: stride must be positive integers, got 0"),
            ErrorCase((x, w), {"stride": -1}, ValueError, f"{name}: stride must be positive"),
            ErrorCase((x, w), {"dilation": 0}, ValueError, f"{name}: dilation must be positive"),
            ErrorCase((x, w), {"padding": -1}, ValueError, f"{name}: padding must be non-negative, got -1"),
            ErrorCase((x, w), {"padding": "full"}, ValueError, f"{name}: padding must be one of"),
            ErrorCase((x, w), {"padding": 1.0}, TypeError, f"{name}: padding must be an int"),
            ErrorCase((x, w), {"groups": 0}, ValueError, f"{name}: groups must be a positive int"),
            ErrorCase((x, w), {"groups": 1.5}, TypeError, f"{name}: groups must be a positive int"),
            ErrorCase((x, w), {"padding_mode": "mirror"}, ValueError, f"{name}: padding_mode must be one of"),
            ErrorCase((x, w), {"padding_mode": "reflect", "padding": 5}, ValueError,
                      f"{name}: padding_mode 'reflect' needs padding <= 4"),
            ErrorCase((x, np.ones((2, 4) + (7,) * n)), {}, ValueError,
                      f"{name}: kernel is larger than the padded input in spatial dim 0: effective kernel size 7"),
            ErrorCase((x, w), {"dilation": 3}, ValueError, f"{name}: kernel is larger than the padded input"),
            ErrorCase((x, w, np.ones(3)), {}, ValueError, rf"{name}: bias must have shape \(2,\)"),
            ErrorCase((np.ones((1, 4) + (0,) * n), w), {}, ValueError,
                      rf"{name}: x must not be empty in dim 2 \(only the batch dim may be 0\)"),
            ErrorCase((x.astype(str), w), {}, TypeError, f"{name}: x must have a boolean, integer or floating dtype"),
            ErrorCase((x, w.astype(object)), {}, TypeError, f"{name}: weight must have a boolean"),
            ErrorCase(([1, 2], w), {}, ValueError, f"{name}: x must be"),
            ErrorCase((None, w), {}, TypeError, f"{name}: x must be a numeric array, got NoneType"),
        ]
    return errors


def _conv_entry(name: str, fn, n: int, generic: bool) -> OpInfo:
    return OpInfo(
        name=name, op=fn, backward=conv_backward, reference=_conv_ref, samples=_conv_samples(n),
        errors=_conv_errors(name, None if generic else n), n_diff=3, exact_int=True,
        torch_ref=_torch_conv(n) if torch is not None else None,
    )


# ------------------------------------------------------------------ conv_transpose


def _transpose_samples(n: int):
    def samples(dtype: np.dtype):
        seed = itertools.count()
        sp = {1: (4,), 2: (3, 4), 3: (2, 3, 2)}[n]
        k = {1: (3,), 2: (2, 3), 3: (2, 2, 2)}[n]
        configs = [
            # batch, groups, cin_per_group, out_per_group, stride, padding, output_padding, dilation
            (2, 1, 2, 2, 1, 0, 0, 1),
            (1, 2, 1, 2, 2, 1, 1, 1),
            (None, 1, 1, 1, 3, 0, 2, 1),
            (1, 1, 2, 1, 2, tuple((i % 2, (i + 1) % 2) for i in range(n)), 0, 2),
            (2, 3, 1, 1, 1, 1, 0, 2),
            (1, 1, 1, 1, 2, 0, 1, 3),
        ]
        for batch, groups, cg, og, stride, padding, opad, dilation in configs:
            shape = (groups * cg, *sp) if batch is None else (batch, groups * cg, *sp)
            x = rand(shape, dtype, next(seed))
            w = rand((groups * cg, og, *k), dtype, next(seed))
            b = rand((groups * og,), dtype, next(seed)) if next(seed) % 2 else None
            kwargs = {"stride": stride, "padding": padding, "output_padding": opad, "groups": groups,
                      "dilation": dilation}
            yield Sample((x, w, b), kwargs, f"{n}d transpose")
    return samples


def _transpose_ref(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    x, weight = np.asarray(x), np.asarray(weight)
    n = weight.ndim - 2
    unbatched = x.ndim == n + 1
    xb = x[None] if unbatched else x
    dtype = np.int64 if x.dtype.kind in "biu" and weight.dtype.kind in "biu" else np.result_type(x, weight)
    y = _naive.naive_conv_transpose(
        xb.astype(dtype), weight.astype(dtype), None if bias is None else np.asarray(bias),
        as_tuple(stride, n), as_pairs(padding, n), as_tuple(output_padding, n), groups, as_tuple(dilation, n))
    return y[0] if unbatched else y


def _torch_transpose(n: int):
    def ref(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        if x.dtype.kind != "f" or (isinstance(padding, tuple) and isinstance(padding[0], tuple)):
            return None
        fn = [None, torch.nn.functional.conv_transpose1d, torch.nn.functional.conv_transpose2d,
              torch.nn.functional.conv_transpose3d][n]
        return fn(to_torch(x), to_torch(weight), to_torch(bias), stride, padding, output_padding, groups,
                  dilation).numpy()
    return ref


def _transpose_errors(name: str, fn_n: int | None):
    n = fn_n or 2

    def errors():
        x = np.ones((1, 4) + (3,) * n)
        w = np.ones((4, 2) + (3,) * n)
        return [
            ErrorCase((np.ones((3,) * n), w), {}, ValueError, f"{name}: x must be"),
            ErrorCase((x, np.ones((3, 2) + (3,) * n)), {}, ValueError, f"{name}: weight's first dim must equal"),
            ErrorCase((x, w), {"groups": 3}, ValueError, f"{name}: in_channels 4 is not divisible by groups 3"),
            ErrorCase((x, w), {"stride": 0}, ValueError, f"{name}: stride must be positive"),
            ErrorCase((x, w), {"output_padding": 1}, ValueError, f"{name}: output_padding must be smaller"),
            ErrorCase((x, w), {"output_padding": -1}, ValueError, f"{name}: output_padding must be >= 0"),
            ErrorCase((x, w), {"padding": -2}, ValueError, f"{name}: padding must be non-negative"),
            ErrorCase((x, w), {"padding": 4}, ValueError, f"{name}: padding \\(4, 4\\) is too large"),
            ErrorCase((x, w, np.ones(5)), {}, ValueError, f"{name}: bias must have shape"),
            ErrorCase((x.astype(complex), w), {}, TypeError, f"{name}: x must have a boolean"),
        ]
    return errors


def _transpose_entry(name: str, fn, n: int, generic: bool) -> OpInfo:
    return OpInfo(
        name=name, op=fn, backward=conv_transpose_backward, reference=_transpose_ref,
        samples=_transpose_samples(n), errors=_transpose_errors(name, None if generic else n), n_diff=3,
        exact_int=True, torch_ref=_torch_transpose(n) if torch is not None else None,
    )


OPS: list[OpInfo] = [
    OpInfo("correlate", correlate, correlate_backward, _signal_ref(False), _signal_samples,
           _signal_errors("correlate"), n_diff=2, exact_int=True,
           scipy_ref=_scipy("correlate") if scipy_signal is not None else None, scipy_ok=_signal_scipy_ok),
    OpInfo("convolve", convolve, convolve_backward, _signal_ref(True), _signal_samples,
           _signal_errors("convolve"), n_diff=2, exact_int=True,
           scipy_ref=_scipy("convolve") if scipy_signal is not None else None, scipy_ok=_signal_scipy_ok),
    _conv_entry("conv1d", conv1d, 1, False),
    _conv_entry("conv2d", conv2d, 2, False),
    _conv_entry("conv3d", conv3d, 3, False),
    _conv_entry("conv", conv, 2, True),
    _transpose_entry("conv_transpose1d", conv_transpose1d, 1, False),
    _transpose_entry("conv_transpose2d", conv_transpose2d, 2, False),
    _transpose_entry("conv_transpose3d", conv_transpose3d, 3, False),
    _transpose_entry("conv_transpose", conv_transpose, 1, True),
]


def _method_entry(name: str, fn, n: int, method: str) -> OpInfo:
    """The same op pinned to one of its methods (``method=``), checked like every entry."""
    import functools

    info = _conv_entry(name, functools.partial(fn, method=method), n, False)
    info.name = f"{name}[{method}]"
    info.backward = functools.partial(conv_backward, method=method)
    return info


OPS += [
    _method_entry("conv1d", conv1d, 1, "gemm"),
    _method_entry("conv1d", conv1d, 1, "direct"),
    _method_entry("conv2d", conv2d, 2, "gemm"),
    _method_entry("conv2d", conv2d, 2, "direct"),
    _method_entry("conv3d", conv3d, 3, "direct"),
    _method_entry("conv1d", conv1d, 1, "implicit"),
    _method_entry("conv2d", conv2d, 2, "implicit"),
    _method_entry("conv3d", conv3d, 3, "implicit"),
    _method_entry("conv1d", conv1d, 1, "winograd"),
    _method_entry("conv2d", conv2d, 2, "winograd"),
    _method_entry("conv1d", conv1d, 1, "fft"),
    _method_entry("conv2d", conv2d, 2, "fft"),
    _method_entry("conv3d", conv3d, 3, "fft"),
]


def _signal_method_entry(name: str, fn, backward, method: str) -> OpInfo:
    """correlate/convolve pinned to one ``method=``.  The FFT entry refuses integers (its result
    would be rounded), so it is not an exact-integer entry, adds that refusal to its error cases,
    and is compared with SciPy in test_correlate_methods.py (float tolerances) instead of by the
    generic test, which also feeds integers."""
    import functools

    base = _signal_errors(name)
    exact = method != "fft"

    def errors():
        cases = list(base())
        if not exact:
            ints = np.arange(16).reshape(4, 4), np.ones((2, 2), dtype=np.int64)
            cases.append(ErrorCase(ints, {}, ValueError, f"{name}: method 'fft' is inexact"))
        return cases

    return OpInfo(
        f"{name}[{method}]", functools.partial(fn, method=method), functools.partial(backward, method=method),
        _signal_ref(name == "convolve"), _signal_samples, errors, n_diff=2, exact_int=exact,
        scipy_ref=_scipy(name) if scipy_signal is not None and exact else None, scipy_ok=_signal_scipy_ok,
    )


OPS += [
    _signal_method_entry("correlate", correlate, correlate_backward, "direct"),
    _signal_method_entry("correlate", correlate, correlate_backward, "fft"),
    _signal_method_entry("convolve", convolve, convolve_backward, "direct"),
    _signal_method_entry("convolve", convolve, convolve_backward, "fft"),
]
