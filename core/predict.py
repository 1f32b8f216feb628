"""Classify images with a stored model: the training preprocessing, a compiled forward pass, Grad-CAM, export.

Every export takes RGB 0..255 (a model stored before preprocessing moved inside gets it in front as plain Keras
layers, `core.model_input`) and carries its class labels (`core.export`)."""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core import archs, export, model_input, records, runs
from core.calibration import Calibration
from core.config import TransferLabError, atomic_write_bytes, data_root
from core.images import load_rgb, open_image
from core.store import LABELS

EXPORT_FORMATS = ("keras", "savedmodel", "tflite")
LITE_MAX_BATCH = 8  # up to this many images go one by one through LiteRT (no retracing of the TF function)


def resolve_model(spec: str = "latest") -> str:
    """`latest` = the newest finished model: a run with a model, or the shipped default, which counts as of
    when its run was created (so older stored runs do not hide it); `best` (see `best_model`); `default`; or a
    run id."""
    if spec == "best":
        spec = best_model() or "latest"
    if spec == "latest":
        latest = runs.latest_model_run()
        shipped = str(model_record(runs.DEFAULT_MODEL_DIR).get("created") or "")
        if latest and not (shipped and runs.has_default_model()
                           and shipped > str(model_record(latest).get("created") or "")):
            return latest
        spec = runs.DEFAULT_MODEL_DIR
    if spec == runs.DEFAULT_MODEL_DIR:
        if not runs.has_default_model():
            raise TransferLabError("No model yet: train a run (Train page or `python -m core train`) first.")
        return spec
    runs.model_path(spec)
    return spec


def best_model() -> str | None:
    """The finished model with the highest test accuracy for the class set of the newest one (`latest`): a run
    with a loadable model file, or the shipped default; the newest on a tie; None when none qualifies."""
    try:
        classes = set(runs.labels_for(resolve_model("latest")))
    except TransferLabError:
        return None
    candidates = [(r["test_accuracy"], r["run_id"]) for r in runs.list_runs()
                  if r["status"] == "done" and r["has_model"] and r["test_accuracy"] is not None]
    if runs.has_default_model():
        shipped = records.read_metrics(runs.model_dir(runs.DEFAULT_MODEL_DIR))[0].get("test_accuracy")
        if shipped is not None:
            candidates.append((shipped, runs.DEFAULT_MODEL_DIR))
    for _, run_id in sorted(candidates, key=lambda c: c[0], reverse=True):  # stable: newest first on a tie
        if set(records.read_labels(runs.model_dir(run_id))[0] or ()) == classes and (
                run_id == runs.DEFAULT_MODEL_DIR or records.model_file_ok(runs.run_dir(run_id))):
            return run_id
    return None


def model_record(run_id: str) -> dict[str, Any]:
    return records.read_config(runs.model_dir(run_id))[0]


def trained_for_photos(run_id: str) -> bool:
    """Whether the model learned from lab images composited onto scenes (then Classify averages test-time views)."""
    stage = model_record(run_id).get("stage")
    return isinstance(stage, dict) and isinstance(stage.get("composite"), int | float) and stage["composite"] > 0


def model_calibration(run_id: str) -> Calibration:
    """The temperature and "not sure" threshold fitted when the run trained (identity for older runs)."""
    return Calibration.from_dict(records.read_metrics(runs.model_dir(run_id))[0].get("calibration"))


TTA_CROP = 0.6  # side of each test-time crop, as a share of the photo's


