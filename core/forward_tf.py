"""The compiled forward pass on the TensorFlow backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf


def compile_forward(model: Any, preprocess: Callable[[Any], Any], shape: tuple[int, ...],
                    dtype: Any) -> Callable[[Any], np.ndarray]:
    """model(preprocess(float32 x), training=False) as one tf.function over batches of `shape` images of
    `dtype` (any batch size: traced once)."""
    spec = tf.TensorSpec((None, *shape), tf.as_dtype(dtype))
    forward = tf.function(lambda t: model(preprocess(tf.cast(t, tf.float32)), training=False), input_signature=[spec])
    return lambda x: np.asarray(forward(x))
