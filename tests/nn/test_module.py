"""Module and Parameter: registration, traversal, modes, gradients, state dicts, repr, hooks."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor

from .helpers import needs_torch, torch


class Block(nn.Module):
    """A custom module: a conv, a batch norm and a buffer of its own."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.register_buffer("step", np.zeros((), dtype=np.float32))
        self.register_buffer("cache", np.zeros(2, dtype=np.float32), persistent=False)

    def forward(self, x):
        return self.bn(self.conv(x)) * self.scale


def lenet():
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2)),
        flatten=nn.Flatten(),
        classifier=nn.Sequential(nn.Linear(400, 120), nn.ReLU(), nn.Dropout(0.5), nn.Linear(120, 10)),
    ))


def torch_lenet():
    tnn = torch.nn
    return tnn.Sequential(OrderedDict(
        features=tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.BatchNorm2d(6), tnn.ReLU(), tnn.MaxPool2d(2),
                                tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2)),
        flatten=tnn.Flatten(),
        classifier=tnn.Sequential(tnn.Linear(400, 120), tnn.ReLU(), tnn.Dropout(0.5), tnn.Linear(120, 10)),
    ))


# ---------------------------------------------------------------- Parameter


def test_parameter_requires_grad_and_shares_memory():
    data = np.zeros(3)
    p = nn.Parameter(data)
    assert p.requires_grad and p.is_leaf and p.data is data
    assert repr(p).startswith("Parameter containing:\nTensor(")
    assert not nn.Parameter(data, requires_grad=False).requires_grad


def test_parameter_rejects_integers():
    with pytest.raises(TypeError, match="floating point"):
        nn.Parameter(np.arange(3))


def test_operations_on_parameters_give_plain_tensors():
    p = nn.Parameter(np.ones(2))
    assert type(p * 2) is Tensor


# ---------------------------------------------------------------- registration and traversal


def test_attribute_assignment_registers_everything():
    block = Block()
    assert [n for n, _ in block.named_parameters()] == ["scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias"]
    assert [n for n, _ in block.named_buffers()] == [
        "step", "cache", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in block.named_children()] == ["conv", "bn"]
    assert [n for n, _ in block.named_modules()] == ["", "conv", "bn"]
    assert list(block.children()) == [block.conv, block.bn]
    assert len(list(block.parameters(recurse=False))) == 1
    assert list(block.state_dict()) == [
        "scale", "step", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
        "bn.num_batches_tracked"]  # non-persistent "cache" is not saved


def test_shared_parameters_are_listed_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(model.modules())) == 3  # Sequential, Linear, ReLU
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as torch


def test_reassigning_and_deleting():
    m = nn.Linear(2, 3)
    m.bias = None
    assert m.bias is None and [n for n, _ in m.named_parameters()] == ["weight"]
    m.bias = nn.Parameter(np.zeros(3, dtype=np.float32))
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    del m.bias
    assert "bias" not in dict(m.named_parameters())
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'bias'"):
        _ = m.bias


def test_assigning_a_plain_tensor_to_a_parameter_slot_is_refused():
    m = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="cannot assign Tensor as parameter 'weight'"):
        m.weight = Tensor(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="cannot assign int as submodule"):
        nn.Sequential(nn.ReLU()).__setattr__("0", 3)


def test_assigning_before_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Broken()


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda m: m.register_parameter("a.b", None), ValueError, "without '.'"),
        (lambda m: m.register_parameter(3, None), TypeError, "name must be a str"),
        (lambda m: m.register_parameter("w", Tensor(np.zeros(1))), TypeError, "must be a Parameter or None"),
        (lambda m: m.register_buffer("forward", None), ValueError, "attribute 'forward' already exists"),
        (lambda m: m.register_buffer("b", [1, 2]), TypeError, "must be a Tensor, an ndarray or None"),
        (lambda m: m.add_module("m", 3), TypeError, "must be a Module or None"),
        (lambda m: m.register_forward_hook(3), TypeError, "hook must be callable"),
    ],
)
def test_registration_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(nn.Module())


# ---------------------------------------------------------------- modes, gradients, dtype


def test_train_and_eval_reach_every_module():
    model = lenet()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(TypeError, match="mode must be a bool"):
        model.train("no")


def test_zero_grad():
    model = nn.Sequential(nn.Linear(3, 2))
    model(Tensor(np.ones((1, 3), dtype=np.float32))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_requires_grad_freezes():
    model = nn.Linear(3, 2).requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_to_casts_in_place_keeping_the_parameter_objects():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    params = list(model.parameters())
    model.double()
    assert list(model.parameters()) == params
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].running_mean.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64  # integer buffers are left alone
    assert model.to_config()["modules"]["0"]["args"]["dtype"] == "float64"
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        model.to(np.int32)


