"""``_backend.run_jobs``: how the compiled kernels share their jobs among the threads.

Every job runs exactly once, the runs are consecutive and in order, each thread gets its own
index (the kernels pick their scratch buffers by it), small or single-thread calls stay on the
calling thread, and an error in any run reaches the caller only once every run has ended.
"""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import numpy as np
import pytest

from cnnlab.functional import _backend
from tests.functional.spies import LateHelpers


class Recorder:
    """A stand-in kernel (``run_jobs`` takes any callable): notes each run's jobs, thread index
    and the OS thread it ran on, and fills ``out[job] = thread index``."""

    def __init__(self, helper_first: bool = False) -> None:
        self.runs: list[tuple[int, int, int, int]] = []
        self.lock = threading.Lock()
        # with helper_first, the caller's first run waits (at most 30 s) until a helper's has
        # begun: no job is left for the caller to take back from a helper slow to wake
        self.helper_began = threading.Event()
        self.helper_first = helper_first

    def __call__(self, out: np.ndarray, first: int, last: int, thread: int) -> None:
        if thread:
            self.helper_began.set()
        elif self.helper_first and not self.runs:
            self.helper_began.wait(30)
        out[first:last] = thread
        with self.lock:
            self.runs.append((first, last, thread, threading.get_ident()))


@pytest.fixture
def threads():
    """Set the thread count for one test, and restore it."""
    previous = _backend._state["threads"]

    def use(n: int) -> None:
        _backend._state["threads"] = n

    yield use
    _backend._state["threads"] = previous


def _max_threads() -> int:
    numba = pytest.importorskip("numba")
    return int(numba.config.NUMBA_NUM_THREADS)


@pytest.fixture
def two_threads(threads):
    """Two threads for one test (skipped where Numba has fewer)."""
    if _max_threads() < 2:
        pytest.skip("needs Numba configured for 2 threads or more")
    threads(2)


@pytest.mark.parametrize("jobs", [2, 3, 7, 1000])
def test_jobs_are_split_in_consecutive_runs_one_per_thread(two_threads, jobs):
    kernel, out = Recorder(helper_first=True), np.full(jobs, -1)
    _backend.run_jobs(kernel, jobs, out, work=_backend.PARALLEL_MIN_WORK)
    runs = sorted(kernel.runs)
    assert [r[2] for r in runs] == [0, 1]  # thread indices, in the order of the runs
    assert runs[0][0] == 0 and runs[0][1] == runs[1][0] and runs[1][1] == jobs  # consecutive, all jobs
    assert abs((runs[0][1] - runs[0][0]) - (runs[1][1] - runs[1][0])) <= 1  # as equal as they can be
    assert runs[0][3] == threading.get_ident() != runs[1][3]  # the caller runs the first one itself
    np.testing.assert_array_equal(out, np.repeat([0, 1], [runs[0][1], jobs - runs[0][1]]))


def test_fewer_jobs_than_threads_give_one_run_per_job(threads):
    if _max_threads() < 2:
        pytest.skip("needs Numba configured for 2 threads or more")
    threads(_max_threads())
    kernel, out = Recorder(), np.full(1, -1)
    _backend.run_jobs(kernel, 1, out, work=_backend.PARALLEL_MIN_WORK)
    assert [r[:3] for r in kernel.runs] == [(0, 1, 0)]


@pytest.mark.parametrize("case", ["small work", "one thread", "no jobs"])
def test_the_calling_thread_runs_everything(threads, case):
    _max_threads()
    threads(1 if case == "one thread" else 2)
    jobs = 0 if case == "no jobs" else 50
    work = _backend.PARALLEL_MIN_WORK - 1 if case == "small work" else _backend.PARALLEL_MIN_WORK
    kernel, out = Recorder(), np.full(jobs, -1)
    _backend.run_jobs(kernel, jobs, out, work=work)
    assert [r[:3] for r in kernel.runs] == [(0, jobs, 0)]
    assert kernel.runs[0][3] == threading.get_ident()
    assert (out == 0).all()


def test_a_kernel_with_its_own_threshold_splits_only_above_it(two_threads):
    below, at = Recorder(), Recorder()
    _backend.run_jobs(below, 4, np.zeros(4), work=999, min_work=1000)
    _backend.run_jobs(at, 4, np.zeros(4), work=1000, min_work=1000)  # (far below PARALLEL_MIN_WORK)
    assert [r[:3] for r in below.runs] == [(0, 4, 0)]
    assert sorted(r[:3] for r in at.runs) == [(0, 2, 0), (2, 4, 1)]


