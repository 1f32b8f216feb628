"""Scratch vs transfer: pure aggregation over `runs.list_runs()` rows (no streamlit, no file access).

Every function takes the flat summary rows of the run store (or a history / reference table) and returns
plain values or pandas tables, so the Results page only draws and the numbers are tested on their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from core.run_records import TABLE_COLUMNS

METRICS = ("wall_time_s", "time_to_target_s", "test_accuracy", "kappa")
FILTERS = ("preset", "dataset", "arch", "freeze", "device", "status")
GROUPINGS = {"method": ("method",), "method + arch": ("method", "arch"), "pipeline": ("pipeline",),
             "method + freeze": ("method", "freeze")}


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def runs_table(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """All runs as one table, in the column order of core.run_records.RunSummary, then any other columns of the
    rows (e.g. tags); empty, with the columns, when there are none."""
    rows = list(rows)
    extra = [c for r in rows for c in r if c not in TABLE_COLUMNS]
    columns = list(TABLE_COLUMNS) + list(dict.fromkeys(extra))
    return pd.DataFrame(rows, columns=columns)


def filter_options(rows: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """For each filter column, its distinct values (as text, sorted), missing values left out."""
    rows = list(rows)
    return {col: sorted({str(r.get(col)) for r in rows if not _is_missing(r.get(col))}) for col in FILTERS}


def filter_runs(rows: Iterable[dict[str, Any]], **chosen: Sequence[str] | None) -> list[dict[str, Any]]:
    """Rows whose value in each given column is one of the chosen values; an empty choice keeps every row."""
    unknown = set(chosen) - set(FILTERS)
    if unknown:
        raise ValueError(f"unknown filter(s): {', '.join(sorted(unknown))}")
    active = {col: {str(v) for v in values} for col, values in chosen.items() if values}
    return [r for r in rows if all(str(r.get(col)) in allowed for col, allowed in active.items())]


def finished(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") == "done"]


def target_datasets(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Datasets with finished runs: those with both scratch and transfer runs first, then by run count."""
    by_ds: dict[str, dict[str, int]] = {}
    for r in finished(rows):
        if _is_missing(r.get("dataset")):
            continue
        methods = by_ds.setdefault(str(r["dataset"]), {})
        methods[str(r.get("method"))] = methods.get(str(r.get("method")), 0) + 1
    both = lambda m: "scratch" in m and "transfer" in m  # noqa: E731
    return sorted(by_ds, key=lambda d: (not both(by_ds[d]), -sum(by_ds[d].values()), d))


def chain_time_s(rows: Iterable[dict[str, Any]] | Mapping[str, dict[str, Any]], run_id: str) -> float:
    """Wall time of the earlier stages a run builds on (its parent, the parent's parent, ...), in seconds.
    `rows` may be given already keyed by run id (callers asking for many runs build that once)."""
    by_id = rows if isinstance(rows, Mapping) else {r["run_id"]: r for r in rows}
    total, seen = 0.0, {run_id}
    parent = by_id.get(run_id, {}).get("parent_run")
    while parent and parent in by_id and parent not in seen:
        seen.add(parent)
        wall = by_id[parent].get("wall_time_s")
        total += 0.0 if _is_missing(wall) else float(wall)
        parent = by_id[parent].get("parent_run")
    return total


