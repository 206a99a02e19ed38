"""Loss layers against PyTorch's: values and gradients (input, and target where it has one)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor

from .helpers import close, needs_torch, to_numpy, torch

pytestmark = needs_torch

W3 = [0.5, 2.0, 1.0]


def _class_target(rng, shape, classes):
    return rng.integers(0, classes, shape)


LOSS_CASES = [
    # (id, cnnlab loss, torch loss, input shape, target maker, target differentiable)
    ("ce", lambda: nn.CrossEntropyLoss(), lambda: torch.nn.CrossEntropyLoss(), (4, 3),
     lambda rng, dt: _class_target(rng, (4,), 3), False),
    ("ce-weight-smoothing-sum", lambda: nn.CrossEntropyLoss(weight=W3, label_smoothing=0.2, reduction="sum"),
     lambda: torch.nn.CrossEntropyLoss(weight=torch.tensor(W3), label_smoothing=0.2, reduction="sum"), (5, 3),
     lambda rng, dt: _class_target(rng, (5,), 3), False),
    ("ce-ignore-spatial", lambda: nn.CrossEntropyLoss(ignore_index=1),
     lambda: torch.nn.CrossEntropyLoss(ignore_index=1), (2, 3, 2, 2),
     lambda rng, dt: _class_target(rng, (2, 2, 2), 3), False),
    ("ce-probabilities-none", lambda: nn.CrossEntropyLoss(reduction="none"),
     lambda: torch.nn.CrossEntropyLoss(reduction="none"), (4, 3),
     lambda rng, dt: rng.dirichlet(np.ones(3), 4).astype(dt), False),
    ("nll-weight", lambda: nn.NLLLoss(weight=W3), lambda: torch.nn.NLLLoss(weight=torch.tensor(W3)), (6, 3),
     lambda rng, dt: _class_target(rng, (6,), 3), False),
    ("mse", lambda: nn.MSELoss(), lambda: torch.nn.MSELoss(), (3, 4),
     lambda rng, dt: rng.standard_normal((3, 4)).astype(dt), True),
    ("mse-sum", lambda: nn.MSELoss(reduction="sum"), lambda: torch.nn.MSELoss(reduction="sum"), (2, 3, 2),
     lambda rng, dt: rng.standard_normal((2, 3, 2)).astype(dt), True),
    ("bce", lambda: nn.BCEWithLogitsLoss(), lambda: torch.nn.BCEWithLogitsLoss(), (4, 3),
     lambda rng, dt: rng.uniform(0, 1, (4, 3)).astype(dt), True),
    ("bce-weights",
     lambda: nn.BCEWithLogitsLoss(weight=np.array([1.0, 0.5, 2.0]), pos_weight=np.array([3.0, 1.0, 0.5])),
     lambda: torch.nn.BCEWithLogitsLoss(weight=torch.tensor([1.0, 0.5, 2.0]), pos_weight=torch.tensor([3.0, 1.0, 0.5])),
     (4, 3), lambda rng, dt: (rng.uniform(0, 1, (4, 3)) > 0.5).astype(dt), True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_matches_torch(case, dtype):
    _, make, make_torch, shape, make_target, target_grad = case
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    if "nll" in case[0]:
        x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    target = make_target(rng, dtype)
    loss, reference = make(), make_torch()
    reference = reference.to(torch.float64 if dtype == np.float64 else torch.float32)  # class weights
    xc, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    tc = Tensor(target, requires_grad=target_grad)
    tt = torch.tensor(target, requires_grad=target_grad)
    yc, yt = loss(xc, tc), reference(xt, tt)
    close(yc.data, to_numpy(yt), dtype, "loss")
    grad = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yc.backward(grad)
    yt.backward(torch.tensor(grad))
    close(xc.grad, to_numpy(xt.grad), dtype, "grad of input")
    if target_grad:
        close(tc.grad, to_numpy(tt.grad), dtype, "grad of target")
    assert list(loss.state_dict()) == list(reference.state_dict())  # class weights are buffers


def test_loss_layers_validate_arguments():
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        nn.NLLLoss(ignore_index=1.5)
    with pytest.raises(TypeError, match="label_smoothing must be a real number"):
        nn.CrossEntropyLoss(label_smoothing="x")
