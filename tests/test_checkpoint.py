"""Checkpoints: safetensors round trips, PyTorch interop, atomic writes, corrupted files."""

import json
import os
import pathlib
import pickle
import re
import struct
import sys

import numpy as np
import pytest

import cnnlab
from cnnlab import checkpoint, nn
from cnnlab.checkpoint import CheckpointError

try:
    import torch
    from safetensors.torch import load_file as torch_load_file
    from safetensors.torch import save_file as torch_save_file
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

# The tensors of nn.Sequential(Conv2d(1, 2, 3), ReLU(), Flatten(), Linear(2 * 4 * 4, 3)).
SEQUENTIAL_SHAPES = {"0.weight": (2, 1, 3, 3), "0.bias": (2,), "3.weight": (3, 32), "3.bias": (3,)}


def sequential_state(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SEQUENTIAL_SHAPES.items()}


class FakeModule:
    """The duck-typed module contract: state_dict / load_state_dict / to_config."""

    def __init__(self, state, config=None):
        self.state = dict(state)
        self.config = config

    def state_dict(self):
        return {k: v.copy() for k, v in self.state.items()}

    def load_state_dict(self, state):
        self.state = dict(state)

    def to_config(self):
        return self.config


class PlainModule(FakeModule):
    """A module that cannot describe its architecture."""

    to_config = None


CONFIG = {"type": "Sequential", "layers": [{"type": "Conv2d", "in_channels": 1}]}


@pytest.fixture
def fake_builder(monkeypatch):
    """Stand in for cnnlab.nn.from_config: rebuild a FakeModule of zeros from the config."""
    built = []

    def build(config):
        if config.get("type") != "Sequential":
            raise ValueError(f"unknown module type {config.get('type')!r}")
        shapes = config.get("shapes", SEQUENTIAL_SHAPES)
        model = FakeModule({k: np.zeros(s, np.float32) for k, s in shapes.items()}, config)
        built.append(model)
        return model

    monkeypatch.setattr(checkpoint, "_build_from_config", build)
    return built


# -- round trips ----------------------------------------------------------------------------------

DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64,
          np.int64, np.float16, np.float32, np.float64]  # fmt: skip


def test_dict_round_trip_keeps_values_dtypes_and_shapes(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {f"t_{np.dtype(d).name}": (rng.standard_normal((3, 4)) * 50).astype(d) for d in DTYPES}
    tensors["scalar"] = np.array(3.5)
    tensors["empty"] = np.zeros((0, 3), np.float32)
    tensors["transposed"] = np.arange(12.0).reshape(3, 4).T  # not C-contiguous
    tensors["strided"] = np.arange(20, dtype=np.int32)[::3]
    tensors["big_endian"] = np.arange(6, dtype=">f8").reshape(2, 3)
    path = tmp_path / "all.safetensors"
    checkpoint.save(tensors, path)
    loaded = checkpoint.load(path)
    assert sorted(loaded) == sorted(tensors)
    for key, value in tensors.items():
        assert loaded[key].shape == value.shape
        assert loaded[key].dtype == value.dtype.newbyteorder("=")
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].flags.writeable and loaded[key].flags.c_contiguous


def test_module_round_trip_records_config_and_metadata(tmp_path):
    model = FakeModule(sequential_state(), CONFIG)
    path = str(tmp_path / "m.safetensors")
    checkpoint.save(model, path, metadata={"epoch": 3, "accuracy": 0.98, "note": "ok"})
    for key, value in checkpoint.load(path).items():
        np.testing.assert_array_equal(value, model.state[key])
    document = checkpoint.load_metadata(path)
    assert document["format_version"] == checkpoint.FORMAT_VERSION
    assert document["cnnlab_version"] == cnnlab.__version__
    assert document["config"] == CONFIG
    assert document["metadata"] == {"epoch": 3, "accuracy": 0.98, "note": "ok"}


