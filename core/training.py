"""Train one stage, in named steps: load the data → build (from scratch, ImageNet or the parent run's model) →
fit → evaluate → record. `train_stage` returns a `StageResult`; `execute_run` records it, and every file a stage
writes goes through the run store (`core.store.RunStore`, `core.runs` by default). Pipelines: core.experiment."""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from core import (
    calibration,
    composite_stage,
    confusion,
    datasets,
    fine_tune,
    hardware,
    limits,
    model_input,
    models,
    runs,
    schedules,
    tb,
    transfer,
)
from core.config import TransferLabError, describe_os_error
from core.forward import identity, predict_batches, single_image_latency_ms
from core.pipeline import StageConfig
from core.run_records import StageMetrics
from core.store import RunStore

CANCEL_EVENT = threading.Event()  # set by the SIGTERM handlers of `train` and `jobs run`
ProgressFn = Callable[[dict[str, Any]], None]
DATA_SEED = 0  # splits and view sampling stay fixed across repeats; the stage seed varies init and order


class Cancelled(Exception):
    """The user asked the run to stop."""


@dataclass
class StageData:
    """The stage's images (uint8) and labels per split, the classes, and the input size."""

    x_tr: np.ndarray
    y_tr: np.ndarray
    x_va: np.ndarray
    y_va: np.ndarray
    x_te: np.ndarray
    y_te: np.ndarray
    classes: list[str]
    size: int


@dataclass
class Built:
    """A compiled model ready to fit: `trainee` is `model`, or its head alone when frozen features are cached."""

    model: keras.Model
    trainee: keras.Model
    frozen: list[str]
    train_ds: Any
    val_ds: Any
    n_fit: int
    feature_cache: bool
    strategy: Any
    preprocess: Callable
    raw_pixels: bool  # the model takes RGB 0..255 (its preprocessing inside)


@dataclass
class StageResult:
    """What a finished stage produced: the model, its metrics and its test confusion cells."""

    model: keras.Model
    metrics: StageMetrics
    confusion: list[list[int]]


class RunRecorder(keras.callbacks.Callback):
    """Writes history.csv each epoch and progress.json (throttled) each batch; stops within one batch on cancel."""

    def __init__(self, run_id: str, epochs: int, steps: int, stage: StageConfig, report: ProgressFn,
                 store: RunStore):
        super().__init__()
        self.run_id, self.epochs, self.steps, self.store, self.report = run_id, epochs, steps, store, report
        self.monitor, self.target = stage.monitor, stage.target_accuracy
        self.cancelled = False
        self.time_to_target: float | None = None
        self.epoch = 0
        self._last_write = 0.0

    def on_train_begin(self, logs=None):
        self.t0 = time.perf_counter()
        self.epoch_t0 = self.t0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if CANCEL_EVENT.is_set() or self.store.cancel_requested(self.run_id):
            self.cancelled = True
            raise Cancelled()  # leaves fit at once: no validation pass, no partial-epoch history row
        now = time.perf_counter()
        if now - self._last_write >= 0.5 or batch + 1 == self.steps:
            self._last_write = now
            done, total, elapsed = self.epoch * self.steps + batch + 1, self.epochs * self.steps, now - self.t0
            self.report({"phase": "training", "epoch": self.epoch + 1, "epochs": self.epochs,
                         "batch": batch + 1, "batches": self.steps, "elapsed_s": round(elapsed, 2),
                         "eta_s": round(elapsed / done * (total - done), 1),
                         "logs": {k: float(v) for k, v in (logs or {}).items()}})

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        elapsed = time.perf_counter() - self.t0
        value = logs.get(self.monitor)
        if self.time_to_target is None and value is not None and "acc" in self.monitor and value >= self.target:
            self.time_to_target = elapsed
        self.store.append_history(self.run_id, {"epoch": epoch + 1, **logs, "elapsed_s": round(elapsed, 3),
                                                "epoch_time_s": round(time.perf_counter() - self.epoch_t0, 3)})
        self.store.heartbeat(self.run_id)


def make_optimizer(name: str, lr: float) -> keras.optimizers.Optimizer:
    return schedules.make_optimizer(name, lr)


