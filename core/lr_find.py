"""The learning-rate finder (fastai's `lr_find`, Smith 2015): train a throwaway copy of a stage's model for a
few hundred batches while the rate grows exponentially from `start_lr` to `end_lr`, record each batch's loss,
and suggest a rate from the smoothed curve.

The model is the one the stage would train (the same parent, head and freeze policy), on a random sample of the
stage's training images; the frozen prefix's features are cached when the stage would cache them. Nothing is
stored. The run stops early once the smoothed loss passes 4x its minimum (fastai's rule).

Suggestions: `valley` (fastai's default: two thirds of the way down the longest falling stretch of the smoothed
curve), `steepest` (the steepest fall) and `minimum / 10`. `suggestion` is the valley.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from core import composite_stage, datasets, model_input, models, runs, schedules, transfer
from core.config import TransferLabError
from core.forward import predict_batches
from core.training import DATA_SEED, StageData, prepare_model

START_LR, END_LR, STEPS = 1e-7, 10.0, 200
SMOOTHING = 0.98  # fastai's exponential moving average of the loss, with bias correction
DIVERGED = 4.0  # stop once the smoothed loss passes this many times its minimum
SKIP_START = 5  # batches before the divergence test applies (the first losses are noisy)
SKIP_END = 5  # the last points (past the divergence) are left out of the suggestions


@keras.saving.register_keras_serializable(package="transferlab")
class ExponentialRamp(keras.optimizers.schedules.LearningRateSchedule):
    """start * (end / start) ** (step / (steps - 1)): every step multiplies the rate by the same factor."""

    def __init__(self, start: float, end: float, steps: int):
        self.start, self.end, self.steps = float(start), float(end), int(steps)

    def __call__(self, step: Any) -> Any:
        frac = keras.ops.cast(step, "float32") / max(self.steps - 1, 1)
        return self.start * keras.ops.power(self.end / self.start, frac)

    def get_config(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "steps": self.steps}


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """Exponential moving average with bias correction (the first values are not pulled towards 0)."""
    avg, out = 0.0, []
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def valley(lrs: list[float], losses: list[float]) -> float:
    """fastai's valley: the longest strictly falling subsequence of the losses, and the point two thirds of
    the way along the stretch it spans."""
    n = len(losses)
    lds, best_end, best_start = [1] * n, 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[best_end] < lds[i]:
            best_end, best_start = i, i - lds[i]
    sections = (best_end - best_start) / 3
    return lrs[min(n - 1, best_start + int(sections) + int(sections / 2))]


def steepest(lrs: list[float], losses: list[float]) -> float:
    """The rate where the smoothed loss falls fastest against log(lr)."""
    if len(losses) < 3:
        return lrs[int(np.argmin(losses))]
    slope = np.gradient(np.asarray(losses), np.log(np.asarray(lrs)))
    return lrs[int(np.argmin(slope[1:-1])) + 1]


def _stream(ds: Any) -> Iterator[tuple[Any, Any]]:
    """Batches forever: a tf.data dataset or a Keras PyDataset, epoch after epoch."""
    while True:
        if isinstance(ds, keras.utils.PyDataset):
            ds.on_epoch_begin()
            yield from (ds[i] for i in range(len(ds)))
        else:
            yield from ds


def _trainee(stage: Any, parent_run: str | None, steps: int,
             progress: Callable[[str], None]) -> tuple[keras.Model, Any]:
    """(the model to train, its training batches): the stage's model on a sample of its training images."""
    spec = models.ARCHS[stage.arch]
    size = stage.input_size or spec.default_input_size
    progress("loading data")
    x, y, classes = datasets.load_split_arrays(
        stage.dataset, "train", size, val_fraction=stage.val_fraction, split_mode=stage.split_mode,
        limit_per_class=stage.limit_per_class, per_class=stage.per_class, seed=DATA_SEED)
    x, y = composite_stage.training_arrays(stage, x, y, classes)
    if stage.batch_size > len(x):
        raise TransferLabError(f"batch size {stage.batch_size} is larger than the {len(x)} training images.")
    rows = np.random.default_rng(stage.seed).permutation(len(x))[:steps * stage.batch_size]
    x, y = x[rows], y[rows]
    keras.utils.set_random_seed(stage.seed)
    empty = (x[:0], y[:0])
    model, _ = prepare_model(stage, StageData(x, y, *empty, *empty, classes, size), parent_run, runs)
    preprocess = model_input.preprocess(stage.arch, model_input.stage_takes_raw_pixels(parent_run))
    cacheable = stage.feature_cache and not stage.augment and not stage.composite
    split = transfer.split_frozen(model) if cacheable else None
    if split:
        progress(f"caching frozen features of {len(x):,} images")
        prefix, head = split
        return head, datasets.make_batches(predict_batches(prefix, x, preprocess), y, batch_size=stage.batch_size,
                                           preprocess=None, shuffle=True, seed=stage.seed)
    return model, datasets.make_batches(x, y, batch_size=stage.batch_size, preprocess=preprocess,
                                        augment=stage.augment or False, shuffle=True, seed=stage.seed,
                                        composite=composite_stage.compositor(stage))


