"""Data sets by name: what ``cnnlab train``, ``evaluate`` and the benchmarks load.

``mnist1d`` (4,000 train / 1,000 test signals of length 40, given the shape ``(1, 40)``), ``mnist``,
``fashion-mnist``, ``kmnist`` (28 x 28 grey images scaled to [0, 1], with the training set's mean and
standard deviation for normalisation), or the path of an image folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.mnist import DATASETS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class DataError(ValueError):
    """A data set cannot be loaded: unknown name, no copy found, a missing package or a bad file."""


@dataclass
class Data:
    """A data set ready for training: float32 inputs ``(N, C, *spatial)`` and int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    mean: float | list[float]
    std: float | list[float]
    pixels: bool  # image data: inputs in [0, 1] that the loaders normalise with mean and std

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def preprocess(self) -> dict[str, Any]:
        return {"pixels": self.pixels, "mean": self.mean, "std": self.std}


def _pixel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    axes = (0, *range(2, x.ndim))
    mean = x.mean(axis=axes, dtype=np.float64)
    std = np.maximum(x.std(axis=axes, dtype=np.float64), 1e-6)
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def _folder_arrays(folder: Any) -> tuple[np.ndarray, np.ndarray]:
    images = [folder[i][0] for i in range(len(folder))]  # an unreadable image raises its own ValueError
    shapes = sorted({x.shape for x in images})
    if len(shapes) > 1:
        hint = "; give --image-size N to resize them all" if folder.size is None else ""
        sizes = ", ".join(f"{w}x{h}" for _, h, w in shapes[:3]) + (", ..." if len(shapes) > 3 else "")
        raise DataError(f"images in {folder.root} differ in size ({sizes}){hint}")
    return np.stack(images).astype(np.float32), folder.targets.astype(np.int64)


def _load_folder(path: Path, image_size: int | None, rgb: bool, seed: int) -> Data:
    from cnnlab.data import ImageFolder

    try:
        if (path / "train").is_dir() and (path / "test").is_dir():
            train = ImageFolder(path / "train", grayscale=not rgb, size=image_size)
            test = ImageFolder(path / "test", grayscale=not rgb, size=image_size)
            if train.classes != test.classes:
                raise DataError(f"{path}/train and {path}/test have different class folders")
            (x_train, y_train), (x_test, y_test) = _folder_arrays(train), _folder_arrays(test)
        else:
            train = ImageFolder(path, grayscale=not rgb, size=image_size)
            x, y = _folder_arrays(train)
            order = np.random.default_rng(seed).permutation(len(x))
            n_test = max(1, len(x) // 5) if len(x) > 1 else 0
            x_test, y_test = x[order[:n_test]], y[order[:n_test]]
            x_train, y_train = x[order[n_test:]], y[order[n_test:]]
    except DataError:
        raise
    except (ValueError, OSError, ImportError) as exc:
        raise DataError(" ".join(str(exc).split())) from None
    mean, std = _pixel_stats(x_train)
    return Data(str(path), x_train, y_train, x_test, y_test, list(train.classes), mean, std, pixels=True)


def expected_shape(name: str) -> tuple[tuple[int, ...], int] | None:
    """``(input_shape, number of classes)`` of the named data set :func:`load_dataset` gives, known
    before it is loaded; None for an image folder (known once its images are read).

    Examples
    --------
    >>> expected_shape("fashion-mnist")
    ((1, 28, 28), 10)
    """
    key = name.lower()
    if key == "mnist1d":
        return (1, 40), 10
    if key in DATASETS:
        return (1, 28, 28), len(DATASETS[key].classes)
    return None


def load_dataset(name: str, *, seed: int = 0, image_size: int | None = None, rgb: bool = False) -> Data:
    """Load a data set by name (``mnist1d``, ``mnist``, ``fashion-mnist``, ``kmnist``) or folder path.

    Parameters
    ----------
    name : str
        ``mnist1d``, ``mnist``, ``fashion-mnist``, ``kmnist``, or the path of an image folder (one
        sub-folder per class; with ``train/`` and ``test/`` sub-folders those are the splits,
        otherwise a seeded fifth of the images is the test split).
    seed : int, default 0
        Seed of the folder split.
    image_size : int, optional
        Resize folder images to ``image_size`` x ``image_size``.
    rgb : bool, default False
        Read folder images in colour.

    Returns
    -------
    Data
        float32 inputs ``(N, C, *spatial)``, int64 labels, class names and the normalisation.

    Raises
    ------
    DataError
        If the data set is unknown, not found, not installable, or its files are unreadable.
    """
    key = name.lower()
    if key == "mnist1d":
        from cnnlab.data import load_mnist1d

        try:
            x_train, y_train, x_test, y_test = load_mnist1d()
        except ImportError:
            raise DataError("MNIST-1D is generated by the 'mnist1d' package, which is not installed; "
                        "install it with: pip install 'cnnlab[data]'") from None
        classes = [str(k) for k in range(10)]
        return Data("mnist1d", x_train[:, None, :], y_train, x_test[:, None, :], y_test, classes, 0.0, 1.0, False)
    if key in DATASETS:
        from cnnlab.data import DatasetNotFoundError, data_dir, load_mnist

        try:
            (x_train, y_train), (x_test, y_test) = load_mnist(key, "train"), load_mnist(key, "test")
        except DatasetNotFoundError:
            raise DataError(f"no copy of {DATASETS[key].name} was found and it could not be downloaded; "
                        f"put its four IDX files (train-images-idx3-ubyte.gz, ...) in {data_dir() / key}/") from None
        except ValueError as exc:
            raise DataError(f"{exc}") from None
        x_train = (x_train[:, None] / np.float32(255)).astype(np.float32)
        x_test = (x_test[:, None] / np.float32(255)).astype(np.float32)
        mean, std = _pixel_stats(x_train)
        return Data(key, x_train, y_train, x_test, y_test, list(DATASETS[key].classes), mean, std, True)
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_folder(path, image_size, rgb, seed)
    raise DataError(f"unknown data {name!r}: expected mnist1d, {', '.join(DATASETS)} "
                "or the path of an image folder (one sub-folder per class)")
