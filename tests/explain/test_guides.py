"""The new guide's examples run, and every guide is also a notebook that runs with a real kernel."""

from __future__ import annotations

import doctest
import json
import pathlib

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
NOTEBOOKS = DOCS / "notebooks"


def test_lecture_questions_guide_runs():
    result = doctest.testfile(str(DOCS / "lecture-questions.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10 and result.failed == 0


def _notebooks() -> list[pathlib.Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_guide_has_its_notebook_and_they_are_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    guides = make.guides()
    assert {p.stem for p in _notebooks()} == {g.stem for g in guides} | {"lecture-walkthrough"}
    for guide in guides:
        fresh = make.notebook_from_guide(guide)
        saved = json.loads((NOTEBOOKS / f"{guide.stem}.ipynb").read_text())
        assert [c["source"] for c in saved["cells"]] == [c["source"] for c in fresh["cells"]], (
            f"{guide.name} changed: run python docs/notebooks/make_notebooks.py")


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_with_a_real_kernel(path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
