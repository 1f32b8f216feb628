"""Learning-rate schedules, weight decay and discriminative learning rates: the optimizer a stage trains with.

* `constant` (the default), `cosine` (Keras' `CosineDecay` with its linear warm-up from 0) and `one_cycle`
  (fastai's: a cosine rise from lr/25 to lr over the first `warmup_epochs` — a quarter of the epochs when 0 —,
  then a cosine fall to lr/1e5), stepped per batch. `constant` with `warmup_epochs` ramps up linearly first.
* `weight_decay`: Keras 3 optimizers' own decoupled weight decay (`weight_decay=`); None keeps each optimizer's
  default (AdamW 0.004, the others none).
* `lr_mult` < 1: discriminative learning rates (fastai's `slice(lo, hi)`). The trainable layers fall into groups
  (`layer_groups`: a conv or dense layer with the BatchNormalization after it; inside a nested base, one block);
  the group d groups below the last trains at lr * lr_mult**d. Keras 3 has no per-variable rate, so the
  optimizer is a subclass of the chosen one whose `update_step` scales the rate of each variable.

The schedules and optimizer subclasses are registered Keras serializables, so a compiled model still saves
and loads.
"""

from __future__ import annotations

import math
import re
from typing import Any

import keras

SCHEDULES = ("constant", "one_cycle", "cosine")
ONE_CYCLE_DIV, ONE_CYCLE_FINAL_DIV, ONE_CYCLE_PCT = 25.0, 1e5, 0.25  # fastai's fit_one_cycle defaults
MAX_WEIGHT_DECAY = 1.0
_BLOCK = re.compile(r"^(block_?\d+|conv\d+|stem|top)")
_BASES: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop,
    "adamw": keras.optimizers.AdamW}
_DEFAULTS: dict[str, dict[str, Any]] = {"sgd": {"momentum": 0.9}}

LearningRate = float | keras.optimizers.schedules.LearningRateSchedule


# ---- schedules -----------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="transferlab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """fastai's one-cycle: cosine from max_lr/div to max_lr over `rise_steps`, then cosine down to
    max_lr/final_div at `total_steps` (held there after)."""

    def __init__(self, max_lr: float, total_steps: int, rise_steps: int, div: float = ONE_CYCLE_DIV,
                 final_div: float = ONE_CYCLE_FINAL_DIV):
        self.max_lr, self.total_steps, self.rise_steps = float(max_lr), int(total_steps), int(rise_steps)
        self.div, self.final_div = float(div), float(final_div)

    def __call__(self, step: Any) -> Any:
        ops = keras.ops
        step = ops.cast(step, "float32")
        rise, fall = max(self.rise_steps, 1), max(self.total_steps - self.rise_steps, 1)

        def cos(start: float, end: float, frac: Any) -> Any:
            return end + (start - end) / 2 * (1 + ops.cos(math.pi * ops.clip(frac, 0.0, 1.0)))

        up = cos(self.max_lr / self.div, self.max_lr, step / rise)
        down = cos(self.max_lr, self.max_lr / self.final_div, (step - self.rise_steps) / fall)
        return ops.where(step < self.rise_steps, up, down)

    def get_config(self) -> dict[str, Any]:
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "rise_steps": self.rise_steps,
                "div": self.div, "final_div": self.final_div}


def learning_rate(stage: Any, steps_per_epoch: int, epochs: int | None = None,
                  peak: float | None = None) -> LearningRate:
    """The stage's rate: a float for `constant` without warm-up, else a schedule over `epochs` (default: the
    stage's) x `steps_per_epoch` steps peaking at `peak` (default: the stage's learning rate)."""
    peak = stage.learning_rate if peak is None else peak
    total = max(1, int(steps_per_epoch) * int(epochs or stage.epochs))
    warm = min(total - 1, round(stage.warmup_epochs * steps_per_epoch))
    if stage.schedule == "one_cycle":
        rise = warm if warm > 0 else round(total * ONE_CYCLE_PCT)
        return OneCycle(peak, total, rise)
    if stage.schedule == "constant" and warm <= 0:
        return peak
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warm > 0 else peak, decay_steps=max(1, total - warm), alpha=1.0 if stage.schedule == "constant" else 0.0,
        warmup_target=peak if warm > 0 else None, warmup_steps=max(0, warm))


# ---- discriminative learning rates ---------------------------------------------------------------------------


def _weighted_leaves(model: keras.Model) -> list[tuple[Any, Any]]:
    """(leaf layer, its top-level layer) for every leaf that owns weights, in model order."""
    out: list[tuple[Any, Any]] = []

    def walk(layer: Any, top: Any) -> None:
        if isinstance(layer, keras.Model):
            for sub in layer.layers:
                walk(sub, top)
        elif layer.weights:
            out.append((layer, top))

    for layer in model.layers:
        walk(layer, layer)
    return out


def layer_groups(model: keras.Model) -> list[list[Any]]:
    """The trainable layers in groups, first to last: a top-level layer with weights starts a group (a
    BatchNormalization joins the group before it); inside a nested base, each block (`block3a_*`, `conv4_*`)."""
    groups: list[list[Any]] = []
    last: Any = None
    for leaf, top in _weighted_leaves(model):
        if top is leaf:
            key = last if isinstance(leaf, keras.layers.BatchNormalization) and groups else id(leaf)
        else:
            match = _BLOCK.match(leaf.name)
            key = (id(top), match.group(1)) if match else last or (id(top), "")
        if key != last:
            groups.append([])
        groups[-1].append(leaf)
        last = key
    return [g for g in ([layer for layer in group if layer.trainable_weights] for group in groups) if g]


def multipliers(model: keras.Model, lr_mult: float) -> dict[str, float]:
    """Variable path -> rate multiplier: lr_mult**d for the trainable layer group d groups below the last."""
    groups = layer_groups(model)
    return {v.path: float(lr_mult) ** (len(groups) - 1 - d)
            for d, group in enumerate(groups) for layer in group for v in layer.trainable_weights}


class _RateMultipliers:
    """Mixed in before a Keras optimizer: every variable's update uses learning_rate * its multiplier."""

    def __init__(self, *args: Any, lr_multipliers: dict[str, float] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})
        self._factors: list[float] = []

    def build(self, variables: list[Any]) -> None:
        super().build(variables)
        self._factors = [self.lr_multipliers.get(v.path, 1.0) for v in variables]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> Any:
        factor = self._factors[self._get_variable_index(variable)]
        return super().update_step(gradient, variable, learning_rate * factor if factor != 1.0 else learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "lr_multipliers": self.lr_multipliers}


