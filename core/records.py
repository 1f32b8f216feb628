"""Validating readers for the stored records: a run's files and a dataset's `dataset.json`.

Every file a user (or a crash, or an older version) may have left malformed is read here, checked against its
shape (for metrics: the types of core.run_records.StageMetrics), and turned into either a clean value or a
one-line reason. Callers never see a malformed record: `get_run` gathers one run's files this way.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import zipfile
from pathlib import Path
from typing import Any

from core import store
from core.config import TransferLabError, read_json
from core.run_records import METRIC_KINDS
from core.store import CONFIG, CONFUSION, LABELS, METRICS, MODEL, STATUS, STATUSES, json_kind, read_object

_KIND_PROBLEMS = {"number": "is not a number", "names": "is not a list of names", "rows": "is not a list of rows",
                  "object": "is not an object"}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _has_kind(value: Any, kind: str) -> bool:
    return {"number": is_number, "names": is_string_list, "object": lambda v: isinstance(v, dict),
            "rows": lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v)}[kind](value)


# ---- runs ------------------------------------------------------------------------------------------------


def read_config(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The run's config.json with `stage` always an object; problems as reasons."""
    config, why = read_object(folder / CONFIG)
    if config is None:
        return {"stage": {}}, [why or f"{CONFIG} is missing"]
    problems = []
    if not isinstance(config.setdefault("stage", {}), dict):
        problems.append(f"{CONFIG}'s stage is a {json_kind(config['stage'])}, not an object")
        config = {**config, "stage": {}}
    for key in ("created", "preset", "pipeline_name", "parent_run", "command"):
        if config.get(key) is not None and not isinstance(config[key], str):
            problems.append(f"{CONFIG}'s {key} is not a string")
            config = {**config, key: None}
    return config, problems


