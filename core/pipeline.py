"""Stage and pipeline configs as plain data: one `StageConfig` for the CLI, presets, the form and the run record."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.coerce import coerce
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
    gpus: float | None = None  # GPUs a run asks for on the Ray backend (None: 1 if the cluster has any)
    name: str = ""
    # the fine-tuning toolkit (core.schedules, core.fine_tune, core.sweeps); the defaults train as before
    schedule: str = "constant"  # constant | one_cycle | cosine, stepped per batch over the phase's epochs
    warmup_epochs: float = 0.0  # linear warm-up from 0 (constant, cosine); one_cycle: the length of its rise
    weight_decay: float | None = None  # decoupled weight decay; None: the optimizer's own (adamw 0.004, else none)
    lr_mult: float = 1.0  # discriminative rates: the layer group d groups below the head trains at lr * lr_mult**d
    fine_tune_epochs: int = 0  # > 0: after `epochs` with `freeze`, this many more epochs with `unfreeze`
    unfreeze: str = "all"  # what trains in that second phase: all | last:K (the last K conv blocks); +batchnorm
    unfreeze_divisor: float = 10.0  # the second phase's peak learning rate is learning_rate / unfreeze_divisor
    sweep: list[str] = field(default_factory=list)  # the fields a sweep varies on this stage (core.sweeps)

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
        values = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
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
        repeats = coerce(data.get("repeats", 1), int, f"{where}.repeats")
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
