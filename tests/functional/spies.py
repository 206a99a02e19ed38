"""Call counters for the tests that check which compiled kernels an op ran, a stand-in for
``np.empty`` that fills its arrays with nan, and one for the helper threads' queue of jobs that
makes every helper late."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest


def spied(monkeypatch: pytest.MonkeyPatch, module: ModuleType, *names: str,
          into: dict[str, int] | None = None) -> dict[str, int]:
    """Replace ``module``'s functions ``names`` (for the test) by wrappers that count their calls:
    the returned dict, one count per name (``into``, where given: the counts of another module's
    functions join it)."""
    calls = into if into is not None else {}
    calls.update(dict.fromkeys(names, 0))
    for name in names:
        original = getattr(module, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(module, name, spy)
    return calls


def nan_empty(empty: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A stand-in for ``np.empty`` (``empty``, the original) whose floating arrays come full of
    nan: a kernel that reads a value of its buffers before writing it then gives nan."""

    def poisoned(*args, **kwargs):
        out = empty(*args, **kwargs)
        if out.dtype.kind == "f":
            out.fill(np.nan)
        return out
    return poisoned


class LateHelpers(dict):
    """A team's ``_pending`` (``cnnlab.functional._team.Team``) whose helpers look for their jobs
    only once the caller has taken them all back: helpers woken too late for the call."""

    def __init__(self) -> None:
        super().__init__()
        self.taken_back = threading.Event()

    def pop(self, key, default=None):
        helper = threading.current_thread().name.startswith("cnnlab-kernel")
        if helper:
            self.taken_back.wait(30)
        found = super().pop(key, default)
        if not helper and not self:  # (the caller has taken back every job)
            self.taken_back.set()
        return found
