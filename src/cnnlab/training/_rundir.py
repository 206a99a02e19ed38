"""The run folder: never overwritten, never shared, checked before any work.

``cnnlab train`` writes ``metrics.jsonl``, ``last.safetensors``, ``best.safetensors`` and
``results.json`` into one folder.  :class:`RunFolder` guards it:

- a folder that already holds a run is refused unless the run is being resumed there or the caller
  asked to ``overwrite`` it (then the old run's files, and only those, are removed);
- an OS file lock (``fcntl.flock`` on ``.cnnlab.lock``, released by the OS when the process ends, even
  by SIGKILL) stops a second run on the same folder while the first is alive;
- the folder must be a folder (not a file) and writable, which is tested by writing a file, before
  the data is loaded;
- temporary files left by a killed checkpoint write (``.last.safetensors.<id>.tmp``) are removed;
- the default folder, ``runs/<data>-<model>-<time>``, is created fresh (``-2``, ``-3``, ... appended
  when two runs start in the same second).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the other checks still apply
    fcntl = None  # type: ignore[assignment]

RUN_FILES = ("metrics.jsonl", "last.safetensors", "best.safetensors", "results.json")
LOCK_NAME = ".cnnlab.lock"


class RunFolderError(ValueError):
    """The run folder cannot be used: it holds another run, is in use, is a file or is not writable."""


def holds_run(folder: Path) -> list[str]:
    """The files of a run found in ``folder`` (an empty ``metrics.jsonl`` alone is not a run)."""
    found = []
    for name in RUN_FILES:
        path = folder / name
        if path.is_file() and not (name == "metrics.jsonl" and path.stat().st_size == 0):
            found.append(name)
    return found


def stale_temp_files(folder: Path) -> list[Path]:
    """Temporary files of interrupted checkpoint writes (``.<name>.safetensors.<id>.tmp``)."""
    return sorted(p for p in folder.glob(".*.safetensors.*.tmp") if p.is_file())


def fresh_folder(base: Path) -> Path:
    """Create and return ``base``, or ``base-2``, ``base-3``, ... if it exists (mkdir is atomic)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunFolderError(f"cannot create a fresh run folder next to {base}: too many exist")


def _check_not_file(folder: Path) -> None:
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            raise RunFolderError(f"the run folder {folder} cannot be created: {part} is a file")


class RunFolder:
    """The checked, locked run folder of one training run (a context manager).

    Parameters
    ----------
    path : path or None
        The folder; None for a fresh ``default``.
    default : path
        The fresh folder's name when ``path`` is None (``-2``, ... is appended if it exists).
    resume : path, optional
        The checkpoint being resumed: a run in its own folder may then be continued.
    overwrite : bool
        Replace a run the folder holds (its run files are removed once the lock is held).

    Raises
    ------
    RunFolderError
        From :meth:`__enter__`: the folder holds a run (and it is neither resumed nor overwritten), is
        locked by a live run, is a file (or below one), or cannot be written.
    """

    def __init__(self, path: str | os.PathLike[str] | None, default: Path, resume: Any = None,
                 overwrite: bool = False) -> None:
        self.requested = None if path is None else Path(path)
        self.default, self.overwrite = default, overwrite
        self.resume = None if resume is None else Path(resume)
        self.path = self.requested if self.requested is not None else (
            self.resume.parent if self.resume is not None else default)
        self._lock: int | None = None

    def _fresh(self) -> bool:
        return self.requested is None and self.resume is None

    def _resuming_here(self) -> bool:
        return self.resume is not None and self.resume.parent.resolve() == self.path.resolve()

    def _refuse_run(self) -> None:
        found = holds_run(self.path)
        if found and not self.overwrite and not self._resuming_here():
            choices = f"resume it with --resume {self.path / 'last.safetensors'}, " if "last.safetensors" in found \
                else ""
            raise RunFolderError(f"{self.path} already holds a run ({', '.join(found)}); {choices}choose another "
                                 "--out, or give --overwrite to replace it")

    def check(self) -> None:
        """The checks that need no writing: not a file, not holding a run (see the class notes)."""
        _check_not_file(self.path)
        if self.path.is_dir() and not self._fresh():
            self._refuse_run()

    def __enter__(self) -> RunFolder:
        self.check()
        try:
            if self._fresh():
                self.path = fresh_folder(self.default)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        except OSError as exc:
            raise RunFolderError(f"cannot write to the run folder {self.path}: {exc.strerror or exc}") from None
        try:
            self._refuse_run()  # again, under the lock: another run may have finished there meanwhile
            for stale in stale_temp_files(self.path):
                stale.unlink(missing_ok=True)
            if self.overwrite and not self._resuming_here():
                for name in RUN_FILES:
                    (self.path / name).unlink(missing_ok=True)
            self._probe()
        except BaseException:
            self.release()
            raise
        return self

    def _take_lock(self) -> None:
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 100).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise RunFolderError(f"{self.path} is in use by another cnnlab train (pid {holder}); wait for it to "
                                     "finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._lock = fd

    def _probe(self) -> None:
        probe = self.path / f".write-test.{os.getpid()}.{time.monotonic_ns()}"
        try:
            with open(probe, "wb") as f:
                f.write(b"cnnlab")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise RunFolderError(f"cannot write to the run folder {self.path}: {exc.strerror or exc}") from None
        finally:
            probe.unlink(missing_ok=True)

    def release(self) -> None:
        """Release the lock (the OS also does when the process ends)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __exit__(self, *exc: object) -> None:
        self.release()
