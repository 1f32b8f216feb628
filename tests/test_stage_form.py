"""The Train page's form parser (core.stage_form): table cells -> StageConfig and rows -> a checked experiment.
No data needed: `mnist` is a Keras built-in that validates as downloadable in an empty data root."""

from __future__ import annotations

import pandas as pd
import pytest

from core import pipeline, stage_form
from core.pipeline import StageConfig


def test_table_cells_become_typed_stage_fields():
    stage = stage_form.stage_from_form(
        {"dataset": " mnist ", "epochs": 3.0, "input_size": pd.NA, "limit_per_class": float("nan"),
         "learning_rate": 1, "augment": "flip, zoom,", "name": "", "pipeline": "ignored", "repeats": 2},
        base={"monitor": "val_loss"})
    assert stage == StageConfig(dataset="mnist", epochs=3, input_size=None, limit_per_class=None,
                                learning_rate=1.0, augment=["flip", "zoom"], name="", monitor="val_loss")
    assert isinstance(stage.epochs, int) and isinstance(stage.learning_rate, float)


def test_every_wrong_field_is_named_with_its_own_message():
    with pytest.raises(stage_form.FormError) as info:
        stage_form.stage_from_form({"dataset": " ", "epochs": 2.5, "batch_size": None, "learning_rate": "fast"})
    assert info.value.fields == {"dataset": "dataset is required", "epochs": "epochs must be a whole number",
                                 "batch_size": "batch size is required",
                                 "learning_rate": "learning rate must be a number"}
    with pytest.raises(stage_form.FormError) as info:
        stage_form.stage_from_form({"augment": ["flip"]}, base={"no_such_field": 1})
    assert list(info.value.fields) == ["row"] and "unknown field(s) no_such_field" in info.value.fields["row"]


def test_a_preset_survives_the_round_trip_through_its_rows(empty_roots):
    preset = pipeline.load_preset("paper-b-scratch-vs-transfer")
    for pipe in preset.pipelines:
        for stage in pipe.stages:
            stage.dataset = "mnist"
    rows = stage_form.experiment_rows(preset)
    assert [r["repeats"] for r in rows] == [p.repeats if i == len(p.stages) - 1 else None
                                            for p in preset.pipelines for i in range(len(p.stages))]
    form = stage_form.experiment_from_rows(rows, preset, "renamed")
    assert form.errors == [{}] * len(rows) and form.problems == []
    assert form.experiment.to_dict() == {**preset.to_dict(), "name": "renamed"}


def test_rows_group_into_pipelines_and_bad_rows_stop_the_launch(empty_roots):
    base = pipeline.Experiment([pipeline.PipelineConfig([StageConfig(monitor="val_loss")])])
    row = {"dataset": "mnist", "source": "scratch", "epochs": 1}
    form = stage_form.experiment_from_rows(
        [{**row, "pipeline": None}, {**row, "pipeline": "b", "epochs": 0}, {**row, "pipeline": "b", "source": "previous",
                                                                          "repeats": 0}], base, "x")
    assert form.experiment is None
    assert form.stages[0].monitor == "val_loss", "fields the form does not show come from the base's stage"
    assert form.errors == [{}, {"epochs": "epochs must be at least 1"}, {}]
    assert form.problems == ["pipeline b: repeats must be at least 1"]
    assert stage_form.experiment_from_rows([], base, "x").problems == ["add at least one stage"]
