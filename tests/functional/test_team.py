"""The kernels' helper threads (``_team.Team``): each call runs once, on its own thread, and the
hand-over between watching, sleeping and parked helpers loses no job.

These run with and without Numba: without it (or with ``spin_seconds=0``) the helpers only sleep
and wake; with it they watch a flag between jobs.  A test that would hang on a lost job runs its
calls on a thread of its own and fails when that thread has not ended after a minute.
"""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

from cnnlab.functional import _backend, _team
from tests.functional.spies import LateHelpers

SPINS = [0.0, 0.002, 600.0]  # never watch; the library's setting; watch for longer than any test


def _ident(tag: str) -> tuple[str, int]:
    return tag, threading.get_ident()


def _finishes(body, seconds: float = 60.0) -> None:
    """Run ``body`` on a thread of its own; fail if it has not ended within ``seconds``."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            body()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "a job was lost: the team never finished"
    if failure:
        raise failure[0]


def _run(team, calls) -> tuple[list | None, int]:
    """``team.run(calls)`` on a thread of its own (failing, not hanging, on a lost job): its
    results and that thread's id."""
    got: list = []
    _finishes(lambda: got.extend([team.run(calls), threading.get_ident()]))
    return got[0], got[1]


def _run_shared(team, tags: str) -> tuple[list, int]:
    """``_run`` of one ``_ident`` call per tag, the first (the caller's own) lasting until every
    other has started: so each is taken by a helper, not taken back by the caller."""
    started = [threading.Event() for _ in tags]

    def call(k: int) -> tuple[str, int]:
        started[k].set()
        if k == 0:
            for event in started[1:]:
                event.wait(30)
        return _ident(tags[k])

    return _run(team, [(call, (k,)) for k in range(len(tags))])


@pytest.fixture(params=SPINS, ids=["sleep", "short watch", "long watch"])
def team(request):
    made = _team.Team(2, request.param)
    yield made
    _finishes(made.close)


def test_each_call_runs_once_on_its_own_thread_and_results_come_back_in_order(team):
    results, caller = _run_shared(team, "abc")
    assert [tag for tag, _ in results] == ["a", "b", "c"]
    idents = [ident for _, ident in results]
    assert idents[0] == caller  # the caller runs the first call itself
    assert len(set(idents)) == 3


def test_fewer_calls_than_helpers_and_a_call_alone(team):
    results, caller = _run(team, [(_ident, ("a",))])
    assert results == [("a", caller)]
    results, caller = _run_shared(team, "ab")
    assert [tag for tag, _ in results] == ["a", "b"] and results[1][1] != caller


def test_a_job_no_helper_has_taken_runs_once_on_the_caller(team):
    counts = [0, 0, 0]

    def call(k: int) -> tuple[int, int]:
        counts[k] += 1
        return k, threading.get_ident()

    team._pending = LateHelpers()
    results, caller = _run(team, [(call, (0,)), (call, (1,)), (call, (2,))])
    assert results == [(0, caller), (1, caller), (2, caller)]
    team._pending = {}
    # each helper looked for its job and found none: none of them ran one, and the next run's
    # jobs are taken by the helpers again, each once
    for _ in range(20):
        results, caller = _run(team, [(call, (0,)), (call, (1,)), (call, (2,))])
        assert [k for k, _ in results] == [0, 1, 2]
    assert counts == [21, 21, 21]


def test_more_calls_than_helpers_is_an_error(team):
    with pytest.raises(ValueError, match="4 calls for 2 helper threads"):
        team.run([(_ident, ("x",))] * 5)


@pytest.mark.parametrize("failing", [0, 1, 2])
def test_an_error_is_raised_once_every_call_has_ended(team, failing):
    ended = []
    release = threading.Event()

    def call(i: int) -> None:
        if i == failing:
            raise KeyError(f"call {i}")
        release.wait(0.05)  # still running when the other call fails
        ended.append(i)

    with pytest.raises(KeyError, match=f"call {failing}"):
        _run(team, [(call, (i,)) for i in range(3)])
    assert sorted(ended) == sorted({0, 1, 2} - {failing})
    # the team is usable afterwards, with no error left over
    assert [tag for tag, _ in _run(team, [(_ident, ("a",)), (_ident, ("b",))])[0]] == ["a", "b"]


def test_thousands_of_hand_overs_with_parking_lose_no_job(team):
    counts = np.zeros(3, np.int64)

    def add(i: int) -> int:
        counts[i] += 1
        return i

    def body() -> None:
        for k in range(3000):
            assert team.run([(add, (0,)), (add, (1,)), (add, (2,))]) == [0, 1, 2]
            if k % 7 == 0:
                team.park()  # the next run wakes the helpers that went to sleep
            if k % 500 == 0:
                threading.Event().wait(0.01)  # long enough for a short watch to end

    _finishes(body)
    np.testing.assert_array_equal(counts, [3000, 3000, 3000])


