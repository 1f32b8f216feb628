"""The run store on folders: one folder per run under `<results>/runs/<run_id>/` (core.store names its files),
every file written atomically, every read through core.records. It implements `core.store.RunStore`."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import secrets
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from core import records, run_index, store
from core.config import TransferLabError, atomic_write_json, atomic_write_text, results_root
from core.records import get_run
from core.run_records import RunRecord, StageMetrics
from core.run_records import summary_row as summary_row
from core.store import (
    CONFIG,
    DEFAULT_MODEL_DIR,
    FINISHED,
    LABELS,
    METRICS,
    STATUSES,
    model_dir,
    model_file,
    now_iso,
    run_dir,
)
from core.store import runs_dir as runs_dir  # the store's paths are the run store's API too


def new_run_id(dataset: str, arch: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{dataset}-{arch}-{secrets.token_hex(2)}"


# ---- writing -----------------------------------------------------------------------------------------------


def create_run(record: RunRecord) -> str:
    """Store a new run's record (`config.json`) with status `queued`; returns its id."""
    run_id = new_run_id(record.stage["dataset"], record.stage["arch"])
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=False)
    atomic_write_json(folder / store.CONFIG, dataclasses.replace(record, run_id=run_id, created=now_iso()).to_dict())
    set_status(run_id, "queued")
    return run_id


def set_status(run_id: str, status: str, **fields: Any) -> None:
    assert status in STATUSES, status
    folder = run_dir(run_id)
    current = records.read_status(folder)[0] or {}
    current.update(fields, status=status, updated=now_iso(), heartbeat=time.time())
    if status == "running":
        current.setdefault("pid", os.getpid())
        current.setdefault("host", os.uname().nodename)
        current.setdefault("started", now_iso())
    if status in FINISHED:
        current["finished"] = now_iso()
    store.write_status(folder, current)
    run_index.refresh(run_id)


def heartbeat(run_id: str, **fields: Any) -> None:
    store.heartbeat(run_dir(run_id), **fields)


def write_progress(run_id: str, info: dict[str, Any]) -> None:
    store.write_progress(run_dir(run_id), info)


def write_config(run_id: str, config: dict[str, Any]) -> None:
    """Rewrite a run's record (a Ray driver adds the hardware its worker reported)."""
    atomic_write_json(run_dir(run_id) / CONFIG, config)
    run_index.refresh(run_id)


def write_labels(run_id: str, labels: list[str]) -> None:
    atomic_write_json(run_dir(run_id) / LABELS, labels)
    run_index.refresh(run_id)


def write_metrics(run_id: str, metrics: StageMetrics | dict[str, Any]) -> None:
    """A finished stage's metrics (a plain dict: as stored, e.g. an older record's fields)."""
    atomic_write_json(run_dir(run_id) / METRICS,
                      metrics.to_dict() if isinstance(metrics, StageMetrics) else metrics)
    run_index.refresh(run_id)


def write_confusion(run_id: str, classes: list[str], cells: list[list[int]]) -> None:
    from core import confusion  # numpy: not for the listing commands

    confusion.write(run_dir(run_id), classes, cells)


def write_traceback(run_id: str, text: str) -> None:
    atomic_write_json(run_dir(run_id) / store.TRACEBACK, {"traceback": text})


def append_history(run_id: str, row: dict[str, Any]) -> None:
    """Rewrite history.csv with one more row (atomic: a killed run never leaves a torn CSV)."""
    rows = read_history(run_id) + [row]
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir(run_id) / store.HISTORY, buf.getvalue())


def save_model(run_id: str, model: Any) -> Path:
    """Save to a temp name, then rename: `model.keras` is either complete or absent."""
    folder = run_dir(run_id)
    tmp, final = store.temp_model_file(folder), folder / store.MODEL
    try:
        model.save(tmp)
        os.replace(tmp, final)
        run_index.refresh(run_id)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise TransferLabError(f"Could not save the model of run {run_id}: {exc.strerror or exc}.") from None
        raise
    return final


