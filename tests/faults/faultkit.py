"""Shared helpers of the fault suite: a tiny IDX 'MNIST', a subprocess runner, one-line checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import write_idx

SRC = str(Path(__file__).resolve().parents[2] / "src")
SPEC = "c4k3p1-relu-mp4-flat-fc10"


def images_with_labels(n, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 5)
        x[i, 2 + 12 * r:8 + 12 * r, 1 + 5 * c:7 + 5 * c] = 250
    return x, y.astype(np.uint8)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A 100 / 40 image 'MNIST' in an isolated CNNLAB_DATA folder; no network; cwd = tmp_path."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for split, n, seed in (("train", 100, 0), ("t10k", 40, 1)):
        x, y = images_with_labels(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{split}-labels-idx1-ubyte", y)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("CNNLAB_MIRROR", f"http://127.0.0.1:{s.getsockname()[1]}/")
    monkeypatch.setenv("PYTHONPATH", SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args, **kwargs):
    """``python -m cnnlab ARGS`` in a subprocess: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kwargs)
    return proc.returncode, proc.stdout, proc.stderr


def train_args(out, epochs=2, *extra):
    return ["train", "--data", "mnist", "--model", SPEC, "--epochs", epochs, "--batch-size", 10, "--lr", "0.01",
            "--no-progress", "--out", out, *extra]


def assert_one_line(code, err, fragment, exit_code=2, command="cnnlab"):
    lines = [line for line in err.splitlines() if not line.startswith("cnnlab: downloading ")]
    assert code == exit_code, err
    assert len(lines) == 1, err
    assert lines[0].startswith(command), err
    assert fragment in lines[0], err
    assert "Traceback" not in err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
