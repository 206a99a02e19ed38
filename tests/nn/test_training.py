"""Training steps end to end.  Without torch: a small CNN's SGD steps against central-difference
gradients, the SGD update equation and the batch-norm running-statistics definition.  With
torch: a LeNet-5-style CNN trained for a few SGD steps on the same batches in cnnlab and PyTorch
(same initial weights) stays within tolerance: losses, weights, running statistics, eval outputs."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor
from cnnlab.optim import SGD

from .helpers import needs_torch, numerical_grad, to_numpy, torch, torch_dtype

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


def test_small_cnn_sgd_steps_follow_gradients_and_the_update_rule():
    """Three SGD steps (momentum 0.9, weight decay 1e-3) of a small CNN with batch norm, in
    float64.  Before each step the backward gradients must match central differences of the
    loss (on a copy of the model, so the running statistics see only the real forward passes);
    after it every weight must equal the update written out by hand, and the running statistics
    the momentum average of the batch statistics (unbiased variance)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8, 3)).double()
    lr, mu, decay = 0.1, 0.9, 1e-3
    opt = SGD(model.parameters(), lr=lr, momentum=mu, weight_decay=decay)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    buffers = {}
    running_mean, running_var = np.zeros(2), np.ones(2)
    for step in range(3):
        x, y = rng.standard_normal((4, 1, 6, 6)), rng.integers(0, 3, 4)
        probe = copy.deepcopy(model)
        probe_params = dict(probe.named_parameters())
        def probe_loss(probe=probe, x=x, y=y):
            return float(loss_fn(probe(Tensor(x)), y).item())

        numeric = {name: numerical_grad(probe_loss, p.data) for name, p in probe_params.items()}
        before = {name: p.data.copy() for name, p in model.named_parameters()}
        conv_out = model[0](Tensor(x)).data  # what the batch norm sees in this step
        opt.zero_grad()
        loss_fn(model(Tensor(x)), y).backward()
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad, numeric[name], rtol=1e-5, atol=1e-8, err_msg=f"step {step} {name}")
        opt.step()
        for name, p in model.named_parameters():
            d = p.grad + decay * before[name]
            buffers[name] = d if step == 0 else mu * buffers[name] + d
            np.testing.assert_allclose(p.data, before[name] - lr * buffers[name], rtol=1e-12, atol=1e-14,
                                       err_msg=f"update {step} {name}")
        count = conv_out.shape[0] * conv_out.shape[2] * conv_out.shape[3]
        batch_mean = conv_out.mean(axis=(0, 2, 3))
        unbiased = ((conv_out - batch_mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3)) / (count - 1)
        running_mean = 0.9 * running_mean + 0.1 * batch_mean
        running_var = 0.9 * running_var + 0.1 * unbiased
        np.testing.assert_allclose(model[1].running_mean.data, running_mean, rtol=1e-12)
        np.testing.assert_allclose(model[1].running_var.data, running_var, rtol=1e-12)


@needs_torch
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
