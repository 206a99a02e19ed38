"""End-to-end training steps with identical models and optimizers in cnnlab and PyTorch."""

from __future__ import annotations

import numpy as np

import cnnlab.functional as F
from cnnlab import Tensor, optim
from cnnlab.training import models


def _torch_model(torch, name):
    nn = torch.nn
    if name == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                             nn.ReLU(), nn.Linear(84, 10))
    if name == "mnist1d-cnn":
        return nn.Sequential(nn.Conv1d(1, 25, 5, 2, 1), nn.ReLU(), nn.Conv1d(25, 25, 3, 2, 1), nn.ReLU(),
                             nn.Conv1d(25, 25, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(125, 10))
    layers, c = [], 1
    for width in (24, 48, 96):
        layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.AvgPool2d(2)]
        c = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.3), nn.Linear(864, 10))


MODELS = (("lenet5", 64, (1, 28, 28)), ("mnist1d-cnn", 100, (1, 40)), ("convnet", 128, (1, 28, 28)))


def _batch(name: str, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The same seeded batch for both libraries."""
    batch, shape = next((b, s) for n, b, s in MODELS if n == name)
    rng = np.random.default_rng(0)
    batch = batch_size or batch
    return rng.standard_normal((batch, *shape)).astype(np.float32), rng.integers(0, 10, batch)


def cnnlab_step(name: str, batch_size: int | None = None):
    """One cnnlab training step of the named model (its bench optimizer, a fixed batch)."""
    model = models.build_model(name)
    if name == "lenet5":
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    elif name == "mnist1d-cnn":
        opt = optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = optim.AdamW(model.parameters(), lr=1e-3)
    x, y = _batch(name, batch_size)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(Tensor(x)), y).backward()
        opt.step()

    return step


def torch_steps(torch, name: str, batch_size: int | None = None):
    """The same step in PyTorch: identical architecture, optimizer and batch."""
    tmodel = _torch_model(torch, name)
    if name == "lenet5":
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    elif name == "mnist1d-cnn":
        topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    else:
        topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-3)
    x, y = _batch(name, batch_size)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
        topt.step()

    return step


def training_pairs(torch, only: str | None = None, batch_size: int | None = None):
    """``[(name, cnnlab_step, torch_step)]`` for LeNet-5, the MNIST-1D CNN and the convnet recipe
    (only the model named ``only`` when given; ``batch_size`` replaces each model's batch; with
    ``torch`` None the torch step is None)."""
    return [(name, cnnlab_step(name, batch_size), None if torch is None else torch_steps(torch, name, batch_size))
            for name, _, _ in MODELS if only is None or name == only]
