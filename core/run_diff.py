"""Compare two or more stored runs side by side: their config differences, learning curves in one long table
(one Plotly figure, a line per run), headline metrics and confusion matrices.

Pure over `runs.get_run` dicts except `load`, `curves` and `confusions`, which read the run store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from core import records, runs
from core.config import TransferLabError

IGNORED = ("created", "run_id")  # differ for every run and say nothing about how it was trained
HEADLINE = ("test_accuracy", "kappa", "val_accuracy", "test_loss", "wall_time_s", "time_to_target_s", "epochs_run",
            "best_epoch", "trainable_params", "non_trainable_params", "images_per_s", "device")


def load(run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The runs, in the order given; at least two, each once."""
    ids = list(dict.fromkeys(run_ids))
    if len(ids) < 2:
        raise TransferLabError("Pick at least two different runs to compare.")
    return [runs.get_run(r) for r in ids]


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"stage.learning_rate": ..., "hardware.device": ...}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif name not in IGNORED:
            out[name] = value
    return out


def _same(values: list[Any]) -> bool:
    return all(v == values[0] for v in values[1:])


def config_diff(records_: Sequence[dict[str, Any]], only_different: bool = True) -> pd.DataFrame:
    """One row per config field (a field a run lacks shows as None), one column per run id, and `differs`;
    only the differing fields unless `only_different` is False. Differing fields come first."""
    flat = [flatten(r.get("config") or {}) for r in records_]
    ids = [r["run_id"] for r in records_]
    fields = list(dict.fromkeys(k for f in flat for k in f))
    rows = []
    for field in fields:
        values = [f.get(field) for f in flat]
        differs = not _same(values)
        if differs or not only_different:
            rows.append({"field": field, **{i: _text(v) for i, v in zip(ids, values, strict=True)},
                         "differs": differs})
    frame = pd.DataFrame(rows, columns=["field", *ids, "differs"])
    return frame.sort_values("differs", ascending=False, kind="stable").reset_index(drop=True)


def _text(value: Any) -> Any:
    """Lists as text so a table column holds one type."""
    return ", ".join(map(str, value)) if isinstance(value, list) else value


def metrics(records_: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Headline metrics, one row per run (columns: run_id, then HEADLINE)."""
    return pd.DataFrame([{"run_id": r["run_id"], **{k: (r.get("metrics") or {}).get(k) for k in HEADLINE}}
                         for r in records_], columns=["run_id", *HEADLINE])


def curves(run_ids: Sequence[str]) -> pd.DataFrame:
    """Every run's history.csv as long rows: run_id, epoch, metric (loss, accuracy, val_loss, ...), value."""
    rows = []
    for run_id in run_ids:
        for row in runs.read_history(run_id):
            epoch = row.get("epoch")
            rows += [{"run_id": run_id, "epoch": epoch, "metric": k, "value": v} for k, v in row.items()
                     if k not in ("epoch", "elapsed_s", "epoch_time_s") and isinstance(v, int | float)]
    return pd.DataFrame(rows, columns=["run_id", "epoch", "metric", "value"])


def confusions(run_ids: Sequence[str]) -> dict[str, pd.DataFrame | None]:
    """Run id -> its test confusion matrix (rows truth, columns prediction), None when it has none (or more
    classes than can be drawn)."""
    out: dict[str, pd.DataFrame | None] = {}
    for run_id in run_ids:
        found = records.read_confusion(runs.model_dir(run_id))
        out[run_id] = pd.DataFrame(found[1], index=found[0], columns=found[0]) if found and found[1] else None
    return out


def cautions(records_: Sequence[dict[str, Any]]) -> list[str]:
    """What could mislead in the side-by-side view: unfinished runs, different test sets or devices, and each
    run whose numbers are not results (shortened, near chance: core.caveats)."""
    from core import caveats

    notes = [f"{r['run_id']} is {r['status']}: its numbers are partial or missing." for r in records_
             if r.get("status") != "done"]
    for what, key, consequence in (("datasets", "dataset", "their test accuracies are not on the same images"),
                                   ("devices", "device", "their times are not comparable")):
        values = list(dict.fromkeys(str(runs.summary_row(r)[key]) for r in records_))
        if len(values) > 1:
            notes.append(f"Different {what} ({', '.join(values)}): {consequence}.")
    for r in records_:
        warnings = caveats.group_context([runs.summary_row(r)])["warnings"] if r.get("status") == "done" else []
        if warnings:
            notes.append(f"{r['run_id']} is not a result: {'; '.join(warnings)}.")
    return notes
