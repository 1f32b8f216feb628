"""Architectures (`alexnet4`, `alexnet16/32/64`, Keras applications) and their preprocessing.

Every model is a functional `keras.Model` whose top level is a chain: Input -> layer -> ... -> output Dense.
`core.transfer` relies on that to replace the output layer and to cut off a frozen prefix.

* `alexnet4` is paper B's Table 1 (952,931 parameters with 3 classes, the paper's layer names).
* `alexnet16/32/64` follow paper A's Table 2 output shapes (widths 16/32/64, the paper's layer names).
* VGG16/19 are flattened into the top-level chain (`block1_conv1` .. `block5_pool` are top-level layers);
  ResNet, DenseNet, MobileNetV2, EfficientNetB0 and EfficientNet-Lite0/1/2 (`core.efficientnet_lite`, ImageNet
  weights from an installed package, no download) stay one nested layer named after the arch. All
  applications get the same head: GlobalAveragePooling (inside the base or `avg_pool` for VGG) ->
  Dense(256, relu, "fc") -> Dropout(0.5, "head_dropout") -> Dense(num_classes, softmax, "predictions").

Preprocessing stays OUTSIDE the model (`preprocess_fn(arch)`; the data pipeline and the classifier call it),
so saved models hold no Lambda layers and load with `safe_mode=True`; EfficientNet and EfficientNet-Lite rescale
inside with serializable layers, so theirs is the identity. See docs/models.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from core import efficientnet_lite
from core.config import TransferLabError

Preprocess = Callable[[Any], Any]


# ---- preprocessing -----------------------------------------------------------------------------------------


def _as_float(x: Any) -> Any:
    # A backend tensor first: Keras' numpy branch edits float arrays in place.
    return keras.ops.cast(keras.ops.convert_to_tensor(x), "float32")


def scale_01(x: Any) -> Any:
    """alexnets: RGB 0..255 -> 0..1."""
    return _as_float(x) / 255.0


def caffe_preprocess(x: Any) -> Any:
    """VGG and ResNet (ImageNet 'caffe' mode): RGB -> BGR, minus the ImageNet channel means, no scaling."""
    return keras.applications.vgg16.preprocess_input(_as_float(x))


def torch_preprocess(x: Any) -> Any:
    """DenseNet ('torch' mode): 0..1, minus the ImageNet means, divided by the ImageNet standard deviations."""
    return keras.applications.densenet.preprocess_input(_as_float(x))


def tf_preprocess(x: Any) -> Any:
    """MobileNetV2 ('tf' mode): -1..1."""
    return keras.applications.mobilenet_v2.preprocess_input(_as_float(x))


def efficientnet_preprocess(x: Any) -> Any:
    """EfficientNet rescales and normalises inside the model: the input stays RGB 0..255."""
    return _as_float(x)


# ---- the architectures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str              # alexnet | vgg | resnet | densenet | mobilenet | efficientnet | efficientnet_lite
    default_input_size: int  # pixels (square)
    min_input_size: int      # smaller inputs are a TransferLabError
    preprocess: Preprocess   # float32 RGB 0..255 in; the same function preprocess_fn(name) returns


ALEXNET_WIDTHS = {"alexnet16": 16, "alexnet32": 32, "alexnet64": 64}
APP_DEFAULT_INPUT = 96  # CPU cost: a 96px ResNet50 step is ~5x cheaper than 224px; the papers' nets take 48px
APP_MIN_INPUT = 32      # Keras applications refuse smaller inputs (five stride-2 stages down to 1x1)

_APPLICATIONS: dict[str, tuple[str, Callable[..., keras.Model], Preprocess]] = {
    "vgg16": ("vgg", keras.applications.VGG16, caffe_preprocess),
    "vgg19": ("vgg", keras.applications.VGG19, caffe_preprocess),
    "resnet50": ("resnet", keras.applications.ResNet50, caffe_preprocess),
    "resnet101": ("resnet", keras.applications.ResNet101, caffe_preprocess),
    "resnet152": ("resnet", keras.applications.ResNet152, caffe_preprocess),
    "densenet121": ("densenet", keras.applications.DenseNet121, torch_preprocess),
    "densenet169": ("densenet", keras.applications.DenseNet169, torch_preprocess),
    "densenet201": ("densenet", keras.applications.DenseNet201, torch_preprocess),
    "mobilenet_v2": ("mobilenet", keras.applications.MobileNetV2, tf_preprocess),
    "efficientnet_b0": ("efficientnet", keras.applications.EfficientNetB0, efficientnet_preprocess),
    **{name: ("efficientnet_lite", efficientnet_lite.application(name), efficientnet_preprocess)
       for name in efficientnet_lite.VARIANTS},
}

ARCHS: dict[str, ArchSpec] = {
    # alexnet4 at 28px: 28 -> 14 -> 12 -> 6 -> 4 -> 2 -> 1 (the last pool needs 2x2)
    "alexnet4": ArchSpec("alexnet4", "alexnet", 48, 28, scale_01),
    # alexnet16/32/64 at 24px: 24 -> 12 -> 8 -> 4 -> 1 (conv2d_3 is 4x4 valid)
    **{name: ArchSpec(name, "alexnet", 48, 24, scale_01) for name in ALEXNET_WIDTHS},
    # EfficientNet-Lite at its ImageNet resolution (224/240/260): its weights come without a download
    **{name: ArchSpec(name, family, efficientnet_lite.default_input_size(name) if family == "efficientnet_lite"
                      else APP_DEFAULT_INPUT, APP_MIN_INPUT, pre)
       for name, (family, _, pre) in _APPLICATIONS.items()},
}

HEAD_UNITS = 256
HEAD_DROPOUT = 0.5


def _spec(arch: str) -> ArchSpec:
    if arch not in ARCHS:
        raise TransferLabError(f"Unknown arch {arch!r}; known: {', '.join(ARCHS)}.")
    return ARCHS[arch]


def preprocess_fn(arch: str) -> Preprocess:
    """The arch's input preprocessing: float32 RGB 0..255 tensors (N, H, W, 3) in, what the model expects out."""
    return _spec(arch).preprocess


