"""Checks of a stage, a chain and an experiment before anything runs: each wrong field one sentence.

Kept apart from `core.pipeline` (the config dataclasses), so the modules whose fields it checks
(`composite_stage`, `fine_tune`, `schedules`, `limits`) can use `StageConfig` without a cycle.
"""

from __future__ import annotations

from core.config import TransferLabError
from core.pipeline import (
    AUGMENTATIONS,
    HEADS,
    MONITORS,
    OPTIMIZERS,
    SPLIT_MODES,
    Experiment,
    PipelineConfig,
    StageConfig,
)


def validate_stage(stage: StageConfig, index: int = 0, has_previous: bool = False) -> dict[str, str]:
    """Field -> message for every wrong field that can be checked without building the model."""
    from core import composite_stage, datasets, fine_tune, limits, models, runs, schedules

    errors: dict[str, str] = {}
    listed = datasets.list_datasets()
    entry = next((d for d in listed if d["name"] == stage.dataset), None)
    if entry is None:
        errors["dataset"] = f"unknown dataset {stage.dataset!r}; known: {', '.join(sorted(d['name'] for d in listed))}"
    elif not entry["available"] and not entry.get("downloads"):
        errors["dataset"] = (f"dataset {stage.dataset!r} is not available yet: import its images first "
                             f"(Datasets page or python -m core datasets import) — {entry['description']}")
    if stage.arch not in models.ARCHS:
        errors["arch"] = f"unknown arch {stage.arch!r}; known: {', '.join(models.ARCHS)}"
    if stage.epochs < 1:
        errors["epochs"] = "epochs must be at least 1"
    if stage.learning_rate <= 0:
        errors["learning_rate"] = "learning rate must be greater than 0"
    if stage.batch_size < 1:
        errors["batch_size"] = "batch size must be at least 1"
    if stage.patience < 0:
        errors["patience"] = "patience must be 0 (no early stopping) or more"
    if stage.optimizer not in OPTIMIZERS:
        errors["optimizer"] = f"optimizer must be one of {', '.join(OPTIMIZERS)}"
    if stage.head not in HEADS:
        errors["head"] = "head must be 'new' (replace the output layer) or 'keep'"
    if stage.monitor not in MONITORS:
        errors["monitor"] = f"monitor must be one of {', '.join(MONITORS)}"
    if stage.split_mode not in SPLIT_MODES:
        errors["split_mode"] = f"split mode must be one of {', '.join(SPLIT_MODES)}"
    if not 0 < stage.val_fraction < 0.9:
        errors["val_fraction"] = "val fraction must be between 0 and 0.9"
    bad_aug = [a for a in stage.augment if a not in AUGMENTATIONS]
    if bad_aug:
        errors["augment"] = f"unknown augmentation {', '.join(bad_aug)}; use {', '.join(AUGMENTATIONS)}"
    readable = stage.noise_images and entry and entry["available"]
    errors.update(composite_stage.stage_errors(stage, datasets.dataset_classes(stage.dataset) if readable else None))
    errors.update(schedules.stage_errors(stage))
    errors.update(fine_tune.stage_errors(stage))
    if stage.gpus is not None and not 0 <= stage.gpus <= 64:
        errors["gpus"] = "gpus must be between 0 and 64 (GPUs per run on the Ray backend)"
    if stage.limit_per_class is not None and stage.limit_per_class < 2:
        errors["limit_per_class"] = "limit per class must be at least 2"
    if stage.arch in models.ARCHS and stage.input_size is not None:
        minimum = models.ARCHS[stage.arch].min_input_size
        if stage.input_size < minimum:
            errors["input_size"] = f"input size {stage.input_size} is too small for {stage.arch} (minimum {minimum})"
    errors.update({k: v for k, v in limits.range_errors(stage).items() if k not in errors})
    src = stage.source
    if src == "previous":
        if not has_previous:
            errors["source"] = "'previous' needs an earlier stage in the same pipeline"
    elif src.startswith("stage:"):
        if not src[6:].isdigit() or int(src[6:]) >= index:
            errors["source"] = f"{src!r} must name an earlier stage of the same pipeline (stage:0 .. stage:{index - 1})"
    elif src.startswith("run:"):
        try:
            parent = runs.get_run(src[4:])
        except TransferLabError as exc:
            errors["source"] = str(exc)
        else:
            if parent["status"] != "done" or not parent["has_model"]:
                errors["source"] = f"parent run {src[4:]} is {parent['status']} and has no usable model"
            else:
                parent_stage = parent["config"].get("stage", {})
                size = (parent.get("metrics") or {}).get("input_size") or parent_stage.get("input_size")
                errors.update(chain_mismatch(stage, str(parent_stage.get("arch")), size, f"run {src[4:]}"))
                if stage.head == "keep" and entry and entry["available"] and entry["kind"] != "keras":
                    mismatch = _kept_head_mismatch(stage.dataset, src[4:])
                    if mismatch:
                        errors["head"] = mismatch
    elif src not in ("scratch", "imagenet"):
        errors["source"] = "source must be scratch, previous, stage:N, imagenet or run:<run_id>"
    if src == "imagenet" and stage.arch in models.ARCHS and models.ARCHS[stage.arch].imagenet is None:
        errors["source"] = f"there are no ImageNet weights for {stage.arch}"
    if src == "scratch" and stage.freeze != "none":
        errors["freeze"] = "a stage from scratch trains every layer: use freeze 'none'"
    return errors


