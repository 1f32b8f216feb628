"""Sweeps (core.sweeps): expansion into one experiment, a tiny real sweep, aggregation, the presets."""

import pytest

from core import cli, experiment, pipeline, sweeps, validation
from core.config import TransferLabError
from core.pipeline import Experiment, PipelineConfig, StageConfig

SMALL = dict(epochs=1, limit_per_class=12, batch_size=32, patience=0)


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def test_parse_axis():
    assert sweeps.parse_axis("freeze=none,first:1") == ("freeze", ["none", "first:1"])
    assert sweeps.parse_axis("learning_rate=1e-3, 3e-3") == ("learning_rate", [1e-3, 3e-3])
    assert sweeps.parse_axis('augment=[[], ["flip"]]') == ("augment", [[], ["flip"]])
    for bad in ("freeze", "freeze=", "=1,2", "augment=[oops"):
        with pytest.raises(TransferLabError):
            sweeps.parse_axis(bad)


def test_two_values_two_repeats_in_a_chain_run_the_earlier_stages_once():
    exp = pipeline.load_preset("paper-b-scratch-vs-transfer")
    swept = sweeps.expand(exp, {"freeze": ["first:3", "first:4"]}, repeats=2, pipeline="transfer")
    assert len(swept.pipelines) == 1 and swept.pipelines[0].repeats == 1
    stages = swept.pipelines[0].stages
    assert [s.dataset for s in stages] == ["cifar10", "fruits360"] + ["fruits360-3"] * 4
    assert [(s.freeze, s.seed, s.source) for s in stages[2:]] == [
        ("first:3", 0, "stage:1"), ("first:3", 1, "stage:1"), ("first:4", 0, "stage:1"), ("first:4", 1, "stage:1")]
    assert all(s.sweep == ["freeze"] for s in stages[2:]) and not stages[0].sweep
    assert stages[2].name == "fruits360-3 [freeze=first:3]"
    assert swept.name == "paper-b-scratch-vs-transfer-sweep-freeze"
    assert sweeps.axes_of(swept) == {"freeze": ["first:3", "first:4"]}


def test_a_stage_on_its_own_becomes_one_pipeline_per_value_combination():
    exp = pipeline.load_preset("paper-b-scratch-vs-transfer")
    swept = sweeps.expand(exp, {"learning_rate": [1e-3, 3e-3], "batch_size": [32, 64]}, 3, pipeline="scratch")
    assert [p.repeats for p in swept.pipelines] == [3] * 4
    assert [(p.stages[0].learning_rate, p.stages[0].batch_size) for p in swept.pipelines] == [
        (1e-3, 32), (1e-3, 64), (3e-3, 32), (3e-3, 64)]
    assert swept.pipelines[1].name == "scratch [learning_rate=0.001, batch_size=64]"
    parented = sweeps.expand(exp, {"freeze": ["first:4"]}, 2, pipeline="transfer", parent="RUN")
    assert [s.source for p in parented.pipelines for s in p.stages] == ["run:RUN"]


@pytest.mark.parametrize(("axes", "kw", "message"), [
    ({"seed": [1, 2]}, {}, "Cannot sweep 'seed'"),
    ({"colour": [1]}, {}, "Cannot sweep 'colour'"),
    ({"epochs": [1], "seed": [1], "freeze": ["none"]}, {}, "one or two fields"),
    ({"epochs": [1]}, {"pipeline": "nope"}, "No pipeline 'nope'"),
    ({"epochs": [1]}, {"stage": 7}, "stages 0..2"),
    ({"epochs": ["many"]}, {}, "expected int"),
])
def test_bad_sweeps_are_one_message(axes, kw, message):
    with pytest.raises(TransferLabError, match=message):
        sweeps.expand(pipeline.load_preset("paper-b-scratch-vs-transfer"), axes, **kw)


def _record(value, seed, acc, wall, fields=("learning_rate",), status="done"):
    return {"status": status, "config": {"stage": {"learning_rate": value, "seed": seed, "sweep": list(fields)}},
            "metrics": {"device": "CPU", "test_accuracy": acc, "wall_time_s": wall, "time_to_target_s": None,
                        "trainable_params": 10}}


def test_aggregate_gives_mean_and_std_per_value_in_launch_order():
    records = [_record(0.01, 0, 0.9, 10), _record(0.01, 1, 0.8, 14), _record(0.001, 0, 0.95, 20),
               _record(0.001, 1, 0.97, 22), _record(0.001, 2, 0.1, 1, status="failed"),
               {"status": "done", "config": {"stage": {"learning_rate": 0.5}}, "metrics": {}}]  # not swept
    table = sweeps.aggregate(records)
    assert list(table["learning_rate"]) == [0.01, 0.001] and list(table["runs"]) == [2, 2]
    assert list(table["test_accuracy_mean"]) == pytest.approx([0.85, 0.96])
    assert table["wall_time_s_std"].iloc[0] == pytest.approx(2.8284, rel=1e-3)
    assert sweeps.aggregate([]).empty


def test_a_tiny_real_sweep_runs_as_one_experiment_and_aggregates(real_data_root, results_dir, capsys):
    exp = Experiment(name="tiny", pipelines=[PipelineConfig(name="scratch", stages=[
        StageConfig(dataset="fruits360-3", **SMALL)])])
    swept = sweeps.expand(exp, {"learning_rate": [1e-3, 3e-3]}, repeats=2)
    assert validation.validate_experiment(swept) == []
    results = experiment.run_experiment(swept, command="pytest")
    assert [r["status"] for r in results] == ["done"] * 4
    table = sweeps.table("tiny-sweep-learning_rate")
    assert list(table["learning_rate"]) == [1e-3, 3e-3] and list(table["runs"]) == [2, 2]
    assert table["test_accuracy_mean"].between(0, 1).all() and (table["wall_time_s_mean"] > 0).all()
    assert sweeps.stored_sweeps() == ["tiny-sweep-learning_rate"]
    assert cli.main(["sweep", "show", "tiny-sweep-learning_rate"]) == 0
    assert "0.0030" in capsys.readouterr().out
    assert cli.main(["sweep", "show", "nothing"]) == 2
    assert "No finished sweep runs for 'nothing'" in capsys.readouterr().err


def test_the_new_presets_load_and_validate(real_data_root):
    sweep = pipeline.load_preset("paper-b-freeze-sweep")
    assert sweeps.axes_of(sweep) == {"freeze": ["none", "first:1", "first:2", "first:3", "first:4"]}
    swept = [s for s in sweep.pipelines[0].stages if s.sweep]
    assert len(swept) == 15 and {s.source for s in swept} == {"stage:1"} and {s.seed for s in swept} == {0, 1, 2}
    recipe = pipeline.load_preset("paper-b-recipe")
    last = recipe.pipelines[0].stages[-1]
    assert last.fine_tune_epochs > 0 and last.schedule != "constant"
    assert any(s.augment for s in recipe.pipelines[0].stages)
    assert validation.validate_experiment(sweep) == validation.validate_experiment(recipe) == []