def test_a_parked_helper_sleeps_and_wakes_for_the_next_job():
    team = _team.Team(1, 600.0)
    try:
        _run(team, [(_ident, ("a",)), (_ident, ("b",))])
        team.park()
        _finishes(lambda: _wait_for(lambda: team._sleeping[0]))
        (first, second), caller = _run_shared(team, "ab")
        assert first == ("a", caller) and second[0] == "b" and second[1] != caller  # (woke, took it)
        assert not team._sleeping[0]
    finally:
        _finishes(team.close)


def _wait_for(condition) -> None:
    while not condition():
        threading.Event().wait(0.001)


def test_a_finished_job_keeps_nothing_alive(team):
    """A helper that waits for its next job holds no reference to the last one's arrays (they
    would stay in memory until then: a training step's peak grew by a tenth)."""
    a, b = np.ones(1000), np.ones(1000)
    refs = [weakref.ref(a), weakref.ref(b)]
    results, _ = _run(team, [(np.sum, (a,)), (np.sum, (b,)), (np.sum, (b,))])
    assert results == [1000.0, 1000.0, 1000.0]
    del a, b, results
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_a_busy_team_runs_nothing_and_says_so(team):
    inner = []

    def nested() -> None:  # a call made from inside one of the team's jobs
        inner.append(team.run([(_ident, ("x",)), (_ident, ("y",))]))

    _run(team, [(nested, ()), (_ident, ("b",))])
    assert inner == [None]


def test_run_jobs_runs_on_the_calling_thread_while_the_team_is_busy(monkeypatch):
    numba = pytest.importorskip("numba")
    if not _backend.numba_available() or numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs Numba with 2 threads or more")
    monkeypatch.setitem(_backend._state, "threads", 2)
    runs = []

    def kernel(first: int, last: int, thread: int) -> None:
        runs.append((first, last, thread, threading.get_ident()))

    def job() -> None:  # a kernel call from inside a job: the team's lock is held
        _backend.run_jobs(kernel, 10, work=_backend.PARALLEL_MIN_WORK)

    _, caller = _run(_backend._team(1), [(job, ()), (_ident, ("b",))])
    assert runs == [(0, 10, 0, caller)]


def test_close_ends_the_threads():
    team = _team.Team(2, 600.0)
    _run(team, [(_ident, ("a",)), (_ident, ("b",)), (_ident, ("c",))])
    threads = list(team._threads)
    _finishes(team.close)
    assert not any(t.is_alive() for t in threads)


def test_watch_rounds_are_calibrated_to_the_spin_time():
    if _team._watchers() is None:
        pytest.skip("needs numba")
    watch = _team._watchers()["watch"]
    short, longer = _team._calibrated_rounds(watch, 1e-4), _team._calibrated_rounds(watch, 1e-2)
    assert 1 <= short < longer


def test_the_watch_loops_are_compiled_before_any_job(monkeypatch):
    """Made afresh, the compiled loops each already hold the one signature the team calls them
    with, and a run whose jobs the caller takes back (``publish``) adds none: nothing is compiled
    in the middle of a run (``publish`` was, on the first job a caller took back, 100 ms into a
    training step)."""
    if _team._watchers() is None:
        pytest.skip("needs numba")
    monkeypatch.setattr(_team, "_compiled", {})
    made = _team._watchers()
    for name in ("watch", "publish", "publish_watch"):
        assert len(made[name].signatures) == 1, name
    team = _team.Team(2)
    try:
        team._pending = LateHelpers()
        results, caller = _run(team, [(_ident, ("a",)), (_ident, ("b",)), (_ident, ("c",))])
        assert [ident for _, ident in results] == [caller] * 3  # (every job taken back)
        team._pending = {}
        results, caller = _run_shared(team, "ab")
        assert results[1][1] != caller
        for name in ("watch", "publish", "publish_watch"):
            assert len(made[name].signatures) == 1, name
    finally:
        _finishes(team.close)


