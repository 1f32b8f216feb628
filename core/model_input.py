"""What a stored model takes: RGB 0..255 pixels, or (stored before preprocessing moved inside) preprocessed input.

A run records it in metrics.json as `raw_pixels` (true for models built with their preprocessing inside,
`core.archs`); a run without the key keeps being fed its architecture's external preprocessing, and a stage that
continues a model keeps its parent's convention.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core import archs, records, runs
from core.archs import Preprocess

RAW_PIXELS = "raw_pixels"


def preprocess(arch: str, raw_pixels: bool) -> Preprocess:
    """What the caller applies to float32 RGB 0..255 before the model: a cast, or the arch's external one."""
    return archs.efficientnet_preprocess if raw_pixels else archs.get(arch).preprocess


def takes_raw_pixels(run_id: str) -> bool:
    """Whether run `run_id`'s model takes RGB 0..255 (its record says so)."""
    return records.read_metrics(runs.model_dir(run_id))[0].get(RAW_PIXELS) is True


def stage_takes_raw_pixels(parent_run: str | None) -> bool:
    """A stage's model takes raw pixels when it is built here, or when the model it continues does."""
    return parent_run is None or takes_raw_pixels(parent_run)


def raw_pixel_model(model: Any, arch: str, raw_pixels: bool) -> Any:
    """`model` itself when it takes RGB 0..255; otherwise a model that does: its arch's preprocessing in front as
    one frozen Dense(3) on the channel axis (x * scale + offset per channel, and BGR order for Caffe weights),
    a plain Keras layer that any process loads with safe_mode=True."""
    conv = archs.convention(arch)
    if raw_pixels or conv.scale is None:
        return model
    import keras

    kernel = np.diag(np.broadcast_to(np.asarray(conv.scale, np.float32), (3,)))
    bias = np.broadcast_to(np.asarray(conv.offset, np.float32), (3,))
    if conv.bgr_weights:
        kernel, bias = kernel[:, ::-1], bias[::-1]
    inp = keras.Input(model.input_shape[1:], name="input")
    layer = keras.layers.Dense(3, name=archs.PREPROCESSING_LAYER, trainable=False, dtype="float32")
    out = model(layer(inp))
    layer.set_weights([np.ascontiguousarray(kernel), np.ascontiguousarray(bias)])
    return keras.Model(inp, out, name=model.name)
