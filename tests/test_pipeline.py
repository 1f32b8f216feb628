"""StageConfig / presets / --set overrides: plain data in, one clear message per wrong field."""

import json
from pathlib import Path

import pytest

from core.config import TransferLabError
from core.pipeline import (
    Experiment,
    StageConfig,
    apply_overrides,
    list_presets,
    load_config_file,
    load_preset,
)

PAPER_PRESETS = {"paper-a-alexnet-widths", "paper-b-scratch-vs-transfer", "paper-c-vgg-finetune",
                 "paper-d-architecture-survey"}


def test_the_four_paper_presets_load():
    assert PAPER_PRESETS <= set(list_presets())
    for name in PAPER_PRESETS:
        exp = load_preset(name)
        assert exp.name == name and exp.pipelines and all(p.stages for p in exp.pipelines)


def test_stored_result_configs_name_the_paper_preset_their_runs_belong_to():
    """Runs record the experiment's name as their preset; the Results page and the findings group by it."""
    configs = sorted((Path(__file__).resolve().parents[1] / "results" / "configs").glob("*.json"))
    assert configs
    for path in configs:
        assert load_config_file(str(path)).name in PAPER_PRESETS, path.name


def test_paper_b_preset_shape():
    exp = load_preset("paper-b-scratch-vs-transfer")
    by_name = {p.name: p for p in exp.pipelines}
    chain = by_name["transfer"]
    assert [s.dataset for s in chain.stages] == ["cifar10", "fruits360", "fruits360-3"]
    assert [s.freeze for s in chain.stages] == ["none", "first:3", "first:4"]
    assert chain.repeats == 10 and by_name["scratch"].repeats == 10
    assert by_name["scratch"].stages[0].source == "scratch"


def test_stage_roundtrip_through_dict():
    stage = StageConfig(dataset="cifar10", epochs=3, augment=["flip"], input_size=32)
    assert StageConfig.from_dict(stage.to_dict()) == stage


def test_unknown_key_and_wrong_type_are_clear_errors():
    with pytest.raises(TransferLabError, match="unknown field.*epochz"):
        StageConfig.from_dict({"epochz": 3})
    with pytest.raises(TransferLabError, match="epochs: expected int"):
        StageConfig.from_dict({"epochs": "three"})
    with pytest.raises(TransferLabError, match="learning_rate: expected float"):
        StageConfig.from_dict({"learning_rate": True})


def test_set_overrides_every_stage_or_one_stage():
    exp = load_preset("paper-b-scratch-vs-transfer")
    exp = apply_overrides(exp, ["epochs=1", "limit_per_class=40", "stages.1.learning_rate=0.01"], repeats=1)
    stages = [s for p in exp.pipelines for s in p.stages]
    assert all(s.epochs == 1 and s.limit_per_class == 40 for s in stages)
    transfer = next(p for p in exp.pipelines if p.name == "transfer")
    assert transfer.stages[1].learning_rate == 0.01 and transfer.stages[0].learning_rate == 0.001
    assert all(p.repeats == 1 for p in exp.pipelines)
    with pytest.raises(TransferLabError, match="expected key=value"):
        apply_overrides(exp, ["epochs"])
    with pytest.raises(TransferLabError, match="unknown field"):
        apply_overrides(exp, ["nonsense=1"])


def test_config_file_json_and_toml(tmp_path):
    cfg = {"name": "mine", "repeats": 2, "stages": [{"dataset": "cifar10", "epochs": 2}]}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    exp = load_config_file(tmp_path / "c.json")
    assert isinstance(exp, Experiment) and exp.pipelines[0].repeats == 2
    (tmp_path / "c.toml").write_text('name = "t"\n[[stages]]\ndataset = "mnist"\nepochs = 1\n')
    assert load_config_file(tmp_path / "c.toml").pipelines[0].stages[0].dataset == "mnist"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TransferLabError, match="not valid JSON"):
        load_config_file(tmp_path / "bad.json")
