"""A folder of images, one sub-folder per class, read with Pillow (the optional ``data`` extra).

::

    root/
      cat/  001.png  002.jpg ...
      dog/  a.jpeg ...

Class names are the sub-folder names in sorted order; class ``k`` is the ``k``-th name.  Hidden
entries (names starting with ``.``) are ignored, and so are files whose extension is not an image
extension.  Images are decoded when an item is requested, not at construction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

MAX_IMAGE_PIXELS = 25_000_000  # e.g. 5000 x 5000; checked from the file's header before decoding
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_INSTALL_HINT = "pip install 'cnnlab[data]'  (or: pip install pillow)"


def _pillow():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise ImportError(
            f"ImageFolder: reading images needs Pillow, which is not installed ({exc}). "
            f"Install it with: {_INSTALL_HINT}"
        ) from exc
    return Image, UnidentifiedImageError


def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    items = size if isinstance(size, (tuple, list)) else (size, size)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, Integral) for v in items):
        raise TypeError(f"ImageFolder: size must be an int, a (height, width) pair or None, got {size!r}")
    if min(items) < 1:
        raise ValueError(f"ImageFolder: size must be positive, got {size!r}")
    if int(items[0]) * int(items[1]) > MAX_IMAGE_PIXELS:
        raise ValueError(f"ImageFolder: size {size!r} has more than {MAX_IMAGE_PIXELS:,} pixels")
    return int(items[0]), int(items[1])


def load_image(path: str | os.PathLike[str], grayscale: bool = True,
               size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read one image file as a float32 ``(C, H, W)`` array in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, JPEG or other file Pillow can read.
    grayscale : bool, optional
        Convert to one channel (Pillow's ``"L"`` mode); otherwise to three (``"RGB"``).
    size : int or (int, int) or None, optional
        Resize to ``(height, width)`` (an int means square) with bilinear interpolation.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(1, H, W)`` or ``(3, H, W)``.

    Raises
    ------
    ImportError
        If Pillow is not installed.
    ValueError
        If the file cannot be decoded, or its header declares more than :data:`MAX_IMAGE_PIXELS`
        pixels (checked before decoding, so a small file cannot make Pillow allocate gigabytes); the
        message names the file.
    """
    image_mod, unidentified = _pillow()
    hw = _check_size(size)
    path = Path(path)
    bomb = getattr(image_mod, "DecompressionBombError", OSError)
    try:
        with image_mod.open(path) as im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(f"it is {width} x {height} pixels, more than the limit of {MAX_IMAGE_PIXELS:,}")
            im = im.convert("L" if grayscale else "RGB")
            if hw is not None and (im.height, im.width) != hw:
                im = im.resize((hw[1], hw[0]), image_mod.Resampling.BILINEAR)
            pixels = np.asarray(im, dtype=np.uint8)
    except (unidentified, bomb, OSError, ValueError, SyntaxError, MemoryError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"ImageFolder: cannot read image {path}: {detail}") from None
    if pixels.ndim == 2:
        pixels = pixels[None]
    else:
        pixels = np.moveaxis(pixels, -1, 0)
    return pixels.astype(np.float32) / np.float32(255)


class ImageFolder:
    """Images in ``root/<class name>/<file>`` as a dataset of ``(image, label)`` pairs.

    Parameters
    ----------
    root : str or os.PathLike
        Folder with one sub-folder per class.
    transform : callable or None, optional
        Applied to each image array after loading (e.g. :class:`~cnnlab.data.Normalize`).
    grayscale : bool, optional
        One channel (default) or three (RGB).
    size : int or (int, int) or None, optional
        Resize every image to ``(height, width)``; needed for batching images of different sizes.
    extensions : sequence of str, optional
        File extensions (lower case, with the dot) counted as images.

    Attributes
    ----------
    classes : list of str
        Sorted class names; label ``k`` is ``classes[k]``.
    class_to_idx : dict
        Class name to label.
    samples : list of (pathlib.Path, int)
        Every image file and its label, in class then file-name order.
    targets : numpy.ndarray
        The labels of ``samples`` (int64).

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        If ``root`` has no class sub-folder, or a class folder holds no image.
    ImportError
        If Pillow is not installed.

    Examples
    --------
    A two-class folder written with Pillow (skipped by doctest: Pillow is optional):

    >>> import tempfile, pathlib
    >>> from PIL import Image  # doctest: +SKIP
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...     for name in ("a", "b"):
    ...         (pathlib.Path(tmp) / name).mkdir()
    ...         Image.new("L", (4, 3), 255).save(pathlib.Path(tmp) / name / "x.png")
    ...     ds = ImageFolder(tmp)
    ...     x, y = ds[1]
    >>> ds.classes, x.shape, x.dtype, float(x.max()), y  # doctest: +SKIP
    (['a', 'b'], (1, 3, 4), dtype('float32'), 1.0, 1)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        grayscale: bool = True,
        size: int | tuple[int, int] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        _pillow()
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a folder")
        if transform is not None and not callable(transform):
            raise TypeError(f"ImageFolder: transform must be callable or None, got {transform!r}")
        if not isinstance(grayscale, bool):
            raise TypeError(f"ImageFolder: grayscale must be a bool, got {grayscale!r}")
        self.transform = transform
        self.grayscale = grayscale
        self.size = _check_size(size)
        exts = tuple(e.lower() for e in extensions)
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not self.classes:
            raise ValueError(f"ImageFolder: {self.root} has no class sub-folders; expected root/<class name>/<image>")
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = []
        for name in self.classes:
            files = sorted(p for p in (self.root / name).iterdir()
                           if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts)
            if not files:
                raise ValueError(f"ImageFolder: class folder {self.root / name} holds no image "
                                 f"(looked for {', '.join(exts)})")
            self.samples.extend((p, self.class_to_idx[name]) for p in files)
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[index]
        x = load_image(path, self.grayscale, self.size)
        if self.transform is not None:
            x = self.transform(x)
        return x, label

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {len(self.classes)} classes)"