def read_status(folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """status.json as an object with a known `status`; None when absent (an older version's run)."""
    status, why = read_object(folder / STATUS)
    if status is None:
        return None, [why] if why else []
    if status.get("status") not in STATUSES:
        return None, [f"{STATUS}'s status {status.get('status')!r} is not one of {', '.join(STATUSES)}"]
    for key in ("pid", "heartbeat"):
        if status.get(key) is not None and not is_number(status[key]):
            status = {k: v for k, v in status.items() if k != key}
    if status.get("error") is not None and not isinstance(status["error"], str):
        status = {**status, "error": str(status["error"])}
    return status, []


def read_metrics(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """metrics.json with every known field of the right type (wrong ones dropped and named as problems)."""
    metrics, why = read_object(folder / METRICS)
    if metrics is None:
        return {}, [why] if why else []
    problems, clean = [], dict(metrics)
    for key, kind in METRIC_KINDS.items():
        if clean.get(key) is not None and kind in _KIND_PROBLEMS and not _has_kind(clean[key], kind):
            problems.append(f"{METRICS}'s {key} {_KIND_PROBLEMS[kind]}")
            clean[key] = None
    clean.pop("confusion", None)  # older runs stored the matrix here too: confusion.json is the one copy
    return clean, problems


def divergence(metrics: dict[str, Any]) -> str | None:
    """Why a finished run's model is unusable by its own numbers: a NaN or infinite loss."""
    for key in ("train_loss", "val_loss", "test_loss"):
        if is_number(metrics.get(key)) and not math.isfinite(metrics[key]):
            return f"the model diverged ({key.replace('_', ' ')} is {metrics[key]}): lower the learning rate"
    return None


def model_file_ok(folder: Path) -> bool:
    """A cheap look at model.keras: a readable zip holding a Keras config (no weights are loaded)."""
    try:
        with zipfile.ZipFile(folder / MODEL) as zf:
            return store.MODEL_ARCHIVE_CONFIG in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_labels(folder: Path) -> tuple[list[str] | None, str | None]:
    """labels.json as a non-empty list of distinct class names; (None, reason) when it is not one."""
    path = folder / LABELS
    if not path.exists():
        return None, None
    labels = read_json(path)
    if not is_string_list(labels) or not labels:
        return None, f"{LABELS} is not a list of class names"
    if len(set(labels)) != len(labels):
        return None, f"{LABELS} names a class twice"
    return labels, None


def read_confusion(folder: Path, max_dense: int = 200) -> tuple[list[str], list[list[int]] | None] | None:
    """(classes, dense matrix) from confusion.json, sparse or (older runs) dense; the matrix is None above
    `max_dense` classes (too large to draw or hold); None when the file is absent or malformed."""
    data, _ = read_object(folder / CONFUSION)
    if data is None or not is_string_list(data.get("classes")):
        return None
    classes, n = data["classes"], len(data["classes"])
    if "sparse" in data:
        cells = data["sparse"]
        if not isinstance(cells, list) or not all(
                isinstance(c, list) and len(c) == 3 and all(type(v) is int for v in c)
                and 0 <= c[0] < n and 0 <= c[1] < n for c in cells):
            return None
        if n > max_dense:
            return classes, None
        matrix = [[0] * n for _ in range(n)]
        for i, j, count in cells:
            matrix[i][j] = count
        return classes, matrix
    matrix = data.get("matrix")
    if not (isinstance(matrix, list) and len(matrix) == n and all(
            isinstance(row, list) and len(row) == n and all(is_number(v) and math.isfinite(v) for v in row)
            for row in matrix)):
        return None
    return classes, matrix if n <= max_dense else None


def read_history_rows(path: Path) -> list[dict[str, Any]]:
    """history.csv as rows of numbers (epoch, loss, ...); an unreadable or binary file gives no rows."""
    if not path.exists():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [{k: _number(v) for k, v in row.items() if isinstance(k, str)} for row in rows]


def _number(value: Any) -> int | float | None:
    """A CSV cell as a number; empty or not a number gives None."""
    if not isinstance(value, str):
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return None


# ---- one run -----------------------------------------------------------------------------------------------


def effective_status(status: dict[str, Any]) -> dict[str, Any]:
    """A `running` run whose process is gone is reported as failed (it was killed or crashed)."""
    if status.get("status") != "running":
        return status
    same_host = status.get("host") in (None, os.uname().nodename)
    gone = not store.pid_alive(status.get("pid")) if same_host else (
        time.time() - float(status.get("heartbeat", 0)) > store.HEARTBEAT_STALE_S)
    if gone:
        return {**status, "status": "failed", "error": "the training process ended without finishing (killed?)"}
    return status


def _status_of_older_run(folder: Path) -> dict[str, Any]:
    """No (readable) status.json: an older version's finished run has metrics and a model; anything else
    stopped before it finished (it is never `done`, so never `latest`)."""
    if (folder / MODEL).is_file() and read_object(folder / METRICS)[0] is not None:
        return {"status": "done", "note": f"no {STATUS} (written by an older version); metrics and model present"}
    return {"status": "failed", "error": f"no {STATUS}: the run was interrupted (or written by an older "
                                         "version) before it finished"}


def list_evaluations(run_id: str) -> list[dict[str, Any]]:
    """Every stored evaluation of the run's model, by file name; unreadable files are left out."""
    found = (read_json(p) for p in store.evaluation_files(run_id))
    return [e for e in found if isinstance(e, dict) and "dataset" in e and "confusion" in e]


def get_run(run_id: str) -> dict[str, Any]:
    """Everything about one run (or the shipped `default`), through the validating readers above: a malformed
    file makes the run `failed` with the reason, never an exception."""
    folder = store.model_dir(run_id)
    if not folder.is_dir():
        raise TransferLabError(f"Run {run_id!r} does not exist in {store.runs_dir()}.")
    config, problems = read_config(folder)
    status, status_problems = read_status(folder)
    metrics, metric_problems = read_metrics(folder)
    labels, label_problem = read_labels(folder)
    problems += status_problems + metric_problems + ([label_problem] if label_problem else [])
    status = effective_status(status or _status_of_older_run(folder))
    if problems:
        status = {**status, "status": "failed", "error": "unreadable run record: " + "; ".join(problems)}
    elif status["status"] == "done" and (diverged := divergence(metrics)):
        status = {**status, "status": "failed", "error": diverged}
    return {"run_id": run_id, "config": config, "status": status["status"], "status_info": status,
            "metrics": metrics, "labels": labels or [], "progress": store.read_progress(folder),
            "has_model": (folder / MODEL).is_file(), "evaluations": list_evaluations(run_id),
            "path": str(folder), "problems": problems}


# ---- datasets --------------------------------------------------------------------------------------------

DATASET_KINDS = ("local", "idx")


def dataset_problem(meta: Any) -> str | None:
    """Why a dataset.json cannot be used; None when it has every field the readers need."""
    if not isinstance(meta, dict):
        return f"dataset.json holds a JSON {json_kind(meta)}, not an object"
    if meta.get("kind") not in DATASET_KINDS:
        return f"dataset.json's kind {meta.get('kind')!r} is not one of {', '.join(DATASET_KINDS)}"
    if not is_string_list(meta.get("classes")) or not meta["classes"]:
        return "dataset.json has no list of class names"
    counts = meta.get("counts")
    if not isinstance(counts, dict) or not all(
            isinstance(c, dict) and all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in c.items())
            for c in counts.values()):
        return "dataset.json's counts are not split -> class -> number"
    if not isinstance(meta.get("source", ""), str):
        return "dataset.json's source is not a string"
    if meta["kind"] == "local" and not is_string_list(meta.get("splits")):
        return "dataset.json has no list of splits"
    if meta["kind"] == "idx":
        files = meta.get("files")
        if not isinstance(files, dict) or not all(
                isinstance(p, dict) and isinstance(p.get("images"), str) and isinstance(p.get("labels"), str)
                for p in files.values()):
            return "dataset.json's files are not split -> {images, labels}"
    return None


def read_dataset_meta(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(meta, None) for a usable dataset.json; (None, None) when absent; (None, reason) when malformed."""
    if not Path(path).exists():
        return None, None
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "dataset.json is not valid JSON"
    why = dataset_problem(meta)
    return (None, why) if why else (meta, None)
