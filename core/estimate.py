"""A run-time estimate before launch, from this machine's measured training throughput: the median
`images_per_s` of the stored finished runs on the same device, architecture and input size."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from core import runs
from core.config import TransferLabError
from core.pipeline import Experiment


def measured_throughputs(device: str) -> dict[tuple[str, int], float]:
    """(arch, input size) -> median training images per second over the finished runs on `device` (metrics'
    `device`: "CPU" or the GPU names) that recorded it."""
    seen: dict[tuple[str, int], list[float]] = {}
    for row in runs.list_runs():
        if row["status"] != "done":
            continue
        try:
            m = runs.get_run(row["run_id"])["metrics"]
        except TransferLabError:
            continue
        speed, size = m.get("images_per_s"), m.get("input_size")
        if m.get("device") == device and isinstance(speed, int | float) and speed > 0 and isinstance(size, int) and row.get("arch"):
            seen.setdefault((row["arch"], size), []).append(float(speed))
    return {key: statistics.median(values) for key, values in seen.items()}


def estimate(exp: Experiment, train_counts: Callable[[str], dict[str, int]],
             speeds: dict[tuple[str, int], float]) -> list[dict[str, Any]]:
    """One row per stage: its runs, training images per epoch, the throughput used and the estimated seconds
    (None, with a note saying why, when there is no measurement or no dataset). `train_counts(dataset)` gives
    the dataset's training images per class."""
    from core.validation import input_size_of

    rows = []
    for pipe in exp.pipelines:
        for i, stage in enumerate(pipe.stages):
            size = input_size_of(stage)
            n_runs = pipe.repeats if i == len(pipe.stages) - 1 else 1
            row: dict[str, Any] = {"pipeline": pipe.name, "stage": stage.name or str(i), "arch": stage.arch,
                                   "input_size": size, "runs": n_runs, "images_per_epoch": None,
                                   "images_per_s": speeds.get((stage.arch, size)) if size else None,
                                   "seconds": None, "note": ""}
            try:
                counts = train_counts(stage.dataset).values()
                limit = stage.limit_per_class
                row["images_per_epoch"] = sum(min(n, limit) if limit else n for n in counts)
            except TransferLabError:
                row["note"] = f"dataset {stage.dataset} is not available"
            if row["images_per_s"] is None:
                row["note"] = f"no estimate yet for {stage.arch} at {size} px"
            elif row["images_per_epoch"] is not None:
                row["seconds"] = row["images_per_epoch"] * stage.epochs * n_runs / row["images_per_s"]
            rows.append(row)
    return rows
