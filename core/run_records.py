"""A run's typed records: what it was asked to do and where it sits (`RunRecord`, its `config.json`), what it ran
on (`Environment`), what it measured (`StageMetrics`, its `metrics.json`), and its one-row summary (`RunSummary`:
a `runs list` row and a Results-table row, whose columns are this dataclass's fields).

Records written by older versions may lack any field: readers take them as plain dicts (core.records checks
their types against these dataclasses), and every field here has a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Environment:
    """The hardware and software a result was obtained on (core.hardware.environment())."""

    cpu: str | None = None
    cpu_cores: int | None = None
    gpus: list[str] = field(default_factory=list)
    device: str | None = None  # the GPU names, or "CPU"
    keras_backend: str | None = None
    tensorflow: str | None = None
    jax: str | None = None
    keras: str | None = None
    python: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """`config.json`: the stage's config, its place in an experiment (lineage), and how it was started."""

    run_id: str = ""  # run_id and created are set by the store when it creates the run
    created: str = ""
    stage: dict[str, Any] = field(default_factory=dict)  # core.pipeline.StageConfig.to_dict()
    # lineage: the experiment (preset), pipeline, stage and repeat, and the run whose model it continues
    preset: str | None = None
    pipeline_name: str | None = None
    pipeline_id: str | None = None
    stage_index: int | None = None
    stage_count: int | None = None
    repeat_index: int | None = None
    repeats: int | None = None
    parent_run: str | None = None
    method: str | None = None  # scratch | transfer
    # how it was started, and on what
    command: str | None = None
    job_id: str | None = None
    hardware: Environment | None = None
    backend: dict[str, Any] | None = None  # where it ran: None (this machine) or {"name": "ray", "address"}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StageMetrics:
    """`metrics.json`: what a finished stage measured, with the environment's fields beside them (flat)."""

    test_accuracy: float | None = None
    test_loss: float | None = None
    kappa: float | None = None
    per_class: list[dict[str, Any]] | None = None  # {"class", "precision", "recall", "f1", "support"}
    calibration: dict[str, Any] | None = None  # core.calibration.Calibration.to_dict() + test ECE before/after
    val_accuracy: float | None = None
    val_loss: float | None = None
    train_accuracy: float | None = None
    train_loss: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    wall_time_s: float | None = None
    fit_time_s: float | None = None
    data_time_s: float | None = None
    eval_time_s: float | None = None
    time_to_target_s: float | None = None
    target_accuracy: float | None = None
    ms_per_step: float | None = None
    images_per_s: float | None = None
    trainable_params: int | None = None
    non_trainable_params: int | None = None
    total_params: int | None = None
    frozen_layers: list[str] | None = None
    feature_cache: bool | None = None
    raw_pixels: bool | None = None  # the model takes RGB 0..255 (core.model_input); absent: older runs
    inference_ms_per_image: float | None = None
    n_train: int | None = None
    n_fit: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    input_size: int | None = None
    classes: list[str] | None = None
    seed: int | None = None
    strategy: str | None = None
    replicas: int | None = None
    environment: Environment = field(default_factory=Environment)

    def to_dict(self) -> dict[str, Any]:
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "environment"}
        return {**own, **dataclasses.asdict(self.environment)}


def field_kinds(cls: type) -> dict[str, str]:
    """Field -> "number", "names" (a list of str), "rows" (a list of objects), "object" or "other", from the
    type hints: what core.records checks a stored record's values against."""
    kinds = {}
    for name, hint in typing.get_type_hints(cls).items():
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        hint = next((o for o in options if o is not type(None)), hint)
        item = (typing.get_args(hint) or (None,))[0]
        kinds[name] = ("number" if hint in (int, float) else "object" if typing.get_origin(hint) is dict
                       else "names" if item is str else "rows" if typing.get_origin(item) is dict else "other")
    return kinds


METRIC_KINDS = {**field_kinds(StageMetrics), **field_kinds(Environment)}
METRIC_KINDS.pop("environment")


# ---- the summary row ---------------------------------------------------------------------------------------


def _column(source: str, key: str | None = None, *, brief: bool = False, fallback: str | None = None) -> Any:
    """A summary column read from `source` ("run", "record", "stage" or "metrics") under `key` (default: the
    column's own name); `fallback`: the source to read when `source` lacks the key; `brief`: `runs list` shows
    it in its terminal table."""
    return field(default=None, metadata={"source": source, "key": key, "brief": brief, "fallback": fallback})


@dataclass(frozen=True)
class RunSummary:
    """One run as one row. The fields are the Results table's columns, in its order."""

    run_id: str | None = _column("run", brief=True)
    status: str | None = _column("run", brief=True)
    created: str | None = _column("record")
    preset: str | None = _column("record")
    pipeline: str | None = _column("record", "pipeline_name")
    stage_index: int | None = _column("record")
    repeat: int | None = _column("record", "repeat_index")
    method: str | None = _column("record")
    dataset: str | None = _column("stage", brief=True)
    arch: str | None = _column("stage", brief=True)
    source: str | None = _column("stage")
    freeze: str | None = _column("stage", brief=True)
    seed: int | None = _column("stage")
    epochs_run: int | None = _column("metrics")
    n_train: int | None = _column("metrics")
    test_accuracy: float | None = _column("metrics", brief=True)
    val_accuracy: float | None = _column("metrics")
    kappa: float | None = _column("metrics")
    wall_time_s: float | None = _column("metrics", brief=True)
    time_to_target_s: float | None = _column("metrics")
    trainable_params: int | None = _column("metrics")
    non_trainable_params: int | None = _column("metrics")
    device: str | None = _column("metrics")
    has_model: bool | None = _column("run")
    parent_run: str | None = _column("record")
    pipeline_id: str | None = _column("record")
    error: str | None = _column("run")
    epochs: int | None = _column("stage")
    limit_per_class: int | None = _column("stage")
    n_classes: int | None = _column("run")
    target_accuracy: float | None = _column("stage", fallback="metrics")

    @classmethod
    def from_run(cls, run: dict[str, Any]) -> RunSummary:
        """From a `runs.get_run` record."""
        sources = {"record": run["config"], "stage": run["config"].get("stage", {}), "metrics": run["metrics"],
                   "run": {"run_id": run["run_id"], "status": run["status"], "has_model": run["has_model"],
                           "error": run["status_info"].get("error"), "n_classes": len(run["labels"]) or None}}

        def value(f: dataclasses.Field) -> Any:
            key, meta = f.metadata["key"] or f.name, f.metadata
            chosen = sources[meta["source"]]
            if key not in chosen and meta["fallback"]:
                chosen = sources[meta["fallback"]]
            return chosen.get(key)

        return cls(**{f.name: value(f) for f in dataclasses.fields(cls)})


def summary_row(run: dict[str, Any]) -> dict[str, Any]:
    """A `runs.get_run` record as its summary row (a `runs list` row)."""
    return dataclasses.asdict(RunSummary.from_run(run))


TABLE_COLUMNS = tuple(f.name for f in dataclasses.fields(RunSummary))
LIST_COLUMNS = tuple(f.name for f in dataclasses.fields(RunSummary) if f.metadata["brief"])
