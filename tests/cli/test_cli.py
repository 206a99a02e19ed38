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
    result = subprocess.run([sys.executable, "-m", "cnnlab", "demo", "--no-train"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Pool(ReLU(Conv(I))) = 5" in result.stdout
    assert "Conv(I) = | 2  0 |" in result.stdout


# ---------------------------------------------------------------------------------------------
# size before any work: every teaching command on huge inputs, in a subprocess with a memory cap

MEMORY_CAP = 3 * 1024**3  # address space of the child: a 298 GiB allocation could never start
SRC = str(Path(cnnlab.__file__).resolve().parents[1])


def _capped() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(args, stdin=None):
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=120, preexec_fn=_capped)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode in (0, 2), (done.returncode, done.stderr[-500:])
    if done.returncode == 2:
        assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
    assert len(done.stdout) < 200_000
    return done


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    folder = tmp_path_factory.mktemp("huge")
    x = np.random.default_rng(0).integers(-5, 6, (5000, 5000)).astype(np.int8)
    np.save(folder / "x.npy", x)
    with open(folder / "x.txt", "w") as f:
        np.savetxt(f, x[:, :5000], fmt="%d")
    return folder


COMMANDS = [
    ["explain", "-f", "[[1,0],[0,1]]", "--activation", "relu", "--pool", "max"],
    ["explain", "-f", "[[1,0],[0,1]]", "--both"],
    ["backprop", "-f", "[[1,0],[0,1]]", "--pool", "avg"],
    ["matrix", "-f", "[[1,0],[0,1]]"],
]


@pytest.mark.parametrize("source", ["x.npy", "x.txt"])
@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_5000x5000_input_is_answered_or_refused_quickly(huge, source, argv):
    done = run_capped([argv[0], "-i", str(huge / source), *argv[1:]])
    assert done.returncode == 2 and "limit" in done.stderr


def test_a_5000x5000_input_on_stdin_is_refused(huge):
    text = (huge / "x.txt").read_text()
    done = run_capped(["explain", "-i", "-", "-f", "[[1]]"], stdin=text)
    assert done.returncode == 2 and "larger than" in done.stderr


@pytest.mark.parametrize("argv", COMMANDS + [["explain", "--activation", "relu", "--cells", "2"]],
                         ids=lambda a: " ".join(a[:2]))
def test_a_300x300_input_gets_the_answer_and_a_few_worked_cells(tmp_path, argv):
    np.save(tmp_path / "x.npy", np.random.default_rng(1).integers(-5, 6, (300, 300)))
    done = run_capped([argv[0], "-i", str(tmp_path / "x.npy"), *argv[1:]])
    if argv[0] == "matrix":
        assert done.returncode == 2 and "MAX_MATRIX_ENTRIES" in done.stderr
    elif "avg" in argv:  # the average of integers is exact fractions: too slow at this size
        assert done.returncode == 2 and "MAX_EXACT_WORK" in done.stderr
    else:
        assert done.returncode == 0 and "more cell(s) not shown" in done.stdout


@pytest.mark.parametrize("argv", [
    ["explain", "-i", "[[1,2],[3,4]]", "-f", "[[1]]", "--padding", "100000"],
    ["backprop", "-i", "[[1,2],[3,4]]", "-f", "[[1]]", "--padding", "100000"],
    ["matrix", "-i", "[[1,2],[3,4]]", "-f", "[[1]]", "--padding", "100000"],
    ["explain", "-i", "[[1,2],[3,4]]", "--pool", "max", "--pool-padding", "100000"],
    ["explain", "-i", "[[1,2],[3,4]]", "-f", "[[1,2],[3,4]]", "--dilation", "100000", "--padding", "same"],
    ["problem", "--count", "1000000"],
])
def test_impossible_requests_are_refused_in_one_line(argv):
    assert run_capped(argv).returncode == 2


def test_negative_bias_after_a_space_or_an_equals_sign(capsys):
    for bias in (["--bias", "-1,2"], ["--bias=-1,2"]):
        code, out, err = run(capsys, ["explain", "-i", "[[1,2],[3,4]]", "-f", "[[1]]", "-f", "[[2]]", *bias])
        assert code == 0, err
        assert "Conv(I)[0] = | 0  1 |" in out and "|  4   6 |" in out


def test_one_dimensional_input_from_the_command_line(capsys):
    code, out, err = run(capsys, ["explain", "-i", "[1,2,3,4,5]", "-f", "1 0 -1", "--padding", "1"])
    assert code == 0, err
    assert "Conv(I) = | -2  -2  -2  -2   4 |" in out
    code, out, err = run(capsys, ["matrix", "-i", "[1,2,3,4,5]", "-f", "[1,0,-1]"])
    assert code == 0 and "Toeplitz" in out


def test_nan_input_prints_no_warning():
    done = run_capped(["backprop", "-i", "[[nan,1],[inf,3]]", "-f", "[[1,-1]]", "--activation", "gelu"])
    assert done.returncode == 0 and done.stderr == ""


@pytest.mark.parametrize("text", [
    "__import__('os').system('touch {marker}')",
    "().__class__.__base__.__subclasses__()",
    "exec(\"open('{marker}','w')\")",
    "rect(t).func",
])
def test_continuous_refuses_code(tmp_path, text):
    marker = tmp_path / "pwned"
    done = run_capped(["continuous", text.format(marker=marker), "rect(t)"])
    assert done.returncode == 2 and not marker.exists()


def test_continuous_prints_the_closed_form_and_the_sums(capsys):
    code, out, err = run(capsys, ["continuous", "rect(t)", "exp(-t)*Heaviside(t)"])
    assert code == 0, err
    assert "Piecewise((1 - exp(-t - 1/2)" in out and "h = 0.0625" in out


@pytest.mark.parametrize("argv, text", [
    (["size", "lenet5"], "no layer sees all of it (the last field is 16)"),
    (["size", "c8k3-relu-mp2-flat-fc10", "--input-shape", "1,28,28"], "the last field is 4"),
    (["filters", "--synthetic"], "strongest response 800"),
    (["filters", "--index", "1"], "strongest response"),
    (["flip", "--steps", "30"], "rotated by 180 degrees: yes"),
    (["scale", "--train", "64", "--test", "32", "--epochs", "1", "--scales", "0.5,1"], "scale 0.5x:"),
])
def test_teaching_commands(capsys, argv, text):
    if argv[0] == "scale" and not Path("/usr/share/datasets/fashion-mnist").exists():
        from cnnlab.data import DataError, load_dataset

        try:
            load_dataset("fashion-mnist")
        except DataError:
            pytest.skip("Fashion-MNIST is not available")
    code, out, err = run(capsys, argv)
    assert code == 0, err
    assert text in out


def test_size_of_an_unknown_model_is_one_line(capsys):
    code, out, err = run(capsys, ["size", "no-such-model"])
    assert code == 2 and "needs --input-shape" in err


def test_size_of_a_saved_checkpoint(capsys, tmp_path):
    pytest.importorskip("mnist1d")
    code, _, err = run(capsys, ["train", "--data", "mnist1d", "--epochs", "1", "--limit", "64",
                                "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 0, err
    code, out, err = run(capsys, ["size", str(tmp_path / "run" / "best.safetensors")])
    assert code == 0, err
    assert "4 (Conv1d): kernel 3, stride 2 -> one cell sees 17 input cells" in out
