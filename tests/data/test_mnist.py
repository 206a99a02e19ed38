"""load_mnist: finding copies, downloading from a local mirror, offline messages, validation."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import cache, mnist
from cnnlab.data.download import ChecksumError
from cnnlab.data.idx import write_idx
from cnnlab.data.mnist import DatasetNotFoundError, class_names, load_mnist, split_filenames

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _split_arrays(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def _write_copy(folder, n=12, seed=0, split="train", compress=True):
    """A small MNIST-like copy of one split in ``folder``; returns the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = _split_arrays(n, seed)
    img_name, lab_name = split_filenames(split)
    if not compress:
        img_name, lab_name = img_name.removesuffix(".gz"), lab_name.removesuffix(".gz")
    write_idx(folder / img_name, images)
    write_idx(folder / lab_name, labels)
    return images, labels


def _check(result, images, labels):
    got_images, got_labels = result
    assert got_images.dtype == np.uint8 and got_images.shape == images.shape
    assert got_labels.dtype == np.int64 and got_labels.shape == labels.shape
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


# ----------------------------------------------------------------------------------------------
# Finding an existing copy


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_finds_copy_in_cnnlab_data(isolated_data_dirs, compress):
    data, _ = isolated_data_dirs
    images, labels = _write_copy(data / "kmnist", compress=compress)
    _check(load_mnist("kmnist", "train", download=False), images, labels)


def test_test_split_uses_t10k_files(isolated_data_dirs):
    data, _ = isolated_data_dirs
    _write_copy(data / "mnist", n=5, seed=1, split="train")
    images, labels = _write_copy(data / "mnist", n=7, seed=2, split="test")
    _check(load_mnist("mnist", "test", download=False), images, labels)


def test_cnnlab_data_comes_before_user_cache(isolated_data_dirs):
    data, user_cache = isolated_data_dirs
    images, labels = _write_copy(data / "mnist", seed=1)
    _write_copy(user_cache / "mnist", seed=2)
    _check(load_mnist("mnist", download=False), images, labels)


def test_user_cache_used_without_cnnlab_data(isolated_data_dirs, monkeypatch):
    _, user_cache = isolated_data_dirs
    monkeypatch.delenv("CNNLAB_DATA")
    images, labels = _write_copy(user_cache / "mnist", seed=3)
    _check(load_mnist("mnist", download=False), images, labels)


def test_system_copy_found_last(isolated_data_dirs, tmp_path, monkeypatch):
    system = tmp_path / "usr-share" / "fashion-mnist"
    monkeypatch.setitem(cache.SYSTEM_DIRS, "fashion-mnist", (system,))
    images, labels = _write_copy(system, seed=4)
    _check(load_mnist("fashion-mnist", download=False), images, labels)
    data, _ = isolated_data_dirs
    images2, labels2 = _write_copy(data / "fashion-mnist", seed=5)
    _check(load_mnist("fashion-mnist", download=False), images2, labels2)


def test_incomplete_folder_is_skipped(isolated_data_dirs):
    data, user_cache = isolated_data_dirs
    (data / "mnist").mkdir(parents=True)
    write_idx(data / "mnist" / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    images, labels = _write_copy(user_cache / "mnist", seed=6)
    _check(load_mnist("mnist", download=False), images, labels)


def test_root_argument_is_the_only_place_searched(isolated_data_dirs, tmp_path):
    data, _ = isolated_data_dirs
    _write_copy(data / "mnist", seed=1)
    images, labels = _write_copy(tmp_path / "mine", seed=7)
    _check(load_mnist("mnist", root=tmp_path / "mine", download=False), images, labels)
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "elsewhere")):
        load_mnist("mnist", root=tmp_path / "elsewhere", download=False)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_copy():
    images, labels = load_mnist("fashion-mnist", "test", download=False)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    # the Fashion-MNIST test set has exactly 1,000 images of each class
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), np.full(10, 1000))


# ----------------------------------------------------------------------------------------------
# Downloading from a local mirror


