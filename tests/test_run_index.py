"""The run index: list_runs() through SQLite gives the rows a full read of the folders gives, and follows the
folders however they change."""

import json
import os

import pytest

from core import run_index, runs, store
from core.run_records import RunRecord
from tests.faultkit import recorded_run


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path))
    return tmp_path


def _unindexed_rows() -> list[dict]:
    built = [runs.summary_row(runs.get_run(p.name)) for p in runs.runs_dir().iterdir() if p.is_dir()]
    return sorted(built, key=lambda r: r["created"] or "", reverse=True)


def test_rows_equal_a_full_read_and_are_served_from_the_index():
    for i in range(5):
        recorded_run(f"r{i}", "scratch" if i % 2 else "transfer", 10.0 + i, 0.5 + i / 10)
    (runs.runs_dir() / "r3" / "metrics.json").write_text("{not json")
    first = runs.list_runs()
    assert first == _unindexed_rows()
    assert next(r for r in first if r["run_id"] == "r3")["status"] == "failed"
    assert "unreadable run record" in next(r for r in first if r["run_id"] == "r3")["error"]
    version = run_index.sync()
    assert runs.list_runs() == first and run_index.sync() == version  # nothing changed: no row rebuilt


def test_a_folder_changed_behind_the_index_shows_up(results_dir):
    recorded_run("a", "scratch", 10.0, 0.5)
    recorded_run("b", "scratch", 10.0, 0.6)
    assert {r["run_id"]: r["test_accuracy"] for r in runs.list_runs()} == {"a": 0.5, "b": 0.6}
    metrics = runs.runs_dir() / "a" / "metrics.json"
    data = json.loads(metrics.read_text())
    metrics.write_text(json.dumps({**data, "test_accuracy": 0.75}))  # in place: same inode, new mtime/size
    os.utime(metrics, ns=(metrics.stat().st_atime_ns, metrics.stat().st_mtime_ns + 10**9))
    recorded_run("c", "transfer", 5.0, 0.9)
    (runs.runs_dir() / "b" / "status.json").unlink()
    rows = {r["run_id"]: r for r in runs.list_runs()}
    assert rows["a"]["test_accuracy"] == 0.75 and "c" in rows
    assert rows["b"]["status"] == "failed" and "no status.json" in rows["b"]["error"]
    runs.delete_run("c")
    assert {r["run_id"] for r in runs.list_runs()} == {"a", "b"}


def test_writes_through_the_store_update_the_index_and_its_version():
    run_id = runs.create_run(RunRecord(stage={"dataset": "toy", "arch": "alexnet4"}))
    version = run_index.sync()
    runs.set_status(run_id, "failed", error="boom")
    with run_index._open() as con:  # the write itself stored the row: no folder needs rebuilding
        stored = json.loads(con.execute("SELECT row FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])
    assert stored["status"] == "failed" and stored["error"] == "boom"
    assert run_index.sync() != version


def test_a_missing_or_corrupt_index_is_rebuilt(results_dir):
    recorded_run("a", "scratch", 10.0, 0.5)
    expected = runs.list_runs()
    version = run_index.sync()
    run_index.index_path().unlink()
    assert runs.list_runs() == expected and run_index.sync() != version  # a new file: a new version
    run_index.index_path().write_bytes(b"this is not a database" * 100)
    assert runs.list_runs() == expected


def test_a_running_row_is_read_live(monkeypatch):
    run_id = runs.create_run(RunRecord(stage={"dataset": "toy", "arch": "alexnet4"}))
    runs.set_status(run_id, "running", pid=os.getpid())
    assert runs.list_runs()[0]["status"] == "running"
    monkeypatch.setattr(store, "pid_alive", lambda pid: False)  # the training process died; no file changed
    row = runs.list_runs()[0]
    assert row["status"] == "failed" and "ended without finishing" in row["error"]


def test_an_unwritable_index_falls_back_to_the_folders(monkeypatch):
    recorded_run("a", "scratch", 10.0, 0.5)
    monkeypatch.setattr(run_index, "index_path", lambda: runs.runs_dir() / "no-such-dir" / "x" / "index.sqlite")
    assert [r["run_id"] for r in runs.list_runs()] == ["a"]


def test_a_recent_check_is_reused_but_writes_through_the_store_show_at_once(monkeypatch):
    recorded_run("a", "scratch", 10.0, 0.5)
    version = run_index.sync(max_age_s=60)
    recorded_run("b", "scratch", 10.0, 0.6)  # behind the index's back, within max_age_s: not looked for yet
    assert run_index.sync(max_age_s=60) == version
    run_id = runs.create_run(RunRecord(stage={"dataset": "toy", "arch": "alexnet4"}))  # through the store
    assert run_index.sync(max_age_s=60) != version and run_id in {r["run_id"] for r in run_index.load()}
    assert {"a", "b", run_id} == {r["run_id"] for r in runs.list_runs()}  # list_runs always checks
