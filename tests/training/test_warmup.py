"""cnnlab.training._warmup: the process that compiles a model's kernels ahead of training.

The end-to-end test runs the helper in a fresh Numba cache, then a training step of the same
model in a second fresh process, which must find every kernel it uses in the cache (Numba counts
a cache hit or miss per kernel and signature).  The same step without the helper is the control:
there the kernels miss, so the check can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.functional import _backend
from cnnlab.nn import BatchNorm1d, Conv1d, Linear, Module, ReLU, Sequential
from cnnlab.training import _warmup
from cnnlab.training.models import build_model

SRC = str(Path(__file__).resolve().parents[2] / "src")

SPEC = {"model": "mnist1d-cnn-bn", "input_shape": [1, 40], "classes": 10, "batch_size": 100, "eval_batch_size": 500}

# One training step and one evaluation as cnnlab.training.fit runs them, then, for every compiled
# cnnlab kernel, Numba's cache hits and misses.
STEP = """
import json, sys
import numpy as np
import cnnlab
from cnnlab import optim
from cnnlab.autograd import Tensor, no_grad
import cnnlab.functional as F
from cnnlab.functional import _backend, _numba_correlate, _numba_direct, _numba_direct_grad_w, _numba_kernels
from cnnlab.functional import _numba_norm, _numba_pool
from cnnlab.training.models import build_model

spec = json.loads(sys.argv[1])
model = build_model(spec["model"], tuple(spec["input_shape"]), num_classes=spec["classes"])
opt = optim.Adam(model.parameters(), lr=1e-3)
rng = np.random.default_rng(1)
x = rng.standard_normal((spec["batch_size"], *spec["input_shape"])).astype(np.float32)
y = rng.integers(0, spec["classes"], spec["batch_size"])
F.cross_entropy(model(Tensor(x)), y).backward()
opt.step()
model.eval()
with no_grad():
    model(Tensor(rng.standard_normal((spec["eval_batch_size"], *spec["input_shape"])).astype(np.float32)))
modules = (_numba_correlate, _numba_direct, _numba_direct_grad_w, _numba_kernels, _numba_norm, _numba_pool)
found = [d for m in modules for d in vars(m).values() if hasattr(d, "signatures")] + _backend._made_kernels
stats = {}
for d in found:
    if d.signatures:
        s = d.stats
        parallel = bool(d.targetoptions.get("parallel"))
        stats[d.py_func.__name__] = [sum(s.cache_hits.values()), sum(s.cache_misses.values()), parallel]
