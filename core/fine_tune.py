"""fastai's `fine_tune` as a stage option: `epochs` with the stage's `freeze` policy (the body frozen, e.g.
`all-but-head` or `first:4`), then `fine_tune_epochs` more with more layers trainable, at
learning_rate / `unfreeze_divisor` (the stage's schedule and discriminative rates apply again).

`unfreeze`: `all` (every layer trains) or `last:K` (the last K conv blocks and everything after them train;
the blocks before stay frozen: `first:N-K` in `core.transfer`'s terms), optionally `+batchnorm` (every
BatchNormalization stays frozen, the Keras fine-tuning guide's rule). A frozen BatchNormalization runs in
inference mode (Keras 3 does that for `trainable=False`), so the frozen layers' statistics never move.

The second phase continues the first's history (epoch numbers, elapsed time, the run's history.csv) and caches
the features of what stays frozen when the first phase could.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from core import composite_stage, datasets, schedules, tb, transfer
from core.config import TransferLabError

UNFREEZE_HELP = "unfreeze must be 'all' or 'last:K' (K conv blocks, K >= 1), optionally with '+batchnorm'"


def _parse(unfreeze: str) -> tuple[int | None, bool]:
    """(K, keep BatchNorm frozen); K None means all."""
    main, *rest = [t.strip().lower() for t in str(unfreeze).split("+")]
    k = main[5:] if main.startswith("last:") else None
    if main != "all" and not (k and k.isdigit() and int(k) >= 1) or any(t != "batchnorm" for t in rest):
        raise TransferLabError(UNFREEZE_HELP + ".")
    return (int(k) if k else None), bool(rest)


def stage_errors(stage: Any) -> dict[str, str]:
    """Field -> message for the fine_tune fields."""
    errors: dict[str, str] = {}
    if stage.fine_tune_epochs < 0:
        errors["fine_tune_epochs"] = "fine-tune epochs must be 0 (off) or more"
    elif stage.fine_tune_epochs and stage.freeze == "none":
        errors["fine_tune_epochs"] = ("fine-tuning unfreezes after a frozen first phase: set freeze "
                                      "(e.g. all-but-head or first:4)")
    try:
        _parse(stage.unfreeze)
    except TransferLabError:
        errors["unfreeze"] = UNFREEZE_HELP
    div = stage.unfreeze_divisor
    if isinstance(div, bool) or not isinstance(div, int | float) or not math.isfinite(div) or div < 1:
        errors["unfreeze_divisor"] = "unfreeze divisor must be a number of at least 1"
    return errors


def conv_blocks(model: keras.Model) -> int:
    """How many conv blocks `first:K` can freeze in this model (VGG blocks, else conv layers)."""
    k = 0
    while True:
        try:
            transfer.resolve_freeze(model, f"first:{k + 1}")
        except TransferLabError:
            return k
        k += 1


def second_policy(model: keras.Model, unfreeze: str) -> str:
    """The freeze policy of the second phase, in `core.transfer`'s terms."""
    k, batchnorm = _parse(unfreeze)
    frozen = "none"
    if k is not None:
        n = conv_blocks(model)
        frozen = f"first:{n - k}" if n > k else "none"
    return f"{frozen}+batchnorm" if batchnorm else frozen


class _KeepClock(keras.callbacks.Callback):
    """Put back the run recorder's start time after it reset it in on_train_begin: time runs on."""

    def __init__(self, recorder: Any, t0: float):
        super().__init__()
        self.recorder, self.t0 = recorder, t0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.recorder.t0 = self.t0


def _batches(stage: Any, model: keras.Model, arrays: tuple[np.ndarray, ...], preprocess: Callable,
             predict: Callable) -> tuple[keras.Model, Any, Any, int]:
    """(trainee, train batches, val batches, images per epoch): the frozen prefix's features cached when the
    stage allows it (no augmentation, no compositing), else the images through the full model."""
    x_tr, y_tr, x_va, y_va = arrays
    cacheable = stage.feature_cache and not stage.augment and not stage.composite
    split = transfer.split_frozen(model) if cacheable else None
    if split:
        prefix, trainee = split
        f_tr, f_va = predict(prefix, x_tr, preprocess), predict(prefix, x_va, preprocess)
        return (trainee, datasets.make_batches(f_tr, y_tr, batch_size=stage.batch_size, preprocess=None,
                                               shuffle=True, seed=stage.seed + 1),
                datasets.make_batches(f_va, y_va, batch_size=512, preprocess=None), len(y_tr))
    train = datasets.make_batches(x_tr, y_tr, batch_size=stage.batch_size, preprocess=preprocess,
                                  augment=stage.augment or False, shuffle=True, seed=stage.seed + 1,
                                  composite=composite_stage.compositor(stage))
    return model, train, datasets.make_batches(x_va, y_va, batch_size=512, preprocess=preprocess), len(y_tr)


def second_phase(stage: Any, model: keras.Model, history: keras.callbacks.History, recorder: Any, strategy: Any,
                 arrays: tuple[np.ndarray, ...], preprocess: Callable) -> keras.callbacks.History:
    """Unfreeze per `stage.unfreeze`, recompile at the lower rate and fit `fine_tune_epochs` more; returns the
    two phases' history as one. Skipped (the first history returned) when the first phase diverged."""
    from core.forward import predict_batches

    first = history.history
    done = len(first.get("loss", []))
    if not done or not math.isfinite(first["loss"][-1]):
        return history
    with strategy.scope():
        transfer.apply_freeze(model, second_policy(model, stage.unfreeze))
        trainee, train_ds, val_ds, n_fit = _batches(stage, model, arrays, preprocess, predict_batches)
        steps = math.ceil(n_fit / stage.batch_size)
        trainee.compile(optimizer=schedules.stage_optimizer(stage, trainee, steps, stage.fine_tune_epochs,
                                                            peak=stage.learning_rate / stage.unfreeze_divisor),
                        loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                        jit_compile="auto" if stage.jit_compile is None else stage.jit_compile)
    recorder.epochs, recorder.steps = done + stage.fine_tune_epochs, steps
    t0 = getattr(recorder, "t0", time.perf_counter())
    callbacks: list[keras.callbacks.Callback] = [recorder, _KeepClock(recorder, t0), keras.callbacks.TerminateOnNaN(),
                                                 *tb.callbacks(recorder.run_id)]
    if stage.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=stage.monitor, patience=stage.patience,
                                                       restore_best_weights=True))
    second = trainee.fit(train_ds, validation_data=val_ds, epochs=done + stage.fine_tune_epochs,
                         initial_epoch=done, callbacks=callbacks, verbose=0, shuffle=False).history
    merged = keras.callbacks.History()
    merged.history = {k: list(first.get(k, [])) + list(second.get(k, [])) for k in {*first, *second}}
    return merged
