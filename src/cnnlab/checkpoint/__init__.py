"""Checkpoints in the safetensors format: safe to load, atomic to write, readable by PyTorch.

A checkpoint is a safetensors file: an 8-byte little-endian header length, a JSON header giving
each tensor's dtype, shape and byte range, then the raw little-endian tensor bytes.  Nothing in
it is code, so loading one never executes anything (unlike ``pickle`` and ``torch.save``).
The tensors are a module's ``state_dict`` under PyTorch's key names (``"0.weight"``,
``"fc.bias"``), so ``safetensors.torch.load_file`` + ``load_state_dict`` reads a cnnlab model
into the equivalent PyTorch model, and the reverse.

cnnlab adds one string entry to the header's ``__metadata__``: under the key ``"cnnlab"``, a
JSON document with the format version, the cnnlab version, the model's architecture (its
``to_config()``) when there is one, and the caller's own metadata.  ``load_model`` rebuilds the
model from that architecture.

Saving writes a temporary file next to the target, flushes it to disk and renames it over the
target in one step (``os.replace``), so an interrupted save leaves the previous checkpoint intact.

Integrity: the document also records ``tensor_sha256``, the SHA-256 of the file's tensor bytes
(everything after the header), and every load checks it (``verify=False`` skips that, for speed), so a
flipped bit in the weights is reported instead of loaded.  The document is schema-checked before use
(types, ranges, lengths, nesting at most :data:`MAX_NESTING` deep), and the architecture it records
is compared with the file's tensors *before* the model is built, so a small file cannot make
``load_model`` allocate a huge model.

The ``safetensors`` package is an optional dependency: ``pip install cnnlab[io]``.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from cnnlab._version import __version__
from cnnlab.checkpoint._file import (
    _SAVABLE,
    FORMAT_VERSION,
    MAX_NESTING,
    METADATA_KEY,
    CheckpointError,
    PathLike,
    _read,
    _read_checked,
    _safetensors_numpy,
    _tensors,
    _with_digest,
)
from cnnlab.checkpoint._file import DIGEST_KEY as DIGEST_KEY  # (re-exported, as nesting_depth)
from cnnlab.checkpoint._file import nesting_depth as nesting_depth

__all__ = [
    "CheckpointError",
    "FORMAT_VERSION",
    "METADATA_KEY",
    "MAX_NESTING",
    "save",
    "load",
    "load_metadata",
    "load_weights",
    "load_model",
]


# -- saving -------------------------------------------------------------------------------------


def _as_array(name: str, value: Any) -> np.ndarray:
    array = value
    if not isinstance(array, np.ndarray):
        array = getattr(value, "data", None)  # a cnnlab Tensor or Parameter
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"save: tensor {name!r} must be a NumPy array (or hold one in .data), "
            f"got {type(value).__name__}"
        )
    little = array.dtype.newbyteorder("<")
    if little not in _SAVABLE:
        raise TypeError(
            f"save: tensor {name!r} has dtype {array.dtype}, which safetensors cannot store; "
            "use bool, (u)int8-64 or float16/32/64"
        )
    return np.asarray(array, dtype=little, order="C")  # (ascontiguousarray would make 0-d 1-d)


def _tensors_and_config(obj: Any) -> tuple[dict[str, np.ndarray], Any]:
    if isinstance(obj, Mapping):
        tensors, config = obj, None
    elif callable(getattr(obj, "state_dict", None)):
        tensors = obj.state_dict()
        to_config = getattr(obj, "to_config", None)
        config = to_config() if callable(to_config) else None
    else:
        raise TypeError(
            "save: obj must be a module (with state_dict()) or a dict of name -> array, "
            f"got {type(obj).__name__}"
        )
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"save: tensor names must be str, got {name!r}")
        arrays[name] = _as_array(name, value)
    return arrays, config


def _metadata_document(config: Any, metadata: Any) -> str:
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"save: metadata must be a dict, got {type(metadata).__name__}")
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "cnnlab_version": __version__,
        "metadata": dict(metadata or {}),
    }
    if config is not None:
        document["config"] = config
    try:
        # insertion order is kept (no sort_keys): a Sequential's layers are recorded, and rebuilt,
        # in the order they run, whatever their names
        return json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"save: the model config and metadata must be JSON-serialisable ({exc})"
        ) from None


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to the file descriptor ``fd``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: str) -> None:
    """Make a rename durable by syncing its directory (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def save(obj: Any, path: PathLike, metadata: Mapping[str, Any] | None = None) -> None:
    """Save a module's weights (and architecture) or a dict of arrays as a safetensors file.

    Parameters
    ----------
    obj : Module or dict of str -> ndarray
        A module (anything with ``state_dict()``; its ``to_config()``, if it has one, is
        recorded so that :func:`load_model` can rebuild it), or a plain dict of named arrays.
    path : str or os.PathLike
        Destination file, conventionally ``*.safetensors``.  Replaced atomically if it exists.
    metadata : dict, optional
        Extra JSON-serialisable information (epoch, accuracy, ...) stored in the header;
        :func:`load_metadata` returns it.

    Raises
    ------
    TypeError
        If ``obj`` is neither a module nor a dict, a value is not an array of a dtype
        safetensors stores, a name is not a str, or the config/metadata is not JSON-serialisable.
    ImportError
        If the ``safetensors`` package is not installed.
    OSError
        If the file cannot be written; an existing file at ``path`` is then left as it was.

    Notes
    -----
    Arrays are written C-contiguous and little-endian.  The write goes to a temporary file in
    the same directory, is flushed with ``fsync`` and then renamed over ``path`` with
    ``os.replace``, which is atomic: readers see the old file or the new one, never a mix.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from cnnlab import checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> checkpoint.save({"weight": np.eye(2, dtype=np.float32)}, path, metadata={"epoch": 3})
    >>> checkpoint.load(path)["weight"]
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    >>> checkpoint.load_metadata(path)["metadata"]
    {'epoch': 3}
    """
    st = _safetensors_numpy()
    arrays, config = _tensors_and_config(obj)
    document = _metadata_document(config, metadata)
    data = st.save(arrays, metadata={METADATA_KEY: document})
    _atomic_write(os.fspath(path), _with_digest(data, document))


# -- loading ------------------------------------------------------------------------------------


def load(path: PathLike, *, verify: bool = True) -> dict[str, np.ndarray]:
    """Read the named arrays of a safetensors file (written by cnnlab, PyTorch or anyone).

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    verify : bool, default True
        Check the SHA-256 of the tensor data that cnnlab records (files without one are not checked).

    Returns
    -------
    dict of str -> ndarray
        The tensors, in the file's order, as writable NumPy arrays.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    CheckpointError
        If the file is empty, truncated, has a corrupted header, or is not a safetensors file
        (a pickle, a zip from ``torch.save``, a text file, ...), its metadata is malformed, or the
        tensor data does not match its recorded SHA-256.  Nothing in the file is ever executed.
    ImportError
        If the ``safetensors`` package is not installed.
    """
    return _read(path, verify)[1]


def load_metadata(path: PathLike, *, verify: bool = True) -> dict[str, Any] | None:
    """The cnnlab metadata document of a checkpoint, or None if cnnlab did not write it.

    Returns
    -------
    dict or None
        ``{"format_version", "cnnlab_version", "metadata", "config"}``: ``metadata`` is what
        was passed to :func:`save`; ``config`` (the architecture) is present for modules that
        have ``to_config()``.

    Raises
    ------
    FileNotFoundError, CheckpointError, ImportError
        As for :func:`load`.
    """
    return _read_checked(path, verify)[3]


def _own_array(value: Any) -> np.ndarray:
    """A model's state entry as an array (a cnnlab Tensor keeps its array in ``.data``)."""
    return value if isinstance(value, np.ndarray) else np.asarray(getattr(value, "data", value))


def _check_fit(name: str, model: Any, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check keys and shapes against the model's own state dict; cast to its dtypes."""
    own = {key: _own_array(value) for key, value in model.state_dict().items()}
    missing = [key for key in own if key not in tensors]
    unexpected = [key for key in tensors if key not in own]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    for key in own:
        if key in tensors and tensors[key].shape != own[key].shape:
            problems.append(
                f"{key!r} has shape {tensors[key].shape} in the file but "
                f"{own[key].shape} in the model"
            )
    if problems:
        raise CheckpointError(
            f"{name!r} does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    return {key: tensors[key].astype(own[key].dtype, copy=False) for key in own}


def load_weights(model: Any, path: PathLike, *, verify: bool = True) -> Any:
    """Load a checkpoint's tensors into an existing model, strictly.

    Works for any safetensors file whose keys are the model's ``state_dict`` keys, including
    one written by PyTorch with ``safetensors.torch.save_file``.  Arrays are cast to the
    dtypes of the model's own state (as PyTorch's ``load_state_dict`` copies do).

    Parameters
    ----------
    model : Module
        Anything with ``state_dict()`` and ``load_state_dict(state)``.
    path : str or os.PathLike
        The checkpoint file.

    Returns
    -------
    Module
        ``model``, for chaining.

    Raises
    ------
    CheckpointError
        If the file cannot be read (see :func:`load`), or keys are missing or unexpected, or a
        shape differs; the message lists every mismatch.
    """
    name, tensors, _ = _read(path, verify)
    model.load_state_dict(_check_fit(name, model, tensors))
    return model


def _build_from_config(config: dict[str, Any]) -> Any:
    """Rebuild a module from its ``to_config()`` output (``cnnlab.nn.from_config``)."""
    from cnnlab import nn

    return nn.from_config(config)


# Tensors under this prefix in a training checkpoint (``last.safetensors`` of ``cnnlab train``)
# are the optimizer's state, not weights; no module's parameter name can start with it.
TRAINING_STATE_PREFIX = "__optimizer__.state."


def load_model(path: PathLike, *, verify: bool = True) -> Any:
    """Rebuild the model saved by :func:`save` from its recorded architecture, with its weights.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint written by ``cnnlab.save(module, path)`` for a module with ``to_config()``,
        or a training checkpoint of ``cnnlab train`` (``best.safetensors``, or ``last.safetensors``,
        whose optimizer state, stored under :data:`TRAINING_STATE_PREFIX`, is left out).

    Returns
    -------
    Module
        A new module of the recorded architecture holding the saved weights.

    Raises
    ------
    CheckpointError
        If the file cannot be read (see :func:`load`), it has no cnnlab metadata or no
        recorded architecture (load it with :func:`load`, or :func:`load_weights` into a model
        you build), the architecture is unknown to this cnnlab, or the weights do not fit it.
    """
    return _load_rebuilt(path, TRAINING_STATE_PREFIX, verify)[0]


def read_model(path: PathLike, ignore_prefix: str | None = None, *, verify: bool = True
               ) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint once: the model it records (as :func:`load_model`) and its metadata document.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint with a recorded architecture.
    ignore_prefix : str, optional
        Tensors whose names start with this are not model weights (a training checkpoint's
        optimizer state) and are left out before the weights are fitted to the model.

    Returns
    -------
    model : Module
    document : dict
        The checkpoint's cnnlab metadata document (``format_version``, ``config``, ``metadata``).

    Raises
    ------
    FileNotFoundError, CheckpointError
        As :func:`load_model`.
    """
    model, document = _load_rebuilt(path, ignore_prefix, verify)
    return model, dict(document or {})


def _load_rebuilt(path: PathLike, ignore_prefix: str | None, verify: bool) -> tuple[Any, dict[str, Any] | None]:
    """Check the file, check its architecture against its tensors' shapes, then build and fill the model."""
    name, data, entries, document = _read_checked(path, verify)
    config = _config_of(name, document)
    values = sum(math.prod(entry["shape"]) for entry in entries.values())
    needed = _least_state_size(config)
    if needed > values:
        raise CheckpointError(
            f"{name!r} does not fit its recorded architecture: building it needs at least {needed:,} weights, "
            f"but the file holds only {values:,} values; the model is not built"
        )
    tensors = _tensors(name, data)
    if ignore_prefix is not None:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(ignore_prefix)}
    return _rebuild(name, tensors, config), document


def _int_arg(args: Mapping[str, Any], key: str) -> int | None:
    value = args.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _least_state_size(config: Any) -> int:
    """A lower bound of the number of values the modules of ``config`` allocate (0 where unknown).

    Read from the argument names of cnnlab's layers, so no module is built: ``in_features`` x
    ``out_features`` (Linear), ``in_channels`` x ``out_channels`` x kernel / ``groups`` (convolutions),
    ``num_features`` (batch norm).  Iterative: a config nested 100,000 deep is walked without recursion.
    """
    total, stack = 0, [config]
    while stack:
        item = stack.pop()
        if not isinstance(item, Mapping):
            continue
        args = item.get("args")
        if isinstance(args, Mapping):
            features = _int_arg(args, "in_features"), _int_arg(args, "out_features")
            channels = _int_arg(args, "in_channels"), _int_arg(args, "out_channels")
            if None not in features:
                total += features[0] * features[1]
            elif None not in channels:
                kernel = args.get("kernel_size")
                kernel = kernel if isinstance(kernel, list) else [kernel]
                size = channels[0] * channels[1] // (_int_arg(args, "groups") or 1)
                for k in kernel:
                    size *= k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else 1
                total += size
            elif _int_arg(args, "num_features") is not None:
                total += args["num_features"]
        modules = item.get("modules")
        if isinstance(modules, Mapping):
            stack.extend(modules.values())
    return total


def _config_of(name: str, document: dict[str, Any] | None) -> dict[str, Any]:
    if document is None:
        raise CheckpointError(
            f"{name!r} has no cnnlab metadata, so the model cannot be rebuilt; read the tensors "
            "with cnnlab.load, or build the model and use load_weights"
        )
    config = document.get("config")
    if config is None:
        raise CheckpointError(
            f"{name!r} records no architecture (it was saved from a plain dict or a module "
            "without to_config); read it with cnnlab.load or load_weights"
        )
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{name!r} has a corrupted architecture: expected a JSON object, "
            f"got {type(config).__name__}"
        )
    return config


def _rebuild(name: str, tensors: dict[str, np.ndarray], config: dict[str, Any]) -> Any:
    try:
        model = _build_from_config(config)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        raise CheckpointError(
            f"{name!r}: cannot rebuild the recorded architecture: {exc}"
        ) from exc
    model.load_state_dict(_check_fit(name, model, tensors))
    return model
