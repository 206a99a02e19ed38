"""Every layer against two oracles.

Always: the forward output against a reference built from the functional loop references
(``cnnlab.functional._naive``, which import nothing from cnnlab) and formulas written out here,
with the layer's own weights (the gradients of every case are checked by central differences in
test_gradcheck.py, the batch-norm running statistics in test_batchnorm.py).

With PyTorch installed: same weights (loaded from the torch layer's state_dict), same input;
forward outputs, input gradients, parameter gradients and buffers must agree (float32 to rtol
1e-5, float64 to rtol 1e-10)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor
from cnnlab.functional import _naive

from .cases import CASES
from .helpers import close, needs_torch, to_numpy, torch, torch_dtype


def _tuple(value, n):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _pairs(padding, n):
    return tuple(p if isinstance(p, tuple) else (p, p) for p in _tuple(padding, n))


def _same_pads(kernel, dilation):
    """PyTorch's 'same' for stride 1: total d*(k-1), the odd cell at the end."""
    return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation, strict=True))


def _adaptive(x, out, reduce=np.mean):
    n = len(out)
    sizes = x.shape[-n:]
    out = tuple(s if o is None else o for s, o in zip(sizes, out, strict=True))
    y = np.zeros(x.shape[:-n] + out)
    for cell in itertools.product(*(range(o) for o in out)):
        box = tuple(slice(i * s // o, -(-(i + 1) * s // o)) for i, s, o in zip(cell, sizes, out, strict=True))
        y[(..., *cell)] = reduce(x[(..., *box)], axis=tuple(range(-n, 0)))
    return y


def _batched(unbatched_ndim, x, fn):
    """Run ``fn`` on a batched input, adding and removing the batch axis for unbatched ones."""
    if x.ndim == unbatched_ndim:
        return fn(x[None])[0]
    return fn(x)


def reference_forward(layer, x):  # noqa: C901 - one branch per layer type
    """The layer's output from its definition, in float64."""
    x = np.asarray(x, dtype=np.float64)
    name = type(layer).__name__
    if isinstance(layer, nn.Sequential):
        for child in layer:
            x = reference_forward(child, x)
        return x
    if name.startswith(("Conv1d", "Conv2d", "Conv3d")):
        n = int(name[4])
        w = layer.weight.data.astype(np.float64)
        b = None if layer.bias is None else layer.bias.data.astype(np.float64)
        if layer.padding == "same":
            pads = _same_pads(layer.kernel_size, layer.dilation)
        elif layer.padding == "valid":
            pads = ((0, 0),) * n
        else:
            pads = _pairs(layer.padding, n)
        return _batched(n + 1, x, lambda xb: _naive.naive_conv(xb, w, b, layer.stride, pads, layer.dilation,
                                                                layer.groups, layer.padding_mode))
    if name.startswith("ConvTranspose"):
        n = int(name[13])
        w = layer.weight.data.astype(np.float64)
        b = None if layer.bias is None else layer.bias.data.astype(np.float64)
        return _batched(n + 1, x, lambda xb: _naive.naive_conv_transpose(
            xb, w, b, layer.stride, _pairs(layer.padding, n), layer.output_padding, layer.groups, layer.dilation))
    if name.startswith(("MaxPool", "AvgPool")):
        n = int(name[7])
        kernel = _tuple(layer.kernel_size, n)
        common = (kernel, _tuple(layer.stride, n), _pairs(layer.padding, n))
        if name.startswith("MaxPool"):
            return _naive.naive_max_pool(x, *common, _tuple(layer.dilation, n), layer.ceil_mode)
        return _naive.naive_avg_pool(x, *common, (1,) * n, layer.ceil_mode, layer.count_include_pad,
                                     layer.divisor_override)
    if name.startswith("AdaptiveAvgPool"):
        n = int(name[15])
        return _adaptive(x, _tuple(layer.output_size, n))
    if name.startswith("AdaptiveMaxPool"):
        n = int(name[15])
        return _adaptive(x, _tuple(layer.output_size, n), np.max)
    if name == "ReLU":
        return np.asarray(_naive.naive_relu(x), dtype=np.float64)
    if name == "LeakyReLU":
        return np.asarray(_naive.naive_leaky_relu(x, layer.negative_slope), dtype=np.float64)
    if name == "ELU":
        return np.asarray(_naive.naive_elu(x, layer.alpha), dtype=np.float64)
    if name == "GELU":
        return np.asarray(_naive.naive_gelu(x, layer.approximate), dtype=np.float64)
    if name == "Sigmoid":
        return np.asarray(_naive.naive_sigmoid(x), dtype=np.float64)
    if name == "Tanh":
        return np.asarray(_naive.naive_tanh(x), dtype=np.float64)
    if name == "Softmax":
        return np.asarray(_naive.naive_softmax(x, layer.dim), dtype=np.float64)
    if name == "LogSoftmax":
        return np.asarray(_naive.naive_log_softmax(x, layer.dim), dtype=np.float64)
    if name == "Linear":
        w = layer.weight.data.astype(np.float64)
        y = np.tensordot(x, w, axes=([-1], [1]))
        return y if layer.bias is None else y + layer.bias.data
    if name == "Flatten":
        start, end = layer.start_dim % x.ndim, layer.end_dim % x.ndim
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])
    if name == "Identity":
        return x
    if name == "Dropout":
        assert layer.p in (0.0, 1.0)  # the deterministic cases
        return x if layer.p == 0.0 else np.zeros_like(x)
    if name.startswith("BatchNorm"):  # training mode: the batch's mean and biased variance
        axes = (0, *range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = x.mean(axis=axes).reshape(shape)
        var = ((x - mean) ** 2).mean(axis=axes).reshape(shape)
        y = (x - mean) / np.sqrt(var + layer.eps)
        if layer.weight is not None:
            y = y * layer.weight.data.reshape(shape)
        if getattr(layer, "bias", None) is not None:
            y = y + layer.bias.data.reshape(shape)
        return y
    raise AssertionError(f"no reference for {name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_matches_the_loop_reference(case, dtype):
    layer = case.make().to(dtype)
    x = np.random.default_rng(1).standard_normal(case.shape).astype(dtype)
    expected = reference_forward(layer, x)
    y = layer(Tensor(x.copy(), requires_grad=True))
    assert y.dtype == dtype
    rtol, atol = (2e-5, 2e-6) if dtype == np.float32 else (1e-10, 1e-12)
    np.testing.assert_allclose(y.data, expected, rtol=rtol, atol=atol)


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_matches_torch(case, dtype):
    torch.manual_seed(0)
    reference = case.make_torch().to(torch_dtype(dtype))
    layer = case.make().to(dtype)
    assert list(layer.state_dict()) == list(reference.state_dict())
    layer.load_state_dict(reference.state_dict())

    rng = np.random.default_rng(1)
    x = rng.standard_normal(case.shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    xc = Tensor(x.copy(), requires_grad=True)
    yt = reference(xt)
    yc = layer(xc)
    assert yc.dtype == dtype
    close(yc.data, to_numpy(yt), dtype, "forward")

    grad_out = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.tensor(grad_out))
    yc.backward(grad_out)
    close(xc.grad, to_numpy(xt.grad), dtype, "grad of input")
    torch_params = dict(reference.named_parameters())
    assert [name for name, _ in layer.named_parameters()] == list(torch_params)
    for name, param in layer.named_parameters():
        assert param.grad.dtype == dtype
        close(param.grad, to_numpy(torch_params[name].grad), dtype, f"grad of {name}")
    for name, value in reference.state_dict().items():  # buffers after the step, e.g. running stats
        close(layer.state_dict()[name], to_numpy(value), dtype, f"state {name}")