def test_watch_returns_what_it_sees_after_its_grace_rounds():
    """A job seen is returned after ``grace`` more rounds (the helper's wait for the caller to let
    go of the GIL), whatever that number; a stop flag still ends the watch; a team's grace is
    GRACE_SECONDS of its calibrated rounds."""
    if _team._watchers() is None:
        pytest.skip("needs numba")
    watch = _team._watchers()["watch"]
    flags = np.zeros(3 * _team._LINE, np.int64)
    for grace in (0, 1, 1000):
        flags[0] = 7
        assert watch(flags, 0, 0, _team._LINE, 10, grace) == 7
        flags[0] = 0
        assert watch(flags, 0, 0, _team._LINE, 10, grace) == 0  # (nothing new in 10 rounds)
        flags[_team._LINE] = 1
        assert watch(flags, 0, 0, _team._LINE, 10**12, grace) == 0  # (stopped at once)
        flags[_team._LINE] = 0
    publish_watch = _team._watchers()["publish_watch"]
    flags[:] = 0
    flags[0] = 5  # (a job posted: the watch on flag 0 returns it at once)
    assert publish_watch(flags, 2 * _team._LINE, 4, 0, 0, _team._LINE, 10, 0) == 5
    assert flags[2 * _team._LINE] == 4  # (published before watching)
    flags[0] = 0
    assert publish_watch(flags, 2 * _team._LINE, 6, 0, 0, _team._LINE, 10, 0) == 0
    assert flags[2 * _team._LINE] == 6
    team = _team.Team(1)
    try:
        assert team.grace == int(team.rounds * _team.GRACE_SECONDS / _team.SPIN_SECONDS) >= 1
        (first, second), caller = _run_shared(team, "ab")
        assert first == ("a", caller) and second[0] == "b" and second[1] != caller
    finally:
        team.close()


def test_a_sleeping_helper_is_woken_off_the_callers_cpu(monkeypatch):
    """Before it wakes a sleeping helper, the caller keeps it off the caller's own CPU (the only
    one it may not use); with one CPU, or a CPU that cannot be read, nothing changes."""
    import os

    allowed = os.sched_getaffinity(0)
    team = _team.Team(1, 0.0)  # (never watches: asleep between jobs)
    try:
        _run(team, [(_ident, ("a",)), (_ident, ("b",))])
        helper = team._threads[0].native_id
        cpu = min(allowed)
        monkeypatch.setattr(_team, "_current_cpu", lambda: cpu)
        _finishes(lambda: _wait_for(lambda: team._sleeping[0]))
        results, _ = _run(team, [(_ident, ("a",)), (_ident, ("b",))])
        assert [tag for tag, _ in results] == ["a", "b"]
        assert os.sched_getaffinity(helper) == (allowed - {cpu} if len(allowed) > 1 else allowed)
        os.sched_setaffinity(helper, allowed)
        monkeypatch.setattr(_team, "_current_cpu", lambda: None)
        _finishes(lambda: _wait_for(lambda: team._sleeping[0]))
        _run(team, [(_ident, ("a",)), (_ident, ("b",))])
        assert os.sched_getaffinity(helper) == allowed
    finally:
        _finishes(team.close)


def test_current_cpu_is_one_the_thread_may_use():
    import os

    cpu = _team._current_cpu()
    assert cpu is None or cpu in os.sched_getaffinity(0)


def test_wake_sends_a_sleeping_helper_back_to_watching():
    """``wake`` rouses a helper asleep after its watch (here: parked) to watch again, without a
    job, and the next job is still run once, by it."""
    if _team._watchers() is None:
        pytest.skip("needs Numba (the helpers only sleep without its compiled watch)")
    team = _team.Team(1, 600.0)
    try:
        _run(team, [(_ident, ("a",)), (_ident, ("b",))])
        team.park()
        _finishes(lambda: _wait_for(lambda: team._sleeping[0]))
        team.wake()
        _finishes(lambda: _wait_for(lambda: not team._sleeping[0]))
        threading.Event().wait(0.05)
        assert not team._sleeping[0]  # (watching, not back asleep: the park was lifted)
        (first, second), caller = _run_shared(team, "ab")
        assert first == ("a", caller) and second[0] == "b" and second[1] != caller
    finally:
        _finishes(team.close)


def test_wake_leaves_helpers_that_only_sleep_and_a_busy_team_alone():
    team = _team.Team(1, 0.0)  # (never watches: a woken helper would only go back to sleep)
    try:
        _run(team, [(_ident, ("a",)), (_ident, ("b",))])
        _finishes(lambda: _wait_for(lambda: team._sleeping[0]))
        team.wake()
        assert team._alarms == 0
    finally:
        _finishes(team.close)
    if _team._watchers() is None:
        return
    team = _team.Team(1, 600.0)
    try:
        _run(team, [(_ident, ("a",)), (_ident, ("b",))])
        team.park()
        _finishes(lambda: _wait_for(lambda: team._sleeping[0]))
        inner = []
        _run(team, [(lambda: inner.append(team.wake()), ()), (_ident, ("b",))])
        assert team._alarms == 0  # (a wake from inside a job: the team was busy)
        team.park()
        _finishes(lambda: _wait_for(lambda: team._sleeping[0]))
        team.wake()
        assert team._alarms == 1
    finally:
        _finishes(team.close)


