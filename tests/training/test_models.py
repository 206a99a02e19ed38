"""cnnlab.training.models: built-in models (shapes, parameter counts, the paper's models in torch) and spec strings."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab import nn
from cnnlab.training.models import MODELS, Residual, SpecError, build_model, output_shape, parse_spec


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# built-in models


@pytest.mark.parametrize("name, params", [
    ("mnist1d-cnn", 5210),      # the paper's notebook prints "ConvBase model with 5210 parameters"
    ("mnist1d-mlp", 15210),     # "MLPBase model with 15210 parameters"
    ("mnist1d-logreg", 410),    # "LinearBase model with 410 parameters"
    ("lenet5", 61706),          # 156 + 2416 + 48120 + 10164 + 850
])
def test_parameter_counts(name, params):
    assert n_params(build_model(name)) == params


@pytest.mark.parametrize("name", list(MODELS))
def test_every_builtin_maps_its_input_to_class_scores(name):
    model = build_model(name, num_classes=7)
    shape = MODELS[name].input_shape
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    out = model(cnnlab.Tensor(x))
    assert out.shape == (3, 7) and out.dtype == np.float32
    rebuilt = nn.from_config(model.to_config())
    assert rebuilt.to_config() == model.to_config()


def test_mnist1d_cnn_layers_are_the_papers():
    model = build_model("mnist1d-cnn")
    convs = [m for m in model if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 25, (5,), (2,), (1,)), (25, 25, (3,), (2,), (1,)), (25, 25, (3,), (2,), (1,))]
    assert model[-1].in_features == 125  # 25 channels x 5 positions after three stride-2 convs on 40


def test_convnet_and_lenet_fit_other_inputs():
    assert output_shape(build_model("convnet", (3, 32, 32), num_classes=4), (3, 32, 32)) == (4,)
    assert build_model("lenet5", (1, 32, 32))[7].in_features == 16 * 6 * 6


def test_builtin_rejects_wrong_input_kind():
    with pytest.raises(ValueError, match="model 'lenet5' does not fit inputs of shape \\(1, 40\\)"):
        build_model("lenet5", (1, 40))
    with pytest.raises(ValueError, match="mnist1d-cnn.*\\(1, 28, 28\\)"):
        build_model("mnist1d-cnn", (1, 28, 28))


def test_residual_adds_its_body():
    body = nn.Linear(3, 3)
    block = Residual(body)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(block(x).data, x + body(x).data)
    with pytest.raises(TypeError, match="body must be a Module"):
        Residual(lambda v: v)


def _torch_paper_models(torch):
    """The MNIST-1D paper's three models, written in torch as in the authors' notebooks/models.py."""
    tnn = torch.nn

    class ConvBase(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv1d(1, 25, 5, stride=2, padding=1)
            self.conv2 = tnn.Conv1d(25, 25, 3, stride=2, padding=1)
            self.conv3 = tnn.Conv1d(25, 25, 3, stride=2, padding=1)
            self.linear = tnn.Linear(125, 10)

        def forward(self, x):
            x = x.view(-1, 1, x.shape[-1])
            h = self.conv3(self.conv2(self.conv1(x).relu()).relu()).relu()
            return self.linear(h.view(h.shape[0], -1))

    class MLPBase(tnn.Module):
        def __init__(self):
            super().__init__()
            self.linear1, self.linear2, self.linear3 = tnn.Linear(40, 100), tnn.Linear(100, 100), tnn.Linear(100, 10)

        def forward(self, x):
            h = self.linear1(x).relu()
            h = h + self.linear2(h).relu()
            return self.linear3(h)

    return {"mnist1d-cnn": ConvBase(), "mnist1d-mlp": MLPBase(), "mnist1d-logreg": tnn.Linear(40, 10)}


@pytest.mark.parametrize("name", ["mnist1d-cnn", "mnist1d-mlp", "mnist1d-logreg"])
def test_mnist1d_models_match_the_papers_torch_models(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = _torch_paper_models(torch)[name]
    ours = build_model(name)
    assert n_params(ours) == sum(p.numel() for p in reference.parameters())
    # same weights (matched in order, shapes equal) -> same outputs on (N, 40) signals
    ours_params = list(ours.parameters())
    ref_params = list(reference.parameters())
    assert [tuple(p.shape) for p in ours_params] == [tuple(p.shape) for p in ref_params]
    for p, q in zip(ours_params, ref_params, strict=True):
        p.data[...] = q.detach().numpy()
    x = np.random.default_rng(1).normal(size=(4, 40)).astype(np.float32)
    expected = reference(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(x[:, None, :]).data, expected, rtol=1e-5, atol=1e-5)


def test_lenet5_matches_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(0)
    reference = tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5), tnn.ReLU(),
        tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
        tnn.Linear(84, 10))
    ours = build_model("lenet5")
    ours.load_state_dict({k: v.numpy() for k, v in reference.state_dict().items()})
    x = np.random.default_rng(2).normal(size=(2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(ours(x).data, reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-4,
                               atol=1e-5)


# ---------------------------------------------------------------------------------------------
# spec strings


def test_spec_builds_the_described_layers():
    model = parse_spec("c16k3p1-bn-relu-mp2-c32k3s2p1nb-relu-ap2-flat-drop0.25-fc10", (1, 28, 28))
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "AvgPool2d", "Flatten",
                     "Dropout", "Linear"]
    second = model[4]
    assert (second.in_channels, second.out_channels, second.stride, second.padding, second.bias) == \
        (16, 32, (2, 2), (1, 1), None)
    assert model[8].p == 0.25
    assert model[9].in_features == 32 * 3 * 3  # 28 -> pool 14 -> stride-2 conv 7 -> pool 3
    assert output_shape(model, (1, 28, 28)) == (10,)


def test_spec_1d_and_gap_and_dilation():
    model = parse_spec("c8k5s2p1d2-bn-gelu-gap-fc4nb", (2, 40))
    assert [type(m).__name__ for m in model] == ["Conv1d", "BatchNorm1d", "GELU", "AdaptiveAvgPool1d", "Flatten",
                                                  "Linear"]
    assert model[0].dilation == (2,) and model[0].in_channels == 2 and model[5].bias is None
    assert output_shape(model, (2, 40)) == (4,)


def test_spec_flat_input_and_activations():
    model = parse_spec("fc32-bn-tanh-fc16-sigmoid-fc8-elu-fc4-lrelu-fc2", (20,))
    assert output_shape(model, (20,)) == (2,)
    assert isinstance(model[1], nn.BatchNorm1d)


def test_spec_round_trips_through_a_checkpoint(tmp_path):
    pytest.importorskip("safetensors")
    model = build_model("c4k3p1-relu-mp2-flat-fc3", (1, 8, 8))
    cnnlab.save(model, tmp_path / "m.safetensors")
    loaded = cnnlab.load_model(tmp_path / "m.safetensors")
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).data, model(x).data)


@pytest.mark.parametrize("spec, match", [
    ("", "model spec is empty"),
    ("c16k3-zz-fc10", r"unknown layer 'zz' at character 7 \(layer 2\); expected one of c<out>k<k>"),
    ("c16k3--fc10", r"empty layer \(two '-' in a row\?\) at character 7 \(layer 2\)"),
    ("c16-relu", r"unknown layer 'c16' at character 1 \(layer 1\)"),
    ("c16k3-relu-fc10", r"'fc10' at character 12 \(layer 3\): needs a flat input but gets shape \(16, 26, 26\); "
                        r"put 'flat'"),
    ("c16k30-flat-fc10", r"'c16k30' at character 1 \(layer 1\): does not fit its input of shape \(1, 28, 28\)"),
    ("c4k3-mp2-mp2-mp2-mp2-mp2", r"'mp2' at character 2[0-9] \(layer [56]\): does not fit its input"),
    ("flat-c4k3", r"'c4k3' at character 6 \(layer 2\): needs a 1-d or 2-d feature map"),
    ("flat-drop1.5-fc10", r"'drop1.5' at character 6 \(layer 2\): dropout probability must be in \[0, 1\)"),
    ("c0k3-flat-fc10", r"'c0k3' at character 1 \(layer 1\): does not fit.*out_channels"),
])
def test_spec_errors_name_token_and_position(spec, match):
    with pytest.raises(SpecError, match=match):
        parse_spec(spec, (1, 28, 28))


def test_build_model_errors():
    with pytest.raises(SpecError, match="unknown model 'resnet': not a built-in model"):
        build_model("resnet", (1, 28, 28))
    with pytest.raises(ValueError, match="a spec needs input_shape"):
        build_model("c4k3-flat-fc10")
    with pytest.raises(TypeError, match="expected a model name or spec string"):
        build_model(3)
    with pytest.raises(TypeError, match="spec must be a string"):
        parse_spec(None, (1, 8))
    with pytest.raises(ValueError, match="input_shape must be 1 to 3 positive sizes"):
        parse_spec("flat", (0, 8))


def test_classify_compiles_no_softmax_kernel(monkeypatch):
    """``cnnlab evaluate``'s one softmax over the given samples runs the NumPy formulas."""
    from cnnlab import nn
    from cnnlab.functional import _softmax
    from cnnlab.training.inference import classify

    used = []
    real = _softmax._kernels_apply
    monkeypatch.setattr(_softmax, "_kernels_apply", lambda x: used.append(real(x)) or used[-1])
    model = nn.Linear(4, 10)
    x = np.random.default_rng(1).standard_normal((4000, 4)).astype(np.float32)
    ranked = classify(model, x, {}, top=2)
    assert len(ranked) == 4000 and all(len(r) == 2 and r[0][1] >= r[1][1] for r in ranked)
    assert used == [False]