print(json.dumps(stats))
"""


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CNNLAB_WARMUP", None)
    return env


def _step_stats(cache: Path) -> dict[str, list[int]]:
    done = subprocess.run([sys.executable, "-c", STEP, json.dumps(SPEC)], env=_env(cache), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


needs_numba = pytest.mark.skipif(not _backend.numba_available(), reason="the helper compiles Numba kernels")


@needs_numba
def test_the_helper_compiles_every_kernel_a_training_step_needs(tmp_path):
    control = _step_stats(tmp_path / "control")
    assert control and all(misses for _, misses, _ in control.values())  # a fresh cache: every kernel compiled

    cache = tmp_path / "warmed"
    helper = subprocess.run([sys.executable, "-m", "cnnlab.training._warmup", json.dumps(SPEC)], env=_env(cache),
                            capture_output=True, text=True, timeout=600)
    assert helper.returncode == 0, helper.stderr
    assert list(cache.glob("cnnlab-warmup-*.json")), "the helper writes its marker when it is done"
    stats = _step_stats(cache)
    # the same kernels (a helper a kernel calls, compiled into it, is not loaded on its own) ...
    assert {k for k, (_, _, par) in stats.items() if par} == {k for k, (_, _, par) in control.items() if par}
    assert set(stats) <= set(control)
    # ... all from the cache
    assert {name: misses for name, (_, misses, _) in stats.items()} == dict.fromkeys(stats, 0)
    assert all(hits for hits, _, _ in stats.values())


def test_units_keep_batchnorm_and_relu_together_in_forward_order():
    model = build_model("mnist1d-cnn-bn", (1, 40), num_classes=10)
    parts = _warmup.units(model)
    flat = [m for m in model.modules() if not isinstance(m, Sequential)]
    fused = [[type(m).__name__ for m in p] if isinstance(p, Sequential) else type(p).__name__ for p in parts]
    assert fused.count(["BatchNorm1d", "ReLU"]) == sum(isinstance(m, BatchNorm1d) for m in flat) > 0
    # in order, every leaf once
    leaves = [m for p in parts for m in (list(p) if isinstance(p, Sequential) else [p])]
    assert [id(m) for m in leaves] == [id(m) for m in flat]


def test_units_leave_a_hooked_batchnorm_apart_and_refuse_models_of_unknown_order():
    bn = BatchNorm1d(3)
    bn.register_forward_hook(lambda module, inputs, output: None)
    parts = _warmup.units(Sequential(Conv1d(1, 3, 3), bn, ReLU(), Sequential(Linear(4, 2))))
    assert [type(p).__name__ for p in parts] == ["Conv1d", "BatchNorm1d", "ReLU", "Linear"]

    class Custom(Module):
        def forward(self, x):
            return x

    assert _warmup.units(Custom()) is None
    custom = Custom()
    assert _warmup.units(Sequential(Linear(2, 2), custom))[1] is custom  # run whole, as one unit


def test_start_only_where_it_helps(monkeypatch, tmp_path):
    if not _backend.numba_available():
        assert _warmup.start("mnist1d-cnn", (1, 40), 10, 100) is None
        return
    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    spec = _warmup._spec("mnist1d-cnn", (1, 40), 10, 100, 500)
    marker = _warmup.marker_path(spec)
    assert marker.parent == tmp_path
    # the marker names the work: another batch size is other work
    assert _warmup.marker_path(_warmup._spec("mnist1d-cnn", (1, 40), 10, 50, 500)) != marker
    monkeypatch.setenv("CNNLAB_WARMUP", "0")
    assert _warmup.start("mnist1d-cnn", (1, 40), 10, 100) is None
    monkeypatch.delenv("CNNLAB_WARMUP")
    with _backend.using("numpy"):
        assert _warmup.start("mnist1d-cnn", (1, 40), 10, 100) is None
    marker.write_text("{}")
    assert _warmup.start("mnist1d-cnn", (1, 40), 10, 100) is None  # done before


@needs_numba
def test_start_launches_a_helper_and_stop_ends_it(monkeypatch, tmp_path):
    import numba

    monkeypatch.delenv("CNNLAB_WARMUP")
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    helper = _warmup.start("mnist1d-cnn", (1, 40), 10, 100)
    assert helper is not None and helper.poll() is None
    _warmup.stop(helper)
    assert helper.returncode is not None  # ended and reaped
    _warmup.stop(None)  # nothing to stop


def test_the_helper_puts_off_a_unit_the_training_process_is_compiling(monkeypatch, tmp_path):
    from cnnlab.functional import _shared_compile
    from cnnlab.training import models

    calls = []

    class Note(Module):
        def forward(self, x):
            calls.append(("note", self.training))
            return x

    class Compiling(Module):  # in training mode, "busy" the first 4 times
        def forward(self, x):
            if self.training:
                calls.append(("busy", True))
                if calls.count(("busy", True)) <= 4:
                    raise _shared_compile.Busy("another process compiles this unit's kernel")
            return x

    model = Sequential(Note(), Compiling(), Linear(4, 2))
    monkeypatch.setattr(models, "build_model", lambda *args, **kwargs: model)
    monkeypatch.setattr(_warmup, "marker_path", lambda spec: tmp_path / "marker.json")
    spec = {"model": "x", "input_shape": [4], "classes": 2, "batch_size": 3, "eval_batch_size": 5}
    assert _warmup.warm(spec) == 3
    train_calls = [c for c in calls if c[1]]
    assert train_calls[0] == ("note", True)  # the first unit's forward first (while the data loads) ...
    assert train_calls[1] == ("busy", True)  # ... then the last units first (Linear records nothing)
    first_busy = calls.index(("busy", True))
    assert ("note", True) in calls[first_busy:]  # the helper went on with the next unit ...
    assert calls.count(("busy", True)) >= 6  # ... and came back: 4 put off, then forward and train step
    assert (tmp_path / "marker.json").exists()


def test_each_pass_runs_opposite_to_the_training_process(monkeypatch, tmp_path):
    # the first unit's forward, then eval passes last unit first (the training process needs them
    # last), forward passes last unit first (the training process: first unit first), train steps
    # first unit first (the training process's backward: last unit first)
    from cnnlab.training import models

    calls = []

    class Note(Module):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def extra_repr(self):  # (each unit a kind of its own: see pass_orders for shared kernels)
            return str(self.name)

        def forward(self, x):
            calls.append((self.name, self.training))
            return x

    model = Sequential(Note(0), Note(1), Note(2))
    monkeypatch.setattr(models, "build_model", lambda *args, **kwargs: model)
    monkeypatch.setattr(_warmup, "marker_path", lambda spec: tmp_path / "marker.json")
    spec = {"model": "x", "input_shape": [4], "classes": 2, "batch_size": 3, "eval_batch_size": 5}
    assert _warmup.warm(spec) == 3
    shapes_found = calls[:3]  # the input shapes, found first in eval mode
    assert shapes_found == [(0, False), (1, False), (2, False)]
    assert calls[3:] == ([(0, True)] + [(2, False), (1, False), (0, False)] + [(2, True), (1, True), (0, True)]
                         + [(0, True), (1, True), (2, True)])


def test_pass_orders_run_opposite_to_where_the_training_process_first_needs_each_kind():
    # the convnet's units: conv (direct), bn+relu, pool, then twice conv (GEMM), bn+relu, pool, then
    # flatten, dropout, linear.  Its forward pass needs each kind's kernels at the kind's first unit
    # (0, 1, 2, 3, 9, 10, 11): the helper takes those last first, then the rest last first.  Its
    # backward pass (last unit first) needs them at the kind's last unit (11, 10, 9, 8, 7, 6, 0):
    # the helper takes those first unit first, then the rest first unit first.
    kinds = ["direct", "bn", "pool", "gemm", "bn", "pool", "gemm", "bn", "pool", "flat", "drop", "lin"]
    forwards, backwards = _warmup.pass_orders([(k,) for k in kinds])
    assert forwards == [11, 10, 9, 3, 2, 1, 0, 8, 7, 6, 5, 4]
    assert backwards == [0, 6, 7, 8, 9, 10, 11, 1, 2, 3, 4, 5]
    assert _warmup.pass_orders([("a",), ("b",), ("c",)]) == ([2, 1, 0], [0, 1, 2])  # all distinct: plain reversal
    assert _warmup.pass_orders([("a",)] * 3) == ([0, 2, 1], [2, 0, 1])


def test_kinds_group_the_units_that_share_kernels():
    from cnnlab.training.models import build_model

    parts = _warmup.units(build_model("convnet", (1, 28, 28), num_classes=10))
    shapes = [(128, 1, 28, 28), (128, 24, 28, 28), (128, 24, 28, 28), (128, 24, 14, 14), (128, 48, 14, 14),
              (128, 48, 14, 14), (128, 48, 7, 7), (128, 96, 7, 7), (128, 96, 7, 7), (128, 96, 3, 3), (128, 864),
              (128, 864)]
    kinds = [_warmup.kind(u, s) for u, s in zip(parts, shapes, strict=True)]
    # 24 and 48 input channels, float32, 3x3 of stride 1: the Winograd kernels where they are compiled
    assert kinds[3] == kinds[6] == ("Conv2d", "winograd" if _backend.use_numba() else "gemm")
    # the first layer (1 channel) takes the direct kernels where they are compiled (the helper's case)
    assert kinds[0] == ("Conv2d", "direct" if _backend.use_numba() else "gemm")
    assert kinds[1] == kinds[4] == kinds[7] == ("fused", "BatchNorm2d", "ReLU")  # 24, 48, 96 channels
    assert kinds[2] == kinds[5] == kinds[8] and kinds[2][0] == "AvgPool2d"
    assert len(set(kinds)) == (7 if _backend.use_numba() else 6)


def test_demo_warmup_stops_its_helper_however_the_block_ends(monkeypatch):
    # the demo's helper is started for the block and stopped when it ends, also by an error;
    # nothing is started when asked not to
    from cnnlab.training import recipes

    events = []
    monkeypatch.setattr(_warmup, "start", lambda *args: events.append(("start", args[0])) or "helper")
    monkeypatch.setattr(_warmup, "stop", lambda helper: events.append(("stop", helper)))
    with pytest.raises(KeyboardInterrupt):
        with recipes.demo_warmup():
            assert events == [("start", "mnist1d-cnn")]
            raise KeyboardInterrupt
    assert events == [("start", "mnist1d-cnn"), ("stop", "helper")]
    events.clear()
    with recipes.demo_warmup(False):
        pass
    assert events == [("stop", None)]
