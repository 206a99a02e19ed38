"""Fixtures of the figure tests: a real photograph, real MNIST-1D signals, a tiny model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import cnnlab  # noqa: E402
from cnnlab import nn  # noqa: E402


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """Grace Hopper's portrait from matplotlib's sample data, grey, 64 x 80, in [0, 1]."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = Image.open(f).convert("L").resize((64, 80))
    return np.asarray(img, dtype=np.float64) / 255


@pytest.fixture(scope="session")
def signals() -> tuple[np.ndarray, np.ndarray]:
    """The first 64 MNIST-1D test signals ``(64, 1, 40)`` and labels (skips without mnist1d)."""
    pytest.importorskip("mnist1d")
    from cnnlab.data import load_mnist1d

    _, _, x_test, y_test = load_mnist1d()
    return x_test[:64, None].astype(np.float32), y_test[:64].astype(np.int64)


@pytest.fixture()
def image_model() -> nn.Sequential:
    cnnlab.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(6 * 38 * 30, 10))


def png_size(path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        return img.size


def expected_size(fig) -> tuple[int, int]:
    w, h = fig.get_size_inches() * fig.dpi
    return round(w), round(h)