@pytest.mark.parametrize("failing", [0, 1])
def test_an_error_is_raised_after_every_run_ended(two_threads, failing):
    ended = []

    def kernel(first: int, last: int, thread: int) -> None:
        if thread == failing:
            raise ValueError(f"run {thread} failed")
        time.sleep(0.05)  # the other run is still going when the error happens
        ended.append(thread)

    with pytest.raises(ValueError, match=f"run {failing} failed"):
        _backend.run_jobs(kernel, 4, work=_backend.PARALLEL_MIN_WORK)
    assert ended == [1 - failing]


def test_a_forked_process_gets_a_team_of_its_own(two_threads, monkeypatch):
    """A fork keeps no threads: a team made by another process is replaced, not used."""
    _backend.run_jobs(Recorder(), 2, np.zeros(2), work=_backend.PARALLEL_MIN_WORK)
    before = _backend._state["team"]
    monkeypatch.setattr(before, "pid", -1)  # as if made in the parent
    kernel = Recorder(helper_first=True)
    _backend.run_jobs(kernel, 2, np.zeros(2), work=_backend.PARALLEL_MIN_WORK)
    assert _backend._state["team"] is not before
    assert sorted(r[:3] for r in kernel.runs) == [(0, 1, 0), (1, 2, 1)]
    assert len({r[3] for r in kernel.runs}) == 2


def test_a_compiled_kernel_on_two_threads_matches_one(threads):
    """A real job kernel (ReLU's, flat and unsigned-indexed) gives the same values whichever way
    its jobs are shared."""
    if not _backend.numba_available():
        pytest.skip("needs numba")
    from cnnlab.functional import _numba_kernels

    x = np.random.default_rng(0).standard_normal(_backend.PARALLEL_MIN_WORK).astype(np.float32)
    x[::7] = np.nan
    results = []
    for n in (1, 2):
        threads(n)
        results.append(_numba_kernels.relu(x))
    np.testing.assert_array_equal(results[0], np.maximum(x, 0))
    np.testing.assert_array_equal(results[1], np.maximum(x, 0))