def _stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as the papers' tables); NaN where undefined."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def group_summary(rows: Iterable[dict[str, Any]], dataset: str, by: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Finished runs on `dataset`, grouped by `by`: n, mean and std of each metric, how many reached target.

    Time to target is averaged over the runs that reached their target accuracy (`reached` of `n`).
    """
    rows = list(rows)
    chosen = [r for r in finished(rows) if r.get("dataset") == dataset]
    by_id = {r["run_id"]: r for r in rows}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in chosen:
        key = tuple("—" if _is_missing(r.get(col)) else str(r.get(col)) for col in by)
        groups.setdefault(key, []).append(r)
    out = []
    for key in sorted(groups):
        members = groups[key]
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["n"] = len(members)
        for metric in METRICS:
            values = [float(m[metric]) for m in members if not _is_missing(m.get(metric))]
            row[f"{metric}_mean"], row[f"{metric}_std"] = _stats(values)
        row["reached_target"] = sum(not _is_missing(m.get("time_to_target_s")) for m in members)
        chains = [chain_time_s(by_id, m["run_id"]) for m in members]
        row["pretrain_time_s_mean"] = _stats(chains)[0]
        row["run_ids"] = [m["run_id"] for m in members]
        out.append(row)
    columns = list(by) + ["n"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")] + [
        "reached_target", "pretrain_time_s_mean", "run_ids"]
    return pd.DataFrame(out, columns=columns)


def scratch_vs_transfer(rows: Iterable[dict[str, Any]], dataset: str) -> dict[str, Any]:
    """The headline numbers for one target dataset; a value is None when one side has no finished run.

    speedup = mean scratch wall time / mean transfer wall time (the last stage only, as the papers report);
    speedup_incl_pretrain also charges each transfer run the wall time of the stages it was built on.
    """
    summary = group_summary(rows, dataset, ("method",)).set_index("method")
    sides = {m: summary.loc[m].to_dict() if m in summary.index else None for m in ("scratch", "transfer")}
    s, t = sides["scratch"], sides["transfer"]

    def ratio(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or _is_missing(a) or _is_missing(b) or b <= 0:
            return None
        return float(a) / float(b)

    def delta(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or _is_missing(a) or _is_missing(b):
            return None
        return float(a) - float(b)

    both = s is not None and t is not None
    return {
        "dataset": dataset,
        "scratch": s,
        "transfer": t,
        "speedup": ratio(s["wall_time_s_mean"], t["wall_time_s_mean"]) if both else None,
        "speedup_to_target": ratio(s["time_to_target_s_mean"], t["time_to_target_s_mean"]) if both else None,
        "speedup_incl_pretrain": ratio(s["wall_time_s_mean"],
                                       t["wall_time_s_mean"] + t["pretrain_time_s_mean"]) if both else None,
        "accuracy_delta": delta(t["test_accuracy_mean"], s["test_accuracy_mean"]) if both else None,
        "kappa_delta": delta(t["kappa_mean"], s["kappa_mean"]) if both else None,
    }


def metric_points(rows: Iterable[dict[str, Any]], dataset: str, by: Sequence[str] = ("method",)) -> pd.DataFrame:
    """One row per finished run on `dataset` with a `group` label, for box plots of each metric."""
    out = []
    for r in finished(rows):
        if r.get("dataset") != dataset:
            continue
        label = " / ".join("—" if _is_missing(r.get(c)) else str(r.get(c)) for c in by)
        out.append({"group": label, "run_id": r["run_id"], **{m: r.get(m) for m in METRICS}})
    return pd.DataFrame(out, columns=["group", "run_id", *METRICS])


def history_long(history: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """history.csv rows -> long table (epoch, metric loss|accuracy, split train|val, value) for curves."""
    out = []
    for row in history:
        epoch = row.get("epoch")
        for key, value in row.items():
            if key in ("epoch", "elapsed_s", "epoch_time_s", "learning_rate", "lr") or _is_missing(value):
                continue
            if not isinstance(value, (int, float)):
                continue
            split, metric = ("val", key[4:]) if key.startswith("val_") else ("train", key)
            out.append({"epoch": epoch, "metric": metric, "split": split, "value": float(value)})
    return pd.DataFrame(out, columns=["epoch", "metric", "split", "value"])


def published_for(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The published reference rows for one target dataset (core.reference.published_summary())."""
    if summary is None or summary.empty or "target_dataset" not in summary.columns:
        return pd.DataFrame()
    return summary[summary["target_dataset"] == dataset].reset_index(drop=True)


