"""Training checkpoints: a model's weights plus everything needed to resume training exactly.

A training checkpoint is an ordinary cnnlab safetensors checkpoint (see :mod:`cnnlab.checkpoint`)
whose tensors are the model's ``state_dict`` plus the optimizer's per-parameter arrays under the
reserved prefix ``__optimizer__.state.<index>.<name>`` (e.g. Adam's ``exp_avg``), and whose JSON
metadata holds, under the key ``"training"``:

- the position: epochs completed, batches completed in the current epoch, the training loader's
  ``state_dict`` and the partial sums of the current epoch's metrics;
- the optimizer's ``param_groups`` and its non-array state (Adam's ``step``), the scheduler's
  ``state_dict``, and the state of cnnlab's default random generator (dropout masks);
- the metric history, the best validation loss so far and the early-stopping counter.

Nothing is pickled: tensors are raw little-endian arrays, everything else is JSON (floats written
with ``repr`` precision, so they read back bit for bit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from cnnlab import checkpoint
from cnnlab.checkpoint import CheckpointError
from cnnlab.random import default_generator
from cnnlab.training._schema import check_run_metadata, check_training_state

OPTIMIZER_PREFIX = checkpoint.TRAINING_STATE_PREFIX
STATE_VERSION = 1

__all__ = ["OPTIMIZER_PREFIX", "load_trained", "read_training_state", "save_training_state", "split_tensors"]


def _jsonable(value: Any) -> Any:
    """Tuples to lists and NumPy scalars to Python numbers, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def pack_optimizer(optimizer: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The optimizer's state dict split into tensors (arrays) and JSON (everything else)."""
    state = optimizer.state_dict()
    tensors: dict[str, np.ndarray] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        kept = {}
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                tensors[f"{OPTIMIZER_PREFIX}{index}.{key}"] = value
            else:
                kept[key] = _jsonable(value)
        scalars[str(index)] = kept
    document = {"class": type(optimizer).__name__, "param_groups": _jsonable(state["param_groups"]),
                "state": scalars}
    return tensors, document


def unpack_optimizer(name: str, tensors: Mapping[str, np.ndarray], document: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild an optimizer state dict from :func:`pack_optimizer`'s two halves."""
    state: dict[str, dict[str, Any]] = {k: dict(v) for k, v in document["state"].items()}
    for key, value in tensors.items():
        index, _, entry = key[len(OPTIMIZER_PREFIX):].partition(".")
        if index not in state or not entry:
            raise CheckpointError(f"{name!r} has an optimizer tensor {key!r} without matching state")
        state[index][entry] = value
    return {"state": state, "param_groups": [dict(g) for g in document["param_groups"]]}


def split_tensors(tensors: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(model tensors, optimizer tensors)`` of a checkpoint's tensors."""
    model = {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}
    optim = {k: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
    return model, optim


def generator_state() -> dict[str, Any]:
    """The bit-generator state of cnnlab's default generator (JSON-able)."""
    return _jsonable(default_generator().bit_generator.state)


def set_generator_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`generator_state` into cnnlab's default generator, in place."""
    default_generator().bit_generator.state = dict(state)


def save_training_state(path: str | os.PathLike[str], model: Any, optimizer: Any, training: Mapping[str, Any],
                        metadata: Mapping[str, Any] | None) -> None:
    """Write a training checkpoint (atomically, as :func:`cnnlab.checkpoint.save` does)."""
    opt_tensors, opt_doc = pack_optimizer(optimizer)
    tensors = dict(model.state_dict())
    clash = [k for k in tensors if k.startswith(OPTIMIZER_PREFIX)]
    if clash:
        raise ValueError(f"fit: model state keys may not start with {OPTIMIZER_PREFIX!r}: {clash[:3]}")
    tensors.update(opt_tensors)
    training = dict(training, version=STATE_VERSION, optimizer=opt_doc)
    document = dict(metadata or {}, training=_jsonable(training))
    checkpoint.save(_ModelWithState(model, tensors), path, metadata=document)


class _ModelWithState:
    """What :func:`cnnlab.checkpoint.save` needs: the combined tensors and the model's config."""

    def __init__(self, model: Any, tensors: dict[str, np.ndarray]) -> None:
        self._model, self._tensors = model, tensors

    def state_dict(self) -> dict[str, np.ndarray]:
        return self._tensors

    def to_config(self) -> Any:
        to_config = getattr(self._model, "to_config", None)
        if not callable(to_config):
            return None
        try:
            return to_config()
        except NotImplementedError:  # a custom module without config_args: weights only
            return None


def read_training_state(path: str | os.PathLike[str], *, verify: bool = True
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """``(model tensors, optimizer tensors, training state, metadata)`` of a training checkpoint.

    Raises
    ------
    CheckpointError
        If the file holds no training state (e.g. a ``best.safetensors``, which holds the model only).
    """
    name = os.fspath(path)
    document = checkpoint.load_metadata(path, verify=verify) or {}
    metadata = dict(document.get("metadata") or {})
    training = metadata.pop("training", None)
    if not isinstance(training, dict):
        raise CheckpointError(
            f"{name!r} holds no training state (optimizer, position, history), so training cannot resume "
            "from it; resume from the run's last.safetensors"
        )
    version = training.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version > STATE_VERSION:
        raise CheckpointError(f"{name!r} was written by a newer cnnlab (training state version "
                              f"{training.get('version')}); upgrade cnnlab")
    check_training_state(name, training)
    tensors = checkpoint.load(path, verify=verify)
    model_tensors, optim_tensors = split_tensors(tensors)
    return model_tensors, optim_tensors, training, metadata


def load_trained(path: str | os.PathLike[str], *, verify: bool = True) -> tuple[Any, dict[str, Any]]:
    """The model a cnnlab checkpoint records (best or last of a run, or any saved model), and its metadata.

    Unlike :func:`cnnlab.checkpoint.load_model`, this also accepts training checkpoints
    (``last.safetensors``), whose extra optimizer tensors it leaves out.

    Returns
    -------
    model : Module
        Rebuilt from the recorded architecture, with the saved weights, in eval mode.
    metadata : dict
        The metadata saved with it (data set, input shape, classes, preprocessing, metrics),
        without the training state.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    CheckpointError
        If it is not a cnnlab checkpoint with an architecture, the weights do not fit it, the tensor
        data does not match its recorded SHA-256 (unless ``verify=False``), or the run metadata is malformed.
    """
    model, document = checkpoint.read_model(path, ignore_prefix=OPTIMIZER_PREFIX, verify=verify)
    metadata = dict(document.get("metadata") or {})
    metadata.pop("training", None)
    check_run_metadata(os.fspath(path), metadata)
    return model.eval(), metadata
