"""Call counters for the tests that check which compiled kernels an op ran."""

from __future__ import annotations

from types import ModuleType

import pytest


def spied(monkeypatch: pytest.MonkeyPatch, module: ModuleType, *names: str) -> dict[str, int]:
    """Replace ``module``'s functions ``names`` (for the test) by wrappers that count their calls:
    the returned dict, one count per name."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        original = getattr(module, name)

        def spy(*args, _original=original, _name=name):
            calls[_name] += 1
            return _original(*args)
        monkeypatch.setattr(module, name, spy)
    return calls
