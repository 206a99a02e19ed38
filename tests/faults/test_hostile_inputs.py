"""Damaged and hostile checkpoints, data files, images and specs: one line, exit 2, bounded memory."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from faultkit import SPEC, assert_one_line, snapshot, train_args

import cnnlab
from cnnlab.checkpoint import CheckpointError
from cnnlab.cli import main

pytest.importorskip("safetensors")


_TRAINED: dict[str, bytes] = {}


@pytest.fixture
def ckpt(env, capsys):
    """A fresh copy of one tiny trained best.safetensors (trained once per session)."""
    path = env / "run" / "best.safetensors"
    if "best" not in _TRAINED:
        assert main([str(a) for a in train_args(env / "run", 1)]) == 0
        capsys.readouterr()
        _TRAINED["best"] = path.read_bytes()
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(_TRAINED["best"])
    return path


def rewrite_document(path, change):
    """Rewrite the cnnlab document of a checkpoint in place with ``change(document)``."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    document = json.loads(header["__metadata__"]["cnnlab"])
    new = change(document)
    if new is None:  # changed in place
        new = document
    header["__metadata__"]["cnnlab"] = new if isinstance(new, str) else json.dumps(new)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def predict(capsys, path, *files):
    code = main(["predict", str(path), *map(str, files)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bit_flip_in_the_weights_is_detected(ckpt, capsys, env):
    data = bytearray(ckpt.read_bytes())
    data[-5] ^= 0x01
    ckpt.write_bytes(bytes(data))
    np.save(env / "x.npy", np.zeros((1, 28, 28), dtype=np.float32))
    code, _, err = predict(capsys, ckpt, env / "x.npy")
    assert_one_line(code, err, "SHA-256", command="cnnlab predict")
    assert main(["predict", str(ckpt), str(env / "x.npy"), "--no-verify"]) == 0


BAD_METADATA = [
    ("input_shape a string", lambda d: d["metadata"].update(input_shape="x"), "input_shape"),
    ("input_shape huge", lambda d: d["metadata"].update(input_shape=[1, 10**9, 10**9]), "input_shape"),
    ("classes a number", lambda d: d["metadata"].update(classes=5), "classes"),
    ("classes empty", lambda d: d["metadata"].update(classes=[]), "classes"),
    ("std negative", lambda d: d["metadata"]["preprocess"].update(std=-1.0), "std"),
    ("mean a dict", lambda d: d["metadata"]["preprocess"].update(mean={"a": 1}), "mean"),
    ("pixels a string", lambda d: d["metadata"]["preprocess"].update(pixels="yes"), "pixels"),
    ("preprocess a list", lambda d: d["metadata"].update(preprocess=[1]), "preprocess"),
    ("metadata a list", lambda d: d.update(metadata=[1, 2]), "metadata"),
    ("config a list", lambda d: d.update(config=[1]), "config"),
    ("format_version a string", lambda d: d.update(format_version="1"), "format_version"),
    ("settings seed a string", lambda d: d["metadata"]["settings"].update(seed="zero"), "seed"),
    ("linear 30000 x 30000", lambda d: d["config"]["modules"]["4"]["args"].update(in_features=30000,
                                                                                  out_features=30000),
     "the model is not built"),
    ("unknown layer class", lambda d: d["config"]["modules"]["0"].update({"class": "Evil"}), "unknown module class"),
    ("nested 100,000 deep", lambda d: '{"format_version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "nested"),
    ("nested 100 deep", lambda d: d.update(x=json.loads("[" * 100 + "]" * 100)), "nested"),
]


@pytest.mark.parametrize("name, change, fragment", BAD_METADATA, ids=[b[0] for b in BAD_METADATA])
def test_malformed_metadata_is_one_line(ckpt, capsys, env, name, change, fragment):
    rewrite_document(ckpt, lambda d: change(d) or d)
    np.save(env / "x.npy", np.zeros((1, 28, 28), dtype=np.float32))
    code, _, err = predict(capsys, ckpt, env / "x.npy")
    assert_one_line(code, err, fragment, command="cnnlab predict")
    code = main(["evaluate", str(ckpt)])
    _, err = capsys.readouterr()
    assert_one_line(code, err, "", command="cnnlab evaluate")


def test_deep_json_from_the_library(ckpt):
    rewrite_document(ckpt, lambda d: '{"format_version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    for reader in (cnnlab.checkpoint.load, cnnlab.checkpoint.load_metadata, cnnlab.checkpoint.load_model):
        with pytest.raises(CheckpointError, match="nested"):
            reader(ckpt)


def test_nan_weights_and_inputs_are_refused(ckpt, capsys, env):
    np.save(env / "x.npy", np.zeros((1, 28, 28), dtype=np.float32))
    bad = np.zeros((1, 28, 28), dtype=np.float32)
    bad[0, 3, 3] = np.nan
    np.save(env / "nan.npy", bad)
    code, _, err = predict(capsys, ckpt, env / "nan.npy")
    assert_one_line(code, err, "NaN", command="cnnlab predict")
    model, meta = cnnlab.training.load_trained(ckpt)
    model[0].weight.data[0, 0, 0, 0] = np.inf
    cnnlab.save(model, ckpt, metadata=meta)
    for argv in (["predict", str(ckpt), str(env / "x.npy")], ["evaluate", str(ckpt)]):
        code = main(argv)
        _, err = capsys.readouterr()
        assert_one_line(code, err, "NaN or infinite weights", command=f"cnnlab {argv[0]}")


def _png(width, height):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
            + chunk(b"IEND", b""))


def test_a_huge_png_is_refused_before_decoding(ckpt, capsys, env):
    (env / "bomb.png").write_bytes(_png(20000, 20000))
    code, _, err = predict(capsys, ckpt, env / "bomb.png")
    assert_one_line(code, err, "bomb.png", command="cnnlab predict")
    assert "pixels" in err


def test_unreadable_image_in_a_folder_says_so_without_the_size_hint(env, capsys):
    for name in ("a", "b"):
        (env / "imgs" / name).mkdir(parents=True)
        (env / "imgs" / name / "x.png").write_bytes(b"not a png")
    code = main(["train", "--data", str(env / "imgs"), "--image-size", "8", "--out", str(env / "o"),
                 "--no-progress"])
    _, err = capsys.readouterr()
    assert_one_line(code, err, "cannot read image", command="cnnlab train")
    assert "--image-size" not in err


def test_spec_beyond_the_limits(env, capsys):
    for spec in ("c99999999k3-fc10", "c16k3p99999999-flat-fc10", "flat-fc999999999"):
        code = main([str(a) for a in train_args(env / "s", 1, "--model", spec)])
        _, err = capsys.readouterr()
        assert_one_line(code, err, "more than the limit", command="cnnlab train")


MEMORY_SCRIPT = r'''
import gzip, json, resource, struct, sys, zlib
import numpy as np
resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
from cnnlab.data import read_idx
from cnnlab.checkpoint import CheckpointError, load_model
from cnnlab.training.models import SpecError, build_model
tmp = sys.argv[1]
# a 1 MB gzip that expands to 1 GiB behind an honest-looking small header
co = zlib.compressobj(9, zlib.DEFLATED, 31)
out = co.compress(bytes([0, 0, 8, 1]) + np.array([10], dtype=">u4").tobytes())
zeros = bytes(1 << 24)
for _ in range(64):  # 1 GiB of zeros: more than the memory limit allows
    out += co.compress(zeros)
open(tmp + "/bomb.gz", "wb").write(out + co.flush())
# a header that claims 4 GiB
open(tmp + "/claim.idx", "wb").write(bytes([0, 0, 8, 2]) + np.array([65536, 65536], dtype=">u4").tobytes())
for name in ("bomb.gz", "claim.idx"):
    try:
        read_idx(tmp + "/" + name)
    except ValueError as exc:
        print("refused", name)
try:
    load_model(sys.argv[2])
except CheckpointError as exc:
    print("refused checkpoint")
try:
    build_model("c99999999k3-fc10", (1, 40))
except SpecError:
    print("refused spec")
'''


def test_memory_heavy_inputs_are_refused_within_a_memory_limit(ckpt, tmp_path):
    rewrite_document(ckpt, lambda d: d["config"]["modules"]["4"]["args"].update(in_features=30000,
                                                                                out_features=30000) or d)
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path), str(ckpt)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:5] == ["refused bomb.gz", "refused claim.idx", "refused checkpoint",
                                           "refused spec", ""]


def test_broken_pipe_ends_quietly(ckpt, env):
    np.save(env / "many.npy", np.zeros((2000, 1, 28, 28), dtype=np.float32))
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "predict", str(ckpt), str(env / "many.npy")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "Error" not in err, err


def interrupted_run(env, capsys, name="half"):
    """A run stopped after 1 of 3 epochs: its last.safetensors is a resumable training state."""
    assert main([str(a) for a in train_args(env / name, 1)]) == 0
    capsys.readouterr()
    last = env / name / "last.safetensors"

    def three_epochs(document):
        document["metadata"]["training"]["epochs"] = 3
        document["metadata"]["settings"]["epochs"] = 3

    rewrite_document(last, three_epochs)
    return last


def test_shape_mismatch_message_is_not_cut(capsys, env):
    last = interrupted_run(env, capsys)
    # the recorded settings name a model with 8 filters where the file holds 4: the weights do not fit
    rewrite_document(last, lambda d: d["metadata"]["settings"].update(model=SPEC.replace("c4k3", "c8k3")))
    code = main(["train", "--resume", str(last), "--epochs", "3", "--no-progress"])
    _, err = capsys.readouterr()
    assert_one_line(code, err, "cnnlab train:", command="cnnlab train")
    line = err.strip()
    # the details after the colon survive: which tensor, and both shapes
    assert "0.weight" in line and "(8, 1, 3, 3)" in line and "(4, 1, 3, 3)" in line, line
    assert not line.endswith(":")


TAMPERED_STATES = [
    ("epochs_completed a string", lambda t: t.update(epochs_completed="1")),
    ("epochs_completed negative", lambda t: t.update(epochs_completed=-1)),
    ("epochs_completed past epochs", lambda t: t.update(epochs_completed=99)),
    ("batch past the epoch", lambda t: t.update(batch=10**6)),
    ("batches_per_epoch zero", lambda t: t.update(batches_per_epoch=0)),
    ("partial missing", lambda t: t.pop("partial")),
    ("partial count a list", lambda t: t["partial"].update(count=[1])),
    ("loader a number", lambda t: t.update(loader=3)),
    ("loader seed negative", lambda t: t["loader"].update(seed=-5)),
    ("rng an unknown generator", lambda t: t["rng"].update(bit_generator="Nope")),
    ("rng state a string", lambda t: t["rng"].update(state="x")),
    ("history a dict", lambda t: t.update(history={"a": 1})),
    ("history records of strings", lambda t: t.update(history=["x"])),
    ("best_loss a string", lambda t: t.update(best_loss="low")),
    ("bad_epochs negative", lambda t: t.update(bad_epochs=-3)),
    ("version unknown", lambda t: t.update(version=99)),
    ("optimizer a list", lambda t: t.update(optimizer=[1, 2])),
    ("optimizer class unknown", lambda t: t["optimizer"].update({"class": "Nope"})),
    ("optimizer param groups empty", lambda t: t["optimizer"].update(param_groups=[])),
    ("scheduler garbage", lambda t: t.update(scheduler={"class": "OneCycleLR", "x": 1})),
    ("training state missing", None),
]


@pytest.mark.parametrize(("case", "change"), TAMPERED_STATES, ids=[c for c, _ in TAMPERED_STATES])
def test_tampered_resume_states_are_refused_in_one_line(case, change, capsys, env):
    last = interrupted_run(env, capsys, name="t")
    before = snapshot(env / "t")

    def tamper(document):
        if change is None:
            document["metadata"].pop("training")
        else:
            change(document["metadata"]["training"])

    rewrite_document(last, tamper)
    tampered = snapshot(env / "t")
    code = main(["train", "--resume", str(last), "--epochs", "3", "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 2, (case, err)
    assert_one_line(code, err, "", command="cnnlab train")
    assert snapshot(env / "t") == tampered  # a refused resume changes nothing in the run folder
    assert tampered != before