# ---- the steps ---------------------------------------------------------------------------------------------


def load_data(stage: StageConfig, run_id: str, store: RunStore) -> StageData:
    size = stage.input_size or models.ARCHS[stage.arch].default_input_size
    kw = dict(val_fraction=stage.val_fraction, split_mode=stage.split_mode, limit_per_class=stage.limit_per_class,
              per_class=stage.per_class, seed=DATA_SEED)
    x_tr, y_tr, classes = datasets.load_split_arrays(stage.dataset, "train", size, **kw)
    x_va, y_va, _ = datasets.load_split_arrays(stage.dataset, "val", size, **kw)
    x_te, y_te, _ = datasets.load_split_arrays(stage.dataset, "test", size, **kw)
    x_tr, y_tr = composite_stage.training_arrays(stage, x_tr, y_tr, classes)
    if stage.batch_size > len(x_tr):
        raise TransferLabError(f"batch size {stage.batch_size} is larger than the {len(x_tr)} training images.")
    store.write_labels(run_id, classes)
    return StageData(x_tr, y_tr, x_va, y_va, x_te, y_te, classes, size)


def load_parent(stage: StageConfig, parent_run: str, data: StageData, store: RunStore) -> keras.Model:
    """The parent run's model, with a new head or (head 'keep') the parent's own for the same classes."""
    model = store.load_model(parent_run)
    if stage.head == "new":
        model = transfer.replace_head(model, len(data.classes), seed=stage.seed)
    elif store.labels_for(parent_run) != data.classes:
        raise TransferLabError(
            f"head 'keep' needs the parent's classes, but {stage.dataset} has {len(data.classes)} classes "
            f"that differ from run {parent_run}'s; use head 'new'.")
    if model.input_shape[1] != data.size:
        raise TransferLabError(f"the parent model takes {model.input_shape[1]}px inputs but the stage asks for "
                               f"{data.size}px.")
    return model


def prepare_model(stage: StageConfig, data: StageData, parent_run: str | None,
                  store: RunStore) -> tuple[keras.Model, list[str]]:
    """Build or load the stage's model, set its head, freeze per policy. Returns (model, frozen layer names)."""
    if stage.source in ("scratch", "imagenet"):
        weights = "imagenet" if stage.source == "imagenet" else None
        model = models.build_model(stage.arch, len(data.classes), data.size, weights=weights, seed=stage.seed)
        if weights:
            model = transfer.replace_head(model, len(data.classes), seed=stage.seed)
    else:
        assert parent_run is not None
        model = load_parent(stage, parent_run, data, store)
    return model, transfer.apply_freeze(model, stage.freeze)


def build(stage: StageConfig, data: StageData, parent_run: str | None, store: RunStore,
          report: ProgressFn) -> Built:
    """The model, compiled, with its training and validation batches: through the frozen prefix once (its
    features cached) when the policy leaves one and nothing varies per epoch, else from the images."""
    raw_pixels = model_input.stage_takes_raw_pixels(parent_run)  # a continued model keeps its parent's input
    preprocess = model_input.preprocess(stage.arch, raw_pixels)
    policy_before = keras.mixed_precision.dtype_policy()
    if stage.mixed_precision and hardware.gpu_names():
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    strategy = hardware.get_strategy()
    try:
        with strategy.scope():
            model, frozen = prepare_model(stage, data, parent_run, store)
            cacheable = stage.feature_cache and not stage.augment and composite_stage.uses_fixed_copies(stage)
            split = transfer.split_frozen(model) if cacheable else None
            if split:
                trainee, train_ds, val_ds, n_fit = _cached_batches(stage, data, split, preprocess, report)
            else:
                trainee, n_fit = model, len(data.y_tr)
                train_ds = datasets.make_batches(data.x_tr, data.y_tr, batch_size=stage.batch_size,
                                                 preprocess=preprocess, augment=stage.augment or False, shuffle=True,
                                                 seed=stage.seed, composite=composite_stage.compositor(stage))
                val_ds = datasets.make_batches(data.x_va, data.y_va, batch_size=512, preprocess=preprocess)
            trainee.compile(optimizer=schedules.stage_optimizer(stage, trainee, math.ceil(n_fit / stage.batch_size)),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                            jit_compile="auto" if stage.jit_compile is None else stage.jit_compile)
    finally:
        keras.mixed_precision.set_dtype_policy(policy_before)
    return Built(model, trainee, frozen, train_ds, val_ds, n_fit, bool(split), strategy, preprocess, raw_pixels)


