"""Inference on a trained model's own terms: inputs read from files and preprocessed as the checkpoint records.

A checkpoint written by ``cnnlab train`` records the input shape, the classes and the preprocessing
(``pixels``: image data scaled to [0, 1], then normalised with the training set's mean and standard
deviation; MNIST-1D signals are used as they are).  ``cnnlab predict``, ``cnnlab evaluate`` and the
web app's model viewer read inputs through these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data import IMAGE_SUFFIXES

MAX_NPY_BYTES = 1 << 30  # a .npy file given to predict holds at most 1 GiB


class InputError(ValueError):
    """A file cannot be turned into the model's inputs (unreadable, wrong shape or kind)."""


def preprocess(x: np.ndarray, preprocess: dict[str, Any]) -> np.ndarray:
    """Model inputs ``(N, C, *spatial)`` from data in the training set's units (pixels in [0, 1])."""
    if not preprocess.get("pixels"):
        return x
    return _normalise(x, preprocess)


def _normalise(x: np.ndarray, preprocess: dict[str, Any]) -> np.ndarray:
    """Model inputs ``(N, C, *spatial)`` from data in the training set's units."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = np.asarray(preprocess["mean"], dtype=np.float32).reshape(shape if np.ndim(preprocess["mean"]) else ())
    std = np.asarray(preprocess["std"], dtype=np.float32).reshape(shape if np.ndim(preprocess["std"]) else ())
    return ((x.astype(np.float32) - mean) / std).astype(np.float32)


def nonfinite_weight(model: Any) -> str | None:
    """The name of the first weight or buffer of ``model`` holding NaN or infinity, or None."""
    for key, value in model.state_dict().items():
        array = np.asarray(getattr(value, "data", value))
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return key
    return None


def npy_samples(path: Path, expected: tuple[int, ...], pixels: bool) -> np.ndarray:
    try:  # mapped first: a header claiming more data than the file holds is refused before allocating
        mapped = np.load(path, allow_pickle=False, mmap_mode="r")
        if not isinstance(mapped, np.ndarray):
            raise ValueError("not a single array")
        if mapped.nbytes > MAX_NPY_BYTES:
            raise InputError(f"{path} holds {mapped.nbytes:,} bytes of data, more than the limit of "
                             f"{MAX_NPY_BYTES:,}")
        array = np.array(mapped)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path} as a .npy array: {' '.join(str(exc).split())}") from None
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path} holds {array.dtype} data; expected numbers")
    shape, c, spatial = array.shape, expected[0], expected[1:]
    if shape == expected:
        batch = array[None]
    elif c == 1 and shape == spatial:
        batch = array[None, None]
    elif shape[1:] == expected:
        batch = array
    elif c == 1 and len(shape) == len(spatial) + 1 and shape[1:] == spatial:
        batch = array[:, None]
    else:
        one = f"{spatial} or {expected}" if c == 1 else f"{expected}"
        raise InputError(f"{path} has shape {shape} but the model expects one sample of shape {one}, "
                    f"or a batch (N, {', '.join(map(str, expected))})")
    if pixels and batch.dtype == np.uint8:
        return batch.astype(np.float32) / np.float32(255)
    if batch.dtype.kind == "f" and not np.isfinite(batch).all():
        raise InputError(f"{path} holds NaN or infinite values")
    with np.errstate(over="ignore"):
        batch = batch.astype(np.float32)
    if not np.isfinite(batch).all():
        raise InputError(f"{path} holds values too large for float32")
    return batch


def image_sample(path: Path, expected: tuple[int, ...], resize: bool) -> np.ndarray:
    from cnnlab.data import load_image

    if len(expected) != 3:
        raise InputError(f"{path} is an image but the model expects signals of shape {expected}; "
                    "give a .npy file")
    c, h, w = expected
    if c not in (1, 3):
        raise InputError(f"the model expects {c}-channel inputs; give a .npy file")
    try:
        x = load_image(path, grayscale=c == 1, size=(h, w) if resize else None)
    except (ValueError, ImportError) as exc:
        raise InputError(f"{exc}") from None
    if x.shape != expected:
        raise InputError(f"{path} is {x.shape[2]}x{x.shape[1]} pixels but the model expects "
                    f"{w}x{h} images; add --resize to scale it")
    return x[None]




def read_samples(path: str | Path, input_shape: tuple[int, ...], pixels: bool, resize: bool = False) -> np.ndarray:
    """A batch ``(N, *input_shape)`` of float32 samples from an image or a ``.npy`` file (not yet normalised).

    Raises
    ------
    InputError
        If the file does not exist, is of another kind, cannot be read, does not fit ``input_shape``,
        or holds NaN or infinite values.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if path.suffix.lower() == ".npy":
        batch = npy_samples(path, input_shape, pixels)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        batch = image_sample(path, input_shape, resize)
    else:
        raise InputError(f"{path}: expected an image ({', '.join(IMAGE_SUFFIXES)}) or a .npy file")
    if len(batch) == 0:
        raise InputError(f"{path} holds no samples")
    return batch


def classify(model: Any, batch: np.ndarray, preprocess_info: dict[str, Any], top: int = 3,
             batch_size: int = 256) -> list[list[tuple[int, float]]]:
    """Per sample, the ``top`` classes with their probabilities, most probable first (ties: lower class first).

    ``batch`` is ``(N, *input_shape)`` in the training set's units (as :func:`read_samples` gives it);
    it is preprocessed as the checkpoint records, run through ``model`` in eval mode, and the
    scores turned into probabilities with a softmax.
    """
    from cnnlab.functional import _backend, softmax
    from cnnlab.training._fit import predict

    scores = predict(model, preprocess(batch, preprocess_info), batch_size=batch_size)
    if not np.isfinite(scores).all():
        raise InputError("the model's outputs are NaN or infinite; no class can be given")
    with _backend.using("numpy"):  # one call per command: never worth compiling a kernel for
        probs = softmax(scores, dim=1)
    k = max(1, min(int(top), probs.shape[1]))
    ranked = []
    for p in probs:
        order = np.argsort(-p, kind="stable")[:k]
        ranked.append([(int(c), float(p[c])) for c in order])
    return ranked