def find_lr(stage: Any, parent_run: str | None = None, *, steps: int = STEPS, start_lr: float = START_LR,
            end_lr: float = END_LR, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the ramp; returns plain lists for a plot and the suggestions:
    {"lrs", "losses", "smoothed", "suggestion", "suggestions": {"valley", "steepest", "minimum/10"},
    "steps", "stopped_early", "seconds", "start_lr", "end_lr"}."""
    if not (0 < start_lr < end_lr) or not math.isfinite(end_lr):
        raise TransferLabError(f"The learning-rate ramp needs 0 < start ({start_lr:g}) < end ({end_lr:g}).")
    if steps < 10:
        raise TransferLabError(f"The learning-rate finder needs at least 10 steps, not {steps}.")
    progress = progress or (lambda message: None)
    t0 = time.perf_counter()
    model, batches = _trainee(stage, parent_run, steps, progress)
    ramp = ExponentialRamp(start_lr, end_lr, steps)
    model.compile(optimizer=schedules.stage_optimizer(stage, model, steps, lr=ramp),
                  loss="sparse_categorical_crossentropy")
    lrs: list[float] = []
    losses: list[float] = []
    avg, best = 0.0, math.inf
    for step, (xb, yb) in zip(range(steps), _stream(batches), strict=False):
        loss = float(model.train_on_batch(xb, yb, return_dict=True)["loss"])
        lrs.append(float(ramp(step)))
        losses.append(loss)
        avg = SMOOTHING * avg + (1 - SMOOTHING) * loss
        current = avg / (1 - SMOOTHING ** (step + 1))
        best = min(best, current)
        if step % 10 == 0:
            progress(f"step {step + 1} of {steps}: lr {lrs[-1]:.2e}, loss {loss:.4f}")
        if not math.isfinite(loss) or (step >= SKIP_START and current > DIVERGED * best):
            break
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    lrs, losses = [lrs[i] for i in finite], [losses[i] for i in finite]
    if len(losses) < 3:
        raise TransferLabError(f"The loss diverged at once (from {start_lr:g}): start the ramp lower.")
    smoothed = smooth(losses)
    cut = slice(len(lrs) // 10, -SKIP_END) if len(lrs) >= 2 * SKIP_END + 10 else slice(None)
    xs, ys = lrs[cut], smoothed[cut]  # fastai leaves out the first tenth and the last few points
    suggestions = {"valley": valley(xs, ys), "steepest": steepest(xs, ys), "minimum/10": xs[int(np.argmin(ys))] / 10}
    return {"lrs": lrs, "losses": losses, "smoothed": smoothed, "suggestion": suggestions["valley"],
            "suggestions": suggestions, "steps": len(lrs), "stopped_early": len(lrs) < steps,
            "seconds": round(time.perf_counter() - t0, 2), "start_lr": start_lr, "end_lr": end_lr}


def finder_stage(stage: Any, parent: str | None = None,
                 how: str = "pick the finished run its model starts from") -> tuple[Any, str | None]:
    """The stage as the finder trains it, and the run its model starts from. `parent` (a finished run) replaces
    the stage's source; a stage that continues an earlier stage of its pipeline (previous, stage:N) needs one
    (`how` says how to name it)."""
    from core import validation

    if parent:
        stage = dataclasses.replace(stage, source=f"run:{parent}")
    elif stage.source == "previous" or stage.source.startswith("stage:"):
        raise TransferLabError(f"This stage continues an earlier stage ({stage.source}): {how}.")
    errors = validation.validate_stage(stage)
    if errors:
        raise TransferLabError("Invalid stage: " + "; ".join(f"{k}: {v}" for k, v in errors.items()) + ".")
    return stage, stage.source[4:] if stage.source.startswith("run:") else None