@pytest.mark.parametrize("jobs, n", [(2, 2), (3, 2), (262, 2), (1000, 2), (1000, 4), (5, 4)])
def test_guided_chunks_cover_every_job_once_and_shrink(jobs, n):
    bounds = _backend._guided_bounds(jobs, n)
    assert bounds[0] == 0 and bounds[-1] == jobs
    sizes = np.diff(bounds)
    assert (sizes >= 1).all() and (np.diff(sizes) <= 0).all()  # never empty, never growing
    assert sizes[0] == -(-jobs // (2 * n))  # the first: a 2n-th of the jobs
    smallest = max(1, -(-jobs * 3 // 100))
    assert (sizes[:-1] >= smallest).all()  # only the last may be smaller than MIN_CHUNK_SHARE's


_BALANCED = max(_backend.PARALLEL_MIN_WORK, _backend.BALANCED_MIN_WORK)  # (work enough for chunks)


@pytest.mark.parametrize("jobs", [3, 1000])
def test_balanced_runs_of_little_work_split_the_jobs_as_plain_ones(two_threads, jobs):
    kernel, out = Recorder(), np.full(jobs, -1)
    work = max(_backend.PARALLEL_MIN_WORK, _backend.BALANCED_MIN_WORK / 2)
    _backend.run_jobs(kernel, jobs, out, work=work, balanced=True)
    assert sorted((first, last, index) for first, last, index, _ in kernel.runs) == [(0, jobs // 2, 0),
                                                                                     (jobs // 2, jobs, 1)]
    assert (out[: jobs // 2] == 0).all() and (out[jobs // 2:] == 1).all()


@pytest.mark.parametrize("jobs", [2, 3, 7, 1000])
def test_balanced_runs_give_every_job_once_to_threads_that_take_chunks(two_threads, jobs):
    kernel, out = Recorder(helper_first=True), np.full(jobs, -1)
    _backend.run_jobs(kernel, jobs, out, work=_BALANCED, balanced=True)
    runs = sorted(kernel.runs)
    assert [(first, last) for first, last, *_ in runs] == list(pairwise(_backend._guided_bounds(jobs, 2)))
    for first, last, index, ident in runs:  # each chunk filled by the thread that ran it, with its index
        assert (out[first:last] == index).all()
        assert (ident == threading.get_ident()) == (index == 0)
    assert (out >= 0).all()


def test_a_slow_thread_takes_fewer_chunks(two_threads):
    """The thread that is held up (here the caller, in the first chunk it takes) leaves the
    remaining chunks to the other thread."""
    others_done = threading.Event()
    chunks = _backend._guided_bounds(100, 2)

    class Slow(Recorder):
        def __call__(self, out, first, last, thread):
            super().__call__(out, first, last, thread)
            if thread == 0:
                others_done.wait(timeout=30)
            elif sum(r[2] == 1 for r in self.runs) == len(chunks) - 2:  # all chunks but the caller's
                others_done.set()

    kernel, out = Slow(), np.full(100, -1)
    _backend.run_jobs(kernel, 100, out, work=_BALANCED, balanced=True)
    assert sorted(r[2] for r in kernel.runs) == [0] + [1] * (len(chunks) - 2)
    assert (out >= 0).all()


def test_balanced_error_is_raised_after_the_other_thread_has_ended(two_threads):
    ended = []

    def kernel(first, last, thread):
        if thread == 0:
            raise ValueError("chunk failed")
        time.sleep(0.01)
        ended.append(last)

    with pytest.raises(ValueError, match="chunk failed"):
        _backend.run_jobs(kernel, 10, work=_BALANCED, balanced=True)
    assert ended and ended[-1] == 10  # the helper took every chunk left, and ended, before the raise


@pytest.mark.parametrize("jobs, tail", [(20, 6), (7, 7), (5, 1)])
def test_tail_jobs_go_one_at_a_time_after_each_threads_share(two_threads, jobs, tail):
    """With ``tail``, each thread first runs its consecutive share of the jobs before the last
    ``tail`` ones (one run each, as a plain split), then those, one job per run: every job once."""
    kernel, out = Recorder(helper_first=True), np.full(jobs, -1)
    _backend.run_jobs(kernel, jobs, out, work=_backend.PARALLEL_MIN_WORK, tail=tail)
    head = jobs - tail
    runs = sorted(kernel.runs)
    shares = [r for r in runs if r[0] < head]
    assert [(first, last, index) for first, last, index, _ in shares] == (
        [(0, head // 2, 0), (head // 2, head, 1)] if head >= 2 else [(0, head, 0)][:head])
    assert [(first, last) for first, last, *_ in runs if first >= head] == [(j, j + 1) for j in range(head, jobs)]
    for first, last, index, ident in runs:
        assert (out[first:last] == index).all()
        assert (ident == threading.get_ident()) == (index == 0)
    assert (out >= 0).all()


def test_a_slow_thread_leaves_the_tail_to_the_other(two_threads):
    """The caller, held up in its share, finds every tail job taken by the other thread."""
    tail_done = threading.Event()

    class Slow(Recorder):
        def __call__(self, out, first, last, thread):
            super().__call__(out, first, last, thread)
            if thread == 0 and first == 0:
                tail_done.wait(timeout=30)
            elif sum(r[0] >= 10 for r in self.runs) == 5:
                tail_done.set()

    kernel, out = Slow(), np.full(15, -1)
    _backend.run_jobs(kernel, 15, out, work=_backend.PARALLEL_MIN_WORK, tail=5)
    assert (out[:5] == 0).all() and (out[5:] == 1).all()


@pytest.mark.parametrize("mode", ["plain", "balanced", "tail"])
def test_shares_taken_back_from_late_helpers_run_once_with_their_own_index(two_threads, monkeypatch, mode):
    """When no helper has taken its share by the time the caller's own has returned, the caller
    runs it (``_team.Team._take_back``): every job still runs exactly once, each run with the
    index of the share it belongs to (the kernels' scratch rows), all on the calling thread."""
    team = _backend._team(1)
    monkeypatch.setattr(team, "_pending", LateHelpers())
    jobs = 40
    kernel, out = Recorder(), np.full(jobs, -1)
    options = {"plain": {"work": _backend.PARALLEL_MIN_WORK}, "balanced": {"work": _BALANCED, "balanced": True},
               "tail": {"work": _backend.PARALLEL_MIN_WORK, "tail": 5}}[mode]
    _backend.run_jobs(kernel, jobs, out, **options)
    runs = sorted(kernel.runs)
    assert [first for first, *_ in runs] == sorted({first for first, *_ in runs})  # (no job twice)
    assert sum(last - first for first, last, *_ in runs) == jobs and (out >= 0).all()
    assert {ident for *_, ident in runs} == {threading.get_ident()}
    if mode == "plain":
        assert [(first, last, index) for first, last, index, _ in runs] == [(0, 20, 0), (20, 40, 1)]
    if mode == "tail":  # the shares of the head keep their indices; the tail jobs went one at a time
        assert [(first, last, index) for first, last, index, _ in runs if first < 35] == [(0, 17, 0), (17, 35, 1)]
        assert [(first, last) for first, last, *_ in runs if first >= 35] == [(j, j + 1) for j in range(35, 40)]
    for first, last, index, _ in runs:
        assert (out[first:last] == index).all()