class _SpyTeam:
    """A stand-in for the kernels' team in ``_backend._state``: counts its wakes, notes whether each
    run was asked to be long, and runs the calls on the caller."""

    helpers = 1

    def __init__(self) -> None:
        import os

        self.pid, self.calls, self.longs = os.getpid(), 0, []

    def wake(self) -> None:
        self.calls += 1

    def run(self, calls, long=False):
        self.longs.append(long)
        return [call[0](*call[1]) for call in calls]


def test_wake_threads_wakes_the_team_only_for_parallel_work(monkeypatch):
    spy = _SpyTeam()
    monkeypatch.setitem(_backend._state, "team", spy)
    monkeypatch.setitem(_backend._state, "threads", 2)
    monkeypatch.setattr(_backend, "kernel_threads", lambda: 2)
    _backend.wake_threads(_backend.PARALLEL_MIN_WORK - 1)
    assert spy.calls == 0
    _backend.wake_threads(_backend.PARALLEL_MIN_WORK)
    assert spy.calls == 1
    monkeypatch.setattr(_backend, "kernel_threads", lambda: 1)
    _backend.wake_threads(10 * _backend.PARALLEL_MIN_WORK)
    assert spy.calls == 1  # (one thread: nobody to wake)
    spy.pid = -1  # (a team made by another process, before a fork: not this one's)
    monkeypatch.setattr(_backend, "kernel_threads", lambda: 2)
    _backend.wake_threads(10 * _backend.PARALLEL_MIN_WORK)
    assert spy.calls == 1


def test_a_convolution_wakes_the_threads_for_its_multiply_adds(monkeypatch):
    """Forward (plain and saving) and backward each announce their multiply-adds as they start:
    positions times the weight's values (N * prod(out) * O * C/groups * prod(k)), from
    ``EARLY_WAKE_MIN_WORK`` on; a smaller convolution announces nothing (its helpers wait for
    its first parallel job, if it has one)."""
    from cnnlab.functional import _conv

    assert _conv.EARLY_WAKE_MIN_WORK > _backend.PARALLEL_MIN_WORK
    seen: list[float] = []
    monkeypatch.setattr(_backend, "wake_threads", seen.append)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 9, 7)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)
    out = ((9 + 2 - 3) // 2 + 1) * ((7 + 2 - 2) // 2 + 1)
    work = 2 * out * 6 * 2 * 3 * 2
    fw, bw = _conv.saving_pair("conv2d", 2)
    for limit, announced in ((work + 1, []), (work, [work]), (0, [work])):
        monkeypatch.setattr(_conv, "EARLY_WAKE_MIN_WORK", limit)
        seen.clear()
        _conv.conv2d(x, w, None, 2, 1, 1, 2)
        assert seen == announced
        y, ctx = fw((True, True, False), x, w, None, 2, 1, 1, 2)
        bw(np.ones_like(y), ctx, (True, True, False))
        assert seen == announced * 3


def test_a_long_job_is_posted_with_the_long_grace(monkeypatch):
    """``run(..., long=True)`` posts each helper's job with :data:`LONG_GRACE_SECONDS` of rounds
    beside its number (which the watch waits before it returns a job it sees), a plain run with
    none (the watch's own grace); and ``run_jobs`` asks for it from :data:`LONG_WORK` on."""
    if _team._watchers() is None:
        pytest.skip("needs numba")
    watch = _team._watchers()["watch"]
    flags = np.zeros(3 * _team._LINE, np.int64)
    flags[0], flags[1] = 7, 1000
    assert watch(flags, 0, 0, _team._LINE, 10, 0) == 7  # (a job seen is returned, after its grace)
    team = _team.Team(1)
    try:
        assert team.long_grace == int(team.rounds * _team.LONG_GRACE_SECONDS / _team.SPIN_SECONDS) > team.grace
        (_, second), _ = _run_shared(team, "ab")
        assert second[0] == "b" and team._flags[team._grace_flag(0)] == 0
        got: list = []
        _finishes(lambda: got.append(team.run([(_ident, ("a",)), (_ident, ("b",))], long=True)))
        assert [tag for tag, _ in got[0]] == ["a", "b"] and team._flags[team._grace_flag(0)] == team.long_grace
        assert team._grace_flag(0) // _team._LINE == team._posted_flag(0) // _team._LINE  # (one cache line)
    finally:
        _finishes(team.close)

    spy = _SpyTeam()
    monkeypatch.setitem(_backend._state, "team", spy)
    monkeypatch.setattr(_backend, "kernel_threads", lambda: 2)
    kernel = lambda first, last, thread: None  # noqa: E731
    _backend.run_jobs(kernel, 4, work=_backend.LONG_WORK - 1)
    _backend.run_jobs(kernel, 4, work=_backend.LONG_WORK)
    _backend.run_jobs(kernel, 4, work=_backend.LONG_WORK, balanced=True)
    assert spy.longs == [False, True, True]
