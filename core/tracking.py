"""Every run also in MLflow when MLFLOW_TRACKING_URI is set: params (the stage config), per-epoch and test
metrics, tags (preset, pipeline, stage, lineage parent, device, commit), artifacts (model, confusion matrix,
history, record). A run is logged from its stored record once it has finished, so `python -m core runs
export-mlflow` logs stored runs the same way. One TransferLab run is one MLflow run (tag `transferlab_run_id`):
logging again finds it and adds nothing. An MLflow failure never fails or loses a run: it is one note in the
log and in the run's `mlflow.json`."""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
from datetime import datetime
from typing import Any

from core import records, runs, store
from core.config import TransferLabError, atomic_write_json
from core.console import print_json

URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "TransferLab"
RUN_TAG = "transferlab_run_id"
RECORD_FILE = store.MLFLOW_RECORD
MLFLOW_STATUS = {"done": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
# a tracking server that is down must not hold each finished run up for minutes (MLflow: 7 retries, 120 s);
# our own line names the MLflow run (MLflow's "View run" line would break `--json` output)
CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "30", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def enabled() -> bool:
    return bool(os.environ.get(URI_ENV, "").strip())


def run_finished(run_id: str) -> None:
    """The hook where a run ends: log it to MLflow when enabled. Never raises."""
    if not enabled():
        return
    try:
        mlflow_id, _ = log_run(run_id)
        record: dict[str, Any] = {"tracking_uri": os.environ[URI_ENV], "mlflow_run_id": mlflow_id}
        print(f"run {run_id}: logged to MLflow ({mlflow_id})", flush=True)
    except Exception as exc:  # noqa: BLE001 - any MLflow failure is reported, the run stays as it is
        why = _one_line(exc)
        record = {"tracking_uri": os.environ.get(URI_ENV), "error": why}
        print(f"note: run {run_id} was not logged to MLflow ({why}); the run itself is kept: log it later with "
              f"python -m core runs export-mlflow {run_id}", file=sys.stderr, flush=True)
    try:
        atomic_write_json(runs.run_dir(run_id) / RECORD_FILE, record)
    except (OSError, TransferLabError):
        pass


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _client() -> Any:
    for key, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=os.environ[URI_ENV])


def _experiment_id(client: Any) -> str:
    name = os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another process created it a moment ago
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _ms(iso: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp() * 1000)
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and not isinstance(value, bool) else None


def log_run(run_id: str, client: Any = None) -> tuple[str, bool]:
    """Log one finished run; (MLflow run id, whether it was logged now). A run already complete in MLflow is
    left as it is; one half-logged by an interrupted export is replaced."""
    from mlflow.entities import ViewType

    run = runs.get_run(run_id)
    if run["status"] not in MLFLOW_STATUS:
        raise TransferLabError(f"Run {run_id} is {run['status']}: it is logged to MLflow when it finishes.")
    client = client or _client()
    experiment_id = _experiment_id(client)
    for old in client.search_runs([experiment_id], f"tags.{RUN_TAG} = '{run_id}'", ViewType.ACTIVE_ONLY):
        if old.info.status in MLFLOW_STATUS.values():
            return old.info.run_id, False
        client.delete_run(old.info.run_id)
    cfg, info = run["config"], run["status_info"]
    start = _ms(info.get("started") or cfg.get("created"))
    mlflow_run = client.create_run(experiment_id, start_time=start, tags=_tags(client, experiment_id, run),
                                   run_name=run_id)
    mlflow_id = mlflow_run.info.run_id
    _log_values(client, mlflow_id, run, start or 0)
    _log_artifacts(client, mlflow_id, run)
    client.set_terminated(mlflow_id, MLFLOW_STATUS[run["status"]], end_time=_ms(info.get("finished")))
    return mlflow_id, True


def _tags(client: Any, experiment_id: str, run: dict[str, Any]) -> dict[str, str]:
    cfg, metrics = run["config"], run["metrics"]
    hardware = cfg.get("hardware") if isinstance(cfg.get("hardware"), dict) else {}
    tags = {RUN_TAG: run["run_id"], "status": run["status"], "preset": cfg.get("preset"),
            "pipeline": cfg.get("pipeline_name"), "pipeline_id": cfg.get("pipeline_id"),
            "stage": None if cfg.get("stage_index") is None else f"{cfg['stage_index'] + 1} of {cfg.get('stage_count')}",
            "repeat": cfg.get("repeat_index"), "method": cfg.get("method"), "parent_run": cfg.get("parent_run"),
            "device": metrics.get("device") or hardware.get("device"),
            "commit": metrics.get("commit") or hardware.get("commit"), "job_id": cfg.get("job_id"),
            "error": run["status_info"].get("error"), "mlflow.source.git.commit": hardware.get("commit")}
    parent = cfg.get("parent_run")
    if parent:  # the lineage as MLflow nesting, when the parent is logged too
        from mlflow.entities import ViewType

        found = client.search_runs([experiment_id], f"tags.{RUN_TAG} = '{parent}'", ViewType.ACTIVE_ONLY)
        if found:
            tags["mlflow.parentRunId"] = found[0].info.run_id
    return {k: str(v)[:5000] for k, v in tags.items() if v is not None}


