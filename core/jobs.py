"""Background jobs: each launch is a detached `python -m core jobs run ID` process; they queue on a file lock.

A job process outlives the Streamlit server (own session), so closing the tab or restarting the app never stops
training. Jobs run in submission order, `TRANSFERLAB_JOB_SLOTS` (default 1) at a time.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any

from core import job_backends, runs, store
from core.config import REPO_ROOT, TransferLabError, atomic_write_json, read_json
from core.pipeline import Experiment
from core.store import job_dir, jobs_dir
from core.validation import check_experiment

POLL_S = 0.5


def slots() -> int:
    return max(1, int(os.environ.get("TRANSFERLAB_JOB_SLOTS", "1")))


@contextmanager
def _queue_lock():
    jobs_dir().mkdir(parents=True, exist_ok=True)
    with open(jobs_dir() / store.QUEUE_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _update(job_id: str, **fields: Any) -> dict[str, Any]:
    return store.update_status(job_dir(job_id), **fields, updated=time.time())


def submit(exp: Experiment, launch: bool = True, backend: dict[str, Any] | None = None) -> str:
    """Queue an experiment and start its process; returns the job id. Invalid configs are refused here."""
    check_experiment(exp)
    backend = job_backends.resolve(backend)  # where the runs execute (None: as configured)
    job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}-{secrets.token_hex(2)}"
    folder = job_dir(job_id)
    folder.mkdir(parents=True)
    _update(job_id, status="queued", runs=[])  # before job.json: a listed job always has a status
    atomic_write_json(folder / store.JOB, {"job_id": job_id, "created_ns": time.time_ns(), "name": exp.name,
                                            "experiment": exp.to_dict(), "backend": backend})
    if launch:
        start_process(job_id)
    return job_id


def start_process(job_id: str) -> int:
    """Start the detached job process (its own session: it survives the app server)."""
    folder = job_dir(job_id)
    log = open(folder / store.LOG, "ab")  # noqa: SIM115 - handed to the child
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "core", "jobs", "run", job_id], cwd=REPO_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    _update(job_id, pid=proc.pid)
    return proc.pid


def get_job(job_id: str) -> dict[str, Any]:
    folder = job_dir(job_id)
    job = read_json(folder / store.JOB)
    if not isinstance(job, dict):
        raise TransferLabError(f"Job {job_id!r} does not exist.")
    status = store.read_object(folder / store.STATUS)[0] or {}
    if not isinstance(status.get("pid") or 0, int):
        status = {**status, "pid": None, "status": "failed", "error": f"{store.STATUS}'s pid is not a process id"}
    if status.get("status") not in store.STATUSES:  # an older version's folder, or a torn status.json
        status = {**status, "status": "failed", "error": f"no readable {store.STATUS} (interrupted, or written "
                                                         "by an older version)"}
    elif status.get("status") in ("queued", "running") and status.get("pid") and not store.pid_alive(status["pid"]):
        status = {**status, "status": "failed", "error": "the job process ended unexpectedly (killed?)"}
    return {**job, **status, "job_id": job_id, "progress": store.read_progress(folder)}


def list_jobs() -> list[dict[str, Any]]:
    if not jobs_dir().is_dir():
        return []
    out = []
    for folder in jobs_dir().iterdir():
        if folder.is_dir():
            try:
                out.append(get_job(folder.name))
            except TransferLabError:
                continue
    out.sort(key=lambda j: j.get("created_ns", 0), reverse=True)
    for j in out:
        j["created"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.get("created_ns", 0) / 1e9))
    return out


def log_tail(job_id: str, lines: int = 30) -> str:
    path = job_dir(job_id) / store.LOG
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 20_000))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


def cancel_job(job_id: str) -> None:
    job = get_job(job_id)
    if job["status"] not in ("queued", "running"):
        raise TransferLabError(f"Job {job_id} is already {job['status']}.")
    store.request_cancel(job_dir(job_id))
    for run_id in job.get("runs", []):
        try:
            if runs.get_run(run_id)["status"] in ("queued", "running"):
                runs.request_cancel(run_id)
        except TransferLabError:
            continue


def _my_turn(job_id: str) -> bool:
    """Called under the queue lock: true when fewer than `slots` jobs run and this is the oldest queued one."""
    jobs = list_jobs()
    running = [j for j in jobs if j["status"] == "running"]
    # a queued job without a process (its launcher died before starting it) can never run: it blocks nobody
    queued = sorted((j for j in jobs if j["status"] == "queued" and (j.get("pid") or j["job_id"] == job_id)),
                    key=lambda j: (j.get("created_ns", 0), j["job_id"]))
    return len(running) < slots() and bool(queued) and queued[0]["job_id"] == job_id


def run_job(job_id: str) -> int:
    """The job process: wait for a slot, then run the experiment in this process."""
    from core import cleanup, training
    from core.console import ConsoleProgress

    _update(job_id, pid=os.getpid())
    cleanup.remove_stale_temp_files()
    folder = job_dir(job_id)
    signal.signal(signal.SIGTERM, lambda *_: training.CANCEL_EVENT.set())
    while True:
        if store.cancel_requested(folder) or training.CANCEL_EVENT.is_set():
            _update(job_id, status="cancelled", error="cancelled while queued", finished=time.time())
            return 3
        with _queue_lock():
            if _my_turn(job_id):
                _update(job_id, status="running", started=time.time())
                break
        time.sleep(POLL_S)

    def watch_cancel() -> None:
        while not training.CANCEL_EVENT.is_set():
            if store.cancel_requested(folder):
                training.CANCEL_EVENT.set()
            time.sleep(0.2)

    threading.Thread(target=watch_cancel, daemon=True).start()
    console = ConsoleProgress()
    run_ids: list[str] = []

    def on_progress(info: dict[str, Any]) -> None:
        store.write_progress(folder, info)
        console(info)

    def on_run(run_id: str, status: str) -> None:
        if run_id not in run_ids:
            run_ids.append(run_id)
        _update(job_id, runs=run_ids, current_run=run_id)
        error = runs.get_run(run_id)["status_info"].get("error") if status == "failed" else None
        print(f"run {run_id}: {status}" + (f": {error}" if error else ""), flush=True)

    job = read_json(folder / store.JOB)
    exp = Experiment.from_dict(job["experiment"])
    try:  # the job's backend (this machine or a Ray cluster) runs the experiment
        results = job_backends.run_experiment(job.get("backend"), exp, command=f"python -m core jobs run {job_id}",
                                              job_id=job_id, on_progress=on_progress, on_run=on_run)
    except TransferLabError as exc:
        _update(job_id, status="failed", error=str(exc), finished=time.time())
        print(f"error: {exc}", flush=True)
        return 2
    statuses = [r["status"] for r in results]
    final = "cancelled" if "cancelled" in statuses else "failed" if "failed" in statuses else "done"
    errors = [runs.get_run(r["run_id"])["status_info"].get("error") for r in results if r["status"] == "failed"]
    _update(job_id, status=final, finished=time.time(), error="; ".join(e for e in errors if e) or None)
    return 0 if final == "done" else 3 if final == "cancelled" else 1