@pytest.fixture
def served_mnist(file_server, monkeypatch):
    """Serve a tiny MNIST on the local server and make its checksums the published ones."""
    arrays = {}
    files = {}
    (file_server.root / "mnist").mkdir()
    for split, seed in (("train", 10), ("test", 11)):
        arrays[split] = _split_arrays(9 if split == "train" else 4, seed)
        for name, array in zip(split_filenames(split), arrays[split], strict=True):
            path = write_idx(file_server.root / "mnist" / name, array)
            data = path.read_bytes()
            files[name] = mnist.Resource(name, len(data), hashlib.sha256(data).hexdigest(), "")
    info = dataclasses.replace(mnist.DATASETS["mnist"], files=files)
    monkeypatch.setitem(mnist.DATASETS, "mnist", info)
    return arrays


def test_download_into_cnnlab_data(isolated_data_dirs, file_server, served_mnist, capsys):
    data, _ = isolated_data_dirs
    result = load_mnist("mnist", "train", mirror=file_server.url + "{kind}")
    _check(result, *served_mnist["train"])
    assert sorted(p.name for p in (data / "mnist").iterdir()) == sorted(split_filenames("train"))
    assert "downloading" in capsys.readouterr().err
    # a second call uses the copy and does not ask the server again
    count = len(file_server.requests)
    _check(load_mnist("mnist", "train", mirror=file_server.url + "{kind}"), *served_mnist["train"])
    assert len(file_server.requests) == count


def test_download_via_environment_mirror(isolated_data_dirs, file_server, served_mnist, monkeypatch):
    monkeypatch.setenv("CNNLAB_MIRROR", file_server.url + "mnist")  # no trailing slash
    _check(load_mnist("mnist", "test", verbose=False), *served_mnist["test"])
    assert file_server.requests == ["/mnist/t10k-images-idx3-ubyte.gz", "/mnist/t10k-labels-idx1-ubyte.gz"]


def test_download_into_user_cache_without_cnnlab_data(isolated_data_dirs, file_server, served_mnist,
                                                       monkeypatch):
    _, user_cache = isolated_data_dirs
    monkeypatch.delenv("CNNLAB_DATA")
    load_mnist("mnist", "test", mirror=file_server.url + "mnist/", verbose=False)
    assert sorted(p.name for p in (user_cache / "mnist").iterdir()) == sorted(split_filenames("test"))


def test_download_only_the_missing_file(isolated_data_dirs, file_server, served_mnist):
    data, _ = isolated_data_dirs
    images, labels = served_mnist["train"]
    (data / "mnist").mkdir(parents=True)
    write_idx(data / "mnist" / "train-images-idx3-ubyte", images)
    _check(load_mnist("mnist", mirror=file_server.url + "mnist/", verbose=False), images, labels)
    assert file_server.requests == ["/mnist/train-labels-idx1-ubyte.gz"]