def input_size_of(stage: StageConfig) -> int | None:
    """The input size a stage trains at: its own, or its architecture's default."""
    from core import models

    spec = models.ARCHS.get(stage.arch)
    return stage.input_size or (spec.default_input_size if spec else None)


def chain_mismatch(stage: StageConfig, parent_arch: str, parent_size: int | None, parent: str) -> dict[str, str]:
    """A stage that continues a model must name the same arch (it picks the preprocessing) and input size."""
    errors = {}
    if parent_arch != stage.arch:
        errors["arch"] = f"{parent} trained arch {parent_arch}: set arch to {parent_arch} to continue from it"
    elif parent_size and input_size_of(stage) != parent_size:
        errors["input_size"] = (f"{parent} takes {parent_size}px inputs but this stage asks for "
                                f"{input_size_of(stage)}px")
    return errors


def _kept_head_mismatch(dataset: str, parent_run: str) -> str | None:
    """Keeping the parent's output layer needs the parent's classes, in the same order."""
    from core import datasets, runs

    try:
        theirs, ours = runs.labels_for(parent_run), datasets.dataset_classes(dataset)
    except TransferLabError:
        return None  # unreadable here: the stage itself reports it
    if theirs == ours:
        return None
    return (f"head 'keep' needs the parent's classes, but {dataset} has {len(ours)} classes that differ from run "
            f"{parent_run}'s {len(theirs)}; use head 'new'")


def validate_experiment(exp: Experiment) -> list[str]:
    """Every problem as 'pipeline P, stage S, field: message'; empty when the experiment can be launched."""
    problems = []
    for p, pipe in enumerate(exp.pipelines):
        if pipe.repeats < 1:
            problems.append(f"pipeline {p}: repeats must be at least 1")
        for s, stage in enumerate(pipe.stages):
            errors = validate_stage(stage, s, has_previous=s > 0)
            source = _pipeline_source(pipe, s)
            if source is not None and "source" not in errors:
                errors.update(chain_mismatch(stage, source.arch, input_size_of(source), "the stage it continues"))
            for fld, msg in errors.items():
                problems.append(f"pipeline {p} ({pipe.name}), stage {s}, {fld}: {msg}")
    return problems


def _pipeline_source(pipe: PipelineConfig, index: int) -> StageConfig | None:
    """The earlier stage of the same pipeline that stage `index` continues from, if any."""
    src = pipe.stages[index].source
    if src == "previous" and index > 0:
        return pipe.stages[index - 1]
    if src.startswith("stage:") and src[6:].isdigit() and int(src[6:]) < index:
        return pipe.stages[int(src[6:])]
    return None


def check_experiment(exp: Experiment) -> None:
    problems = validate_experiment(exp)
    if problems:
        raise TransferLabError("Invalid config: " + "; ".join(problems) + ".")
