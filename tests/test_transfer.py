"""Transfer: new heads, freeze policies, frozen BatchNorm in inference mode, the cacheable prefix split."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import models, transfer
from core.config import TransferLabError

ALEX4_WEIGHTED = ["conv2d_1", "batch_normalization_1", "conv2d_2", "batch_normalization_2", "conv2d_3", "conv2d_4",
                  "dense_1", "dense_2", "dense_3"]


@pytest.fixture(scope="module")
def alex4():
    return models.build_model("alexnet4", 3, seed=0)


@pytest.fixture(scope="module")
def vgg16():
    return models.build_model("vgg16", 3, 32, seed=0)


@pytest.fixture(scope="module")
def mobilenet():
    return models.build_model("mobilenet_v2", 3, 32, seed=0)


def _trainable_leaves(model) -> set[str]:
    return {leaf.name for leaf, _ in transfer._leaves(model) if leaf.trainable_weights}


def _x(n=4, size=48, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("policy, frozen", [
    ("first:3", ["conv2d_1", "batch_normalization_1", "conv2d_2", "batch_normalization_2", "conv2d_3"]),
    ("first:4", ["conv2d_1", "batch_normalization_1", "conv2d_2", "batch_normalization_2", "conv2d_3", "conv2d_4"]),
    ("all-but-head", ALEX4_WEIGHTED[:-1]),
    ("last-block", ["conv2d_1", "batch_normalization_1", "conv2d_2", "batch_normalization_2", "conv2d_3"]),
    ("batchnorm", ["batch_normalization_1", "batch_normalization_2"]),
    ("dense_1+batchnorm", ["batch_normalization_1", "batch_normalization_2", "dense_1"]),
    (["conv2d_1", "dense_2"], ["conv2d_1", "dense_2"]),
    ("conv2d_?+dense_1", ["conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense_1"]),
    ("first:1 + dense_1", ["conv2d_1", "batch_normalization_1", "dense_1"]),
    ("all", ALEX4_WEIGHTED),
    ("none", []),
    ("", []),
])
def test_alexnet4_policies(alex4, policy, frozen):
    transfer.apply_freeze(alex4, "all")  # every call starts from scratch: nothing carries over
    assert transfer.apply_freeze(alex4, policy) == frozen
    assert transfer.resolve_freeze(alex4, policy) == frozen
    assert _trainable_leaves(alex4) == set(ALEX4_WEIGHTED) - set(frozen)
    frozen_params = sum(int(np.prod(w.shape)) for n in frozen for w in alex4.get_layer(n).weights)
    bn_stats = sum(int(np.prod(w.shape)) for n in ("batch_normalization_1", "batch_normalization_2")
                   if n not in frozen for w in alex4.get_layer(n).non_trainable_weights)
    assert models.param_counts(alex4)["non_trainable"] == frozen_params + bn_stats


def test_alexnet16_policies():
    model = models.build_model("alexnet16", 10)
    assert transfer.apply_freeze(model, "first:1") == ["conv2d_1", "batch_normalization"]
    assert transfer.apply_freeze(model, "last-block") == ["conv2d_1", "batch_normalization", "conv2d_2",
                                                          "batch_normalization_1"]
    with pytest.raises(TransferLabError, match="'first:4'.*3"):
        transfer.apply_freeze(model, "first:4")


def test_vgg16_policies(vgg16):
    transfer.apply_freeze(vgg16, "last-block")
    assert _trainable_leaves(vgg16) == {"block5_conv1", "block5_conv2", "block5_conv3", "fc", "predictions"}
    assert all(layer.trainable for layer in vgg16.layers if layer.name.startswith("block5") or
               layer.name in ("avg_pool", "fc", "head_dropout", "predictions"))
    assert transfer.apply_freeze(vgg16, "first:2") == ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2"]
    assert len(transfer.apply_freeze(vgg16, "block*")) == 13  # paper C: the conv base frozen
    assert _trainable_leaves(vgg16) == {"fc", "predictions"}
    transfer.apply_freeze(vgg16, "all-but-head")
    assert _trainable_leaves(vgg16) == {"predictions"}
    with pytest.raises(TransferLabError, match="'first:6'"):
        transfer.apply_freeze(vgg16, "first:6")


def test_nested_policies(mobilenet):
    base = mobilenet.get_layer("mobilenet_v2")
    transfer.apply_freeze(mobilenet, "last-block")
    assert base.trainable  # the container stays trainable; leaves carry the flag
    trainable = _trainable_leaves(mobilenet)
    assert trainable == {n for n in trainable if n.startswith(("block_16_", "Conv_1"))} | {"fc", "predictions"}
    assert {"block_16_expand", "Conv_1", "Conv_1_bn", "fc", "predictions"} <= trainable
    transfer.apply_freeze(mobilenet, "all-but-head")
    assert _trainable_leaves(mobilenet) == {"predictions"} and base.trainable
    assert transfer.apply_freeze(mobilenet, "first:1") == ["Conv1", "bn_Conv1"]
    frozen = transfer.apply_freeze(mobilenet, "mobilenet_v2")  # the base's name: all of its layers
    assert _trainable_leaves(mobilenet) == {"fc", "predictions"} and len(frozen) > 100
    transfer.apply_freeze(mobilenet, "none")
    assert models.param_counts(mobilenet)["trainable"] == models.param_counts(mobilenet)["total"] - sum(
        int(np.prod(w.shape)) for w in mobilenet.non_trainable_weights)
    assert all(leaf.trainable for leaf, _ in transfer._leaves(mobilenet))


def test_resnet_last_block_is_conv5():
    keras.backend.clear_session()
    model = models.build_model("resnet50", 3, 32)
    transfer.apply_freeze(model, "last-block")
    trainable = _trainable_leaves(model) - {"fc", "predictions"}
    assert trainable and all(n.startswith("conv5_") for n in trainable)
    assert "conv5_block1_1_conv" in trainable and "conv4_block6_3_conv" not in trainable


@pytest.mark.parametrize("policy", ["nothing*", "first:9", "first:0", "first:x", "max_pooling2d_1", "dense_1+zz"])
def test_policy_matching_nothing_is_an_error(alex4, policy):
    transfer.apply_freeze(alex4, "first:3")
    with pytest.raises(TransferLabError) as info:
        transfer.apply_freeze(alex4, policy)
    msg = str(info.value)
    assert "Freeze policy" in msg and msg.endswith(".") and "\n" not in msg
    assert policy.split("+")[-1] in msg
    # nothing changed
    assert _trainable_leaves(alex4) == set(ALEX4_WEIGHTED[5:])


def test_frozen_batchnorm_runs_in_inference_mode():
    model = models.build_model("alexnet4", 3, 32, seed=0)
    transfer.apply_freeze(model, "first:3")
    bns = [model.get_layer("batch_normalization_1"), model.get_layer("batch_normalization_2")]
    before = [[w.numpy().copy() for w in bn.weights] for bn in bns]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 5, (16, 32, 32, 3)).astype(np.float32)
    y = np.arange(16) % 3
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for bn, old in zip(bns, before, strict=True):
        for w, o in zip(bn.weights, old, strict=True):  # gamma, beta, moving mean, moving variance
            np.testing.assert_array_equal(w.numpy(), o)
        h = tf.random.uniform((4, 5, 5, bn.weights[0].shape[0]), 0, 3, seed=1)
        np.testing.assert_allclose(bn(h, training=True), bn(h, training=False), atol=1e-6)
    # the same fit with nothing frozen does move the statistics (the check above can fail)
    transfer.apply_freeze(model, "none")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not np.array_equal(bns[0].moving_mean.numpy(), before[0][2])


def test_frozen_nested_base_is_deterministic(mobilenet):
    transfer.apply_freeze(mobilenet, "all-but-head")
    base = mobilenet.get_layer("mobilenet_v2")
    x = tf.random.uniform((2, 32, 32, 3), -1, 1, seed=2)
    np.testing.assert_allclose(base(x, training=True), base(x, training=False), atol=1e-5)


def test_replace_head(alex4):
    transfer.apply_freeze(alex4, "none")
    new = transfer.replace_head(alex4, 7, seed=3)
    assert new.output_shape == (None, 7) and new.layers[-1].name == "dense_3"
    assert all(a is b for a, b in zip(new.layers[1:-1], alex4.layers[1:-1], strict=True))
    kernel, bias = new.layers[-1].get_weights()
    assert kernel.shape == (512, 7) and abs(kernel.std() - 0.01) < 0.002 and not bias.any()
    np.testing.assert_array_equal(kernel, transfer.replace_head(alex4, 7, seed=3).layers[-1].get_weights()[0])
    # training the new model trains the shared layers of the old one
    before = alex4.get_layer("dense_2").get_weights()[0].copy()
    new.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    new.fit(_x(8), np.arange(8) % 7, batch_size=8, epochs=1, verbose=0)
    assert not np.array_equal(alex4.get_layer("dense_2").get_weights()[0], before)
    assert transfer.replace_head(models.build_model("alexnet16", 10), 3).layers[-1].name == "out_layer"
    with pytest.raises(TransferLabError):
        transfer.replace_head(alex4, 1)


def test_replace_head_nested_and_reload(mobilenet, tmp_path):
    new = transfer.replace_head(mobilenet, 2, seed=0)
    assert [layer.name for layer in new.layers] == ["input", "mobilenet_v2", "fc", "head_dropout", "predictions"]
    assert new.layers[1] is mobilenet.layers[1] and new.output_shape == (None, 2)
    transfer.apply_freeze(new, "all-but-head")
    path = tmp_path / "m.keras"
    new.save(path)
    back = keras.models.load_model(path, safe_mode=True, compile=False)
    x = tf.random.uniform((2, 32, 32, 3), -1, 1, seed=0)
    np.testing.assert_allclose(back(x, training=False), new(x, training=False), atol=1e-5)


def test_cacheable_prefix(alex4, mobilenet):
    names = [layer.name for layer in alex4.layers]
    transfer.apply_freeze(alex4, "none")
    assert transfer.cacheable_prefix(alex4) == 0
    transfer.apply_freeze(alex4, "first:4")
    assert names[transfer.cacheable_prefix(alex4)] == "flatten"
    transfer.apply_freeze(alex4, "first:3")
    assert names[transfer.cacheable_prefix(alex4)] == "conv2d_3"
    transfer.apply_freeze(alex4, "all-but-head")
    assert names[transfer.cacheable_prefix(alex4)] == "dense_2"
    transfer.apply_freeze(alex4, "all")
    assert transfer.cacheable_prefix(alex4) == 0  # nothing would train
    transfer.apply_freeze(alex4, "conv2d_1")  # its BN still trains: the prefix ends at the conv
    assert names[transfer.cacheable_prefix(alex4)] == "conv2d_1"
    a16 = models.build_model("alexnet16", 10)
    transfer.apply_freeze(a16, "first:3")  # stops before dropout_1
    assert a16.layers[transfer.cacheable_prefix(a16)].name == "average_pooling2d"
    transfer.apply_freeze(mobilenet, "all-but-head")  # frozen base + frozen fc, then the head's dropout
    assert mobilenet.layers[transfer.cacheable_prefix(mobilenet)].name == "fc"
    transfer.apply_freeze(mobilenet, "last-block")
    assert transfer.cacheable_prefix(mobilenet) == 0


def test_split_model_matches_whole(alex4, mobilenet):
    for model, policy, size in ((alex4, "first:4", 48), (alex4, "first:3", 48), (mobilenet, "all-but-head", 32)):
        transfer.apply_freeze(model, policy)
        k = transfer.cacheable_prefix(model)
        prefix, head = transfer.split_model(model, k)
        assert prefix.output_shape == head.input_shape
        assert all(a is b for a, b in zip(prefix.layers[1:] + head.layers[1:], model.layers[1:], strict=True))
        x = _x(3, size)
        np.testing.assert_allclose(head(prefix(x, training=False), training=False), model(x, training=False),
                                   atol=1e-5)
    # training the head on cached features trains the whole model's weights
    transfer.apply_freeze(alex4, "first:4")
    prefix, head = transfer.split_model(alex4, transfer.cacheable_prefix(alex4))
    feats = prefix.predict(_x(8), verbose=0)
    head.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    head.fit(feats, np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)
    x = _x(2, seed=5)
    np.testing.assert_allclose(head(prefix(x)), alex4(x, training=False), atol=1e-5)
    np.testing.assert_array_equal(head.get_layer("dense_1").get_weights()[0], alex4.get_layer("dense_1").get_weights()[0])
    with pytest.raises(ValueError):
        transfer.split_model(alex4, 0)


@pytest.mark.parametrize("arch, classes, policy, trainable, non_trainable", [
    # paper A's printed counts: its "AlexNet16" rows are paper B's AlexNet (alexnet4) with 10/100/120 outputs,
    # the Fruits360 stages froze the conv layers only (their BatchNorm layers kept training)
    ("alexnet4", 10, "none", 956_426, 96),
    ("alexnet4", 100, "none", 1_002_596, 96),
    ("alexnet4", 120, "conv2d_1+conv2d_2+conv2d_3", 988_504, 24_448),
    ("alexnet32", 10, "none", 1_672_426, 256),
    ("alexnet32", 120, "conv2d_1", 1_726_424, 2_688),
])
def test_paper_a_printed_counts(arch, classes, policy, trainable, non_trainable):
    model = models.build_model(arch, classes)
    transfer.apply_freeze(model, policy)
    counts = models.param_counts(model)
    assert (counts["trainable"], counts["non_trainable"]) == (trainable, non_trainable)


def test_split_frozen_cuts_inside_a_nested_base_that_fine_tunes_its_last_block():
    """last-block+batchnorm on EfficientNet-Lite: the cached prefix runs through block6, the head holds block7
    and the classifier, and head(prefix(x)) == model(x)."""
    model = models.build_model("efficientnet_lite0", 3, 64, seed=0)
    frozen = transfer.apply_freeze(model, "last-block+batchnorm")
    assert transfer.cacheable_prefix(model) == 0, "the base trains, so no top-level prefix is cacheable"
    prefix, head = transfer.split_frozen(model)
    assert not prefix.trainable_weights
    trained = {w.path for w in head.trainable_weights}
    assert trained == {w.path for w in model.trainable_weights}
    assert any("block7" in p for p in trained) and not any("block6" in p for p in trained)
    assert all("_bn" not in p for p in trained) and any(n.endswith("_bn") for n in frozen)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(head(prefix(x)), model(x), atol=1e-5)


def test_split_frozen_is_the_top_level_split_or_none(alex4):
    transfer.apply_freeze(alex4, "first:4")
    prefix, head = transfer.split_frozen(alex4)
    assert len(prefix.layers) - 1 == transfer.cacheable_prefix(alex4)
    transfer.apply_freeze(alex4, "none")
    assert transfer.split_frozen(alex4) is None
