"""load_mnist1d: the package's generator with its defaults, the .npz cache, determinism, errors."""

from __future__ import annotations

import importlib.util
import random
import sys

import numpy as np
import pytest

from cnnlab.data import mnist1d as m1d
from cnnlab.data.mnist1d import MNIST1D_DEFAULTS, cache_path, load_mnist1d

HAVE_MNIST1D = importlib.util.find_spec("mnist1d") is not None
needs_mnist1d = pytest.mark.skipif(not HAVE_MNIST1D, reason="mnist1d is not installed (pip install 'cnnlab[data]')")
SMALL = {"num_samples": 200}  # a fast variant for cache and determinism checks (about 0.2 s)


@pytest.fixture(scope="session")
def default_mnist1d(tmp_path_factory):
    """The default data set, generated once per session (about 5 s) into a temporary cache."""
    if not HAVE_MNIST1D:
        pytest.skip("mnist1d is not installed (pip install 'cnnlab[data]')")
    folder = tmp_path_factory.mktemp("mnist1d-cache")
    return folder, load_mnist1d(cache_dir=folder)


@needs_mnist1d
def test_default_shapes_dtypes_and_labels(default_mnist1d):
    _, (x_train, y_train, x_test, y_test) = default_mnist1d
    assert x_train.shape == (4000, 40) and x_test.shape == (1000, 40)
    assert y_train.shape == (4000,) and y_test.shape == (1000,)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    assert np.isfinite(x_train).all() and np.isfinite(x_test).all()
    for y in (y_train, y_test):
        assert set(np.unique(y).tolist()) == set(range(10))
    # 500 signals per digit in all, split 4000 / 1000
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10) + np.bincount(y_test, minlength=10),
                                  np.full(10, 500))
    # the generator standardises the whole set (train and test together)
    both = np.concatenate([x_train, x_test]).astype(np.float64)
    assert abs(both.mean()) < 1e-4 and abs(both.std() - 1) < 1e-4


@needs_mnist1d
def test_second_load_reads_the_cache(default_mnist1d, monkeypatch):
    folder, first = default_mnist1d
    assert cache_path(folder).is_file()

    def no_generation(*args, **kwargs):
        raise AssertionError("the generator ran although the cache exists")

    monkeypatch.setattr(m1d, "generate_mnist1d", no_generation)
    again = load_mnist1d(cache_dir=folder)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


@needs_mnist1d
def test_cache_file_records_arguments_and_version(default_mnist1d):
    folder, _ = default_mnist1d
    with np.load(cache_path(folder)) as f:
        assert '"seed": 42' in str(f["args"])
        assert str(f["mnist1d_version"]) == importlib.metadata.version("mnist1d")


@needs_mnist1d
def test_defaults_are_the_package_defaults():
    from mnist1d.data import get_dataset_args

    package = get_dataset_args(as_dict=True)
    package.pop("url")
    assert MNIST1D_DEFAULTS == package


@needs_mnist1d
def test_same_as_calling_the_package_generator_directly():
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args(as_dict=False)
    args.num_samples = 200
    ref = make_dataset(args)
    data = m1d.generate_mnist1d(SMALL)
    np.testing.assert_array_equal(data["x_train"], ref["x"].astype(np.float32))
    np.testing.assert_array_equal(data["x_test"], ref["x_test"].astype(np.float32))
    np.testing.assert_array_equal(data["y_train"], ref["y"])
    np.testing.assert_array_equal(data["y_test"], ref["y_test"])
    assert data["x_train"].shape == (160, 40) and data["x_test"].shape == (40, 40)


@needs_mnist1d
def test_deterministic_across_fresh_generations(tmp_path):
    a = load_mnist1d(cache_dir=tmp_path / "a", args=SMALL)
    b = load_mnist1d(cache_dir=tmp_path / "b", args=SMALL)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    other = load_mnist1d(cache_dir=tmp_path / "a", args=SMALL | {"seed": 7})
    assert not np.array_equal(a[0], other[0])
    assert len(list((tmp_path / "a").glob("mnist1d-*.npz"))) == 2  # one cache file per argument set


@needs_mnist1d
def test_default_cache_dir_is_under_cnnlab_data(isolated_data_dirs):
    data, _ = isolated_data_dirs
    load_mnist1d(args=SMALL)
    assert [p.name for p in (data / "mnist1d").iterdir()] == [cache_path(None, SMALL).name]


@needs_mnist1d
def test_regenerate_runs_the_generator_again(tmp_path, monkeypatch):
    load_mnist1d(cache_dir=tmp_path, args=SMALL)
    calls = []
    real = m1d.generate_mnist1d
    monkeypatch.setattr(m1d, "generate_mnist1d", lambda args: calls.append(args) or real(args))
    load_mnist1d(cache_dir=tmp_path, args=SMALL)
    assert calls == []
    load_mnist1d(cache_dir=tmp_path, args=SMALL, regenerate=True)
    assert len(calls) == 1 and calls[0]["num_samples"] == 200


@needs_mnist1d
def test_global_random_state_is_left_alone(tmp_path):
    np.random.seed(1234)
    random.seed(99)
    np_state, py_state = np.random.get_state(), random.getstate()
    load_mnist1d(cache_dir=tmp_path, args=SMALL, regenerate=True)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert random.getstate() == py_state


@needs_mnist1d
def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path):
    good = load_mnist1d(cache_dir=tmp_path, args=SMALL)
    cache_path(tmp_path, SMALL).write_bytes(b"PK\x03\x04 broken zip")
    with pytest.warns(RuntimeWarning, match="is unreadable"):
        again = load_mnist1d(cache_dir=tmp_path, args=SMALL)
    np.testing.assert_array_equal(good[0], again[0])
    assert np.load(cache_path(tmp_path, SMALL))["x_train"].shape == (160, 40)


@needs_mnist1d
def test_cache_loads_without_the_package(tmp_path, monkeypatch):
    ref = load_mnist1d(cache_dir=tmp_path, args=SMALL)
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    again = load_mnist1d(cache_dir=tmp_path, args=SMALL)
    np.testing.assert_array_equal(ref[2], again[2])


def test_missing_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    with pytest.raises(ImportError, match=r"needs the 'mnist1d' package.*pip install 'cnnlab\[data\]'"):
        load_mnist1d(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown generator arguments \['samples'\]"):
        load_mnist1d(cache_dir=tmp_path, args={"samples": 10})
    with pytest.raises(TypeError, match="args must be a mapping or None, got list"):
        load_mnist1d(cache_dir=tmp_path, args=[("seed", 1)])
    with pytest.raises(ValueError, match="generator arguments must be JSON values"):
        load_mnist1d(cache_dir=tmp_path, args={"seed": object()})


def test_cache_name_depends_only_on_the_arguments(tmp_path):
    assert cache_path(tmp_path) == cache_path(tmp_path, {"seed": 42, "num_samples": 5000})
    assert cache_path(tmp_path) != cache_path(tmp_path, {"shuffle_seq": True})
    assert cache_path(tmp_path).parent == tmp_path
