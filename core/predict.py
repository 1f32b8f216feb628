"""Classify images with a stored model: the training preprocessing, a compiled forward pass, Grad-CAM, export."""

from __future__ import annotations

import io
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core import models, runs
from core.config import TransferLabError, read_json
from core.images import load_rgb

EXPORT_FORMATS = ("keras", "savedmodel", "tflite")


def resolve_model(spec: str = "latest") -> str:
    """`latest` = the newest finished run with a model, else the shipped default; `default`; or a run id."""
    if spec == "latest":
        latest = runs.latest_model_run()
        if latest:
            return latest
        spec = runs.DEFAULT_MODEL_DIR
    if spec == runs.DEFAULT_MODEL_DIR:
        if not (runs.default_model_dir() / "model.keras").is_file():
            raise TransferLabError("No model yet: train a run (Train page or `python -m core train`) first.")
        return spec
    runs.model_path(spec)
    return spec


def model_record(run_id: str) -> dict[str, Any]:
    folder = runs.default_model_dir() if run_id == runs.DEFAULT_MODEL_DIR else runs.run_dir(run_id)
    return read_json(folder / "config.json", {}) or {}


@dataclass
class Classifier:
    run_id: str
    model: Any
    labels: list[str]
    arch: str
    input_size: int

    def __post_init__(self) -> None:
        import tensorflow as tf

        preprocess = models.preprocess_fn(self.arch)
        self._forward = tf.function(lambda t: self.model(preprocess(t), training=False), reduce_retracing=True)
        self.probabilities(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))  # trace once

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._forward(tf.convert_to_tensor(batch, tf.float32)).numpy()

    def prepare(self, source: str | Path | bytes, name: str | None = None) -> np.ndarray:
        """Exactly the training preprocessing: EXIF upright, RGB, resized to the model's input."""
        return load_rgb(source, self.input_size, name)

    def classify(self, source: str | Path | bytes, name: str | None = None, top_k: int = 3) -> dict[str, Any]:
        image = self.prepare(source, name)
        t0 = time.perf_counter()
        probs = self.probabilities(image[None])[0]
        latency_ms = (time.perf_counter() - t0) * 1000
        order = np.argsort(probs)[::-1]
        return {"label": self.labels[order[0]],
                "probabilities": {self.labels[i]: float(probs[i]) for i in order},
                "top_k": [(self.labels[i], float(probs[i])) for i in order[:top_k]],
                "model_ms": latency_ms, "image": image}


@lru_cache(maxsize=4)
def _load_classifier(run_id: str, mtime: float) -> Classifier:
    model = runs.load_model(run_id)
    record = model_record(run_id)
    arch = record.get("stage", {}).get("arch", "alexnet4")
    return Classifier(run_id, model, runs.labels_for(run_id), arch, int(model.input_shape[1]))


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
            out.append({"path": path, "label": r["label"], "probabilities": r["probabilities"],
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

    preprocess = models.preprocess_fn(clf.arch)
    x = preprocess(tf.convert_to_tensor(image[None], tf.float32))
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
    """The model as bytes and a file name: `.keras`, a zipped SavedModel, or `.tflite`."""
    if fmt not in EXPORT_FORMATS:
        raise TransferLabError(f"Unknown export format {fmt!r}; use {', '.join(EXPORT_FORMATS)}.")
    run_id = resolve_model(spec)
    if fmt == "keras":
        return runs.model_path(run_id).read_bytes(), f"{run_id}.keras"
    clf = load_classifier(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        if fmt == "savedmodel":
            target = Path(tmp) / "savedmodel"
            clf.model.export(str(target), verbose=False)
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in target.rglob("*"):
                    if path.is_file():
                        zf.write(path, path.relative_to(target.parent))
            shutil.rmtree(target, ignore_errors=True)
            return buf.getvalue(), f"{run_id}-savedmodel.zip"
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(clf.model)
        return converter.convert(), f"{run_id}.tflite"