def save_evaluation(run_id: str, result: dict[str, Any]) -> Path:
    """Store (or replace) one evaluation of the run's model, atomically."""
    atomic_write_json(path := store.evaluation_path(run_id, result["dataset"], result["split"]), result)
    return path


def request_cancel(run_id: str) -> None:
    run = get_run(run_id)
    if run["status"] in FINISHED:
        raise TransferLabError(f"Run {run_id} is already {run['status']}.")
    store.request_cancel(run_dir(run_id))
    if run["status"] == "queued":
        set_status(run_id, "cancelled", error="cancelled before it started")


def cancel_requested(run_id: str) -> bool:
    return store.cancel_requested(run_dir(run_id))


def delete_run(run_id: str) -> None:
    shutil.rmtree(run_dir(run_id), ignore_errors=True)
    run_index.refresh(run_id)


def ship_default(run_id: str) -> Path:
    """Copy a finished run's model and record to `results/default/`: the model Classify uses on a fresh clone."""
    run = get_run(run_id)
    if run["status"] != "done" or not run["has_model"]:
        raise TransferLabError(f"Run {run_id} is {run['status']} and has no model to ship.")
    target = results_root() / DEFAULT_MODEL_DIR
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in store.SHIPPED_FILES:
        if (run_dir(run_id) / name).exists():
            shutil.copy2(run_dir(run_id) / name, tmp / name)
    if (run_dir(run_id) / store.EVALUATIONS).is_dir():  # the model's scores on other datasets travel with it
        shutil.copytree(run_dir(run_id) / store.EVALUATIONS, tmp / store.EVALUATIONS)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


# ---- reading -----------------------------------------------------------------------------------------------


def list_runs() -> list[dict[str, Any]]:
    """One flat summary row per run (core.run_records.summary_row), newest first, through the run index (core.run_index)."""
    return run_index.rows()


def read_history(run_id: str) -> list[dict[str, Any]]:
    return records.read_history_rows(model_dir(run_id) / store.HISTORY)


def read_confusion(run_id: str, max_dense: int = 200) -> tuple[list[str], list[list[int]] | None] | None:
    """The run's test confusion matrix (core.records.read_confusion)."""
    return records.read_confusion(model_dir(run_id), max_dense)


def lineage(run_id: str) -> list[dict[str, Any]]:
    """The chain of runs from the first stage down to this one."""
    chain, seen = [], set()
    current: str | None = run_id
    while current and current not in seen:
        seen.add(current)
        try:
            run = get_run(current)
        except TransferLabError:
            break
        chain.append(run)
        current = run["config"].get("parent_run")
    return list(reversed(chain))


def list_evaluations(run_id: str) -> list[dict[str, Any]]:
    return records.list_evaluations(run_id)


def has_default_model() -> bool:
    return model_file(DEFAULT_MODEL_DIR).is_file()


def latest_model_run() -> str | None:
    """The newest finished run with a model file that looks loadable; None when there is none."""
    for row in list_runs():
        if row["status"] == "done" and row["has_model"] and records.model_file_ok(run_dir(row["run_id"])):
            return row["run_id"]
    return None


def model_path(run_id: str) -> Path:
    """The saved model of a finished run, or of the shipped default model (`default`)."""
    path = model_file(run_id)
    if not path.is_file():
        raise TransferLabError(f"Run {run_id} has no saved model ({path.name} missing).")
    return path


def load_model(run_id: str) -> Any:
    """Load with safe_mode=True; a corrupt or missing file is one clear error."""
    import keras

    path = model_path(run_id)
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        if "safe_mode" in str(exc):
            raise TransferLabError(f"The model file of run {run_id} was refused: it holds Python code (a Lambda "
                                   "layer) and models are only loaded with safe_mode=True.") from None
        raise TransferLabError(f"The model file of run {run_id} cannot be loaded ({type(exc).__name__}).") from None


def labels_for(run_id: str) -> list[str]:
    labels, why = records.read_labels(model_dir(run_id))
    if labels is None:
        raise TransferLabError(f"Run {run_id} has no usable {LABELS} ({why or 'missing'}).")
    return labels