def test_tensor_like_values_are_saved_through_their_data(tmp_path):
    class TensorLike:
        def __init__(self, data):
            self.data = data

    path = tmp_path / "t.safetensors"
    checkpoint.save({"w": TensorLike(np.ones((2, 2)))}, path)
    np.testing.assert_array_equal(checkpoint.load(path)["w"], np.ones((2, 2)))


def test_saving_again_replaces_the_file(tmp_path):
    path = tmp_path / "m.safetensors"
    checkpoint.save({"a": np.zeros(3)}, path)
    checkpoint.save({"b": np.ones(2)}, path)
    assert list(checkpoint.load(path)) == ["b"]
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_load_model_rebuilds_the_architecture(tmp_path, fake_builder):
    model = FakeModule(sequential_state(), CONFIG)
    path = tmp_path / "m.safetensors"
    checkpoint.save(model, path)
    rebuilt = checkpoint.load_model(path)
    assert rebuilt is fake_builder[-1] and rebuilt.config == CONFIG
    for key, value in model.state.items():
        np.testing.assert_array_equal(rebuilt.state[key], value)


def test_load_weights_casts_to_the_models_dtypes(tmp_path):
    path = tmp_path / "w.safetensors"
    checkpoint.save(sequential_state(dtype=np.float64), path)
    model = FakeModule(sequential_state(seed=1, dtype=np.float32))
    assert checkpoint.load_weights(model, path) is model
    for key, value in sequential_state(dtype=np.float64).items():
        assert model.state[key].dtype == np.float32
        np.testing.assert_allclose(model.state[key], value, rtol=1e-7)


# -- atomic writes ------------------------------------------------------------------------------


def _half_write_then_fail(fd, data):
    os.write(fd, data[: len(data) // 2])
    raise OSError("disk full (simulated)")


def _fail(*args):
    raise OSError("simulated failure")


@pytest.mark.parametrize("target, replacement", [("_write_all", _half_write_then_fail),
                                                 ("os.fsync", _fail),
                                                 ("os.replace", _fail)])  # fmt: skip
def test_failed_save_leaves_old_checkpoint_intact_and_no_temp_file(tmp_path, monkeypatch, target,
                                                                   replacement):  # fmt: skip
    path = tmp_path / "model.safetensors"
    checkpoint.save({"w": np.arange(1000.0)}, path)
    good = path.read_bytes()
    if target.startswith("os."):
        monkeypatch.setattr(checkpoint.os, target[3:], replacement)
    else:
        monkeypatch.setattr(checkpoint, target, replacement)
    with pytest.raises(OSError, match="simulated"):
        checkpoint.save({"w": np.zeros(5000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.safetensors"]
    np.testing.assert_array_equal(checkpoint.load(path)["w"], np.arange(1000.0))


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "_write_all", _half_write_then_fail)
    with pytest.raises(OSError):
        checkpoint.save({"w": np.zeros(100)}, tmp_path / "new.safetensors")
    assert os.listdir(tmp_path) == []


# -- PyTorch interop ------------------------------------------------------------------------------


def torch_sequential():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(32, 3)
    )


@needs_torch
def test_cnnlab_checkpoint_loads_into_the_equivalent_torch_model(tmp_path):
    model = FakeModule(sequential_state(seed=5), CONFIG)
    path = tmp_path / "cnnlab.safetensors"
    checkpoint.save(model, path)
    net = torch_sequential()
    net.load_state_dict(torch_load_file(str(path)), strict=True)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), model.state[key])


@needs_torch
def test_torch_checkpoint_loads_into_cnnlab(tmp_path):
    net = torch_sequential()
    path = tmp_path / "torch.safetensors"
    torch_save_file(net.state_dict(), str(path))
    loaded = checkpoint.load(path)
    assert sorted(loaded) == sorted(net.state_dict())
    for key, value in net.state_dict().items():
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], value.numpy())
    assert checkpoint.load_metadata(path) is None
    model = checkpoint.load_weights(FakeModule(sequential_state(seed=9)), path)
    np.testing.assert_array_equal(model.state["3.bias"], net[3].bias.detach().numpy())