def test_dtype_argument():
    for layer in (nn.Conv2d(1, 2, 3, dtype=np.float64), nn.Linear(2, 2, dtype="float64"),
                  nn.ConvTranspose2d(1, 1, 2, dtype=np.float64), nn.BatchNorm1d(2, dtype=np.float64)):
        assert {p.dtype for p in layer.parameters()} == {np.dtype(np.float64)}
    assert nn.Linear(2, 2).weight.dtype == np.float32


# ---------------------------------------------------------------- calling and hooks


def test_call_runs_forward_and_hooks():
    seen = []
    layer = nn.ReLU()
    handle = layer.register_forward_hook(lambda m, inputs, out: seen.append((m, inputs[0].shape, out.shape)))
    layer(np.zeros((2, 3)))
    assert seen == [(layer, (2, 3), (2, 3))]
    handle.remove()
    layer(np.zeros((2, 3)))
    assert len(seen) == 1
    replacing = layer.register_forward_hook(lambda m, inputs, out: out + 1)
    np.testing.assert_array_equal(layer(np.zeros(2)), [1.0, 1.0])
    replacing.remove()


def test_module_without_forward():
    with pytest.raises(NotImplementedError, match="does not define forward"):
        nn.Module()(1)


# ---------------------------------------------------------------- state dict


def test_state_dict_is_a_copy():
    layer = nn.Linear(2, 2)
    state = layer.state_dict()
    state["weight"][...] = 7
    assert not np.any(layer.weight.data == 7)
    assert layer.state_dict(keep_vars=True)["weight"] is layer.weight


def test_load_state_dict_round_trip_in_place_with_dtype_cast():
    source, target = lenet(), lenet()
    weight = target.features[0].weight
    state = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in source.state_dict().items()}
    result = target.load_state_dict(state)
    assert result == nn.IncompatibleKeys([], [])
    assert target.features[0].weight is weight and weight.dtype == np.float32
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key], value)


def test_load_state_dict_reports_every_problem_and_loads_nothing():
    model = lenet()
    before = model.state_dict()
    state = model.state_dict()
    del state["features.0.bias"]
    del state["classifier.3.weight"]
    state["extra.weight"] = np.zeros(1)
    state["features.4.weight"] = np.zeros((16, 6, 3, 3))
    state["features.0.weight"] = np.ones_like(state["features.0.weight"])
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "missing key(s): features.0.bias, classifier.3.weight" in message
    assert "unexpected key(s): extra.weight" in message
    assert "size mismatch for features.4.weight: the checkpoint has shape (16, 6, 3, 3), " \
           "this model has shape (16, 6, 5, 5)" in message
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_non_strict():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    result = model.load_state_dict({"0.weight": np.ones((2, 2)), "9.bias": np.ones(1)}, strict=False)
    assert result.missing_keys == ["0.bias", "1.weight", "1.bias"]
    assert result.unexpected_keys == ["9.bias"]
    np.testing.assert_array_equal(model[0].weight.data, 1)
    with pytest.raises(ValueError, match="size mismatch for 0.weight"):  # shapes are checked anyway
        model.load_state_dict({"0.weight": np.ones((3, 2))}, strict=False)


@pytest.mark.parametrize(
    ("state", "exc", "match"),
    [
        ([("weight", 1)], TypeError, "state_dict must be a mapping"),
        ({"weight": "abc", "bias": np.zeros(2)}, TypeError, "value of 'weight' must be numeric"),
    ],
)
def test_load_state_dict_type_errors(state, exc, match):
    with pytest.raises(exc, match=match):
        nn.Linear(2, 2).load_state_dict(state)


LENET_KEYS = ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
              "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked",
              "features.4.weight", "features.4.bias", "classifier.0.weight", "classifier.0.bias",
              "classifier.3.weight", "classifier.3.bias"]


def test_state_dict_keys_and_parameter_count_by_hand():
    """PyTorch's naming (dotted child names, parameters then buffers, layers without state
    skipped) written out, and the parameter count from the layer sizes."""
    model = lenet()
    assert list(model.state_dict()) == LENET_KEYS
    # conv 1*6*25 + 6, batch norm 6 + 6, conv 6*16*25 + 16, linear 400*120 + 120, linear 120*10 + 10
    assert sum(p.numel() for p in model.parameters()) == 156 + 12 + 2416 + 48120 + 1210
    assert model.state_dict()["features.1.num_batches_tracked"].dtype == np.int64


