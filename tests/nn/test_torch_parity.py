"""Every layer against PyTorch: same weights (loaded from the torch layer's state_dict), same
input; forward outputs, input gradients, parameter gradients and buffers must agree (float32
to rtol 1e-5, float64 to rtol 1e-10)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import Tensor

from .cases import CASES
from .helpers import close, needs_torch, to_numpy, torch, torch_dtype

pytestmark = needs_torch


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
