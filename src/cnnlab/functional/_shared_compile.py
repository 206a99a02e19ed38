"""One compilation per kernel across processes that share a Numba cache: lock files.

:mod:`cnnlab.training._warmup` compiles a model's kernels in a second process while the
training process compiles them too, in the opposite order.  Without coordination the two meet in
the middle and then compile the same kernels twice (measured: 2-3 of the convnet's 9).  With
:func:`share` on in both processes, a kernel about to be compiled (a signature not yet in the
process) first takes a lock file named after the kernel and its argument types in the shared
cache folder.  If the other process holds it, this one waits until it is released and then
loads the kernel from the disk cache, which the other process has just written, instead of
compiling it again.

The lock holds the process id: a lock whose process has ended is taken over, and no wait lasts
longer than :data:`WAIT_S` (then the kernel is compiled here, as without locks).  Lock files
that cannot be made (a read-only folder) mean no coordination, never an error.  Off (the
default), a compile goes straight to Numba.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from typing import Any

# Longest wait for another process's compilation of one kernel (the slowest take about 3 s).
WAIT_S = 60.0
_POLL_S = 0.02

_state: dict[str, Any] = {"folder": None, "wait": True}
_depth = threading.local()  # compilations in progress on this thread (a kernel compiles its callees)


class Busy(RuntimeError):
    """Raised instead of waiting (``share(..., wait=False)``): another process is compiling this
    kernel.  Only an outermost compilation raises it; one inside another's waits."""


def share(folder: str | os.PathLike[str] | None, wait: bool = True) -> None:
    """Coordinate compilations through lock files in ``folder`` (None: stop coordinating).

    With ``wait=False`` a kernel that another process is compiling raises :class:`Busy` instead
    of waiting for it (the helper then does other work and comes back to it).

    Wraps every cnnlab kernel created so far, and (through
    :data:`cnnlab.functional._backend.made_kernel_hooks`) the ones made later.
    """
    from cnnlab.functional import _backend

    _state["folder"] = None if folder is None else os.fspath(folder)
    _state["wait"] = bool(wait)
    if folder is None:
        _backend.made_kernel_hooks[:] = [h for h in _backend.made_kernel_hooks if h is not wrap]
        return
    if wrap not in _backend.made_kernel_hooks:
        _backend.made_kernel_hooks.append(wrap)
    for dispatcher in _backend.kernels(*kernel_modules()):
        wrap(dispatcher)


def kernel_modules() -> list[Any]:
    """Every module of cnnlab's compiled kernels (``_numba_*.py``,
    :func:`cnnlab.functional._kernel_cache.kernel_sources`), imported: their kernels are what
    :func:`share` wraps.  (A fixed list of six modules left out the ones added since, the implicit
    kernels' among them, and a cold ``cnnlab train`` compiled ``_taps_forward``, 5-7 s, in both
    processes at once.)"""
    import importlib

    from cnnlab.functional import _kernel_cache

    names = sorted(os.path.splitext(os.path.basename(f))[0] for f in _kernel_cache.kernel_sources())
    return [importlib.import_module(f"cnnlab.functional.{name}") for name in names]


@contextlib.contextmanager
def without_waiting() -> Any:
    """Within the block, a kernel that another process is compiling raises :class:`Busy` on this
    thread instead of being waited for (as in the helper's ``share(..., wait=False)``), so the
    caller can compile something else first (:func:`cnnlab.functional._numba_panels.two_panels_address`).
    Nothing changes where compilations are not coordinated."""
    before = getattr(_depth, "no_wait", False)
    _depth.no_wait = True
    try:
        yield
    finally:
        _depth.no_wait = before


def sharing() -> str | None:
    """The folder of the lock files, or None when compilations are not coordinated."""
    return _state["folder"]


def wrap(dispatcher: Any) -> Any:
    """Make ``dispatcher`` take the lock of each signature it compiles (once per dispatcher)."""
    if getattr(dispatcher, "_cnnlab_shared", False):
        return dispatcher
    compile_here = dispatcher.compile

    def compile_shared(sig: Any) -> Any:
        folder = _state["folder"]
        if folder is None:
            return compile_here(sig)
        from numba.core import sigutils

        args, _ = sigutils.normalize_signature(sig)
        if tuple(args) in dispatcher.overloads:  # compiled in this process already
            return compile_here(sig)
        outermost = getattr(_depth, "n", 0) == 0
        path = os.path.join(folder, f"cnnlab-compiling-{_name(dispatcher, args)}")
        wait = _state["wait"] and not getattr(_depth, "no_wait", False)
        with _lock(path, wait=wait or not outermost):
            _depth.n = getattr(_depth, "n", 0) + 1
            try:
                return compile_here(sig)  # (loads the other process's work from the cache, if it did it)
            finally:
                _depth.n -= 1

    dispatcher.compile = compile_shared
    dispatcher._cnnlab_shared = True
    return dispatcher


def _name(dispatcher: Any, args: Any) -> str:
    fn = dispatcher.py_func
    constants = tuple(cell.cell_contents for cell in fn.__closure__ or ())
    text = repr((fn.__module__, fn.__qualname__, constants, tuple(str(a) for a in args)))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@contextlib.contextmanager
def _lock(path: str, wait: bool = True) -> Any:
    """Hold the lock file ``path`` within the block (or nothing, after :data:`WAIT_S` or an OS error);
    without ``wait``, raise :class:`Busy` where another live process holds it."""
    deadline = time.monotonic() + WAIT_S
    held = False
    while not held:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder == os.getpid() or time.monotonic() > deadline:
                break  # (this process's own lock: a kernel compiled while compiling itself)
            if holder is not None and not _alive(holder):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            if not wait:
                raise Busy(path) from None
            time.sleep(_POLL_S)
            continue
        except OSError:
            break
        with contextlib.suppress(OSError):
            os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        held = True
    try:
        yield
    finally:
        if held:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _holder(path: str) -> int | None:
    """The process id in the lock file: None while it is being written, 0 once it is gone."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return 0  # released meanwhile
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # (another user's process)
    return True
