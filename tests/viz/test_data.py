"""A checkpoint's model (also from last.safetensors), its test data and its preprocessing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab import viz

SRC = str(Path(cnnlab.__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    pytest.importorskip("mnist1d")
    out = tmp_path_factory.mktemp("run") / "r"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
    subprocess.run([sys.executable, "-m", "cnnlab", "train", "--data", "mnist1d", "--model", "mnist1d-logreg",
                    "--epochs", "1", "--limit", "200", "--out", str(out), "--no-progress"], check=True, env=env,
                   capture_output=True, timeout=120)
    return out


def test_last_and_best_checkpoints_hold_the_same_model(run):
    best, last = viz.load_checkpoint(run / "best.safetensors"), viz.load_checkpoint(run / "last.safetensors")
    for (name, a), (_, b) in zip(best.state_dict().items(), last.state_dict().items(), strict=True):
        assert np.array_equal(np.asarray(a.data if hasattr(a, "data") else a),
                              np.asarray(b.data if hasattr(b, "data") else b)), name


def test_load_checkpoint_refuses_other_files(tmp_path):
    path = tmp_path / "w.safetensors"
    cnnlab.save({"w": np.ones(3, dtype=np.float32)}, path)
    with pytest.raises(cnnlab.CheckpointError, match="records no architecture"):
        viz.load_checkpoint(path)


def test_mnist1d_test_set():
    pytest.importorskip("mnist1d")
    x, y = viz.load_test_set("mnist1d")
    assert x.shape == (1000, 1, 40) and y.shape == (1000,)
    with pytest.raises(ValueError, match="not for data 'cifar'"):
        viz.load_test_set("cifar")


def test_prepare_input_reshapes_and_normalises():
    meta = {"input_shape": [1, 2, 2], "preprocess": {"pixels": True, "mean": 0.5, "std": 0.25}}
    out = viz.prepare_input(meta, [[0.5, 1.0], [0.0, 0.75]])
    assert out.shape == (1, 2, 2)
    assert out.ravel().tolist() == [0.0, 2.0, -2.0, 1.0]
    assert viz.prepare_input({"input_shape": [1, 3]}, [1, 2, 3]).tolist() == [[1.0, 2.0, 3.0]]
    with pytest.raises(ValueError, match=r"takes shape \(1, 2, 2\)"):
        viz.prepare_input(meta, [1, 2, 3])


def test_run_figures_from_the_model(run):
    meta = cnnlab.load_metadata(run / "best.safetensors")["metadata"]
    model = viz.load_checkpoint(run / "best.safetensors")
    x, y = viz.load_test_set("mnist1d")
    p = viz.predict_probabilities(model, x[:300], meta)
    assert p.shape == (300, 10) and np.allclose(p.sum(axis=1), 1)
    written = viz.write_run_figures(run, model=model, metadata=meta, x=x[:300], targets=y[:300],
                                    classes=meta["classes"])
    assert [w.name for w in written] == ["curves.png", "confusion.png", "most_wrong.png"]


def test_probabilities_of_a_whole_set_compile_no_kernel(monkeypatch):
    """One softmax over every example (here 4,000 x 10 scores, above the compile threshold) runs
    the NumPy formulas: a cold ``cnnlab train`` would otherwise compile a kernel for its figures."""
    from cnnlab import nn
    from cnnlab.functional import _backend, _softmax

    used = []
    real = _softmax._kernels_apply
    monkeypatch.setattr(_softmax, "_kernels_apply", lambda x: used.append(real(x)) or used[-1])
    rng = np.random.default_rng(0)
    model = nn.Linear(4, 10)
    x = rng.standard_normal((4000, 4)).astype(np.float32)
    p = viz.predict_probabilities(model, x)
    scores = np.asarray(model(cnnlab.Tensor(x)).data, dtype=np.float64)
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, expected / expected.sum(axis=1, keepdims=True), rtol=1e-12)
    assert used == [False]
    if _backend.numba_available():  # (the kernels would take it otherwise)
        assert _backend.float_kernels_take(scores)
