"""Training recipes: the settings each built-in model trains with, and a whole run from settings to results.

:data:`RECIPES` and the published reference accuracies (:data:`PUBLISHED_MNIST1D`) live here, in one
place, for ``cnnlab train``, ``cnnlab demo`` and the benchmarks.  :func:`run` is what ``cnnlab train``
does: load the data, hold out a validation split of the *training* data, build the model and
optimizer, :func:`~cnnlab.training.fit`, then evaluate the test set once, at the end.

Honest validation: by default ``val_split`` = 0.1 of the training examples (a seeded choice) is the
validation set; it picks ``best.safetensors`` and drives early stopping, and the test set is never
seen before the final evaluation.  ``val_split=0`` is the old behaviour (the per-epoch "val"
numbers are test-set numbers); every metrics record states its ``val_source``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PUBLISHED_MNIST1D = (("logistic regression", 32), ("MLP", 68), ("CNN", 94), ("human", 96))
PAPER = "Greydanus & Kobak, MNIST-1D"
DEFAULT_VAL_SPLIT = 0.1

# Training settings per model; explicit settings override them.
RECIPES: dict[str, dict[str, Any]] = {
    "mnist1d-cnn": {"epochs": 60, "batch_size": 100, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0,
                    "scheduler": "cosine", "augment": 4},
    "mnist1d-cnn-bn": {"epochs": 40, "batch_size": 100, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0,
                       "scheduler": "onecycle", "augment": 4},
    "mnist1d-mlp": {"epochs": 150, "batch_size": 100, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0,
                    "scheduler": "none", "augment": 0},
    "mnist1d-logreg": {"epochs": 150, "batch_size": 100, "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0,
                       "scheduler": "none", "augment": 0},
    "lenet5": {"epochs": 10, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
               "scheduler": "none", "augment": 0},
    "convnet": {"epochs": 24, "batch_size": 128, "optimizer": "adamw", "lr": 5e-3, "weight_decay": 5e-4,
                "scheduler": "onecycle", "augment": 0},
    "spec": {"epochs": 10, "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
             "scheduler": "none", "augment": 0},
}
# The settings a run records (and that --resume forbids changing, except epochs).
SETTINGS = ("data", "model", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "momentum", "scheduler",
            "augment", "val_split", "patience", "seed", "limit", "image_size", "rgb")
DEMO_EPOCHS = 15


class RunError(ValueError):
    """A training run cannot start or go on: bad settings, a model that does not fit the data, a bad resume."""


@dataclass
class RunResult:
    """What :func:`run` did: where, for how long, and the test-set result measured once at the end."""

    out_dir: Path
    settings: dict[str, Any]
    epochs_completed: int
    seconds: float
    message: str
    interrupted: bool
    test_accuracy: float | None = None
    test_loss: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    signal: int | None = None  # the signal that interrupted the run (SIGINT, SIGTERM), if one did


def resolve_settings(given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's settings: those given (None means not given), then the model's recipe, then the defaults.

    Examples
    --------
    >>> s = resolve_settings({"data": "mnist1d"})
    >>> s["model"], s["epochs"], s["val_split"]
    ('mnist1d-cnn', 60, 0.1)
    """
    from cnnlab.training.models import MODELS

    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise RunError(f"unknown settings {unknown}; expected some of {list(SETTINGS)}")
    data = given.get("data", "mnist1d")
    model = given.get("model") or ("mnist1d-cnn" if str(data).lower() == "mnist1d" else "convnet")
    recipe = RECIPES[model.lower()] if model.lower() in MODELS else RECIPES["spec"]
    settings = {"data": data, "model": model, "momentum": 0.9, "val_split": DEFAULT_VAL_SPLIT, "patience": None,
                "seed": 0, "limit": None, "image_size": None, "rgb": False}
    settings.update(recipe)
    settings.update(given)
    return settings


def resume_settings(path: str | Path, epochs: int | None = None) -> dict[str, Any]:
    """The settings recorded in a ``last.safetensors`` written by :func:`run`, with ``epochs`` changed if given."""
    from cnnlab import checkpoint

    try:
        document = checkpoint.load_metadata(path) or {}
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot resume from {path}: {exc}") from None
    metadata = document.get("metadata") or {}
    settings = metadata.get("settings") if isinstance(metadata, dict) else None
    if not isinstance(settings, dict) or "training" not in metadata:
        raise RunError(f"{path} is not a last.safetensors written by cnnlab train")
    settings = dict(settings)
    settings.setdefault("val_split", 0.0)  # runs recorded before validation splits were the default
    if epochs is not None:
        settings["epochs"] = epochs
    return settings