# -- errors ---------------------------------------------------------------------------------------


def _valid_bytes(tmp_path):
    path = tmp_path / "valid.safetensors"
    checkpoint.save({"a": np.arange(4, dtype=np.float32), "b": np.ones((2, 2))}, path)
    return path.read_bytes()


def _with_header(header, data=b""):
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(raw)) + raw + data


F32_4 = np.arange(4, dtype=np.float32).tobytes()
ENTRY = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
CNNLAB = {"format_version": 1}


class ExecutesOnUnpickle:
    """Unpickling this creates a marker file: proof that a loader ran code from the file."""

    marker = None

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


CORRUPTED = [
    ("empty", lambda v: b"", "is empty"),
    ("five bytes", lambda v: b"\x01\x02\x03\x04\x05", "fewer than the 8-byte header length"),
    ("cut in header", lambda v: v[:20], "truncated or corrupted: its header claims"),
    ("cut in data", lambda v: v[:-10],
     "is truncated: tensor 'a' ends at byte 48 of the data section, which has only 38 bytes"),
    ("huge header length", lambda v: struct.pack("<Q", 2**40) + v[8:], "header claims 1099511627776"),
    ("header not JSON", lambda v: _with_header(b"{not json at all}", F32_4), "header is not valid JSON"),
    ("header not UTF-8", lambda v: _with_header(b"\xff\xfe{}", F32_4), "header is not valid JSON"),
    ("header is a list", lambda v: _with_header([1, 2]), "expected a JSON object, got list"),
    ("entry lacks offsets", lambda v: _with_header({"a": {"dtype": "F32", "shape": [4]}}, F32_4),
     "corrupted header entry for tensor 'a': expected dtype, shape and data_offsets"),
    ("unknown dtype", lambda v: _with_header({"a": {**ENTRY, "dtype": "F8_E4M3"}}, F32_4),
     "unsupported dtype 'F8_E4M3'"),
    ("negative shape", lambda v: _with_header({"a": {**ENTRY, "shape": [-4]}}, F32_4),
     "shape must be a list of non-negative ints"),
    ("size mismatch", lambda v: _with_header({"a": {**ENTRY, "shape": [3]}}, F32_4),
     r"needs 12 bytes but data_offsets \[0, 16\] span 16"),
    ("offsets past the end", lambda v: _with_header({"a": {**ENTRY, "data_offsets": [8, 24]}}, F32_4),
     "is truncated: tensor 'a' ends at byte 24 of the data section, which has only 16 bytes"),
    ("overlapping tensors", lambda v: _with_header({"a": ENTRY, "b": ENTRY}, F32_4),
     "is corrupted: .*invalid offset"),
    ("trailing garbage", lambda v: v + b"\x00" * 7, "is corrupted: .*not fully covered"),
    ("metadata not strings", lambda v: _with_header({"__metadata__": {"x": 1}, "a": ENTRY}, F32_4),
     "__metadata__ must map str to str"),
    ("cnnlab metadata not JSON",
     lambda v: _with_header({"__metadata__": {"cnnlab": "{oops"}, "a": ENTRY}, F32_4),
     "corrupted cnnlab metadata: not valid JSON"),
    ("future format",
     lambda v: _with_header({"__metadata__": {"cnnlab": json.dumps({"format_version": 99})},
                             "a": ENTRY}, F32_4),
     "cnnlab checkpoint format 99, newer than the format 1"),
    ("pickle", lambda v: pickle.dumps({"w": [1.0, 2.0]}, protocol=4), "looks like a Python pickle"),
    ("torch zip", lambda v: b"PK\x03\x04" + b"\x00" * 60, "looks like a zip archive"),
    ("text", lambda v: b"this is a plain text file, not weights\n", "looks like a text file"),
    ("npy", lambda v: b"\x93NUMPY\x01\x00" + b"v" * 40, "looks like a NumPy .npy file"),
]  # fmt: skip


