"""cnnlab.functional._shared_compile: lock files so that two processes sharing a Numba cache
compile each kernel once (the training process and its compiling helper)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from cnnlab.functional import _backend, _shared_compile

needs_numba = pytest.mark.skipif(not _backend.numba_available(), reason="the locks wrap Numba kernels")


@pytest.fixture
def other_process():
    """A live process that is not this one (its id goes into lock files)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_lock_held_by_a_live_process_is_waited_for(tmp_path, other_process):
    path = tmp_path / "cnnlab-compiling-k"
    path.write_text(str(other_process.pid))
    released = threading.Event()

    def release():
        released.set()
        path.unlink()

    timer = threading.Timer(0.2, release)
    timer.start()
    with _shared_compile._lock(str(path)):
        assert released.is_set()  # the block ran only once the other process let go
        assert path.read_text() == str(os.getpid())  # and this process holds it now
    timer.join()
    assert not path.exists()  # released at the end of the block


def test_without_wait_a_live_holder_raises_busy(tmp_path, other_process):
    path = tmp_path / "cnnlab-compiling-k"
    path.write_text(str(other_process.pid))
    with pytest.raises(_shared_compile.Busy), _shared_compile._lock(str(path), wait=False):
        pass
    assert path.read_text() == str(other_process.pid)  # still the holder's
    free = tmp_path / "free"
    with _shared_compile._lock(str(free), wait=False):  # a free lock is taken as usual
        assert free.exists()
    assert not free.exists()