def build_optimizer(settings: Mapping[str, Any], params: Any) -> Any:
    """The optimizer a recipe names (``sgd``, ``adam`` or ``adamw``) over ``params``."""
    from cnnlab import optim

    lr, wd = settings["lr"], settings["weight_decay"]
    if settings["optimizer"] == "sgd":
        return optim.SGD(params, lr=lr, momentum=settings["momentum"], weight_decay=wd)
    if settings["optimizer"] == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=wd)
    if settings["optimizer"] == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd)
    raise RunError(f"optimizer must be one of sgd, adam, adamw, got {settings['optimizer']!r}")


def build_scheduler(settings: Mapping[str, Any], opt: Any, steps_per_epoch: int) -> Any:
    """The learning-rate schedule a recipe names (``none``, ``onecycle`` or ``cosine``)."""
    from cnnlab import optim

    if settings["scheduler"] == "onecycle":
        return optim.OneCycleLR(opt, max_lr=settings["lr"], epochs=settings["epochs"], steps_per_epoch=steps_per_epoch)
    if settings["scheduler"] == "cosine":
        return optim.CosineAnnealingLR(opt, T_max=settings["epochs"])
    if settings["scheduler"] == "none":
        return None
    raise RunError(f"scheduler must be one of none, onecycle, cosine, got {settings['scheduler']!r}")


def build_for_data(settings: Mapping[str, Any], data: Any) -> Any:
    """The model of ``settings['model']`` for ``data``'s input shape and classes."""
    from cnnlab.training.models import SpecError, build_model, output_shape

    try:
        model = build_model(settings["model"], data.input_shape, num_classes=len(data.classes))
        out = output_shape(model, data.input_shape)
    except (SpecError, ValueError, TypeError) as exc:
        raise RunError(str(exc)) from None
    if out != (len(data.classes),):
        raise RunError(f"model {settings['model']!r} outputs shape {out} but {data.name} has "
                       f"{len(data.classes)} classes; end the spec with fc{len(data.classes)}")
    return model


