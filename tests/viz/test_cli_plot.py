"""``cnnlab plot``: each figure from the command line, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cnnlab
from tests.viz.conftest import png_size

SRC = str(Path(cnnlab.__file__).resolve().parent.parent)


def cnnlab_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p),
               MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=180)


def test_window_gif_png_svg_and_frames(tmp_path):
    r = cnnlab_cli("plot", "window", "--out", str(tmp_path / "w.gif"))
    assert r.returncode == 0, r.stderr
    assert "4 frames" in r.stdout and "rows: out = floor((3 + 0 + 0 - 1*(2-1) - 1) / 1) + 1 = 2" in r.stdout
    r = cnnlab_cli("plot", "window", "--out", str(tmp_path / "w.png"))
    assert "O[1,1] = 1*1 + 0*0 + 0*0 + 1*4 = 5" in r.stdout
    assert png_size(tmp_path / "w.png")[0] > 100
    r = cnnlab_cli("plot", "window", "--input", "1 2 3; 4 5 6; 7 8 9", "--filter", "1 0; 0 1", "--op",
                   "conv_transpose", "--stride", "2", "--padding", "1", "--frame", "0",
                   "--out", str(tmp_path / "t.svg"))
    assert r.returncode == 0, r.stderr
    assert "(3 - 1)*2 - 2*1" in r.stdout
    r = cnnlab_cli("plot", "window", "--input", "1 2 3 4; 5 6 7 8", "--op", "max_pool", "--padding", "0,0;1,1",
                   "--out", str(tmp_path / "frames"))
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 3


def test_window_errors_are_one_line(tmp_path):
    r = cnnlab_cli("plot", "window", "--filter", "1 1 1 1", "--out", str(tmp_path / "w.png"))
    assert r.returncode != 0 and "larger than the padded input" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cnnlab_cli("plot", "window", "--frame", "9", "--out", str(tmp_path / "w.png"))
    assert r.returncode != 0 and "frame must be in [0, 3]" in r.stderr
    r = cnnlab_cli("plot", "window", "--out", str(tmp_path / "w.jpg"))
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_model_figures_from_a_run(tmp_path):
    pytest.importorskip("mnist1d")
    run = tmp_path / "run"
    r = cnnlab_cli("train", "--data", "mnist1d", "--model", "mnist1d-cnn", "--epochs", "2", "--limit", "300", "--out",
                   str(run), "--no-progress")
    assert r.returncode == 0, r.stderr
    for args, name in ((("filters", str(run / "best.safetensors")), "f.png"),
                       (("maps", str(run / "last.safetensors"), "--index", "5"), "m.png"),
                       (("curves", str(run)), "c.svg")):
        r = cnnlab_cli("plot", *args, "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / name).stat().st_size > 2000
    r = cnnlab_cli("plot", "run", str(run))
    assert r.returncode == 0, r.stderr
    for name in ("curves.png", "confusion.png", "most_wrong.png"):
        assert (run / name).stat().st_size > 2000
    r = cnnlab_cli("plot", "filter-bank", str(run / "best.safetensors"), "--out", str(tmp_path / "b.png"))
    assert r.returncode != 0 and "grey image model" in r.stderr
    r = cnnlab_cli("plot", "filters", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x.png"))
    assert r.returncode != 0 and "cannot load" in r.stderr and "Traceback" not in r.stderr


def test_train_writes_its_figures_and_never_fails_for_them(tmp_path):
    pytest.importorskip("mnist1d")
    run = tmp_path / "run"
    r = cnnlab_cli("train", "--data", "mnist1d", "--model", "mnist1d-logreg", "--epochs", "2", "--limit", "300",
                   "--out", str(run), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "figures: " in r.stdout
    for name in ("curves.png", "confusion.png", "most_wrong.png"):
        assert (run / name).stat().st_size > 2000
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p),
               MPLBACKEND="no-such-backend")
    r = subprocess.run([sys.executable, "-m", "cnnlab", "train", "--data", "mnist1d", "--model", "mnist1d-logreg",
                        "--epochs", "1", "--limit", "300", "--out", str(tmp_path / "run2"), "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "figures not written" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "run2" / "last.safetensors").is_file()
