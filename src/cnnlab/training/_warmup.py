"""Compile a model's Numba kernels in a second process while the training process starts.

The first ``cnnlab train`` (or ``cnnlab demo``, whose short training starts the helper too,
before it works out the lecture's example: :func:`cnnlab.training.recipes.demo_warmup`) on a
machine compiles every Numba kernel its model uses, and Numba
compiles one kernel at a time per process (it holds one compiler lock), on one core: the
``convnet``'s first step spent about 14 s compiling 9 kernels while the other core waited.
:func:`start` uses that core.  It launches ``python -m cnnlab.training._warmup``, which builds the
same model and runs its units (layers, with a BatchNorm and the ReLU after it taken together, as
:class:`cnnlab.nn.Sequential` fuses them) in the order opposite to the training process's, by the
kernels each unit brings (:func:`pass_orders`; units of one :func:`kind` share their kernels):
forward at the training batch size, first the units where the training process first needs a
kind's kernels, last one first (its forward pass runs first unit first); then forward and backward,
first the units where its backward pass (last unit first) first needs a kind's kernels, first one
first.  Two things come before those passes: the first unit's forward (the helper starts while the
training process still loads its data, and that kernel is the one the training process needs
first), and then every unit's forward in eval mode at the evaluation batch size, last unit first:
the training process needs those last, at the end of its first epoch, and a larger batch can take
other kernels than training's.  The MNIST-1D CNN's second and third layers, for one, run the
implicit kernels at the evaluation batch and the GEMM path at the training batch, and the implicit
forward is the longest compile of all (6-8 s on the AVX-512 Zen 4).  With the evaluation last in the
helper, the training process reached its first evaluation about 3.4 s in and waited some 7 s for
the helper's compile of it; cold `cnnlab train --epochs 1` took 14.46 and 12.48 s, and 12.98 and
11.37 s with the evaluation first (round 55, alternating runs).  Since round 56 that kernel calls
its two-panel part at an address, so the two compile apart: the helper compiles the part while the
training process compiles the kernel (:func:`cnnlab.functional._numba_panels.two_panels_address`),
and a cold `cnnlab train --epochs 1` takes 7.1-7.7 s.  Every kernel the helper compiles goes to Numba's disk
cache, where the training process finds it when it gets there (Numba looks in the cache before it
compiles), so the two processes meet in the middle of each pass.  (With the backward pass last
unit first in both, the first layer's backward kernel came last in both, and the convnet's cold
run cost 16.5-17.2 s against 14.6-16.0 s first unit first, alternating runs on a busy day.  Taking
units by kind moved the helper from the last pooling and BatchNorm units, whose kernels the
training process needs right after its first layer, to the second convolution's im2col: 12.6-18.3
against 13.1-13.9 s, three alternating pairs.)
Both processes take a lock file before compiling a kernel (:mod:`cnnlab.functional._shared_compile`),
so a kernel the other process is compiling is loaded once it is done, not compiled twice (the
training process waits for it; the helper puts that unit off and goes on with the next one).  The
results are unchanged: the cache holds the same machine code either process would compile.

The helper is started only when it can help: Numba is installed and enabled, the model is a
:class:`~cnnlab.nn.Sequential` (every built-in model is), and no earlier helper finished the
same work (a marker file next to Numba's cache, named by a hash of the model, the shapes, the
versions and the kernel sources, records that).  ``CNNLAB_WARMUP=0`` turns it off.  The helper
runs at the lowest priority (``nice`` 19) and :func:`stop` ends it when training is over.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.functional import _shared_compile

__all__ = ["kind", "marker_path", "pass_orders", "start", "stop", "units", "warm"]

# How often the helper puts off a unit whose kernel the training process is compiling, before it
# waits for it like the training process does.
MAX_DEFERRALS = 3


def units(model: Any) -> list[Any] | None:
    """The model's units in forward order: the leaves of nested :class:`~cnnlab.nn.Sequential`
    containers (any other module is one unit, run whole), with a BatchNorm and the ReLU after it
    kept together (one fused operator); None for a model that is not a ``Sequential`` (the order
    of its parts is not known)."""
    from cnnlab.nn import Sequential
    from cnnlab.nn.container import _fuses_with_relu

    if not isinstance(model, Sequential):
        return None
    found: list[Any] = []
    modules = list(model)
    i = 0
    while i < len(modules):
        if i + 1 < len(modules) and _fuses_with_relu(modules[i], modules[i + 1]):
            found.append(Sequential(modules[i], modules[i + 1]))
            i += 2
            continue
        found.extend(units(modules[i]) if isinstance(modules[i], Sequential) else [modules[i]])
        i += 1
    return found


def kind(unit: Any, x_shape: Sequence[int]) -> tuple:
    """What decides which kernels a unit runs on an input of ``x_shape`` (batch included), so that
    units of one kind share them: the fused pair's layer types; for a convolution, its type and the
    method the automatic rule picks (:func:`cnnlab.functional._conv_kernels.choose_method`: the
    direct kernels, the implicit ones, the Winograd ones or the GEMM path); else its type and configuration."""
    from cnnlab.functional import _conv_kernels
    from cnnlab.functional._columns import _with_pads
    from cnnlab.nn import Sequential

    if isinstance(unit, Sequential):
        return ("fused",) + tuple(type(m).__name__ for m in unit)
    weight = getattr(unit, "weight", None)
    shape = getattr(getattr(weight, "data", None), "shape", ())
    if len(shape) >= 3 and hasattr(unit, "stride") and hasattr(unit, "groups"):  # a convolution
        pads = _conv_pads(unit, x_shape)
        return (type(unit).__name__, _conv_kernels.choose_method(
            _with_pads(x_shape, pads), shape, unit.groups, unit.stride, weight.data.dtype,
            getattr(unit, "dilation", None), pads))
    return (type(unit).__name__, repr(unit))


def _conv_pads(unit: Any, x_shape: Sequence[int]) -> tuple | None:
    """The zero padding a convolution unit applies to an input of ``x_shape`` (its checked
    arguments, from an array of that shape that holds no memory), or None where it has none or
    its settings do not describe one (a transposed convolution's)."""
    import numpy as np

    from cnnlab.functional import _conv

    padding = getattr(unit, "padding", None)
    if padding is None or getattr(unit, "padding_mode", "zeros") != "zeros" or "Transpose" in type(unit).__name__:
        return None
    weight = unit.weight.data
    try:
        x = np.broadcast_to(np.zeros((), dtype=weight.dtype), tuple(x_shape))
        a = _conv._conv_args("conv", x, weight, None, unit.stride, padding, getattr(unit, "dilation", 1),
                             unit.groups, "zeros", weight.ndim - 2)
    except (TypeError, ValueError):
        return None
    return a.pads if any(lo or hi for lo, hi in a.pads) else None


def pass_orders(kinds: Sequence[tuple]) -> tuple[list[int], list[int]]:
    """``(forwards, backwards)``: the helper's order of the units (given by their :func:`kind`) for
    the forward pass and for the forward-and-backward pass, each opposite to the order in which
    the training process first needs each kind's kernels.  Its forward pass needs a kind's kernels
    at the kind's first unit, so the helper takes those units last first; its backward pass (last
    unit first) at the kind's last unit, so the helper takes those first unit first.  The other
    units (whose kernels are then compiled) follow, in the same direction."""
    first: dict[tuple, int] = {}
    last: dict[tuple, int] = {}
    for i, k in enumerate(kinds):
        first.setdefault(k, i)
        last[k] = i
    leading_f, leading_b = set(first.values()), set(last.values())
    down, up = list(reversed(range(len(kinds)))), list(range(len(kinds)))
    forwards = [i for i in down if i in leading_f] + [i for i in down if i not in leading_f]
    backwards = [i for i in up if i in leading_b] + [i for i in up if i not in leading_b]
    return forwards, backwards


def _sources() -> list[Path]:
    """The files of the compiled kernels (their changes invalidate Numba's cache:
    :func:`cnnlab.functional._kernel_cache.stamp_kernel_caches`)."""
    from cnnlab.functional import _kernel_cache

    return [Path(f) for f in _kernel_cache.kernel_sources()]


def _key(spec: dict[str, Any]) -> str:
    import numba

    from cnnlab import __version__

    stamp = [(p.name, st.st_mtime_ns, st.st_size) for p in _sources() for st in [p.stat()]]
    text = json.dumps([spec, __version__, numba.__version__, sys.version, stamp], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _cache_folder() -> Path | None:
    """Where Numba writes cnnlab's cache (``NUMBA_CACHE_DIR``, else next to the sources), when writable."""
    try:
        import numba
    except ImportError:
        return None

    folder = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else _sources()[0].parent / "__pycache__"
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
    return folder if os.access(folder, os.W_OK) else None


def marker_path(spec: dict[str, Any]) -> Path | None:
    """The file that says the helper finished ``spec``'s work (None: no writable cache folder)."""
    folder = _cache_folder()
    return None if folder is None else folder / f"cnnlab-warmup-{_key(spec)}.json"


def _spec(model: str, input_shape: Sequence[int], classes: int, batch_size: int, eval_batch_size: int
          ) -> dict[str, Any]:
    return {"model": model, "input_shape": [int(n) for n in input_shape], "classes": int(classes),
            "batch_size": int(batch_size), "eval_batch_size": int(eval_batch_size)}


def _wanted() -> bool:
    from cnnlab.functional import _backend

    if os.environ.get("CNNLAB_WARMUP", "").strip().lower() in ("0", "off", "no", "false"):
        return False
    return _backend.use_numba()


def start(model: str, input_shape: Sequence[int], classes: int, batch_size: int,
          eval_batch_size: int = 500) -> subprocess.Popen | None:
    """Start the helper for this model (a spec string or a built-in name) and data, or return None
    where it would not help (see the module docstring)."""
    if not _wanted():
        return None
    spec = _spec(model, input_shape, classes, batch_size, eval_batch_size)
    marker = marker_path(spec)
    if marker is None or marker.exists():
        return None
    env = dict(os.environ, CNNLAB_NUM_THREADS="1", CNNLAB_WARMUP="0", CNNLAB_SHARE_COMPILES=str(marker.parent))
    try:
        helper = subprocess.Popen([sys.executable, "-m", "cnnlab.training._warmup", json.dumps(spec)], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    _shared_compile.share(marker.parent)  # no kernel compiled twice, here and there
    return helper


def stop(helper: subprocess.Popen | None) -> None:
    """End the helper if it still runs (training no longer needs it), and reap it."""
    if helper is None:
        return
    if helper.poll() is None:
        helper.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        helper.wait(timeout=10)
    _shared_compile.share(None)


def warm(spec: dict[str, Any]) -> int:
    """The helper's work on ``spec``'s model: the first unit's forward, every unit's forward in
    eval mode (last unit first), then every unit's forward (last unit first) and every unit's
    forward and backward (first unit first); writes the marker at the end.  Returns the number of
    units."""
    import cnnlab
    from cnnlab.autograd import Tensor, no_grad
    from cnnlab.functional import _backend
    from cnnlab.training.models import build_model

    if os.environ.get("CNNLAB_SHARE_COMPILES"):  # a kernel the training process is compiling: come back later
        _shared_compile.share(os.environ["CNNLAB_SHARE_COMPILES"], wait=False)
    cnnlab.manual_seed(0)
    model = build_model(spec["model"], tuple(spec["input_shape"]), num_classes=spec["classes"])
    parts = units(model)
    if parts is None:
        return 0
    shapes = []  # each unit's input shape for one sample, found on the NumPy paths (nothing compiles)
    model.eval()
    with no_grad(), _backend.using("numpy"):
        x = np.zeros((1, *spec["input_shape"]), dtype=np.float32)
        for unit in parts:
            shapes.append(x.shape[1:])
            x = np.asarray(unit(Tensor(x)).data)
    rng = np.random.default_rng(0)

    def forward(i: int) -> Any:
        parts[i].train()
        return parts[i](Tensor(rng.standard_normal((spec["batch_size"], *shapes[i])).astype(np.float32),
                               requires_grad=i > 0))

    def train_step(i: int) -> None:
        out = forward(i)
        if out.requires_grad:  # (not for a first unit without parameters)
            out.backward(np.ones(out.shape, dtype=np.float32))

    def evaluation(i: int) -> None:
        parts[i].eval()
        with no_grad():
            parts[i](Tensor(rng.standard_normal((spec["eval_batch_size"], *shapes[i])).astype(np.float32)))

    # the training process needs every forward kernel before any backward one, and the first
    # unit's first: that one is compiled while the training process still loads its data.  Then
    # each pass runs opposite to the training process's, by the kernels each unit brings
    # (:func:`pass_orders`), so the two processes meet in the middle.
    forwards, backwards = pass_orders([kind(unit, (spec["batch_size"], *shape)) for unit, shape in zip(parts, shapes,
                                                                                                   strict=True)])
    # The evaluation's forwards right after the first unit's: the training process comes to them
    # last (the end of its first epoch), and at the evaluation batch some layers take other kernels
    # than in training, the longest compiles of all (see the module's notes).
    work = collections.deque([(forward, 0)] + [(evaluation, i) for i in reversed(range(len(parts)))]
                             + [(forward, i) for i in forwards] + [(train_step, i) for i in backwards])
    deferred: collections.Counter = collections.Counter()
    while work:
        task, i = work.popleft()
        try:
            task(i)
        except _shared_compile.Busy:  # the training process is compiling it: other work first
            deferred[task, i] += 1
            if deferred[task, i] >= MAX_DEFERRALS:
                _shared_compile.share(_shared_compile.sharing(), wait=True)
            work.append((task, i))
    marker = marker_path(spec)
    if marker is not None:
        marker.write_text(json.dumps(spec) + "\n")
    return len(parts)


if __name__ == "__main__":  # pragma: no cover - the helper process
    # stop() ends the helper with SIGTERM: leave through the ``finally`` blocks that release its locks
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if hasattr(os, "nice"):  # the lowest priority: the training process comes first
        with contextlib.suppress(OSError):
            os.nice(19)
    warm(json.loads(sys.argv[1]))
