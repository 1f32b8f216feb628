"""Start a stage from a parent model: a new head, freeze policies, and the frozen-prefix split.

Models come from `core.models`: a functional chain at the top level (Input -> ... -> output Dense), VGG
flattened into it, other applications one nested layer. Freezing sets `trainable` on LEAF layers (a nested
container stays trainable: in Keras 3 `container.trainable = False` would hide every child's weights), and a
frozen BatchNormalization runs in inference mode (Keras 3 does that for `trainable=False`).

Freeze policies (docs/models.md): terms joined with "+" (or given as a list); the frozen set is the union.

    none            nothing frozen
    all             every layer frozen
    all-but-head    everything but the last top-level layer (paper D: only the new output layer trains)
    first:K         what the registry's `first_k` counts (`core.archs`): "blocks", its numbered blocks 1..K
                    (VGG); "convs", the first K conv layers with every weighted layer before them and the
                    BatchNorm layers they feed (alexnet4 first:3 = conv2d_1, batch_normalization_1, conv2d_2,
                    batch_normalization_2, conv2d_3)
    last-block      everything frozen but the registry's last block and what follows it (VGG block5_*;
                    alexnets the last conv layer; resnet/densenet conv5_*, mobilenet_v2 block_16_*,
                    mobilenet_v3_small expanded_conv_10_*, efficientnet and efficientnet_lite block7*)
    batchnorm       every BatchNormalization layer: fine-tuning with "last-block+batchnorm" keeps their
                    statistics and inference-mode behaviour (the Keras fine-tuning guide's rule)
    <pattern>       any other term is a layer name or fnmatch pattern (e.g. "block*", "conv2d_?"); a nested
                    base's name (e.g. "resnet50") means all of its layers

Only layers that own weights are frozen and reported. A term that matches no layer with weights, first:K with
K above the number of conv blocks, or first:K / last-block on a model whose architecture (its name, or `arch`)
has no such rule in the registry, is a TransferLabError naming the term.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

import keras

from core import archs
from core.archs import CONV_TYPES, ArchSpec
from core.config import TransferLabError

_STOCHASTIC = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
               "GaussianDropout", "AlphaDropout", "RandAugment", "AugMix", "MixUp", "CutMix"}


# ---- a new head --------------------------------------------------------------------------------------------


def _chain(layers: Iterable[Any], shape: tuple[Any, ...], name: str) -> tuple[Any, Any]:
    inp = keras.Input(shape=tuple(shape), name=name)
    x = inp
    for layer in layers:
        x = layer(x)
    return inp, x


def replace_head(model: keras.Model, num_classes: int, seed: int | None = None) -> keras.Model:
    """The same layer objects up to the second-to-last top-level layer + a new Dense(num_classes, softmax)
    named like the old output layer, initialised from N(0, 0.01) (seeded by `seed`), bias zero."""
    if int(num_classes) < 2:
        raise TransferLabError(f"A classifier needs at least 2 classes, got {num_classes}.")
    old = model.layers[-1]
    inp, x = _chain(model.layers[1:-1], model.input_shape[1:], "input")
    out = keras.layers.Dense(int(num_classes), activation="softmax", name=old.name, dtype="float32",
                             kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
                             bias_initializer="zeros")(x)
    return keras.Model(inp, out, name=model.name)


# ---- freezing ----------------------------------------------------------------------------------------------


def _leaves(model: keras.Model) -> list[tuple[Any, Any]]:
    """(leaf layer, its top-level layer) in order; nested models are opened, InputLayers left out."""
    out: list[tuple[Any, Any]] = []

    def walk(layer: Any, top: Any) -> None:
        if isinstance(layer, keras.layers.InputLayer):
            return
        if isinstance(layer, keras.Model):
            for sub in layer.layers:
                walk(sub, top)
        else:
            out.append((layer, top))

    for layer in model.layers:
        walk(layer, layer)
    return out


def _producer(layer: Any) -> Any:
    """The layer whose output feeds `layer` (its first call), or None."""
    try:
        return layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
    except (AttributeError, IndexError):
        return None


def _rule(model: keras.Model, arch: str | None, term: str, field: str) -> ArchSpec:
    """The registry entry of the model's architecture, which must have the rule `field` that `term` needs."""
    spec = archs.ARCHS.get(arch or model.name)
    if spec is None or getattr(spec, field) is None:
        what = f"architecture {spec.name}" if spec else f"model {model.name}, which is no registered architecture"
        raise TransferLabError(f"Freeze policy {term!r} needs a {field!r} rule in the architecture registry, and "
                               f"{what} has none.")
    return spec


def _numbered_blocks(leaves: list[Any], pattern: str) -> list[tuple[int, int]]:
    """(block number, leaf index) for every leaf in a numbered block."""
    return [(int(m.group(1)), i) for i, layer in enumerate(leaves) if (m := re.match(pattern, layer.name))]


