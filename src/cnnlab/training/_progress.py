"""Progress display and Ctrl-C handling for :func:`cnnlab.training.fit`.

The progress bar is tqdm's, an optional dependency imported only when a bar is shown; without it
(or when stderr is not a terminal) training prints plain lines instead.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

# ---------------------------------------------------------------------------------------------
# progress


class Progress:
    """A tqdm bar (optional dependency) or plain periodic lines on stdout, or nothing."""

    def __init__(self, mode: Any, epochs: int, n_batches: int) -> None:
        if mode is True:
            mode = "bar" if _tqdm() is not None and getattr(sys.stderr, "isatty", lambda: False)() else "lines"
        if mode not in (False, None, "bar", "lines"):
            raise ValueError(f"fit: progress must be True, False, 'bar' or 'lines', got {mode!r}")
        if mode == "bar" and _tqdm() is None:
            mode = "lines"
        self.mode = mode or None
        self.epochs, self.n_batches = epochs, n_batches
        self._bar: Any = None
        self._last = 0.0

    def start_epoch(self, epoch: int, batch: int) -> None:
        self._started = self._last = time.perf_counter()
        self._epoch = epoch
        if self.mode == "bar":
            tqdm = _tqdm()
            self._bar = tqdm(total=self.n_batches, initial=batch, desc=f"epoch {epoch + 1}/{self.epochs}",
                             leave=False, file=sys.stderr, dynamic_ncols=True)

    def update(self, batch: int, loss: float, acc: float | None) -> None:
        if self.mode == "bar":
            self._bar.update(1)
            self._bar.set_postfix_str(f"loss {loss:.4f}" + ("" if acc is None else f" acc {100 * acc:.1f}%"),
                                      refresh=False)
        elif self.mode == "lines":
            now = time.perf_counter()
            if now - self._last >= 10.0 and batch < self.n_batches:
                self._last = now
                acc_text = "" if acc is None else f"  acc {100 * acc:.1f}%"
                _print(f"  epoch {self._epoch + 1}/{self.epochs}  batch {batch}/{self.n_batches}  "
                       f"loss {loss:.4f}{acc_text}  ({now - self._started:.0f} s)")

    def end_epoch(self, line: str) -> None:
        self.close()
        if self.mode == "bar":
            _tqdm().write(line, file=sys.stdout)
        elif self.mode == "lines":
            _print(line)

    def note(self, line: str) -> None:
        self.close()
        if self.mode is not None:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def _print(line: str) -> None:
    try:
        print(line, flush=True)
    except BrokenPipeError:
        pass


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.4f}"


def epoch_line(record: Mapping[str, Any], epochs: int, best: bool = False) -> str:
    """One line for an epoch record, as :func:`fit` prints it.

    Examples
    --------
    >>> epoch_line({"epoch": 2, "train_loss": 0.5, "train_acc": 0.8, "val_loss": None, "val_acc": None,
    ...             "lr": 0.01, "seconds": 1.25}, 10)
    'epoch 2/10  train loss 0.5000 acc 80.0%  lr 0.01  1.2 s'
    """
    text = f"epoch {record['epoch']}/{epochs}  train loss {_fmt(record['train_loss'])}"
    text += f" acc {_fmt(record['train_acc'], True)}"
    if record.get("val_loss") is not None:
        text += f"  val loss {_fmt(record['val_loss'])} acc {_fmt(record['val_acc'], True)}"
    text += f"  lr {record['lr']:.3g}  {record['seconds']:.1f} s"
    return text + ("  *" if best else "")


# ---------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM


class StopFlag:
    """Turns the first SIGINT or SIGTERM into a request to stop after the batch; the second interrupts.

    SIGTERM (what ``kill``, job schedulers and ``docker stop`` send) is handled as the first Ctrl-C:
    training stops after the batch, saves, and :attr:`signum` tells the caller which signal it was
    (``cnnlab train`` then exits 128 + signum: 130 for Ctrl-C, 143 for SIGTERM).  Inside
    :meth:`protected` (an optimizer step with its bookkeeping, a checkpoint write) a second signal does
    not interrupt: it is noted and raised as ``KeyboardInterrupt`` when the protected block ends, so a
    save is never cut short and the state saved is never half-updated.
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, progress: Progress) -> None:
        self.requested = False
        self.signum: int | None = None
        self._progress = progress
        self._previous: dict[int, Any] = {}
        self._protected = 0
        self._pending = False
        self.raised = False  # an interrupt was raised: later signals only wait for the save

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            current = signal.getsignal(signum)
            if current in (signal.default_int_handler, signal.SIG_DFL) or getattr(current, "replaceable", False):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.raised:
            self._progress.note("fit: saving the interrupted run; it finishes in a moment")
            return
        if self.signum is None:
            self.signum = signum
        if not self.requested:
            self.requested = True
            what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self._progress.note(f"fit: {what}: stopping after this batch and saving (press Ctrl-C again to stop "
                                "at once)")
            return
        if self._protected:
            if not self._pending:
                self._pending = True
                self._progress.note("fit: finishing the step or save in progress, then stopping")
            return
        self.raised = True
        raise KeyboardInterrupt

    def protected(self) -> _Protected:
        """A block a second signal does not cut short (it is raised when the block ends)."""
        return _Protected(self)

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}


class _Protected:
    def __init__(self, flag: StopFlag) -> None:
        self._flag = flag

    def __enter__(self) -> None:
        self._flag._protected += 1

    def __exit__(self, kind: Any, *exc: object) -> None:
        flag = self._flag
        flag._protected -= 1
        if flag._protected == 0 and flag._pending and kind is None and not flag.raised:
            flag._pending = False
            flag.raised = True
            raise KeyboardInterrupt


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived outside the training loop (while loading data, or after training ended)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


_raise_terminated.replaceable = True  # type: ignore[attr-defined]  # fit's StopFlag takes over while it runs


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` instead of killing the process at once.

    While :func:`cnnlab.training.fit` runs, its own handler takes over (SIGTERM then stops after the
    batch and saves, like the first Ctrl-C); before and after it, a SIGTERM ends the command with
    this exception, so a scheduler's ``docker stop`` gets a clean exit 143 at any moment.
    Outside the main thread, or where SIGTERM already has a handler, it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def sigterm_deferred() -> Iterator[None]:
    """Within the block, a SIGTERM is noted and raised as :class:`Terminated` when the block ends.

    For work that must not be cut in the middle and is short, such as drawing a finished run's
    figures: an exception raised inside an ``import`` (matplotlib's, on first use) can leave a
    half-initialised extension module behind, which some libraries turn into an ImportError and
    which can crash the interpreter when it exits.  Outside the main thread it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
    if received:
        raise Terminated()

