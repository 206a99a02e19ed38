"""ImageFolder and load_image on PNG and JPEG files the tests write with Pillow."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cnnlab.data.images import ImageFolder, load_image
from cnnlab.data.loader import DataLoader
from cnnlab.data.transforms import Normalize

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (pip install 'cnnlab[data]')")


def _pixels(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    """root/{cat,dog,emu}/ with 2, 3 and 1 PNG grey images of 5 x 7, plus a stray text file."""
    root = tmp_path / "images"
    written = {}
    for k, (name, count) in enumerate((("dog", 3), ("cat", 2), ("emu", 1))):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = _pixels(10 * k + i, (5, 7))
            path = root / name / f"img{i}.png"
            Image.fromarray(pixels).save(path)
            written[path] = pixels
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return root, written


def test_classes_sorted_and_labels(folder):
    root, _ = folder
    ds = ImageFolder(root)
    assert ds.classes == ["cat", "dog", "emu"]
    assert ds.class_to_idx == {"cat": 0, "dog": 1, "emu": 2}
    assert len(ds) == 6
    assert ds.targets.tolist() == [0, 0, 1, 1, 1, 2]
    assert [p.parent.name for p, _ in ds.samples] == ["cat", "cat", "dog", "dog", "dog", "emu"]


def test_png_pixels_are_exact(folder):
    root, written = folder
    ds = ImageFolder(root)
    for k, (path, label) in enumerate(ds.samples):
        x, y = ds[k]
        assert y == label
        assert x.shape == (1, 5, 7) and x.dtype == np.float32
        np.testing.assert_allclose(x[0], written[path].astype(np.float64) / 255, rtol=1e-6)
        assert 0.0 <= x.min() and x.max() <= 1.0


def test_rgb_and_resize(tmp_path):
    root = tmp_path / "rgb"
    (root / "a").mkdir(parents=True)
    rgb = _pixels(0, (6, 4, 3))
    Image.fromarray(rgb).save(root / "a" / "x.png")
    x, _ = ImageFolder(root, grayscale=False)[0]
    assert x.shape == (3, 6, 4)
    np.testing.assert_allclose(np.moveaxis(x, 0, -1), rgb / 255, rtol=1e-6)
    grey, _ = ImageFolder(root, grayscale=True)[0]
    expected = np.asarray(Image.fromarray(rgb).convert("L")) / 255
    np.testing.assert_allclose(grey[0], expected, rtol=1e-6)
    small, _ = ImageFolder(root, size=(3, 2))[0]
    assert small.shape == (1, 3, 2)
    square, _ = ImageFolder(root, size=5)[0]
    assert square.shape == (1, 5, 5)


def test_jpeg_is_read(tmp_path):
    root = tmp_path / "jpg"
    (root / "only").mkdir(parents=True)
    pixels = np.full((8, 8), 200, dtype=np.uint8)
    Image.fromarray(pixels).save(root / "only" / "x.JPEG", quality=95)
    x, y = ImageFolder(root)[0]
    assert y == 0 and x.shape == (1, 8, 8)
    np.testing.assert_allclose(x, 200 / 255, atol=3 / 255)  # JPEG is lossy, a flat image nearly exact


def test_transform_and_dataloader(folder):
    root, _ = folder
    ds = ImageFolder(root, transform=Normalize(0.5, 0.5))
    x, y = next(iter(DataLoader(ds, batch_size=4, shuffle=True, seed=0)))
    assert x.shape == (4, 1, 5, 7) and x.dtype == np.float32
    assert y.dtype == np.int64 and set(y.tolist()) <= {0, 1, 2}
    assert -1.0 <= x.min() and x.max() <= 1.0


def test_mixed_sizes_need_size_to_batch(tmp_path):
    root = tmp_path / "mixed"
    (root / "a").mkdir(parents=True)
    Image.fromarray(_pixels(0, (4, 4))).save(root / "a" / "1.png")
    Image.fromarray(_pixels(1, (6, 5))).save(root / "a" / "2.png")
    with pytest.raises(ValueError, match=r"shapes differ.*ImageFolder\(size=\.\.\.\)"):
        list(DataLoader(ImageFolder(root), batch_size=2))
    x, _ = next(iter(DataLoader(ImageFolder(root, size=4), batch_size=2)))
    assert x.shape == (2, 1, 4, 4)


def test_empty_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty has no class sub-folders"):
        ImageFolder(tmp_path / "empty")


def test_class_without_images(tmp_path):
    root = tmp_path / "r"
    (root / "full").mkdir(parents=True)
    Image.fromarray(_pixels(0, (2, 2))).save(root / "full" / "a.png")
    (root / "void").mkdir()
    (root / "void" / "readme.md").write_text("no images")
    with pytest.raises(ValueError, match=r"class folder .*void holds no image"):
        ImageFolder(root)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolder(tmp_path / "nope")


def test_unreadable_image_names_the_file(tmp_path):
    root = tmp_path / "r"
    (root / "c").mkdir(parents=True)
    (root / "c" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = ImageFolder(root)  # listing does not decode
    with pytest.raises(ValueError, match=r"ImageFolder: cannot read image .*broken\.png"):
        ds[0]
    with pytest.raises(ValueError, match=r"broken\.png"):
        load_image(root / "c" / "broken.png")


@pytest.mark.parametrize(("kwargs", "exc", "pattern"), [
    ({"size": 0}, ValueError, "size must be positive"),
    ({"size": (2, 2, 2)}, TypeError, r"size must be an int, a \(height, width\) pair or None"),
    ({"grayscale": 1}, TypeError, "grayscale must be a bool"),
    ({"transform": "x"}, TypeError, "transform must be callable or None"),
])
def test_argument_errors(folder, kwargs, exc, pattern):
    with pytest.raises(exc, match="ImageFolder: " + pattern):
        ImageFolder(folder[0], **kwargs)


def test_missing_pillow_message(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"needs Pillow.*pip install 'cnnlab\[data\]'"):
        ImageFolder(folder[0])
