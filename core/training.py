"""Train one stage with Keras `fit`, record everything about it, and chain stages into pipelines."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import secrets
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

import core
from core import calibration, composite_stage, confusion, datasets, limits, models, runs, transfer
from core.config import REPO_ROOT, TransferLabError, describe_os_error
from core.pipeline import Experiment, StageConfig, check_experiment

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

BACKEND = core.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices are noise in run logs
    if int(os.environ.get("TRANSFERLAB_LOGICAL_CPUS", "0")) > 1:  # split the CPU to test multi-device training
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration()] * int(os.environ["TRANSFERLAB_LOGICAL_CPUS"]))
elif BACKEND == "jax":
    import jax
else:
    raise ImportError(f"Training runs on the tensorflow or jax Keras backend, not {BACKEND!r} (KERAS_BACKEND).")

CANCEL_EVENT = threading.Event()  # set by the CLI's SIGTERM handler
ProgressFn = Callable[[dict[str, Any]], None]
DATA_SEED = 0  # splits and view sampling stay fixed across repeats; the stage seed varies init and order


class Cancelled(Exception):
    """The user asked the run to stop."""


# ---- environment -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DefaultDevice:
    """The strategy off TensorFlow: Keras' default device, one replica (JAX multi-device is not wired up)."""

    name: str
    num_replicas_in_sync: int = 1

    def scope(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def get_strategy() -> Any:
    """Default strategy on one device, MirroredStrategy on several GPUs, MultiWorker when TF_CONFIG is set.

    TRANSFERLAB_STRATEGY=mirrored forces MirroredStrategy over every logical device (tests use two CPUs).
    Off TensorFlow: a DefaultDevice named "<backend>-default".
    """
    if BACKEND != "tensorflow":
        if os.environ.get("TF_CONFIG") or os.environ.get("TRANSFERLAB_STRATEGY") == "mirrored":
            raise TransferLabError(f"TF_CONFIG and TRANSFERLAB_STRATEGY=mirrored need KERAS_BACKEND=tensorflow, "
                                   f"not {BACKEND}.")
        return DefaultDevice(f"{BACKEND}-default")
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if os.environ.get("TRANSFERLAB_STRATEGY") == "mirrored":
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        return tf.distribute.MirroredStrategy(gpus or cpus)
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_name(strategy: Any) -> str:
    return strategy.name if isinstance(strategy, DefaultDevice) else type(strategy).__name__


def gpu_names() -> list[str]:
    if BACKEND == "jax":
        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    names = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        names.append(details.get("device_name", dev.name))
    return names


def device_label() -> str:
    gpus = gpu_names()
    return ", ".join(gpus) if gpus else "CPU"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """Hardware and software a result was obtained on."""
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpus": gpu_names(),
        "device": device_label(),
        "keras_backend": BACKEND,
        **({"tensorflow": tf.__version__} if BACKEND == "tensorflow" else
           {"tensorflow": None, "jax": jax.__version__}),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "commit": git_commit(),
    }


# ---- callbacks ---------------------------------------------------------------------------------------------


class RunRecorder(keras.callbacks.Callback):
    """Writes history.csv each epoch and progress.json (throttled) each batch; stops within one batch on cancel."""

    def __init__(self, run_id: str, epochs: int, steps: int, monitor: str, target: float,
                 cancel_check: Callable[[], bool], on_progress: ProgressFn | None, stage_info: dict[str, Any]):
        super().__init__()
        self.run_id, self.epochs, self.steps = run_id, epochs, steps
        self.monitor, self.target = monitor, target
        self.cancel_check, self.on_progress, self.stage_info = cancel_check, on_progress, stage_info
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
        if self.cancel_check():
            self.cancelled = True
            raise Cancelled()  # leaves fit at once: no validation pass, no partial-epoch history row
        now = time.perf_counter()
        if now - self._last_write >= 0.5 or batch + 1 == self.steps:
            self._last_write = now
            done = self.epoch * self.steps + batch + 1
            total = self.epochs * self.steps
            elapsed = now - self.t0
            self._report({"phase": "training", "epoch": self.epoch + 1, "epochs": self.epochs,
                          "batch": batch + 1, "batches": self.steps, "elapsed_s": round(elapsed, 2),
                          "eta_s": round(elapsed / done * (total - done), 1),
                          "logs": {k: float(v) for k, v in (logs or {}).items()}})

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        elapsed = time.perf_counter() - self.t0
        value = logs.get(self.monitor)
        if self.time_to_target is None and value is not None and "acc" in self.monitor and value >= self.target:
            self.time_to_target = elapsed
        runs.append_history(self.run_id, {"epoch": epoch + 1, **logs, "elapsed_s": round(elapsed, 3),
                                          "epoch_time_s": round(time.perf_counter() - self.epoch_t0, 3)})
        runs.heartbeat(self.run_id)

    def _report(self, info: dict[str, Any]) -> None:
        info = {**self.stage_info, **info, "run_id": self.run_id}
        runs.write_json(self.run_id, "progress.json", info)
        if self.on_progress:
            self.on_progress(info)


