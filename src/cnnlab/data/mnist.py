"""MNIST, Fashion-MNIST and KMNIST: find an existing copy, or download and verify one.

All three are four IDX files of 28 x 28 grey images and labels 0..9, with the same names::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

each also accepted uncompressed (without ``.gz``).  :func:`load_mnist` looks for them in the
folders of :func:`cnnlab.data.cache.search_dirs` (``$CNNLAB_DATA/<kind>``, the user cache,
Debian's ``/usr/share/datasets/fashion-mnist``) and otherwise downloads them from the official
mirror into ``<data dir>/<kind>``, checking each file's size and SHA-256.

Checksums: the SHA-256 sums and sizes are those TensorFlow Datasets records for the same files
(``url_checksums/{mnist,fashion_mnist,kmnist}.txt``); the MD5 sums are those published by the
Fashion-MNIST README and torchvision's ``datasets/mnist.py`` and are kept for reference only.
Debian's Fashion-MNIST files are gzipped again by the packager, so their ``.gz`` bytes (not the
images) differ from the official ones: copies found on disk are validated by their IDX headers,
shapes and labels rather than by checksum.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.data.cache import ENV_DATA, ENV_MIRROR, data_dir, search_dirs
from cnnlab.data.download import ChecksumError, DownloadError, download_file
from cnnlab.data.idx import IDX_DTYPES, IDX_TYPE_NAMES, read_idx
from cnnlab.functional._args import check_choice


@dataclass(frozen=True)
class Resource:
    """One published file: its name, size in bytes, SHA-256 and MD5."""

    filename: str
    size: int
    sha256: str
    md5: str


@dataclass(frozen=True)
class IdxDataset:
    """Where an IDX data set is published and what its files are."""

    name: str
    mirrors: tuple[str, ...]
    files: dict[str, Resource]
    classes: tuple[str, ...]
    homepage: str
    debian_package: str | None = None


def _resources(rows: list[tuple[str, int, str, str]]) -> dict[str, Resource]:
    return {row[0]: Resource(*row) for row in rows}


DATASETS: dict[str, IdxDataset] = {
    "mnist": IdxDataset(
        name="MNIST",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        files=_resources([
            ("train-images-idx3-ubyte.gz", 9912422,
             "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", 28881,
             "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", 1648877,
             "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", 4542,
             "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "ec29112dd5afa0611ce80d1b7f02629c"),
        ]),
        classes=tuple(str(d) for d in range(10)),
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": IdxDataset(
        name="Fashion-MNIST",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=_resources([
            ("train-images-idx3-ubyte.gz", 26421880,
             "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", 29515,
             "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", 4422102,
             "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", 5148,
             "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", "bb300cfdad3c16e7a12a480ee83cd310"),
        ]),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        debian_package="dataset-fashion-mnist",
    ),
    "kmnist": IdxDataset(
        name="Kuzushiji-MNIST",
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        files=_resources([
            ("train-images-idx3-ubyte.gz", 18165135,
             "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4", "bdb82020997e1d708af4cf47b453dcf7"),
            ("train-labels-idx1-ubyte.gz", 29497,
             "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17", "e144d726b3acfaa3e44228e80efcd344"),
            ("t10k-images-idx3-ubyte.gz", 3041136,
             "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5", "5c965bf0a639b31b8f53240b1b52f4d7"),
            ("t10k-labels-idx1-ubyte.gz", 5120,
             "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c", "7320c461ea6c1c855c0b718fb2a4b134"),
        ]),
        # romanised hiragana of the ten classes (classmap.csv of the KMNIST repository)
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        homepage="https://github.com/rois-codh/kmnist",
    ),
}

SPLITS = {"train": "train", "test": "t10k"}
_TYPE_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}


class DatasetNotFoundError(FileNotFoundError):
    """No copy of a data set was found and none could be downloaded."""


def class_names(kind: str) -> tuple[str, ...]:
    """The ten class names of ``kind`` (``"mnist"``, ``"fashion-mnist"`` or ``"kmnist"``).

    Examples
    --------
    >>> class_names("fashion-mnist")[:3]
    ('T-shirt/top', 'Trouser', 'Pullover')
    """
    return DATASETS[check_choice("class_names", "kind", kind, DATASETS)].classes


def split_filenames(split: str) -> tuple[str, str]:
    """The compressed file names (images, labels) of ``split`` (``"train"`` or ``"test"``).

    Examples
    --------
    >>> split_filenames("test")
    ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')
    """
    prefix = SPLITS[check_choice("split_filenames", "split", split, SPLITS)]
    return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"


def _existing(folder: Path, filename: str) -> Path | None:
    """``folder/filename`` or its uncompressed twin, whichever exists first."""
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _mirrors(info: IdxDataset, kind: str, mirror: str | None) -> tuple[str, ...]:
    base = mirror if mirror is not None else os.environ.get(ENV_MIRROR, "").strip() or None
    if base is None:
        return info.mirrors
    base = base.replace("{kind}", kind)
    return (base if base.endswith("/") else base + "/",)


def _not_found_message(kind: str, split: str, folders: list[Path], target: Path, errors: list[str]) -> str:
    info = DATASETS[kind]
    names = list(info.files)
    lines = [f"load_mnist: no copy of {info.name} ({split} split) was found"
             + (" and it could not be downloaded:" if errors else " and download=False.")]
    lines += [f"  {e}" for e in errors]
    lines.append("Looked in:")
    lines += [f"  {folder}" for folder in folders]
    lines.append(f"To use {info.name} offline, put these four files (gzipped or not) in {target}/")
    lines.append("or in a folder of your choice passed as load_mnist(..., root=FOLDER):")
    lines += [f"  {name}" for name in names]
    lines.append(f"(Setting ${ENV_DATA} moves the data folder to ${ENV_DATA}/{kind}/.)")
    lines.append(f"They are published at {info.mirrors[0]} (see {info.homepage}).")
    if info.debian_package:
        lines.append(f"On Debian or Ubuntu: sudo apt-get install {info.debian_package}"
                     " (installs them in /usr/share/datasets/fashion-mnist).")
    lines.append(f"A mirror can be given with mirror=URL or the {ENV_MIRROR} environment variable.")
    return "\n".join(lines)


def _download(info: IdxDataset, kind: str, filename: str, target: Path, mirror: str | None,
              verbose: bool, errors: list[str]) -> Path | None:
    resource = info.files[filename]
    for base in _mirrors(info, kind, mirror):
        url = base + filename
        if verbose:
            print(f"cnnlab: downloading {url} -> {target / filename}", file=sys.stderr)
        try:
            return download_file(url, target / filename, sha256=resource.sha256, size=resource.size)
        except ChecksumError:
            raise
        except DownloadError as exc:
            errors.append(str(exc))
    return None


def _validate(kind: str, images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    for path, array, ndim in ((images_path, images, 3), (labels_path, labels, 1)):
        if array.dtype != np.uint8:
            code = _TYPE_CODES[array.dtype]
            raise ValueError(f"load_mnist: {path}: expected type 0x08 (ubyte), got 0x{code:02X} "
                             f"({IDX_TYPE_NAMES[code]}); is this a {DATASETS[kind].name} file?")
        if array.ndim != ndim:
            raise ValueError(f"load_mnist: {path}: expected {ndim} dimensions, got shape {array.shape}")
    if images.shape[1:] != (28, 28):
        raise ValueError(f"load_mnist: {images_path}: expected 28 x 28 images, got shape {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"load_mnist: {images_path} holds {len(images)} images but "
                         f"{labels_path} holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"load_mnist: {labels_path}: labels must be 0..9, found {int(labels.max())}")
    return images, labels.astype(np.int64)


def load_mnist(
    kind: str = "mnist",
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    mirror: str | None = None,
    verbose: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST, Fashion-MNIST or KMNIST from a local copy, downloading it if needed.

    Parameters
    ----------
    kind : {"mnist", "fashion-mnist", "kmnist"}, optional
        Which data set.
    split : {"train", "test"}, optional
        60,000 training or 10,000 test examples.
    root : str or os.PathLike or None, optional
        A folder holding the files directly (e.g. ``/usr/share/datasets/fashion-mnist``).  When
        given, only it is searched and downloads go there.  By default the folders of
        :func:`cnnlab.data.cache.search_dirs` are searched and downloads go to
        ``<data dir>/<kind>`` (``$CNNLAB_DATA/<kind>`` or ``~/.cache/cnnlab/<kind>``).
    download : bool, optional
        Download missing files.  With False, a missing copy raises at once.
    mirror : str or None, optional
        Base URL to download from instead of the official mirrors; ``{kind}`` in it is replaced
        by ``kind``.  Defaults to ``$CNNLAB_MIRROR`` when set.  Checksums are still verified.
    verbose : bool, optional
        Print one line to stderr per file downloaded.

    Returns
    -------
    images : numpy.ndarray
        uint8, shape (N, 28, 28), values 0..255.
    labels : numpy.ndarray
        int64, shape (N,), values 0..9.

    Raises
    ------
    DatasetNotFoundError
        If no copy exists and it cannot be downloaded (offline, or the server fails); the message
        lists the folders searched and the exact file names to put there.
    ChecksumError
        If a downloaded file's size or SHA-256 differs from the published one (nothing is kept).
    ValueError
        If a file is not a valid IDX file, images and labels disagree in count, or a label is
        outside 0..9; or ``kind`` or ``split`` is unknown.

    Examples
    --------
    >>> images, labels = load_mnist("fashion-mnist", "test")  # doctest: +SKIP
    >>> images.shape, images.dtype, labels.shape, labels.dtype  # doctest: +SKIP
    ((10000, 28, 28), dtype('uint8'), (10000,), dtype('int64'))
    """
    check_choice("load_mnist", "kind", kind, DATASETS)
    if mirror is not None and not isinstance(mirror, str):
        raise TypeError(f"load_mnist: mirror must be a URL string or None, got {type(mirror).__name__}")
    check_choice("load_mnist", "split", split, SPLITS)
    info = DATASETS[kind]
    wanted = split_filenames(split)
    folders = [Path(root).expanduser()] if root is not None else search_dirs(kind)
    for folder in folders:
        found = [_existing(folder, name) for name in wanted]
        if all(p is not None for p in found):
            return _validate(kind, found[0], found[1])
    target = folders[0] if root is not None else data_dir() / kind
    errors: list[str] = []
    if download:
        paths = []
        for name in wanted:
            path = _existing(target, name) or _download(info, kind, name, target, mirror, verbose, errors)
            if path is None:
                break
            paths.append(path)
        else:
            return _validate(kind, paths[0], paths[1])
    raise DatasetNotFoundError(_not_found_message(kind, split, folders, target, errors))