# ---- builders ----------------------------------------------------------------------------------------------


def _input(size: int) -> keras.KerasTensor:
    return keras.Input(shape=(size, size, 3), name="input")


def _output(num_classes: int, name: str) -> keras.layers.Dense:
    # float32 so that a mixed_float16 policy still gives a float32 softmax
    return keras.layers.Dense(num_classes, activation="softmax", name=name, dtype="float32")


def _alexnet4(num_classes: int, size: int) -> keras.Model:
    """Paper B, Table 1: conv 5x5x16 (same), BN, pool, conv 3x3x32, BN, pool, conv 3x3x64, conv 3x3x128, pool,
    flatten, dense 512, dense 512, softmax. 952,931 parameters for 3 classes at 48px."""
    L = keras.layers
    inp = _input(size)
    x = L.Conv2D(16, 5, padding="same", activation="relu", name="conv2d_1")(inp)
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
    out = _output(num_classes, "dense_3")(x)
    return keras.Model(inp, out, name="alexnet4")


def _alexnet_width(arch: str, num_classes: int, size: int) -> keras.Model:
    """Paper A, Table 2, width w: conv 5x5xw (same; as paper B's conv2d_1, and it reproduces paper A's AlexNet32
    parameter counts exactly), BN, maxpool, conv 5x5xw (valid), BN, avgpool, dropout .25,
    conv 4x4x2w (valid), BN, dropout .25, flatten, dense 512, dropout .5, softmax ("out_layer")."""
    L = keras.layers
    w = ALEXNET_WIDTHS[arch]
    inp = _input(size)
    x = L.Conv2D(w, 5, padding="same", activation="relu", name="conv2d_1")(inp)
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
    out = _output(num_classes, "out_layer")(x)
    return keras.Model(inp, out, name=arch)


def _forget_faster(base: keras.Model, momentum: float = 0.99) -> None:
    """MobileNetV2's BatchNormalization keeps 99.9% of its running statistics each step, tuned for ImageNet-length
    training. From scratch, a few hundred steps leave them near their initial values and inference is at chance
    (fruits360: train accuracy 0.71, validation 0.007 after 644 steps). Keras' default 0.99 settles in ~500 steps."""
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > momentum:
            layer.momentum = momentum


def _application(arch: str, num_classes: int, size: int, base_weights: str | None) -> keras.Model:
    """Keras application base (include_top=False, average pooling) + Dense(256) -> Dropout(.5) -> softmax."""
    family, ctor, _ = _APPLICATIONS[arch]
    L = keras.layers
    inp = _input(size)
    kwargs: dict[str, Any] = dict(include_top=False, weights=base_weights, input_shape=(size, size, 3))
    try:
        if family == "vgg":  # purely sequential: flatten into the top-level chain, block5_* top-level
            base = ctor(pooling=None, **kwargs)
            x = inp
            for layer in base.layers[1:]:
                x = layer(x)
            x = L.GlobalAveragePooling2D(name="avg_pool")(x)
        else:
            base = ctor(pooling="avg", name=arch, **kwargs)
            if base_weights is None:
                _forget_faster(base)
            x = base(inp)
    except TransferLabError:
        raise
    except Exception as exc:  # noqa: BLE001 - Keras' get_file raises a bare Exception offline
        if base_weights == "imagenet":
            raise TransferLabError(f"ImageNet weights for {arch} could not be downloaded (offline?): use "
                                   "weights=None, a weights file, or a run: source trained here.") from None
        if base_weights is not None:
            raise TransferLabError(f"The weights file {Path(base_weights).name} does not fit {arch} "
                                   f"({type(exc).__name__}).") from None
        raise
    x = L.Dense(HEAD_UNITS, activation="relu", name="fc")(x)
    x = L.Dropout(HEAD_DROPOUT, name="head_dropout")(x)
    out = _output(num_classes, "predictions")(x)
    return keras.Model(inp, out, name=arch)


