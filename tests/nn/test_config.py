"""to_config / from_config: JSON round trips of every layer and of nested models; errors."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor

from .cases import CASES

EXTRA = [
    nn.Conv2d(2, 3, 3, padding=((1, 2), (0, 1)), dtype=np.float64),
    nn.Conv1d(2, 2, 2, padding="valid", bias=False),
    nn.MaxPool2d((2, 3), stride=(1, 2), padding=(1, 1), return_indices=True),
    nn.AvgPool1d(2),
    nn.AdaptiveAvgPool2d((None, 3)),
    nn.AdaptiveMaxPool1d(4, return_indices=True),
    nn.BatchNorm1d(3, momentum=None, affine=False, track_running_stats=False),
    nn.Dropout(0.25),
    nn.CrossEntropyLoss(weight=[1.0, 2.0, 0.5], label_smoothing=0.1, ignore_index=2, reduction="sum"),
    nn.NLLLoss(reduction="none"),
    nn.MSELoss(),
    nn.BCEWithLogitsLoss(pos_weight=np.array([2.0, 1.0])),
    nn.Sequential(OrderedDict(body=nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), head=nn.Linear(2, 1))),
]
MODULES = [case.make() for case in CASES] + EXTRA


@pytest.mark.parametrize("module", MODULES, ids=[type(m).__name__ + str(i) for i, m in enumerate(MODULES)])
def test_json_round_trip(module):
    config = module.to_config()
    rebuilt = nn.from_config(json.loads(json.dumps(config)))
    assert type(rebuilt) is type(module)
    assert rebuilt.to_config() == config
    assert repr(rebuilt) == repr(module)
    assert {k: (v.shape, v.dtype) for k, v in rebuilt.state_dict().items()} == {
        k: (v.shape, v.dtype) for k, v in module.state_dict().items()}


def test_rebuilt_model_with_its_state_computes_the_same():
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(3, 2))
    model(np.random.default_rng(0).standard_normal((4, 1, 5, 5)).astype(np.float32))  # move the running stats
    model.eval()
    rebuilt = nn.from_config(json.loads(json.dumps(model.to_config())))
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    x = Tensor(np.random.default_rng(1).standard_normal((2, 1, 5, 5)).astype(np.float32))
    np.testing.assert_array_equal(rebuilt(x).data, model(x).data)


def test_config_shape():
    config = nn.Sequential(nn.Linear(2, 3)).to_config()
    assert config == {"class": "Sequential", "args": {}, "modules": {"0": {
        "class": "Linear", "args": {"in_features": 2, "out_features": 3, "bias": True, "dtype": "float32"}}}}


def test_custom_modules_need_config_args_and_registration():
    class Net(nn.Module):
        def __init__(self, width=4):
            super().__init__()
            self.width = width
            self.fc = nn.Linear(2, width)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(NotImplementedError, match="does not define config_args"):
        Net().to_config()
    Net.config_args = lambda self: {"width": self.width}
    config = Net(7).to_config()
    with pytest.raises(ValueError, match="unknown module class 'Net'"):
        nn.from_config(config)
    nn.register_module(Net)
    try:
        rebuilt = nn.from_config(config)
        assert isinstance(rebuilt, Net) and rebuilt.fc.out_features == 7
        assert "Net" in nn.registered_modules()
    finally:
        from cnnlab.nn import config as config_module

        del config_module._REGISTRY["Net"]


def test_register_module_errors():
    with pytest.raises(TypeError, match="expected a Module subclass"):
        nn.register_module(int)

    class Linear(nn.Module):  # same name as a built-in
        pass

    with pytest.raises(ValueError, match="already registered as 'Linear'"):
        nn.register_module(Linear)


@pytest.mark.parametrize(
    ("config", "exc", "match"),
    [
        ([1], TypeError, "config must be a dict"),
        ({"args": {}}, ValueError, "no 'class' entry"),
        ({"class": "Evil", "args": {}}, ValueError, "unknown module class 'Evil'"),
        ({"class": "os.system", "args": {}}, ValueError, "unknown module class"),
        ({"class": 3}, TypeError, "'class' must be a str"),
        ({"class": "ReLU", "code": "x"}, ValueError, r"unknown config entries \['code'\]"),
        ({"class": "ReLU", "args": [1]}, TypeError, "'args' of ReLU must be a dict"),
        ({"class": "Linear", "args": {"in_features": 2}}, TypeError, "cannot build Linear"),
        ({"class": "Linear", "args": {"in_features": 2, "out_features": 0}}, ValueError, "out_features must be"),
        ({"class": "ReLU", "modules": {}}, ValueError, "ReLU is not a container"),
        ({"class": "Sequential", "args": {"x": 1}}, ValueError, "Sequential takes no args"),
        ({"class": "Sequential", "modules": [1]}, TypeError, "'modules' must be a dict"),
        ({"class": "Sequential", "modules": {"0": {"class": "Nope"}}}, ValueError, "unknown module class 'Nope'"),
    ],
)
def test_from_config_errors(config, exc, match):
    with pytest.raises(exc, match=match):
        nn.from_config(config)