@pytest.mark.parametrize("name, make, pattern", CORRUPTED, ids=[c[0] for c in CORRUPTED])
def test_corrupted_files_raise_a_clear_error_naming_the_file(tmp_path, name, make, pattern):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(make(_valid_bytes(tmp_path)))
    for reader in (checkpoint.load, checkpoint.load_metadata, checkpoint.load_model):
        with pytest.raises(CheckpointError, match=pattern) as info:
            reader(path)
        assert str(path) in str(info.value)


def test_a_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "code-was-executed"
    ExecutesOnUnpickle.marker = str(marker)
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(ExecutesOnUnpickle(), protocol=2))
    with pytest.raises(CheckpointError, match="never unpickles"):
        checkpoint.load(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the file really does run code when unpickled
    assert marker.exists()


@needs_torch
def test_a_torch_save_file_is_rejected(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch_sequential().state_dict(), path)
    with pytest.raises(CheckpointError, match="zip archive .*never unpickles"):
        checkpoint.load(path)


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match=re.escape(f"checkpoint file '{missing}' does not exist")):
        checkpoint.load(missing)
    with pytest.raises(CheckpointError, match="is a directory"):
        checkpoint.load(tmp_path)


def _save(tmp_path, obj):
    path = tmp_path / "m.safetensors"
    checkpoint.save(obj, path)
    return path


@needs_torch
def test_load_model_of_a_torch_file_needs_cnnlab_metadata(tmp_path, fake_builder):
    path = tmp_path / "torch.safetensors"
    torch_save_file(torch_sequential().state_dict(), str(path))
    with pytest.raises(CheckpointError, match="has no cnnlab metadata, so the model cannot be"):
        checkpoint.load_model(path)


LOAD_MODEL_ERRORS = [
    ("plain dict", lambda: sequential_state(), "records no architecture"),
    ("module without config", lambda: PlainModule(sequential_state()), "records no architecture"),
    ("unknown architecture", lambda: FakeModule(sequential_state(), {"type": "Transformer"}),
     "cannot rebuild the recorded architecture: unknown module type 'Transformer'"),
    ("missing and unexpected keys",
     lambda: FakeModule({**{k: v for k, v in sequential_state().items() if k != "0.bias"},
                         "extra.weight": np.zeros(2, np.float32)}, CONFIG),
     r"does not fit FakeModule: missing keys \['0.bias'\]; unexpected keys \['extra.weight'\]"),
    ("wrong shape",
     lambda: FakeModule({**sequential_state(), "3.weight": np.zeros((32, 3), np.float32)}, CONFIG),
     r"'3.weight' has shape \(32, 3\) in the file but \(3, 32\) in the model"),
]  # fmt: skip


@pytest.mark.parametrize("name, make, pattern", LOAD_MODEL_ERRORS, ids=[c[0] for c in LOAD_MODEL_ERRORS])
def test_load_model_errors(tmp_path, fake_builder, name, make, pattern):
    path = _save(tmp_path, make())
    with pytest.raises(CheckpointError, match=pattern) as info:
        checkpoint.load_model(path)
    assert str(path) in str(info.value)


def test_load_weights_reports_every_mismatch(tmp_path):
    path = _save(tmp_path, {"a": np.zeros(2), "b": np.zeros((2, 3))})
    model = FakeModule({"b": np.zeros((3, 2)), "c": np.zeros(1)})
    with pytest.raises(CheckpointError, match=r"missing keys \['c'\]; unexpected keys \['a'\]; "
                                              r"'b' has shape \(2, 3\) in the file but \(3, 2\)"):  # fmt: skip
        checkpoint.load_weights(model, path)
    assert model.state["b"].shape == (3, 2)  # nothing was loaded


