"""Validating readers for the stored records: a run's files and a dataset's `dataset.json`.

Every file a user (or a crash, or an older version) may have left malformed is read here, checked against its
shape, and turned into either a clean value or a one-line reason. Callers never see a malformed record.
"""

from __future__ import annotations

import csv
import json
import math
import zipfile
from pathlib import Path
from typing import Any

from core.config import read_json

RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled")

_NUMERIC_METRICS = (
    "test_accuracy", "test_loss", "kappa", "val_accuracy", "val_loss", "train_accuracy", "train_loss",
    "best_epoch", "epochs_run", "wall_time_s", "fit_time_s", "data_time_s", "eval_time_s", "time_to_target_s",
    "target_accuracy", "ms_per_step", "images_per_s", "trainable_params", "non_trainable_params", "total_params",
    "inference_ms_per_image", "n_train", "n_val", "n_test", "input_size", "seed", "replicas",
)
_STRING_LISTS = ("classes", "frozen_layers")


def read_object(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) for a JSON object; (None, None) when the file is absent; (None, reason) otherwise."""
    path = Path(path)
    if not path.exists():
        return None, None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return None, f"{path.name} is not text"
    except ValueError:
        return None, f"{path.name} is not valid JSON"
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror or exc})"
    if not isinstance(value, dict):
        return None, f"{path.name} holds a JSON {_json_kind(value)}, not an object"
    return value, None


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# ---- runs ------------------------------------------------------------------------------------------------


def read_config(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The run's config.json with `stage` always an object; problems as reasons."""
    config, why = read_object(folder / "config.json")
    if config is None:
        return {"stage": {}}, [why or "config.json is missing"]
    problems = []
    if not isinstance(config.setdefault("stage", {}), dict):
        problems.append(f"config.json's stage is a {_json_kind(config['stage'])}, not an object")
        config = {**config, "stage": {}}
    for key in ("created", "preset", "pipeline_name", "parent_run", "command"):
        if config.get(key) is not None and not isinstance(config[key], str):
            problems.append(f"config.json's {key} is not a string")
            config = {**config, key: None}
    return config, problems


def read_status(folder: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """status.json as an object with a known `status`; None when absent (an older version's run)."""
    status, why = read_object(folder / "status.json")
    if status is None:
        return None, [why] if why else []
    if status.get("status") not in RUN_STATUSES:
        return None, [f"status.json's status {status.get('status')!r} is not one of {', '.join(RUN_STATUSES)}"]
    for key in ("pid", "heartbeat"):
        if status.get(key) is not None and not is_number(status[key]):
            status = {k: v for k, v in status.items() if k != key}
    if status.get("error") is not None and not isinstance(status["error"], str):
        status = {**status, "error": str(status["error"])}
    return status, []


def read_metrics(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """metrics.json with every known field of the right type (wrong ones dropped and named as problems)."""
    metrics, why = read_object(folder / "metrics.json")
    if metrics is None:
        return {}, [why] if why else []
    problems, clean = [], dict(metrics)
    for key in _NUMERIC_METRICS:
        if clean.get(key) is not None and not is_number(clean[key]):
            problems.append(f"metrics.json's {key} is not a number")
            clean[key] = None
    for key in _STRING_LISTS:
        if clean.get(key) is not None and not is_string_list(clean[key]):
            problems.append(f"metrics.json's {key} is not a list of names")
            clean[key] = None
    rows = clean.get("per_class")
    if rows is not None and not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
        problems.append("metrics.json's per_class is not a list of rows")
        clean["per_class"] = None
    if clean.get("calibration") is not None and not isinstance(clean["calibration"], dict):
        problems.append("metrics.json's calibration is not an object")
        clean["calibration"] = None
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
        with zipfile.ZipFile(folder / "model.keras") as zf:
            return "config.json" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_labels(folder: Path) -> tuple[list[str] | None, str | None]:
    """labels.json as a non-empty list of distinct class names; (None, reason) when it is not one."""
    path = folder / "labels.json"
    if not path.exists():
        return None, None
    labels = read_json(path)
    if not is_string_list(labels) or not labels:
        return None, "labels.json is not a list of class names"
    if len(set(labels)) != len(labels):
        return None, "labels.json names a class twice"
    return labels, None


def read_progress(folder: Path) -> dict[str, Any]:
    progress, _ = read_object(folder / "progress.json")
    return progress or {}


def read_confusion(folder: Path, max_dense: int = 200) -> tuple[list[str], list[list[int]] | None] | None:
    """(classes, dense matrix) from confusion.json, sparse or (older runs) dense; the matrix is None above
    `max_dense` classes (too large to draw or hold); None when the file is absent or malformed."""
    data, _ = read_object(folder / "confusion.json")
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


# ---- datasets --------------------------------------------------------------------------------------------

DATASET_KINDS = ("local", "idx")


def dataset_problem(meta: Any) -> str | None:
    """Why a dataset.json cannot be used; None when it has every field the readers need."""
    if not isinstance(meta, dict):
        return f"dataset.json holds a JSON {_json_kind(meta)}, not an object"
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
