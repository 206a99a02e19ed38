"""MNIST-1D, generated offline by the ``mnist1d`` package and cached as ``.npz``.

MNIST-1D (Greydanus and Kobak, "Scaling down deep learning with MNIST-1D") turns ten 1-D digit
templates into 5,000 noisy signals of length 40 by padding, scaling, translating, shearing and
adding correlated and i.i.d. noise, then splits them 4,000 / 1,000.  cnnlab never downloads the
authors' pickle: it calls the package's own generator, ``mnist1d.data.make_dataset``, with its
default arguments (seed 42), and stores the result in ``<data dir>/mnist1d/`` (see
:mod:`cnnlab.data.cache`) under a name derived from the generator arguments.

Cost: generating takes about 5 s on a laptop-class CPU (4.4 s measured on a shared 2-core
machine), plus about 1.5 s to import ``mnist1d``, which imports matplotlib and SciPy.  Loading
the cache takes milliseconds and does not import ``mnist1d`` at all.

The generator seeds NumPy's and Python's global random generators; :func:`load_mnist1d` saves
and restores both, so calling it leaves the caller's random state untouched.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import random
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.cache import data_dir

# The generator's default arguments in mnist1d 0.0.2 (``mnist1d.data.get_dataset_args``), which
# produce the data set of the paper.  Only the download URL is left out: cnnlab never uses it.
MNIST1D_DEFAULTS: dict[str, Any] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 0.02,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}

_INSTALL_HINT = "pip install 'cnnlab[data]'  (or: pip install mnist1d)"


def _import_generator():
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise ImportError(
            f"load_mnist1d: generating MNIST-1D needs the 'mnist1d' package, which is not installed "
            f"({exc}). Install it with: {_INSTALL_HINT}"
        ) from exc
    return get_dataset_args, make_dataset


def mnist1d_args(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The generator arguments: the defaults with ``overrides`` applied, validated.

    Parameters
    ----------
    overrides : mapping or None, optional
        Values replacing entries of :data:`MNIST1D_DEFAULTS`, e.g. ``{"shuffle_seq": True}``.

    Returns
    -------
    dict
        A new dict with every key of :data:`MNIST1D_DEFAULTS`.

    Raises
    ------
    TypeError
        If ``overrides`` is not a mapping.
    ValueError
        If a key is unknown or a value cannot be written as JSON (it names the cache file).

    Examples
    --------
    >>> mnist1d_args({"num_samples": 500})["num_samples"], mnist1d_args()["seed"]
    (500, 42)
    """
    args = json.loads(json.dumps(MNIST1D_DEFAULTS))
    if overrides is None:
        return args
    if not isinstance(overrides, Mapping):
        raise TypeError(f"load_mnist1d: args must be a mapping or None, got {type(overrides).__name__}")
    unknown = sorted(set(overrides) - set(MNIST1D_DEFAULTS))
    if unknown:
        raise ValueError(f"load_mnist1d: unknown generator arguments {unknown}; known: {sorted(MNIST1D_DEFAULTS)}")
    try:
        args.update(json.loads(json.dumps(dict(overrides))))
    except TypeError as exc:
        raise ValueError(f"load_mnist1d: generator arguments must be JSON values ({exc})") from None
    return args


