"""Stage and pipeline configs as plain data: one `StageConfig` for the CLI, presets, the form and the run record."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import TransferLabError

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
HEADS = ("new", "keep")
MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss")
AUGMENTATIONS = ("flip", "rotation", "zoom", "contrast")
SPLIT_MODES = ("auto", "grouped", "stratified")


@dataclass
class StageConfig:
    """One training stage. `source`: scratch | previous | stage:N (earlier stage) | imagenet | run:<run_id>."""

    dataset: str = "fruits360-3"
    arch: str = "alexnet4"
    source: str = "scratch"
    freeze: str = "none"
    head: str = "new"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 10
    batch_size: int = 64
    patience: int = 3
    monitor: str = "val_accuracy"
    target_accuracy: float = 0.99
    augment: list[str] = field(default_factory=list)
    input_size: int | None = None
    seed: int = 0
    mixed_precision: bool = False
    jit_compile: bool | None = None
    feature_cache: bool = True
    val_fraction: float = 0.1
    split_mode: str = "auto"
    limit_per_class: int | None = None
    per_class: int | None = None
    composite: float = 0.0  # share of training images pasted onto random scenes (core.composite); 0: off
    composite_copies: int = 2  # frozen-feature cache: composited copies cached beside the originals; 0: on the fly
    noise_images: int = 0  # extra 'noise' training images: backgrounds alone and CIFAR-10 scenes
    gpus: float | None = None  # issue 16 hook: GPUs a run asks for on the Ray backend (None: 1 if the cluster has any)
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "stage") -> StageConfig:
        """Build from plain data; unknown keys and wrong types are one clear error each."""
        if not isinstance(data, dict):
            raise TransferLabError(f"{where}: expected an object of stage fields, got {type(data).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TransferLabError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}.")
        hints = typing.get_type_hints(cls)
        values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
        return cls(**values)


@dataclass
class PipelineConfig:
    """Stages run in order, each from the one before; the last stage runs `repeats` times from the same parent."""

    stages: list[StageConfig]
    repeats: int = 1
    name: str = "pipeline"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "repeats": self.repeats, "stages": [s.to_dict() for s in self.stages]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "pipeline") -> PipelineConfig:
        if not isinstance(data, dict) or not isinstance(data.get("stages"), list) or not data["stages"]:
            raise TransferLabError(f"{where}: needs a non-empty list 'stages'.")
        unknown = sorted(set(data) - {"name", "repeats", "stages"})
        if unknown:
            raise TransferLabError(f"{where}: unknown field(s) {', '.join(unknown)}.")
        stages = [StageConfig.from_dict(s, f"{where}.stages.{i}") for i, s in enumerate(data["stages"])]
        repeats = _coerce(data.get("repeats", 1), int, f"{where}.repeats")
        return cls(stages=stages, repeats=repeats, name=str(data.get("name", "pipeline")))


@dataclass
class Experiment:
    """What `train` runs: one or more pipelines (a preset compares e.g. scratch with a transfer chain)."""

    pipelines: list[PipelineConfig]
    name: str = "custom"
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "pipelines": [p.to_dict() for p in self.pipelines]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        if isinstance(data, dict) and "stages" in data:
            return cls(pipelines=[PipelineConfig.from_dict(data)], name=str(data.get("name", "custom")))
        if not isinstance(data, dict) or not isinstance(data.get("pipelines"), list) or not data["pipelines"]:
            raise TransferLabError("config: needs 'pipelines' (a list) or 'stages' (a list).")
        unknown = sorted(set(data) - {"name", "description", "pipelines"})
        if unknown:
            raise TransferLabError(f"config: unknown field(s) {', '.join(unknown)}.")
        pipes = [PipelineConfig.from_dict(p, f"pipelines.{i}") for i, p in enumerate(data["pipelines"])]
        return cls(pipelines=pipes, name=str(data.get("name", "custom")), description=str(data.get("description", "")))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a value against a field's type hint, allowing the JSON-natural conversions (int -> float)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except TransferLabError as exc:
                errors.append(str(exc))
        raise TransferLabError(errors[0])
    if typing.get_origin(hint) is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TransferLabError(f"{where}: expected a list of names, got {value!r}.")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise TransferLabError(f"{where}: expected {hint.__name__}, got {value!r}.")


# ---- presets ---------------------------------------------------------------------------------------------


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def load_preset(name: str) -> Experiment:
    path = PRESETS_DIR / f"{name}.json"
    if name not in list_presets():
        raise TransferLabError(f"Unknown preset {name!r}; presets: {', '.join(list_presets())}.")
    exp = Experiment.from_dict(json.loads(path.read_text()))
    exp.name = name
    return exp


def load_config_file(path: str | Path) -> Experiment:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TransferLabError(f"Cannot read config file {path}: {exc.strerror}.") from None
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise TransferLabError(f"Config file {path} is not valid {path.suffix[1:].upper() or 'JSON'}: {exc}.") from None
    return Experiment.from_dict(data)


def apply_overrides(exp: Experiment, sets: list[str], repeats: int | None = None) -> Experiment:
    """`key=value` sets a field on every stage; `stages.N.key=value` on stage N only. Values parse as JSON."""
    data = exp.to_dict()
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise TransferLabError(f"--set {item!r}: expected key=value.")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        parts = key.split(".")
        if parts[0] == "stages" and len(parts) == 3 and parts[1].isdigit():
            index, field_name = int(parts[1]), parts[2]
            targets = [p["stages"][index] for p in data["pipelines"] if index < len(p["stages"])]
            if not targets:
                raise TransferLabError(f"--set {key}: no pipeline has a stage {index}.")
        elif len(parts) == 1:
            field_name, targets = key, [s for p in data["pipelines"] for s in p["stages"]]
        else:
            raise TransferLabError(f"--set {key}: use FIELD=value or stages.N.FIELD=value.")
        for stage in targets:
            stage[field_name] = value
    if repeats is not None:
        for p in data["pipelines"]:
            p["repeats"] = repeats
    new = Experiment.from_dict(data)
    new.name = exp.name
    return new


# ---- validation ------------------------------------------------------------------------------------------


def validate_stage(stage: StageConfig, index: int = 0, has_previous: bool = False) -> dict[str, str]:
    """Field -> message for every wrong field that can be checked without building the model."""
    from core import composite_stage, datasets, limits, models, runs

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
    if stage.gpus is not None and not 0 <= stage.gpus <= 64:  # issue 16 hook: the Ray backend's GPU request
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
    if src == "imagenet" and stage.arch.startswith("alexnet"):
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
