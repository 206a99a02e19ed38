"""The cnnlab command line: demo, explain, bad input, --help and --version."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnlab
import cnnlab.functional as F
from cnnlab.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"
LECTURE = ["--input", "[[1,0,2],[3,1,0],[0,0,4]]", "--filter", "[[1,0],[0,1]]"]
PIPELINE = ["--stride", "1", "--padding", "0", "--activation", "relu", "--pool", "max",
            "--pool-size", "2", "--pool-stride", "1"]


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_prints_the_lecture_computation(capsys):
    code, out, err = run(capsys, ["demo"])
    assert code == 0 and err == ""
    for piece in [
        "      | 1  0  2 |\n  I = | 3  1  0 |\n      | 0  0  4 |",  # the input
        "  F = | 1  0 |\n      | 0  1 |",  # the filter
        "Conv(I)[0,0] = 1*1 + 0*0 + 3*0 + 1*1 = 1 + 0 + 0 + 1 = 2",
        "Conv(I)[0,1] = 0*1 + 2*0 + 1*0 + 0*1 = 0 + 0 + 0 + 0 = 0",
        "Conv(I)[1,0] = 3*1 + 1*0 + 0*0 + 0*1 = 3 + 0 + 0 + 0 = 3",
        "Conv(I)[1,1] = 1*1 + 0*0 + 0*0 + 4*1 = 1 + 0 + 0 + 4 = 5",
        "Conv(I) = | 2  0 |\n            | 3  5 |",
        "ReLU(Conv(I)) = | 2  0 |\n                  | 3  5 |",
        "ReLU(Conv(I)) = | [2] [0] |\n                  | [3] [5] |",  # the pooling window
        "Pool(ReLU(Conv(I)))[0,0] = max(2, 0, 3, 5) = 5",
        "Pool(ReLU(Conv(I))) = 5",
        "cross-correlation",
        "flip(F) = | 1  0 |",
        "symmetric under a 180-degree rotation",
        "convolve(I, F) = | 2  0 |\n                   | 3  5 |",
    ]:
        assert piece in out, piece
    assert "\x1b[" not in out  # not a terminal: no ANSI codes
    assert re.search(r"\d\.\d", out) is None  # integers, not floats


@pytest.mark.parametrize("fmt, answer", [
    ("md", "`Pool(ReLU(Conv(I))) = 5`"),
    ("latex", r"\[ \mathrm{Pool}(\mathrm{ReLU}(\mathrm{Conv}(I))) = 5 \]"),
    ("html", "Pool(ReLU(Conv(I))) = 5</div>"),
])
def test_demo_formats(capsys, fmt, answer):
    code, out, _ = run(capsys, ["demo", "--format", fmt])
    assert code == 0 and answer in out


def test_demo_color_always(capsys):
    code, out, _ = run(capsys, ["demo", "--color", "always", "--cells", "1"])
    assert code == 0 and "\x1b[1m[1]\x1b[0m" in out


def test_explain_matches_demo_numbers(capsys):
    code, out, err = run(capsys, ["explain", *LECTURE, *PIPELINE, "--format", "md"])
    assert code == 0 and err == ""
    assert "`Conv(I)[1,1] = 1*1 + 0*0 + 0*0 + 4*1 = 1 + 0 + 0 + 4 = 5`" in out
    assert "`Pool(ReLU(Conv(I)))[0,0] = max(2, 0, 3, 5) = 5" in out


def test_explain_convolve_and_both(capsys):
    x = "[[1,2,0],[0,1,3],[2,2,1]]"
    k = "[[1,2],[0,0]]"
    want = F.convolve(np.array(json.loads(x)), np.array(json.loads(k)))
    code, out, _ = run(capsys, ["explain", "--input", x, "--filter", k, "--convolve"])
    assert code == 0
    rows = [f"| {'  '.join(str(v) for v in row)} |" for row in want]
    assert f"Conv(I) = {rows[0]}" in out and rows[1] in out
    assert "true convolution" in out
    code, out, _ = run(capsys, ["explain", "--input", x, "--filter", k, "--both"])
    assert code == 0
    assert "Worked solution with cross-correlation" in out
    assert "Worked solution with convolution" in out


def test_explain_cells_limit(capsys):
    code, out, _ = run(capsys, ["explain", *LECTURE, "--cells", "2"])
    assert code == 0
    assert len(re.findall(r"^  Conv\(I\)\[\d,\d\] = ", out, flags=re.M)) == 2
    assert "2 more cell(s) not shown" in out


def test_explain_fractions_and_average_pooling_stay_exact(capsys):
    code, out, _ = run(capsys, ["explain", "--input", "[[1/3, 1], [0, 1/2]]", "--pool", "avg",
                                "--pool-size", "2"])
    assert code == 0
    # (1/3 + 1 + 0 + 1/2) / 4 = 11/24
    assert "= 11/24" in out and "0.458" not in out


def test_explain_reads_files_and_stdin(capsys, tmp_path, monkeypatch):
    matrix = [[1, 0, 2], [3, 1, 0], [0, 0, 4]]
    (tmp_path / "i.json").write_text(json.dumps(matrix))
    (tmp_path / "i.csv").write_text("1,0,2\n3,1,0\n0,0,4\n")
    np.save(tmp_path / "i.npy", np.array(matrix))
    for source in ("i.json", "i.csv", "i.npy"):
        code, out, err = run(capsys, ["explain", "--input", str(tmp_path / source),
                                      "--filter", "[[1,0],[0,1]]", *PIPELINE[4:]])
        assert code == 0, err
        assert "Pool(ReLU(Conv(I))) = 5" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO("1 0 2\n3 1 0\n0 0 4\n"))
    code, out, _ = run(capsys, ["explain", "--input", "-", "--filter", "1 0; 0 1", *PIPELINE[4:]])
    assert code == 0 and "Pool(ReLU(Conv(I))) = 5" in out


BAD = [
    (["--input", "[[1,0,2],[3,1],[0,0,4]]", "--filter", "[[1]]"],
     "cnnlab explain: --input row 2 has 2 entries, expected 3"),
    (["--input", "[[1,x,2]]", "--filter", "[[1]]"],
     "cnnlab explain: --input entry 'x' at row 1, column 2 is not a number"),
    (["--input", "[[[[1,2,3]]]]", "--filter", "[[1]]"],
     "cnnlab explain: --input must be a 1-D signal, a 2-D matrix or a 3-D stack of channels, got 4-D"),
    (["--input", "[1,2,3]", "--filter", "[[1,2],[3,4]]"],
     "cnnlab explain: --filter must be a 1-D filter for a 1-D --input, got 2-D"),
    (["--input", "[[1,2],[3,4]]", "--filter", "[[1]]", "--padding", "100000"],
     "cnnlab explain (conv stage 1): the padded input (200002 x 200002) would hold 40,000,800,004 values; "
     "the limit is 1,000,000 (MAX_VALUES)"),
    (["--input", "[]", "--filter", "[[1]]"], "cnnlab explain: --input is empty"),
    (["--input", "", "--filter", "[[1]]"], "cnnlab explain: --input is empty"),
    (["--input", "[[1,2],[3,4]]", "--filter", "[[1,2,3],[1,2,3],[1,2,3]]"],
     "the filter is larger than the padded input along rows"),
    (["--input", "[[1,2],[3,4]]", "--filter", "[[1,2],[3"], "--filter has unbalanced brackets"),
    (["--input", "[[1,2],[3,4]]", "--filter", "[[1]]", "--filter", "[[1,2]]"],
     "--filter 2 has shape (1, 2), expected (1, 1) like the first filter"),
    (["--input", "[[1,2],[3,4]]", "--filter", "[[1]]", "--stride", "0"],
     "stride must be positive"),
    (["--input", "[[1,2],[3,4]]", "--filter", "[[1]]", "--stride", "two"],
     "argument --stride: expected an int"),
    (["--input", "[[1,2],[3,4]]", "--filter", "[[1]]", "--padding", "middle"],
     "argument --padding"),
    (["--input", "[[1,2],[3,4]]", "--activation", "softplus"], "argument --activation"),
    (["--input", "[[1,2],[3,4]]"], "nothing to explain"),
    (["--input", "no-such-file.csv", "--filter", "[[1]]"], "--input names no readable file"),
    (["--input", "[[1/0]]", "--filter", "[[1]]"], "divides by zero"),
    (["--input", "[[1,2],[3,4]]", "--pool", "max", "--pool-size", "2", "--pool-padding", "2"],
     "no input cell"),
    (["--input", "[[1,2],[3,4]]", "--filter", "[[1]]", "--cells", "-1"], "argument --cells"),
    (["--filter", "[[1]]"], "the following arguments are required: -i/--input"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[m[:40] for _, m in BAD])
def test_explain_bad_input_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, ["explain", *argv])
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("cnnlab explain")
    assert message in err
    assert "Traceback" not in err


def test_help_and_version(capsys):
    code, out, _ = run(capsys, ["--help"])
    assert code == 0 and "usage: cnnlab" in out and "demo" in out and "explain" in out
    code, out, _ = run(capsys, ["explain", "--help"])
    assert code == 0 and "--convolve" in out and "--pool-size" in out
    code, out, _ = run(capsys, ["--version"])
    assert code == 0 and out.strip() == f"cnnlab {cnnlab.__version__}"
    code, out, _ = run(capsys, [])
    assert code == 0 and "usage: cnnlab" in out


def test_unknown_command_is_one_line(capsys):
    code, _, err = run(capsys, ["fly"])
    assert code == 2 and err.count("\n") == 1 and "invalid choice" in err


def test_python_m_cnnlab_demo():
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "cnnlab", "demo"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Pool(ReLU(Conv(I))) = 5" in result.stdout
    assert "Conv(I) = | 2  0 |" in result.stdout
