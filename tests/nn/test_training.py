"""A LeNet-5-style CNN trained for a few SGD steps on the same batches in cnnlab and PyTorch
(same initial weights) stays within tolerance: losses, weights, running statistics, eval outputs."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor
from cnnlab.optim import SGD

from .helpers import needs_torch, to_numpy, torch, torch_dtype

pytestmark = needs_torch

# float32 differences grow a little with every step; float64 ones stay at rounding level
STEP_TOL = {np.float32: (2e-4, 2e-5), np.float64: (1e-9, 1e-11)}


def lenet(lib):
    return lib.Sequential(OrderedDict(
        features=lib.Sequential(lib.Conv2d(1, 6, 5, padding=2), lib.BatchNorm2d(6), lib.ReLU(), lib.MaxPool2d(2),
                                lib.Conv2d(6, 16, 5), lib.ReLU(), lib.AvgPool2d(2)),
        flatten=lib.Flatten(),
        classifier=lib.Sequential(lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.Tanh(),
                                  lib.Linear(84, 10)),
    ))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_lenet_sgd_steps_match_torch(dtype):
    rtol, atol = STEP_TOL[dtype]
    torch.manual_seed(0)
    reference = lenet(torch.nn).to(torch_dtype(dtype))
    model = lenet(nn).to(dtype)
    model.load_state_dict(reference.state_dict())
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    opt_ref = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    loss_fn, loss_ref = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()

    rng = np.random.default_rng(0)
    losses = []
    for _ in range(5):
        x = rng.standard_normal((8, 1, 28, 28)).astype(dtype)
        y = rng.integers(0, 10, 8)
        opt.zero_grad()
        loss = loss_fn(model(Tensor(x)), y)
        loss.backward()
        opt.step()
        opt_ref.zero_grad()
        expected = loss_ref(reference(torch.tensor(x)), torch.tensor(y))
        expected.backward()
        opt_ref.step()
        np.testing.assert_allclose(loss.item(), expected.item(), rtol=rtol)
        losses.append(loss.item())
    assert losses[-1] != losses[0]  # it did learn something
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[key], to_numpy(value), rtol=rtol, atol=atol, err_msg=key)

    model.eval()
    reference.eval()
    x = rng.standard_normal((4, 1, 28, 28)).astype(dtype)
    np.testing.assert_allclose(model(Tensor(x)).data, to_numpy(reference(torch.tensor(x))), rtol=rtol, atol=atol)
