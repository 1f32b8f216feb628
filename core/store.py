"""The results store's layout, and the one place its file names are written down.

`<results>/runs/<run_id>/` holds a run, `<results>/jobs/<job_id>/` a background job, `<results>/default/` the
shipped model. Every path comes from a helper here that validates the id first. Runs and jobs share the status,
progress and cancel helpers and the process check. `RunStore` is what training asks of a run store: `core.runs`
implements it on these folders; another backend (MLflow, say) implements the same functions.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.config import (
    TransferLabError,
    atomic_write_json,
    atomic_write_text,
    results_root,
    validate_name,
    write_record_json,
)
from core.run_records import RunRecord, StageMetrics

# ---- names -------------------------------------------------------------------------------------------------

RUNS = "runs"
JOBS = "jobs"
DEFAULT_MODEL_DIR = "default"
INDEX = ".run_index.sqlite"

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.json"
LABELS = "labels.json"
HISTORY = "history.csv"
CONFUSION = "confusion.json"
CONFUSION_CSV = "confusion.csv"
MODEL = "model.keras"
PROGRESS = "progress.json"
NOTES = "notes.json"
TRACEBACK = "traceback.json"
MLFLOW_RECORD = "mlflow.json"  # where the run was logged in MLflow (core.tracking)
TENSORBOARD = "tensorboard"  # the run's TensorBoard event files (core.tb)
CANCEL = "cancel"
EVALUATIONS = "evaluations"
JOB = "job.json"
LOG = "log.txt"
QUEUE_LOCK = "queue.lock"
MODEL_ARCHIVE_CONFIG = "config.json"  # inside model.keras (a zip): the Keras model's config
TEMP_MODEL = ".model.{pid}.tmp.keras"  # a model being saved by process `pid`; renamed to MODEL when complete

SHIPPED_FILES = (MODEL, CONFIG, STATUS, METRICS, LABELS, HISTORY, CONFUSION_CSV)  # what `ship-default` copies
ZIP_FILES = (CONFIG, STATUS, METRICS, LABELS, HISTORY, CONFUSION_CSV, CONFUSION, PROGRESS, NOTES, MODEL)

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
HEARTBEAT_STALE_S = 120
SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[1] / "results" / DEFAULT_MODEL_DIR
EVAL_SPLITS = ("test", "val", "train", "all")


# ---- paths -------------------------------------------------------------------------------------------------


def runs_dir() -> Path:
    return results_root() / RUNS


def run_dir(run_id: str) -> Path:
    return runs_dir() / validate_name(run_id, "run id")


def default_model_dir() -> Path:
    """The shipped model: `<results root>/default`, else the repository's `results/default` (another root)."""
    own = results_root() / DEFAULT_MODEL_DIR
    return SHIPPED_MODEL_DIR if not (own / MODEL).is_file() and (SHIPPED_MODEL_DIR / MODEL).is_file() else own


def model_dir(run_id: str) -> Path:
    """The folder of a run, or of the shipped default model (`default`)."""
    return default_model_dir() if run_id == DEFAULT_MODEL_DIR else run_dir(run_id)


def model_file(run_id: str) -> Path:
    """Where the run's (or the shipped model's) `model.keras` is, whether it exists or not."""
    return model_dir(run_id) / MODEL


def evaluation_path(run_id: str, dataset: str, split: str) -> Path:
    """`evaluations/<dataset>__<split>.json` inside the run's folder: one file per dataset and split."""
    if split not in EVAL_SPLITS:
        raise TransferLabError(f"split must be one of {', '.join(EVAL_SPLITS)}, not {split!r}.")
    return model_dir(run_id) / EVALUATIONS / f"{validate_name(dataset, 'dataset name')}__{split}.json"


def evaluation_files(run_id: str) -> list[Path]:
    folder = model_dir(run_id) / EVALUATIONS
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def jobs_dir() -> Path:
    return results_root() / JOBS


def job_dir(job_id: str) -> Path:
    return jobs_dir() / validate_name(job_id, "job id")


def index_path() -> Path:
    return results_root() / INDEX


def temp_model_file(folder: Path) -> Path:
    """Where a model is saved before it is renamed to `model.keras` (core.cleanup removes orphans)."""
    return folder / TEMP_MODEL.format(pid=os.getpid())


# ---- shared by runs and jobs -------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def pid_alive(pid: int | None) -> bool:
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
        return None, f"{path.name} holds a JSON {json_kind(value)}, not an object"
    return value, None


def json_kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def write_status(folder: Path, status: dict[str, Any]) -> None:
    """status.json, atomically; on a full disk in place, so that a run or job can still say it failed."""
    write_record_json(folder / STATUS, status)


def update_status(folder: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the folder's status.json (an unreadable one starts afresh)."""
    status = read_object(folder / STATUS)[0] or {}
    status.update(fields)
    write_status(folder, status)
    return status


def heartbeat(folder: Path, **fields: Any) -> None:
    """Says the process is alive (`heartbeat`: now, for a process on another host)."""
    update_status(folder, **fields, heartbeat=time.time())


def write_progress(folder: Path, info: dict[str, Any]) -> None:
    atomic_write_json(folder / PROGRESS, info)


def read_progress(folder: Path) -> dict[str, Any]:
    return read_object(folder / PROGRESS)[0] or {}


def request_cancel(folder: Path) -> None:
    """Leaves the cancel file that the working process polls."""
    atomic_write_text(folder / CANCEL, now_iso())


def cancel_requested(folder: Path) -> bool:
    return (folder / CANCEL).exists()


# ---- the interface -----------------------------------------------------------------------------------------


@runtime_checkable
class RunStore(Protocol):
    """What training, experiments and jobs ask of a run store (`core.runs` is the folder-backed one)."""

    def create_run(self, record: RunRecord) -> str: ...  # returns the new run's id
    def set_status(self, run_id: str, status: str, **fields: Any) -> None: ...
    def heartbeat(self, run_id: str, **fields: Any) -> None: ...
    def write_progress(self, run_id: str, info: dict[str, Any]) -> None: ...
    def write_labels(self, run_id: str, labels: list[str]) -> None: ...
    def append_history(self, run_id: str, row: dict[str, Any]) -> None: ...
    def save_model(self, run_id: str, model: Any) -> Path: ...
    def write_confusion(self, run_id: str, classes: list[str], cells: list[list[int]]) -> None: ...
    def write_metrics(self, run_id: str, metrics: StageMetrics) -> None: ...
    def write_traceback(self, run_id: str, text: str) -> None: ...
    def cancel_requested(self, run_id: str) -> bool: ...
    def request_cancel(self, run_id: str) -> None: ...
    def get_run(self, run_id: str) -> dict[str, Any]: ...
    def load_model(self, run_id: str) -> Any: ...
    def labels_for(self, run_id: str) -> list[str]: ...
