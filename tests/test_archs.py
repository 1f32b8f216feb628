"""The architecture registry: every entry complete, preprocessing inside the model, Caffe weights taking RGB,
a missing rule is a clear error, and mobilenet_v3_small added by one entry."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from core import archs, models, transfer
from core.config import TransferLabError


def _one_sentence(msg: str) -> bool:
    return msg.endswith(".") and "\n" not in msg and ". " not in msg[:-1]


def _x(size: int = 32, n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def test_every_entry_holds_every_fact():
    for name, spec in archs.ARCHS.items():
        assert spec.name == name and spec.input in archs.INPUTS
        assert (spec.build is None) != (spec.base is None), name  # a whole net, or a base with the common head
        assert spec.blocks and spec.first_k in ("blocks", "convs"), name
        assert spec.min_input_size <= spec.default_input_size
        assert (spec.imagenet is None) == (spec.family == "alexnet"), name
        assert spec.preprocess is archs.INPUTS[spec.input].external is models.preprocess_fn(name)
    assert archs.ARCHS is models.ARCHS


@pytest.mark.parametrize("name", [n for n, c in archs.INPUTS.items() if c.scale is not None])
def test_the_preprocessing_layer_computes_the_external_preprocessing(name):
    conv = archs.INPUTS[name]
    inside = np.asarray(conv.layer()(_x()))
    if conv.bgr_weights:  # RGB minus the means: the weights' first conv takes the channels reversed
        inside = inside[..., ::-1]
    np.testing.assert_allclose(inside, np.asarray(conv.external(_x())), atol=1e-4)


def test_a_built_model_takes_raw_pixels_and_loads_without_transferlab_code(tmp_path):
    model = models.build_model("alexnet4", 3, seed=0)
    assert model.layers[1].name == archs.PREPROCESSING_LAYER
    assert isinstance(model.layers[1], keras.layers.Rescaling)
    assert [r["name"] for r in models.describe_layers(model)][0] == "conv2d_1"  # the input's part, not a row
    nested = models.build_model("densenet121", 3, 32, seed=0).get_layer("densenet121")
    assert nested.layers[1].name == archs.PREPROCESSING_LAYER
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(back(_x(48)), model(_x(48)), atol=1e-6)
    # the same net fed by the external preprocessing, as models were stored before
    inp = keras.Input((48, 48, 3))
    x = inp
    for layer in model.layers[2:]:
        x = layer(x)
    np.testing.assert_allclose(keras.Model(inp, x)(archs.scale_01(_x(48))), model(_x(48)), atol=1e-6)


@pytest.mark.parametrize("arch, ctor", [("vgg16", keras.applications.VGG16),
                                        ("resnet50", keras.applications.ResNet50)])
def test_caffe_weights_take_rgb(arch, ctor, tmp_path):
    """A BGR-trained base weights file (here random, the layout of the downloaded *_notop.h5) gives the same
    features on raw RGB as Keras' own base on Caffe-preprocessed input."""
    keras.backend.clear_session()
    reference = ctor(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    path = tmp_path / f"{arch}_notop.weights.h5"
    reference.save_weights(path)
    model = models.build_model(arch, 3, 32, weights=str(path))
    features = keras.Model(model.input, model.get_layer("fc").input)
    np.testing.assert_allclose(features(_x()), reference(archs.caffe_preprocess(_x())), rtol=1e-4, atol=1e-4)


def test_a_policy_needing_a_rule_the_registry_lacks_is_one_clear_error(monkeypatch):
    model = models.build_model("alexnet4", 3, seed=0)
    monkeypatch.setitem(archs.ARCHS, "alexnet4", dataclasses.replace(archs.ARCHS["alexnet4"], blocks=None,
                                                                     first_k=None))
    for policy, rule in (("last-block", "blocks"), ("first:2", "first_k")):
        with pytest.raises(TransferLabError) as info:
            transfer.apply_freeze(model, policy)
        msg = str(info.value)
        assert policy in msg and rule in msg and "alexnet4" in msg and _one_sentence(msg)
    assert transfer.resolve_freeze(model, "all-but-head")  # policies without an arch rule still work
    inp = keras.Input((8, 8, 3))
    toy = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Conv2D(2, 3)(inp)), name="toy")
    with pytest.raises(TransferLabError, match="no registered architecture"):
        transfer.apply_freeze(toy, "last-block")
    assert transfer.apply_freeze(toy, "first:1", arch="resnet50") == [toy.layers[1].name]


def test_the_preprocessing_alone_is_never_a_cached_prefix():
    for arch, size in (("alexnet4", 48), ("mobilenet_v2", 32)):
        model = models.build_model(arch, 3, size, seed=0)
        transfer.apply_freeze(model, "none")
        assert transfer.cacheable_prefix(model) == 0 and transfer.split_frozen(model) is None


# ---- mobilenet_v3_small: one registry entry ------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    keras.backend.clear_session()
    return models.build_model("mobilenet_v3_small", 3, 32, seed=0)


def test_mobilenet_v3_small_builds_and_trains_a_step(small):
    spec = archs.ARCHS["mobilenet_v3_small"]
    assert (spec.family, spec.default_input_size, spec.imagenet) == ("mobilenet", 96, archs.KERAS_DOWNLOAD)
    assert [layer.name for layer in small.layers] == ["input", "mobilenet_v3_small", "fc", "head_dropout",
                                                      "predictions"]
    assert isinstance(small.get_layer("mobilenet_v3_small").get_layer("rescaling"), keras.layers.Rescaling)
    transfer.apply_freeze(small, "none")
    small.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    before = small.get_layer("fc").get_weights()[0].copy()
    loss = small.train_on_batch(_x(32, 4), np.array([0, 1, 2, 0]))
    assert np.isfinite(loss) and not np.array_equal(small.get_layer("fc").get_weights()[0], before)
    probs = np.asarray(small(_x(32), training=False))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_mobilenet_v3_small_freeze_policies_resolve(small):
    last = transfer.resolve_freeze(small, "last-block")
    assert "expanded_conv_9_project_bn" in last and not any(n.startswith("expanded_conv_10_") for n in last)
    assert transfer.resolve_freeze(small, "first:1") == ["conv", "conv_bn"]
    transfer.apply_freeze(small, "last-block+batchnorm")
    prefix, head = transfer.split_frozen(small)
    np.testing.assert_allclose(head(prefix(_x(32))), small(_x(32), training=False), atol=1e-5)
    transfer.apply_freeze(small, "all-but-head")
    assert {w.path.split("/")[0] for w in small.trainable_weights} == {"predictions"}


def test_mobilenet_v3_small_imagenet_offline_is_one_sentence(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(TransferLabError) as info:
        models.build_model("mobilenet_v3_small", 3, 32, weights="imagenet")
    assert "could not be downloaded" in str(info.value) and _one_sentence(str(info.value))


def test_validation_reads_the_registry_for_imagenet_weights(empty_roots):
    from core.pipeline import StageConfig
    from core.validation import validate_stage

    errors = validate_stage(StageConfig(dataset="cifar10", arch="alexnet4", source="imagenet", freeze="all-but-head"))
    assert errors["source"] == "there are no ImageNet weights for alexnet4"
    errors = validate_stage(StageConfig(dataset="cifar10", arch="mobilenet_v3_small", source="imagenet",
                                        freeze="all-but-head"))
    assert "source" not in errors and "arch" not in errors