def _log_values(client: Any, mlflow_id: str, run: dict[str, Any], start_ms: int) -> None:
    """Params: the stage config. Metrics: every epoch of history.csv (step = epoch), then the run's results
    (a name the history uses too gets `final_`: e.g. val_accuracy of the restored best weights)."""
    from mlflow.entities import Metric, Param

    params = [Param(k, (",".join(map(str, v)) if isinstance(v, list) else str(v))[:6000])
              for k, v in sorted(run["config"].get("stage", {}).items())]
    metrics, per_epoch = [], set()
    for row in runs.read_history(run["run_id"]):
        epoch = int(_number(row.get("epoch")) or 0)
        stamp = start_ms + int((_number(row.get("elapsed_s")) or 0) * 1000)
        for key, value in row.items():
            if key != "epoch" and (number := _number(value)) is not None:
                metrics.append(Metric(key, number, stamp, epoch))
                per_epoch.add(key)
    for key, value in run["metrics"].items():
        if (number := _number(value)) is not None and not isinstance(value, bool):
            metrics.append(Metric(f"final_{key}" if key in per_epoch else key, number, start_ms, 0))
    for i in range(0, max(len(params), 1), 100):
        client.log_batch(mlflow_id, params=params[i:i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(mlflow_id, metrics=metrics[i:i + 1000])


def _log_artifacts(client: Any, mlflow_id: str, run: dict[str, Any]) -> None:
    run_id = run["run_id"]
    client.log_dict(mlflow_id, run["config"], store.CONFIG)
    if run["metrics"]:
        client.log_dict(mlflow_id, run["metrics"], store.METRICS)
    history = runs.read_history(run_id)
    if history:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for row in history for k in row)))
        writer.writeheader()
        writer.writerows(history)
        client.log_text(mlflow_id, buf.getvalue(), store.HISTORY)
    confusion = records.read_confusion(runs.model_dir(run_id))
    if confusion and confusion[1] is not None:
        client.log_dict(mlflow_id, {"classes": confusion[0], "matrix": confusion[1]}, "confusion_matrix.json")
    if run["has_model"]:
        client.log_artifact(mlflow_id, str(runs.model_path(run_id)), "model")


# ---- python -m core runs export-mlflow --------------------------------------------------------------------


def export(run_ids: list[str]) -> list[dict[str, Any]]:
    """Log stored runs (all finished ones when none are named); one row per run, errors included."""
    if not enabled():
        raise TransferLabError(f"Set {URI_ENV} to your MLflow tracking server (e.g. http://127.0.0.1:5000) to "
                               "export runs.")
    ids = run_ids or [r["run_id"] for r in reversed(runs.list_runs()) if r["status"] in MLFLOW_STATUS]
    client, rows = _client(), []
    for run_id in ids:
        try:
            mlflow_id, new = log_run(run_id, client)
            rows.append({"run_id": run_id, "mlflow_run_id": mlflow_id, "result": "logged" if new else "already there"})
        except TransferLabError as exc:
            rows.append({"run_id": run_id, "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - one line per run that MLflow refused
            rows.append({"run_id": run_id, "error": _one_line(exc)})
    return rows


def cmd_export(args: argparse.Namespace) -> int:
    rows = export(args.run_ids)
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            print(f"{row['run_id']}: " + (f"error: {row['error']}" if "error" in row else
                                          f"{row['result']} ({row['mlflow_run_id']})"))
        print(f"{sum('error' not in r for r in rows)} of {len(rows)} run(s) in MLflow at {os.environ[URI_ENV]}.")
    return 1 if any("error" in r for r in rows) else 0


def register_cli(runs_commands: Any) -> None:
    """`runs export-mlflow [RUN_ID...]` under `python -m core runs`."""
    ex = runs_commands.add_parser("export-mlflow", help=f"log stored runs to MLflow ({URI_ENV}); idempotent")
    ex.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="default: every finished run")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_export, light=True)
