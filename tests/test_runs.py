"""The run store: atomic files, honest statuses, tolerant reads."""

import json
import subprocess
import sys
import zipfile

import pytest

from core import runs
from core.config import TransferLabError
from core.run_records import RunRecord


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path))
    return tmp_path


def _new(parent=None, dataset="fruits360-3"):
    return runs.create_run(RunRecord(stage={"dataset": dataset, "arch": "alexnet4"}, parent_run=parent))


def test_create_list_and_lineage():
    a = _new(dataset="cifar10")
    b = _new(parent=a, dataset="fruits360")
    c = _new(parent=b)
    assert {r["run_id"] for r in runs.list_runs()} == {a, b, c}
    assert [r["run_id"] for r in runs.lineage(c)] == [a, b, c]
    assert runs.get_run(c)["status"] == "queued"


def test_history_appends_rows():
    run_id = _new()
    runs.append_history(run_id, {"epoch": 1, "loss": 0.5})
    runs.append_history(run_id, {"epoch": 2, "loss": 0.25, "val_loss": 0.3})
    rows = runs.read_history(run_id)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["val_loss"] == 0.3


def test_running_run_whose_process_is_gone_is_reported_failed():
    run_id = _new()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs.set_status(run_id, "running", pid=dead.pid)
    run = runs.get_run(run_id)
    assert run["status"] == "failed" and "killed" in run["status_info"]["error"]
    runs.set_status(run_id, "running", pid=None)
    runs.heartbeat(run_id, pid=__import__("os").getpid())
    assert runs.get_run(run_id)["status"] == "running"


def test_older_or_torn_folders_stay_readable(results_dir):
    old = results_dir / "runs" / "20200101-000000-old"
    old.mkdir(parents=True)
    (old / "config.json").write_text(json.dumps({"stage": {"dataset": "fruits360-3"}}))
    torn = results_dir / "runs" / "20200101-000001-torn"
    torn.mkdir()
    (torn / "config.json").write_text('{"stage": {"data')
    rows = {r["run_id"]: r for r in runs.list_runs()}
    assert rows["20200101-000000-old"]["status"] == "failed"  # no status.json: not done, not lost
    assert rows["20200101-000001-torn"]["status"] == "failed"  # listed with the reason, not hidden (issue 17)
    assert "config.json is not valid JSON" in rows["20200101-000001-torn"]["error"]


def test_cancel_queued_run_and_unknown_ids():
    run_id = _new()
    runs.request_cancel(run_id)
    assert runs.get_run(run_id)["status"] == "cancelled" and runs.cancel_requested(run_id)
    with pytest.raises(TransferLabError, match="already cancelled"):
        runs.request_cancel(run_id)
    with pytest.raises(TransferLabError, match="does not exist"):
        runs.get_run("no-such-run")
    for bad in ("../etc", "a/b", ".hidden", ""):
        with pytest.raises(TransferLabError, match="Invalid run id"):
            runs.get_run(bad)


def test_missing_or_corrupt_model_is_a_clear_error():
    run_id = _new()
    with pytest.raises(TransferLabError, match="no saved model"):
        runs.load_model(run_id)
    (runs.run_dir(run_id) / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(TransferLabError, match="cannot be loaded"):
        runs.load_model(run_id)


def _model_file(run_id):
    with zipfile.ZipFile(runs.run_dir(run_id) / "model.keras", "w") as zf:
        zf.writestr("config.json", "{}")


def test_latest_model_run_ignores_unfinished_and_unloadable():
    done = _new()
    runs.set_status(done, "done")
    _model_file(done)
    failed = _new()
    runs.set_status(failed, "failed")
    _model_file(failed)
    diverged = _new()
    runs.set_status(diverged, "done")
    runs.write_metrics(diverged, {"train_loss": float("nan"), "test_accuracy": 0.5})
    _model_file(diverged)
    not_a_model = _new()
    runs.set_status(not_a_model, "done")
    (runs.run_dir(not_a_model) / "model.keras").write_bytes(b"x")
    running = _new()
    assert runs.latest_model_run() == done
    assert runs.get_run(diverged)["status"] == "failed" and "diverged" in runs.get_run(diverged)["status_info"]["error"]
    assert running


def test_listing_commands_import_no_tensorflow_or_keras(tmp_path):
    """`runs list/show`, `datasets list/show`: plain file reads, no multi-second TensorFlow start-up."""
    import subprocess
    import sys

    from core.config import REPO_ROOT

    code = ("import contextlib, io, sys\nfrom core import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    codes = [cli.main(a) for a in (['runs', 'list'], ['runs', 'show', 'default'], ['datasets', 'list'])]\n"
            "print(codes, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    env = {**__import__("os").environ, "TRANSFERLAB_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "[0, 0, 0] False False", out.stderr


def test_the_folder_store_implements_the_run_store_protocol_and_rows_come_from_the_records():
    import dataclasses

    from core import store
    from core.pipeline import StageConfig
    from core.run_records import LIST_COLUMNS, TABLE_COLUMNS, Environment, RunRecord, RunSummary, StageMetrics

    assert isinstance(runs, store.RunStore)
    names = {"record": RunRecord, "stage": StageConfig, "metrics": StageMetrics}
    for f in dataclasses.fields(RunSummary):
        source = f.metadata["source"]
        if source != "run":
            known = {g.name for g in dataclasses.fields(names[source])} | (
                {g.name for g in dataclasses.fields(Environment)} if source == "metrics" else set())
            assert (f.metadata["key"] or f.name) in known, f.name
    assert TABLE_COLUMNS[:3] == ("run_id", "status", "created") and set(LIST_COLUMNS) <= set(TABLE_COLUMNS)
    _new()
    assert list(runs.list_runs()[0]) == list(TABLE_COLUMNS)


def test_run_and_job_file_names_are_written_only_in_the_store_module():
    import ast
    import re

    from core import store
    from core.config import REPO_ROOT

    names = {v for k, v in vars(store).items() if k.isupper() and isinstance(v, str) and "." in v}
    assert {"config.json", "status.json", "model.keras", "job.json", "log.txt", "history.csv"} <= names
    pattern = re.compile("|".join(re.escape(n) for n in names))
    found = []
    for path in [*REPO_ROOT.glob("core/*.py"), *REPO_ROOT.glob("pages/*.py"), REPO_ROOT / "app.py"]:
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef)
                and n.body and isinstance(n.body[0], ast.Expr)}
        found += [f"{path.name}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Constant)
                  and isinstance(n.value, str) and id(n) not in docs and pattern.search(n.value)
                  and path.name != "store.py"]
    assert found == []