# ---- metrics -----------------------------------------------------------------------------------------------


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, Cohen's kappa, the confusion matrix as sparse cells and per-class precision/recall/F1."""
    n = len(classes)
    m = confusion.summary(y_true, y_pred, n)
    tp, support, predicted = m["tp"], m["support"], m["predicted"]
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    per_class = [{"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                 for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)]
    return {"accuracy": m["accuracy"], "kappa": m["kappa"], "confusion": confusion.sparse_cells(y_true, y_pred, n),
            "per_class": per_class}


def single_image_latency_ms(model: keras.Model, input_size: int, repeats: int = 50) -> float:
    """Median ms for one image through a compiled forward pass (what Classify does; not model.predict)."""
    if BACKEND == "tensorflow":
        forward = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
        x = tf.zeros((1, input_size, input_size, 3), tf.float32)
    else:
        forward, x = _jax_forward(model, _identity), keras.ops.zeros((1, input_size, input_size, 3), "float32")
    for _ in range(5):
        np.asarray(forward(x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.asarray(forward(x))
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def predict_batches(model: keras.Model, x: np.ndarray, preprocess: Callable, batch_size: int = 256,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Forward pass over uint8 images in batches with a compiled function (no Keras predict overhead);
    `progress(n)` hears of every n images done."""
    if BACKEND == "tensorflow":
        forward = tf.function(lambda t: model(preprocess(tf.cast(t, tf.float32)), training=False),
                              input_signature=[tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype))])
    else:
        forward = _jax_forward(model, preprocess)
    outs = []
    for i in range(0, len(x), batch_size):
        outs.append(np.asarray(forward(x[i:i + batch_size])))
        if progress:
            progress(len(outs[-1]))
    return np.concatenate(outs) if outs else np.zeros((0,) + tuple(model.output.shape[1:]), np.float32)


def _jax_forward(model: keras.Model, preprocess: Callable) -> Callable[[Any], Any]:
    """model(preprocess(float32 x), training=False) as one jax.jit over stateless_call (compiled per shape),
    with the model's current weights."""
    def run(trainable: list[Any], non_trainable: list[Any], x: Any) -> Any:
        out, _ = model.stateless_call(trainable, non_trainable, preprocess(keras.ops.cast(x, "float32")),
                                      training=False)
        return out

    compiled = jax.jit(run)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    return lambda x: compiled(trainable, non_trainable, x)


# ---- one stage ---------------------------------------------------------------------------------------------


def make_optimizer(name: str, lr: float) -> keras.optimizers.Optimizer:
    return {"adam": keras.optimizers.Adam, "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate,
            momentum=0.9), "rmsprop": keras.optimizers.RMSprop, "adamw": keras.optimizers.AdamW}[name](
        learning_rate=lr)


def prepare_model(stage: StageConfig, num_classes: int, input_size: int, parent_run: str | None,
                  classes: list[str]) -> tuple[keras.Model, list[str]]:
    """Build or load the stage's model, set its head, freeze per policy. Returns (model, frozen layer names)."""
    if stage.source in ("scratch", "imagenet"):
        weights = "imagenet" if stage.source == "imagenet" else None
        model = models.build_model(stage.arch, num_classes, input_size, weights=weights, seed=stage.seed)
        if weights:
            model = transfer.replace_head(model, num_classes, seed=stage.seed)
    else:
        assert parent_run is not None
        model = runs.load_model(parent_run)
        if stage.head == "new":
            model = transfer.replace_head(model, num_classes, seed=stage.seed)
        elif runs.labels_for(parent_run) != classes:
            raise TransferLabError(
                f"head 'keep' needs the parent's classes, but {stage.dataset} has {len(classes)} classes "
                f"that differ from run {parent_run}'s; use head 'new'.")
        got = model.input_shape[1]
        if got != input_size:
            raise TransferLabError(f"the parent model takes {got}px inputs but the stage asks for {input_size}px.")
    frozen = transfer.apply_freeze(model, stage.freeze)
    return model, frozen


def train_stage(run_id: str, stage: StageConfig, parent_run: str | None = None,
                on_progress: ProgressFn | None = None, stage_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one stage into run `run_id`; returns its metrics. Raises Cancelled when asked to stop."""
    stage_info = stage_info or {}
    t_start = time.perf_counter()
    keras.utils.set_random_seed(stage.seed)
    spec = models.ARCHS[stage.arch]
    size = stage.input_size or spec.default_input_size
    data_kw = dict(val_fraction=stage.val_fraction, split_mode=stage.split_mode,
                   limit_per_class=stage.limit_per_class, per_class=stage.per_class, seed=DATA_SEED)

    def report(phase: str, **extra: Any) -> None:
        info = {**stage_info, "phase": phase, "run_id": run_id, **extra}
        runs.write_json(run_id, "progress.json", info)
        if on_progress:
            on_progress(info)

    report("loading data")
    x_tr, y_tr, classes = datasets.load_split_arrays(stage.dataset, "train", size, **data_kw)
    x_va, y_va, _ = datasets.load_split_arrays(stage.dataset, "val", size, **data_kw)
    x_te, y_te, _ = datasets.load_split_arrays(stage.dataset, "test", size, **data_kw)
    x_tr, y_tr = composite_stage.training_arrays(stage, x_tr, y_tr, classes)
    if stage.batch_size > len(x_tr):
        raise TransferLabError(f"batch size {stage.batch_size} is larger than the {len(x_tr)} training images.")
    runs.write_json(run_id, "labels.json", classes)
    preprocess = models.preprocess_fn(stage.arch)
    data_time = time.perf_counter() - t_start

    report("building model")
    t_train = time.perf_counter()
    policy_before = keras.mixed_precision.dtype_policy()
    if stage.mixed_precision and gpu_names():
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    strategy = get_strategy()
    try:
        with strategy.scope():
            model, frozen = prepare_model(stage, len(classes), size, parent_run, classes)
            cacheable = stage.feature_cache and not stage.augment and composite_stage.uses_fixed_copies(stage)
            split = transfer.split_frozen(model) if cacheable else None
            y_fit = y_tr
            if split:
                prefix, trainee = split
                todo = len(x_va) + len(x_tr) * (1 + composite_stage.copies(stage))
                done = [0]

                def extracted(n: int) -> None:
                    done[0] += n
                    report(f"caching frozen features: {done[0]:,} of {todo:,} images")

                f_tr, f_va = (predict_batches(prefix, x, preprocess, progress=extracted) for x in (x_tr, x_va))
                f_tr, y_fit = composite_stage.cached_features(
                    stage, x_tr, y_tr, f_tr, lambda x: predict_batches(prefix, x, preprocess, progress=extracted))
                train_ds = datasets.make_batches(f_tr, y_fit, batch_size=stage.batch_size, preprocess=_identity,
                                                 shuffle=True, seed=stage.seed)
                val_ds = datasets.make_batches(f_va, y_va, batch_size=512, preprocess=_identity)
            else:
                trainee = model
                train_ds = datasets.make_batches(x_tr, y_tr, batch_size=stage.batch_size, preprocess=preprocess,
                                                 augment=stage.augment or False, shuffle=True, seed=stage.seed,
                                                 composite=composite_stage.compositor(stage))
                val_ds = datasets.make_batches(x_va, y_va, batch_size=512, preprocess=preprocess)
            trainee.compile(optimizer=make_optimizer(stage.optimizer, stage.learning_rate),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                            jit_compile="auto" if stage.jit_compile is None else stage.jit_compile)
    finally:
        keras.mixed_precision.set_dtype_policy(policy_before)
    steps = math.ceil(len(y_fit) / stage.batch_size)
    recorder = RunRecorder(run_id, stage.epochs, steps, stage.monitor, stage.target_accuracy,
                           lambda: CANCEL_EVENT.is_set() or runs.cancel_requested(run_id), on_progress,
                           {**stage_info, "feature_cache": bool(split)})
    callbacks: list[keras.callbacks.Callback] = [recorder, keras.callbacks.TerminateOnNaN()]
    from core import tb  # issue 16 hook: TensorBoard scalars in the run's folder

    callbacks += tb.callbacks(run_id)
    if stage.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=stage.monitor, patience=stage.patience,
                                                       restore_best_weights=True))
    t_fit = time.perf_counter()
    hist = trainee.fit(train_ds, validation_data=val_ds, epochs=stage.epochs, callbacks=callbacks, verbose=0,
                       shuffle=False)
    fit_time = time.perf_counter() - t_fit
    wall_time = time.perf_counter() - t_train
    if recorder.cancelled:
        raise Cancelled()
    limits.check_finite_loss(hist.history, stage.learning_rate)

    report("evaluating")
    t_eval = time.perf_counter()
    probs = predict_batches(model, x_te, preprocess)
    test = classification_metrics(y_te, probs.argmax(1), classes)
    test_loss = float(np.mean(-np.log(np.clip(probs[np.arange(len(y_te)), y_te], 1e-7, 1.0))))
    val_probs = predict_batches(model, x_va, preprocess)
    val_acc = float((val_probs.argmax(1) == y_va).mean())
    cal = calibration.calibrate(val_probs, y_va)
    runs.save_model(run_id, model)
    confusion.write(runs.run_dir(run_id), classes, test["confusion"])
    epochs_run = len(hist.history.get("loss", []))
    monitored = hist.history.get(stage.monitor, [])
    best_epoch = (int(np.argmin(monitored) if "loss" in stage.monitor else np.argmax(monitored)) + 1
                  if monitored else epochs_run)
    counts = models.param_counts(model)
    last = {k: float(v[-1]) for k, v in hist.history.items()}
    return {
        "test_accuracy": test["accuracy"], "test_loss": test_loss, "kappa": test["kappa"],
        "per_class": test["per_class"],
        "calibration": {**cal.to_dict(), "test_ece_before": calibration.expected_calibration_error(probs, y_te),
                        "test_ece_after": calibration.expected_calibration_error(cal.apply(probs), y_te)},
        "val_accuracy": val_acc, "val_loss": last.get("val_loss"),
        "train_accuracy": last.get("accuracy"), "train_loss": last.get("loss"),
        "best_epoch": best_epoch, "epochs_run": epochs_run,
        "wall_time_s": wall_time, "fit_time_s": fit_time, "data_time_s": data_time,
        "eval_time_s": time.perf_counter() - t_eval, "time_to_target_s": recorder.time_to_target,
        "target_accuracy": stage.target_accuracy,
        "ms_per_step": fit_time / max(1, epochs_run * steps) * 1000,
        "images_per_s": len(y_fit) * epochs_run / fit_time if fit_time else None,
        "trainable_params": counts["trainable"], "non_trainable_params": counts["non_trainable"],
        "total_params": counts["total"], "frozen_layers": frozen, "feature_cache": bool(split),
        "inference_ms_per_image": single_image_latency_ms(model, size),
        "n_train": len(x_tr), "n_fit": len(y_fit), "n_val": len(x_va), "n_test": len(x_te), "input_size": size,
        "classes": classes, "seed": stage.seed, "strategy": strategy_name(strategy),
        "replicas": strategy.num_replicas_in_sync, **environment(),
    }


def _identity(t: Any) -> Any:
    return t


def execute_run(run_id: str, stage: StageConfig, parent_run: str | None,
                on_progress: ProgressFn | None = None, stage_info: dict[str, Any] | None = None) -> str:
    """Run one stage with status bookkeeping; returns the final status. Errors are recorded, never raised."""
    runs.set_status(run_id, "running", pid=os.getpid())
    try:
        metrics = train_stage(run_id, stage, parent_run, on_progress, stage_info)
    except (Cancelled, KeyboardInterrupt):
        runs.set_status(run_id, "cancelled", error="cancelled by the user")
        return "cancelled"
    except TransferLabError as exc:
        runs.set_status(run_id, "failed", error=str(exc))
        return "failed"
    except OSError as exc:
        runs.set_status(run_id, "failed", error=f"{describe_os_error(exc)}: free space or fix the folder, then "
                                                  "train again")
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any crash is recorded on the run, with its traceback
        runs.write_json(run_id, "traceback.json", {"traceback": traceback.format_exc()})
        runs.set_status(run_id, "failed", error=f"{type(exc).__name__}: {str(exc)[:500]}")
        return "failed"
    runs.write_json(run_id, "metrics.json", metrics)
    runs.set_status(run_id, "done")
    return "done"


# ---- pipelines ---------------------------------------------------------------------------------------------


def run_experiment(exp: Experiment, command: str = "", job_id: str | None = None,
                   on_progress: ProgressFn | None = None,
                   on_run: Callable[[str, str], None] | None = None) -> list[dict[str, str]]:
    """Run every pipeline; the last stage repeats `repeats` times from the same parent, seed + repeat index."""
    check_experiment(exp)
    results: list[dict[str, str]] = []
    total = sum(len(p.stages) - 1 + p.repeats for p in exp.pipelines)
    for pipe in exp.pipelines:
        pipeline_id = f"{exp.name}-{pipe.name}-{secrets.token_hex(3)}"
        parent: str | None = None
        stage_runs: list[str] = []
        for index, stage in enumerate(pipe.stages):
            is_last = index == len(pipe.stages) - 1
            repeats = pipe.repeats if is_last else 1
            produced: list[str] = []
            for rep in range(repeats):
                st = dataclasses.replace(stage, seed=stage.seed + rep)
                source_run = _source_run(st.source, parent, stage_runs)
                record = {"stage": st.to_dict(), "preset": exp.name, "pipeline_name": pipe.name,
                          "pipeline_id": pipeline_id, "stage_index": index, "stage_count": len(pipe.stages),
                          "repeat_index": rep, "repeats": repeats, "parent_run": source_run,
                          "method": "scratch" if st.source == "scratch" else "transfer",
                          "command": command, "job_id": job_id, "hardware": environment()}
                run_id = runs.create_run(record)
                if on_run:
                    on_run(run_id, "running")
                info = {"pipeline": pipe.name, "stage": index + 1, "stages": len(pipe.stages),
                        "repeat": rep + 1, "repeats": repeats, "step": len(results) + 1, "steps": total}
                status = execute_run(run_id, st, source_run, on_progress, info)
                from core import tracking  # issue 16 hook: the run in MLflow when MLFLOW_TRACKING_URI is set

                tracking.run_finished(run_id)
                results.append({"run_id": run_id, "status": status})
                if on_run:
                    on_run(run_id, status)
                if status == "cancelled":
                    return results
                if status == "done":
                    produced.append(run_id)
            if not produced:
                break  # a failed stage leaves nothing to continue from
            parent = produced[0]
            stage_runs.append(parent)
    return results


def _source_run(source: str, previous: str | None, stage_runs: list[str]) -> str | None:
    """The parent run id a stage's `source` names: previous, stage:N of this pipeline, run:<id>."""
    if source == "previous":
        return previous
    if source.startswith("stage:"):
        return stage_runs[int(source[6:])]
    if source.startswith("run:"):
        return source[4:]
    return None


def command_line() -> str:
    return " ".join(["python"] + [a if " " not in a else repr(a) for a in sys.argv])
