"""SIGTERM, SIGKILL and a second Ctrl-C at seeded random moments: nothing lost, resume identical."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from faultkit import train_args

from cnnlab import checkpoint
from cnnlab.training._progress import Progress, StopFlag

pytest.importorskip("safetensors")

EPOCHS = 6


def tensors(path):
    return checkpoint.load(path)


def train(out, *extra):
    return [sys.executable, "-m", "cnnlab", *map(str, train_args(out, EPOCHS, *extra))]


def finish(out):
    """Resume (or restart, if killed before the first checkpoint) until the run is complete."""
    last = out / "last.safetensors"
    argv = (["train", "--resume", str(last), "--epochs", str(EPOCHS), "--no-progress"] if last.exists()
            else train_args(out, EPOCHS, "--overwrite"))
    proc = subprocess.run([sys.executable, "-m", "cnnlab", *map(str, argv)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_killed_at_random_moments_then_resumed_equals_uninterrupted(env, how):
    reference = env / "reference"
    subprocess.run(train(reference), check=True, capture_output=True, timeout=120)
    expected = tensors(reference / "last.safetensors")
    rng = random.Random(12 if how == "SIGTERM" else 34)
    for attempt in range(3):
        out = env / f"{how}-{attempt}"
        proc = subprocess.Popen(train(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdout.readline()  # the run has started (imports done, data loaded)
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=120)
        if how == "SIGTERM":
            assert proc.returncode in (0, 143), err
            assert "Traceback" not in err
        finish(out)
        got = tensors(out / "last.safetensors")
        assert got.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        assert not list(out.glob(".*.tmp"))


def test_second_signal_during_a_protected_save_waits_for_it():
    notes = []
    progress = Progress(False, 1, 1)
    progress.note = notes.append
    with StopFlag(progress) as stop:
        stop._handle(signal.SIGINT, None)  # first: a request
        assert stop.requested and stop.signum == signal.SIGINT
        saved = False
        with pytest.raises(KeyboardInterrupt):
            with stop.protected():
                stop._handle(signal.SIGINT, None)  # second, during the save: deferred
                saved = True
        assert saved
        stop._handle(signal.SIGINT, None)  # after the interrupt was raised: only a note
    assert any("finishing" in n for n in notes)


def test_sigterm_is_the_first_ctrl_c():
    progress = Progress(False, 1, 1)
    with StopFlag(progress) as stop:
        stop._handle(signal.SIGTERM, None)
        assert stop.requested and stop.signum == signal.SIGTERM


def test_sigterm_while_the_interpreter_exits_keeps_the_commands_exit_code(env):
    # the command has finished (its files written); a SIGTERM during the interpreter's shutdown,
    # which takes a few tenths of a second after Numba and friends were loaded, must not turn a
    # finished run into a death by signal
    code = ("import os, signal, sys; from cnnlab.cli import entry; sys.argv = ['cnnlab', '--version']; "
            "code = entry(); os.kill(os.getpid(), signal.SIGTERM); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cnnlab ")


def test_sigterm_during_a_deferred_block_is_raised_when_the_block_ends():
    # in a child process: were the block not deferring, the signal would kill the test run
    code = """if True:
        import os, signal, sys
        from cnnlab.training import Terminated, sigterm_deferred
        before = signal.getsignal(signal.SIGTERM)
        try:
            with sigterm_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):  # the handler runs between bytecodes: give it many
                    pass
                print("block finished", flush=True)
        except Terminated:
            assert signal.getsignal(signal.SIGTERM) == before
            sys.exit(143)
        """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert proc.stdout == "block finished\n"
