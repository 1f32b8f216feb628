"""An experiment as a form (one row of fields per stage) and edited rows back into a checked experiment.

A row's cells are what a table editor gives: blanks (None, NaN, pandas' NA, empty text), floats for whole numbers,
comma-separated lists. Each field's type comes from `StageConfig`'s own hints; `StageConfig.from_dict` builds the
stage, `validation.validate_stage` / `validate_experiment` check it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core import validation
from core.config import TransferLabError
from core.pipeline import Experiment, PipelineConfig, StageConfig

_HINTS = typing.get_type_hints(StageConfig)
_MAY_BE_EMPTY = {f.name for f in dataclasses.fields(StageConfig) if f.default == ""}  # e.g. a stage's name
SOURCES = ("scratch", "previous", "imagenet")  # besides stage:N and run:<run_id>
DEFAULT_PIPELINE = "pipeline"


def _kind(name: str) -> tuple[Any, bool]:
    """A stage field's base type (int, float, str, bool or list) and whether it may be None."""
    hint = _HINTS[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return next(a for a in args if a is not type(None)), type(None) in args
    return typing.get_origin(hint) or hint, False


WHOLE_NUMBER_FIELDS = tuple(name for name in _HINTS if _kind(name)[0] is int)


class FormError(TransferLabError):
    """The wrong fields of one form row: `fields` maps field -> message ('row' for the row as a whole)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()) + ".")
        self.fields = fields


def is_blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (not isinstance(value, list | tuple | dict) and bool(pd.isna(value)))


def _whole(label: str, value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise ValueError(f"{label} must be a whole number")
    return int(number)


def _cell(name: str, value: Any) -> Any:
    """One cell as the stage field's value; ValueError with the message to show."""
    base, optional = _kind(name)
    label = name.replace("_", " ")
    if is_blank(value):
        if optional:
            return None
        if name in _MAY_BE_EMPTY:
            return ""
        if base is list:
            return []
        raise ValueError(f"{label} is required")
    if base is int:
        return _whole(label, value)
    if base is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{label} must be a number") from None
    if base is str:
        return str(value).strip()
    if base is list and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value  # a bool or a list: StageConfig.from_dict checks its type


def stage_from_form(values: dict[str, Any], base: dict[str, Any] | None = None) -> StageConfig:
    """A form row over `base`'s fields (those the form does not show) -> a StageConfig. Keys that are not stage
    fields (a table's pipeline and repeats) are left to the caller. Raises FormError naming every wrong field."""
    fields, errors = dict(base or {}), {}
    for name, value in values.items():
        if name in _HINTS:
            try:
                fields[name] = _cell(name, value)
            except ValueError as exc:
                errors[name] = str(exc)
    if errors:
        raise FormError(errors)
    try:
        return StageConfig.from_dict(fields)
    except TransferLabError as exc:
        raise FormError({"row": str(exc)}) from None


def source_options(run_ids: list[str], stages: int = 8) -> list[str]:
    """Every source a stage may name: the fixed ones, the first `stages` earlier stages, the given runs."""
    return [*SOURCES, *(f"stage:{i}" for i in range(stages)), *(f"run:{r}" for r in run_ids)]


def experiment_rows(exp: Experiment) -> list[dict[str, Any]]:
    """One row per stage: its fields, its pipeline's name, `augment` as text, and `repeats` on each pipeline's last
    stage (the one that repeats; None on the others)."""
    return [{**stage.to_dict(), "pipeline": pipe.name, "augment": ",".join(stage.augment),
             "repeats": pipe.repeats if i == len(pipe.stages) - 1 else None}
            for pipe in exp.pipelines for i, stage in enumerate(pipe.stages)]


@dataclass
class FormResult:
    experiment: Experiment | None  # None until every row and the experiment as a whole are valid
    stages: list[StageConfig | None]  # per row; None where the row has errors that stop it being built
    errors: list[dict[str, str]]  # per row: field -> message
    problems: list[str]  # the experiment's own (no stage, repeats, a chain that does not fit)


def experiment_from_rows(rows: list[dict[str, Any]], base: Experiment, name: str) -> FormResult:
    """Edited rows (in order; rows with the same `pipeline` form one, in order) -> the experiment to launch. A
    row's fields the form does not show come from the same stage of `base` (the preset it started from)."""
    base_stages = {(p.name, i): s.to_dict() for p in base.pipelines for i, s in enumerate(p.stages)}
    stages: list[StageConfig | None] = []
    errors: list[dict[str, str]] = []
    grouped: dict[str, list[tuple[StageConfig | None, Any]]] = {}
    for row in rows:
        pipe = DEFAULT_PIPELINE if is_blank(row.get("pipeline")) else str(row["pipeline"]).strip()
        index = len(grouped.setdefault(pipe, []))
        stage, row_errors = None, {}
        try:
            stage = stage_from_form(row, base_stages.get((pipe, index), StageConfig().to_dict()))
        except FormError as exc:
            row_errors = dict(exc.fields)
        if stage is not None:
            row_errors.update(validation.validate_stage(stage, index, has_previous=index > 0))
        stages.append(stage)
        errors.append(row_errors)
        grouped[pipe].append((stage, row.get("repeats")))
    problems = [] if rows else ["add at least one stage"]
    pipes = []
    for pipe, items in grouped.items():
        repeats = items[-1][1]
        try:
            repeats = 1 if is_blank(repeats) else _whole("repeats", repeats)
        except ValueError as exc:
            problems.append(f"pipeline {pipe}: {exc}")
            continue
        if repeats < 1:
            problems.append(f"pipeline {pipe}: repeats must be at least 1")
        if all(stage is not None for stage, _ in items):
            pipes.append(PipelineConfig(stages=[s for s, _ in items], repeats=repeats, name=pipe))
    exp = None
    if not problems and not any(errors) and pipes:
        exp = Experiment(pipelines=pipes, name=name, description=base.description)
        problems = validation.validate_experiment(exp)
        exp = None if problems else exp
    return FormResult(exp, stages, errors, problems)
