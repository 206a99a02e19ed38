"""Training runs started from the page, and the live stream of any run's metrics.

A run started here is ``cnnlab train`` in a child process writing into the runs folder, so the
page and the command line produce the same run folders, and stopping it is the command's own
Ctrl-C (SIGINT): it saves ``last.safetensors`` and exits, never leaving a half-written file.
At most ``max_runs`` runs train at once.  :func:`events` follows a run folder's
``metrics.jsonl`` (whoever writes it) and its first-layer filters as server-sent events.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import cnnlab
from cnnlab import nn
from cnnlab.viz import load_checkpoint, read_metrics
from cnnlab.web._explore import jsonable
from cnnlab.web._schema import ApiError, Field

MODELS = ("mnist1d-cnn", "mnist1d-logreg", "mnist1d-mlp", "mnist1d-cnn-bn", "lenet5", "convnet")
DATA = ("mnist1d", "mnist", "fashion-mnist", "kmnist")


def train_schema(max_epochs: int) -> dict[str, Field]:
    return {
        "data": Field("choice", choices=DATA, default="mnist1d"),
        "model": Field("text", pattern=r"[a-z0-9][a-z0-9-]{0,99}", default="mnist1d-cnn",
                       doc="a built-in model (" + ", ".join(MODELS) + ") or a spec string such as c8k3-relu-flat-fc10"),
        "epochs": Field("int", low=1, high=max_epochs, default=5),
        "limit": Field("int", low=10, high=60000, default=None, doc="train on the first N examples"),
        "batch_size": Field("int", low=1, high=1024, default=None),
        "lr": Field("number", low=1e-6, high=1.0, default=None),
        "seed": Field("int", low=0, high=2**31 - 1, default=0),
    }


class Jobs:
    """The training runs this server started (at most ``max_runs`` at once)."""

    def __init__(self, root: Path, max_runs: int = 1, command: list[str] | None = None) -> None:
        self.root = root
        self.max_runs = max_runs
        self.command = command or [sys.executable, "-m", "cnnlab"]
        self.procs: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def running(self) -> list[str]:
        with self.lock:
            return [name for name, p in self.procs.items() if p.poll() is None]

    def start(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            active = [name for name, p in self.procs.items() if p.poll() is None]
            if len(active) >= self.max_runs:
                raise ApiError(409, f"a training run is already going ({', '.join(active)}); at most {self.max_runs} "
                                    "at a time: stop it or wait for it to finish")
            name = f"web-{req['data']}-{req['model'][:40]}-{time.strftime('%Y%m%d-%H%M%S')}"
            n = 1
            while (self.root / name).exists():
                n += 1
                name = name.rsplit("~", 1)[0] + f"~{n}"
            folder = self.root / name
            folder.mkdir(parents=True)
            args = [*self.command, "train", "--data", req["data"], "--model", req["model"], "--epochs",
                    str(req["epochs"]), "--seed", str(req["seed"]), "--out", str(folder), "--no-progress"]
            for key, flag in (("limit", "--limit"), ("batch_size", "--batch-size"), ("lr", "--lr")):
                if req[key] is not None:
                    args += [flag, str(req[key])]
            env = dict(os.environ)
            package_root = str(Path(cnnlab.__file__).resolve().parent.parent)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
            log = open(folder / "train.log", "wb")  # noqa: SIM115 - handed to the child
            try:
                proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(self.root),
                                        start_new_session=True)
            finally:
                log.close()
            self.procs[name] = proc
        return {"run": name, "command": " ".join(args[len(self.command) - 1:])}

    def status(self) -> dict[str, Any]:
        with self.lock:
            out = []
            for name, p in self.procs.items():
                code = p.poll()
                out.append({"run": name, "running": code is None, "returncode": code})
        return {"runs": out, "running": [r["run"] for r in out if r["running"]], "max_runs": self.max_runs}

    def stop(self, name: str | None = None, wait: float = 0.0) -> list[str]:
        """Ask the run(s) to stop as Ctrl-C does (SIGINT: save the state, then exit)."""
        stopped = []
        with self.lock:
            for run, p in self.procs.items():
                if p.poll() is None and (name is None or run == name):
                    p.send_signal(signal.SIGINT)
                    stopped.append(run)
            procs = [self.procs[r] for r in stopped]
        deadline = time.monotonic() + wait
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        return stopped

    def finished(self, name: str) -> bool:
        with self.lock:
            p = self.procs.get(name)
        return p is not None and p.poll() is not None


def first_filters(folder: Path) -> Any:
    """The first conv layer's weights of the run's newest checkpoint, or None."""
    for name in ("last.safetensors", "best.safetensors"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            model = load_checkpoint(path)
        except (ValueError, OSError):
            continue
        children = model.children() if isinstance(model, nn.Sequential) else [model]
        conv = next((m for m in children if isinstance(m, (nn.Conv1d, nn.Conv2d))), None)
        return None if conv is None else jsonable(np.asarray(conv.weight.data)[:32])
    return None


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


async def events(folder: Path, jobs: Jobs, request: Any, poll: float = 0.3, idle: float = 600.0) -> Any:
    """Server-sent events of a run: ``epoch`` per record of ``metrics.jsonl``, ``filters`` when a
    checkpoint changes, ``done`` when the run has finished (or nothing changed for ``idle`` s)."""
    sent = 0
    stamp = None
    quiet_since = time.monotonic()
    yield _event("hello", {"run": folder.name})
    while True:
        if await request.is_disconnected():
            return
        try:
            records = read_metrics(folder)
        except FileNotFoundError:
            records = []
        for record in records[sent:]:
            yield _event("epoch", record)
            quiet_since = time.monotonic()
        sent = max(sent, len(records))
        ckpts = [p.stat().st_mtime_ns for p in (folder / "last.safetensors", folder / "best.safetensors")
                 if p.is_file()]
        if ckpts and max(ckpts) != stamp:
            stamp = max(ckpts)
            filters = await asyncio.to_thread(first_filters, folder)
            if filters is not None:
                yield _event("filters", {"filters": filters})
        done = (folder / "results.json").is_file() or jobs.finished(folder.name)
        if done or time.monotonic() - quiet_since > idle:
            try:
                tail = read_metrics(folder)[sent:]
            except FileNotFoundError:
                tail = []
            for record in tail:
                yield _event("epoch", record)
            yield _event("done", {"run": folder.name, "finished": (folder / "results.json").is_file()})
            return
        await asyncio.sleep(poll)
