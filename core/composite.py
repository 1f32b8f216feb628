"""Lab -> real augmentation: white-background objects (Fruits-360) composited onto random scenes, with TF ops.

`composite_batch` takes float32 images 0..255 and a seed [2]: it cuts each object out of its white background
(a soft mask: near-white pixels flood-filled from the border, opened, eroded and blurred), pastes it at a random
scale (object 30-100% of the frame), position, rotation and flip onto a random background (CIFAR-10 crops,
crops of other images in the batch, fractal noise, stripes and wood grain, flat colour, linear gradients), then
jitters hue, saturation, brightness, contrast, blur and sensor noise. Stateless random ops only: the same seed
gives the same images. `pile_batch` pastes several objects (piles in bins, bowls, on branches) at 20-50% of
the frame each. Fixed numpy copies for the frozen-feature cache and extra `noise` images: `core.composite_arrays`;
how a training stage uses these: `core.composite_stage`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from core.config import TransferLabError

MASK_RES = 64  # the mask is found at this resolution, then resized to the image
WHITE_DISTANCE = 30  # a pixel whose darkest channel is within this of 255 is background white
BG_RES = 64  # backgrounds are drawn at this resolution and upsampled: a defocused scene
SCALE_RANGE = (0.3, 1.0)  # the object's longer side as a fraction of the frame
PILE_SCALE = (0.2, 0.5)  # each object of a pile
# background kinds, in this order: cifar, crop of another image, fractal noise, stripes/wood, flat, gradient
KIND_WEIGHTS = (0.3, 0.1, 0.2, 0.15, 0.1, 0.15)
Seed = Any  # an int pair, or a tensor of shape [2]

# ---- seeds ---------------------------------------------------------------------------------------------------


def _split(seed: Seed, n: int) -> list[tf.Tensor]:
    seeds = tf.random.stateless_uniform([n, 2], tf.cast(seed, tf.int64), minval=None, maxval=None, dtype=tf.int64)
    return tf.unstack(seeds)


def _uniform(seed: tf.Tensor, shape: Any, lo: float = 0.0, hi: float = 1.0) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, minval=lo, maxval=hi)


# ---- mask ----------------------------------------------------------------------------------------------------


def _max3(t: tf.Tensor) -> tf.Tensor:
    return tf.nn.max_pool2d(t, 3, 1, "SAME")


def _min3(t: tf.Tensor) -> tf.Tensor:
    return -tf.nn.max_pool2d(-t, 3, 1, "SAME")


def _object_mask(x: tf.Tensor) -> tf.Tensor:
    """Binary object mask [B, MASK_RES, MASK_RES, 1]: everything not reached from the border through white
    (so white highlights inside the fruit stay), with border specks opened away and one pixel of halo eroded."""
    small = tf.image.resize(x, (MASK_RES, MASK_RES), antialias=True)
    white = tf.cast(255.0 - tf.reduce_min(small, -1, keepdims=True) < WHITE_DISTANCE, tf.float32)
    frame = np.ones((1, MASK_RES, MASK_RES, 1), np.float32)
    frame[:, 1:-1, 1:-1] = 0
    def grow(i: tf.Tensor, reached: tf.Tensor, _: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        wider = _max3(reached) * white
        return i + 1, wider, tf.reduce_any(wider != reached)

    _, background, _ = tf.while_loop(lambda i, _, changed: changed & (i < MASK_RES * 2), grow,
                                     (0, white * frame, tf.constant(True)))
    return _min3(_max3(_min3(_min3(1.0 - background))))


def foreground_mask(x: tf.Tensor) -> tf.Tensor:
    """Soft alpha [B, H, W, 1] in 0..1 for float images [B, H, W, 3] 0..255 on a white background."""
    x = tf.convert_to_tensor(x, tf.float32)
    alpha = tf.image.resize(_object_mask(x), tf.shape(x)[1:3])
    return tf.clip_by_value(_blur(alpha, 1.0), 0.0, 1.0)


def _boxes(mask: tf.Tensor) -> tf.Tensor:
    """[B, 4] (ymin, xmin, ymax, xmax) of each mask in 0..1 frame units; the whole frame for an empty mask."""
    res = float(MASK_RES)

    def extent(profile: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        on = profile > 0.5
        first = tf.cast(tf.argmax(tf.cast(on, tf.int32), 1), tf.float32)
        last = res - 1.0 - tf.cast(tf.argmax(tf.cast(on[:, ::-1], tf.int32), 1), tf.float32)
        empty = tf.logical_not(tf.reduce_any(on, 1))
        return tf.where(empty, 0.0, first / res), tf.where(empty, 1.0, (last + 1.0) / res)

    y0, y1 = extent(tf.reduce_max(mask[..., 0], 2))
    x0, x1 = extent(tf.reduce_max(mask[..., 0], 1))
    return tf.stack([y0, x0, y1, x1], 1)


# ---- filters -------------------------------------------------------------------------------------------------


def _gauss(sigma: float) -> tf.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return tf.constant(k / k.sum(), tf.float32)


def _blur(x: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian blur of [B, H, W, C], channel by channel."""
    k = _gauss(sigma)
    channels = x.shape[-1]
    kx = tf.tile(tf.reshape(k, (1, -1, 1, 1)), (1, 1, channels, 1))
    ky = tf.tile(tf.reshape(k, (-1, 1, 1, 1)), (1, 1, channels, 1))
    x = tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "SAME")


