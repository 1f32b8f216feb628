"""Issue 17, points 6 and 10 (and 3's input sizes): numbers out of range are refused up front, one field each,
and a run whose loss becomes NaN is stopped, recorded as failed with the reason, and never becomes `latest`."""

from __future__ import annotations

import math

import pytest
from faultkit import TOY_SIZE, model_run, toy_folder

from core import datasets, pipeline, predict, runs, training, validation
from core.pipeline import Experiment, StageConfig
from core.run_records import RunRecord

TOY = {"dataset": "toy", "arch": "alexnet4", "input_size": TOY_SIZE, "epochs": 1, "batch_size": 4, "patience": 0}

OUT_OF_RANGE = {  # case -> (stage fields, the field refused, words of its message)
    "lr-nan": ({"learning_rate": math.nan}, "learning_rate", "greater than 0"),
    "lr-inf": ({"learning_rate": math.inf}, "learning_rate", "greater than 0"),
    "lr-1e9": ({"learning_rate": 1e9}, "learning_rate", "at most 10"),
    "seed-negative": ({"seed": -1}, "seed", "between 0 and 4294967295"),
    "seed-2^40": ({"seed": 2**40}, "seed", "between 0 and 4294967295"),
    "per-class-negative": ({"per_class": -5}, "per_class", "at least 1"),
    "limit-per-class-zero": ({"limit_per_class": 0}, "limit_per_class", "at least 2"),
    "alexnet4-2000px": ({"input_size": 2000}, "input_size", "too large for alexnet4 (maximum 256)"),
    "resnet50-10000px": ({"arch": "resnet50", "input_size": 10000}, "input_size", "too large for resnet50"),
    "target-nan": ({"target_accuracy": math.nan}, "target_accuracy", "between 0 and 1"),
}


@pytest.fixture
def toy(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    datasets.import_dataset(toy_folder(tmp_path / "src", n_train=8, n_test=4))
    return data_dir


@pytest.mark.parametrize("case", OUT_OF_RANGE)
def test_numbers_out_of_range_are_refused_up_front(toy, case):
    fields, field, words = OUT_OF_RANGE[case]
    errors = validation.validate_stage(StageConfig(**{**TOY, **fields}))
    assert field in errors and words in errors[field], errors
    with pytest.raises(pipeline.TransferLabError, match=field):
        validation.check_experiment(Experiment.from_dict({"stages": [{**TOY, **fields}]}))


def test_a_stage_in_range_passes(toy):
    assert validation.validate_stage(StageConfig(**{**TOY, "seed": 2**32 - 1, "learning_rate": 10.0,
                                                  "input_size": 256, "per_class": 1})) == {}


def test_a_diverging_run_is_stopped_failed_and_never_latest(toy):
    good = model_run()
    stage = StageConfig(**{**TOY, "learning_rate": 1e9, "optimizer": "sgd", "epochs": 3})  # past validation
    run_id = runs.create_run(RunRecord(stage=stage.to_dict()))
    assert training.execute_run(run_id, stage, None) == "failed"
    run = runs.get_run(run_id)
    assert run["status"] == "failed" and "Training diverged: the loss became nan" in run["status_info"]["error"]
    assert not run["has_model"] and not (runs.run_dir(run_id) / "traceback.json").exists()
    assert runs.latest_model_run() == good and predict.resolve_model("latest") == good