def side_by_side(rows: Iterable[dict[str, Any]], summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Our per-method means beside the published rows for the same target, in the same units (minutes)."""
    ours = group_summary(rows, dataset, ("method", "arch"))
    out = []
    for _, r in ours.iterrows():
        out.append({"source": "ours (this machine)", "paper": "", "model": r["arch"], "method": r["method"],
                    "n_runs": int(r["n"]), "time_min": r["wall_time_s_mean"] / 60,
                    "time_min_std": r["wall_time_s_std"] / 60, "accuracy": r["test_accuracy_mean"],
                    "accuracy_std": r["test_accuracy_std"], "pretrain_time_min": r["pretrain_time_s_mean"] / 60})
    for _, r in published_for(summary, dataset).iterrows():
        out.append({"source": "published (hardware unknown)", "paper": f"{r.get('paper')} {r.get('table')}",
                    "model": r.get("model"), "method": r.get("method"), "n_runs": r.get("n_runs"),
                    "time_min": r.get("time_min"), "time_min_std": r.get("time_min_std"),
                    "accuracy": r.get("accuracy"), "accuracy_std": r.get("accuracy_std"),
                    "pretrain_time_min": r.get("pretrain_time_min")})
    table = pd.DataFrame(out, columns=["source", "paper", "model", "method", "n_runs", "time_min", "time_min_std",
                                       "accuracy", "accuracy_std", "pretrain_time_min"])
    return _against_scratch(table)


def _against_scratch(table: pd.DataFrame) -> pd.DataFrame:
    """Adds `speedup` (scratch time / this row's time) and `accuracy_delta` (this row's accuracy - scratch's) to
    each transfer row, against the scratch row of the same paper (published) or the same model (ours); blank
    where that scratch row does not exist (paper A published no scratch baseline)."""
    table = table.copy()
    time_min, acc = (pd.to_numeric(table[c], errors="coerce") for c in ("time_min", "accuracy"))
    table["speedup"], table["accuracy_delta"] = math.nan, math.nan
    ours = table["source"] != "published (hardware unknown)"
    family = table["model"].astype(str).where(ours, "paper " + table["paper"].astype(str).str.split().str[0])
    for key in family.unique():
        scratch = table.index[(family == key) & (table["method"] == "scratch")]
        if len(scratch) != 1:
            continue
        transfer = table.index[(family == key) & (table["method"] == "transfer")]
        table.loc[transfer, "speedup"] = time_min[scratch[0]] / time_min[transfer].where(time_min[transfer] > 0)
        table.loc[transfer, "accuracy_delta"] = acc[transfer] - acc[scratch[0]]
    return table


def job_summary(job: dict[str, Any]) -> dict[str, Any]:
    """A job's progress.json as display values: stage k of n, epoch / batch fractions, ETA."""
    p = job.get("progress") or {}

    def frac(a: Any, b: Any) -> float:
        try:
            return max(0.0, min(1.0, float(a) / float(b))) if b else 0.0
        except (TypeError, ValueError):
            return 0.0

    return {
        "phase": p.get("phase") or job.get("status"),
        "pipeline": p.get("pipeline"),
        "stage": p.get("stage"), "stages": p.get("stages"),
        "repeat": p.get("repeat"), "repeats": p.get("repeats"),
        "step": p.get("step"), "steps": p.get("steps"),
        "epoch": p.get("epoch"), "epochs": p.get("epochs"),
        "batch": p.get("batch"), "batches": p.get("batches"),
        "epoch_fraction": frac((p.get("epoch") or 1) - 1 + frac(p.get("batch"), p.get("batches")), p.get("epochs")),
        "batch_fraction": frac(p.get("batch"), p.get("batches")),
        "step_fraction": frac((p.get("step") or 1) - 1, p.get("steps")),
        "eta_s": p.get("eta_s"),
        "run_id": p.get("run_id") or job.get("current_run"),
        "logs": p.get("logs") or {},
    }


def format_seconds(seconds: float | None) -> str:
    """12.3 s, 4 min 05 s, 2 h 03 min; '—' when unknown."""
    if seconds is None or _is_missing(seconds):
        return "—"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