_DISCRIMINATIVE = {
    name: keras.saving.register_keras_serializable(package="transferlab")(
        type(f"Discriminative{base.__name__}", (_RateMultipliers, base), {}))
    for name, base in _BASES.items()}


# ---- the optimizer -------------------------------------------------------------------------------------------


def make_optimizer(name: str, lr: LearningRate, weight_decay: float | None = None,
                   lr_multipliers: dict[str, float] | None = None) -> keras.optimizers.Optimizer:
    """Adam, SGD (momentum 0.9), RMSprop or AdamW at `lr` (a float or a schedule)."""
    kwargs: dict[str, Any] = {**_DEFAULTS.get(name, {}), "learning_rate": lr}
    if weight_decay is not None:
        kwargs["weight_decay"] = weight_decay
    if lr_multipliers:
        return _DISCRIMINATIVE[name](lr_multipliers=lr_multipliers, **kwargs)
    return _BASES[name](**kwargs)


def stage_optimizer(stage: Any, trainee: keras.Model, steps_per_epoch: int, epochs: int | None = None,
                    peak: float | None = None, lr: LearningRate | None = None) -> keras.optimizers.Optimizer:
    """The optimizer for `trainee` (the model, or the head of a feature-cached split) as the stage asks: its
    schedule over `epochs` peaking at `peak` (or the rate or schedule `lr` as given), weight decay and
    discriminative rates."""
    rate = lr if lr is not None else learning_rate(stage, steps_per_epoch, epochs, peak)
    mults = multipliers(trainee, stage.lr_mult) if stage.lr_mult != 1.0 else None
    return make_optimizer(stage.optimizer, rate, stage.weight_decay, mults)


def stage_errors(stage: Any) -> dict[str, str]:
    """Field -> message for the schedule, warm-up, weight decay and discriminative-rate fields."""
    errors: dict[str, str] = {}
    if stage.schedule not in SCHEDULES:
        errors["schedule"] = f"schedule must be one of {', '.join(SCHEDULES)}"
    if not _finite(stage.warmup_epochs) or not 0 <= stage.warmup_epochs <= max(stage.epochs, 0):
        errors["warmup_epochs"] = "warm-up epochs must be between 0 and the stage's epochs"
    wd = stage.weight_decay
    if wd is not None and (not _finite(wd) or not 0 <= wd < MAX_WEIGHT_DECAY):
        errors["weight_decay"] = f"weight decay must be at least 0 and below {MAX_WEIGHT_DECAY:g} (empty: the default)"
    if not _finite(stage.lr_mult) or not 0 < stage.lr_mult <= 1:
        errors["lr_mult"] = "lr mult must be greater than 0 and at most 1 (1: every layer at the same rate)"
    return errors


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
