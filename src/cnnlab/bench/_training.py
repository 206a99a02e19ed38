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


# (model, batch size, input shape, optimizer class, its arguments): the class name is the same in
# cnnlab.optim and torch.optim, so both libraries build the same optimizer from one row
MODELS = (
    ("lenet5", 64, (1, 28, 28), "SGD", {"lr": 0.01, "momentum": 0.9}),
    ("mnist1d-cnn", 100, (1, 40), "Adam", {"lr": 1e-3}),
    ("convnet", 128, (1, 28, 28), "AdamW", {"lr": 1e-3}),
)


def _row(name: str) -> tuple:
    return next(row for row in MODELS if row[0] == name)


def _batch(name: str, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The same seeded batch for both libraries."""
    _, batch, shape, _, _ = _row(name)
    rng = np.random.default_rng(0)
    batch = batch_size or batch
    return rng.standard_normal((batch, *shape)).astype(np.float32), rng.integers(0, 10, batch)


def cnnlab_step(name: str, batch_size: int | None = None):
    """One cnnlab training step of the named model (its bench optimizer, a fixed batch)."""
    model = models.build_model(name)
    _, _, _, opt_name, opt_args = _row(name)
    opt = getattr(optim, opt_name)(model.parameters(), **opt_args)
    x, y = _batch(name, batch_size)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(Tensor(x)), y).backward()
        opt.step()

    return step


def torch_step(torch, name: str, batch_size: int | None = None):
    """The same step in PyTorch: identical architecture, optimizer and batch."""
    tmodel = _torch_model(torch, name)
    _, _, _, opt_name, opt_args = _row(name)
    topt = getattr(torch.optim, opt_name)(tmodel.parameters(), **opt_args)
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
    return [(name, cnnlab_step(name, batch_size), None if torch is None else torch_step(torch, name, batch_size))
            for name, *_ in MODELS if only is None or name == only]