def tta_views(img: Image.Image, size: int) -> np.ndarray:
    """Test-time augmentation: the whole photo, and its centre and four corners at TTA_CROP of each side, each
    resized to size x size. A zoomed-in crop of a shop bin or a branch shows a few fruits large, as in training."""
    w, h = img.size
    cw, ch = max(1, round(w * TTA_CROP)), max(1, round(h * TTA_CROP))
    boxes = [((w - cw) // 2, (h - ch) // 2), (0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch)]
    views = [img] + [img.crop((x, y, x + cw, y + ch)) for x, y in boxes]
    return np.stack([np.asarray(v.resize((size, size), Image.Resampling.BILINEAR), np.uint8) for v in views])


@dataclass
class Classifier:
    """One model ready to answer: single images go through LiteRT, batches through a compiled TF function.

    On 2 CPU cores one 48px alexnet4 image takes ~0.3 ms in the LiteRT interpreter (XNNPACK) against ~2.3 ms
    through `tf.function` (the call overhead, not the arithmetic); the two agree to ~1e-13.
    """

    run_id: str
    model: Any
    labels: list[str]
    arch: str
    input_size: int
    lite_model: bytes | None = None
    calibration: Calibration = Calibration()
    raw_pixels: bool = False  # the model takes RGB 0..255; else the arch's external preprocessing comes first

    def __post_init__(self) -> None:
        import tensorflow as tf

        self.preprocess = model_input.preprocess(self.arch, self.raw_pixels)
        self._forward = tf.function(lambda t: self.model(self.preprocess(t), training=False), reduce_retracing=True)
        self._lite = _interpreter(self.lite_model) if self.lite_model else None
        self._lite_lock = threading.Lock()  # an interpreter is not thread-safe; Streamlit sessions share it
        self.probabilities(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))  # trace once

    @property
    def engine(self) -> str:
        return "litert" if self._lite else "tf.function"

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """A few images (one upload, or its test-time views) one by one through LiteRT; batches through TF."""
        if self._lite is not None and len(batch) <= LITE_MAX_BATCH:
            return np.concatenate([self._lite_probabilities(batch[i:i + 1]) for i in range(len(batch))])
        import tensorflow as tf

        return self._forward(tf.convert_to_tensor(batch, tf.float32)).numpy()

    def _lite_probabilities(self, batch: np.ndarray) -> np.ndarray:
        interp, inp, out = self._lite
        with self._lite_lock:
            interp.set_tensor(inp, batch.astype(np.float32))
            interp.invoke()
            return interp.get_tensor(out).copy()

    def prepare(self, source: str | Path | bytes, name: str | None = None) -> np.ndarray:
        """Exactly the training preprocessing: EXIF upright, RGB, resized to the model's input."""
        return load_rgb(source, self.input_size, name)

    def views(self, source: str | Path | bytes, name: str | None = None, tta: bool = False) -> np.ndarray:
        """[V, S, S, 3]: the prepared image alone, or with `tta` the test-time views (`tta_views`)."""
        return tta_views(open_image(source, name), self.input_size) if tta else self.prepare(source, name)[None]

    def classify(self, source: str | Path | bytes, name: str | None = None, top_k: int = 3,
                 tta: bool = False) -> dict[str, Any]:
        """Calibrated probabilities; `sure` is False below the run's validation-chosen threshold."""
        views = self.views(source, name, tta)
        image = views[0]
        t0 = time.perf_counter()
        raw = self.probabilities(views).mean(axis=0)
        latency_ms = (time.perf_counter() - t0) * 1000
        probs = self.calibration.apply(raw[None])[0]
        order = np.argsort(probs)[::-1]
        return {"label": self.labels[order[0]], "sure": bool(probs[order[0]] >= self.calibration.threshold),
                "threshold": self.calibration.threshold,
                "probabilities": {self.labels[i]: float(probs[i]) for i in order},
                "top_k": [(self.labels[i], float(probs[i])) for i in order[:top_k]],
                "model_ms": latency_ms, "image": image, "tta": tta}


@lru_cache(maxsize=4)
def _load_classifier(run_id: str, mtime: float) -> Classifier:
    model = runs.load_model(run_id)
    labels, arch = runs.labels_for(run_id), model_record(run_id)["stage"].get("arch", "alexnet4")
    outputs = model.output_shape[-1]
    if len(labels) != outputs:
        raise TransferLabError(f"Run {run_id}'s {LABELS} names {len(labels)} classes but its model has "
                               f"{outputs} outputs.")
    if arch not in archs.ARCHS:
        raise TransferLabError(f"Run {run_id}'s config names an unknown architecture {arch!r}.")
    raw = model_input.takes_raw_pixels(run_id)
    return Classifier(run_id, model, labels, arch, int(model.input_shape[1]),
                      lite_model(run_id, model_input.raw_pixel_model(model, arch, raw), labels, mtime),
                      model_calibration(run_id), raw)


def _to_tflite(model: Any, labels: list[str]) -> bytes:
    """A flatbuffer of a model that takes RGB 0..255 (preprocessing inside; as eager ops it would cost ~1.5 ms),
    with its labels as metadata."""
    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints "Saved artifact at ..." to stdout
        return export.with_labels(tf.lite.TFLiteConverter.from_keras_model(model).convert(), labels)


def lite_model(run_id: str, model: Any, labels: list[str], mtime: float) -> bytes | None:
    """The model (taking RGB 0..255) as a LiteRT flatbuffer with its labels, converted once (~1.5 s) and kept in
    the data cache; None if it cannot be."""
    try:
        from ai_edge_litert import interpreter  # noqa: F401
    except ImportError:
        return None
    path = data_root() / ".cache" / "litert" / f"{run_id}-{int(mtime * 1e6)}-labelled.tflite"
    if path.is_file():
        return path.read_bytes()
    try:
        blob = _to_tflite(model, labels)
    except Exception:  # noqa: BLE001 - a model LiteRT cannot take still answers through tf.function
        return None
    with contextlib.suppress(OSError):  # a read-only data folder only costs the conversion next time
        atomic_write_bytes(path, blob)
    return blob


@contextlib.contextmanager
def _quiet_native_stderr() -> Any:
    """LiteRT's C++ logger writes "INFO: Created ... XNNPACK delegate" to fd 2 and Python cannot set its level."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _interpreter(blob: bytes) -> tuple[Any, int, int] | None:
    from ai_edge_litert.interpreter import Interpreter

    try:
        with _quiet_native_stderr():
            interp = Interpreter(model_content=blob, num_threads=min(2, os.cpu_count() or 1))
            interp.allocate_tensors()
    except (RuntimeError, ValueError):
        return None
    return interp, interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]


def load_classifier(spec: str = "latest") -> Classifier:
    run_id = resolve_model(spec)
    return _load_classifier(run_id, runs.model_path(run_id).stat().st_mtime)


def classify_paths(paths: list[str], model: str = "latest", top_k: int = 3) -> list[dict[str, Any]]:
    """For the CLI: one result per file; a bad file gets an error entry, never a crash."""
    clf = load_classifier(model)
    out = []
    for path in paths:
        try:
            r = clf.classify(path, name=Path(path).name, top_k=top_k)
            out.append({"path": path, "label": r["label"], "sure": r["sure"], "probabilities": r["probabilities"],
                        "model": clf.run_id, "model_ms": round(r["model_ms"], 3)})
        except TransferLabError as exc:
            out.append({"path": path, "error": str(exc)})
        except OSError as exc:
            out.append({"path": path, "error": f"cannot read {path}: {exc.strerror}"})
    return out


# ---- Grad-CAM ----------------------------------------------------------------------------------------------


def _spatial_split(layer: Any) -> Any:
    """For a nested application model: a model giving (last 4-D feature map, output)."""
    import keras

    spatial = [sub for sub in layer.layers if len(sub.output.shape) == 4][-1]
    return keras.Model(layer.inputs, [spatial.output, layer.output])


def gradcam(clf: Classifier, image: np.ndarray, class_index: int | None = None) -> np.ndarray:
    """Grad-CAM over the last convolutional feature map; returns a heatmap in [0, 1] at the image's size."""
    import keras
    import tensorflow as tf

    x = clf.preprocess(tf.convert_to_tensor(image[None], tf.float32))
    with tf.GradientTape() as tape:
        h, conv = x, None
        for layer in clf.model.layers[1:]:
            if isinstance(layer, keras.Model):
                conv, h = _spatial_split(layer)(h, training=False)
            else:
                h = layer(h, training=False)
                if len(h.shape) == 4:
                    conv = h
        if conv is None:
            raise TransferLabError("This model has no convolutional feature map for a heatmap.")
        index = int(tf.argmax(h[0])) if class_index is None else class_index
        score = h[:, index]
    grads = tape.gradient(score, conv)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.reduce_sum(conv * weights[:, None, None, :], axis=-1))[0].numpy()
    cam = cam / cam.max() if cam.max() > 0 else cam
    return np.asarray(Image.fromarray((cam * 255).astype(np.uint8)).resize(image.shape[1::-1], Image.BILINEAR),
                      dtype=np.float32) / 255.0


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a heatmap (red = important) over the image."""
    color = np.stack([heat, np.zeros_like(heat), 1.0 - heat], axis=-1) * 255
    return (image * (1 - alpha) + color * alpha).clip(0, 255).astype(np.uint8)


# ---- export ------------------------------------------------------------------------------------------------


def export_model(spec: str, fmt: str) -> tuple[bytes, str]:
    """The model as bytes and a file name: `.keras`, a zipped SavedModel, or `.tflite`; each takes RGB 0..255
    and carries its labels (see the module docstring)."""
    if fmt not in EXPORT_FORMATS:
        raise TransferLabError(f"Unknown export format {fmt!r}; use {', '.join(EXPORT_FORMATS)}.")
    run_id = resolve_model(spec)
    clf = load_classifier(run_id)
    if fmt == "tflite" and clf.lite_model:
        return clf.lite_model, f"{run_id}.tflite"
    model = model_input.raw_pixel_model(clf.model, clf.arch, clf.raw_pixels)
    if fmt == "tflite":
        return _to_tflite(model, clf.labels), f"{run_id}.tflite"
    if fmt == "keras":
        stored = runs.model_path(run_id) if model is clf.model else None
        return export.keras_bytes(model, clf.labels, stored), f"{run_id}.keras"
    return export.savedmodel_zip(model, clf.labels), f"{run_id}-savedmodel.zip"
