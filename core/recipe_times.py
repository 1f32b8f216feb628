"""Time to validation accuracy 0.99 and 0.995, from the stored runs: the fine-tuning recipe (`paper-b-recipe`)
beside paper B's own stages (`paper-b-scratch-vs-transfer`), per device, stage and training-set size (a shortened
run, `limit_per_class`, is its own group). `python -m core bench` prints it.

The clock is `time_to_target_s`'s: seconds of training from the stage's first batch (both fine-tuning phases
included) to the end of the first epoch whose validation accuracy reaches the threshold, read from history.csv's
`elapsed_s`; loading the data and caching frozen features come before it and are in the wall time beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from core import compare, runs

THRESHOLDS = (0.99, 0.995)
PRESETS = ("paper-b-scratch-vs-transfer", "paper-b-recipe")
MONITOR = "val_accuracy"


def time_to(history: Iterable[dict[str, Any]], threshold: float, metric: str = MONITOR) -> float | None:
    """Seconds of training until `metric` first reached `threshold`; None when it never did."""
    for row in history:
        value, elapsed = row.get(metric), row.get("elapsed_s")
        if isinstance(value, int | float) and value >= threshold and isinstance(elapsed, int | float):
            return float(elapsed)
    return None


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean, std = compare._stats(values)
    return mean, None if math.isnan(std) else std


def stage_times(rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per preset, device, pipeline, stage and training-set size: {"preset", "device", "pipeline",
    "stage" (1-based), "dataset", "n_train", "runs", "test_accuracy", "wall_time_s" (means), "times":
    {threshold: {"reached", "mean_s", "std_s"}}}; a preset with no finished run gives {"preset", "runs": 0}."""
    rows = runs.list_runs() if rows is None else rows
    out: list[dict[str, Any]] = []
    for preset in PRESETS:
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for r in compare.finished(rows):
            if r.get("preset") == preset:
                key = (str(r.get("device")), str(r.get("pipeline")), int(r.get("stage_index") or 0),
                       str(r.get("dataset")), int(r.get("n_train") or 0))
                groups.setdefault(key, []).append(r)
        if not groups:
            out.append({"preset": preset, "runs": 0})
        for (device, pipe, index, dataset, n_train), members in sorted(groups.items()):
            histories = [runs.read_history(m["run_id"]) for m in members]
            times = {}
            for threshold in THRESHOLDS:
                reached = [t for t in (time_to(h, threshold) for h in histories) if t is not None]
                mean, std = _mean_std(reached)
                times[threshold] = {"reached": len(reached), "mean_s": mean, "std_s": std}
            out.append({"preset": preset, "device": device, "pipeline": pipe, "stage": index + 1, "dataset": dataset,
                        "n_train": n_train, "runs": len(members),
                        "test_accuracy": _mean_std([float(m["test_accuracy"]) for m in members
                                                    if m.get("test_accuracy") is not None])[0],
                        "wall_time_s": _mean_std([float(m["wall_time_s"]) for m in members
                                                  if m.get("wall_time_s") is not None])[0],
                        "times": times})
    return out


def _seconds(t: dict[str, Any], n: int) -> str:
    if t["mean_s"] is None:
        return f"— (0/{n})"
    spread = f" ± {t['std_s']:.1f}" if t["std_s"] is not None else ""
    return f"{t['mean_s']:.1f}{spread} s ({t['reached']}/{n})"


def report_lines(table: list[dict[str, Any]]) -> list[str]:
    """The table as the bench prints it."""
    lines = ["time to val accuracy " + " / ".join(map(str, THRESHOLDS)) + " from stored runs (training seconds, "
             "mean ± std over the runs that reached it; reached/runs):"]
    for row in table:
        if not row["runs"]:
            lines.append(f"  {row['preset']}: not stored yet (python -m core train --preset {row['preset']})")
            continue
        acc = "—" if row["test_accuracy"] is None else f"{row['test_accuracy']:.4f}"
        wall = "—" if row["wall_time_s"] is None else f"{row['wall_time_s']:.1f} s"
        n = row["runs"]
        lines.append(f"  {row['preset']} · {row['device']} · {row['pipeline']} stage {row['stage']} "
                     f"{row['dataset']} ({row['n_train']:,} train images, {n} run{'s' if n != 1 else ''}): "
                     f"test {acc}, wall {wall}; "
                     + ", ".join(f"to {t}: {_seconds(row['times'][t], n)}" for t in THRESHOLDS))
    return lines
