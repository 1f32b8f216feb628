"""Comparing runs (core.run_diff): config differences, metrics side by side, overlaid curves, confusions."""

import pytest

from core import cli, confusion, run_diff, runs
from core.config import TransferLabError
from core.pipeline import StageConfig
from core.run_records import RunRecord


def _record(run_id, **stage):
    return {"run_id": run_id, "config": {"created": run_id, "preset": "p", "stage": StageConfig(**stage).to_dict(),
                                         "hardware": {"device": "CPU"}},
            "metrics": {"test_accuracy": 0.9, "wall_time_s": 12.0}}


def test_config_diff_shows_only_the_fields_that_differ():
    a, b, c = _record("a"), _record("b", learning_rate=0.01, augment=["flip"]), _record("c", learning_rate=0.01)
    diff = run_diff.config_diff([a, b, c])
    assert list(diff.columns) == ["field", "a", "b", "c", "differs"]
    assert set(diff["field"]) == {"stage.learning_rate", "stage.augment"}  # not `created`, which always differs
    row = diff.set_index("field").loc["stage.augment"]
    assert (row["a"], row["b"]) == ("", "flip")
    full = run_diff.config_diff([a, b], only_different=False)
    assert "hardware.device" in set(full["field"]) and list(full["differs"][:2]) == [True, True]
    assert not full["differs"].iloc[-1]


def test_metrics_side_by_side():
    table = run_diff.metrics([_record("a"), _record("b")])
    assert list(table["run_id"]) == ["a", "b"] and list(table["test_accuracy"]) == [0.9, 0.9]


def test_stored_runs_overlay_their_curves_and_confusions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    ids = [runs.create_run(RunRecord(stage=StageConfig(dataset="fruits360-3", learning_rate=lr).to_dict()))
           for lr in (1e-3, 1e-2)]
    for run_id in ids:
        for epoch in (1, 2):
            runs.append_history(run_id, {"epoch": epoch, "loss": 1.0 / epoch, "val_accuracy": 0.5 * epoch,
                                         "elapsed_s": epoch})
    confusion.write(runs.run_dir(ids[0]), ["a", "b"], [[0, 0, 3], [1, 0, 1], [1, 1, 2]])
    curves = run_diff.curves(ids)
    assert len(curves) == 8 and set(curves["metric"]) == {"loss", "val_accuracy"}
    assert list(curves[curves["run_id"] == ids[1]]["value"][:2]) == [1.0, 0.5]
    matrices = run_diff.confusions(ids)
    assert matrices[ids[0]].loc["b", "a"] == 1 and matrices[ids[1]] is None
    assert [r["run_id"] for r in run_diff.load(ids)] == ids
    with pytest.raises(TransferLabError, match="at least two"):
        run_diff.load([ids[0], ids[0]])
    assert cli.main(["compare", *ids]) == 0
    assert "stage.learning_rate" in capsys.readouterr().out
