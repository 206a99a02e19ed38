"""Schema checks for what a checkpoint's JSON says about a run, before any of it is used.

A checkpoint's metadata is data from a file: a damaged or hostile file can put any JSON there.
:func:`check_training_state` (what ``--resume`` reads) and :func:`check_run_metadata` (what
``evaluate`` and ``predict`` read) check types, ranges, lengths and consistency, and raise
:class:`~cnnlab.checkpoint.CheckpointError` naming the file and the field, so a bad value becomes one
clear message instead of a ``KeyError`` or ``TypeError`` deep inside the loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cnnlab.checkpoint import CheckpointError

MAX_CLASSES = 100_000
MAX_INPUT_DIMS = 4
MAX_INPUT_SIZE = 1 << 16  # per dimension of a sample


class _Fields:
    """Typed reads of one JSON object, each failing with the file, the field and the value."""

    def __init__(self, name: str, where: str, value: Any) -> None:
        self.name, self.where = name, where
        if not isinstance(value, Mapping):
            raise self.fail(f"must be a JSON object, got {type(value).__name__}")
        self.value = value

    def fail(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.name!r} has a corrupted {self.where}: {problem}")

    def get(self, key: str, optional: bool = False) -> Any:
        if key not in self.value:
            if optional:
                return None
            raise self.fail(f"no {key!r}")
        return self.value[key]

    def integer(self, key: str, minimum: int = 0, optional: bool = False, maximum: int | None = None) -> int | None:
        value = self.get(key, optional)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
                maximum is not None and value > maximum):
            top = "" if maximum is None else f" and <= {maximum}"
            raise self.fail(f"{key!r} must be a whole number >= {minimum}{top}, got {value!r}")
        return value

    def number(self, key: str, optional: bool = False, minimum: float | None = None) -> float | None:
        value = self.get(key, optional)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                minimum is not None and value < minimum):
            bound = "" if minimum is None else f" >= {minimum}"
            raise self.fail(f"{key!r} must be a finite number{bound}, got {value!r}")
        return float(value)

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.fail(f"{key!r} must be true or false, got {value!r}")
        return value

    def text(self, key: str, optional: bool = False) -> str | None:
        value = self.get(key, optional)
        if value is None and optional:
            return None
        if not isinstance(value, str) or len(value) > 10_000:
            raise self.fail(f"{key!r} must be a string, got {type(value).__name__}")
        return value

    def obj(self, key: str, optional: bool = False) -> _Fields | None:
        value = self.get(key, optional)
        if value is None and optional:
            return None
        return _Fields(self.name, f"{self.where} ({key})", value)

    def array(self, key: str, max_len: int) -> list[Any]:
        value = self.get(key)
        if not isinstance(value, list) or len(value) > max_len:
            raise self.fail(f"{key!r} must be a list of at most {max_len} items, got {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__


def check_training_state(name: str, state: Any) -> None:
    """Check the ``training`` entry of a ``last.safetensors`` (see :mod:`cnnlab.training._state`).

    Raises
    ------
    CheckpointError
        Naming the file and the first field that is missing, of the wrong type or out of range.
    """
    t = _Fields(name, "training state", state)
    t.integer("version", 0, optional=True)
    epochs = t.integer("epochs", 1)
    done = t.integer("epochs_completed", 0)
    per_epoch = t.integer("batches_per_epoch", 1)
    batch = t.integer("batch", 0, maximum=per_epoch)
    if done > epochs:  # type: ignore[operator]
        raise t.fail(f"epochs_completed {done} is more than epochs {epochs}")
    partial = t.obj("partial")
    partial.number("loss_sum")
    partial.integer("correct")
    partial.integer("count")
    partial.boolean("scored")
    partial.number("seconds", minimum=0)
    partial.number("lr", optional=True)
    loader = t.obj("loader")
    loader.integer("seed")
    if loader.integer("epoch") != done or loader.integer("batch") != batch:
        raise t.fail("the loader position does not match epochs_completed and batch")
    scheduler = t.obj("scheduler", optional=True)
    if scheduler is not None:
        scheduler.text("class")
        if scheduler.get("interval") not in ("epoch", "batch"):
            raise scheduler.fail(f"'interval' must be 'epoch' or 'batch', got {scheduler.get('interval')!r}")
        scheduler.obj("state")
    rng = t.obj("rng")
    rng.text("bit_generator")
    rng.obj("state")
    history = t.array("history", epochs)  # type: ignore[arg-type]
    if len(history) != done:
        raise t.fail(f"the history has {len(history)} epochs but epochs_completed is {done}")
    for record in history:
        _Fields(name, "training state (history)", record).integer("epoch", 1)
    t.number("best_loss", optional=True)
    t.integer("best_epoch", 1, optional=True, maximum=done)
    t.integer("bad_epochs")
    t.boolean("stopped_early")
    optimizer = t.obj("optimizer")
    optimizer.text("class")
    groups = optimizer.array("param_groups", 10_000)
    for group in groups:
        g = _Fields(name, "training state (optimizer param_groups)", group)
        g.number("lr", minimum=0)
        params = g.array("params", 1_000_000)
        if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in params):
            raise g.fail("'params' must be a list of parameter indices")
    saved = optimizer.obj("state")
    for key, entry in saved.value.items():
        if not key.isdigit():
            raise saved.fail(f"keys must be parameter indices, got {key!r}")
        _Fields(name, "training state (optimizer state)", entry)


def check_run_metadata(name: str, metadata: Mapping[str, Any]) -> None:
    """Check what ``evaluate`` and ``predict`` read from a checkpoint of ``cnnlab train`` (where present).

    ``input_shape``: 1 to 4 sizes, each 1..65536; ``classes``: 1 to 100,000 strings or numbers;
    ``preprocess``: ``pixels`` a bool, ``mean`` and ``std`` finite numbers or lists of them (``std`` > 0),
    one per channel; ``settings``: the run's settings with the types :func:`resolve_settings` gives.

    Raises
    ------
    CheckpointError
        Naming the file and the field.
    """
    m = _Fields(name, "run metadata", metadata)
    if "input_shape" in metadata:
        shape = m.array("input_shape", MAX_INPUT_DIMS)
        if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_INPUT_SIZE
                                for n in shape):
            raise m.fail(f"'input_shape' must be 1 to {MAX_INPUT_DIMS} sizes from 1 to {MAX_INPUT_SIZE}, "
                         f"got {shape!r}")
    if "classes" in metadata:
        classes = m.array("classes", MAX_CLASSES)
        if not classes or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes):
            raise m.fail("'classes' must be a non-empty list of class names")
    if "preprocess" in metadata:
        p = m.obj("preprocess")
        p.boolean("pixels")
        channels = metadata["input_shape"][0] if "input_shape" in metadata else None
        for key in ("mean", "std"):
            value = p.get(key)
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                     for v in values):
                raise p.fail(f"{key!r} must be a finite number or a list of them, got {value!r}")
            if isinstance(value, list) and channels is not None and len(value) not in (1, channels):
                raise p.fail(f"{key!r} has {len(value)} values for {channels} channels")
            if key == "std" and min(values) <= 0:
                raise p.fail(f"'std' must be positive, got {value!r}")
    for key in ("data", "model"):
        if key in metadata:
            m.text(key)
    if "metrics" in metadata and metadata["metrics"] is not None:
        m.obj("metrics")
    if "settings" in metadata:
        s = m.obj("settings")
        s.integer("seed", optional=True)
        s.integer("image_size", 1, optional=True, maximum=MAX_INPUT_SIZE)
        if s.get("rgb", optional=True) not in (None, True, False):
            raise s.fail(f"'rgb' must be true or false, got {s.get('rgb')!r}")
        s.text("data", optional=True)
