"""Fixtures of the web tests: a runs folder with a tiny trained image model and an MNIST-1D run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("multipart")
pytest.importorskip("matplotlib")

import cnnlab  # noqa: E402
from cnnlab import functional as F  # noqa: E402
from cnnlab import nn, optim  # noqa: E402

SRC = str(Path(cnnlab.__file__).resolve().parent.parent)
IMAGE_META = {"data": "bars", "classes": ["vertical", "horizontal"], "input_shape": [1, 28, 28],
              "preprocess": {"pixels": True, "mean": 0.1, "std": 0.3}}


def bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28 x 28 images of one thick bar: vertical (class 0) or horizontal (class 1)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 2, size=n)
    for i in range(n):
        a, w = rng.integers(4, 20), rng.integers(3, 7)
        if y[i] == 0:
            x[i, 0, 3:25, a:a + w] = 1.0
        else:
            x[i, 0, a:a + w, 3:25] = 1.0
    return x, y.astype(np.int64)


def train_bars_model() -> nn.Sequential:
    """A tiny CNN trained for a few dozen steps to tell vertical from horizontal bars."""
    cnnlab.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 12 * 12, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = bars(256, 0)
    x = (x - 0.1) / 0.3
    for step in range(40):
        batch = slice((step * 32) % 256, (step * 32) % 256 + 32)
        loss = F.cross_entropy(model(cnnlab.Tensor(x[batch])), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    (root / "bars").mkdir()
    cnnlab.save(train_bars_model(), root / "bars" / "best.safetensors", metadata=IMAGE_META)
    return root


@pytest.fixture(scope="session")
def mnist1d_run(runs_dir) -> str:
    """A real run folder written by ``cnnlab train`` (3 short epochs); skips without mnist1d."""
    pytest.importorskip("mnist1d")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
    subprocess.run([sys.executable, "-m", "cnnlab", "train", "--data", "mnist1d", "--model", "mnist1d-cnn", "--epochs",
                    "2", "--limit", "400", "--out", str(runs_dir / "sig"), "--no-progress"], check=True, env=env,
                   capture_output=True, timeout=120)
    return "sig"


@pytest.fixture()
def client(runs_dir):
    from starlette.testclient import TestClient

    from cnnlab.web import Limits, create_app

    limits = Limits(max_body=200_000, max_upload=100_000, max_pixels=250_000, max_epochs=5)
    with TestClient(create_app(runs_dir, limits), raise_server_exceptions=False) as c:
        yield c
