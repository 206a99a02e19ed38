"""cnnlab.training.run: a validation split of the training data chooses checkpoints; the test set is used
once, at the end; settings resolve from recipes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cnnlab.training._fit as fit_module
from cnnlab.data import Data
from cnnlab.training import RunError, resolve_settings, run

pytest.importorskip("safetensors")

SENTINEL = np.float32(1234.5)  # a value only the test set's inputs hold


def tiny_data(n_train=60, n_test=20):
    """Two classes of 1-D signals; every test input carries SENTINEL in its last sample."""
    rng = np.random.default_rng(0)

    def make(n):
        y = np.arange(n) % 2
        x = rng.normal(size=(n, 1, 12)).astype(np.float32)
        x[y == 1, 0, 3:6] += 3.0
        return x, y.astype(np.int64)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    x_test[:, 0, -1] = SENTINEL
    return Data("tiny", x_train, y_train, x_test, y_test, ["0", "1"], 0.0, 1.0, pixels=False)


def spy_on_evaluate(monkeypatch):
    """Record, for every evaluation, whether its loader yielded any test-set example."""
    calls: list[bool] = []
    real = fit_module.evaluate

    def spy(model, loader, *args, **kwargs):
        saw_test = any(bool(np.any(np.asarray(x) == SENTINEL)) for x, _ in loader)
        calls.append(saw_test)
        return real(model, loader, *args, **kwargs)

    monkeypatch.setattr(fit_module, "evaluate", spy)
    return calls


def settings(**given):
    base = {"data": "tiny", "model": "c4k3p1-relu-flat-fc2", "epochs": 3, "batch_size": 10, "lr": 0.01}
    return resolve_settings(dict(base, **given))


def test_default_validation_never_sees_the_test_set(tmp_path, monkeypatch):
    calls = spy_on_evaluate(monkeypatch)
    result = run(settings(), tmp_path / "run", progress=False, log=None, data=tiny_data())
    # one validation per epoch, none touching the test set, then the test set exactly once at the end
    assert calls == [False, False, False, True]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_source"] for r in records] == ["train-split"] * 3
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["val_source"] == "train-split"
    assert results["test_accuracy"] == result.test_accuracy


def test_the_validation_split_comes_out_of_the_training_examples(tmp_path):
    lines: list[str] = []
    run(settings(val_split=0.25), tmp_path / "run", progress=False, log=lines.append, data=tiny_data())
    assert "(45 train / 15 val held out of the training data / 20 test)" in lines[0]
    assert "the test set is used once, at the end" in lines[1]


def test_val_split_zero_uses_the_test_set_and_says_so(tmp_path, monkeypatch):
    calls = spy_on_evaluate(monkeypatch)
    lines: list[str] = []
    run(settings(val_split=0), tmp_path / "run", progress=False, log=lines.append, data=tiny_data())
    assert calls == [True, True, True, True]  # the spy can see a leak
    assert "TEST-set numbers" in lines[1]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["val_source"] for r in records} == {"test"}


def test_resolve_settings_takes_given_then_recipe_then_defaults():
    s = resolve_settings({"data": "fashion-mnist", "epochs": 2})
    assert (s["model"], s["epochs"], s["optimizer"], s["val_split"]) == ("convnet", 2, "adamw", 0.1)
    assert resolve_settings({"model": "c8k3-fc10"})["epochs"] == 10  # a spec string gets the "spec" recipe
    with pytest.raises(RunError, match="unknown settings \\['colour'\\]"):
        resolve_settings({"colour": "red"})


def test_a_model_that_does_not_fit_the_classes_is_refused(tmp_path):
    with pytest.raises(RunError, match="outputs shape \\(3,\\) but tiny has 2 classes; end the spec with fc2"):
        run(settings(model="c4k3p1-relu-flat-fc3"), tmp_path / "run", progress=False, log=None, data=tiny_data())