def test_a_lock_of_an_ended_process_is_taken_over(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = tmp_path / "cnnlab-compiling-k"
    path.write_text(ended.stdout.strip())
    with _shared_compile._lock(str(path)):
        assert path.read_text() == str(os.getpid())
    assert not path.exists()


def test_no_wait_on_this_process_own_lock_or_past_the_limit(tmp_path, other_process, monkeypatch):
    own = tmp_path / "own"
    own.write_text(str(os.getpid()))
    with _shared_compile._lock(str(own)):  # a kernel compiled while compiling itself: no deadlock
        pass
    assert own.exists()  # not ours to remove: the outer holder releases it
    monkeypatch.setattr(_shared_compile, "WAIT_S", 0.0)
    other = tmp_path / "other"
    other.write_text(str(other_process.pid))
    with _shared_compile._lock(str(other)):  # the wait gave up: compile here, as without locks
        pass
    assert other.read_text() == str(other_process.pid)
    with _shared_compile._lock(str(tmp_path / "missing" / "lock")):  # cannot be made: no coordination
        pass


@needs_numba
def test_kernels_compile_through_the_locks_and_leave_none_behind(tmp_path):
    # a fresh process and cache: the kernels really compile, through the wrapper
    script = f"""
import numpy as np
import cnnlab.functional as F
from cnnlab.functional import _backend, _shared_compile
_backend.COMPILE_MIN_WORK = 0
taken = []
real_lock = _shared_compile._lock
def lock(path, wait=True):
    taken.append(path)
    return real_lock(path, wait)
_shared_compile._lock = lock
_shared_compile.share({str(tmp_path)!r})
x = np.arange(2 * 3 * 6 * 6, dtype=np.float32).reshape(2, 3, 6, 6) - 50
w = np.ones((4, 3, 3, 3), np.float32)
y = F.conv2d(x, w, padding=1)
ref = F.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1, method="gemm")
assert np.allclose(y, ref)
print(F.relu(x).min(), sum(getattr(d, "_cnnlab_shared", False) for d in _backend._made_kernels), len(set(taken)))
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    relu_min, shared, locks = done.stdout.split()
    assert float(relu_min) == 0.0 and int(shared) >= 1  # kernels made after share() are wrapped too
    assert int(locks) >= 2  # a lock per kernel compiled (the conv's kernels and the ReLU)
    assert not list(tmp_path.glob("cnnlab-compiling-*"))  # every lock released
    assert list((tmp_path / "cache").rglob("*.nbi"))  # and the kernels went to the cache


@needs_numba
def test_a_wrapped_kernel_compiles_as_before_when_sharing_is_off():
    from numba import njit

    @njit(cache=False)
    def double(a):
        return a * 2

    _shared_compile.wrap(double)
    assert _shared_compile.wrap(double) is double  # once
    assert _shared_compile.sharing() is None
    assert double(np.float32(1.5)) == 3.0


@needs_numba
def test_sharing_wraps_the_kernels_of_every_kernel_module(tmp_path):
    # every compiled kernel of every _numba_*.py module (listed here from the package's folder),
    # the implicit convolution's among them, takes the locks once sharing is on
    import importlib
    from pathlib import Path

    import cnnlab.functional

    folder = Path(cnnlab.functional.__file__).parent
    names = sorted(p.stem for p in folder.glob("_numba_*.py"))
    assert {"_numba_implicit", "_numba_implicit_grad_w", "_numba_winograd", "_numba_pool"} <= set(names)
    try:
        _shared_compile.share(tmp_path)
        for name in names:
            module = importlib.import_module(f"cnnlab.functional.{name}")
            kernels = [v for v in vars(module).values() if hasattr(v, "signatures") and hasattr(v, "py_func")]
            unwrapped = [k.py_func.__name__ for k in kernels if not getattr(k, "_cnnlab_shared", False)]
            assert unwrapped == [], name
        from cnnlab.functional import _numba_implicit

        assert _numba_implicit._taps_forward._cnnlab_shared
    finally:
        _shared_compile.share(None)


MEANWHILE = """
import json, sys
import numpy as np
import cnnlab.functional as F
from pathlib import Path
from cnnlab.functional import _numba_implicit as ni, _numba_panels as npn, _shared_compile

folder = Path(sys.argv[1])
_shared_compile.share(folder)
sig = npn._two_panels_signature()
lock = folder / ("cnnlab-compiling-" + _shared_compile._name(npn._two_panels, sig.args))
lock.write_text(sys.argv[2])  # another live process is compiling the two-panel part
seen = []
real = ni.two_panels_address

def spy(meanwhile=None):
    def then():
        seen.append(["meanwhile", len(ni._taps_forward.signatures), len(npn._two_panels.signatures)])
        meanwhile()
        seen.append(["after", len(ni._taps_forward.signatures), len(npn._two_panels.signatures)])
        lock.unlink()  # the other process is done
    return real(then)

ni.two_panels_address = spy
rng = np.random.default_rng(3)
x = rng.integers(-3, 4, (2, 8, 7, 9)).astype(np.float32)
w = rng.integers(-2, 3, (40, 8, 3, 3)).astype(np.float32)  # 40 filters: two panels of 16 and one of 8
y = F.conv2d(x, w, padding=1, method="implicit")
ref = F.conv2d(x.astype(np.int64), w.astype(np.int64), padding=1)
print(json.dumps({"seen": seen, "same": bool(np.array_equal(y, ref)), "panels": len(npn._two_panels.signatures),
                  "locks": [p.name for p in folder.glob("cnnlab-compiling-*")]}))
"""


@needs_numba
def test_the_forward_kernel_compiles_while_another_process_compiles_its_part(tmp_path, other_process):
    # the two-panel part of the implicit forward is called at its address: where the helper
    # process holds its lock, the training process compiles the kernel first, then takes the part
    from cnnlab.functional import _numba_simd

    if not _numba_simd.WIDE:
        pytest.skip("the two-panel part runs on CPUs with AVX-512 only")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", MEANWHILE, str(tmp_path), str(other_process.pid)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["seen"] == [["meanwhile", 0, 0], ["after", 1, 0]]  # the kernel compiled first, the part after
    assert got["same"] and got["panels"] == 1 and got["locks"] == []


@needs_numba
def test_the_part_is_not_put_off_when_no_other_process_compiles_it(monkeypatch):
    from cnnlab.functional import _numba_panels, _numba_simd

    if not _numba_simd.WIDE:
        pytest.skip("the two-panel part runs on CPUs with AVX-512 only")
    monkeypatch.setattr(_numba_panels, "_address", [])  # (as before this process's first forward)
    called = []
    assert _shared_compile.sharing() is None
    address = _numba_panels.two_panels_address(lambda: called.append(1))
    assert address > 0 and called == []
    assert _numba_panels.two_panels_address() == address  # one compile a process