def _cached_batches(stage: StageConfig, data: StageData, split: tuple[keras.Model, keras.Model],
                    preprocess: Callable, report: ProgressFn) -> tuple[keras.Model, Any, Any, int]:
    """(the head, its training and validation batches of cached features, the training-set size)."""
    prefix, head = split
    todo, done = len(data.x_va) + len(data.x_tr) * (1 + composite_stage.copies(stage)), [0]

    def extracted(n: int) -> None:
        done[0] += n
        report({"phase": f"caching frozen features: {done[0]:,} of {todo:,} images"})

    def features(x: np.ndarray) -> np.ndarray:
        return predict_batches(prefix, x, preprocess, progress=extracted)

    f_tr, f_va = features(data.x_tr), features(data.x_va)
    f_tr, y_fit = composite_stage.cached_features(stage, data.x_tr, data.y_tr, f_tr, features)
    train_ds = datasets.make_batches(f_tr, y_fit, batch_size=stage.batch_size, preprocess=identity, shuffle=True,
                                     seed=stage.seed)
    return head, train_ds, datasets.make_batches(f_va, data.y_va, batch_size=512, preprocess=identity), len(y_fit)


def fit(stage: StageConfig, built: Built, recorder: RunRecorder,
        data: StageData) -> tuple[dict[str, list[float]], float]:
    """Keras `fit` with early stopping and a NaN guard; (history, fit seconds). Raises Cancelled when asked to."""
    callbacks: list[keras.callbacks.Callback] = [recorder, keras.callbacks.TerminateOnNaN(), *tb.callbacks(recorder.run_id)]
    if stage.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=stage.monitor, patience=stage.patience,
                                                       restore_best_weights=True))
    t_fit = time.perf_counter()
    hist = built.trainee.fit(built.train_ds, validation_data=built.val_ds, epochs=stage.epochs, callbacks=callbacks,
                             verbose=0, shuffle=False)
    if stage.fine_tune_epochs:  # fastai's fine_tune: a second fit with more layers trainable
        hist = fine_tune.second_phase(stage, built.model, hist, recorder, built.strategy,
                                      (data.x_tr, data.y_tr, data.x_va, data.y_va), built.preprocess)
    fit_time = time.perf_counter() - t_fit
    if recorder.cancelled:
        raise Cancelled()
    limits.check_finite_loss(hist.history, stage.learning_rate)
    return hist.history, fit_time


def evaluate(model: keras.Model, data: StageData, preprocess: Callable) -> tuple[dict[str, Any], list[list[int]]]:
    """Test accuracy, kappa, per-class scores and loss; validation accuracy and the calibration fitted on it.
    Returns (metrics fields, the test confusion cells)."""
    probs = predict_batches(model, data.x_te, preprocess)
    test = confusion.classification_metrics(data.y_te, probs.argmax(1), data.classes)
    picked = np.clip(probs[np.arange(len(data.y_te)), data.y_te], 1e-7, 1.0)
    val_probs = predict_batches(model, data.x_va, preprocess)
    cal = calibration.calibrate(val_probs, data.y_va)
    ece = calibration.expected_calibration_error
    return {"test_accuracy": test["accuracy"], "test_loss": float(np.mean(-np.log(picked))), "kappa": test["kappa"],
            "per_class": test["per_class"], "val_accuracy": float((val_probs.argmax(1) == data.y_va).mean()),
            "calibration": {**cal.to_dict(), "test_ece_before": ece(probs, data.y_te),
                            "test_ece_after": ece(cal.apply(probs), data.y_te)}}, test["confusion"]