def cache_path(cache_dir: str | os.PathLike[str] | None = None, args: Mapping[str, Any] | None = None) -> Path:
    """The ``.npz`` file that holds MNIST-1D generated with ``args``.

    Parameters
    ----------
    cache_dir : str or os.PathLike or None, optional
        Folder of the cache; by default ``<data dir>/mnist1d``.
    args : mapping or None, optional
        Overrides of the generator arguments, as for :func:`load_mnist1d`.

    Returns
    -------
    pathlib.Path
        ``<cache_dir>/mnist1d-<first 16 hex digits of the SHA-256 of the arguments as JSON>.npz``.

    Examples
    --------
    >>> cache_path("/tmp/c").name == cache_path("/tmp/c", {"seed": 42}).name
    True
    >>> cache_path("/tmp/c").name == cache_path("/tmp/c", {"seed": 0}).name
    False
    """
    key = json.dumps(mnist1d_args(args), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else data_dir() / "mnist1d"
    return folder / f"mnist1d-{digest}.npz"


def generate_mnist1d(args: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Run the ``mnist1d`` package's generator, without touching any cache.

    Parameters
    ----------
    args : mapping or None, optional
        Overrides of :data:`MNIST1D_DEFAULTS`.

    Returns
    -------
    dict
        ``x_train``, ``y_train``, ``x_test``, ``y_test`` (float32 signals, int64 labels) and
        ``t`` (float32, the positions of the 40 samples after the generator's rescaling).

    Raises
    ------
    ImportError
        If ``mnist1d`` is not installed.
    """
    get_dataset_args, make_dataset = _import_generator()
    merged = mnist1d_args(args)
    package_args = get_dataset_args(as_dict=False)
    for name, value in merged.items():
        setattr(package_args, name, value)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(package_args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x_train": np.asarray(data["x"], dtype=np.float32),
        "y_train": np.asarray(data["y"], dtype=np.int64),
        "x_test": np.asarray(data["x_test"], dtype=np.float32),
        "y_test": np.asarray(data["y_test"], dtype=np.int64),
        "t": np.asarray(data["t"], dtype=np.float32),
    }


def _package_version() -> str:
    try:
        return importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _write_atomic(path: Path, arrays: dict[str, np.ndarray], args: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, args=np.array(json.dumps(args, sort_keys=True)),
                     mnist1d_version=np.array(_package_version()))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in ("x_train", "y_train", "x_test", "y_test")}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        warnings.warn(f"load_mnist1d: cache file {path} is unreadable ({exc}); generating it again",
                      RuntimeWarning, stacklevel=3)
        return None


def load_mnist1d(
    cache_dir: str | os.PathLike[str] | None = None,
    regenerate: bool = False,
    *,
    args: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D as ``(x_train, y_train, x_test, y_test)``, generated once and then cached.

    The first call runs the ``mnist1d`` package's generator (about 5 s plus 1.5 s of imports; see
    the module notes) and writes the arrays to an ``.npz`` file; later calls read that file.

    Parameters
    ----------
    cache_dir : str or os.PathLike or None, optional
        Folder of the cache; by default ``<data dir>/mnist1d``, i.e. ``$CNNLAB_DATA/mnist1d`` or
        ``~/.cache/cnnlab/mnist1d``.
    regenerate : bool, optional
        Generate again and overwrite the cache file even when it exists.
    args : mapping or None, optional
        Overrides of the generator arguments (:data:`MNIST1D_DEFAULTS`), e.g.
        ``{"shuffle_seq": True}`` for the paper's spatially shuffled variant.  Each set of
        arguments has its own cache file.

    Returns
    -------
    x_train, y_train, x_test, y_test : numpy.ndarray
        float32 signals of shape (N, 40) and int64 labels 0..9 of shape (N,); N is 4000 and 1000
        with the default arguments.

    Raises
    ------
    ImportError
        If the data must be generated and ``mnist1d`` is not installed; the message says what to
        install.
    ValueError
        If ``args`` has an unknown key.

    Examples
    --------
    >>> x_train, y_train, x_test, y_test = load_mnist1d()  # doctest: +SKIP
    >>> x_train.shape, x_train.dtype, y_test.shape, y_test.dtype  # doctest: +SKIP
    ((4000, 40), dtype('float32'), (1000,), dtype('int64'))
    """
    merged = mnist1d_args(args)
    path = cache_path(cache_dir, merged)
    arrays = None if regenerate else _read_cache(path)
    if arrays is None:
        arrays = generate_mnist1d(merged)
        _write_atomic(path, arrays, merged)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
