"""Float64 central-difference gradient checks through every layer: input and parameters."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.nn as nn

from .cases import CASES
from .helpers import check_module_gradients


@pytest.mark.parametrize("case", [c for c in CASES if c.gradcheck], ids=[c.id for c in CASES if c.gradcheck])
def test_layer_gradients(case):
    layer = case.make().double()
    x = np.random.default_rng(2).standard_normal(case.shape)
    check_module_gradients(layer, x)


def test_batchnorm_eval_gradients():
    bn = nn.BatchNorm2d(3).double()
    rng = np.random.default_rng(3)
    bn.running_mean.data[...] = rng.standard_normal(3)
    bn.running_var.data[...] = rng.uniform(0.5, 2.0, 3)
    bn.weight.data[...] = rng.standard_normal(3)
    bn.bias.data[...] = rng.standard_normal(3)
    check_module_gradients(bn.eval(), rng.standard_normal((2, 3, 2, 2)))


def test_batchnorm_train_gradients_with_random_affine():
    bn = nn.BatchNorm1d(4).double()
    rng = np.random.default_rng(4)
    bn.weight.data[...] = rng.standard_normal(4)
    bn.bias.data[...] = rng.standard_normal(4)
    check_module_gradients(bn, rng.standard_normal((5, 4, 3)))


def test_dropout_gradients_with_a_fixed_mask():
    drop = nn.Dropout(0.4)

    def same_mask() -> None:
        drop.generator = np.random.default_rng(7)

    check_module_gradients(drop, np.random.default_rng(5).standard_normal((3, 6)), prepare=same_mask)


def test_small_cnn_end_to_end_gradients():
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(3, 2, 2, stride=1), nn.ELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3),
        nn.LogSoftmax(1),
    ).double()
    check_module_gradients(model, np.random.default_rng(6).standard_normal((2, 2, 4, 4)))
