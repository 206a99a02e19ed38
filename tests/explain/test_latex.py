"""Every LaTeX output kind compiles with pdflatex as printed, within the page width.

A fragment is pasted into a bare amsmath document; ``--standalone`` output is compiled as it is.
Overfull boxes (a line wider than the page) are failures.  Skipped where pdflatex is absent
(``.ci/run`` installs texlive-latex-base).
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from cnnlab.cli import main
from cnnlab.explain import Conv, Pool, backprop, compare, explain, lecture_example, matrix_view
from cnnlab.explain.problems import KINDS, generate

pytestmark = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")

BARE = "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n%s\n\\end{document}\n"


def compile_ok(tmp_path, source: str, name: str = "doc") -> None:
    tex = tmp_path / f"{name}.tex"
    tex.write_text(source, encoding="utf-8")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = (tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")
    errors = [line for line in log.splitlines() if line.startswith("!")]
    assert run.returncode == 0 and not errors, "\n".join(errors) or run.stdout[-2000:]
    overfull = [line for line in log.splitlines() if line.startswith("Overfull \\hbox")]
    assert not overfull, "\n".join(overfull)


RNG = np.random.default_rng(0)
CASES = {
    "lecture": lambda: lecture_example(),
    "compare": lambda: compare([[1, 2, 0], [3, 1, 1], [0, 2, 4]], [Conv([[1, 0], [0, 2]])]),
    "fractions": lambda: explain([[Fraction(1, 3), 2, 0], [3, Fraction(-1, 2), 1], [0, 2, 4]],
                                 [Conv([[1, 0], [0, 1]], padding=1), "relu", Pool("avg", 2)]),
    "floats_wide": lambda: explain(RNG.normal(size=(6, 12)), [Conv(RNG.normal(size=(3, 3))), "gelu"]),
    "large": lambda: explain(RNG.integers(-5, 6, (60, 60)), [Conv([[1, 0], [0, 1]]), "relu", Pool("max", 2)]),
    "signal": lambda: explain([1, 2, 3, 4, 5, 6, 7], [Conv([1, 0, -1], padding=1), "relu", Pool("max", 2)]),
    "backprop": lambda: backprop(RNG.integers(-3, 4, (5, 5)), [Conv([[1, -1], [2, 0]], stride=2, bias=1),
                                                             "relu", Pool("max", 2, padding=1)]),
    "backprop_large": lambda: backprop(RNG.normal(size=(40, 40)), [Conv(RNG.normal(size=(3, 3))), "tanh"]),
    "matrix_4x4": lambda: matrix_view(explain(np.arange(16).reshape(4, 4), [Conv([[1, 0], [0, 1]])])),
    "matrix_signal": lambda: matrix_view(explain(np.arange(12), [Conv([1, 2, -1])])),
    "volume": lambda: explain(RNG.integers(-5, 6, (3, 4, 4)), [Conv(RNG.integers(-2, 3, (2, 2, 2)), padding=1, bias=1),
                                                              "relu", Pool("max", 2)], volume=True),
    "matrix_volume": lambda: matrix_view(explain(np.arange(18).reshape(2, 3, 3), [Conv(np.ones((2, 2, 2)))],
                                                 volume=True)),
    "backprop_volume": lambda: backprop(RNG.integers(-3, 4, (3, 4, 4)), [Conv(RNG.integers(-2, 3, (2, 2, 2)), bias=1),
                                                                      "relu", Pool("max", 2)], volume=True),
    "volume_large": lambda: explain(RNG.normal(size=(2, 12, 20, 20)), [Conv(RNG.normal(size=(2, 2, 3, 3, 3))),
                                                                        "tanh", Pool("avg", 2)], volume=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fragment_compiles_in_a_bare_amsmath_document(tmp_path, name):
    compile_ok(tmp_path, BARE % CASES[name]().render("latex"))


@pytest.mark.parametrize("name", ["lecture", "large", "matrix_4x4"])
def test_standalone_compiles_as_printed(tmp_path, name):
    compile_ok(tmp_path, CASES[name]().render("latex", standalone=True))


def test_math_only_compiles(tmp_path):
    compile_ok(tmp_path, BARE % lecture_example().render("latex", math_only=True))


@pytest.mark.parametrize("kind", KINDS)
def test_problem_sets_with_answers_compile(tmp_path, kind):
    problems = generate(7, kind=kind, difficulty=3, count=3)
    compile_ok(tmp_path, problems.render("latex", answers=True, standalone=True))


@pytest.mark.parametrize("argv", [
    ["demo", "--no-train"],
    ["matrix", "-i", "[[1,2,3,4],[5,6,7,8],[9,10,11,12],[13,14,15,16]]", "-f", "[[1,0],[0,1]]"],
    ["explain", "-i", "[1,2,3,4,5]", "-f", "[1,0,-1]", "--padding", "1", "--both"],
    ["backprop", "-i", "[[1,2,0],[0,1,3],[2,2,2]]", "-f", "[[1,0],[0,1]]", "--bias", "-1",
     "--activation", "relu", "--pool", "max", "--pool-padding", "1"],
])
def test_cli_standalone_output_compiles(tmp_path, capsys, argv):
    assert main([*argv, "--format", "latex", "--standalone"]) == 0
    compile_ok(tmp_path, capsys.readouterr().out)