@needs_torch
def test_state_dict_keys_match_torch_and_load_both_ways():
    torch.manual_seed(0)
    ours, theirs = lenet(), torch_lenet()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())  # torch tensors load directly
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key], value.numpy())
        assert ours.state_dict()[key].dtype == value.numpy().dtype
    fresh = torch_lenet()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in lenet().state_dict().items()})


@needs_torch
def test_parameter_count_matches_torch():
    assert sum(p.numel() for p in lenet().parameters()) == sum(p.numel() for p in torch_lenet().parameters())


# ---------------------------------------------------------------- repr


LENET_REPR = """Sequential(
  (features): Sequential(
    (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
    (1): BatchNorm2d(6, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    (2): ReLU()
    (3): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    (4): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
    (5): ReLU()
    (6): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  )
  (flatten): Flatten(start_dim=1, end_dim=-1)
  (classifier): Sequential(
    (0): Linear(in_features=400, out_features=120, bias=True)
    (1): ReLU()
    (2): Dropout(p=0.5)
    (3): Linear(in_features=120, out_features=10, bias=True)
  )
)"""


def test_repr_written_out():
    """PyTorch's repr format (non-default arguments only for convolutions, tuples for their
    sizes, every argument for pooling and batch norm), written out so it is checked without torch."""
    assert repr(lenet()) == LENET_REPR
    expected = [
        (nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2, bias=False, padding_mode="reflect"),
         "Conv2d(2, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), groups=2, "
         "bias=False, padding_mode=reflect)"),
        (nn.Conv1d(2, 4, 3, padding="same"), "Conv1d(2, 4, kernel_size=(3,), stride=(1,), padding=same)"),
        (nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1),
         "ConvTranspose2d(4, 2, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1))"),
        (nn.AvgPool2d(3, 2, 1), "AvgPool2d(kernel_size=3, stride=2, padding=1)"),
        (nn.AdaptiveAvgPool2d((2, 3)), "AdaptiveAvgPool2d(output_size=(2, 3))"),
        (nn.LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"),
        (nn.ELU(), "ELU(alpha=1.0)"),
        (nn.GELU("tanh"), "GELU(approximate='tanh')"),
        (nn.Softmax(1), "Softmax(dim=1)"),
        (nn.BatchNorm1d(3, momentum=None, affine=False),
         "BatchNorm1d(3, eps=1e-05, momentum=None, affine=False, bias=False, track_running_stats=True)"),
        (nn.BatchNorm2d(3, bias=False),
         "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=False, track_running_stats=True)"),
        (nn.Flatten(), "Flatten(start_dim=1, end_dim=-1)"),
        (nn.Identity(), "Identity()"),
    ]
    for layer, text in expected:
        assert repr(layer) == text


@needs_torch
def test_repr_matches_torch():
    # cnnlab has no in-place layers, so no ``inplace`` argument to show
    assert repr(lenet()) == repr(torch_lenet()).replace(", inplace=False", "")
    tnn = torch.nn
    pairs = [
        (nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2, bias=False, padding_mode="reflect"),
         tnn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2, bias=False, padding_mode="reflect")),
        (nn.Conv1d(2, 4, 3, padding="same"), tnn.Conv1d(2, 4, 3, padding="same")),
        (nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1), tnn.ConvTranspose2d(4, 2, 3, stride=2,
                                                                                      output_padding=1)),
        (nn.AvgPool2d(3, 2, 1), tnn.AvgPool2d(3, 2, 1)),
        (nn.AdaptiveAvgPool2d((2, 3)), tnn.AdaptiveAvgPool2d((2, 3))),
        (nn.LeakyReLU(0.2), tnn.LeakyReLU(0.2)),
        (nn.ELU(), tnn.ELU()),
        (nn.GELU("tanh"), tnn.GELU("tanh")),
        (nn.Softmax(1), tnn.Softmax(1)),
        (nn.BatchNorm1d(3, momentum=None, affine=False), tnn.BatchNorm1d(3, momentum=None, affine=False)),
        (nn.BatchNorm2d(3, bias=False), tnn.BatchNorm2d(3, bias=False)),
        (nn.Flatten(), tnn.Flatten()),
        (nn.Identity(), tnn.Identity()),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


# ---------------------------------------------------------------- Sequential


def test_sequential_indexing_and_append():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert len(model) == 2 and isinstance(model[-1], nn.ReLU)
    assert isinstance(model[0:1], nn.Sequential) and len(model[0:1]) == 1
    model.append(nn.Linear(3, 1))
    assert [n for n, _ in model.named_children()] == ["0", "1", "2"]
    assert model(np.ones((4, 2), dtype=np.float32)).shape == (4, 1)
    with pytest.raises(IndexError, match="out of range"):
        model[3]
    with pytest.raises(TypeError, match="must be a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)
