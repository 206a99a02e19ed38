"""The helper threads that run a share of each compiled kernel: a job handed over in microseconds.

:func:`cnnlab.functional._backend.run_jobs` splits a kernel's jobs between the calling thread and
helper threads.  A helper waiting on a lock or a queue (a ``ThreadPoolExecutor``) is asleep, and
waking it takes the operating system 25-60 us on the 2-core machine of docs/BENCHMARKS.md: longer
than ReLU of a LeNet-5 activation (300,000 values, 27 us on one core) takes to compute.  So a
helper of this team, once it has finished a job, keeps watching a flag in memory for
:data:`SPIN_SECONDS` (a compiled loop without the GIL, each round a CPU ``pause`` hint), and only
then goes to sleep on a condition variable.  The caller posts a job by writing the flag, runs its
own share, then watches the helper's "done" flag the same way.  That ReLU took 17-21 us on two
threads this way, against 53-95 us with the executor (1 thread: 26-31 us).  A helper that sees
a job waits :data:`GRACE_SECONDS` more before it takes the GIL to run it, by which time the
caller has let go of the GIL for its own share: a thread that asks for the GIL while another
holds it is put to sleep, and waking it costs as much as waking a sleeping helper.

A helper publishes that it has finished a job by the same compiled call that then watches for
the next one (``publish_watch``), so that it neither holds nor asks for the GIL while the caller,
which sees the job done, takes the GIL back: when both asked for it at once, the one that lost
was put to sleep by CPython and woken tens of microseconds later.  Measured in one process,
alternating, 3,000 runs each of two compiled calls: 5 us each 25.3 -> 12.3 us (mean), 20 us
each 39.7 -> 28.9, 60 us each 79.3 -> 74.8.

A helper that has gone to sleep can be slow to wake: on the 2-core virtual machine of
docs/BENCHMARKS.md, after 50 ms without work, Linux put the woken helper on the caller's own core
in 27 of 30 calls, behind the caller's watch loop, and it ran 1.8 ms later (the next scheduler
tick that moved it), so a call of 0.4 ms took 4 ms.  So the caller does not wait for a job that no
helper has taken by the time its own share has returned: it takes the job back and runs it
itself (:meth:`Team._take_back`; each job is taken out of ``_pending`` once, by ``dict.pop``, so it
runs once).  At worst the two shares run one after the other on the caller's thread.  And before
it wakes a sleeping helper, the caller keeps that helper off its own CPU
(:meth:`Team._away_from_caller`, ``sched_setaffinity``: every CPU of the caller's but the one it
runs on), so that Linux wakes it on another: a helper woken on the caller's core spun there,
sharing it with the caller, until the scheduler moved one of them.  A LeNet-5 training step with
20 ms between steps (a data pipeline's time) took 12.0 ms with the take-back alone, 6.4-7.0 with
both (6.7-7.3 before either; torch 6.1-6.6; 3.7-4.2 with no pause), three or four fresh processes
each, alternating.

A caller that knows a large job is coming wakes the sleeping helpers before it prepares it
(:meth:`Team.wake`, :func:`cnnlab.functional._backend.wake_threads`: a convolution announces its
multiply-adds as it starts), so that their waking overlaps the op's checks and tables; and a job
posted as long (:meth:`Team.run` with ``long``) has its helper wait :data:`LONG_GRACE_SECONDS`
instead of :data:`GRACE_SECONDS` before it asks for the GIL, the caller's own way to its share
being longer there.

This is what OpenMP runtimes do (GNU OpenMP's threads spin for a while after each parallel loop;
PyTorch's do).  A watching helper takes a core, so before a matrix product that runs on several
BLAS threads the caller sends the helpers to sleep (:meth:`Team.park`): the BLAS's own threads
need those cores.

Without Numba the helpers only sleep and wake (the compiled watch loop is what needs it); every
job still runs, at the executor's speed.  A process forked from one with a team makes its own on
first use; a call made while the team is busy (another thread's, or from inside a job) runs on
its caller alone (:meth:`Team.run` returns None).
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# How long a helper that has finished a job keeps watching for the next one before it sleeps.
# Within a training step the gaps between kernels are tens to hundreds of microseconds; GNU
# OpenMP's threads keep watching for about 10 ms by default.
SPIN_SECONDS = 0.002
# How long a helper that sees a job keeps spinning before it takes the GIL to run it: long enough
# for the caller, which posted the job while holding the GIL, to let go of it as it enters its own
# share (a compiled call).  A thread that asks for the GIL while another holds it is put to sleep
# by CPython, and waking it took as long as waking a sleeping helper; after this wait the GIL is
# free when the helper asks.  Measured on 2 cores, medians of 5,000 runs of ``Team.run`` (us):
# two empty calls 17-39 -> 5.6-8.7, an empty call on the caller and a 20 us job on the helper
# 37-48 -> 24-25 (0, then 1-1.5 us); LeNet-5 training step, 400 alternating steps each, 25th
# percentile 4.21 -> 4.01 ms (0, 1.5 us); 3 us no better.
GRACE_SECONDS = 2e-6
# The grace of a job that :meth:`Team.run` is told is long (``long=True``: a kernel of a large
# layer): the caller's own way from posting it to its compiled share, with the GIL held, took
# 10-30 us there (the Python of a balanced split, run after the previous kernel emptied the caches),
# so a helper that asked for the GIL after 2 us slept, and was woken 30-60 us after the caller had
# started.  The layer N32 C16 24x24 -> 32 k5 p2 forward+backward, 2 threads, the helper's
# first job started after the caller's (median, us): 2 us 30-65, 8 us 10-15 (each kernel 2.3 ms).
LONG_GRACE_SECONDS = 8e-6

_LINE = 8  # int64 values per 64-byte cache line: each flag has a line of its own
_x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
_compiled: dict[str, Any] = {}


def _watchers() -> dict[str, Any] | None:
    """The compiled watch loops (Numba), made once; None without Numba."""
    if "watch" in _compiled:
        return _compiled["watch"]
    try:
        _compiled["watch"] = _compile()
    except Exception:  # (no Numba, or one that cannot build the loops: the helpers sleep and wake)
        _compiled["watch"] = None
    return _compiled["watch"]


def _compile() -> dict[str, Any]:
    import numba
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.extending import intrinsic

    def pointer(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]])

    @intrinsic
    def load_acquire(typingctx: Any, flags: Any, index: Any) -> Any:
        # an atomic load: the compiler may not hoist it out of the watch loop
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.load_atomic(pointer(context, builder, signature, args), ordering="acquire", align=8)
        return types.int64(flags, index), codegen

    @intrinsic
    def store_release(typingctx: Any, flags: Any, index: Any, value: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            builder.store_atomic(args[2], pointer(context, builder, signature, args), ordering="release", align=8)
            return context.get_dummy_value()
        return types.void(flags, index, value), codegen

    @intrinsic
    def pause(typingctx: Any) -> Any:
        # the x86 spin-wait hint (leaves the core's resources to other work); nothing elsewhere
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            if _x86:
                hint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                      "llvm.x86.sse2.pause")
                builder.call(hint, [])
            return context.get_dummy_value()
        return types.void(), codegen

    options = {"nogil": True, "cache": True}

    @numba.njit(**options)
    def watch(flags, index, value, stop, rounds, grace):  # pragma: no cover - compiled
        # flags[index] once it differs from value (after `grace` more rounds, or flags[index + 1]
        # where the caller asked for more with the job), or value after `rounds` rounds or once
        # flags[stop] is set
        for _ in range(rounds):
            seen = load_acquire(flags, index)
            if seen != value:
                for _ in range(max(grace, load_acquire(flags, index + 1))):
                    pause()
                return seen
            if load_acquire(flags, stop) != 0:
                return value
            pause()
        return load_acquire(flags, index)

    @numba.njit(**options)
    def publish(flags, index, value):  # pragma: no cover - compiled
        store_release(flags, index, value)

    @numba.njit(**options)
    def publish_watch(flags, done, number, index, value, stop, rounds, grace):  # pragma: no cover - compiled
        # publish, then watch, in one call without the GIL (see Team._serve)
        store_release(flags, done, number)
        return watch(flags, index, value, stop, rounds, grace)

    # each loaded (or compiled) here, once, for the argument types the team gives it: left to the
    # first call, ``publish`` was compiled in the middle of a training step, on the first job a
    # caller took back from a late helper (100 ms, in a step of 12)
    flags = np.zeros(2 * _LINE, np.int64)
    watch(flags, 0, 0, _LINE, 1, 0)
    publish(flags, 0, 0)
    publish_watch(flags, 0, 0, 0, 0, _LINE, 1, 0)
    return {"watch": watch, "publish": publish, "publish_watch": publish_watch}


def _calibrated_rounds(watch: Callable[..., int], seconds: float) -> int:
    """Rounds of ``watch`` that take about ``seconds`` on this machine (the least of three probes)."""
    flags = np.zeros(2 * _LINE, np.int64)
    probe = 2000
    watch(flags, 0, 0, _LINE, 1, 0)  # (loads the compiled code)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        watch(flags, 0, 0, _LINE, probe, 0)
        best = min(best, time.perf_counter() - start)
    return max(1, int(seconds * probe / max(best, 1e-9)))


def _current_cpu() -> int | None:
    """The CPU this thread runs on now (Linux's ``sched_getcpu``), or None where it is unknown."""
    if "getcpu" not in _compiled:
        try:
            import ctypes

            call = ctypes.CDLL(None, use_errno=True).sched_getcpu
            call.restype = ctypes.c_int
            call.argtypes = []
        except (OSError, AttributeError):
            call = None
        _compiled["getcpu"] = call
    call = _compiled["getcpu"]
    if call is None:
        return None
    cpu = call()
    return cpu if cpu >= 0 else None


class Team:
    """``helpers`` threads that each run one call of :meth:`run` at a time (see the module's notes)."""

    def __init__(self, helpers: int, spin_seconds: float = SPIN_SECONDS) -> None:
        self.helpers = helpers
        self.pid = os.getpid()
        # flags: per helper, the number of the job posted to it and of the last it finished, and
        # one flag that sends watching helpers to sleep; each on a cache line of its own
        self._flags = np.zeros((2 * helpers + 1) * _LINE, np.int64)
        self._stop = 2 * helpers * _LINE
        self._never = self._stop + 1  # (a flag never set: the caller's wait does not stop early)
        self._posted = [0] * helpers
        # per helper, the job posted and not yet taken: (its number, the call); whoever takes it
        # out first (``dict.pop``, one step under the GIL), the helper or the caller, runs it
        self._pending: dict[int, tuple[int, tuple[Callable[..., Any], tuple]]] = {}
        self._results: list[Any] = [None] * helpers
        self._errors: list[BaseException | None] = [None] * helpers
        self._sleeping = [False] * helpers
        self._alarms = 0  # (how many times :meth:`wake` has woken sleeping helpers)
        try:
            self._affinity: set[int] | None = os.sched_getaffinity(0)
        except (OSError, AttributeError):
            self._affinity = None
        self._wake = threading.Condition()
        self._busy = threading.Lock()
        compiled = _watchers() if spin_seconds > 0 else None
        self._watch = compiled["watch"] if compiled else None
        self._publish = compiled["publish"] if compiled else None
        self._publish_watch = compiled["publish_watch"] if compiled else None
        self.rounds = _calibrated_rounds(self._watch, spin_seconds) if self._watch is not None else 0
        self.grace = int(self.rounds * GRACE_SECONDS / spin_seconds) if self.rounds else 0
        self.long_grace = int(self.rounds * LONG_GRACE_SECONDS / spin_seconds) if self.rounds else 0
        self._threads = [threading.Thread(target=self._serve, args=(i,), daemon=True, name=f"cnnlab-kernel-{i}")
                         for i in range(helpers)]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _posted_flag(i: int) -> int:
        return 2 * i * _LINE  # (where the number of the job posted to helper i is)

    @staticmethod
    def _grace_flag(i: int) -> int:
        return 2 * i * _LINE + 1  # (the grace rounds of the job posted to helper i, beside its number)

    @staticmethod
    def _done_flag(i: int) -> int:
        return (2 * i + 1) * _LINE  # (where the number of the last job helper i finished is)

    def _serve(self, i: int) -> None:
        flags, posted, done = self._flags, self._posted_flag(i), self._done_flag(i)
        seen, number = 0, None
        while True:
            # (a finished job is published by the compiled call that then watches for the next, so
            # that the helper does not hold or want the GIL as the caller returns to Python)
            if number is not None and self.rounds and self._publish_watch is not None:
                value = self._publish_watch(flags, done, number, posted, seen, self._stop, self.rounds, self.grace)
            else:
                if number is not None:
                    self._finished(i, number)
                value = self._watch(flags, posted, seen, self._stop, self.rounds, self.grace) if self.rounds else seen
            number = None
            if value == seen:
                with self._wake:
                    self._sleeping[i] = True
                    alarms = self._alarms
                    while int(flags[posted]) == seen and self._alarms == alarms:
                        self._wake.wait()
                    self._sleeping[i] = False
                value = int(flags[posted])
            seen = value
            if value < 0:  # (closed)
                return
            job = self._pending.pop(i, None)
            if job is None:  # (the caller took it: it was not taken in time)
                continue
            number, call = job
            job = None
            self._call(i, call)
            call = None  # (the job's arrays are not kept alive while this helper waits)

    def _call(self, i: int, call: tuple[Callable[..., Any], tuple]) -> None:
        try:
            self._results[i] = call[0](*call[1])
        except BaseException as exc:  # (raised by run, on the caller's thread)
            self._errors[i] = exc

    def _finished(self, i: int, number: int) -> None:
        flags, done = self._flags, self._done_flag(i)
        if self._publish is not None:
            self._publish(flags, done, number)
        else:
            with self._wake:
                flags[done] = number
                self._wake.notify_all()

    def _post(self, i: int, call: tuple[Callable[..., Any], tuple], long: bool = False) -> None:
        self._errors[i], self._results[i] = None, None
        self._posted[i] += 1
        self._pending[i] = (self._posted[i], call)
        self._flags[self._stop] = 0
        self._flags[self._grace_flag(i)] = self.long_grace if long else 0  # (read after the number below)
        self._flags[self._posted_flag(i)] = self._posted[i]
        if self._sleeping[i]:
            self._away_from_caller(i)
            with self._wake:
                self._wake.notify_all()

    def _away_from_caller(self, i: int) -> None:
        """Let helper ``i``, about to be woken, run on any of the process's CPUs but the caller's
        (see the module's notes); nothing where the CPUs cannot be read or set."""
        cpu = _current_cpu()
        ident = self._threads[i].native_id
        others = self._affinity - {cpu} if self._affinity is not None and cpu is not None else None
        if not others or ident is None:
            return
        try:
            os.sched_setaffinity(ident, others)
        except (OSError, AttributeError, ValueError):
            pass

    def _wait(self, i: int) -> None:
        flags, done, number = self._flags, self._done_flag(i), self._posted[i]
        if self._watch is None:
            with self._wake:
                while int(flags[done]) != number:
                    self._wake.wait()
            return
        # (back in Python every 100,000 rounds: signals are handled, and other threads get the GIL)
        while self._watch(flags, done, number - 1, self._never, 100_000, 0) != number:
            os.sched_yield() if hasattr(os, "sched_yield") else time.sleep(0)

    def run(self, calls: Sequence[tuple[Callable[..., Any], tuple]], long: bool = False) -> list[Any] | None:
        """Call ``calls[0]`` (a function and its arguments) on this thread and ``calls[1:]`` on
        helpers, at once; their results once all have returned, or None (nothing called) when
        the team is busy.  The first error raised by any of them is raised here, after all have
        ended.  ``long``: the calls are long (a large kernel's shares), so a watching helper that
        sees its job waits :data:`LONG_GRACE_SECONDS` before it asks for the GIL."""
        if len(calls) - 1 > self.helpers:
            raise ValueError(f"Team.run: {len(calls) - 1} calls for {self.helpers} helper threads")
        if not self._busy.acquire(blocking=False):
            return None
        try:
            for i in range(len(calls) - 1):
                self._wait(i)  # (a job left running by an interrupted run)
                self._post(i, calls[i + 1], long)
            error: BaseException | None = None
            try:
                first = calls[0][0](*calls[0][1])
            except BaseException as exc:
                error, first = exc, None
            for i in range(len(calls) - 1):
                self._take_back(i)
                self._wait(i)
            errors = [error, *self._errors[:len(calls) - 1]]
            found = next((e for e in errors if e is not None), None)
            results = [first, *self._results[:len(calls) - 1]]
            self._results[:len(calls) - 1] = [None] * (len(calls) - 1)
            self._errors[:len(calls) - 1] = [None] * (len(calls) - 1)
            if found is not None:
                raise found
            return results
        finally:
            self._busy.release()

    def _take_back(self, i: int) -> None:
        """Run helper ``i``'s job here if the helper has not taken it yet (see the module's notes)."""
        job = self._pending.pop(i, None)
        if job is not None:
            number, call = job
            job = None
            self._call(i, call)
            call = None
            self._finished(i, number)

    def wake(self) -> None:
        """Wake the sleeping helpers, to watch for the next job (for :data:`SPIN_SECONDS`) from
        now on: a caller that knows a large job is coming calls this before the work that
        prepares it, so that the helper's 25-60 us of waking (and its move to another CPU, see
        the module's notes) overlap that work instead of delaying the job.  Nothing where no
        helper sleeps, where the helpers only sleep (no compiled watch), or while the team is
        busy."""
        if not self.rounds or not any(self._sleeping) or not self._busy.acquire(blocking=False):
            return
        try:
            for i in range(self.helpers):
                if self._sleeping[i]:
                    self._away_from_caller(i)
            self._flags[self._stop] = 0
            with self._wake:
                self._alarms += 1
                self._wake.notify_all()
        finally:
            self._busy.release()

    def park(self) -> None:
        """Send watching helpers to sleep now (before work that needs the other cores, such as a
        matrix product on several BLAS threads); the next :meth:`run` wakes them."""
        self._flags[self._stop] = 1

    def close(self) -> None:
        """End the helper threads (after the jobs they are running)."""
        with self._busy:
            for i in range(self.helpers):
                self._wait(i)
                self._posted[i] = -1
                self._flags[self._posted_flag(i)] = -1
            with self._wake:
                self._wake.notify_all()
        for thread in self._threads:
            thread.join()
