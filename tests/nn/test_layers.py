"""Layer construction: stored arguments, shapes, argument errors; the layers' extras
(ConvTranspose's output_size, MaxPool's indices, array inputs)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.nn as nn
from cnnlab import Tensor
from cnnlab.functional._naive import naive_conv_transpose

from .helpers import needs_torch, to_numpy, torch


def test_conv_stores_normalised_arguments_and_weight_shapes():
    conv = nn.Conv2d(4, 6, (3, 5), stride=2, padding=1, groups=2)
    assert conv.kernel_size == (3, 5) and conv.stride == (2, 2) and conv.padding == (1, 1)
    assert conv.weight.shape == (6, 2, 3, 5) and conv.bias.shape == (6,)
    up = nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert up.weight.shape == (4, 3, 3, 3)
    assert nn.Conv2d(1, 1, 3, padding=((1, 2), 0)).padding == ((1, 2), 0)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: nn.Conv2d(0, 2, 3), ValueError, "in_channels must be a positive int"),
        (lambda: nn.Conv2d(2.0, 2, 3), TypeError, "in_channels must be a positive int"),
        (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "in_channels 3 is not divisible by groups 2"),
        (lambda: nn.Conv2d(4, 3, 3, groups=2), ValueError, "out_channels 3 is not divisible by groups 2"),
        (lambda: nn.Conv2d(1, 1, (3, 3, 3)), ValueError, "kernel_size must be an int or a tuple of 2 ints"),
        (lambda: nn.Conv2d(1, 1, 0), ValueError, "kernel_size must be positive"),
        (lambda: nn.Conv2d(1, 1, 3, padding="full"), ValueError, "padding must be one of"),
        (lambda: nn.Conv2d(1, 1, 3, padding=-1), ValueError, "padding must be non-negative"),
        (lambda: nn.Conv2d(1, 1, 3, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
        (lambda: nn.Conv2d(1, 1, 3, bias=1), TypeError, "bias must be a bool"),
        (lambda: nn.Conv1d(1, 1, 3, dtype=np.float16), TypeError, "dtype must be float32 or float64"),
        (lambda: nn.ConvTranspose2d(1, 1, 3, padding_mode="reflect"), ValueError, "only padding_mode 'zeros'"),
        (lambda: nn.ConvTranspose2d(1, 1, 3, padding="same"), ValueError, "padding must be an int or a tuple"),
        (lambda: nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2), ValueError,
         "output_padding must be smaller than stride or dilation"),
        (lambda: nn.Linear(0, 2), ValueError, "in_features must be a positive int"),
        (lambda: nn.MaxPool2d(0), ValueError, "kernel_size must be positive"),
        (lambda: nn.MaxPool2d(2, ceil_mode=None), TypeError, "ceil_mode must be a bool"),
        (lambda: nn.AvgPool2d(2, divisor_override=0), ValueError, "divisor_override must be a positive int"),
        (lambda: nn.AvgPool2d(2, divisor_override=1.0), TypeError, "divisor_override must be a positive int"),
        (lambda: nn.AdaptiveAvgPool2d((1, 2, 3)), ValueError, "output_size must be an int or a tuple of 2"),
        (lambda: nn.AdaptiveAvgPool2d(0), ValueError, "output_size must be positive"),
        (lambda: nn.LeakyReLU("a"), TypeError, "negative_slope must be a real number"),
        (lambda: nn.GELU("erf"), ValueError, "approximate must be one of"),
        (lambda: nn.Softmax(1.0), TypeError, "dim must be an int"),
        (lambda: nn.Flatten(start_dim="1"), TypeError, "start_dim must be an int"),
    ],
)
def test_constructor_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_forward_errors_name_the_problem():
    with pytest.raises(ValueError, match="weight expects 3 input channels"):
        nn.Conv2d(3, 2, 3)(np.zeros((1, 2, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="kernel is larger than the padded input"):
        nn.Conv2d(1, 1, 5)(np.zeros((1, 1, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="does not match in_features 4"):
        nn.Linear(4, 2)(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="start_dim 2 comes after end_dim 1"):
        nn.Flatten(2, 1)(np.zeros((2, 3, 4)))


@needs_torch
@pytest.mark.parametrize("output_size", [(9, 10), (1, 2, 10, 9)])
def test_conv_transpose_output_size_matches_torch(output_size):
    torch.manual_seed(0)
    reference = torch.nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1).double()
    layer = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1).double()
    layer.load_state_dict(reference.state_dict())
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    expected = reference(torch.tensor(x), output_size=list(output_size))
    y = layer(x, output_size=output_size)
    assert y.shape == tuple(expected.shape)
    np.testing.assert_allclose(y.data, to_numpy(expected), rtol=1e-12)
    with pytest.raises(ValueError, match=r"output_size 11 in spatial dim 0 is not reachable; it must be in \[9, 10\]"):
        layer(x, output_size=(11, 9))


@pytest.mark.parametrize("output_size", [(9, 10), (1, 2, 10, 9)])
def test_conv_transpose_output_size_follows_the_scatter_definition(output_size):
    """Without torch: output_size picks output_padding = requested - minimal size per axis; the
    values are the loop reference's scatter with that output_padding."""
    layer = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1).double()
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    y = layer(x, output_size=output_size)
    minimal = (5 - 1) * 2 - 2 * 1 + (3 - 1) + 1  # 9
    extra = [size - minimal for size in output_size[-2:]]
    expected = naive_conv_transpose(x, layer.weight.data, layer.bias.data, (2, 2), ((1, 1), (1, 1)), extra, 1,
                                    (1, 1))
    assert y.shape == (1, 2, *output_size[-2:])
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match=r"output_size 11 in spatial dim 0 is not reachable; it must be in \[9, 10\]"):
        layer(x, output_size=(11, 9))


def test_max_pool_return_indices():
    pool = nn.MaxPool2d(2, return_indices=True)
    y, indices = pool(Tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True))
    np.testing.assert_array_equal(indices, [[[[5, 7], [13, 15]]]])
    y.sum().backward()


def test_layers_accept_arrays_and_return_arrays_when_nothing_is_a_tensor():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    for layer in (nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten()):
        assert isinstance(layer(x), np.ndarray)
    assert isinstance(nn.Conv2d(2, 1, 3)(x), Tensor)  # its weight is a Parameter


def test_same_padding_keeps_the_size():
    for stride, size in ((1, 7), (1, 8), (2, 7)):
        conv = nn.Conv2d(1, 1, 4, stride=stride, padding="same")
        y = conv(np.zeros((1, 1, size, size), dtype=np.float32))
        assert y.shape[-1] == -(-size // stride)
