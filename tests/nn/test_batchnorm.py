"""BatchNorm: running statistics over several steps, train/eval behaviour, options and errors,
against a reference written from the definition (always) and PyTorch (where installed); the
functional batch_norm on arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor
from cnnlab.functional._norm import batch_norm, batch_norm_backward

from .helpers import close, needs_torch, numerical_grad, to_numpy, torch, torch_dtype

OPTIONS = [
    {},
    {"momentum": None},
    {"momentum": 0.3, "eps": 1e-3},
    {"affine": False},
    {"track_running_stats": False},
]


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("options", OPTIONS, ids=[str(o) for o in OPTIONS])
@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_running_statistics_over_steps_then_eval(kind, options, dtype):
    shape = (5, 3) if kind == "1d" else (4, 3, 3, 2)
    layer = (nn.BatchNorm1d if kind == "1d" else nn.BatchNorm2d)(3, dtype=dtype, **options)
    reference = (torch.nn.BatchNorm1d if kind == "1d" else torch.nn.BatchNorm2d)(3, **options).to(torch_dtype(dtype))
    rng = np.random.default_rng(0)
    if layer.affine:
        weights = {"weight": rng.standard_normal(3), "bias": rng.standard_normal(3)}
        layer.load_state_dict({**reference.state_dict(), **weights})
        reference.load_state_dict({**reference.state_dict(), **{k: torch.tensor(v) for k, v in weights.items()}})
    for step in range(4):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        y = layer(Tensor(x))
        yt = reference(torch.tensor(x))
        close(y.data, to_numpy(yt), dtype, f"train step {step}")
        for name, value in reference.state_dict().items():
            close(layer.state_dict()[name], to_numpy(value), dtype, f"{name} after step {step}")
    if layer.track_running_stats:
        assert int(layer.num_batches_tracked.data) == 4
    layer.eval()
    reference.eval()
    before = layer.state_dict()
    x = rng.standard_normal(shape).astype(dtype)
    xc, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = layer(xc), reference(xt)
    close(y.data, to_numpy(yt), dtype, "eval forward")
    grad = rng.standard_normal(shape).astype(dtype)
    y.backward(grad)
    yt.backward(torch.tensor(grad))
    close(xc.grad, to_numpy(xt.grad), dtype, "eval grad")
    for name, value in layer.state_dict().items():  # evaluation never changes the state
        np.testing.assert_array_equal(value, before[name])


def test_eval_uses_running_statistics():
    bn = nn.BatchNorm1d(2, dtype=np.float64).eval()
    bn.running_mean.data[...] = [1.0, -2.0]
    bn.running_var.data[...] = [4.0, 0.25]
    x = np.array([[3.0, -1.0], [5.0, -2.0]])
    expected = (x - [1.0, -2.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5)
    np.testing.assert_allclose(bn(x).data, expected, rtol=1e-12)


def test_training_normalises_each_channel():
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    x = np.random.default_rng(1).normal(4.0, 3.0, (6, 3, 4, 4))
    y = bn(x).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)  # eps shrinks it a little


def test_momentum_none_is_the_cumulative_average():
    bn = nn.BatchNorm1d(1, momentum=None, dtype=np.float64)
    batches = [np.array([[1.0], [3.0]]), np.array([[10.0], [14.0]]), np.array([[0.0], [1.0]])]
    for batch in batches:
        bn(batch)
    np.testing.assert_allclose(bn.running_mean.data, np.mean([b.mean() for b in batches]), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, np.mean([b.var(ddof=1) for b in batches]), rtol=1e-12)


def test_without_running_statistics_eval_still_uses_the_batch():
    bn = nn.BatchNorm1d(2, track_running_stats=False, dtype=np.float64).eval()
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    y = bn(np.array([[1.0, 2.0], [3.0, 6.0]])).data
    np.testing.assert_allclose(np.abs(y), 1.0, rtol=1e-4)


def test_eval_output_keeps_the_statistics_of_its_forward():
    bn = nn.BatchNorm1d(2, dtype=np.float64)
    bn(np.random.default_rng(2).standard_normal((4, 2)))
    bn.eval()
    x = Tensor(np.ones((3, 2)), requires_grad=True)
    y = bn(x)
    expected = bn.weight.data / np.sqrt(bn.running_var.data + 1e-5)
    bn.train()
    bn(np.random.default_rng(3).standard_normal((4, 2)) * 10)  # changes the running statistics
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.broadcast_to(expected, (3, 2)), rtol=1e-12)


@pytest.mark.parametrize(
    ("layer", "shape", "match"),
    [
        (nn.BatchNorm2d(3), (2, 3, 4), "expected input"),
        (nn.BatchNorm1d(3), (2, 3, 4, 4), "expected input"),
        (nn.BatchNorm2d(3), (2, 4, 2, 2), "expected 3 channels"),
        (nn.BatchNorm1d(3), (1, 3), "more than 1 value per channel"),
    ],
)
def test_bad_inputs(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer(np.zeros(shape, dtype=np.float32))


def test_one_sample_is_fine_in_eval():
    bn = nn.BatchNorm1d(3).eval()
    assert bn(np.ones((1, 3), dtype=np.float32)).shape == (1, 3)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"num_features": 0}, ValueError, "num_features must be a positive int"),
        ({"num_features": 2.0}, TypeError, "num_features must be a positive int"),
        ({"num_features": 2, "eps": -1.0}, ValueError, "eps must be non-negative"),
        ({"num_features": 2, "momentum": "x"}, TypeError, "momentum must be a real number"),
        ({"num_features": 2, "affine": 1}, TypeError, "affine must be a bool"),
        ({"num_features": 2, "dtype": np.int32}, TypeError, "dtype must be float32 or float64"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nn.BatchNorm2d(**kwargs)


# ---------------------------------------------------------------- the functional op


@needs_torch
@pytest.mark.parametrize("training", [True, False])
def test_functional_matches_torch_and_updates_in_place(training):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 5))
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    tm, tv = torch.tensor(mean), torch.tensor(var)
    expected = torch.nn.functional.batch_norm(torch.tensor(x), tm, tv, torch.tensor(weight), torch.tensor(bias),
                                              training, 0.2, 1e-4)
    y = batch_norm(x, mean, var, weight, bias, training, 0.2, 1e-4)
    np.testing.assert_allclose(y, to_numpy(expected), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean, tm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(var, tv.numpy(), rtol=1e-12)


# ---------------------------------------------------------------- the definition, without torch


class ReferenceBatchNorm:
    """Batch normalisation from its definition (Ioffe & Szegedy 2015, with PyTorch's conventions),
    in float64 with plain loops over channels: the batch mean and *biased* variance normalise in
    training; the running statistics take the batch mean and the *unbiased* variance, as
    ``running = (1 - momentum) * running + momentum * batch``, or the cumulative average
    ``running += (batch - running) / batches_seen`` when momentum is None; evaluation
    normalises with the running statistics, or with the batch when none are kept."""

    def __init__(self, channels, momentum=0.1, eps=1e-5, affine=True, track_running_stats=True):
        self.momentum, self.eps, self.track = momentum, eps, track_running_stats
        self.weight, self.bias = [1.0] * channels, [0.0] * channels
        self.affine = affine
        self.mean, self.var, self.seen = [0.0] * channels, [1.0] * channels, 0

    def _channel(self, x, c):
        return np.asarray(x, dtype=np.float64)[:, c].reshape(-1)

    def forward(self, x, training):
        x = np.asarray(x, dtype=np.float64)
        y = np.empty_like(x)
        if training and self.track:
            self.seen += 1
        for c in range(x.shape[1]):
            values = [float(v) for v in self._channel(x, c)]
            n = len(values)
            mean = sum(values) / n
            biased = sum((v - mean) ** 2 for v in values) / n
            if training or not self.track:
                use_mean, use_var = mean, biased
            else:
                use_mean, use_var = self.mean[c], self.var[c]
            if training and self.track:
                unbiased = biased * n / (n - 1)
                factor = 1.0 / self.seen if self.momentum is None else self.momentum
                self.mean[c] = (1 - factor) * self.mean[c] + factor * mean
                self.var[c] = (1 - factor) * self.var[c] + factor * unbiased
            w, b = (self.weight[c], self.bias[c]) if self.affine else (1.0, 0.0)
            y[:, c] = (x[:, c] - use_mean) / math.sqrt(use_var + self.eps) * w + b
        return y


def test_reference_batchnorm_on_a_hand_worked_batch():
    ref = ReferenceBatchNorm(1, momentum=0.5, eps=0.0)
    y = ref.forward(np.array([[1.0], [3.0]]), training=True)  # mean 2, biased var 1, unbiased 2
    np.testing.assert_allclose(y, [[-1.0], [1.0]])
    assert ref.mean == [1.0] and ref.var == [1.5]  # 0.5*0 + 0.5*2, 0.5*1 + 0.5*2
    np.testing.assert_allclose(ref.forward(np.array([[2.5]]), training=False), [[1.5 / math.sqrt(1.5)]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("options", OPTIONS, ids=[str(o) for o in OPTIONS])
@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_running_statistics_over_steps_then_eval_follow_the_definition(kind, options, dtype):
    shape = (5, 3) if kind == "1d" else (4, 3, 3, 2)
    layer = (nn.BatchNorm1d if kind == "1d" else nn.BatchNorm2d)(3, dtype=dtype, **options)
    reference = ReferenceBatchNorm(3, **options)
    rng = np.random.default_rng(0)
    if layer.affine:
        reference.weight, reference.bias = list(rng.standard_normal(3)), list(rng.standard_normal(3))
        layer.weight.data[...] = reference.weight
        layer.bias.data[...] = reference.bias
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for step in range(4):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        y = layer(Tensor(x))
        assert y.dtype == dtype
        np.testing.assert_allclose(y.data, reference.forward(x, training=True), **tol, err_msg=f"step {step}")
        if layer.track_running_stats:
            np.testing.assert_allclose(layer.running_mean.data, reference.mean, **tol)
            np.testing.assert_allclose(layer.running_var.data, reference.var, **tol)
    if layer.track_running_stats:
        assert int(layer.num_batches_tracked.data) == 4
    layer.eval()
    before = layer.state_dict()
    x = rng.standard_normal(shape).astype(dtype)
    xc = Tensor(x, requires_grad=True)
    y = layer(xc)
    np.testing.assert_allclose(y.data, reference.forward(x, training=False), **tol, err_msg="eval forward")
    grad = rng.standard_normal(shape)
    y.backward(grad.astype(dtype))
    x64 = x.astype(np.float64)
    expected = numerical_grad(lambda: float((reference.forward(x64, training=False) * grad).sum()), x64)
    np.testing.assert_allclose(xc.grad, expected, rtol=1e-4 if dtype == np.float32 else 1e-6, atol=1e-5,
                               err_msg="eval grad")
    for name, value in layer.state_dict().items():  # evaluation never changes the state
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("training", [True, False])
def test_functional_follows_the_definition_and_updates_in_place(training):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 5))
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    reference = ReferenceBatchNorm(3, momentum=0.2, eps=1e-4)
    reference.mean, reference.var = list(mean), list(var)
    reference.weight, reference.bias = list(weight), list(bias)
    expected = reference.forward(x, training)
    y = batch_norm(x, mean, var, weight, bias, training, 0.2, 1e-4)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean, reference.mean, rtol=1e-12)
    np.testing.assert_allclose(var, reference.var, rtol=1e-12)


def test_functional_backward_leaves_running_statistics_alone():
    rng = np.random.default_rng(5)
    x, mean, var = rng.standard_normal((4, 2)), np.zeros(2), np.ones(2)
    batch_norm_backward(np.ones((4, 2)), x, mean, var, training=True)
    np.testing.assert_array_equal(mean, 0)
    np.testing.assert_array_equal(var, 1)


def test_functional_integer_input_gives_float64():
    y = batch_norm(np.array([[1, 2], [3, 4]]), training=True)
    assert y.dtype == np.float64


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        ((np.zeros(3),), {"training": True}, ValueError, "at least 2 dims"),
        ((np.zeros((2, 3)), np.zeros(3), None), {}, ValueError, "both be given or both be None"),
        ((np.zeros((2, 3)), np.zeros(2), np.ones(2)), {}, ValueError, r"running_mean must have shape \(3,\)"),
        ((np.zeros((2, 3)), np.zeros(3, dtype=int), np.ones(3)), {}, TypeError, "must be a floating array"),
        ((np.zeros((2, 3)),), {"training": False}, ValueError, "training=False normalises with running_mean"),
        ((np.zeros((2, 3)),), {"training": 1}, TypeError, "training must be a bool"),
        ((np.zeros((2, 3)),), {"training": True, "weight": np.ones(2)}, ValueError, "weight must have shape"),
        ((np.zeros((2, 3)),), {"training": True, "eps": -1.0}, ValueError, "eps must be non-negative"),
    ],
)
def test_functional_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        batch_norm(*args, **kwargs)
