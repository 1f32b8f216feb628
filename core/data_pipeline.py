"""Batches for Keras `fit` from uint8 numpy arrays: a tf.data pipeline under TensorFlow, a `core.batches`
PyDataset on other backends (JAX). TensorFlow and Keras are imported only when batches are made."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.config import TransferLabError

AUGMENTATIONS = ("flip", "rotation", "zoom", "contrast")


def make_batches(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    preprocess: Callable[[Any], Any] | None,
    augment: bool | Sequence[str] = False,
    shuffle: bool = False,
    seed: int = 0,
    composite: Callable[[Any, Any], Any] | None = None,
):
    """Batches for Keras `fit`: `make_tf_dataset` under TensorFlow, a `core.batches.ArrayBatches` on other backends."""
    import core

    if core.backend() == "tensorflow":
        return make_tf_dataset(x, y, batch_size=batch_size, preprocess=preprocess, augment=augment,
                               shuffle=shuffle, seed=seed, composite=composite)
    if composite is not None:
        raise TransferLabError("composite on the fly runs in tf.data: use KERAS_BACKEND=tensorflow, or cache "
                               "composite copies (composite_copies > 0 with a frozen backbone).")
    from core.batches import ArrayBatches

    if len(x) != len(y):
        raise TransferLabError(f"x has {len(x)} images but y has {len(y)} labels.")
    return ArrayBatches(x, y, batch_size=batch_size, preprocess=preprocess,
                        augment_layers=_augment_layers(augment, seed), shuffle=shuffle, seed=seed)


def make_tf_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    preprocess: Callable[[Any], Any] | None,
    augment: bool | Sequence[str] = False,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    composite: Callable[[Any, Any], Any] | None = None,
):
    """uint8 images (or float features) -> batches of (preprocess(augment(float32 0..255)), int32 labels), prefetched.

    Batches are gathered from the numpy arrays by index (no copy of x into the graph, so arrays over 2 GB
    work). `composite(float batch, row indices)` (`core.composite.compositor`) runs first. Augmentation runs
    sequentially because the Keras random layers are deterministic per seed only then.
    """
    import tensorflow as tf

    if len(x) != len(y):
        raise TransferLabError(f"x has {len(x)} images but y has {len(y)} labels.")
    x, y = np.ascontiguousarray(x), np.asarray(y, np.int32)
    shape = (None, *x.shape[1:])
    ds = tf.data.Dataset.range(len(x))
    if shuffle:
        ds = ds.shuffle(max(len(x), 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)

    def gather(i):
        xb, yb = tf.numpy_function(_take, [i], (tf.as_dtype(x.dtype), tf.int32), stateful=False)
        xb.set_shape(shape)
        yb.set_shape((None,))
        xb = tf.cast(xb, tf.float32)
        return (xb if composite is None else composite(xb, i)), yb

    def _take(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[i], y[i]

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    layers = _augment_layers(augment, seed)
    if layers:

        def augment_batch(xb, yb):
            for layer in layers:
                xb = layer(xb, training=True)
            return xb, yb

        ds = ds.map(augment_batch)  # sequential on purpose: see the docstring
    if preprocess is not None:
        user_fn = tf.autograph.experimental.do_not_convert(preprocess)

        def preprocess_batch(xb, yb):
            return user_fn(xb), yb

        ds = ds.map(preprocess_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _augment_layers(augment: bool | Sequence[str], seed: int) -> list:
    if isinstance(augment, str):
        augment = [augment]
    names = list(AUGMENTATIONS) if augment is True else list(augment or [])
    bad = [a for a in names if a not in AUGMENTATIONS]
    if bad:
        raise TransferLabError(f"Unknown augmentation {', '.join(bad)}; use {', '.join(AUGMENTATIONS)}.")
    if not names:
        return []
    import keras

    make = {
        "flip": lambda s: keras.layers.RandomFlip("horizontal", seed=s, dtype="float32"),
        "rotation": lambda s: keras.layers.RandomRotation(0.1, seed=s, dtype="float32"),
        "zoom": lambda s: keras.layers.RandomZoom(0.1, seed=s, dtype="float32"),
        "contrast": lambda s: keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=s, dtype="float32"),
    }
    return [make[n](seed + k) for k, n in enumerate(names)]
