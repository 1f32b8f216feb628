"""A run's layers when its model file is absent (committed runs keep only their record): the architecture is
rebuilt from the run's stage config, without weights, and the recorded freeze policy applied again."""

from __future__ import annotations

from typing import Any

from core.config import TransferLabError


def layers_from_record(run: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """(layer rows as models.describe_layers, frozen layer names, what was rebuilt: arch, classes, input size,
    freeze) for a `runs.get_run` record."""
    from core import archs, models, transfer

    stage, metrics = run["config"].get("stage") or {}, run["metrics"]
    arch = stage.get("arch")
    classes = len(run["labels"] or metrics.get("classes") or [])
    if arch not in archs.ARCHS or not classes:
        raise TransferLabError(f"Run {run['run_id']}: its record names no known architecture and class count, so "
                               "its layers cannot be rebuilt.")
    size = metrics.get("input_size") or stage.get("input_size")
    freeze = stage.get("freeze") or "none"
    model = models.build_model(arch, classes, size)
    frozen = transfer.apply_freeze(model, freeze, arch)
    built = {"arch": arch, "classes": classes, "input_size": model.input_shape[1], "freeze": freeze}
    return models.describe_layers(model), frozen, built