# ---- backgrounds ---------------------------------------------------------------------------------------------


def _colours(seed: tf.Tensor, n: tf.Tensor, wood: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Two related RGB colours 0..1 per image, [n, 1, 1, 3] each; `wood` (bool [n]) picks brown hues."""
    s = _split(seed, 6)
    h = _uniform(s[0], [n])
    sat = _uniform(s[1], [n], 0.05, 0.85)
    val = _uniform(s[2], [n], 0.12, 0.92)
    if wood is not None:
        h = tf.where(wood, _uniform(s[3], [n], 0.04, 0.11), h)
        sat = tf.where(wood, tf.clip_by_value(sat, 0.35, 0.75), sat)
        val = tf.where(wood, tf.clip_by_value(val, 0.3, 0.75), val)
    h2 = tf.math.floormod(h + _uniform(s[4], [n], -0.12, 0.12), 1.0)
    val2 = tf.clip_by_value(val * _uniform(s[5], [n], 0.35, 1.35), 0.05, 0.95)

    def rgb(hh: tf.Tensor, ss: tf.Tensor, vv: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.image.hsv_to_rgb(tf.stack([hh, ss, vv], -1)), (n, 1, 1, 3))

    return rgb(h, sat, val), rgb(h2, sat, val2)


def _fractal(seed: tf.Tensor, n: tf.Tensor, res: int) -> tf.Tensor:
    """Multi-octave value noise [n, res, res, 1], stretched to 0..1 per image."""
    out = 0.0
    for i, (cells, weight) in enumerate(((3, 1.0), (6, 0.5), (12, 0.25), (24, 0.125))):
        grid = tf.random.stateless_uniform([n, cells, cells, 1], seed + i)
        out += weight * tf.image.resize(grid, (res, res), method="bicubic")
    lo = tf.reduce_min(out, [1, 2, 3], keepdims=True)
    hi = tf.reduce_max(out, [1, 2, 3], keepdims=True)
    return (out - lo) / (hi - lo + 1e-6)


def _kind_images(seed: tf.Tensor, n: tf.Tensor, res: int, bank: tf.Tensor | None,
                 pool: tf.Tensor | None, pool_boxes: tf.Tensor | None) -> list[tf.Tensor]:
    """Every background kind for every image, each [n, res, res, 3] in 0..255 (the caller picks one per image)."""
    s = _split(seed, 12)
    yy, xx = tf.meshgrid(tf.linspace(-1.0, 1.0, res), tf.linspace(-1.0, 1.0, res), indexing="ij")
    yy, xx = yy[None, :, :, None], xx[None, :, :, None]
    angle = tf.reshape(_uniform(s[0], [n], 0.0, 2 * math.pi), (n, 1, 1, 1))
    along = xx * tf.cos(angle) + yy * tf.sin(angle)
    kinds = []
    if bank is not None:
        side = _uniform(s[1], [n], 0.45, 1.0)
        y0, x0 = _uniform(s[2], [n]) * (1 - side), _uniform(s[3], [n]) * (1 - side)
        boxes = tf.stack([y0, x0, y0 + side, x0 + side], 1)
        rows = tf.random.stateless_uniform([n], s[4], 0, tf.shape(bank)[0], dtype=tf.int32)
        kinds.append(tf.image.crop_and_resize(tf.cast(bank, tf.float32), boxes, rows, (res, res)))
    else:
        kinds.append(tf.zeros([n, res, res, 3]))
    if pool is not None:
        # a patch from the middle of another image's object: fruit-bin textures
        other = tf.math.floormod(tf.range(n) + 1, n)
        box = tf.gather(pool_boxes, other)
        cy, cx = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
        half = tf.minimum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) * _uniform(s[5], [n], 0.12, 0.3)
        crops = tf.stack([cy - half, cx - half, cy + half, cx + half], 1)
        kinds.append(tf.image.crop_and_resize(pool, crops, other, (res, res)))
    else:
        kinds.append(tf.zeros([n, res, res, 3]))
    c1, c2 = _colours(s[6], n)
    kinds.append(255.0 * (c1 + (c2 - c1) * _fractal(s[7], n, res)))
    wood = _uniform(s[8], [n]) < 0.5
    w1, w2 = _colours(s[9], n, wood)
    freq = tf.reshape(_uniform(s[10], [n], 1.5, 10.0), (n, 1, 1, 1))
    warp = tf.reshape(_uniform(s[11], [n], 0.0, 6.0), (n, 1, 1, 1)) * _fractal(s[7] + 7, n, res)
    stripes = 0.5 + 0.5 * tf.sin(math.pi * freq * along + warp)
    kinds.append(255.0 * (w1 + (w2 - w1) * stripes))
    kinds.append(255.0 * (c1 + 0.06 * (_fractal(s[8] + 3, n, res) - 0.5)))
    kinds.append(255.0 * (c1 + (c2 - c1) * tf.clip_by_value(0.5 + 0.6 * along, 0.0, 1.0)))
    return kinds


def backgrounds(seed: Seed, n: Any, size: int, bank: np.ndarray | None = None, pool: tf.Tensor | None = None,
                pool_boxes: tf.Tensor | None = None, weights: tuple[float, ...] = KIND_WEIGHTS) -> tf.Tensor:
    """n random backgrounds [n, size, size, 3] float 0..255; kinds without their source get no weight."""
    seed = tf.cast(seed, tf.int64)
    n = tf.convert_to_tensor(n, tf.int32)
    res = min(BG_RES, size)
    bank_t = None if bank is None else tf.constant(bank)
    kinds = _kind_images(seed + 1, n, res, bank_t, pool, pool_boxes)
    w = np.array(weights, np.float32) * [bank is not None, pool is not None, 1, 1, 1, 1]
    logits = tf.math.log(tf.constant(w / w.sum()) + 1e-12)[None, :]
    pick = tf.random.stateless_categorical(tf.tile(logits, [n, 1]), 1, seed + 2)[:, 0]
    one_hot = tf.reshape(tf.one_hot(pick, len(kinds)), (n, len(kinds), 1, 1, 1))
    chosen = tf.reduce_sum(tf.stack(kinds, 1) * one_hot, 1)
    flip = tf.reshape(_uniform(seed + 3, [n]) < 0.5, (n, 1, 1, 1))
    chosen = tf.where(flip, chosen[:, :, ::-1], chosen)
    return tf.image.resize(chosen, (size, size))


# ---- the composite -------------------------------------------------------------------------------------------


def _transforms(seed: tf.Tensor, box: tf.Tensor, size: int, in_size: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """[B, 8] projective transforms (output pixel -> input pixel): the object's box centre to a random point,
    its longer side to scale[:, 0]..scale[:, 1] of the frame, a random rotation and a random mirror."""
    n = tf.shape(box)[0]
    s = _split(seed, 4)
    in_size = tf.cast(in_size, tf.float32)
    side = tf.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) * in_size
    target = (scale[:, 0] + _uniform(s[0], [n]) * (scale[:, 1] - scale[:, 0])) * size
    inv = side / target  # input pixels per output pixel
    theta = _uniform(s[1], [n], -math.pi, math.pi)
    mirror = tf.where(_uniform(s[2], [n]) < 0.5, -1.0, 1.0)
    room = tf.maximum(size - target, 0.0)[:, None] * (_uniform(s[3], [n, 2]) - 0.5)
    py, px = size / 2 + room[:, 0], size / 2 + room[:, 1]
    cy, cx = (box[:, 0] + box[:, 2]) / 2 * in_size, (box[:, 1] + box[:, 3]) / 2 * in_size
    a0, a1 = inv * mirror * tf.cos(theta), inv * tf.sin(theta)
    b0, b1 = -inv * mirror * tf.sin(theta), inv * tf.cos(theta)
    zero = tf.zeros_like(a0)
    return tf.stack([a0, a1, cx - a0 * px - a1 * py, b0, b1, cy - b0 * px - b1 * py, zero, zero], 1)


_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)


def _colour_matrices(hue: tf.Tensor, saturation: tf.Tensor) -> tf.Tensor:
    """[B, 3, 3] right-multiplied RGB matrices: rotate the chroma (YIQ) by `hue` radians, scale it by
    `saturation`; one matmul per pixel instead of an HSV round trip."""
    cos, sin = tf.cos(hue) * saturation, tf.sin(hue) * saturation
    one, zero = tf.ones_like(cos), tf.zeros_like(cos)
    chroma = tf.reshape(tf.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], 1), (-1, 3, 3))
    forward = tf.constant(_RGB_TO_YIQ.T)
    return forward @ tf.transpose(chroma, (0, 2, 1)) @ tf.constant(np.linalg.inv(_RGB_TO_YIQ).T)


def jitter(seed: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Hue, saturation, brightness, contrast, blur and sensor noise, per image; float 0..255 in and out."""
    n = tf.shape(x)[0]
    s = _split(seed, 7)

    def per_image(t: tf.Tensor) -> tf.Tensor:
        return tf.reshape(t, (n, 1, 1, 1))

    x = tf.einsum("bhwc,bcd->bhwd", x, _colour_matrices(_uniform(s[0], [n], -0.25, 0.25),
                                                          _uniform(s[1], [n], 0.65, 1.3)))
    mean = tf.reduce_mean(x, [1, 2, 3], keepdims=True)
    x = (x - mean) * per_image(_uniform(s[2], [n], 0.7, 1.25)) + mean
    x = x + per_image(_uniform(s[3], [n], -35.0, 30.0))
    blur = per_image(_uniform(s[4], [n]) * tf.cast(_uniform(s[5], [n]) < 0.5, tf.float32))
    x = x + blur * (_blur(x, 1.3) - x)
    x = x + _uniform(s[6], tf.shape(x), -1.0, 1.0) * per_image(_uniform(s[6] + 1, [n], 0.0, 10.0))
    return tf.clip_by_value(x, 0.0, 255.0)


def _paste(x: tf.Tensor, seed: tf.Tensor, scene: tf.Tensor, scale: tf.Tensor, mask: tf.Tensor | None = None,
           box: tf.Tensor | None = None) -> tf.Tensor:
    """The objects of x (float [B, H, W, 3], white background) cut out and pasted onto `scene`, with a soft
    contact shadow; `scale` [B, 2] bounds each object's longer side as a fraction of the frame."""
    size = int(x.shape[1])
    n = tf.shape(x)[0]
    s = _split(seed, 2)
    mask = _object_mask(x) if mask is None else mask
    box = _boxes(mask) if box is None else box
    alpha = tf.clip_by_value(_blur(tf.image.resize(mask, (size, size)), 1.0), 0.0, 1.0)
    gain = tf.reshape(_uniform(s[0], [n], 0.7, 1.1), (n, 1, 1, 1))
    premultiplied = tf.concat([x * alpha * gain, alpha], -1)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=premultiplied, transforms=_transforms(s[1], box, size, size, scale), output_shape=[size, size],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    fg, a = moved[..., :3], moved[..., 3:]
    shadow = 1.0 - 0.35 * _blur(tf.roll(a, shift=max(1, size // 40), axis=1), max(1.0, size / 40))
    return fg + (1.0 - a) * scene * shadow


def _square(x: Any) -> tf.Tensor:
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    if x.shape[1] is None or x.shape[1] != x.shape[2]:
        raise TransferLabError(f"composite needs square images of a known size, got shape {x.shape}.")
    return x


def _scales(n: Any, bounds: tuple[float, float]) -> tf.Tensor:
    return tf.tile(tf.constant([bounds], tf.float32), [n, 1])


def composite_batch(x: Any, seed: Seed, bank: np.ndarray | None = None, probability: float = 1.0) -> tf.Tensor:
    """Images [B, H, W, 3] (uint8 or float 0..255, white background) -> float32 composites of the same shape;
    each image is composited with `probability`, the others are returned unchanged."""
    x = _square(x)
    s = _split(tf.cast(seed, tf.int64), 4)
    n = tf.shape(x)[0]
    mask = _object_mask(x)
    box = _boxes(mask)
    scene = backgrounds(s[0], n, int(x.shape[1]), bank, pool=x, pool_boxes=box)
    out = jitter(s[2], _paste(x, s[1], scene, _scales(n, SCALE_RANGE), mask, box))
    if probability >= 1.0:
        return out
    chosen = tf.reshape(_uniform(s[3], [n]) < probability, (n, 1, 1, 1))
    return tf.where(chosen, out, x)


def pile_batch(x: Any, partners: Any, active: Any, seed: Seed, bank: np.ndarray | None = None) -> tf.Tensor:
    """A pile, as in a shop bin, a bowl or on a branch: each image of x pasted last over up to M `partners`
    (float [M, B, H, W, 3], typically other images of the same class; partner j of image i is pasted where
    active[j, i]), every object PILE_SCALE of the frame, on a random background, then jittered."""
    x = _square(x)
    partners = tf.cast(tf.convert_to_tensor(partners), tf.float32)
    active = tf.convert_to_tensor(active, tf.bool)
    m = int(partners.shape[0])
    s = _split(tf.cast(seed, tf.int64), m + 3)
    n = tf.shape(x)[0]
    scale = _scales(n, PILE_SCALE)
    mask = _object_mask(x)
    box = _boxes(mask)
    scene = backgrounds(s[0], n, int(x.shape[1]), bank, pool=x, pool_boxes=box)
    for j in range(m):
        scene = tf.where(tf.reshape(active[j], (n, 1, 1, 1)), _paste(partners[j], s[j + 1], scene, scale), scene)
    return jitter(s[m + 2], _paste(x, s[m + 1], scene, scale, mask, box))
