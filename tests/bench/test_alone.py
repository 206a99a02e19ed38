"""The "each alone" readings of ``cnnlab bench``: children of the two libraries alternate, and
their readings combine by the same rule for both."""

from __future__ import annotations

from cnnlab.bench import _memory


def test_children_alternate_and_combine_by_one_rule(monkeypatch):
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


def test_a_library_whose_children_all_fail_reads_nothing(monkeypatch):
    monkeypatch.setattr(_memory, "measure_in_child",
                        lambda model, library, threads: None if library == "torch" else {"step_s": 0.5})
    ours, theirs = _memory.alternating_children("convnet", 1, 2)
    assert ours == {"step_s": 0.5, "peak_growth_mib": None}
    assert theirs == {}
