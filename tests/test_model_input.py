"""A run records whether its model takes raw pixels; a stage continuing a model stored before preprocessing moved
inside keeps that parent's convention (trained, evaluated and classified with the external preprocessing)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core import archs, model_input, models, predict, runs, training
from core.pipeline import StageConfig
from core.run_records import RunRecord

SMALL = dict(epochs=1, limit_per_class=12, batch_size=32, patience=0)


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    predict._load_classifier.cache_clear()
    yield tmp_path / "results"
    predict._load_classifier.cache_clear()


def _run(stage: StageConfig, parent: str | None = None) -> str:
    run_id = runs.create_run(RunRecord(stage=stage.to_dict(), parent_run=parent))
    assert training.execute_run(run_id, stage, parent) == "done", runs.get_run(run_id)
    return run_id


def _old_alexnet4_run() -> str:
    """alexnet4 as stored before: the same layers without the preprocessing, fed 0..1 pixels by the caller."""
    built = models.build_model("alexnet4", 3, seed=0)
    inp = keras.Input((48, 48, 3), name="input")
    x = inp
    for layer in built.layers[2:]:
        x = layer(x)
    run_id = runs.create_run(RunRecord(stage=StageConfig(dataset="fruits360-3").to_dict()))
    runs.save_model(run_id, keras.Model(inp, x, name="alexnet4"))
    runs.write_labels(run_id, ["apple", "noise", "pear"])
    runs.write_metrics(run_id, {"input_size": 48})
    runs.set_status(run_id, "done")
    return run_id


@pytest.mark.realdata
def test_new_stages_take_raw_pixels_and_a_child_of_an_old_model_keeps_its_convention(real_data_root, results_dir):
    fresh = _run(StageConfig(dataset="fruits360-3", **SMALL))
    assert runs.get_run(fresh)["metrics"][model_input.RAW_PIXELS] is True
    assert runs.load_model(fresh).layers[1].name == archs.PREPROCESSING_LAYER
    old = _old_alexnet4_run()
    child = _run(StageConfig(dataset="fruits360-3", source=f"run:{old}", freeze="first:4", **SMALL), old)
    metrics = runs.get_run(child)["metrics"]
    assert metrics[model_input.RAW_PIXELS] is False and metrics["feature_cache"] is True
    clf = predict.load_classifier(child)
    assert not clf.raw_pixels
    x = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 3)).astype(np.float32)
    np.testing.assert_allclose(clf.probabilities(x), runs.load_model(child)(archs.scale_01(x)), atol=1e-5)
