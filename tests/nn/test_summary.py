"""nn.summary on LeNet-5: parameter counts (PyTorch's), output shapes, receptive fields and
multiply-adds by their formulas; nested containers; no side effects."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import cnnlab.nn as nn

from .helpers import needs_torch, torch


def lenet5(lib):
    return lib.Sequential(OrderedDict(
        features=lib.Sequential(lib.Conv2d(1, 6, 5), lib.Tanh(), lib.AvgPool2d(2), lib.Conv2d(6, 16, 5), lib.Tanh(),
                                lib.AvgPool2d(2)),
        flatten=lib.Flatten(),
        classifier=lib.Sequential(lib.Linear(400, 120), lib.Tanh(), lib.Linear(120, 84), lib.Tanh(),
                                  lib.Linear(84, 10)),
    ))


def rows(result):
    return {layer.name: layer for layer in result.layers}


def test_parameter_counts_by_hand():
    """weights + biases per layer: conv O*C*k*k + O, linear out*in + out."""
    result = nn.summary(lenet5(nn), (1, 1, 32, 32))
    counts = {"features.0": 6 * 1 * 25 + 6, "features.3": 16 * 6 * 25 + 16, "classifier.0": 120 * 400 + 120,
              "classifier.2": 84 * 120 + 84, "classifier.4": 10 * 84 + 10}
    assert result.total_params == sum(counts.values()) == 61706
    assert result.trainable_params == result.total_params
    for name, layer in rows(result).items():
        if name.startswith(("features.", "classifier.")):  # activations, pooling: no parameters
            assert layer.params == counts.get(name, 0), name


@needs_torch
def test_parameter_counts_match_torch():
    result = nn.summary(lenet5(nn), (1, 1, 32, 32))
    reference = lenet5(torch.nn)
    assert result.total_params == sum(p.numel() for p in reference.parameters()) == 61706
    assert result.trainable_params == result.total_params
    named = dict(reference.named_modules())
    for name, layer in rows(result).items():
        assert layer.params == sum(p.numel() for p in named[name].parameters())


def test_output_shapes_and_receptive_fields():
    result = nn.summary(lenet5(nn), (2, 1, 32, 32))
    layers = rows(result)
    expected_shapes = {
        "features.0": (2, 6, 28, 28), "features.2": (2, 6, 14, 14), "features.3": (2, 16, 10, 10),
        "features.5": (2, 16, 5, 5), "flatten": (2, 400), "classifier.0": (2, 120), "classifier.4": (2, 10),
        "features": (2, 16, 5, 5), "classifier": (2, 10),
    }
    for name, shape in expected_shapes.items():
        assert layers[name].output_shape == shape
    # r_out = r_in + (k - 1) * d * j_in, j_out = j_in * s, from r = j = 1
    r, j = 1, 1
    chain = {"features.0": (5, 1), "features.2": (2, 2), "features.3": (5, 1), "features.5": (2, 2)}
    for name, (k, s) in chain.items():
        r, j = r + (k - 1) * j, j * s
        assert layers[name].receptive_field == (r, r)
        assert layers[name].jump == (j, j)
    assert layers["features.1"].receptive_field == (5, 5)  # elementwise layers change nothing
    # the first Linear after Flatten sees the whole 5x5 map: the whole 32x32 input
    assert layers["classifier.0"].receptive_field == (r + 4 * j, r + 4 * j) == (32, 32)
    assert layers["features"].receptive_field == (16, 16)


def test_mult_adds_by_formula():
    batch = 2
    result = nn.summary(lenet5(nn), (batch, 1, 32, 32))
    layers = rows(result)
    conv1 = batch * 6 * 28 * 28 * (1 * 5 * 5)
    conv2 = batch * 16 * 10 * 10 * (6 * 5 * 5)
    fcs = batch * (400 * 120 + 120 * 84 + 84 * 10)
    assert layers["features.0"].mult_adds == conv1
    assert layers["features.3"].mult_adds == conv2
    assert layers["features"].mult_adds == conv1 + conv2
    assert layers["classifier"].mult_adds == fcs
    assert layers["features.2"].mult_adds == 0
    assert result.total_mult_adds == conv1 + conv2 + fcs


def test_table_text():
    text = str(nn.summary(lenet5(nn), (1, 1, 32, 32)))
    assert "features.0 (Conv2d)" in text and "[1, 6, 28, 28]" in text
    assert "Total params: 61,706" in text and "Total mult-adds: 416,520" in text
    assert "32x32" in text


def test_strided_conv_dilation_and_transposed_conv():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, dilation=2, padding=2), nn.MaxPool2d(3, stride=1),
                          nn.ConvTranspose2d(2, 1, 4, stride=2))
    layers = nn.summary(model, (1, 1, 16, 16)).layers
    assert layers[0].receptive_field == (5, 5) and layers[0].jump == (2, 2)  # 1 + 2*2*1
    assert layers[1].receptive_field == (9, 9) and layers[1].jump == (2, 2)  # 5 + 2*1*2
    assert layers[2].receptive_field == (11, 11) and layers[2].jump == (1, 1)  # 9 + (ceil(4/2) - 1)*2
    assert layers[2].mult_adds == 2 * 6 * 6 * (1 * 4 * 4)  # input elements * C_out/groups * k*k


def test_summary_has_no_side_effects():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout())
    model[2].eval()
    before = model.state_dict()
    nn.summary(model, (4, 1, 6, 6))
    assert [m.training for m in model.modules()] == [True, True, True, False]
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_a_single_layer_and_frozen_parameters():
    layer = nn.Linear(3, 2)
    layer.bias.requires_grad = False
    result = nn.summary(layer, (5, 3))
    assert [row.name for row in result.layers] == ["Linear"]
    assert result.total_params == 8 and result.trainable_params == 6
    assert result.layers[0].receptive_field is None and result.total_mult_adds == 5 * 3 * 2


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((3, (1, 1)), TypeError, "model must be a Module"),
        ((nn.ReLU(), 5), TypeError, "input_shape must be a non-empty tuple"),
        ((nn.ReLU(), (1, 0)), ValueError, "positive sizes"),
        ((nn.ReLU(), (1, 2.0)), TypeError, "tuple of ints"),
    ],
)
def test_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        nn.summary(*args)
