"""What a run gets wrong (core.errors): the wrong Test images sorted by loss, confused pairs, per class."""

import numpy as np
import pytest

from core import cli, errors, runs, training
from core.config import TransferLabError
from core.pipeline import StageConfig
from core.run_records import RunRecord


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def test_confused_pairs_are_off_diagonal_and_largest_first():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 2, 1, 0, 2, 0, 0])
    pairs = errors.confused_pairs(y, p, ["a", "b", "c"])
    assert [(d["truth"], d["prediction"], d["count"]) for d in pairs] == [
        ("a", "b", 2), ("c", "a", 2), ("a", "c", 1), ("b", "a", 1)]
    assert pairs[0]["share"] == pytest.approx(0.5)


def test_a_run_lists_its_wrong_test_images_by_loss(real_data_root, results_dir, capsys):
    stage = StageConfig(dataset="fruits360-3", epochs=1, limit_per_class=12, batch_size=32, patience=0)
    run_id = runs.create_run(RunRecord(stage=stage.to_dict(), parent_run=None))
    assert training.execute_run(run_id, stage, None) == "done"
    metrics = runs.get_run(run_id)["metrics"]
    result = errors.analyse(run_id, limit=5)
    assert result["n"] == metrics["n_test"] and result["classes"] == ["apple", "noise", "pear"]
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1.5 / result["n"])
    wrong = result["wrong"]
    assert result["n_wrong"] == len(wrong) > 0
    assert [w["loss"] for w in wrong] == sorted((w["loss"] for w in wrong), reverse=True)
    assert all(w["truth"] != w["prediction"] and w["probability"] >= w["truth_probability"] for w in wrong)
    assert all(w["loss"] == pytest.approx(-np.log(max(w["truth_probability"], 1e-7)), rel=1e-5) for w in wrong)
    assert len(result["images"]) == min(5, len(wrong)) and result["images"][0].shape == (48, 48, 3)
    assert sum(p["count"] for p in result["pairs"]) == len(wrong)
    assert [c["class"] for c in result["per_class"]] == ["apple", "noise", "pear"]
    assert sum(c["support"] for c in result["per_class"]) == result["n"]
    assert cli.main(["errors", run_id, "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "Most confused" in out and f"{len(wrong)} of {result['n']} wrong" in out


def test_a_run_without_a_model_is_one_message(results_dir):
    run_id = runs.create_run(RunRecord(stage=StageConfig().to_dict(), parent_run=None))
    with pytest.raises(TransferLabError, match="has no model to analyse"):
        errors.analyse(run_id)
