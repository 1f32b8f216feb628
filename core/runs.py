"""The run store: one folder per run under `<results>/runs/<run_id>/`, every file written atomically."""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import records, run_index
from core.config import (
    TransferLabError,
    atomic_write_json,
    atomic_write_text,
    read_json,
    results_root,
    validate_name,
    write_record_json,
)

STATUSES = ("queued", "running", "done", "failed", "cancelled")
HEARTBEAT_STALE_S = 120
DEFAULT_MODEL_DIR = "default"
SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[1] / "results" / DEFAULT_MODEL_DIR
EVAL_SPLITS = ("test", "val", "train", "all")


def runs_dir() -> Path:
    return results_root() / "runs"


def run_dir(run_id: str) -> Path:
    return runs_dir() / validate_name(run_id, "run id")


def new_run_id(dataset: str, arch: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{dataset}-{arch}-{secrets.token_hex(2)}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def create_run(record: dict[str, Any]) -> str:
    """Store a new run's record (`config.json`) with status `queued`; returns its id."""
    stage = record["stage"]
    run_id = new_run_id(stage["dataset"], stage["arch"])
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=False)
    atomic_write_json(folder / "config.json", {"run_id": run_id, "created": now_iso(), **record})
    set_status(run_id, "queued")
    return run_id


def set_status(run_id: str, status: str, **fields: Any) -> None:
    assert status in STATUSES, status
    path = run_dir(run_id) / "status.json"
    current = records.read_status(path.parent)[0] or {}
    current.update(fields, status=status, updated=now_iso(), heartbeat=time.time())
    if status == "running":
        current.setdefault("pid", os.getpid())
        current.setdefault("host", os.uname().nodename)
        current.setdefault("started", now_iso())
    if status in ("done", "failed", "cancelled"):
        current["finished"] = now_iso()
    write_record_json(path, current)
    run_index.refresh(run_id)


def heartbeat(run_id: str, **fields: Any) -> None:
    path = run_dir(run_id) / "status.json"
    current = records.read_object(path)[0] or {}
    current.update(fields, heartbeat=time.time())
    atomic_write_json(path, current)


def write_json(run_id: str, name: str, obj: Any) -> None:
    atomic_write_json(run_dir(run_id) / name, obj)
    if name in ("metrics.json", "labels.json", "config.json"):
        run_index.refresh(run_id)


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
    atomic_write_text(run_dir(run_id) / "history.csv", buf.getvalue())


def read_history(run_id: str) -> list[dict[str, Any]]:
    return records.read_history_rows(model_dir(run_id) / "history.csv")


def save_model(run_id: str, model: Any) -> Path:
    """Save to a temp name, then rename: `model.keras` is either complete or absent."""
    folder = run_dir(run_id)
    tmp = folder / f".model.{os.getpid()}.tmp.keras"
    final = folder / "model.keras"
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


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def effective_status(status: dict[str, Any]) -> dict[str, Any]:
    """A `running` run whose process is gone is reported as failed (it was killed or crashed)."""
    if status.get("status") != "running":
        return status
    same_host = status.get("host") in (None, os.uname().nodename)
    gone = not _pid_alive(status.get("pid")) if same_host else (
        time.time() - float(status.get("heartbeat", 0)) > HEARTBEAT_STALE_S)
    if gone:
        return {**status, "status": "failed", "error": "the training process ended without finishing (killed?)"}
    return status


def _status_of_older_run(folder: Path) -> dict[str, Any]:
    """No (readable) status.json: an older version's finished run has metrics and a model; anything else
    stopped before it finished (it is never `done`, so never `latest`)."""
    if (folder / "model.keras").is_file() and records.read_object(folder / "metrics.json")[0] is not None:
        return {"status": "done", "note": "no status.json (written by an older version); metrics and model present"}
    return {"status": "failed", "error": "no status.json: the run was interrupted (or written by an older "
                                         "version) before it finished"}


def get_run(run_id: str) -> dict[str, Any]:
    """Everything about one run (or the shipped `default`), through the validating readers of core.records:
    a malformed file makes the run `failed` with the reason, never an exception."""
    folder = model_dir(run_id)
    if not folder.is_dir():
        raise TransferLabError(f"Run {run_id!r} does not exist in {runs_dir()}.")
    config, problems = records.read_config(folder)
    status, status_problems = records.read_status(folder)
    metrics, metric_problems = records.read_metrics(folder)
    labels, label_problem = records.read_labels(folder)
    problems += status_problems + metric_problems + ([label_problem] if label_problem else [])
    status = effective_status(status or _status_of_older_run(folder))
    if problems:
        status = {**status, "status": "failed", "error": "unreadable run record: " + "; ".join(problems)}
    elif status["status"] == "done" and (diverged := records.divergence(metrics)):
        status = {**status, "status": "failed", "error": diverged}
    return {"run_id": run_id, "config": config, "status": status["status"], "status_info": status,
            "metrics": metrics, "labels": labels or [], "progress": records.read_progress(folder),
            "has_model": (folder / "model.keras").is_file(), "evaluations": list_evaluations(run_id),
            "path": str(folder), "problems": problems}


def list_runs() -> list[dict[str, Any]]:
    """One flat summary row per run, newest first (through the run index, core.run_index)."""
    return run_index.rows()


