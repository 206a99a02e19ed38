"""cnnlab train / evaluate / predict / demo's short training, end to end on tiny data sets."""

from __future__ import annotations

import json
import re
import socket

import numpy as np
import pytest

import cnnlab.data
from cnnlab.cli import main
from cnnlab.data import write_idx

pytest.importorskip("safetensors")

SPEC = "c4k3p1-relu-mp4-flat-fc10"


def run(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, out, err, command, fragment):
    assert code == 2, (out, err)
    # download attempts announce themselves on lines of their own before the error
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("cnnlab: downloading "))
    assert err.count("\n") == 1 and err.startswith(f"cnnlab {command}"), err
    assert fragment in err, err
    assert "Traceback" not in err


def images_with_labels(n, seed):
    """28 x 28 uint8 images whose class k is a bright 6 x 6 square at a class-specific place."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 5)
        x[i, 2 + 12 * r:8 + 12 * r, 1 + 5 * c:7 + 5 * c] = 250
    return x, y.astype(np.uint8)


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """A 100 / 40 image 'MNIST' in an isolated CNNLAB_DATA folder (the real data is never read)."""
    data = tmp_path / "data"
    folder = data / "mnist"
    folder.mkdir(parents=True)
    for split, n, seed in (("train", 100, 0), ("t10k", 40, 1)):
        x, y = images_with_labels(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{split}-labels-idx1-ubyte", y)
    monkeypatch.setenv("CNNLAB_DATA", str(data))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with socket.socket() as s:  # downloads go to a closed port: no network in tests
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("CNNLAB_MIRROR", f"http://127.0.0.1:{s.getsockname()[1]}/")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fake_mnist1d(monkeypatch):
    """A small stand-in for MNIST-1D (the real one takes seconds to generate): bumps at class positions."""
    def load(*args, **kwargs):
        rng = np.random.default_rng(0)
        arrays = []
        for n in (300, 100):
            y = np.arange(n) % 10
            x = 0.1 * rng.normal(size=(n, 40))
            for i, label in enumerate(y):
                x[i, 4 * label:4 * label + 3] += 1.0
            arrays += [x.astype(np.float32), y.astype(np.int64)]
        return tuple(arrays)

    monkeypatch.setattr(cnnlab.data, "load_mnist1d", load)


# ---------------------------------------------------------------------------------------------
# train, evaluate, predict on IDX files


@pytest.fixture
def trained(tiny_mnist, capsys):
    code, out, err = run(capsys, ["train", "--data", "mnist", "--model", SPEC, "--epochs", 3, "--batch-size", 20,
                                  "--lr", 0.01, "--optimizer", "adam", "--out", "run", "--no-progress"])
    assert code == 0, err
    return tiny_mnist / "run", out


def test_train_writes_run_folder_and_reports(trained):
    run_dir, out = trained
    assert out.startswith(f"training {SPEC} on mnist (90 train / 10 val held out of the training data / 40 test), "
                          "Adam lr 0.01, batch 20, 3 epochs")
    match = re.search(r"trained 3 epochs in \d+ s; test accuracy (\d+\.\d)%", out)
    assert match and float(match.group(1)) >= 90.0  # the squares are easy to find
    assert "(published)" not in out  # the MNIST-1D table only for MNIST-1D
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test_accuracy"] == pytest.approx(float(match.group(1)) / 100, abs=5e-4)
    assert results["settings"]["model"] == SPEC and results["settings"]["batch_size"] == 20
    assert (run_dir / "best.safetensors").exists() and (run_dir / "last.safetensors").exists()
    meta = cnnlab.load_metadata(run_dir / "best.safetensors")["metadata"]
    assert meta["input_shape"] == [1, 28, 28] and meta["classes"] == [str(k) for k in range(10)]
    assert meta["preprocess"]["pixels"] is True and 0 < meta["preprocess"]["mean"][0] < 1
    assert meta["model"] == SPEC  # the spec string is recorded, and the architecture with it
    model = cnnlab.load_model(run_dir / "best.safetensors")
    assert type(model[0]).__name__ == "Conv2d" and model[0].out_channels == 4


def test_evaluate_prints_accuracy_and_confusion_matrix(trained, capsys):
    run_dir, out = trained
    code, out_eval, err = run(capsys, ["evaluate", run_dir / "last.safetensors"])
    assert code == 0, err
    accuracy = re.search(r"accuracy: (\d+\.\d\d)%  \((\d+) of 40 correct", out_eval)
    assert accuracy
    trained_acc = re.search(r"test accuracy (\d+\.\d)%", out).group(1)
    assert float(accuracy.group(1)) == pytest.approx(float(trained_acc), abs=0.051)
    table = out_eval[out_eval.index("true \\ predicted"):].splitlines()
    assert len(table) == 11
    counts = np.array([[int(v) for v in row.split()[1:11]] for row in table[1:]])
    assert counts.sum() == 40 and np.trace(counts) == int(accuracy.group(2))
    assert (counts.sum(axis=1) == 4).all()  # 4 test images per class
    code, out_train, _ = run(capsys, ["evaluate", run_dir / "best.safetensors", "--split", "train"])
    assert code == 0 and "mnist, train split, 100 examples" in out_train


def test_predict_images_and_arrays(trained, capsys, tmp_path):
    from PIL import Image

    run_dir, _ = trained
    x, y = images_with_labels(3, seed=5)
    Image.fromarray(x[1]).save(tmp_path / "one.png")
    Image.fromarray(x[2]).resize((32, 32)).save(tmp_path / "big.png")
    np.save(tmp_path / "img.npy", x[1])                      # (28, 28) uint8: one sample, channel left out
    np.save(tmp_path / "batch.npy", x[:, None])              # (3, 1, 28, 28): a batch
    code, out, err = run(capsys, ["predict", run_dir / "best.safetensors", tmp_path / "one.png",
                                  tmp_path / "img.npy", tmp_path / "batch.npy", "--top", 2])
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith(f"{tmp_path / 'one.png'}: ") and lines[2].startswith(f"{tmp_path / 'batch.npy'}[0]: ")
    predicted = [int(line.split(": ")[1].split()[0]) for line in lines]
    assert predicted[0] == predicted[1] == predicted[3]  # the same image as PNG, as .npy, in a batch
    assert predicted[2:] == [int(v) for v in y]
    for line in lines:
        probs = [float(p) for p in re.findall(r"(\d+\.\d)%", line)]
        assert len(probs) == 2 and probs[0] >= probs[1] and sum(probs) <= 100.1
    code, out, err = run(capsys, ["predict", run_dir / "best.safetensors", tmp_path / "big.png"])
    one_line_error(code, out, err, "predict", "is 32x32 pixels but the model expects 28x28 images; add --resize")
    code, out, err = run(capsys, ["predict", run_dir / "best.safetensors", tmp_path / "big.png", "--resize"])
    assert code == 0 and out.count("\n") == 1


@pytest.mark.parametrize("shape, message", [
    ((2, 28), "has shape (2, 28) but the model expects one sample of shape (28, 28) or (1, 28, 28)"),
    ((2, 3, 28, 28), "or a batch (N, 1, 28, 28)"),
])
def test_predict_rejects_wrong_shapes(trained, capsys, tmp_path, shape, message):
    run_dir, _ = trained
    np.save(tmp_path / "bad.npy", np.zeros(shape, dtype=np.float32))
    code, out, err = run(capsys, ["predict", run_dir / "best.safetensors", tmp_path / "bad.npy"])
    one_line_error(code, out, err, "predict", message)


def test_resume_continues_the_run(trained, capsys):
    run_dir, _ = trained
    last = run_dir / "last.safetensors"
    code, out, err = run(capsys, ["train", "--resume", last, "--epochs", 4, "--no-progress"])
    assert code == 0, err
    assert out.startswith("resuming") and "trained 4 epochs" in out
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    code, out, err = run(capsys, ["train", "--resume", last, "--lr", "0.1"])
    one_line_error(code, out, err, "train", "only --epochs and --out can be given, not --lr")
    code, out, err = run(capsys, ["train", "--resume", run_dir / "best.safetensors"])
    one_line_error(code, out, err, "train", "is not a last.safetensors written by cnnlab train")


def test_ctrl_c_saves_and_says_how_to_resume(tiny_mnist, capsys, monkeypatch):
    from cnnlab import optim

    calls = {"n": 0}
    original = optim.Adam.step

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(optim.Adam, "step", step)
    code, out, err = run(capsys, ["train", "--data", "mnist", "--model", SPEC, "--epochs", 3, "--batch-size", 20,
                                  "--optimizer", "adam", "--out", "run", "--no-progress"])
    assert code == 130
    assert "interrupted at epoch 2, after batch 1/5" in err
    assert f"continue with: cnnlab train --resume {tiny_mnist / 'run' / 'last.safetensors'}" in err \
        or "continue with: cnnlab train --resume run/last.safetensors" in err
    assert "Traceback" not in err
    monkeypatch.setattr(optim.Adam, "step", original)
    code, out, err = run(capsys, ["train", "--resume", "run/last.safetensors", "--no-progress"])
    assert code == 0 and "trained 3 epochs" in out


def test_image_folder_train_evaluate_predict(tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for name, col in (("left", 1), ("right", 6)):
            folder = tmp_path / "shapes" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 30, size=(8, 8)).astype(np.uint8)
                img[2:6, col:col + 2] = 255
                Image.fromarray(img).save(folder / f"{i}.png")
    code, out, err = run(capsys, ["train", "--data", tmp_path / "shapes", "--model", "c4k3p1-relu-flat-fc2",
                                  "--epochs", 5, "--batch-size", 6, "--lr", 0.05, "--out", "run", "--no-progress"])
    assert code == 0, err
    assert "(22 train / 2 val held out of the training data / 8 test)" in out
    code, out, err = run(capsys, ["evaluate", "run/best.safetensors"])
    assert code == 0 and "0 left" in out and "1 right" in out
    code, out, err = run(capsys, ["predict", "run/best.safetensors", tmp_path / "shapes/test/right/0.png"])
    assert code == 0 and ": 1 (right)" in out


# ---------------------------------------------------------------------------------------------
# MNIST-1D: the default run and the demo


def test_default_train_is_the_mnist1d_cnn_with_the_published_table(fake_mnist1d, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, ["train", "--epochs", 2, "--no-progress"])
    assert code == 0, err
    assert out.startswith("training mnist1d-cnn on mnist1d (270 train / 30 val held out of the training data / "
                          "100 test), Adam lr 0.01, cosine schedule, batch 100, "
                          "2 epochs, random shifts up to 4, seed 0 -> runs/mnist1d-mnist1d-cnn-")
    table = out[out.index("MNIST-1D test accuracy (Greydanus & Kobak, MNIST-1D):"):]
    for name, value in (("logistic regression", 32), ("MLP", 68), ("CNN", 94), ("human", 96)):
        assert re.search(rf"{name} +{value}%   \(published\)", table)
    assert re.search(r"this run: mnist1d-cnn +\d+\.\d%", table)
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_demo_trains_briefly_after_the_lecture(fake_mnist1d, capsys):
    code, out, err = run(capsys, ["demo"])
    assert code == 0 and err == ""
    lecture_end = out.index("Pool(ReLU(Conv(I))) = 5")
    training = out.index("Now a short training run: the MNIST-1D paper's CNN (5,210 parameters)")
    assert lecture_end < training
    assert re.search(r"epoch 15/15: train accuracy \d+%\n", out)
    assert re.search(r"Test accuracy after this short run \(\d+ s\), measured once at the end: \d+%\. "
                     r"The full `cnnlab train` reaches", out)
    assert "logistic regression 32%, MLP 68%, CNN 94%, human 96%" in out
    code, out_no_train, _ = run(capsys, ["demo", "--no-train"])
    assert code == 0 and out_no_train == out[:out.index("\nNow a short training run")]
    code, out_md, _ = run(capsys, ["demo", "--format", "md"])
    assert code == 0 and "short training run" not in out_md  # a Markdown document stays one


def test_demo_compiles_its_trainings_kernels_in_a_helper_from_the_start(fake_mnist1d, capsys, monkeypatch):
    # the helper starts before the lecture's example is printed, for the model, input shape,
    # classes and batch sizes the short training then runs (else it would compile other kernels),
    # and is stopped at the end; no helper where nothing is trained
    from cnnlab.training import _fit, _warmup, models

    events, batches = [], []

    def start(*args):
        events.append(("start", args, capsys.readouterr().out))
        return "helper"

    monkeypatch.setattr(_warmup, "start", start)
    monkeypatch.setattr(_warmup, "stop", lambda helper: events.append(("stop", helper)))
    build = models.build_model

    def spying_build(*args, **kwargs):
        model = build(*args, **kwargs)
        forward = model.forward
        model.forward = lambda x: (batches.append((model.training, tuple(x.shape))), forward(x))[1]
        return model

    monkeypatch.setattr(models, "build_model", spying_build)
    loaders, evaluate = [], _fit.evaluate
    monkeypatch.setattr(_fit, "evaluate", lambda model, loader, *a, **k: (loaders.append(loader),
                                                                           evaluate(model, loader, *a, **k))[1])
    code, out, err = run(capsys, ["demo"])
    assert code == 0 and err == "" and "Pool(ReLU(Conv(I))) = 5" in out
    assert [e[0] for e in events] == ["start", "stop"] and events[1][1] == "helper"
    (name, shape, classes, batch, eval_batch), printed_before = events[0][1], events[0][2]
    assert printed_before == ""  # (started before the example)
    assert name == "mnist1d-cnn"
    train_shapes = {s for training, s in batches if training}
    eval_shapes = {s for training, s in batches if not training}
    assert (batch, *shape) in train_shapes and max(s[0] for s in train_shapes) == batch
    assert {s[1:] for s in eval_shapes} == {tuple(shape)} and eval_batch == loaders[-1].batch_size
    assert classes == 10
    for argv in (["demo", "--no-train"], ["demo", "--format", "md"]):
        events.clear()
        code, _, _ = run(capsys, argv)
        assert code == 0 and events == [("stop", None)]


def test_demo_without_mnist1d_prints_how_to_install(capsys, monkeypatch):
    def missing(*args, **kwargs):
        raise ImportError("load_mnist1d: generating MNIST-1D needs the 'mnist1d' package")

    monkeypatch.setattr(cnnlab.data, "load_mnist1d", missing)
    code, out, err = run(capsys, ["demo"])
    assert code == 0 and err == ""
    assert out.endswith("\nSkipping the short MNIST-1D training: it needs the mnist1d package "
                        "(pip install 'cnnlab[data]').\n")
    assert "Pool(ReLU(Conv(I))) = 5" in out


# ---------------------------------------------------------------------------------------------
# bad input: one line on stderr, exit 2


@pytest.mark.parametrize("argv, fragment", [
    (["--data", "cifar"], "unknown data 'cifar': expected mnist1d, mnist, fashion-mnist, kmnist or the path"),
    (["--data", "mnist", "--model", "resnet"], "unknown model 'resnet': not a built-in model"),
    (["--data", "mnist", "--model", "c4k3-zz-fc10"], "unknown layer 'zz' at character 6 (layer 2)"),
    (["--data", "mnist", "--model", "c4k3-relu-fc10"], "'fc10' at character 11 (layer 3): needs a flat input"),
    (["--data", "mnist", "--model", "c4k3-flat-fc3"], "outputs shape (3,) but mnist has 10 classes; end the spec "
                                                      "with fc10"),
    (["--data", "mnist", "--model", "mnist1d-cnn"], "model 'mnist1d-cnn' does not fit inputs of shape (1, 28, 28)"),
    (["--data", "kmnist"], "no copy of Kuzushiji-MNIST was found and it could not be downloaded; put its four"),
    (["--epochs", "0"], "argument --epochs: expected a whole number >= 1, got 0"),
    (["--lr", "fast"], "argument --lr: expected a number >= 0, got 'fast'"),
    (["--val-split", "1.5"], "argument --val-split: expected a fraction in [0, 1), got 1.5"),
    (["--optimizer", "rmsprop"], "argument --optimizer: invalid choice: 'rmsprop'"),
    (["--data", "mnist", "--model", SPEC, "--val-split", "0.001"], "val_split 0.001 leaves no validation"),
    (["--resume", "nowhere.safetensors"], "cannot resume from nowhere.safetensors"),
])
def test_train_bad_input(tiny_mnist, capsys, argv, fragment):
    code, out, err = run(capsys, ["train", *argv])
    one_line_error(code, out, err, "train", fragment)


def test_evaluate_and_predict_bad_input(tiny_mnist, capsys):
    code, out, err = run(capsys, ["evaluate", "missing.safetensors"])
    one_line_error(code, out, err, "evaluate", "checkpoint missing.safetensors does not exist")
    cnnlab.save({"w": np.zeros(2, dtype=np.float32)}, tiny_mnist / "plain.safetensors")
    code, out, err = run(capsys, ["evaluate", tiny_mnist / "plain.safetensors"])
    one_line_error(code, out, err, "evaluate", "records no architecture")
    (tiny_mnist / "notes.txt").write_text("hello")
    code, out, err = run(capsys, ["predict", tiny_mnist / "notes.txt", tiny_mnist / "x.npy"])
    one_line_error(code, out, err, "predict", "is not a safetensors checkpoint")
    code, out, err = run(capsys, ["predict", "missing.safetensors"])
    one_line_error(code, out, err, "predict", "the following arguments are required: FILE")


def test_evaluate_refuses_other_data(trained, capsys, fake_mnist1d):
    run_dir, _ = trained
    code, out, err = run(capsys, ["evaluate", run_dir / "best.safetensors", "--data", "mnist1d"])
    one_line_error(code, out, err, "evaluate", "mnist1d has inputs of shape (1, 40) but the model expects (1, 28, 28)")
