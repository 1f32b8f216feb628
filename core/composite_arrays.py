"""Fixed, seeded numpy arrays from `core.composite`: composited copies of a training set (for the frozen-feature
cache, where features are computed once) and extra `noise`-class images."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from core.composite import backgrounds, composite_batch, jitter, pile_batch

PILE_SHARE = 0.5     # share of composited images that are piles when labels are given
PILE_PARTNERS = (3, 10)  # other objects of the same class under each pile's own object


def _pile_plan(labels: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For the images `rows`: partner rows [M, B] drawn from the same class, and which are pasted [M, B]."""
    m = PILE_PARTNERS[1]
    partners = np.empty((m, len(rows)), np.int64)
    for c in np.unique(labels[rows]):
        same = np.flatnonzero(labels == c)
        where = np.flatnonzero(labels[rows] == c)
        partners[:, where] = rng.choice(same, (m, len(where)))
    counts = rng.integers(PILE_PARTNERS[0], m + 1, len(rows))
    return partners, np.arange(m)[:, None] < counts[None, :]


def composited_copies(x: np.ndarray, copies: int, seed: int, bank: np.ndarray | None = None,
                      labels: np.ndarray | None = None, batch_size: int = 64) -> Iterator[np.ndarray]:
    """`copies` uint8 arrays like x, every image composited, each copy with its own seeds (copy c, batch j).
    With `labels`, PILE_SHARE of the images become piles of their own class (`pile_batch`)."""
    single = tf.function(lambda xb, s: composite_batch(xb, s, bank), reduce_retracing=True)
    pile = tf.function(lambda xb, pb, ab, s: pile_batch(xb, pb, ab, s, bank), reduce_retracing=True)
    for c in range(copies):
        out = np.empty_like(x)
        for j, start in enumerate(range(0, len(x), batch_size)):
            rows = np.arange(start, min(start + batch_size, len(x)))
            batch_seed = tf.constant([seed, 1_000_003 * (c + 1) + j], tf.int64)
            rng = np.random.default_rng([seed, c, j])
            is_pile = rng.random(len(rows)) < PILE_SHARE if labels is not None else np.zeros(len(rows), bool)
            if (~is_pile).any():
                got = single(tf.constant(x[rows[~is_pile]]), batch_seed)
                out[rows[~is_pile]] = np.round(got.numpy()).astype(np.uint8)
            if is_pile.any():
                partners, active = _pile_plan(labels, rows[is_pile], rng)
                got = pile(tf.constant(x[rows[is_pile]]), tf.constant(x[partners]), tf.constant(active), batch_seed)
                out[rows[is_pile]] = np.round(got.numpy()).astype(np.uint8)
        yield out


def noise_images(n: int, size: int, seed: int, bank: np.ndarray | None = None) -> np.ndarray:
    """n uint8 `noise` samples [n, size, size, 3]: half CIFAR-10 images (non-fruit scenes) when a bank is
    given, the rest backgrounds with no object, jittered like the composites."""
    if n <= 0:
        return np.zeros((0, size, size, 3), np.uint8)
    rng = np.random.default_rng([seed, 424242])
    n_cifar = n // 2 if bank is not None else 0
    parts = []
    if n_cifar:
        picked = tf.constant(bank[rng.choice(len(bank), n_cifar, replace=n_cifar > len(bank))])
        parts.append(tf.image.resize(tf.cast(picked, tf.float32), (size, size), method="bicubic"))
    if n - n_cifar:
        parts.append(backgrounds([seed, 424243], n - n_cifar, size, bank))
    images = jitter(tf.constant([seed, 424244], tf.int64), tf.concat(parts, 0))
    return np.round(images.numpy()).astype(np.uint8)[rng.permutation(n)]