def test_falls_back_to_the_next_mirror(isolated_data_dirs, file_server, served_mnist, closed_port_url, monkeypatch):
    info = dataclasses.replace(mnist.DATASETS["mnist"], mirrors=(closed_port_url, file_server.url + "nowhere/",
                                                                 file_server.url + "mnist/"))
    monkeypatch.setitem(mnist.DATASETS, "mnist", info)
    _check(load_mnist("mnist", "test", verbose=False), *served_mnist["test"])
    assert file_server.requests == ["/nowhere/t10k-images-idx3-ubyte.gz", "/mnist/t10k-images-idx3-ubyte.gz",
                                    "/nowhere/t10k-labels-idx1-ubyte.gz", "/mnist/t10k-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_against_published_sums(isolated_data_dirs, file_server):
    data, _ = isolated_data_dirs
    images, labels = _split_arrays(5, 0)
    write_idx(file_server.root / "train-images-idx3-ubyte.gz", images)
    write_idx(file_server.root / "train-labels-idx1-ubyte.gz", labels)
    # the real KMNIST sizes and SHA-256 sums: our tiny files cannot match them
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte.gz"):
        load_mnist("kmnist", mirror=file_server.url, verbose=False)
    folder = data / "kmnist"
    assert not (folder / "train-images-idx3-ubyte.gz").exists()
    assert list(folder.iterdir()) == []


def test_server_404_becomes_not_found_message(isolated_data_dirs, file_server):
    with pytest.raises(DatasetNotFoundError, match=r"(?s)could not be downloaded.*answered HTTP 404"):
        load_mnist("kmnist", mirror=file_server.url, verbose=False)


# ----------------------------------------------------------------------------------------------
# Offline: the message says where to put which files


def test_offline_message(isolated_data_dirs, closed_port_url):
    data, user_cache = isolated_data_dirs
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist("mnist", "test", mirror=closed_port_url, verbose=False)
    msg = str(info.value)
    assert "cannot reach" in msg
    assert f"put these four files (gzipped or not) in {data / 'mnist'}/" in msg
    for name in NAMES:
        assert name in msg
    for folder in (data / "mnist", user_cache / "mnist"):
        assert str(folder) in msg
    assert "CNNLAB_MIRROR" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_offline_message_for_fashion_names_debian_package(isolated_data_dirs, closed_port_url, monkeypatch,
                                                          tmp_path):
    monkeypatch.setitem(cache.SYSTEM_DIRS, "fashion-mnist", (tmp_path / "not-installed",))
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_mnist("fashion-mnist", download=False)
    assert str(tmp_path / "not-installed") in str(info.value)
    assert "download=False" in str(info.value)


# ----------------------------------------------------------------------------------------------
# Validation of what was found


def _custom_copy(folder, images, labels):
    folder.mkdir(parents=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.mark.parametrize(
    ("images", "labels", "pattern"),
    [
        (np.zeros((4, 28, 28), np.uint8), np.zeros(5, np.uint8), r"holds 4 images but .* holds 5 labels"),
        (np.zeros((3, 28, 28), np.uint8), np.array([0, 10, 2], np.uint8), r"labels must be 0\.\.9, found 10"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.int32), r"expected type 0x08 \(ubyte\), got 0x0C \(int\)"),
        (np.zeros((3, 28, 28), np.float32), np.zeros(3, np.uint8), r"got 0x0D \(float\)"),
        (np.zeros((3, 32, 32), np.uint8), np.zeros(3, np.uint8), r"expected 28 x 28 images, got shape \(3, 32, 32\)"),
        (np.zeros((3, 784), np.uint8), np.zeros(3, np.uint8), r"expected 3 dimensions, got shape \(3, 784\)"),
    ],
)
def test_inconsistent_copy(tmp_path, images, labels, pattern):
    root = _custom_copy(tmp_path / "bad", images, labels)
    with pytest.raises(ValueError, match=pattern):
        load_mnist(root=root, download=False)


def test_corrupt_copy_names_the_file(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"\x00\x00\x08\x03" + bytes(8))
    write_idx(root / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: header promises 3 dimensions"):
        load_mnist(root=root, download=False)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"kind": "emnist"}, ValueError,
         r"load_mnist: kind must be one of \['mnist', 'fashion-mnist', 'kmnist'\], got 'emnist'"),
        ({"split": "val"}, ValueError, r"load_mnist: split must be one of \['train', 'test'\], got 'val'"),
        ({"kind": 3}, TypeError,
         r"load_mnist: kind must be one of \['mnist', 'fashion-mnist', 'kmnist'\], got 3"),
        ({"mirror": 3}, TypeError, r"load_mnist: mirror must be a URL string or None, got int"),
    ],
)
def test_argument_errors(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        load_mnist(download=False, **kwargs)


def test_tables():
    assert class_names("fashion-mnist")[9] == "Ankle boot"
    assert len(class_names("kmnist")) == 10
    for info in mnist.DATASETS.values():
        assert tuple(info.files) == NAMES
        for res in info.files.values():
            assert len(res.sha256) == 64 and len(res.md5) == 32 and res.size > 0
        assert all(m.startswith(("http://", "https://")) and m.endswith("/") for m in info.mirrors)
