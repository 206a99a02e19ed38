"""``cnnlab bench``: the command line reaches the side-by-side benchmark (timings are never asserted)."""

from __future__ import annotations

import json
import re

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
