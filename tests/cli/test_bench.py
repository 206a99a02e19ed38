"""``cnnlab bench``: the command line reaches the side-by-side benchmark (timings are never asserted)."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

from cnnlab.cli import main


def test_bench_reports_the_machine_and_the_selected_workloads_as_json(capsys):
    code = main(["bench", "--only", "no-such-workload", "--no-training", "--repeats", "1", "--json"])
    out, err = capsys.readouterr()
    try:
        import torch  # noqa: F401
    except ImportError:  # without the peer: one line, exit 2
        assert code == 2 and err.count("\n") == 1 and "torch" in err
        return
    assert code == 0, err
    result = json.loads(out)
    assert result["workloads"] == [] and result["training"] == []
    assert result["machine"]["threads"] >= 1 and result["machine"]["gemm_gflops"] > 0


def test_bench_refuses_bad_options_in_one_line(capsys):
    code = main(["bench", "--repeats", "0"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1
    assert re.search(r"--repeats: expected a whole number >= 1, got 0", err), err


def test_bench_models_are_the_same_in_both_libraries():
    """The training-step workloads compare identical architectures: same parameter shapes, in order."""
    import pytest

    torch = pytest.importorskip("torch")
    from cnnlab.bench._training import MODELS, _torch_model
    from cnnlab.training import models

    for name, *_ in MODELS:
        ours = [tuple(p.shape) for p in models.build_model(name).parameters()]
        theirs = [tuple(p.shape) for p in _torch_model(torch, name).parameters()]
        assert ours == theirs, name


def test_memory_child_measures_a_cnnlab_step_alone():
    from cnnlab.bench import _memory

    if not _memory.available():
        import pytest

        pytest.skip("needs Linux /proc to reset the peak resident memory")
    result = _memory.measure_in_child("mnist1d-cnn", "cnnlab", threads=1, steps=1, timed=1)
    assert result is not None
    assert result["step_s"] > 0 and result["peak_growth_mib"] >= 0


def test_the_ceiling_is_the_fastest_product_and_every_share_is_taken_of_it(monkeypatch):
    """The GEMM ceiling is the best of its timed products (a slow round on a shared machine is not
    the machine's rate), read before and after the layers, and each row's share divides that."""
    import pytest

    pytest.importorskip("torch")
    from cnnlab.bench import _runner

    times = iter([0.5, 0.25, 1.0] + [2.0] * 50)  # seconds per product, in the order timed
    monkeypatch.setattr(_runner, "_time", lambda fn, repeats: [next(times) for _ in range(repeats)])
    assert _runner.gemm_rate(size=10, repeats=3) == pytest.approx(2 * 10**3 / 0.25 / 1e9)

    readings = iter([100.0, 160.0])
    monkeypatch.setattr(_runner, "gemm_rate", lambda: next(readings))
    monkeypatch.setattr(_runner, "_interleaved", lambda fns, repeats, warmup=1: {k: [0.04, 0.01, 0.02] for k in fns})
    result = _runner.run(repeats=3, only="k1 s1 p0 fwd+bwd", training=False, progress=False)
    assert result["machine"]["gemm_gflops"] == 160.0
    (row,) = result["workloads"]
    assert row["cnnlab_s"] == 0.02 and row["cnnlab_best_s"] == 0.01  # the median, and the fastest round
    assert row["ceiling_share"] == pytest.approx(row["gflops"] / 160.0)
    assert row["best_ceiling_share"] == pytest.approx(2 * row["gflops"] / 160.0)  # the fastest round's rate


def test_alone_children_alternate_and_combine_by_one_rule(monkeypatch):
    from cnnlab.bench import _memory

    calls = []
    readings = {
        "cnnlab": [{"step_s": 0.010, "peak_growth_mib": 12.0}, {"step_s": 0.014, "peak_growth_mib": 11.0},
                   {"step_s": 0.011, "peak_growth_mib": 13.0}],
        "torch": [{"step_s": 0.020, "peak_growth_mib": 9.0}, None, {"step_s": 0.030, "peak_growth_mib": 8.5}],
    }

    def child(model, library, threads):
        calls.append((model, library, threads))
        return readings[library][sum(1 for c in calls if c[1] == library) - 1]

    monkeypatch.setattr(_memory, "measure_in_child", child)
    ours, theirs = _memory.alternating_children("lenet5", 2, 3)
    assert [c[1] for c in calls] == ["cnnlab", "torch"] * 3
    assert all(c[0] == "lenet5" and c[2] == 2 for c in calls)
    assert ours == {"step_s": 0.011, "peak_growth_mib": 11.0}  # the median step, the least peak
    assert theirs == {"step_s": 0.025, "peak_growth_mib": 8.5}  # a failed child is left out


def test_a_library_whose_alone_children_all_fail_reads_nothing(monkeypatch):
    from cnnlab.bench import _memory

    monkeypatch.setattr(_memory, "measure_in_child",
                        lambda model, library, threads: None if library == "torch" else {"step_s": 0.5})
    ours, theirs = _memory.alternating_children("convnet", 1, 2)
    assert ours == {"step_s": 0.5, "peak_growth_mib": None}
    assert theirs == {}


def test_every_timed_call_starts_after_the_process_settles(monkeypatch):
    """A contender's threads may still be spinning when its call returns (libgomp's do): the
    next contender's timing starts only after :func:`settle`, every round, for each contender."""
    from cnnlab.bench import _runner

    events = []
    monkeypatch.setattr(_runner, "settle", lambda: events.append("settle"))
    times = _runner._interleaved({"a": lambda: events.append("a"), "b": lambda: events.append("b")}, 2, warmup=1)
    assert events == ["a", "b"] + ["settle", "a", "settle", "b"] + ["settle", "b", "settle", "a"]
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2}