def split_train_val(data: Any, settings: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_val, y_val)``: a seeded ``val_split`` of the training data held out.

    The validation examples come from the training set only; with ``val_split`` 0, ``x_val`` and
    ``y_val`` are None.
    """
    x, y = data.x_train, data.y_train
    if settings["limit"] is not None:
        x, y = x[:settings["limit"]], y[:settings["limit"]]
    if not settings["val_split"]:
        return x, y, None, None
    order = np.random.default_rng(settings["seed"]).permutation(len(x))
    n_val = int(round(settings["val_split"] * len(x)))
    if n_val < 1 or n_val >= len(x):
        raise RunError(f"val_split {settings['val_split']} leaves no validation or no training "
                       f"examples out of {len(x)}")
    return x[order[n_val:]], y[order[n_val:]], x[order[:n_val]], y[order[:n_val]]


def input_transform(pixels: bool, mean: Any, std: Any, augment: int, spatial: int) -> Any:
    """Random shifts of up to ``augment`` (training only) then normalisation (image data)."""
    from cnnlab.data import Compose, Normalize, RandomShift

    steps: list[Any] = []
    if augment:
        steps.append(RandomShift(augment, spatial_dims=spatial))
    if pixels:
        steps.append(Normalize(mean, std))
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else Compose(steps)


def describe(settings: Mapping[str, Any], data: Any, n_train: int, n_val: int) -> str:
    """One line saying what a run trains, on what, and how."""
    opt = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[settings["optimizer"]]
    held = f"{n_val} val held out of the training data" if n_val else "no validation split"
    text = (f"{settings['model']} on {data.name} ({n_train} train / {held} / {len(data.x_test)} test), {opt} lr "
            f"{settings['lr']:g}")
    if settings["weight_decay"]:
        text += f" weight decay {settings['weight_decay']:g}"
    if settings["scheduler"] != "none":
        text += f", {settings['scheduler']} schedule"
    text += f", batch {settings['batch_size']}, {settings['epochs']} epochs"
    if settings["augment"]:
        text += f", random shifts up to {settings['augment']}"
    return text + f", seed {settings['seed']}"


def published_table(accuracy: float, model: str) -> str:
    """MNIST-1D's published test accuracies with this run's beside them."""
    label = "this run: " + model
    width = max(22, len(label) + 2)
    rows = [f"  {name:<{width}}{value:>5}%   (published)" for name, value in PUBLISHED_MNIST1D]
    rows.append(f"  {label:<{width}}{100 * accuracy:>5.1f}%")
    return f"MNIST-1D test accuracy ({PAPER}):\n" + "\n".join(rows) + "\n"


def check_dependencies() -> None:
    """Fail before any work when a package a run needs is missing (checkpoints need ``safetensors``)."""
    try:
        import safetensors.numpy  # noqa: F401
    except ImportError:
        raise RunError("training writes safetensors checkpoints, which need the 'safetensors' package; install "
                       "it with: pip install 'cnnlab[train]'  (or: pip install safetensors)") from None


def data_label(data: str) -> str:
    """The short name of a data set for a run folder: ``mnist``, or an image folder's own name."""
    from cnnlab.data import DATASETS

    text = str(data)
    return text.lower() if text.lower() in (*DATASETS, "mnist1d") else (Path(text).name or "data")


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def default_out_dir(settings: Mapping[str, Any], data_name: str) -> Path:
    """``runs/<data>-<model>-<time>``: a fresh run folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    label = settings["model"] if str(settings["model"]).lower() in RECIPES else "custom"
    return Path("runs") / f"{Path(data_name).name}-{label}-{stamp}"


# The batch size of the validation and test loaders (evaluation only: it changes no result).
EVAL_BATCH_SIZE = 500


def run(settings: Mapping[str, Any], out_dir: str | Path | None = None, *, resume: str | Path | None = None,
        progress: bool | str = True, log: Callable[[str], Any] | None = print, data: Any = None,
        overwrite: bool = False, warmup: bool = False) -> RunResult:
    """Train a model as ``cnnlab train`` does, from settings (see :func:`resolve_settings`).

    Parameters
    ----------
    settings : dict
        Every key of :data:`SETTINGS` (use :func:`resolve_settings` or :func:`resume_settings`).
    out_dir : path, optional
        The run folder; default a fresh ``runs/<data>-<model>-<time>`` (the checkpoint's folder when
        resuming).
    resume : path, optional
        A ``last.safetensors`` of this run to continue from.
    progress : bool or {"bar", "lines"}
        As :func:`~cnnlab.training.fit`.
    log : callable, optional
        Receives the run's one-line descriptions (default ``print``; None for silence).
    data : Data, optional
        An already loaded data set (see :func:`cnnlab.data.load_dataset`) instead of ``settings['data']``.
    overwrite : bool, default False
        Replace the run that ``out_dir`` holds; without it such a folder is refused (unless resumed).
    warmup : bool, default False
        Compile the model's Numba kernels in a second process meanwhile, last layer first, where
        they are not cached yet (``cnnlab train`` sets it; see :mod:`cnnlab.training._warmup`).

    Everything that can fail is checked before the first batch, in this order: the ``safetensors``
    package, the run folder (not a file, not holding another run; see :class:`RunFolder`), the data
    (loadable, finite), the model (fits the data, within the spec limits), then the folder is locked
    and test-written.  While the run goes on, its folder is locked against a second run.

    Returns
    -------
    RunResult
        ``test_accuracy`` and ``test_loss`` of the final model on the test set, evaluated once after
        training (None if the run was interrupted).  ``results.json`` in the run folder holds them.

    Raises
    ------
    cnnlab.data.DataError
        If the data cannot be loaded.
    RunError
        If the settings do not fit (model vs data, validation split), the resume fails, safetensors is
        missing.
    cnnlab.training.RunFolderError
        If the run folder is refused (holds another run, in use, a file, not writable).
    OSError
        If the run folder cannot be written while the run goes on (e.g. the disk is full); the last
        checkpoint written stays whole.
    FloatingPointError
        If the training loss becomes NaN or infinite.
    """
    from cnnlab.data import load_dataset
    from cnnlab.data._named import expected_shape
    from cnnlab.training import _warmup
    from cnnlab.training._rundir import RunFolder

    settings = dict(settings)
    say = log if log is not None else (lambda _text: None)
    check_dependencies()
    folder = RunFolder(out_dir, default_out_dir(settings, data_label(settings["data"] if data is None else data.name)),
                       resume=resume, overwrite=overwrite)
    folder.check()
    # the compiling helper starts before a named data set loads (its shapes are known), else after
    guess = expected_shape(settings["data"]) if warmup and data is None else None
    helper = None if guess is None else _warmup.start(settings["model"], *guess, settings["batch_size"],
                                                      EVAL_BATCH_SIZE)
    try:
        if data is None:
            data = load_dataset(settings["data"], seed=settings["seed"], image_size=settings["image_size"],
                                rgb=settings["rgb"])
        if warmup and guess != (data.input_shape, len(data.classes)):
            _warmup.stop(helper)
            helper = _warmup.start(settings["model"], data.input_shape, len(data.classes), settings["batch_size"],
                                   EVAL_BATCH_SIZE)
        return _run_on(settings, data, folder, resume, progress, say)
    finally:
        _warmup.stop(helper)


def _run_on(settings: dict[str, Any], data: Any, folder: Any, resume: Any, progress: bool | str,
            say: Callable[[str], Any]) -> RunResult:
    """:func:`run` once the data is loaded: the model, the loaders and the optimizer, then the run."""
    import cnnlab
    from cnnlab.data import DataLoader, TensorDataset

    cnnlab.manual_seed(settings["seed"])
    model = build_for_data(settings, data)
    x_train, y_train, x_val, y_val = split_train_val(data, settings)
    for split, x in (("training", x_train), ("test", data.x_test)):
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise RunError(f"the {split} data of {data.name} holds NaN or infinite values")
    spatial = len(data.input_shape) - 1
    train_tf = input_transform(data.pixels, data.mean, data.std, settings["augment"], spatial)
    eval_tf = input_transform(data.pixels, data.mean, data.std, 0, spatial)
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=settings["batch_size"], shuffle=True,
                              seed=settings["seed"], transform=train_tf)
    test_loader = DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=EVAL_BATCH_SIZE, transform=eval_tf)
    if x_val is None:
        val_loader, val_source = test_loader, "test"
    else:
        val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=EVAL_BATCH_SIZE, transform=eval_tf)
        val_source = "train-split"
    opt = build_optimizer(settings, model.parameters())
    scheduler = build_scheduler(settings, opt, len(train_loader))
    with folder:
        return _train_in(folder.path, settings, data, model, opt, scheduler, train_loader, val_loader, test_loader,
                         val_source, len(x_train), 0 if x_val is None else len(x_val), resume, progress, say)


def _train_in(out: Path, settings: dict[str, Any], data: Any, model: Any, opt: Any, scheduler: Any,
              train_loader: Any, val_loader: Any, test_loader: Any, val_source: str, n_train: int, n_val: int,
              resume: Any, progress: bool | str, say: Callable[[str], Any]) -> RunResult:
    """The run itself, in its locked folder ``out``: fit, then the test set once, then :func:`finish_run`."""
    from cnnlab.checkpoint import CheckpointError
    from cnnlab.training._fit import evaluate, fit

    metadata = {"data": data.name, "classes": data.classes, "input_shape": list(data.input_shape),
                "preprocess": data.preprocess(), "model": settings["model"], "settings": settings,
                "val_source": val_source}
    say(("resuming " if resume else "training ") + describe(settings, data, n_train, n_val) + f" -> {out}/")
    if not n_val:
        say("(val-split 0: the per-epoch val metrics are TEST-set numbers, and they choose best.safetensors)")
    else:
        say(f"(validation: {n_val} examples held out of the training data choose best.safetensors and early "
            "stopping; the test set is used once, at the end)")
    start = time.perf_counter()
    try:
        result = fit(model, train_loader, val_loader, epochs=settings["epochs"], optimizer=opt, scheduler=scheduler,
                     out_dir=out, seed=settings["seed"], early_stopping_patience=settings["patience"],
                     resume_from=resume, progress=progress, metadata=metadata)
    except CheckpointError as exc:
        if resume is None:
            raise
        raise RunError(f"cannot resume: {exc}") from None
    seconds = time.perf_counter() - start
    outcome = RunResult(out, settings, result.epochs_completed, round(seconds, 1), result.message,
                        result.interrupted, history=list(result.history), signal=result.signal)
    if result.interrupted:
        return outcome
    test = evaluate(model, test_loader)
    outcome.test_accuracy, outcome.test_loss = test.accuracy, test.loss
    finish_run(outcome, val_source)
    return outcome


def finish_run(outcome: RunResult, val_source: str) -> None:
    """What a finished run writes at the end, in its still-locked folder: ``results.json`` (atomically)."""
    summary = {"test_accuracy": outcome.test_accuracy, "test_loss": outcome.test_loss, "val_source": val_source,
               "epochs": outcome.epochs_completed, "seconds": outcome.seconds, "message": outcome.message,
               "settings": outcome.settings}
    _write_atomic(outcome.out_dir / "results.json", json.dumps(summary, indent=2) + "\n")


@contextlib.contextmanager
def demo_warmup(start: bool = True) -> Iterator[None]:
    """Compile the demo model's Numba kernels in a second process while the block runs
    (:func:`cnnlab.training._warmup.start`; nothing where that would not help or ``start`` is
    False), for ``cnnlab demo`` to wrap around the lecture's example and the training: the first
    run on a machine compiles them, one at a time per process, and the helper takes those the
    training comes to last while this process prints the example and compiles the first ones.
    The helper is stopped when the block ends, however it ends."""
    from cnnlab.data._named import expected_shape
    from cnnlab.training import _warmup

    helper = None
    if start:
        shape, classes = expected_shape("mnist1d")
        helper = _warmup.start("mnist1d-cnn", shape, classes, RECIPES["mnist1d-cnn"]["batch_size"],
                               EVAL_BATCH_SIZE)
    try:
        yield
    finally:
        _warmup.stop(helper)


def demo_training(write: Callable[[str], Any], epochs: int = DEMO_EPOCHS) -> None:
    """Train the MNIST-1D paper's CNN briefly and print the result next to the published table.

    ``write`` prints text.  Without the ``mnist1d`` package (and no cached copy of the data) it
    prints one line saying how to install it.
    """
    import cnnlab
    from cnnlab import optim
    from cnnlab.data import DataLoader, RandomShift, TensorDataset, load_mnist1d
    from cnnlab.training._fit import evaluate, fit
    from cnnlab.training.models import build_model

    try:
        x_train, y_train, x_test, y_test = load_mnist1d()
    except ImportError:
        write("\nSkipping the short MNIST-1D training: it needs the mnist1d package "
              "(pip install 'cnnlab[data]').\n")
        return
    recipe = RECIPES["mnist1d-cnn"]
    cnnlab.manual_seed(0)
    model = build_model("mnist1d-cnn")
    n_params = sum(p.numel() for p in model.parameters())
    write(f"\nNow a short training run: the MNIST-1D paper's CNN ({n_params:,} parameters) learns to "
          f"classify {len(x_train):,} signals for {epochs} epochs\n(the full `cnnlab train` runs "
          f"{recipe['epochs']}).\n")
    train = DataLoader(TensorDataset(x_train[:, None], y_train), batch_size=recipe["batch_size"], shuffle=True,
                       seed=0, transform=RandomShift(recipe["augment"], spatial_dims=1))
    test = DataLoader(TensorDataset(x_test[:, None], y_test), batch_size=EVAL_BATCH_SIZE)
    start = time.perf_counter()

    def report(record: dict[str, Any]) -> None:
        if record["epoch"] in (1, epochs) or record["epoch"] % 5 == 0:
            write(f"  epoch {record['epoch']:>2}/{epochs}: train accuracy {100 * record['train_acc']:.0f}%\n")

    fit(model, train, None, epochs=epochs, optimizer=optim.Adam(model.parameters(), lr=recipe["lr"]), seed=0,
        progress=False, on_epoch_end=report)
    accuracy = evaluate(model, test).accuracy
    published = ", ".join(f"{name} {value}%" for name, value in PUBLISHED_MNIST1D)
    write(f"Test accuracy after this short run ({time.perf_counter() - start:.0f} s), measured once at the end: "
          f"{100 * accuracy:.0f}%. The full `cnnlab train` reaches about 95%;\npublished ({PAPER}): {published}.\n")
