"""Every run in MLflow (a real `mlflow server` on 127.0.0.1 with SQLite) and in TensorBoard (a real `tensorboard
--logdir results/runs`): logged live, exported idempotently, and never failed by a tracking server that is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from clusterkit import MlflowServer, TensorBoard, free_port, get_json, require, wait_for

from core import experiment, runs, tb, tracking
from core.config import REPO_ROOT
from core.pipeline import Experiment, PipelineConfig, StageConfig

require("mlflow", "tensorboard")

SMALL = dict(dataset="fruits360-3", epochs=2, limit_per_class=12, batch_size=32, patience=0)


@dataclass
class Trained:
    results: Path
    server: MlflowServer
    run_ids: list[str]  # scratch stage, transfer stage


@pytest.fixture(scope="module")
def trained(imported_data, tmp_path_factory) -> Trained:
    """One MLflow server for the module, and a two-stage pipeline trained with MLFLOW_TRACKING_URI set."""
    folder = tmp_path_factory.mktemp("tracking")
    server = MlflowServer(folder / "mlflow")
    try:
        with pytest.MonkeyPatch.context() as mp:
            for var, value in (("TRANSFERLAB_DATA_DIR", str(imported_data.root)), ("MLFLOW_TRACKING_URI", server.uri),
                               ("TRANSFERLAB_RESULTS_DIR", str(folder / "results")),
                               ("MLFLOW_EXPERIMENT_NAME", "live")):
                mp.setenv(var, value)
            exp = Experiment(name="tracked", pipelines=[PipelineConfig(name="chain", stages=[
                StageConfig(**SMALL), StageConfig(**{**SMALL, "source": "previous", "freeze": "first:4"})])])
            results = experiment.run_experiment(exp, command="pytest")
        assert [r["status"] for r in results] == ["done", "done"]
        yield Trained(folder / "results", server, [r["run_id"] for r in results])
    finally:
        server.stop()


@pytest.fixture
def in_results(trained, imported_data, monkeypatch) -> Trained:
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(trained.results))
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(imported_data.root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.server.uri)
    return trained


def _client(uri: str):
    from mlflow.tracking import MlflowClient  # imported once require() has found mlflow

    return MlflowClient(uri)


def _mlflow_runs(uri: str, experiment: str) -> dict[str, object]:
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    return {r.data.tags["transferlab_run_id"]: r for r in client.search_runs([found.experiment_id])}


def test_every_run_is_in_mlflow_with_params_metrics_tags_and_artifacts(in_results, real_data_root):
    scratch, transfer = in_results.run_ids
    logged = _mlflow_runs(in_results.server.uri, "live")
    assert set(logged) == {scratch, transfer}
    client = _client(in_results.server.uri)
    for run_id in (scratch, transfer):
        run, ours = logged[run_id], runs.get_run(run_id)
        assert run.info.status == "FINISHED" and run.info.run_name == run_id
        stage = ours["config"]["stage"]
        assert {k: run.data.params[k] for k in ("dataset", "epochs", "freeze", "source", "arch")} == {
            k: str(stage[k]) for k in ("dataset", "epochs", "freeze", "source", "arch")}
        assert run.data.metrics["test_accuracy"] == pytest.approx(ours["metrics"]["test_accuracy"])
        assert run.data.metrics["kappa"] == pytest.approx(ours["metrics"]["kappa"])
        history = runs.read_history(run_id)
        per_epoch = client.get_metric_history(run.info.run_id, "loss")
        assert [(m.step, m.value) for m in per_epoch] == [(int(r["epoch"]), pytest.approx(float(r["loss"])))
                                                          for r in history] and len(per_epoch) == 2
        tags = run.data.tags
        assert tags["preset"] == "tracked" and tags["pipeline"] == "chain" and tags["device"] == "CPU"
        assert tags["commit"] == ours["metrics"]["commit"] and tags["status"] == "done"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"history.csv", "confusion_matrix.json", "config.json", "metrics.json", "model"} <= artifacts
        assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.keras"]
    assert logged[scratch].data.tags["stage"] == "1 of 2" and logged[transfer].data.tags["stage"] == "2 of 2"
    assert logged[transfer].data.tags["parent_run"] == scratch  # the lineage, also as MLflow nesting
    assert logged[transfer].data.tags["mlflow.parentRunId"] == logged[scratch].info.run_id
    assert runs.get_run(transfer)["status"] == "done"


def test_tensorboard_shows_every_run_from_results_runs(in_results, real_data_root, tmp_path):
    for run_id in in_results.run_ids:
        assert list((tb.log_dir(run_id) / "train").glob("events.out.tfevents.*")), run_id
    board = TensorBoard(runs.runs_dir(), tmp_path)
    try:
        wanted = {f"{r}/{tb.LOG_DIR}/{split}" for r in in_results.run_ids for split in ("train", "validation")}
        tags: dict = {}

        def loaded() -> bool:
            tags.update(get_json(f"{board.url}/data/plugin/scalars/tags") or {})
            return wanted <= set(tags)

        wait_for("TensorBoard's scalars", loaded, 60)
        first = f"{in_results.run_ids[0]}/{tb.LOG_DIR}"
        assert {"epoch_loss", "epoch_accuracy"} <= set(tags[f"{first}/train"])
        series = get_json(f"{board.url}/data/plugin/scalars/scalars?run={first}/validation&tag=epoch_accuracy")
        history = runs.read_history(in_results.run_ids[0])
        assert [round(v, 5) for _, _, v in series] == [round(float(r["val_accuracy"]), 5) for r in history]
    finally:
        board.stop()


def test_export_logs_stored_runs_once(in_results, real_data_root):
    env = {**os.environ, "MLFLOW_EXPERIMENT_NAME": "exported"}
    outputs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "core", "runs", "export-mlflow", "--json"], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout)
    first, again = (json.loads(out) for out in outputs)
    assert sorted(r["run_id"] for r in first) == sorted(in_results.run_ids)
    assert {r["result"] for r in first} == {"logged"} and {r["result"] for r in again} == {"already there"}
    assert {r["mlflow_run_id"] for r in first} == {r["mlflow_run_id"] for r in again}
    logged = _mlflow_runs(in_results.server.uri, "exported")
    assert set(logged) == set(in_results.run_ids)
    assert logged[in_results.run_ids[1]].data.params["freeze"] == "first:4"
    one = subprocess.run([sys.executable, "-m", "core", "runs", "export-mlflow", in_results.run_ids[0]],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert one.returncode == 0 and "already there" in one.stdout, one.stdout + one.stderr
    assert len(_mlflow_runs(in_results.server.uri, "exported")) == 2


def test_an_mlflow_server_that_is_down_never_fails_or_loses_a_run(real_data_root, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    exp = Experiment(name="offline", pipelines=[PipelineConfig(stages=[StageConfig(**{**SMALL, "epochs": 1})])])
    t0 = time.time()
    [result] = experiment.run_experiment(exp)
    run = runs.get_run(result["run_id"])
    assert result["status"] == run["status"] == "done" and run["has_model"]
    assert "was not logged to MLflow" in capfd.readouterr().err
    record = runs.get_run(result["run_id"])["path"]
    assert "error" in json.loads((Path(record) / tracking.RECORD_FILE).read_text())
    assert time.time() - t0 < 120