def _first_k(spec: ArchSpec, leaves: list[Any], k: int, term: str) -> set[int]:
    if spec.first_k == "blocks":
        if spec.blocks in (None, archs.CONV_LAYERS):
            raise TransferLabError(f"Freeze policy {term!r} counts numbered blocks, and architecture {spec.name} "
                                   "names none in the registry.")
        members = _numbered_blocks(leaves, spec.blocks)
        blocks = sorted({b for b, _ in members})
        if k > len(blocks):
            raise TransferLabError(f"Freeze policy {term!r} asks for {k} conv blocks but this model has "
                                   f"{len(blocks)}.")
        return {i for b, i in members if b in blocks[:k]}
    convs = [i for i, layer in enumerate(leaves) if isinstance(layer, CONV_TYPES)]
    if k > len(convs):
        raise TransferLabError(f"Freeze policy {term!r} asks for {k} conv layers but this model has {len(convs)}.")
    cut = convs[k - 1]
    chosen = set(range(cut + 1))
    frozen_convs = {id(leaves[i]) for i in convs[:k]}
    chosen |= {i for i, layer in enumerate(leaves)
               if isinstance(layer, keras.layers.BatchNormalization) and id(_producer(layer)) in frozen_convs}
    return chosen


def _last_block_start(spec: ArchSpec, leaves: list[Any]) -> int:
    """Index into the leaves of the first layer of the last conv block (-1: the model has none)."""
    if spec.blocks == archs.CONV_LAYERS:
        convs = [i for i, layer in enumerate(leaves) if isinstance(layer, CONV_TYPES)]
        return convs[-1] if convs else -1
    assert spec.blocks is not None
    members = _numbered_blocks(leaves, spec.blocks)
    last = max((b for b, _ in members), default=None)
    return next((i for b, i in members if b == last), -1)


def _terms(policy: str | list[str] | tuple[str, ...] | None) -> list[str]:
    items = [policy] if policy is None or isinstance(policy, str) else list(policy)
    out = []
    for item in items:
        if item is None:
            continue
        if not isinstance(item, str):
            raise TransferLabError(f"A freeze policy is text or a list of text, not {type(item).__name__}.")
        out += [t.strip() for t in item.split("+") if t.strip()]
    return out or ["none"]


def _resolve(model: keras.Model, policy: str | list[str], pairs: list[tuple[Any, Any]],
             arch: str | None = None) -> list[int]:
    leaves = [leaf for leaf, _ in pairs]
    weighted = [bool(layer.weights) for layer in leaves]
    head = model.layers[-1]
    chosen: set[int] = set()
    for term in _terms(policy):
        low = term.lower()
        if low == "none":
            continue
        if low == "all":
            hits = set(range(len(leaves)))
        elif low == "all-but-head":
            hits = {i for i, (_, top) in enumerate(pairs) if top is not head}
        elif low == "last-block":
            start = _last_block_start(_rule(model, arch, term, "blocks"), leaves)
            hits = set(range(max(start, 0)))
        elif low == "batchnorm":
            hits = {i for i, leaf in enumerate(leaves) if isinstance(leaf, keras.layers.BatchNormalization)}
        elif low.startswith("first:"):
            k = low[6:].strip()
            if not k.isdigit() or int(k) < 1:
                raise TransferLabError(f"Freeze policy {term!r} needs a whole number of conv blocks, like first:3.")
            hits = _first_k(_rule(model, arch, term, "first_k"), leaves, int(k), term)
        else:
            hits = {i for i, (leaf, top) in enumerate(pairs)
                    if fnmatch.fnmatchcase(leaf.name, term) or (top is not leaf and fnmatch.fnmatchcase(top.name, term))}
        hits = {i for i in hits if weighted[i]}
        if not hits:
            raise TransferLabError(f"Freeze policy {term!r} matches no layer with weights in model {model.name}.")
        chosen |= hits
    return sorted(chosen)


def resolve_freeze(model: keras.Model, policy: str | list[str], arch: str | None = None) -> list[str]:
    """The names of the layers (with weights) that `policy` would freeze in `model`; changes nothing.
    arch: the registry entry whose rules first:K and last-block follow (None: the model's name)."""
    pairs = _leaves(model)
    return [pairs[i][0].name for i in _resolve(model, policy, pairs, arch)]


def _unfreeze(layer: Any) -> None:
    """Every layer and sub-layer trainable, one by one (`model.trainable = True` is a no-op on a model that
    is already trainable, whatever its sub-layers are)."""
    layer.trainable = True
    for sub in getattr(layer, "layers", []) or []:
        _unfreeze(sub)