SAVE_ERRORS = [
    (lambda: [np.zeros(2)], None, TypeError, "obj must be a module .* got list"),
    (lambda: {1: np.zeros(2)}, None, TypeError, "tensor names must be str, got 1"),
    (lambda: {"w": [1.0, 2.0]}, None, TypeError, "tensor 'w' must be a NumPy array .* got list"),
    (lambda: {"w": np.zeros(2, complex)}, None, TypeError, "tensor 'w' has dtype complex128"),
    (lambda: {"w": np.array(["a"])}, None, TypeError, "safetensors cannot store"),
    (lambda: {"w": np.zeros(2)}, "epoch 3", TypeError, "metadata must be a dict, got str"),
    (lambda: {"w": np.zeros(2)}, {"obj": object()}, TypeError, "must be JSON-serialisable"),
    (lambda: {"w": np.zeros(2)}, {"x": float("nan")}, TypeError, "must be JSON-serialisable"),
    (lambda: FakeModule({"w": np.zeros(2)}, {"f": print}), None, TypeError, "JSON-serialisable"),
]  # fmt: skip


@pytest.mark.parametrize("make, metadata, exc, pattern", SAVE_ERRORS)
def test_save_errors_write_nothing(tmp_path, make, metadata, exc, pattern):
    with pytest.raises(exc, match=pattern):
        checkpoint.save(make(), tmp_path / "x.safetensors", metadata=metadata)
    assert os.listdir(tmp_path) == []


def test_missing_safetensors_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"pip install cnnlab\[io\]"):
        checkpoint.save({"w": np.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(ImportError, match=r"pip install cnnlab\[io\]"):
        checkpoint.load(tmp_path / "x.safetensors")


# -- with the real cnnlab.nn (skipped until it exists) -------------------------------------------


def _nn_sequential(nn):
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))


def test_nn_module_round_trip_through_load_model(tmp_path):
    model = _nn_sequential(nn)
    path = _save(tmp_path, model)
    rebuilt = checkpoint.load_model(path)
    assert type(rebuilt) is type(model) and repr(rebuilt) == repr(model)
    original, restored = model.state_dict(), rebuilt.state_dict()
    assert list(restored) == list(original)
    for key, value in original.items():
        np.testing.assert_array_equal(np.asarray(restored[key]), np.asarray(value))


@needs_torch
def test_nn_module_checkpoint_loads_into_torch_and_back(tmp_path):
    model = _nn_sequential(nn)
    path = _save(tmp_path, model)
    net = torch_sequential()
    net.load_state_dict(torch_load_file(str(path)), strict=True)
    torch_path = tmp_path / "torch.safetensors"
    torch_save_file(net.state_dict(), str(torch_path))
    fresh = checkpoint.load_weights(_nn_sequential(nn), torch_path)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(np.asarray(fresh.state_dict()[key]), np.asarray(value))


@pytest.mark.parametrize("names", [[str(i) for i in range(12)], ["conv", "relu", "pool", "flat", "fc"]])
def test_load_model_rebuilds_layers_in_the_order_they_run(tmp_path, names):
    """Layer names that sort differently from their order ('10' < '2', 'conv' > 'flat') keep their order."""
    from collections import OrderedDict

    layers = [nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 4)]
    if len(names) > len(layers):
        layers = [nn.Conv2d(1, 1, 1) for _ in range(len(names) - 2)] + [nn.Flatten(), nn.Linear(64, 3)]
    model = nn.Sequential(OrderedDict(zip(names, layers, strict=True)))
    path = tmp_path / "model.safetensors"
    cnnlab.save(model, path)
    rebuilt = cnnlab.load_model(path)
    assert [name for name, _ in rebuilt.named_children()] == names
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt(cnnlab.Tensor(x)).numpy(), model(cnnlab.Tensor(x)).numpy())
