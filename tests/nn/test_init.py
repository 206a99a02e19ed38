"""cnnlab.nn.init and cnnlab.random: PyTorch's formulas, distributions, reproducibility, errors;
the layers' default initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import random as cnn_random
from cnnlab.nn import init

from .helpers import needs_torch, torch

NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "sigmoid", "tanh", "relu", "selu",
                  "leaky_relu"]


@needs_torch
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_calculate_gain_matches_torch(nonlinearity):
    assert init.calculate_gain(nonlinearity) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity), rel=1e-15)
    if nonlinearity == "leaky_relu":
        assert init.calculate_gain(nonlinearity, 0.2) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, 0.2))


@needs_torch
@pytest.mark.parametrize("shape", [(4, 3), (8, 3, 5), (6, 2, 3, 4), (2, 3, 1, 2, 2)])
def test_fans_match_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.calculate_fan_in_and_fan_out(np.zeros(shape)) == expected


# the published table (PyTorch's calculate_gain docs; He et al. 2015 for the ReLU family;
# Klambauer et al. 2017 for SELU's 3/4)
GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "conv_transpose2d": 1.0, "sigmoid": 1.0,
         "tanh": 5 / 3, "relu": math.sqrt(2.0), "selu": 3 / 4, "leaky_relu": math.sqrt(2 / (1 + 0.01**2))}


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_calculate_gain_follows_the_table(nonlinearity):
    assert init.calculate_gain(nonlinearity) == pytest.approx(GAINS[nonlinearity], rel=1e-15)
    if nonlinearity == "leaky_relu":
        assert init.calculate_gain(nonlinearity, 0.2) == pytest.approx(math.sqrt(2 / 1.04), rel=1e-15)


@pytest.mark.parametrize("shape", [(4, 3), (8, 3, 5), (6, 2, 3, 4), (2, 3, 1, 2, 2)])
def test_fans_follow_their_definition(shape):
    """fan_in = in_channels * receptive field, fan_out = out_channels * receptive field, the
    receptive field being the product of the sizes after the first two."""
    receptive = 1
    for size in shape[2:]:
        receptive *= size
    assert init.calculate_fan_in_and_fan_out(np.zeros(shape)) == (shape[1] * receptive, shape[0] * receptive)


def _sample(fill, shape=(256, 64, 3), **kwargs):
    return fill(np.zeros(shape), generator=np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize(
    ("fill", "kwargs", "bound"),
    [
        (init.kaiming_uniform_, {}, math.sqrt(2) * math.sqrt(3 / (64 * 3))),
        (init.kaiming_uniform_, {"a": math.sqrt(5)}, 1 / math.sqrt(64 * 3)),
        (init.kaiming_uniform_, {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(2) * math.sqrt(3 / (256 * 3))),
        (init.xavier_uniform_, {"gain": 2.0}, 2.0 * math.sqrt(6 / (64 * 3 + 256 * 3))),
        (init.uniform_, {"a": -0.3, "b": 0.3}, 0.3),
    ],
)
def test_uniform_fills_reach_their_bound(fill, kwargs, bound):
    w = _sample(fill, **kwargs)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.999 * bound
    assert abs(w.mean()) < 0.01 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)


@pytest.mark.parametrize(
    ("fill", "kwargs", "std"),
    [
        (init.kaiming_normal_, {}, math.sqrt(2) / math.sqrt(64 * 3)),
        (init.kaiming_normal_, {"mode": "fan_out", "nonlinearity": "tanh"}, (5 / 3) / math.sqrt(256 * 3)),
        (init.kaiming_normal_, {"a": 0.1, "nonlinearity": "leaky_relu"}, math.sqrt(2 / 1.01) / math.sqrt(64 * 3)),
        (init.xavier_normal_, {}, math.sqrt(2 / (64 * 3 + 256 * 3))),
        (init.normal_, {"mean": 0.0, "std": 0.02}, 0.02),
    ],
)
def test_normal_fills_have_their_std(fill, kwargs, std):
    w = _sample(fill, **kwargs)
    assert w.std() == pytest.approx(std, rel=0.01)
    assert abs(w.mean()) < 0.01 * std


@pytest.mark.parametrize(
    ("name", "kwargs", "std"),
    [
        # shape (128, 32, 3, 3): fan_in 288, fan_out 1152; a uniform on [-b, b] has std b / sqrt(3)
        ("kaiming_uniform_", {"a": math.sqrt(5)}, math.sqrt(2 / 6) * math.sqrt(3 / 288) / math.sqrt(3)),
        ("kaiming_normal_", {"mode": "fan_out"}, math.sqrt(2) / math.sqrt(1152)),
        ("xavier_uniform_", {}, math.sqrt(6 / (288 + 1152)) / math.sqrt(3)),
        ("xavier_normal_", {"gain": 0.5}, 0.5 * math.sqrt(2 / (288 + 1152))),
    ],
)
def test_spread_follows_the_formulas(name, kwargs, std):
    """The same fills as the torch comparison below, against the formulas (36,864 draws, seeded:
    the sample std is within 2% of its expectation with overwhelming probability)."""
    ours = getattr(init, name)(np.zeros((128, 32, 3, 3)), generator=np.random.default_rng(1), **kwargs)
    assert ours.std() == pytest.approx(std, rel=0.02)
    assert abs(ours.mean()) < 0.02 * std


@needs_torch
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("kaiming_uniform_", {"a": math.sqrt(5)}), ("kaiming_normal_", {"mode": "fan_out"}),
     ("xavier_uniform_", {}), ("xavier_normal_", {"gain": 0.5})],
)
def test_spread_matches_torch(name, kwargs):
    shape = (128, 32, 3, 3)
    ours = getattr(init, name)(np.zeros(shape), generator=np.random.default_rng(1), **kwargs)
    torch.manual_seed(1)
    theirs = getattr(torch.nn.init, name)(torch.empty(shape), **kwargs).numpy()
    assert ours.std() == pytest.approx(theirs.std(), rel=0.02)


def test_constant_fills():
    w = nn.Parameter(np.full((2, 3), 5.0, dtype=np.float32))
    assert init.zeros_(w) is w and np.all(w.data == 0) and w.dtype == np.float32
    init.ones_(w)
    assert np.all(w.data == 1)
    init.constant_(w, -0.5)
    assert np.all(w.data == -0.5)


def test_fills_work_in_place_on_parameters_and_keep_their_dtype():
    layer = nn.Linear(10, 20)
    data = layer.weight.data
    init.kaiming_normal_(layer.weight)
    assert layer.weight.data is data and data.dtype == np.float32 and data.std() > 0


def test_manual_seed_makes_layers_reproducible():
    cnn_random.manual_seed(3)
    first = nn.Conv2d(3, 4, 3).state_dict()
    second_model = nn.Linear(4, 2).state_dict()
    cnn_random.manual_seed(3)
    again, second_again = nn.Conv2d(3, 4, 3).state_dict(), nn.Linear(4, 2).state_dict()
    assert all(np.array_equal(v, again[k]) for k, v in first.items())
    assert all(np.array_equal(v, second_again[k]) for k, v in second_model.items())
    cnn_random.manual_seed(4)
    assert not np.array_equal(nn.Conv2d(3, 4, 3).weight.data, first["weight"])


def test_generator_argument_leaves_the_default_alone():
    cnn_random.manual_seed(5)
    expected = cnn_random.default_generator().random()
    cnn_random.manual_seed(5)
    a = init.uniform_(np.zeros(4), generator=np.random.default_rng(9))
    b = init.uniform_(np.zeros(4), generator=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert cnn_random.default_generator().random() == expected


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: init.kaiming_uniform_(np.zeros(3)), ValueError, "at least 2 dims"),
        (lambda: init.kaiming_uniform_(np.zeros((2, 2), dtype=int)), TypeError, "must be floating point"),
        (lambda: init.kaiming_uniform_([[0.0]]), TypeError, "must be a Tensor, Parameter or numpy array"),
        (lambda: init.kaiming_uniform_(np.zeros((2, 2)), mode="fan"), ValueError, "mode must be one of"),
        (lambda: init.kaiming_normal_(np.zeros((2, 2)), nonlinearity="swish"), ValueError, "nonlinearity must be"),
        (lambda: init.uniform_(np.zeros(2), 1.0, 0.0), ValueError, "a must be <= b"),
        (lambda: init.normal_(np.zeros(2), std=-1.0), ValueError, "std must be non-negative"),
        (lambda: init.normal_(np.zeros(2), generator=0), TypeError, "generator must be a numpy.random.Generator"),
        (lambda: init.kaiming_uniform_(np.zeros((3, 0, 2))), ValueError, "fan_in is 0"),
        (lambda: cnn_random.manual_seed(-1), ValueError, "non-negative"),
        (lambda: cnn_random.manual_seed(1.5), TypeError, "seed must be an int"),
    ],
)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------- default initialisation of layers

# Each check below may fail by chance with probability at most 1e-10 per call, so a test that
# makes three of them fails by chance with probability below 1e-9.  ln(2e10) = 23.72.
_LOG_TAIL = math.log(2e10)


def _assert_uniform(w: np.ndarray, bound: float) -> None:
    """``w`` holds ``n`` independent draws from U(-bound, bound): checks that hold for such a
    sample except with probability < 1e-10 each.

    - ``max |w| <= bound`` always.
    - ``max |w| > (1 - eps) * bound``: all ``n`` draws land inside ``(1 - eps) * bound`` with
      probability ``(1 - eps)^n <= exp(-eps * n)``; ``eps = 23.72 / n`` makes that < 1e-10.
    - the second moment: ``u = (w / bound)^2`` lies in [0, 1] with mean 1/3, so by Hoeffding
      ``P(|mean(u) - 1/3| >= t) <= 2 exp(-2 n t^2)``, < 1e-10 for ``t = sqrt(23.72 / (2 n))``.
    - the mean: ``w / bound`` lies in [-1, 1] with mean 0, so ``P(|mean| >= m) <= 2 exp(-n m^2 / 2)``,
      < 1e-10 for ``m = sqrt(2 * 23.72 / n)``.
    For n >= 24,000 that is eps < 0.001, t < 0.022 (6.6% of 1/3) and m < 0.045.
    """
    n = w.size
    u = np.abs(w.astype(np.float64)) / bound
    assert u.max() <= 1.0
    assert u.max() > 1.0 - _LOG_TAIL / n
    assert abs(np.mean(u**2) - 1 / 3) < math.sqrt(_LOG_TAIL / (2 * n))
    assert abs(np.mean(w / bound)) < math.sqrt(2 * _LOG_TAIL / n)


@pytest.mark.parametrize(
    ("make", "fan_in"),
    [
        # layers wide enough (>= 24,000 weights) for the checks of _assert_uniform; built inside
        # the test, after the autouse fixture has seeded cnnlab's default generator
        (lambda: nn.Conv2d(6, 512, 5), 6 * 25),
        (lambda: nn.Conv1d(4, 4096, 3, groups=2), 2 * 3),
        (lambda: nn.Conv3d(2, 2048, 2), 2 * 8),
        (lambda: nn.ConvTranspose2d(2048, 8, 3, groups=2), 4 * 9),  # fan_in from the weight (in, out/groups, k)
        (lambda: nn.Linear(30, 2000), 30),
    ],
    ids=["conv2d", "conv1d-groups", "conv3d", "conv_transpose2d", "linear"],
)
def test_conv_and_linear_default_initialisation(make, fan_in):
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    assert layer.weight.data.size >= 24_000
    _assert_uniform(layer.weight.data, bound)
    assert np.abs(layer.bias.data).max() <= bound  # few biases: only the bound is certain


@needs_torch
def test_default_spread_matches_torch():
    """Both libraries draw the weights of Conv2d(32, 64, 3) from U(-1/sqrt(288), 1/sqrt(288))."""
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(32, 256, 3).weight.detach().numpy()
    ours = nn.Conv2d(32, 256, 3).weight.data
    for w in (ours, theirs):
        _assert_uniform(w, 1 / math.sqrt(32 * 9))


def test_batchnorm_default_initialisation():
    bn = nn.BatchNorm2d(4)
    np.testing.assert_array_equal(bn.weight.data, 1)
    np.testing.assert_array_equal(bn.bias.data, 0)
    np.testing.assert_array_equal(bn.running_mean.data, 0)
    np.testing.assert_array_equal(bn.running_var.data, 1)
    assert bn.num_batches_tracked.data == 0 and bn.num_batches_tracked.dtype == np.int64
