"""The worker side of the Ray backend: one run of one stage, trained in a scratch results root on whichever node
Ray chose. The run's folder goes back to the driver as the task's result (bytes), so nodes share no file system;
progress and history rows go back live through a Ray actor (Mailbox)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core import runs, store

SCRATCH_PREFIX = "transferlab-ray-"


def pack(folder: Path) -> bytes:
    """A run's folder (model, records, TensorBoard logs) as an uncompressed tar; hidden temp files left out."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(Path(folder).rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and not any(part.startswith(".") for part in rel.parts):
                tar.add(path, arcname=str(rel))
    return buf.getvalue()


def unpack(data: bytes, folder: Path, skip: tuple[str, ...] = ()) -> None:
    """Extract a packed folder into `folder`, each file renamed into place (whole or absent for any reader);
    tar's "data" filter refuses absolute paths, `..` and links."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".unpack-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")
        for path in sorted(Path(tmp).rglob("*")):
            rel = path.relative_to(tmp)
            if path.is_file() and rel.as_posix() not in skip:
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, folder / rel)


@contextlib.contextmanager
def _scratch_results_root() -> Iterator[Path]:
    """A private results root for one task (Ray reuses worker processes: the variable is restored after)."""
    _remove_orphaned_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    before = os.environ.get("TRANSFERLAB_RESULTS_DIR")
    os.environ["TRANSFERLAB_RESULTS_DIR"] = str(scratch)
    try:
        yield scratch
    finally:
        if before is None:
            os.environ.pop("TRANSFERLAB_RESULTS_DIR", None)
        else:
            os.environ["TRANSFERLAB_RESULTS_DIR"] = before
        shutil.rmtree(scratch, ignore_errors=True)


def _remove_orphaned_scratch() -> None:
    """Scratch roots of worker processes that were killed mid-run (a forced cancel, a crash)."""
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = path.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not store.pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


class Mailbox:
    """A Ray actor between the workers and the driver: workers post progress without waiting for an answer (a
    task blocked in ray.get would lend its CPU to another task), the driver takes everything posted so far."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def post(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def take(self) -> list[dict[str, Any]]:
        taken, self.messages = self.messages, []
        return taken


def _send(mailbox: Any, message: dict[str, Any]) -> None:
    """Progress is best effort: a lost message never stops the run (the result carries the final files)."""
    with contextlib.suppress(Exception):
        mailbox.post.remote(message)


def train(run_id: str, config: dict[str, Any], stage: dict[str, Any], parent_run: str | None,
          parent: dict[str, Any] | None, info: dict[str, Any], mailbox: Any) -> dict[str, Any]:
    """The Ray task: train `stage` into run `run_id` (its record `config` made by the driver) from the parent
    run's packed folder; returns the final status and the run's folder, packed."""
    from core import hardware as machine
    from core import training
    from core.pipeline import StageConfig

    with _scratch_results_root() as scratch:
        if parent_run and parent:
            target = scratch / store.DEFAULT_MODEL_DIR if parent_run == store.DEFAULT_MODEL_DIR else runs.run_dir(
                parent_run)
            unpack(parent["bundle"], target)
        runs.run_dir(run_id).mkdir(parents=True)
        hardware = dataclasses.asdict(machine.environment())
        runs.write_config(run_id, {**config, "hardware": hardware})
        _send(mailbox, {"run_id": run_id, "event": "running", "pid": os.getpid(), "node": socket.gethostname(),
                        "hardware": hardware, "t0": time.time()})
        sent = [0]

        def forward(progress: dict[str, Any]) -> None:
            rows = runs.read_history(run_id)
            _send(mailbox, {"run_id": run_id, "event": "progress", "info": progress, "history": rows[sent[0]:]})
            sent[0] = len(rows)

        status = training.execute_run(run_id, StageConfig.from_dict(stage), parent_run, forward, info)
        error = runs.get_run(run_id)["status_info"].get("error")
        return {"run_id": run_id, "status": status, "error": error, "bundle": pack(runs.run_dir(run_id)),
                "t1": time.time()}