def summary_row(run: dict[str, Any]) -> dict[str, Any]:
    cfg, m, stage = run["config"], run["metrics"], run["config"].get("stage", {})
    return {
        "run_id": run["run_id"],
        "status": run["status"],
        "created": cfg.get("created"),
        "preset": cfg.get("preset"),
        "pipeline": cfg.get("pipeline_name"),
        "pipeline_id": cfg.get("pipeline_id"),
        "stage_index": cfg.get("stage_index"),
        "repeat": cfg.get("repeat_index"),
        "method": cfg.get("method"),
        "parent_run": cfg.get("parent_run"),
        "dataset": stage.get("dataset"),
        "arch": stage.get("arch"),
        "source": stage.get("source"),
        "freeze": stage.get("freeze"),
        "seed": stage.get("seed"),
        "epochs": stage.get("epochs"),
        "epochs_run": m.get("epochs_run"),
        "limit_per_class": stage.get("limit_per_class"),
        "n_train": m.get("n_train"),
        "n_classes": len(run["labels"]) or None,
        "target_accuracy": stage.get("target_accuracy", m.get("target_accuracy")),
        "test_accuracy": m.get("test_accuracy"),
        "val_accuracy": m.get("val_accuracy"),
        "kappa": m.get("kappa"),
        "wall_time_s": m.get("wall_time_s"),
        "time_to_target_s": m.get("time_to_target_s"),
        "trainable_params": m.get("trainable_params"),
        "non_trainable_params": m.get("non_trainable_params"),
        "device": m.get("device"),
        "has_model": run["has_model"],
        "error": run["status_info"].get("error"),
    }


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


def request_cancel(run_id: str) -> None:
    run = get_run(run_id)
    if run["status"] in ("done", "failed", "cancelled"):
        raise TransferLabError(f"Run {run_id} is already {run['status']}.")
    atomic_write_text(run_dir(run_id) / "cancel", now_iso())
    if run["status"] == "queued":
        set_status(run_id, "cancelled", error="cancelled before it started")


def cancel_requested(run_id: str) -> bool:
    return (run_dir(run_id) / "cancel").exists()


def delete_run(run_id: str) -> None:
    shutil.rmtree(run_dir(run_id), ignore_errors=True)
    run_index.refresh(run_id)


def default_model_dir() -> Path:
    """The shipped model: `<results root>/default`, else the repository's `results/default` (another root)."""
    own = results_root() / DEFAULT_MODEL_DIR
    return SHIPPED_MODEL_DIR if not (own / "model.keras").is_file() and (
        SHIPPED_MODEL_DIR / "model.keras").is_file() else own


def ship_default(run_id: str) -> Path:
    """Copy a finished run's model and record to `results/default/`: the model Classify uses on a fresh clone."""
    run = get_run(run_id)
    if run["status"] != "done" or not run["has_model"]:
        raise TransferLabError(f"Run {run_id} is {run['status']} and has no model to ship.")
    target = results_root() / DEFAULT_MODEL_DIR
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("model.keras", "config.json", "status.json", "metrics.json", "labels.json", "history.csv",
                 "confusion.csv"):
        if (run_dir(run_id) / name).exists():
            shutil.copy2(run_dir(run_id) / name, tmp / name)
    if (run_dir(run_id) / "evaluations").is_dir():  # the model's scores on other datasets travel with it
        shutil.copytree(run_dir(run_id) / "evaluations", tmp / "evaluations")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def latest_model_run() -> str | None:
    """The newest finished run with a model file that looks loadable; None when there is none."""
    for row in list_runs():
        if row["status"] == "done" and row["has_model"] and records.model_file_ok(run_dir(row["run_id"])):
            return row["run_id"]
    return None


def model_dir(run_id: str) -> Path:
    """The folder of a run, or of the shipped default model (`default`)."""
    return default_model_dir() if run_id == DEFAULT_MODEL_DIR else run_dir(run_id)


def evaluation_path(run_id: str, dataset: str, split: str) -> Path:
    """`evaluations/<dataset>__<split>.json` inside the run's folder: one file per dataset and split."""
    if split not in EVAL_SPLITS:
        raise TransferLabError(f"split must be one of {', '.join(EVAL_SPLITS)}, not {split!r}.")
    return model_dir(run_id) / "evaluations" / f"{validate_name(dataset, 'dataset name')}__{split}.json"


def save_evaluation(run_id: str, result: dict[str, Any]) -> Path:
    """Store (or replace) one evaluation of the run's model, atomically."""
    atomic_write_json(path := evaluation_path(run_id, result["dataset"], result["split"]), result)
    return path


def list_evaluations(run_id: str) -> list[dict[str, Any]]:
    """Every stored evaluation of the run's model, by file name; unreadable files are left out."""
    folder = model_dir(run_id) / "evaluations"
    found = (read_json(p) for p in sorted(folder.glob("*.json"))) if folder.is_dir() else ()
    return [e for e in found if isinstance(e, dict) and "dataset" in e and "confusion" in e]


def model_path(run_id: str) -> Path:
    """The saved model of a finished run, or of the shipped default model (`default`)."""
    path = model_dir(run_id) / "model.keras"
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
        raise TransferLabError(f"Run {run_id} has no usable labels.json ({why or 'missing'}).")
    return labels
