"""Schedules, weight decay and discriminative learning rates (core.schedules): no data needed."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import models, schedules
from core.pipeline import StageConfig
from core.validation import validate_stage


def _lr(rate, step: int) -> float:
    return float(rate(step)) if callable(rate) else float(rate)


def test_constant_without_warmup_is_the_plain_rate_as_before():
    stage = StageConfig(learning_rate=1e-3)
    assert schedules.learning_rate(stage, steps_per_epoch=10) == 1e-3
    opt = schedules.stage_optimizer(stage, models.build_model("alexnet4", 3), 10)
    assert type(opt) is keras.optimizers.Adam and opt.weight_decay is None
    assert float(opt.learning_rate) == pytest.approx(1e-3)


def test_cosine_with_warmup_rises_linearly_then_falls_to_zero():
    stage = StageConfig(learning_rate=0.01, schedule="cosine", warmup_epochs=1, epochs=5)
    rate = schedules.learning_rate(stage, steps_per_epoch=10)  # 10 warm-up steps, 40 decay steps
    assert _lr(rate, 0) == pytest.approx(0.0)
    assert _lr(rate, 5) == pytest.approx(0.005)
    assert _lr(rate, 10) == pytest.approx(0.01)
    assert _lr(rate, 30) == pytest.approx(0.005, rel=1e-5)  # half-way through the cosine
    assert _lr(rate, 50) == pytest.approx(0.0, abs=1e-9)


def test_constant_with_warmup_ramps_then_holds():
    stage = StageConfig(learning_rate=0.02, warmup_epochs=0.5, epochs=4)
    rate = schedules.learning_rate(stage, steps_per_epoch=20)
    assert [_lr(rate, s) for s in (0, 5, 10, 40, 79)] == pytest.approx([0.0, 0.01, 0.02, 0.02, 0.02])


def test_one_cycle_rises_to_the_peak_at_a_quarter_then_anneals():
    stage = StageConfig(learning_rate=0.01, schedule="one_cycle", epochs=4)
    rate = schedules.learning_rate(stage, steps_per_epoch=25)  # 100 steps, the peak at step 25
    assert _lr(rate, 0) == pytest.approx(0.01 / 25, rel=1e-5)
    assert _lr(rate, 25) == pytest.approx(0.01, rel=1e-5)
    assert _lr(rate, 100) == pytest.approx(0.01 / 1e5, rel=1e-4)
    assert _lr(rate, 10) < _lr(rate, 20) < _lr(rate, 25) > _lr(rate, 60) > _lr(rate, 90)
    restored = schedules.OneCycle.from_config(rate.get_config())
    assert _lr(restored, 60) == pytest.approx(_lr(rate, 60))


def test_alexnet4_layer_groups_and_discriminative_multipliers():
    model = models.build_model("alexnet4", 3)
    groups = [[layer.name for layer in g] for g in schedules.layer_groups(model)]
    assert groups == [["conv2d_1", "batch_normalization_1"], ["conv2d_2", "batch_normalization_2"], ["conv2d_3"],
                      ["conv2d_4"], ["dense_1"], ["dense_2"], ["dense_3"]]
    mults = schedules.multipliers(model, 0.5)
    assert mults["dense_3/kernel"] == 1.0 and mults["dense_2/kernel"] == 0.5
    assert mults["conv2d_1/kernel"] == mults["batch_normalization_1/gamma"] == 0.5**6
    for layer in model.layers[:5]:  # conv2d_1 .. max_pooling2d_2 frozen: the depth counts trainable groups only
        layer.trainable = False
    assert schedules.multipliers(model, 0.5)["conv2d_3/kernel"] == 0.5**4


def test_discriminative_sgd_moves_each_group_by_its_own_rate():
    """Plain SGD (no momentum) on one step: every variable moves by lr * multiplier * its gradient."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    out = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.Dense(5, name="body")(inp))
    model = keras.Model(inp, out)
    opt = schedules._DISCRIMINATIVE["sgd"](learning_rate=0.1, momentum=0.0,
                                            lr_multipliers=schedules.multipliers(model, 0.1))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).normal(size=(8, 4)).astype("float32"), np.array([0, 1, 2, 0, 1, 2, 0, 1])
    before = [v.numpy().copy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, model(x)))
    grads = tape.gradient(loss, model.trainable_variables)
    model.train_on_batch(x, y)
    for v, b, g in zip(model.trainable_variables, before, grads, strict=True):
        factor = 1.0 if v.path.startswith("head") else 0.1
        np.testing.assert_allclose(v.numpy(), b - 0.1 * factor * g.numpy(), rtol=1e-4, atol=1e-6)
    config = opt.get_config()
    assert config["lr_multipliers"]["body/kernel"] == pytest.approx(0.1)


def test_weight_decay_and_schedule_reach_the_optimizer():
    stage = StageConfig(optimizer="adamw", weight_decay=0.01, schedule="one_cycle", lr_mult=0.5, epochs=2)
    opt = schedules.stage_optimizer(stage, models.build_model("alexnet4", 3), 10)
    assert isinstance(opt, keras.optimizers.AdamW) and opt.weight_decay == pytest.approx(0.01)
    assert isinstance(opt._learning_rate, schedules.OneCycle)
    assert type(opt).__name__ == "DiscriminativeAdamW"


@pytest.mark.parametrize(("fields", "bad"), [
    ({"schedule": "linear"}, "schedule"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
    ({"warmup_epochs": 20, "epochs": 10}, "warmup_epochs"),
    ({"weight_decay": 1.5}, "weight_decay"),
    ({"weight_decay": float("nan")}, "weight_decay"),
    ({"lr_mult": 0}, "lr_mult"),
    ({"lr_mult": 2}, "lr_mult"),
])
def test_bad_schedule_fields_get_one_message_each(fields, bad, empty_roots):
    errors = validate_stage(StageConfig(dataset="cifar10", **fields))
    assert bad in errors and errors[bad].endswith(tuple("abcdefghijklmnopqrstuvwxyz)"))
