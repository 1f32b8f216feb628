"""The training engine on the real shared data: pipelines, feature cache, cancel, kill, multi-device."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import experiment, runs, training
from core.config import REPO_ROOT
from core.pipeline import Experiment, PipelineConfig, StageConfig
from core.run_records import RunRecord

METRIC_FIELDS = {
    "test_accuracy", "test_loss", "kappa", "per_class", "val_accuracy", "val_loss", "train_accuracy", "train_loss",
    "best_epoch", "epochs_run", "wall_time_s", "time_to_target_s", "ms_per_step", "images_per_s",
    "trainable_params", "non_trainable_params", "inference_ms_per_image", "device", "tensorflow", "commit", "seed",
    "cpu", "cpu_cores",
}
SMALL = dict(epochs=1, limit_per_class=12, batch_size=32, patience=0)


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def _run(stage: StageConfig, parent: str | None = None, **kw) -> str:
    run_id = runs.create_run(RunRecord(stage=stage.to_dict(), parent_run=parent))
    assert training.execute_run(run_id, stage, parent, **kw) in ("done", "cancelled"), runs.get_run(run_id)
    return run_id


def test_three_stage_pipeline_leaves_three_linked_done_runs(real_data_root, results_dir):
    exp = Experiment(name="t", pipelines=[PipelineConfig(name="chain", repeats=1, stages=[
        StageConfig(dataset="cifar10", **SMALL),
        StageConfig(dataset="fruits360", source="previous", freeze="first:3", **SMALL),
        StageConfig(dataset="fruits360-3", source="previous", freeze="first:4", **SMALL),
    ])])
    results = experiment.run_experiment(exp, command="pytest")
    assert [r["status"] for r in results] == ["done"] * 3
    chain = runs.lineage(results[-1]["run_id"])
    assert [r["run_id"] for r in chain] == [r["run_id"] for r in results]
    assert [r["config"]["stage"]["dataset"] for r in chain] == ["cifar10", "fruits360", "fruits360-3"]
    for run in chain:
        assert METRIC_FIELDS <= set(run["metrics"]), METRIC_FIELDS - set(run["metrics"])
        assert run["has_model"] and len(runs.read_history(run["run_id"])) == 1
        assert 0.0 <= run["metrics"]["test_accuracy"] <= 1.0
    last = chain[-1]["metrics"]
    assert last["classes"] == ["apple", "noise", "pear"] and last["feature_cache"] is True
    assert set(last["frozen_layers"]) >= {"conv2d_1", "conv2d_4"}
    assert chain[1]["metrics"]["trainable_params"] < chain[0]["metrics"]["trainable_params"] + 103 * 513


def test_feature_cache_gives_the_same_weights_as_the_plain_path(real_data_root, results_dir):
    parent = _run(StageConfig(dataset="fruits360", **SMALL))
    stage = StageConfig(dataset="fruits360-3", source=f"run:{parent}", freeze="first:4", epochs=1, patience=0,
                        limit_per_class=40, batch_size=16, seed=3)
    cached = _run(stage, parent)
    plain = _run(StageConfig(**{**stage.to_dict(), "feature_cache": False}), parent)
    assert runs.get_run(cached)["metrics"]["feature_cache"] is True
    assert runs.get_run(plain)["metrics"]["feature_cache"] is False
    w_cached = runs.load_model(cached).get_weights()
    w_plain = runs.load_model(plain).get_weights()
    w_parent = runs.load_model(parent).get_weights()
    assert not np.allclose(w_cached[-2], w_parent[-2][:, :3] if w_parent[-2].shape[1] > 3 else w_parent[-2])
    for a, b in zip(w_cached, w_plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_cancel_mid_epoch_records_cancelled(real_data_root, results_dir):
    seen = []

    def cancel_on_first_batch(info):
        if info.get("phase") == "training" and not seen:
            seen.append(info["batch"])
            runs.request_cancel(info["run_id"])

    stage = StageConfig(dataset="fruits360-3", epochs=5, limit_per_class=200, batch_size=8, patience=0)
    run_id = _run(stage, on_progress=cancel_on_first_batch)
    run = runs.get_run(run_id)
    assert run["status"] == "cancelled" and not run["has_model"]
    assert run["progress"]["batch"] <= seen[0] + 2 < run["progress"]["batches"]
    assert runs.read_history(run_id) == []


def _cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_sigkill_mid_epoch_leaves_a_readable_store(real_data_root, results_dir, tmp_path):
    earlier = _run(StageConfig(dataset="fruits360-3", **SMALL))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"stages": [{"dataset": "fruits360-3", "epochs": 50, "limit_per_class": 200,
                                            "batch_size": 8, "patience": 0}]}))
    env = {**os.environ, "TRANSFERLAB_DATA_DIR": str(real_data_root), "TRANSFERLAB_RESULTS_DIR": str(results_dir)}
    proc = _cli(["train", "--config", str(cfg)], env)
    deadline = time.time() + 120
    victim = None
    while time.time() < deadline and victim is None:
        for row in runs.list_runs():
            prog = runs.get_run(row["run_id"])["progress"]
            if row["run_id"] != earlier and prog.get("phase") == "training":
                victim = row["run_id"]
        time.sleep(0.2)
    assert victim, proc.communicate(timeout=5)[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    rows = {r["run_id"]: r for r in runs.list_runs()}
    assert rows[victim]["status"] == "failed" and "killed" in rows[victim]["error"]
    assert rows[earlier]["status"] == "done" and runs.get_run(earlier)["has_model"]
    for path in Path(runs.run_dir(victim)).glob("*.json"):
        json.loads(path.read_text())  # every file complete, none torn
    assert not (runs.run_dir(victim) / "model.keras").exists()


def test_sigterm_is_a_clean_cancel(real_data_root, results_dir, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"stages": [{"dataset": "fruits360-3", "epochs": 50, "limit_per_class": 200,
                                            "batch_size": 8, "patience": 0}]}))
    env = {**os.environ, "TRANSFERLAB_DATA_DIR": str(real_data_root), "TRANSFERLAB_RESULTS_DIR": str(results_dir)}
    proc = _cli(["train", "--config", str(cfg), "--json"], env)
    deadline = time.time() + 120
    while time.time() < deadline and not any(
            runs.get_run(r["run_id"])["progress"].get("phase") == "training" for r in runs.list_runs()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 3, out
    [row] = runs.list_runs()
    assert row["status"] == "cancelled"


def test_mirrored_strategy_on_two_logical_cpus_trains(real_data_root, results_dir, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"stages": [{"dataset": "fruits360-3", "epochs": 1, "limit_per_class": 16,
                                            "batch_size": 16, "patience": 0}]}))
    env = {**os.environ, "TRANSFERLAB_DATA_DIR": str(real_data_root), "TRANSFERLAB_RESULTS_DIR": str(results_dir),
           "TRANSFERLAB_STRATEGY": "mirrored", "TRANSFERLAB_LOGICAL_CPUS": "2"}
    proc = _cli(["train", "--config", str(cfg), "--json"], env)
    out = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, out
    [row] = runs.list_runs()
    metrics = runs.get_run(row["run_id"])["metrics"]
    assert metrics["strategy"] == "MirroredStrategy" and metrics["replicas"] == 2
