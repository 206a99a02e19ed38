"""Runs are never overwritten or mixed, and every command fails before work with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from faultkit import SPEC, assert_one_line, cli, snapshot, train_args

from cnnlab.cli import main
from cnnlab.training import RunFolder, RunFolderError

pytest.importorskip("safetensors")


def run_main(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def finished(env, capsys):
    code, out, err = run_main(capsys, train_args(env / "run1", 1))
    assert code == 0, err
    return env / "run1"


def test_a_folder_holding_a_run_is_refused_and_left_byte_identical(finished, capsys):
    before = snapshot(finished)
    code, out, err = run_main(capsys, train_args(finished, 1, "--lr", "0.5"))
    assert_one_line(code, err, "already holds a run", command="cnnlab train")
    assert "--overwrite" in err and "--resume" in err
    assert snapshot(finished) == before


def test_overwrite_replaces_the_run(finished, capsys):
    code, out, err = run_main(capsys, train_args(finished, 1, "--overwrite", "--seed", "3"))
    assert code == 0, err
    assert json.loads((finished / "results.json").read_text())["settings"]["seed"] == 3


def test_resume_into_its_own_folder_is_allowed(finished, capsys):
    code, out, err = run_main(capsys, ["train", "--resume", finished / "last.safetensors", "--epochs", 2,
                                       "--no-progress"])
    assert code == 0, err
    assert len((finished / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_second_run_on_a_locked_folder_is_refused(env, capsys):
    with RunFolder(env / "busy", default=env / "unused"):
        code, out, err = run_main(capsys, train_args(env / "busy", 1))
        assert_one_line(code, err, "in use by another cnnlab train", command="cnnlab train")
        with pytest.raises(RunFolderError, match="in use"), RunFolder(env / "busy", default=env / "unused"):
            pass
    with RunFolder(env / "busy", default=env / "unused"):  # released: usable again
        pass


def test_a_concurrent_process_is_refused(env):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from cnnlab.training import RunFolder; f = RunFolder(sys.argv[1], default=None)\n"
        "with f:\n    print('locked', flush=True); time.sleep(30)"), str(env / "shared")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, out, err = cli(*train_args(env / "shared", 1))
        assert_one_line(code, err, "in use by another cnnlab train", command="cnnlab train")
    finally:
        holder.kill()
        holder.wait()
    code, out, err = cli(*train_args(env / "shared", 1))  # the lock died with its process
    assert code == 0, err


def test_default_folders_are_fresh(env, capsys):
    for _ in range(2):
        code, out, err = run_main(capsys, ["train", "--data", "mnist", "--model", SPEC, "--epochs", 1,
                                           "--no-progress"])
        assert code == 0, err
    runs = sorted((env / "runs").iterdir())
    assert len(runs) == 2 and all((r / "results.json").is_file() for r in runs)


def test_out_naming_a_file(env, capsys):
    (env / "afile").write_text("keep me")
    for out in (env / "afile", env / "afile" / "sub"):
        code, _, err = run_main(capsys, train_args(out, 1))
        assert_one_line(code, err, "is a file", command="cnnlab train")
    assert (env / "afile").read_text() == "keep me"


def test_out_not_writable(env, capsys):
    code, _, err = run_main(capsys, train_args("/proc/cnnlab-cannot-write-here", 1))
    assert_one_line(code, err, "cannot write to the run folder", command="cnnlab train")


def test_disk_full_during_training_is_one_line_and_keeps_the_last_checkpoint(env):
    code, out, err = cli(*train_args(env / "full", 1))
    assert code == 0
    first = (env / "full" / "last.safetensors").read_bytes()
    limit = len(first) + 200  # room for metrics and the probe, not for a second checkpoint
    script = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
              "from cnnlab.cli import main; sys.exit(main(sys.argv[1:]))")
    argv = ["train", "--resume", env / "full" / "last.safetensors", "--epochs", 3, "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", script, *map(str, argv)], capture_output=True, text=True,
                          timeout=120)
    assert_one_line(proc.returncode, proc.stderr, "File too large", command="cnnlab train")
    from cnnlab.training import load_trained

    load_trained(env / "full" / "last.safetensors")  # still whole and loadable
    assert not list((env / "full").glob(".*.tmp"))


def test_missing_safetensors_fails_before_any_work(env, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    code, _, err = run_main(capsys, train_args(env / "nodeps", 1))
    assert_one_line(code, err, "pip install", command="cnnlab train")
    assert not (env / "nodeps").exists()


def test_stale_temp_files_are_removed_on_resume(finished, capsys):
    stale = finished / ".last.safetensors.0123456789ab.tmp"
    stale.write_bytes(b"x" * 1000)
    code, _, err = run_main(capsys, ["train", "--resume", finished / "last.safetensors", "--epochs", 2,
                                     "--no-progress"])
    assert code == 0, err
    assert not stale.exists()


def test_no_cannot_resume_when_not_resuming(env, capsys):
    code, _, err = run_main(capsys, train_args(env / "x", 1, "--model", "c99999999k3-fc10"))
    assert_one_line(code, err, "more than the limit", command="cnnlab train")
    assert "cannot resume" not in err
    assert not (env / "x").exists()


def test_internal_errors_exit_1_with_a_debug_pointer(env, capsys, monkeypatch):
    import cnnlab.training.recipes as recipes

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(recipes, "run", broken)
    code, _, err = run_main(capsys, train_args(env / "y", 1))
    assert_one_line(code, err, "--debug", exit_code=1, command="cnnlab train")
    assert "RuntimeError: something inside broke" in err
    with pytest.raises(RuntimeError, match="inside broke"):
        main([str(a) for a in train_args(env / "y", 1)] + ["--debug"])
    with pytest.raises(RuntimeError):
        main(["--debug"] + [str(a) for a in train_args(env / "y", 1)])