def apply_freeze(model: keras.Model, policy: str | list[str], arch: str | None = None) -> list[str]:
    """Make every layer trainable, then freeze what `policy` names (see the module docstring; `arch` as in
    `resolve_freeze`).

    Returns the names of the frozen layers (those with weights), in model order. Containers stay trainable;
    `trainable` is set per leaf. The caller must (re)compile the model after every call: Keras fixes the
    trainable weights when a model is compiled.
    """
    pairs = _leaves(model)
    chosen = _resolve(model, policy, pairs, arch)  # raises before anything changes
    _unfreeze(model)
    for i in chosen:
        pairs[i][0].trainable = False
    return [pairs[i][0].name for i in chosen]


# ---- the frozen prefix -------------------------------------------------------------------------------------


def _deterministic_frozen(layer: Any) -> bool:
    """No trainable weights, and the same output in training and inference mode."""
    if isinstance(layer, keras.Model):
        return all(_deterministic_frozen(sub) for sub in layer.layers)
    if isinstance(layer, keras.layers.InputLayer):
        return True
    if layer.trainable_weights:
        return False
    name = type(layer).__name__
    if name in _STOCHASTIC or name.startswith("Random") or getattr(layer, "_seed_generators", None):
        return False
    if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
        return False  # updates its moving statistics in training mode
    return True


def _holds_weights(layers: list[Any]) -> bool:
    """Whether caching the output of `layers` saves work: a weightless front (the preprocessing) saves none."""
    return any(layer.weights for layer in layers)


def _frozen_front(layers: list[Any]) -> int:
    """Index of the last of layers[1:]'s leading frozen, deterministic layers (0: none, or none with weights)."""
    k = 0
    for i in range(1, len(layers)):
        if not _deterministic_frozen(layers[i]):
            break
        k = i
    return k if _holds_weights(layers[1:k + 1]) else 0


def cacheable_prefix(model: keras.Model) -> int:
    """k: index into `model.layers` (0 is the InputLayer) of the last layer of the longest prefix of frozen or
    weightless, deterministic layers (no Dropout / noise / random augmentation; BatchNorm only when frozen).
    Its output can be computed once and cached. 0 when there is no such prefix, when it holds no weights (only
    the preprocessing), or when nothing after it would train (the head must keep at least one trainable layer)."""
    layers = model.layers
    k = _frozen_front(layers)
    if k == 0 or k >= len(layers) - 1:
        return 0
    if not any(layer.trainable_weights for layer in layers[k + 1:]):
        return 0
    return k


def split_model(model: keras.Model, k: int) -> tuple[keras.Model, keras.Model]:
    """(prefix, head): prefix = input .. model.layers[k]; head applies model.layers[k+1:] to a new Input of the
    prefix's output shape. Both share the layer objects of `model`, so training `head` trains `model`, and
    head(prefix(x)) == model(x)."""
    layers = model.layers
    if not 0 < k < len(layers) - 1:
        raise ValueError(f"split index {k} must be between 1 and {len(layers) - 2}")
    p_in, p_out = _chain(layers[1:k + 1], model.input_shape[1:], "input")
    prefix = keras.Model(p_in, p_out, name=f"{model.name}_prefix")
    h_in, h_out = _chain(layers[k + 1:], tuple(p_out.shape[1:]), "features")
    head = keras.Model(h_in, h_out, name=f"{model.name}_head")
    return prefix, head


def _inner_split(base: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """For a nested base that is only partly frozen: (its frozen front, the rest), cut after the last frozen,
    deterministic layer whose output alone feeds everything after it (a block boundary, not inside a residual)."""
    inner = base.layers
    for cut in range(_frozen_front(inner), 0, -1):
        if not _holds_weights(inner[1:cut + 1]):
            break
        try:
            tail = keras.Model(inner[cut].output, base.output, name=f"{base.name}_tail")
        except ValueError:  # the rest also needs an earlier tensor (a skip connection): cut further back
            continue
        return keras.Model(base.input, inner[cut].output, name=f"{base.name}_front"), tail
    return None


def split_frozen(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """(prefix, head) with head(prefix(x)) == model(x), the prefix as long as a frozen, deterministic front
    allows, so its output can be cached: the top-level split of `cacheable_prefix`, or, when the next layer is a
    nested base that trains only its last blocks (`last-block+batchnorm`), a cut inside that base. None if no
    prefix can be cached."""
    k = cacheable_prefix(model)
    layers = model.layers
    nested = layers[k + 1] if k + 1 < len(layers) - 1 else None
    if isinstance(nested, keras.Model) and (inner := _inner_split(nested)):
        front, tail = inner
        p_in, p_out = _chain([*layers[1:k + 1], front], model.input_shape[1:], "input")
        h_in, h_out = _chain([tail, *layers[k + 2:]], tuple(p_out.shape[1:]), "features")
        return keras.Model(p_in, p_out, name=f"{model.name}_prefix"), keras.Model(h_in, h_out, name=f"{model.name}_head")
    return split_model(model, k) if k else None
