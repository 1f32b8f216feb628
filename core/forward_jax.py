"""The compiled forward pass on the JAX backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import keras
import numpy as np


def compile_forward(model: Any, preprocess: Callable[[Any], Any], shape: tuple[int, ...],
                    dtype: Any) -> Callable[[Any], np.ndarray]:
    """model(preprocess(float32 x), training=False) as one jax.jit over stateless_call (compiled per batch
    shape), with the model's current weights. `shape` and `dtype` are the inputs' (jit traces them itself)."""
    def run(trainable: list[Any], non_trainable: list[Any], x: Any) -> Any:
        out, _ = model.stateless_call(trainable, non_trainable, preprocess(keras.ops.cast(x, "float32")),
                                      training=False)
        return out

    compiled = jax.jit(run)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    return lambda x: np.asarray(compiled(trainable, non_trainable, x))