def _build(arch: str, num_classes: int, size: int, base_weights: str | None) -> keras.Model:
    if arch == "alexnet4":
        return _alexnet4(num_classes, size)
    if arch in ALEXNET_WIDTHS:
        return _alexnet_width(arch, num_classes, size)
    return _application(arch, num_classes, size, base_weights)


def build_model(arch: str, num_classes: int, input_size: int | None = None,
                weights: str | None = None, seed: int | None = None) -> keras.Model:
    """Build `arch` for `num_classes` classes at `input_size` px (None: the arch's default).

    weights: None (random), "imagenet" (applications only; Keras downloads and caches them, offline this is
    a TransferLabError; efficientnet_lite* read them from their installed package, no download), or a path:
    a weights file of this very model (`model.save_weights`, same classes and size), or, for applications, a
    Keras application base weights file (e.g. a downloaded `*_notop.h5`).
    seed: calls `keras.utils.set_random_seed(seed)` first (a global side effect), so the same seed gives the
    same initial weights.
    """
    spec = _spec(arch)
    size = spec.default_input_size if input_size is None else int(input_size)
    if size < spec.min_input_size:
        raise TransferLabError(f"Input size {size} is too small for {arch} (minimum {spec.min_input_size}px).")
    if int(num_classes) < 2:
        raise TransferLabError(f"A classifier needs at least 2 classes, got {num_classes}.")
    num_classes = int(num_classes)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    if weights is None:
        return _build(arch, num_classes, size, None)
    if weights == "imagenet":
        if spec.family == "alexnet":
            raise TransferLabError(f"There are no ImageNet weights for {arch}: use weights=None or a weights file.")
        return _build(arch, num_classes, size, "imagenet")
    path = Path(weights)
    if not path.is_file():
        raise TransferLabError(f"Weights must be None, 'imagenet' or an existing file; {weights} is none of these.")
    model = _build(arch, num_classes, size, None)
    try:
        model.load_weights(str(path))
        return model
    except Exception as exc:  # noqa: BLE001 - many error types for a file that does not fit
        if spec.family == "alexnet":
            raise TransferLabError(f"The weights file {path.name} does not fit {arch} with {num_classes} "
                                   f"classes at {size}px ({type(exc).__name__}).") from None
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    return _build(arch, num_classes, size, str(path))  # an application base weights file


# ---- inspection --------------------------------------------------------------------------------------------


def _size(variables: list[Any]) -> int:
    total = 0
    for v in variables:
        n = 1
        for d in v.shape:
            n *= int(d)
        total += n
    return total


def param_counts(model: keras.Model) -> dict[str, int]:
    """{"total", "trainable", "non_trainable"}: weights only (no optimizer state, no random seeds)."""
    trainable = _size(model.trainable_weights)
    non_trainable = _size(model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}


def format_shape(shape: tuple[Any, ...]) -> str:
    """(None, 48, 48, 16) -> "(48,48,16)"; (None, 512) -> "512", as the papers print them."""
    dims = [str(d) for d in tuple(shape)[1:]]
    return dims[0] if len(dims) == 1 else "(" + ",".join(dims) + ")"


_CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.DepthwiseConv2D,
               keras.layers.SeparableConv2D)


def describe_layers(model: keras.Model) -> list[dict[str, Any]]:
    """One row per top-level layer (the input left out): name, type, output_shape (as the papers print it),
    params, trainable (the layer has trainable weights, or is weightless and trainable), trainable_params,
    block (alexnets: CNN1.. / FC / OUT as in paper B; VGG: block1..block5 / head; applications: base / head).
    A nested application base is one row; its `type` says how many layers it holds."""
    rows: list[dict[str, Any]] = []
    top = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    block, convs = "", 0
    for i, layer in enumerate(top):
        nested = isinstance(layer, keras.Model)
        match = re.match(r"^(block\d+)_", layer.name)
        if i == len(top) - 1:
            block = "OUT" if not block.startswith(("block", "base", "head")) else "head"
        elif nested:
            block = "base"
        elif match:
            block = match.group(1)
        elif isinstance(layer, _CONV_TYPES):
            convs += 1
            block = f"CNN{convs}"
        elif isinstance(layer, keras.layers.Dense | keras.layers.Flatten | keras.layers.GlobalAveragePooling2D):
            block = "head" if block.startswith(("block", "base", "head")) else "FC"
        n_trainable = _size(layer.trainable_weights)
        rows.append({
            "name": layer.name,
            "type": f"{type(layer).__name__} ({len(layer.layers)} layers)" if nested else type(layer).__name__,
            "output_shape": format_shape(layer.output.shape),
            "params": _size(layer.weights),
            "trainable": bool(n_trainable) if layer.weights else bool(layer.trainable),
            "trainable_params": n_trainable,
            "block": block,
        })
    return rows
