"""Training loop: :func:`fit`, :func:`evaluate` and :func:`predict`.

:func:`fit` trains a model for a number of epochs over a :class:`~cnnlab.data.DataLoader`, and,
given an ``out_dir``, writes there

- ``metrics.jsonl``: one JSON line per epoch with ``epoch``, ``train_loss``, ``train_acc``,
  ``val_loss``, ``val_acc``, ``lr`` (of the first parameter group at the epoch's start) and
  ``seconds``; accuracies are fractions in [0, 1], and ``null`` where there is no value;
- ``last.safetensors``: the model and the full training state after the latest epoch (or at the
  batch where training was interrupted), from which ``fit(..., resume_from=...)`` continues
  exactly as if it had never stopped (see :mod:`cnnlab.training._state` for the format);
- ``best.safetensors``: the model (weights, architecture, metrics; no optimizer state) of the
  epoch with the lowest validation loss so far (training loss without a validation loader).
  :func:`cnnlab.load_model` and PyTorch's ``safetensors`` loader read it directly.

Reproducibility: with ``seed`` the default generator (dropout masks) is seeded with
:func:`cnnlab.manual_seed` and the training loader's shuffling and augmentation use the same seed;
build the model after ``cnnlab.manual_seed(...)`` too, so its initial weights repeat.  Epoch ``e``
of :func:`fit` is epoch ``e`` of the loader, whatever the loader did before.

Ctrl-C and SIGTERM: the first Ctrl-C (SIGINT) or SIGTERM (in the main thread) asks training to stop
after the current batch; the state is saved to ``last.safetensors`` and :func:`fit` returns normally
with ``interrupted=True`` and ``signal`` set to the signal's number.  A second Ctrl-C, or a
``KeyboardInterrupt`` raised by other code, stops at once: the batch in progress is discarded (the
batch-norm statistics and the random generator are restored to its start) and the same state is saved.
An optimizer step with its bookkeeping, and every checkpoint write, finish before a second Ctrl-C
takes effect, and further Ctrl-Cs during the final save only say that it is finishing: the saved
state is always whole.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import checkpoint
from cnnlab import functional as F
from cnnlab.autograd import Tensor, no_grad
from cnnlab.checkpoint import CheckpointError
from cnnlab.data.loader import DataLoader
from cnnlab.functional._args import check_positive_int
from cnnlab.optim import LRScheduler, OneCycleLR, Optimizer
from cnnlab.random import manual_seed
from cnnlab.training._progress import Progress, StopFlag, epoch_line
from cnnlab.training._state import (
    generator_state,
    load_trained,
    read_training_state,
    save_training_state,
    set_generator_state,
    unpack_optimizer,
)

__all__ = ["EvalResult", "FitResult", "evaluate", "fit", "load_trained", "predict"]

LossFn = Callable[[Any, Any], Any]


@dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes
    ----------
    history : list of dict
        One record per completed epoch (the lines of ``metrics.jsonl``), resumed epochs included.
    epochs_completed : int
    best_epoch : int or None
        The epoch (1-based) with the lowest validation loss (training loss without validation).
    best_loss : float or None
    stopped_early : bool
    interrupted : bool
        True when Ctrl-C (KeyboardInterrupt) or SIGTERM stopped training; the state was saved when
        ``out_dir`` was given.
    message : str
        How training ended, in one line.
    out_dir : pathlib.Path or None
    signal : int or None
        The signal that stopped training (``signal.SIGINT`` or ``signal.SIGTERM``), if one did.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_completed: int = 0
    best_epoch: int | None = None
    best_loss: float | None = None
    stopped_early: bool = False
    interrupted: bool = False
    message: str = ""
    out_dir: Path | None = None
    signal: int | None = None


@dataclass
class EvalResult:
    """Loss, accuracy and the predicted and true classes of :func:`evaluate`."""

    loss: float
    accuracy: float
    count: int
    predictions: np.ndarray
    targets: np.ndarray


def _default_loss(output: Any, target: Any) -> Any:
    return F.cross_entropy(output, target)


def _as_input(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _split_batch(batch: Any, op: str) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"{op}: each batch must be a pair (inputs, targets), got {type(batch).__name__}")


def _correct(output: Any, target: Any) -> int | None:
    """Correct predictions in a batch, or None when the outputs are not class scores."""
    scores = np.asarray(getattr(output, "data", output))
    labels = np.asarray(target)
    if scores.ndim != 2 or labels.ndim != 1 or labels.dtype.kind not in "iu":
        return None
    return int(np.sum(np.argmax(scores, axis=1) == labels))


def predict(model: Any, x: Any, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for the samples ``x``, in eval mode, without recording gradients.

    Parameters
    ----------
    model : Module
    x : array_like
        Samples with the batch dim first.
    batch_size : int, optional

    Returns
    -------
    numpy.ndarray
        The outputs (logits for a classifier), batch dim first.

    Examples
    --------
    >>> from cnnlab import nn
    >>> predict(nn.Linear(3, 2), np.zeros((5, 3), dtype=np.float32)).shape
    (5, 2)
    """
    x = np.asarray(x)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"predict: batch_size must be a positive int, got {batch_size!r}")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            parts = [np.asarray(model(Tensor(x[i:i + batch_size])).data) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    if not parts:
        raise ValueError("predict: x holds no samples")
    return np.concatenate(parts)


def evaluate(model: Any, loader: Iterable[Any], loss: LossFn | None = None,
             should_stop: Callable[[], bool] | None = None) -> EvalResult:
    """Mean loss and accuracy of ``model`` over ``loader`` (eval mode, no gradients recorded).

    Parameters
    ----------
    model : Module
    loader : iterable of (inputs, targets)
        E.g. a :class:`~cnnlab.data.DataLoader`.
    loss : callable, optional
        ``loss(outputs, targets)`` with mean reduction; cross-entropy by default.
    should_stop : callable, optional
        Checked after each batch; when it returns True, ``KeyboardInterrupt`` is raised.

    Returns
    -------
    EvalResult
        ``accuracy`` is NaN when the outputs are not class scores ``(N, K)`` with integer targets.

    Examples
    --------
    >>> from cnnlab import nn
    >>> from cnnlab.data import DataLoader, TensorDataset
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> model = nn.Linear(2, 2, bias=False)
    >>> model.weight.data[...] = np.eye(2)
    >>> result = evaluate(model, DataLoader(TensorDataset(x, np.array([0, 0])), batch_size=2))
    >>> result.accuracy, result.predictions.tolist()
    (0.5, [0, 1])
    """
    loss_fn = _default_loss if loss is None else loss
    was_training = model.training
    model.eval()
    total, count, correct, scored = 0.0, 0, 0, True
    predictions, targets = [], []
    try:
        with no_grad():
            for batch in loader:
                x, y = _split_batch(batch, "evaluate")
                out = model(_as_input(x))
                n = len(y)
                total += float(np.asarray(getattr(loss_fn(out, y), "data", 0.0))) * n
                count += n
                hits = _correct(out, y)
                if hits is None:
                    scored = False
                else:
                    correct += hits
                    predictions.append(np.argmax(np.asarray(out.data), axis=1))
                    targets.append(np.asarray(y))
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    empty = np.zeros(0, dtype=np.int64)
    return EvalResult(
        loss=total / count,
        accuracy=correct / count if scored else float("nan"),
        count=count,
        predictions=np.concatenate(predictions) if scored and predictions else empty,
        targets=np.concatenate(targets).astype(np.int64) if scored and targets else empty,
    )


# ---------------------------------------------------------------------------------------------
# fit


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class _Trainer:
    """The state of one :func:`fit` call; see :func:`fit` for the arguments."""

    def __init__(self, model: Any, train_loader: DataLoader, val_loader: Iterable[Any] | None, epochs: int,
                 optimizer: Optimizer, scheduler: LRScheduler | None, interval: str, loss_fn: LossFn,
                 out_dir: Path | None, patience: int | None, progress: Progress,
                 metadata: dict[str, Any], on_batch_end: Callable[..., Any] | None,
                 on_epoch_end: Callable[..., Any] | None) -> None:
        self.model, self.loader, self.val_loader, self.epochs = model, train_loader, val_loader, epochs
        self.optimizer, self.scheduler, self.interval, self.loss_fn = optimizer, scheduler, interval, loss_fn
        self.out_dir, self.patience, self.progress, self.metadata = out_dir, patience, progress, metadata
        self.on_batch_end, self.on_epoch_end = on_batch_end, on_epoch_end
        self.epoch = 0  # epochs completed
        self.batch = 0  # batches completed in the current epoch
        self.partial = {"loss_sum": 0.0, "correct": 0, "count": 0, "scored": True, "seconds": 0.0, "lr": None}
        self.history: list[dict[str, Any]] = []
        self.best_loss: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stopped_early = False

    # -- state -------------------------------------------------------------------------------

    def training_state(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs, "epochs_completed": self.epoch, "batch": self.batch,
            "batches_per_epoch": len(self.loader), "partial": dict(self.partial),
            "loader": {"seed": self.loader.seed, "epoch": self.epoch, "batch": self.batch},
            "scheduler": None if self.scheduler is None else
            {"class": type(self.scheduler).__name__, "interval": self.interval, "state": self.scheduler.state_dict()},
            "rng": generator_state(), "history": self.history, "best_loss": self.best_loss,
            "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "stopped_early": self.stopped_early,
        }

    def save_last(self) -> Path | None:
        if self.out_dir is None:
            return None
        path = self.out_dir / "last.safetensors"
        save_training_state(path, self.model, self.optimizer, self.training_state(), self.metadata)
        return path

    def restore(self, path: str | os.PathLike[str]) -> None:
        name = os.fspath(path)
        weights, optim_tensors, state, _ = read_training_state(path)  # schema-checked
        try:
            self._restore(name, weights, optim_tensors, state)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise CheckpointError(f"{name!r} holds a training state this run cannot use: {detail}") from None

    def _restore(self, name: str, weights: dict[str, np.ndarray], optim_tensors: dict[str, np.ndarray],
                 state: dict[str, Any]) -> None:
        if state["batches_per_epoch"] != len(self.loader):
            raise CheckpointError(
                f"{name!r} was written with {state['batches_per_epoch']} training batches per epoch, but this "
                f"loader has {len(self.loader)}; resume with the same data and batch size"
            )
        saved_opt = state["optimizer"]["class"]
        if saved_opt != type(self.optimizer).__name__:
            raise CheckpointError(f"{name!r} holds the state of a {saved_opt} optimizer, not a "
                                  f"{type(self.optimizer).__name__}")
        sched = state["scheduler"]
        if (sched is None) != (self.scheduler is None) or (
                sched is not None and sched["class"] != type(self.scheduler).__name__):
            saved = "no scheduler" if sched is None else f"a {sched['class']} scheduler"
            given = "none" if self.scheduler is None else type(self.scheduler).__name__
            raise CheckpointError(f"{name!r} was trained with {saved}, but the scheduler given is {given}")
        try:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(unpack_optimizer(name, optim_tensors, state["optimizer"]))
            if self.scheduler is not None:
                self.scheduler.load_state_dict(sched["state"])
                self.interval = sched["interval"]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            detail = " ".join(str(exc).split())
            raise CheckpointError(f"{name!r} does not fit this model and optimizer: {detail}") from None
        set_generator_state(state["rng"])
        loader = state["loader"]
        self.loader.load_state_dict({"seed": loader["seed"], "epoch": loader["epoch"], "batch": loader["batch"]})
        self.epoch, self.batch, self.partial = state["epochs_completed"], state["batch"], dict(state["partial"])
        self.history = list(state["history"])
        self.best_loss, self.best_epoch = state["best_loss"], state["best_epoch"]
        self.bad_epochs, self.stopped_early = state["bad_epochs"], state["stopped_early"]

    def write_metrics(self, fresh: bool) -> None:
        if self.out_dir is None:
            return
        path = self.out_dir / "metrics.jsonl"
        if fresh:
            path.write_text("".join(json.dumps(r) + "\n" for r in self.history))
        else:
            with open(path, "a") as f:
                f.write(json.dumps(self.history[-1]) + "\n")

    # -- the loop ----------------------------------------------------------------------------

    def _snapshot(self) -> tuple[dict[str, Any], list[tuple[Any, np.ndarray]]]:
        return generator_state(), [(b, np.array(b.data, copy=True)) for b in self.model.buffers()]

    def run_epoch(self, stop: StopFlag) -> None:
        loader, p = self.loader, self.partial
        loader.load_state_dict({"seed": loader.seed, "epoch": self.epoch, "batch": self.batch})
        if p["lr"] is None:
            p["lr"] = float(self.optimizer.param_groups[0]["lr"])
        self.progress.start_epoch(self.epoch, self.batch)
        start = time.perf_counter() - p["seconds"]
        self.model.train()
        snapshot = None
        try:
            for batch in loader:
                snapshot = self._snapshot()
                x, y = _split_batch(batch, "fit")
                out = self.model(_as_input(x))
                loss = self.loss_fn(out, y)
                value = float(np.asarray(getattr(loss, "data", loss)))
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"fit: the training loss became {value} at epoch {self.epoch + 1}, batch {self.batch + 1}; "
                        "try a lower learning rate"
                    )
                self.optimizer.zero_grad()
                loss.backward()
                with stop.protected():  # the step and its bookkeeping happen whole, or not at all
                    self.optimizer.step()
                    if self.scheduler is not None and self.interval == "batch":
                        self.scheduler.step()
                    snapshot = None
                    n = len(y)
                    hits = _correct(out, y)
                    p["loss_sum"] += value * n
                    p["count"] += n
                    if hits is None:
                        p["scored"] = False
                    else:
                        p["correct"] += hits
                    self.batch += 1
                    p["seconds"] = time.perf_counter() - start
                acc = p["correct"] / p["count"] if p["scored"] else None
                self.progress.update(self.batch, p["loss_sum"] / p["count"], acc)
                if self.on_batch_end is not None:
                    self.on_batch_end(self.epoch + 1, self.batch, value)
                if stop.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if snapshot is not None:  # discard the batch in progress
                set_generator_state(snapshot[0])
                for buffer, saved in snapshot[1]:
                    buffer.data[...] = saved
            p["seconds"] = time.perf_counter() - start
            raise
        if p["count"] == 0:
            raise ValueError("fit: the training loader yielded no samples")

        val = None
        if self.val_loader is not None:
            val = evaluate(self.model, self.val_loader, self.loss_fn, should_stop=lambda: stop.requested)
        record = {
            "epoch": self.epoch + 1,
            "train_loss": _json_float(p["loss_sum"] / p["count"]),
            "train_acc": _json_float(p["correct"] / p["count"]) if p["scored"] else None,
            "val_loss": None if val is None else _json_float(val.loss),
            "val_acc": None if val is None else _json_float(val.accuracy),
            "lr": p["lr"],
            "seconds": round(time.perf_counter() - start, 3),
        }
        if "val_source" in self.metadata:  # where the "val" numbers come from, stated in every record
            record["val_source"] = self.metadata["val_source"]
        with stop.protected():  # the epoch's state and checkpoints are written whole
            if self.scheduler is not None and self.interval == "epoch":
                self.scheduler.step()
            self.finish_epoch(record)
        if self.on_epoch_end is not None:
            self.on_epoch_end(dict(record))

    def finish_epoch(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        self.epoch += 1
        self.batch = 0
        self.partial = {"loss_sum": 0.0, "correct": 0, "count": 0, "scored": True, "seconds": 0.0, "lr": None}
        watched = record["val_loss"] if self.val_loader is not None else record["train_loss"]
        improved = watched is not None and (self.best_loss is None or watched < self.best_loss)
        if improved:
            self.best_loss, self.best_epoch, self.bad_epochs = watched, record["epoch"], 0
        else:
            self.bad_epochs += 1
        if self.patience is not None and self.bad_epochs >= self.patience:
            self.stopped_early = True
        self.write_metrics(fresh=False)
        self.progress.end_epoch(epoch_line(record, self.epochs, best=improved and self.val_loader is not None))
        if self.out_dir is not None:
            if improved:
                checkpoint.save(self.model, self.out_dir / "best.safetensors",
                                metadata=dict(self.metadata, metrics=record))
            self.save_last()


def fit(
    model: Any,
    train_loader: DataLoader,
    val_loader: Iterable[Any] | None = None,
    *,
    epochs: int,
    optimizer: Optimizer,
    scheduler: LRScheduler | None = None,
    scheduler_interval: str | None = None,
    loss: LossFn | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    early_stopping_patience: int | None = None,
    resume_from: str | os.PathLike[str] | None = None,
    progress: bool | str = True,
    metadata: Mapping[str, Any] | None = None,
    on_batch_end: Callable[[int, int, float], Any] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], Any] | None = None,
) -> FitResult:
    """Train ``model`` for ``epochs`` epochs; log metrics, save checkpoints, resume, stop early.

    Parameters
    ----------
    model : Module
        Trained in train mode; evaluated in eval mode without recording gradients.
    train_loader : DataLoader
        Yields ``(inputs, targets)`` batches; a :class:`~cnnlab.data.DataLoader`, whose position
        is saved and restored.
    val_loader : iterable of (inputs, targets), optional
        Evaluated after every epoch (loss, accuracy); it chooses the best checkpoint and drives
        early stopping.
    epochs : int
        Total number of epochs, counting those done before a resume.
    optimizer : Optimizer
        Over ``model.parameters()``.
    scheduler : LRScheduler, optional
        Stepped after every epoch, or after every batch (``OneCycleLR`` by default).
    scheduler_interval : {"epoch", "batch"} or None, optional
        When to step the scheduler; None: ``"batch"`` for :class:`~cnnlab.optim.OneCycleLR`,
        else ``"epoch"``.
    loss : callable, optional
        ``loss(outputs, targets)`` returning a scalar Tensor with mean reduction; by default
        :func:`cnnlab.functional.cross_entropy` on logits and class indices.
    out_dir : path, optional
        Folder (created if needed) for ``metrics.jsonl``, ``last.safetensors`` and
        ``best.safetensors``.  Without it nothing is written.
    seed : int, optional
        Seeds cnnlab's default generator and the training loader (see the module notes).
        Ignored when resuming: the saved generator and loader states are used.
    early_stopping_patience : int, optional
        Stop when the validation loss has not improved for this many epochs (needs ``val_loader``).
    resume_from : path, optional
        A ``last.safetensors`` written by :func:`fit`: model, optimizer, scheduler, loader
        position, random state, history and early-stopping state continue from it.  A run split
        by a resume gives the same parameters as an uninterrupted one.
    progress : bool or {"bar", "lines"}, optional
        True: a tqdm progress bar when tqdm is installed and stderr is a terminal, else plain
        lines (one per epoch on stdout, plus one every 10 s within long epochs).  False: silent.
    metadata : dict, optional
        JSON-serialisable information stored in both checkpoints (data set, classes, input shape).
    on_batch_end : callable, optional
        ``on_batch_end(epoch, batch, loss)`` after each optimizer step (1-based epoch and batch).
    on_epoch_end : callable, optional
        ``on_epoch_end(record)`` after each epoch, with that epoch's metrics.

    Returns
    -------
    FitResult

    Raises
    ------
    TypeError, ValueError
        For invalid arguments (e.g. early stopping without a validation loader).
    CheckpointError
        If ``resume_from`` holds no training state or does not fit the model, optimizer,
        scheduler or loader.
    FloatingPointError
        If the training loss becomes NaN or infinite (before that batch's update is applied).

    Examples
    --------
    >>> import cnnlab
    >>> from cnnlab import nn, optim
    >>> from cnnlab.data import DataLoader, TensorDataset
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 2)).astype(np.float32)
    >>> y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    >>> _ = cnnlab.manual_seed(0)
    >>> model = nn.Linear(2, 2)
    >>> result = fit(model, DataLoader(TensorDataset(x, y), batch_size=20, shuffle=True), epochs=20,
    ...              optimizer=optim.SGD(model.parameters(), lr=0.5), seed=0, progress=False)
    >>> result.history[-1]["train_acc"] > 0.95
    True
    """
    if not isinstance(train_loader, DataLoader):
        raise TypeError(f"fit: train_loader must be a cnnlab.data.DataLoader, got {type(train_loader).__name__}")
    epochs = check_positive_int("fit", "epochs", epochs)
    patience = (None if early_stopping_patience is None
                else check_positive_int("fit", "early_stopping_patience", early_stopping_patience))
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"fit: optimizer must be a cnnlab.optim.Optimizer, got {type(optimizer).__name__}")
    if scheduler is not None and not isinstance(scheduler, LRScheduler):
        raise TypeError(f"fit: scheduler must be a cnnlab.optim.LRScheduler or None, got {type(scheduler).__name__}")
    if scheduler_interval is None:
        interval = "batch" if isinstance(scheduler, OneCycleLR) else "epoch"
    elif scheduler_interval in ("epoch", "batch"):
        interval = scheduler_interval
    else:
        raise ValueError(f"fit: scheduler_interval must be 'epoch', 'batch' or None, got {scheduler_interval!r}")
    if loss is not None and not callable(loss):
        raise TypeError(f"fit: loss must be callable, got {type(loss).__name__}")
    if patience is not None and val_loader is None:
        raise ValueError("fit: early_stopping_patience needs a val_loader (it watches the validation loss)")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"fit: metadata must be a dict, got {type(metadata).__name__}")
    folder = None if out_dir is None else Path(out_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    bar = Progress(progress, epochs, len(train_loader))
    trainer = _Trainer(model, train_loader, val_loader, epochs, optimizer, scheduler, interval,
                       _default_loss if loss is None else loss, folder, patience, bar, dict(metadata or {}),
                       on_batch_end, on_epoch_end)
    if resume_from is not None:
        trainer.restore(resume_from)
    elif seed is not None:
        manual_seed(seed)
        train_loader.load_state_dict({"seed": int(seed), "epoch": 0, "batch": 0})
    trainer.write_metrics(fresh=True)

    interrupted = False
    with StopFlag(bar) as stop:
        try:
            while trainer.epoch < epochs and not trainer.stopped_early:
                trainer.run_epoch(stop)
        except KeyboardInterrupt:
            interrupted = True
            stop.raised = True  # from here on, signals only say that the save is finishing
        finally:
            bar.close()
        if interrupted:
            with stop.protected():
                path = trainer.save_last()
    if interrupted:
        where = f"epoch {trainer.epoch + 1}, after batch {trainer.batch}/{len(train_loader)}"
        message = (f"interrupted at {where}; saved {path} (resume with resume_from={str(path)!r})"
                   if path is not None else f"interrupted at {where}; nothing saved (no out_dir)")
        bar.note(f"fit: {message}")
    elif trainer.stopped_early:
        message = (f"stopped early after epoch {trainer.epoch}: no validation-loss improvement for "
                   f"{patience} epochs (best epoch {trainer.best_epoch})")
    else:
        message = f"trained {trainer.epoch} epochs"
    return FitResult(history=list(trainer.history), epochs_completed=trainer.epoch, best_epoch=trainer.best_epoch,
                     best_loss=trainer.best_loss, stopped_early=trainer.stopped_early, interrupted=interrupted,
                     message=message, out_dir=folder, signal=stop.signum if interrupted else None)