def test_each_round_starts_with_another_contender(monkeypatch):
    """Round ``r`` runs the contenders from the ``r``-th on (each follows every other in turn), and
    each contender's times are its own calls' in the order of the rounds."""
    from cnnlab.bench import _runner

    monkeypatch.setattr(_runner, "settle", lambda: None)
    order = []
    clock = iter(range(100))
    monkeypatch.setattr(_runner, "_time", lambda fn, repeats: [fn() or next(clock)])
    fns = {k: (lambda k=k: order.append(k)) for k in "abc"}
    times = _runner._interleaved(fns, 4, warmup=0)
    assert order == list("abc" "bca" "cab" "abc")
    assert times == {"a": [0, 5, 7, 9], "b": [1, 3, 8, 10], "c": [2, 4, 6, 11]}


def test_each_row_has_the_ceiling_of_its_own_rounds(monkeypatch):
    """A GEMM product is timed among each workload's contenders (not a peer), and the row's
    rounds share is its median rate over that product's median rate."""
    import pytest

    pytest.importorskip("torch")
    from cnnlab.bench import _runner

    monkeypatch.setattr(_runner, "gemm_rate", lambda: 100.0)
    monkeypatch.setattr(_runner, "gemm_probe", lambda: ((lambda: None), 8e9))
    seen = []

    def rounds(fns, repeats, warmup=1):
        seen.append(list(fns))
        return {k: ([0.04, 0.1, 0.05] if k == _runner.PROBE else [0.04, 0.01, 0.02]) for k in fns}

    monkeypatch.setattr(_runner, "_interleaved", rounds)
    result = _runner.run(repeats=3, only="k1 s1 p0 fwd+bwd", training=False, progress=False)
    assert seen == [["cnnlab", "torch", _runner.PROBE]]
    (row,) = result["workloads"]
    assert set(row["peers_s"]) == {"torch"} and row["best_peer"] == "torch"
    assert row["rounds_ceiling_gflops"] == pytest.approx(8e9 / 0.05 / 1e9)
    assert row["rounds_ceiling_share"] == pytest.approx(row["gflops"] / 160.0)


def test_settle_waits_for_a_busy_thread_to_stop():
    import threading

    from cnnlab.bench._runner import settle

    stop_after = 0.2

    def spin():  # CPU time in another thread, as a spinning OpenMP worker's
        import time

        end = time.thread_time() + stop_after
        while time.thread_time() < end:
            pass

    worker = threading.Thread(target=spin)
    worker.start()
    waited = settle(limit=30.0)
    alive = worker.is_alive()
    worker.join()
    assert not alive and waited < 30.0
    assert settle(limit=30.0) < 30.0  # a quiet process returns at once (not at the limit)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads' states from /proc")
def test_settle_waits_for_a_running_thread_whose_cpu_time_is_not_yet_counted(monkeypatch):
    """A thread running outside the GIL (one ``memset`` of 512 MB through ctypes, page faults
    included: some hundred ms in the running state) holds :func:`settle` back by its state alone:
    the process's CPU time is made to stand still, as the kernel's accounting does for a thread
    spinning on another core between its ticks."""
    import ctypes
    import threading

    from cnnlab.bench import _runner

    size = 512 << 20
    buffer = np.empty(size, np.uint8)  # (not touched yet: its pages fault in inside the call)
    ready = threading.Event()

    def fill():
        ready.set()
        ctypes.memset(buffer.ctypes.data, 1, size)

    monkeypatch.setattr(_runner.time, "process_time", lambda: 0.0)
    worker = threading.Thread(target=fill)
    worker.start()
    ready.wait()
    waited = _runner.settle(limit=30.0)
    alive = worker.is_alive()
    worker.join()
    assert not alive and waited < 30.0
    assert buffer[size // 2] == 1
    assert not _runner.others_running() and _runner.settle(limit=30.0) < 30.0


def test_memory_child_times_enough_steps(monkeypatch):
    """A child times at least ``timed`` steps and goes on until they have taken ``seconds`` (a
    fake clock: every step reads 0.125 s), at most MAX_TIMED_STEPS; the median is reported."""
    import itertools
    import time

    import pytest

    from cnnlab.bench import _memory, _training
    from cnnlab.functional import _backend

    if not _memory.available():
        pytest.skip("needs Linux /proc to reset the peak resident memory")
    monkeypatch.setattr(_backend, "set_num_threads", lambda n: None)  # (this process's threads stay)
    ticks = itertools.count()
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks) * 0.125)
    calls = []
    monkeypatch.setattr(_training, "cnnlab_step", lambda model, batch=None: lambda: calls.append(batch))
    for timed, seconds, want in ((3, 1.0, 8), (12, 1.0, 12), (1, 10**6, _memory.MAX_TIMED_STEPS)):
        calls.clear()
        result = _memory._child("lenet5", "cnnlab", 1, 2, timed, seconds)
        # two warm-up steps at batch 2, two for the memory, then the timed ones
        assert calls[:2] == [2, 2] and len(calls) == 4 + want
        assert result["step_s"] == 0.125
