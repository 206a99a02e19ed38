"""Write the guides of docs/ as Jupyter notebooks: ``python docs/notebooks/make_notebooks.py``.

Each guide's prose becomes Markdown cells and each of its ``python`` doctest blocks one code cell
(the ``>>>`` and ``...`` lines, without the expected output, which the notebook shows when run).
``lecture-walkthrough.ipynb`` walks the lecture's page from top to bottom.  The tests check that
the notebooks match the guides and run them with a real kernel.
"""

from __future__ import annotations

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
DOCS = HERE.parent

SETUP = """\
# cnnlab from this checkout when it is not installed
import pathlib, sys
try:
    import cnnlab
except ImportError:
    sys.path.insert(0, str(pathlib.Path.cwd().resolve().parents[1] / "src"))
    import cnnlab"""


def guides() -> list[pathlib.Path]:
    """The guides with runnable examples (every docs/*.md with a python block)."""
    return sorted(p for p in DOCS.glob("*.md") if ">>> " in p.read_text(encoding="utf-8"))


def _code(block: list[str]) -> str:
    """The source of the doctest examples in ``block`` (their expected output left out)."""
    out, in_example = [], False
    for line in block:
        if line.startswith(">>>"):
            out.append(line[4:])
            in_example = True
        elif in_example and (line.startswith("... ") or line == "..."):
            out.append(line[4:])
        else:
            in_example = False
    return "\n".join(out).strip("\n")


def _cell(kind: str, source: str, n: int) -> dict:
    cell = {"cell_type": kind, "id": f"cell-{n}", "metadata": {}, "source": source}
    if kind == "code":
        cell.update({"execution_count": None, "outputs": []})
    return cell


def _notebook(cells: list[tuple[str, str]]) -> dict:
    return {
        "cells": [_cell(kind, source, n) for n, (kind, source) in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def notebook_from_guide(path: pathlib.Path) -> dict:
    """The guide at ``path`` as a notebook (a dict in the nbformat 4 layout)."""
    cells: list[tuple[str, str]] = [("code", SETUP)]
    prose: list[str] = []
    block: list[str] | None = None
    indented: list[str] | None = None  # a doctest block indented by four spaces
    for line in path.read_text(encoding="utf-8").splitlines():
        if indented is not None:
            if line.startswith("    ") or not line.strip():
                indented.append(line[4:])
                continue
            code = _code(indented)
            if code:
                cells.append(("code", code))
            indented = None
        if block is None and line.startswith("    >>>"):
            text = "\n".join(prose).strip("\n")
            if text:
                cells.append(("markdown", text))
            prose, indented = [], [line[4:]]
            continue
        if block is not None:
            if line.strip() == "```":
                code = _code(block)
                if code:
                    cells.append(("code", code))
                block = None
            else:
                block.append(line)
        elif line.strip() == "```python":
            text = "\n".join(prose).strip("\n")
            if text:
                cells.append(("markdown", text))
            prose, block = [], []
        else:
            prose.append(line)
    if indented is not None and _code(indented):
        cells.append(("code", _code(indented)))
    text = "\n".join(prose).strip("\n")
    if text:
        cells.append(("markdown", text))
    return _notebook(cells)


WALKTHROUGH = [
    ("markdown", "# The lecture, top to bottom\n\nEvery definition and question of the lecture on "
                 "convolutional neural networks, computed with cnnlab. Run the cells in order."),
    ("markdown", "## Convolution, three definitions\n\nContinuous: `(f * g)(t) = integral f(tau) g(t - tau) dtau`."),
    ("code", "from cnnlab.explain import continuous_report\n"
             "print(continuous_report('rect(t)', 'exp(-t)*Heaviside(t)', steps=(0.5, 0.25, 0.125)))"),
    ("markdown", "Discrete 1-D: `(f * g)[n] = sum_m f[m] g[n - m]`."),
    ("code", "from cnnlab.explain import Conv, explain\n"
             "sol = explain([1, 2, 3], [Conv([0, 1, 2], mode='convolve', padding='full')])\n"
             "print(sol.render(cells=2))"),
    ("markdown", "Discrete 2-D, and what a CNN layer computes: the cross-correlation (no flip)."),
    ("code", "from cnnlab.explain import compare\n"
             "both = compare([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [Conv([[1, 2], [0, 1]])])\n"
             "print(both.correlation.answer, both.convolution.answer, sep='\\n\\n')"),
    ("markdown", "## The worked example: Pool(ReLU(Conv(I)))"),
    ("code", "from cnnlab.explain import lecture_example\nprint(lecture_example())"),
    ("markdown", "## Convolution as a matrix: Toeplitz in 1-D, doubly block Toeplitz in 2-D"),
    ("code", "from cnnlab.explain import matrix_view\n"
             "print(matrix_view(explain([1, 2, 3, 4], [Conv([1, -1])])).matrix)\n"
             "print(matrix_view(explain([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [Conv([[1, 0], [0, 1]])])).matrix)"),
    ("markdown", "## Why many filters? Each filter looks for one feature"),
    ("code", "from cnnlab.data import DatasetNotFoundError, load_mnist\nfrom cnnlab.explain import filter_bank\n"
             "try:\n    x, _ = load_mnist('fashion-mnist', 'test')\n"
             "    bank = filter_bank(x[1], source='Fashion-MNIST test image 1')\n"
             "except DatasetNotFoundError:\n    bank = filter_bank()  # the synthetic image\n"
             "print(bank.source)\nfor name in bank.responses:\n    print(name, bank.summary(name))"),
    ("markdown", "## Pooling, and how big an object the network sees"),
    ("code", "from cnnlab.explain import model_field\nfrom cnnlab.training.models import build_model\n"
             "print(model_field(build_model('lenet5'), (1, 28, 28), name='lenet5'))"),
    ("markdown", "The measured effect of object size (a few seconds on a tiny subset here; the guide "
                 "`lecture-questions.md` has the full run's table)."),
    ("code", "from cnnlab.data import DataError, load_dataset\nfrom cnnlab.explain import scale_experiment\n"
             "try:\n    d = load_dataset('fashion-mnist')\n"
             "    exp = scale_experiment(d.x_train[:128], d.y_train[:128], d.x_test[:64], d.y_test[:64],\n"
             "                           epochs=1, scales=(0.5, 1.0, 1.5))\n    print(exp.table())\n"
             "except DataError as exc:\n    print('no data set here:', exc)"),
    ("markdown", "## Backprop through the example"),
    ("code", "from cnnlab.explain import Pool, backprop\n"
             "bp = backprop([[1, 0, 2], [3, 1, 0], [0, 0, 4]], [Conv([[1, 0], [0, 1]]), 'relu', "
             "Pool('max', 2, stride=1)])\nprint(bp.grad_filters[0])\nprint(bp.grad_input)"),
    ("markdown", "## The network learns the flipped filter"),
    ("code", "from cnnlab.explain import flip_experiment\nprint(flip_experiment(steps=100))"),
]


def main() -> None:
    for guide in guides():
        (HERE / f"{guide.stem}.ipynb").write_text(json.dumps(notebook_from_guide(guide), indent=1) + "\n")
    (HERE / "lecture-walkthrough.ipynb").write_text(
        json.dumps(_notebook([("code", SETUP), *WALKTHROUGH]), indent=1) + "\n")


if __name__ == "__main__":
    main()
