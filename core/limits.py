"""Range checks on a stage's numbers: finite, in range, and input sizes that keep a model buildable.

Kept apart from `validation.validate_stage` so the bounds live in one place; that function merges these errors.
"""

from __future__ import annotations

import math
from typing import Any

from core.config import TransferLabError

MAX_SEED = 2**32 - 1  # NumPy's and Keras' seed range
MAX_LEARNING_RATE = 10.0
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
# alexnet4's first dense layer grows with the square of the input (48px: ~0.6 M weights, 256px: ~55 M,
# 2000px: ~4 G); the Keras applications pool globally, so only activations grow with the input.
MAX_INPUT_SIZE = {"alexnet": 256, "default": 1024}


def max_input_size(family: str) -> int:
    return MAX_INPUT_SIZE.get(family, MAX_INPUT_SIZE["default"])


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def range_errors(stage: Any) -> dict[str, str]:
    """Field -> message for every number of `stage` (a StageConfig) outside its range."""
    from core import models

    errors: dict[str, str] = {}
    lr = stage.learning_rate
    if not _finite(lr) or not 0 < lr <= MAX_LEARNING_RATE:
        errors["learning_rate"] = f"learning rate must be a number greater than 0 and at most {MAX_LEARNING_RATE:g}"
    if not 0 <= stage.seed <= MAX_SEED:
        errors["seed"] = f"seed must be between 0 and {MAX_SEED}"
    if stage.epochs > MAX_EPOCHS:
        errors["epochs"] = f"epochs must be at most {MAX_EPOCHS}"
    if stage.batch_size > MAX_BATCH_SIZE:
        errors["batch_size"] = f"batch size must be at most {MAX_BATCH_SIZE}"
    if not _finite(stage.target_accuracy) or not 0 <= stage.target_accuracy <= 1:
        errors["target_accuracy"] = "target accuracy must be between 0 and 1"
    if not _finite(stage.val_fraction):
        errors["val_fraction"] = "val fraction must be between 0 and 0.9"
    if stage.per_class is not None and stage.per_class < 1:
        errors["per_class"] = "per class must be at least 1 image"
    if stage.limit_per_class is not None and stage.limit_per_class < 1:
        errors["limit_per_class"] = "limit per class must be at least 2"
    spec = models.ARCHS.get(stage.arch)
    if spec is not None and stage.input_size is not None and stage.input_size > max_input_size(spec.family):
        errors["input_size"] = (f"input size {stage.input_size} is too large for {stage.arch} "
                                f"(maximum {max_input_size(spec.family)})")
    return errors


def check_finite_loss(history: dict[str, list[float]], learning_rate: float) -> None:
    """A loss that became NaN or infinite (Keras' TerminateOnNaN stopped the fit) fails the run: the weights
    are garbage and must never be saved as a finished model."""
    for epoch, loss in enumerate(history.get("loss", []), 1):
        if not math.isfinite(loss):
            raise TransferLabError(f"Training diverged: the loss became {loss} in epoch {epoch} (learning rate "
                                   f"{learning_rate:g}); lower the learning rate.")
