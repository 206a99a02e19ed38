"""cnnlab.training.fit: learning, exact resume, Ctrl-C, early stopping, metrics and checkpoints."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

import cnnlab
from cnnlab import nn, optim
from cnnlab.checkpoint import CheckpointError
from cnnlab.data import DataLoader, RandomShift, TensorDataset
from cnnlab.training import evaluate, fit, load_trained, predict

pytest.importorskip("safetensors")


def blobs(n=240, classes=3, dim=8, seed=0, spread=0.6):
    """Well-separated Gaussian blobs: a task a small model must solve almost perfectly."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, dim))
    y = rng.integers(0, classes, size=n)
    x = centres[y] + spread * rng.normal(size=(n, dim))
    return x.astype(np.float32), y.astype(np.int64)


def signals(n=96, seed=1):
    """1-channel signals of length 12 whose class is where a bump sits (left/middle/right)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = 0.1 * rng.normal(size=(n, 1, 12))
    for i, label in enumerate(y):
        x[i, 0, 4 * label:4 * label + 3] += 1.0
    return x.astype(np.float32), y.astype(np.int64)


def small_cnn():
    return nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(), nn.MaxPool1d(2),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(24, 3))


def setup(seed=0, sched="onecycle", batch_size=16, epochs=4):
    """A model with BatchNorm and Dropout, Adam, a scheduler, shuffling and a random transform."""
    cnnlab.manual_seed(seed)
    model = small_cnn()
    x, y = signals()
    train = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=batch_size, shuffle=True, seed=7,
                       transform=RandomShift(1))
    val = DataLoader(TensorDataset(x[64:], y[64:]), batch_size=32)
    opt = optim.Adam(model.parameters(), lr=0.01)
    if sched == "onecycle":
        scheduler = optim.OneCycleLR(opt, max_lr=0.05, total_steps=epochs * len(train))
    elif sched == "step":
        scheduler = optim.StepLR(opt, step_size=1, gamma=0.5)
    else:
        scheduler = None
    return model, train, val, opt, scheduler


def state_arrays(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    sa, sb = state_arrays(a), state_arrays(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


def without_seconds(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def uninterrupted(tmp_path, epochs=4, **kwargs):
    model, train, val, opt, scheduler = setup(epochs=epochs, **kwargs)
    result = fit(model, train, val, epochs=epochs, optimizer=opt, scheduler=scheduler, seed=3,
                 out_dir=tmp_path / "full", progress=False)
    return model, result


# ---------------------------------------------------------------------------------------------
# learning


def test_fit_reaches_high_accuracy_on_separable_data():
    x, y = blobs(n=400)
    cnnlab.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    train = DataLoader(TensorDataset(x[:300], y[:300]), batch_size=20, shuffle=True)
    val = DataLoader(TensorDataset(x[300:], y[300:]), batch_size=100)
    result = fit(model, train, val, epochs=8, optimizer=optim.Adam(model.parameters(), lr=0.02), seed=0,
                 progress=False)
    assert result.history[-1]["val_acc"] > 0.95
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    assert evaluate(model, val).accuracy == pytest.approx(result.history[-1]["val_acc"])
    assert model.training  # fit leaves the model in train mode; evaluation did not change that


def test_cnn_learns_signals_and_predict_matches_evaluate():
    model, train, val, opt, scheduler = setup()
    result = fit(model, train, val, epochs=4, optimizer=opt, scheduler=scheduler, seed=0, progress=False)
    assert result.history[-1]["val_acc"] >= 0.9
    x, y = val.dataset.arrays
    logits = predict(model, x, batch_size=5)
    assert logits.shape == (32, 3)
    np.testing.assert_array_equal(np.argmax(logits, axis=1), evaluate(model, val).predictions)


def test_same_seed_same_run_and_different_seed_differs(tmp_path):
    a, ra = uninterrupted(tmp_path / "a")
    b, rb = uninterrupted(tmp_path / "b")
    assert_same_state(a, b)
    assert without_seconds(ra.history) == without_seconds(rb.history)
    model, train, val, opt, scheduler = setup()
    fit(model, train, val, epochs=4, optimizer=opt, scheduler=scheduler, seed=4, progress=False)
    assert not np.array_equal(model.state_dict()["6.weight"], a.state_dict()["6.weight"])


# ---------------------------------------------------------------------------------------------
# resume


@pytest.mark.parametrize("sched", ["onecycle", "step", None])
def test_two_epochs_then_resume_two_equals_four(tmp_path, sched):
    full, full_result = uninterrupted(tmp_path, sched=sched)
    model, train, val, opt, scheduler = setup(sched=sched)
    first = fit(model, train, val, epochs=2, optimizer=opt, scheduler=scheduler, seed=3, out_dir=tmp_path / "part",
                progress=False)
    assert first.epochs_completed == 2
    # a fresh process would build everything anew, with other initial weights
    model, train, val, opt, scheduler = setup(seed=99, sched=sched)
    second = fit(model, train, val, epochs=4, optimizer=opt, scheduler=scheduler, out_dir=tmp_path / "part",
                 resume_from=tmp_path / "part" / "last.safetensors", progress=False)
    assert second.epochs_completed == 4
    assert_same_state(model, full)
    assert without_seconds(second.history) == without_seconds(full_result.history)
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def _interrupt_on_call(obj, name, when):
    """Make ``obj.name`` raise KeyboardInterrupt on its ``when``-th call (before doing anything)."""
    original = getattr(obj, name)
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == when:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    setattr(obj, name, wrapped)


class InterruptingLoader:
    """Iterates like ``loader`` but raises KeyboardInterrupt at the start of its ``when``-th pass."""

    def __init__(self, loader, when):
        self.loader, self.when, self.passes = loader, when, 0

    def __iter__(self):
        self.passes += 1
        if self.passes == self.when:
            raise KeyboardInterrupt
        return iter(self.loader)


@pytest.mark.parametrize("where", ["optimizer.step", "forward", "on_batch_end", "validation"])
def test_interrupt_saves_and_resume_equals_uninterrupted(tmp_path, capsys, where):
    full, full_result = uninterrupted(tmp_path)
    model, train, val, opt, scheduler = setup()
    kwargs = {}
    if where == "optimizer.step":
        _interrupt_on_call(opt, "step", 7)  # epoch 2, batch 3: before the update
    elif where == "forward":  # after batch norm has updated its running statistics
        calls = {"n": 0}

        def hook(module, inputs, output):
            calls["n"] += 1
            if calls["n"] == 6:
                raise KeyboardInterrupt

        model[5].register_forward_hook(hook)
    elif where == "on_batch_end":
        kwargs["on_batch_end"] = lambda epoch, batch, loss: (_ for _ in ()).throw(KeyboardInterrupt) \
            if (epoch, batch) == (3, 1) else None
    else:
        val = InterruptingLoader(val, when=2)  # during the validation after epoch 2
    out = tmp_path / "run"
    result = fit(model, train, val, epochs=4, optimizer=opt, scheduler=scheduler, seed=3, out_dir=out,
                 progress="lines", **kwargs)
    assert result.interrupted and not result.stopped_early
    assert "interrupted at epoch" in result.message and "last.safetensors" in result.message
    assert "fit: interrupted" in capsys.readouterr().err
    assert (out / "last.safetensors").exists()
    model, train, val, opt, scheduler = setup(seed=5)
    resumed = fit(model, train, val, epochs=4, optimizer=opt, scheduler=scheduler, out_dir=out,
                  resume_from=out / "last.safetensors", progress=False)
    assert not resumed.interrupted and resumed.epochs_completed == 4
    assert_same_state(model, full)
    assert without_seconds(resumed.history) == without_seconds(full_result.history)


def test_sigint_stops_after_the_batch(tmp_path):
    # Python's own Ctrl-C handler, whatever the test runner was started with (a background job of a
    # non-interactive shell, or nohup, starts with SIGINT ignored, and fit rightly leaves that alone)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _sigint_stops_after_the_batch(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _sigint_stops_after_the_batch(tmp_path):
    model, train, val, opt, scheduler = setup()
    seen = []

    def ctrl_c(epoch, batch, loss):
        seen.append((epoch, batch))
        if (epoch, batch) == (1, 2):
            os.kill(os.getpid(), signal.SIGINT)

    result = fit(model, train, val, epochs=4, optimizer=opt, scheduler=scheduler, seed=3, out_dir=tmp_path,
                 on_batch_end=ctrl_c, progress=False)
    assert result.interrupted
    assert seen[-1] in ((1, 2), (1, 3))  # the signal lands after batch 2 (at the latest, batch 3)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    _, _, state, _ = __import__("cnnlab.training._state", fromlist=["x"]).read_training_state(
        tmp_path / "last.safetensors")
    assert (state["epochs_completed"], state["batch"]) == (0, seen[-1][1])


def test_interrupt_without_out_dir_saves_nothing():
    model, train, val, opt, scheduler = setup()
    _interrupt_on_call(opt, "step", 2)
    result = fit(model, train, epochs=2, optimizer=opt, progress=False)
    assert result.interrupted and "nothing saved" in result.message


def test_resume_refuses_mismatches(tmp_path):
    model, train, val, opt, scheduler = setup()
    fit(model, train, val, epochs=1, optimizer=opt, scheduler=scheduler, out_dir=tmp_path, progress=False)
    last, best = tmp_path / "last.safetensors", tmp_path / "best.safetensors"
    model, train, val, opt, scheduler = setup(batch_size=8)
    with pytest.raises(CheckpointError, match="16 training batches per epoch|4 training batches"):
        fit(model, train, val, epochs=2, optimizer=opt, scheduler=scheduler, resume_from=last, progress=False)
    model, train, val, _, scheduler = setup()
    with pytest.raises(CheckpointError, match="Adam optimizer, not a SGD"):
        fit(model, train, val, epochs=2, optimizer=optim.SGD(model.parameters(), lr=0.1), resume_from=last,
            progress=False)
    model, train, val, opt, _ = setup()
    with pytest.raises(CheckpointError, match="OneCycleLR scheduler"):
        fit(model, train, val, epochs=2, optimizer=opt, resume_from=last, progress=False)
    model, train, val, opt, scheduler = setup()
    with pytest.raises(CheckpointError, match="no training state"):
        fit(model, train, val, epochs=2, optimizer=opt, scheduler=scheduler, resume_from=best, progress=False)


# ---------------------------------------------------------------------------------------------
# early stopping, metrics, checkpoints


def test_early_stopping_on_val_loss(tmp_path):
    x, y = blobs(n=200, classes=2)
    cnnlab.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    train = DataLoader(TensorDataset(x, y), batch_size=20, shuffle=True)
    flipped = DataLoader(TensorDataset(x, 1 - y), batch_size=100)  # learning the task hurts here
    result = fit(model, train, flipped, epochs=30, optimizer=optim.Adam(model.parameters(), lr=0.02), seed=0,
                 early_stopping_patience=2, out_dir=tmp_path, progress=False)
    assert result.stopped_early and "stopped early" in result.message
    assert result.epochs_completed == result.best_epoch + 2 < 30
    losses = [r["val_loss"] for r in result.history]
    assert min(losses) == losses[result.best_epoch - 1] == result.best_loss
    assert all(loss >= result.best_loss for loss in losses[result.best_epoch:])
    meta = cnnlab.load_metadata(tmp_path / "best.safetensors")["metadata"]
    assert meta["metrics"]["epoch"] == result.best_epoch


def test_metrics_file_and_checkpoints(tmp_path, capsys):
    model, train, val, opt, scheduler = setup(sched="step")
    result = fit(model, train, val, epochs=3, optimizer=opt, scheduler=scheduler, seed=0, out_dir=tmp_path,
                 metadata={"data": "signals", "classes": ["l", "m", "r"]}, progress="lines")
    out = capsys.readouterr().out
    assert out.count("\n") == 3 and out.startswith("epoch 1/3  train loss ")
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == result.history
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    assert [r["lr"] for r in records] == pytest.approx([0.01, 0.005, 0.0025])  # StepLR halves each epoch
    for r in records:
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["val_acc"] <= 1 and r["seconds"] > 0
    # val metrics are those of evaluate() on the final model
    final = evaluate(model, val)
    assert records[-1]["val_loss"] == pytest.approx(final.loss) and records[-1]["val_acc"] == final.accuracy
    # best.safetensors: a plain model checkpoint; last.safetensors: with the training state
    best = cnnlab.load_model(tmp_path / "best.safetensors")
    assert best.to_config() == model.to_config()
    meta = cnnlab.load_metadata(tmp_path / "best.safetensors")["metadata"]
    assert meta["data"] == "signals" and meta["metrics"]["epoch"] == result.best_epoch
    last, last_meta = load_trained(tmp_path / "last.safetensors")
    assert not last.training and last_meta["classes"] == ["l", "m", "r"] and "training" not in last_meta
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(last.state_dict()[key], value)
    # load_model reads last.safetensors too, leaving its optimizer tensors out
    plain = cnnlab.load_model(tmp_path / "last.safetensors")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(plain.state_dict()[key], value)


def test_progress_false_is_silent_and_bar_falls_back(capsys):
    model, train, val, opt, scheduler = setup()
    fit(model, train, val, epochs=1, optimizer=opt, progress=False)
    assert capsys.readouterr() == ("", "")
    fit(model, train, val, epochs=1, optimizer=opt, progress=True)  # stderr is not a terminal: lines
    out, err = capsys.readouterr()
    assert out.startswith("epoch 1/1") and err == ""


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    model, train, val, opt, scheduler = setup()
    fit(model, train, val, epochs=2, optimizer=opt, progress="bar")
    out, err = capsys.readouterr()
    assert out.count("epoch ") == 2 and "epoch 1/2" in err


def test_nan_loss_raises_before_the_update():
    model, train, val, opt, scheduler = setup()
    before = state_arrays(model)
    with pytest.raises(FloatingPointError, match="training loss became nan at epoch 1, batch 1"):
        fit(model, train, epochs=1, optimizer=opt, loss=lambda out, y: out.sum() * float("nan"), progress=False)
    np.testing.assert_array_equal(state_arrays(model)["0.weight"], before["0.weight"])


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"epochs": 0}, ValueError, "epochs must be a positive int"),
    ({"epochs": 1.5}, TypeError, "epochs must be a positive int"),
    ({"early_stopping_patience": 2, "val": False}, ValueError, "needs a val_loader"),
    ({"scheduler_interval": "step"}, ValueError, "scheduler_interval"),
    ({"progress": "fancy"}, ValueError, "progress must be"),
    ({"loss": 3}, TypeError, "loss must be callable"),
    ({"optimizer": "adam"}, TypeError, "optimizer must be a cnnlab.optim.Optimizer"),
])
def test_bad_arguments(kwargs, exc, match):
    model, train, val, opt, scheduler = setup()
    args = {"epochs": 1, "optimizer": opt, "progress": False}
    use_val = kwargs.pop("val", True)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        fit(model, train, val if use_val else None, **args)


def test_train_loader_must_be_a_dataloader():
    model, train, val, opt, scheduler = setup()
    with pytest.raises(TypeError, match="train_loader must be a cnnlab.data.DataLoader"):
        fit(model, [(np.zeros((1, 1, 12), np.float32), np.zeros(1, np.int64))], epochs=1, optimizer=opt)


def test_checkpoints_of_deep_sequentials_rebuild_in_layer_order(tmp_path):
    # more than ten layers: the checkpoint's JSON (sorted keys) lists "10" before "2"
    cnnlab.manual_seed(0)
    layers = [nn.Linear(12, 12)]
    for _ in range(6):
        layers += [nn.Tanh(), nn.Linear(12, 12)]
    model = nn.Sequential(nn.Flatten(), *layers, nn.ReLU(), nn.Linear(12, 3))
    assert len(model) > 10
    x, y = signals(n=32)
    fit(model, DataLoader(TensorDataset(x, y), batch_size=16), epochs=1,
        optimizer=optim.SGD(model.parameters(), lr=0.01), out_dir=tmp_path, progress=False)
    for name in ("best.safetensors", "last.safetensors"):
        loaded, _ = load_trained(tmp_path / name)
        assert [type(m).__name__ for m in loaded] == [type(m).__name__ for m in model]
        np.testing.assert_array_equal(predict(loaded, x), predict(model, x))


def test_load_model_reads_last_checkpoint_without_its_optimizer_state(tmp_path):
    """``cnnlab.load_model`` rebuilds the model of a training ``last.safetensors`` (the optimizer
    state stored beside the weights is left out) with the weights the run ended with."""
    import cnnlab

    model, train, val, opt, scheduler = setup()
    fit(model, train, val, epochs=2, optimizer=opt, scheduler=scheduler, seed=3, out_dir=tmp_path, progress=False)
    loaded = cnnlab.load_model(tmp_path / "last.safetensors")
    want = model.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value)