def train_stage(run_id: str, stage: StageConfig, parent_run: str | None = None,
                on_progress: ProgressFn | None = None, stage_info: dict[str, Any] | None = None,
                store: RunStore = runs) -> StageResult:
    """Train one stage of run `run_id`; returns what it produced. Raises Cancelled when asked to stop."""
    stage_info = stage_info or {}

    def report(info: dict[str, Any]) -> None:
        info = {**stage_info, **info, "run_id": run_id}
        store.write_progress(run_id, info)
        if on_progress:
            on_progress(info)

    t_start = time.perf_counter()
    keras.utils.set_random_seed(stage.seed)
    report({"phase": "loading data"})
    data = load_data(stage, run_id, store)
    data_time = time.perf_counter() - t_start
    report({"phase": "building model"})
    t_train = time.perf_counter()
    built = build(stage, data, parent_run, store, report)
    steps = math.ceil(built.n_fit / stage.batch_size)
    recorder = RunRecorder(run_id, stage.epochs, steps, stage,
                           lambda info: report({"feature_cache": built.feature_cache, **info}), store)
    history, fit_time = fit(stage, built, recorder, data)
    wall_time = time.perf_counter() - t_train
    report({"phase": "evaluating"})
    t_eval = time.perf_counter()
    scores, cells = evaluate(built.model, data, built.preprocess)
    epochs_run = len(history.get("loss", []))
    monitored = history.get(stage.monitor, [])
    best = (np.argmin(monitored) if "loss" in stage.monitor else np.argmax(monitored)) if monitored else None
    counts = models.param_counts(built.model)
    last = {k: float(v[-1]) for k, v in history.items()}
    metrics = StageMetrics(
        **scores, val_loss=last.get("val_loss"), train_accuracy=last.get("accuracy"), train_loss=last.get("loss"),
        best_epoch=epochs_run if best is None else int(best) + 1, epochs_run=epochs_run,
        wall_time_s=wall_time, fit_time_s=fit_time, data_time_s=data_time, eval_time_s=time.perf_counter() - t_eval,
        time_to_target_s=recorder.time_to_target, target_accuracy=stage.target_accuracy,
        ms_per_step=fit_time / max(1, epochs_run * steps) * 1000,
        images_per_s=built.n_fit * epochs_run / fit_time if fit_time else None,
        trainable_params=counts["trainable"], non_trainable_params=counts["non_trainable"],
        total_params=counts["total"], frozen_layers=built.frozen, feature_cache=built.feature_cache,
        raw_pixels=built.raw_pixels,
        inference_ms_per_image=single_image_latency_ms(built.model, data.size), n_train=len(data.x_tr),
        n_fit=built.n_fit, n_val=len(data.x_va), n_test=len(data.x_te), input_size=data.size, classes=data.classes,
        seed=stage.seed, strategy=hardware.strategy_name(built.strategy),
        replicas=built.strategy.num_replicas_in_sync, environment=hardware.environment())
    return StageResult(built.model, metrics, cells)


def record(run_id: str, result: StageResult, store: RunStore) -> None:
    """Model first, then the confusion matrix, then the metrics: a run with metrics has its model."""
    store.save_model(run_id, result.model)
    store.write_confusion(run_id, result.metrics.classes or [], result.confusion)
    store.write_metrics(run_id, result.metrics)


def execute_run(run_id: str, stage: StageConfig, parent_run: str | None, on_progress: ProgressFn | None = None,
                stage_info: dict[str, Any] | None = None, store: RunStore = runs) -> str:
    """Run one stage with status bookkeeping; returns the final status. Errors are recorded, never raised."""
    store.set_status(run_id, "running", pid=os.getpid())
    try:
        record(run_id, train_stage(run_id, stage, parent_run, on_progress, stage_info, store), store)
    except (Cancelled, KeyboardInterrupt):
        store.set_status(run_id, "cancelled", error="cancelled by the user")
        return "cancelled"
    except TransferLabError as exc:
        store.set_status(run_id, "failed", error=str(exc))
        return "failed"
    except OSError as exc:
        store.set_status(run_id, "failed", error=f"{describe_os_error(exc)}: free space or fix the folder, then "
                                                 "train again")
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any crash is recorded on the run, with its traceback
        store.write_traceback(run_id, traceback.format_exc())
        store.set_status(run_id, "failed", error=f"{type(exc).__name__}: {str(exc)[:500]}")
        return "failed"
    store.set_status(run_id, "done")
    return "done"
