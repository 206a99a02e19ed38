"""Inputs for the figures of a checkpoint: its data set's test split and its preprocessing.

A checkpoint written by ``cnnlab train`` records in its metadata the data set (``data``), the
input shape, the classes and the preprocessing (``preprocess``: for images, the mean and standard
deviation the inputs were normalised with).  These helpers read that record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

import cnnlab
from cnnlab import nn
from cnnlab.functional import _backend

BUILT_IN = ("mnist1d", "mnist", "fashion-mnist", "kmnist")


def load_checkpoint(path: Any) -> Any:
    """The model of a checkpoint: :func:`cnnlab.load_model`, or for a ``last.safetensors`` that
    also holds the training state, the model part of it (the ``__``-prefixed entries dropped).

    Raises
    ------
    cnnlab.CheckpointError
        When the file is not a cnnlab checkpoint of a model.
    """
    try:
        return cnnlab.load_model(path)
    except cnnlab.CheckpointError as exc:
        document = cnnlab.load_metadata(path) or {}
        config = document.get("config")
        if "unexpected keys" not in str(exc) or not isinstance(config, dict):
            raise
    tensors = {k: v for k, v in cnnlab.load(path).items() if not k.startswith("__")}
    model = nn.from_config(config)
    model.load_state_dict(tensors)
    return model


def load_test_set(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The test split of a built-in data set, unnormalised: ``(x, y)`` with ``x`` as
    ``(N, 1, 40)`` signals (MNIST-1D) or ``(N, 1, 28, 28)`` pixels in [0, 1].

    Raises
    ------
    ValueError
        For a data set other than mnist1d, mnist, fashion-mnist and kmnist.
    ImportError, OSError
        When the data set is not available (mnist1d not installed, no copy of the IDX files).
    """
    key = str(name).lower()
    if key == "mnist1d":
        from cnnlab.data import load_mnist1d

        _, _, x, y = load_mnist1d()
        return x[:, None].astype(np.float32), y.astype(np.int64)
    if key in BUILT_IN:
        from cnnlab.data import load_mnist

        x, y = load_mnist(key, "test")
        return (x[:, None] / np.float32(255)).astype(np.float32), y.astype(np.int64)
    raise ValueError(f"load_test_set: test examples are available for {', '.join(BUILT_IN)}, not for data {name!r}")


def prepare_input(metadata: Mapping[str, Any], x: Any) -> np.ndarray:
    """One raw example (or a batch) as the checkpoint's model takes it: reshaped to the recorded
    input shape when it has that many numbers, and normalised as in training.

    Raises
    ------
    ValueError
        When the number of values does not match the recorded input shape.
    """
    a = np.asarray(x, dtype=np.float32)
    shape = metadata.get("input_shape")
    if isinstance(shape, (list, tuple)) and shape:
        size = int(np.prod(shape))
        if a.size == size:
            a = a.reshape(tuple(shape))
        elif a.size % size == 0 and a.shape[1:] == tuple(shape):
            pass  # a batch
        else:
            raise ValueError(f"input has {a.size} numbers but this model takes shape {tuple(shape)} ({size} numbers)")
    pre = metadata.get("preprocess") or {}
    if pre.get("pixels"):
        from cnnlab.data import Normalize

        a = np.asarray(Normalize(pre.get("mean", 0.0), pre.get("std", 1.0))(a), dtype=np.float32)
    return a


def predict_probabilities(model: Any, x: Any, metadata: Mapping[str, Any] | None = None,
                          batch_size: int = 500) -> np.ndarray:
    """Class probabilities ``(N, K)`` of ``model`` for raw examples ``x`` ``(N, ...)``, prepared as
    :func:`prepare_input` says (in batches, eval mode, no gradients)."""
    from cnnlab import functional as F

    xs = np.asarray(x, dtype=np.float32)
    meta = dict(metadata or {})
    was_training = model.training
    model.eval()
    parts = []
    try:
        with cnnlab.no_grad():
            for i in range(0, len(xs), batch_size):
                batch = xs[i:i + batch_size]
                if meta:
                    batch = prepare_input({**meta, "input_shape": None}, batch)
                parts.append(np.asarray(model(cnnlab.Tensor(batch)).data, dtype=np.float64))
    finally:
        model.train(was_training)
    # one call on the whole set: the NumPy formulas, so that no compiled kernel is built for it
    # (its first use would cost seconds of compilation in a cold `cnnlab train`, for milliseconds saved)
    with _backend.using("numpy"):
        return np.asarray(F.softmax(np.concatenate(parts), dim=1))
