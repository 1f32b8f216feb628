"""fastai's fine_tune as a stage option (core.fine_tune): two phases, the body frozen then unfrozen."""

import numpy as np
import pytest

from core import fine_tune, models, runs, training
from core.pipeline import StageConfig
from core.run_records import RunRecord
from core.validation import validate_stage

SMALL = dict(epochs=1, limit_per_class=12, batch_size=32, patience=0)


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def _run(stage: StageConfig, parent: str | None = None) -> str:
    run_id = runs.create_run(RunRecord(stage=stage.to_dict(), parent_run=parent))
    assert training.execute_run(run_id, stage, parent) == "done", runs.get_run(run_id)["status_info"]
    return run_id


@pytest.mark.parametrize(("unfreeze", "policy"), [
    ("all", "none"), ("all+batchnorm", "none+batchnorm"), ("last:1", "first:3"), ("last:4", "none"),
    ("LAST:2 + batchnorm", "first:2+batchnorm"), ("last:9", "none"),
])
def test_second_phase_policy(unfreeze, policy):
    assert fine_tune.second_policy(models.build_model("alexnet4", 3), unfreeze) == policy


@pytest.mark.parametrize(("fields", "bad"), [
    ({"unfreeze": "some"}, "unfreeze"), ({"unfreeze": "last:0"}, "unfreeze"), ({"unfreeze": "all+head"}, "unfreeze"),
    ({"unfreeze_divisor": 0.5}, "unfreeze_divisor"), ({"fine_tune_epochs": -1}, "fine_tune_epochs"),
    ({"fine_tune_epochs": 2}, "fine_tune_epochs"),  # freeze none: nothing to unfreeze
])
def test_bad_fine_tune_fields_get_one_message_each(fields, bad, empty_roots):
    assert bad in validate_stage(StageConfig(**fields))


def test_fine_tune_trains_the_head_then_the_last_block_with_frozen_batchnorm(real_data_root, results_dir):
    parent = _run(StageConfig(dataset="fruits360", **SMALL))
    stage = StageConfig(dataset="fruits360-3", source=f"run:{parent}", freeze="all-but-head", fine_tune_epochs=1,
                        unfreeze="last:1", unfreeze_divisor=5, schedule="one_cycle", lr_mult=0.5, **SMALL)
    run_id = _run(stage, parent)
    run = runs.get_run(run_id)
    assert [row["epoch"] for row in runs.read_history(run_id)] == [1, 2]  # one epoch per phase, numbered on
    assert run["metrics"]["epochs_run"] == 2 and run["config"]["stage"]["unfreeze"] == "last:1"
    before, after = runs.load_model(parent), runs.load_model(run_id)
    trainable = {layer.name: layer.trainable for layer in after.layers if layer.weights}
    assert trainable == {"conv2d_1": False, "batch_normalization_1": False, "conv2d_2": False,
                         "batch_normalization_2": False, "conv2d_3": False, "conv2d_4": True, "dense_1": True,
                         "dense_2": True, "dense_3": True}

    def weights(model, name):
        return model.get_layer(name).get_weights()

    for name in ("conv2d_1", "batch_normalization_1", "batch_normalization_2", "conv2d_3"):
        for a, b in zip(weights(before, name), weights(after, name), strict=True):
            np.testing.assert_array_equal(a, b)  # frozen: BatchNorm's moving statistics did not move either
    for name in ("conv2d_4", "dense_1"):  # frozen in phase 1, trained in phase 2
        assert not np.allclose(weights(before, name)[0], weights(after, name)[0])
