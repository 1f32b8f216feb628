"""Training batches from numpy arrays for Keras backends without tf.data (JAX): a `keras.utils.PyDataset`.

The same batches as `datasets.make_tf_dataset`: gathered from the arrays by index (reshuffled each epoch
with a seeded numpy Generator), cast to float32, augmented, preprocessed. The cast happens on the backend's
device, so a GPU receives uint8 images, not four times as many float bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np


class ArrayBatches(keras.utils.PyDataset):
    """(preprocess(augment(float32 x[rows])), y[rows]) batches; the last batch may be smaller.

    One worker: the Keras random layers give the same augmentation for a seed only when called in order.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, batch_size: int, preprocess: Callable[[Any], Any] | None,
                 augment_layers: list[Any], shuffle: bool, seed: int):
        super().__init__()
        self.x, self.y = x, np.asarray(y, np.int32)
        self.batch_size, self.preprocess, self.augment_layers = batch_size, preprocess, augment_layers
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def on_epoch_begin(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.x))

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray]:
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        xb = keras.ops.cast(self.x[rows], "float32")
        for layer in self.augment_layers:
            xb = layer(xb, training=True)
        if self.preprocess is not None:
            xb = self.preprocess(xb)
        return xb, self.y[rows]
