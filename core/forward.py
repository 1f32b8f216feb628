"""Forward passes outside `fit`: a compiled function per Keras backend (core.forward_tf, core.forward_jax) for
scoring arrays in batches and for timing one image, without Keras' `predict` overhead."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core import hardware


def identity(t: Any) -> Any:
    return t


def compile_forward(model: Any, preprocess: Callable[[Any], Any], shape: tuple[int, ...],
                    dtype: Any) -> Callable[[Any], np.ndarray]:
    """model(preprocess(float32 x), training=False) compiled for this process's backend; numpy out."""
    if hardware.configure() == "tensorflow":
        from core import forward_tf as backend
    else:
        from core import forward_jax as backend
    return backend.compile_forward(model, preprocess, shape, dtype)


def predict_batches(model: Any, x: np.ndarray, preprocess: Callable, batch_size: int = 256,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Forward pass over uint8 images in batches; `progress(n)` hears of every n images done."""
    forward = compile_forward(model, preprocess, x.shape[1:], x.dtype)
    outs = []
    for i in range(0, len(x), batch_size):
        outs.append(forward(x[i:i + batch_size]))
        if progress:
            progress(len(outs[-1]))
    return np.concatenate(outs) if outs else np.zeros((0,) + tuple(model.output.shape[1:]), np.float32)


def single_image_latency_ms(model: Any, input_size: int, repeats: int = 50) -> float:
    """Median ms for one image through a compiled forward pass (what Classify does; not model.predict)."""
    forward = compile_forward(model, identity, (input_size, input_size, 3), np.float32)
    x = np.zeros((1, input_size, input_size, 3), np.float32)
    for _ in range(5):
        forward(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        forward(x)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))
