"""The papers' AlexNets as layer chains: `alexnet4` (paper B, Table 1) and `alexnet16/32/64` (paper A, Table 2).

Each builder applies its layers to an already preprocessed input tensor (0..1 pixels) and returns the softmax
output; `core.models` adds the Input and the preprocessing layer in front.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

WIDTHS = {"alexnet16": 16, "alexnet32": 32, "alexnet64": 64}


def output_layer(num_classes: int, name: str) -> keras.layers.Dense:
    # float32 so that a mixed_float16 policy still gives a float32 softmax
    return keras.layers.Dense(num_classes, activation="softmax", name=name, dtype="float32")


def alexnet4(x: Any, num_classes: int) -> Any:
    """Paper B, Table 1: conv 5x5x16 (same), BN, pool, conv 3x3x32, BN, pool, conv 3x3x64, conv 3x3x128, pool,
    flatten, dense 512, dense 512, softmax. 952,931 parameters for 3 classes at 48px."""
    L = keras.layers
    x = L.Conv2D(16, 5, padding="same", activation="relu", name="conv2d_1")(x)
    x = L.BatchNormalization(name="batch_normalization_1")(x)
    x = L.MaxPooling2D(2, name="max_pooling2d_1")(x)
    x = L.Conv2D(32, 3, activation="relu", name="conv2d_2")(x)
    x = L.BatchNormalization(name="batch_normalization_2")(x)
    x = L.MaxPooling2D(2, name="max_pooling2d_2")(x)
    x = L.Conv2D(64, 3, activation="relu", name="conv2d_3")(x)
    x = L.Conv2D(128, 3, activation="relu", name="conv2d_4")(x)
    x = L.MaxPooling2D(2, name="max_pooling2d_3")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(512, activation="relu", name="dense_1")(x)
    x = L.Dense(512, activation="relu", name="dense_2")(x)
    return output_layer(num_classes, "dense_3")(x)


def widths(w: int) -> Callable[[Any, int], Any]:
    """Paper A, Table 2, width w: conv 5x5xw (same; as paper B's conv2d_1, and it reproduces paper A's AlexNet32
    parameter counts exactly), BN, maxpool, conv 5x5xw (valid), BN, avgpool, dropout .25,
    conv 4x4x2w (valid), BN, dropout .25, flatten, dense 512, dropout .5, softmax ("out_layer")."""

    def build(x: Any, num_classes: int) -> Any:
        L = keras.layers
        x = L.Conv2D(w, 5, padding="same", activation="relu", name="conv2d_1")(x)
        x = L.BatchNormalization(name="batch_normalization")(x)
        x = L.MaxPooling2D(2, name="max_pooling2d")(x)
        x = L.Conv2D(w, 5, activation="relu", name="conv2d_2")(x)
        x = L.BatchNormalization(name="batch_normalization_1")(x)
        x = L.AveragePooling2D(2, name="average_pooling2d")(x)
        x = L.Dropout(0.25, name="dropout_1")(x)
        x = L.Conv2D(2 * w, 4, activation="relu", name="conv2d_3")(x)
        x = L.BatchNormalization(name="batch_normalization_2")(x)
        x = L.Dropout(0.25, name="dropout")(x)
        x = L.Flatten(name="flatten")(x)
        x = L.Dense(512, activation="relu", name="dense")(x)
        x = L.Dropout(0.5, name="dropout_2")(x)
        return output_layer(num_classes, "out_layer")(x)

    return build
