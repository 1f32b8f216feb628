"""How a training stage uses `core.composite`: the stage fields' checks, extra `noise` images, the compositor
for the tf.data path and the composited copies for the frozen-feature cache.

TensorFlow is imported only when a stage turns compositing on, so stages without it train on any backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from core.config import TransferLabError

if TYPE_CHECKING:
    from core.pipeline import StageConfig

BANK_PER_CLASS = 200  # CIFAR-10 images per class kept as backgrounds (2,000 in all, 6 MB)
MAX_COPIES = 20
NOISE_CLASS = "noise"

_BANKS: dict[str, np.ndarray | None] = {}


def stage_errors(stage: StageConfig, classes: list[str] | None) -> dict[str, str]:
    """Field -> message for the composite fields; `classes` None when the dataset cannot be read yet."""
    errors = {}
    if not 0.0 <= stage.composite <= 1.0:
        errors["composite"] = "composite is the share of training images composited: between 0 and 1"
    if not 0 <= stage.composite_copies <= MAX_COPIES:
        errors["composite_copies"] = f"composite copies must be between 0 and {MAX_COPIES}"
    if stage.noise_images < 0:
        errors["noise_images"] = "noise images must be 0 or more"
    elif stage.noise_images and classes is not None and NOISE_CLASS not in classes:
        errors["noise_images"] = (f"noise images are labelled '{NOISE_CLASS}', which is not a class of "
                                  f"{stage.dataset}; set noise images to 0")
    return errors


def background_bank() -> np.ndarray | None:
    """CIFAR-10 train images (uint8 [N, 32, 32, 3]) from the imported or Keras-cached `cifar10`; None without it."""
    from core import datasets
    from core.config import data_root

    key = str(data_root())
    if key not in _BANKS:
        entry = next((d for d in datasets.list_datasets() if d["name"] == "cifar10"), None)
        bank = None
        if entry and entry["available"]:
            try:
                bank, _, _ = datasets.load_split_arrays("cifar10", "train", 32, limit_per_class=BANK_PER_CLASS,
                                                        balance=False)
            except TransferLabError:
                bank = None
        _BANKS[key] = bank
    return _BANKS[key]


def training_arrays(stage: StageConfig, x: np.ndarray, y: np.ndarray,
                    classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The stage's training images with its `noise_images` appended (labelled noise); unchanged when 0."""
    if not stage.noise_images:
        return x, y
    from core import composite_arrays

    if NOISE_CLASS not in classes:
        raise TransferLabError(f"noise images need a '{NOISE_CLASS}' class; {stage.dataset} has "
                               f"{', '.join(classes)}.")
    extra = composite_arrays.noise_images(stage.noise_images, x.shape[1], stage.seed, background_bank())
    label = np.full(len(extra), classes.index(NOISE_CLASS), y.dtype)
    return np.concatenate([x, extra]), np.concatenate([y, label])


def compositor(stage: StageConfig) -> Callable[[Any, Any], Any] | None:
    """For `datasets.make_tf_dataset(composite=...)`: (float batch, its row indices) -> composited batch.
    The batch seed hashes the stage seed and the rows, so each epoch's reshuffle gives new composites."""
    if not stage.composite:
        return None
    import tensorflow as tf

    from core import composite

    bank = background_bank()

    def apply(xb: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
        key = tf.strings.reduce_join(tf.strings.as_string(rows), separator=",")
        seed = tf.stack([tf.constant(stage.seed, tf.int64), tf.strings.to_hash_bucket_fast(key, 2**62)])
        return composite.composite_batch(xb, seed, bank, stage.composite)

    return apply


def uses_fixed_copies(stage: StageConfig) -> bool:
    """Whether the cached-feature path may run: compositing off, or on with fixed copies to cache."""
    return not stage.composite or stage.composite_copies > 0


def copies(stage: StageConfig) -> int:
    """How many composited copies of the training images the feature cache holds besides the originals."""
    return stage.composite_copies if stage.composite else 0


def cached_features(stage: StageConfig, x: np.ndarray, y: np.ndarray, features: np.ndarray,
                    extract: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Features of the originals plus `composite_copies` composited copies (labels repeated to match)."""
    if not copies(stage):
        return features, y
    from core import composite_arrays

    batches = composite_arrays.composited_copies(x, copies(stage), stage.seed, background_bank(), labels=y)
    feats = [features] + [extract(c) for c in batches]
    return np.concatenate(feats), np.tile(y, len(feats))
