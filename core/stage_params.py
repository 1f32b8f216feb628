"""The parameters a stage will train, counted before launch: its model built with random weights (or loaded from the
run it continues), its head and freeze policy applied."""

from __future__ import annotations

from core.pipeline import StageConfig


def model_key(stage: StageConfig) -> tuple[str | int | None, ...]:
    """What decides a stage's model besides its number of classes: stages with equal keys have equal counts."""
    if stage.source.startswith("run:"):
        return stage.source, stage.head, stage.freeze
    return stage.arch, stage.input_size, stage.freeze


def stage_param_counts(stage: StageConfig, num_classes: int) -> dict[str, int]:
    """{"trainable", "frozen" (every non-trainable weight: frozen layers and BatchNorm statistics), "frozen_layers"}.
    A freeze policy that matches no layer, or a parent run without a model, is a TransferLabError."""
    from core import models, runs, transfer

    if stage.source.startswith("run:"):
        model = runs.load_model(stage.source[4:])
        if stage.head == "new":
            model = transfer.replace_head(model, num_classes)
    else:
        model = models.build_model(stage.arch, num_classes, stage.input_size)
    frozen = transfer.apply_freeze(model, stage.freeze)
    counts = models.param_counts(model)
    return {"trainable": int(counts["trainable"]), "frozen": int(counts["non_trainable"]),
            "frozen_layers": len(frozen)}
