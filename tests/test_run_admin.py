"""Run management: delete (asking first for parents), download as a zip, notes and tags; core and CLI."""

import io
import json
import zipfile

import pytest

from core import run_admin, runs
from core.config import TransferLabError
from core.run_records import RunRecord
from tests.faultkit import assert_one_line_error, recorded_run, run_main


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path))
    return tmp_path


def _family():
    parent = recorded_run("run-parent", "scratch", 10.0, 0.9)
    child = recorded_run("run-child", "transfer", 5.0, 0.95, parent=parent)
    return parent, child


def test_cli_delete_asks_first_for_a_parent_and_deletes_with_yes(capsys):
    parent, child = _family()
    refused = run_main(["runs", "delete", parent], capsys)
    assert_one_line_error(refused, parent, child, "--yes")
    assert runs.run_dir(parent).is_dir()
    done = run_main(["runs", "delete", parent, "--yes"], capsys)
    assert done.returncode == 0 and parent in done.stdout
    assert not runs.run_dir(parent).exists() and runs.run_dir(child).is_dir()


def test_deleting_parent_with_its_children_needs_no_confirmation(capsys):
    parent, child = _family()
    done = run_main(["runs", "delete", parent, child], capsys)
    assert done.returncode == 0, done.stderr
    assert not runs.run_dir(parent).exists() and not runs.run_dir(child).exists()


def test_delete_refuses_running_default_unknown_and_bad_ids(capsys):
    running = runs.create_run(RunRecord(stage={"dataset": "toy", "arch": "alexnet4"}))
    runs.set_status(running, "running")
    assert_one_line_error(run_main(["runs", "delete", running], capsys), "running", "cancel")
    assert runs.run_dir(running).is_dir()
    assert_one_line_error(run_main(["runs", "delete", "default", "--yes"], capsys), "default", "cannot be deleted")
    assert_one_line_error(run_main(["runs", "delete", "no-such-run"], capsys), "does not exist")
    assert_one_line_error(run_main(["runs", "delete", "../etc"], capsys), "Invalid run id")


def test_run_zip_holds_the_record_and_model_when_present():
    run_id = recorded_run("run-zip", "scratch", 10.0, 0.9)
    (runs.run_dir(run_id) / "history.csv").write_text("epoch,loss\n1,0.5\n")
    names = zipfile.ZipFile(io.BytesIO(run_admin.run_zip(run_id))).namelist()
    assert {f"{run_id}/{n}" for n in ("config.json", "metrics.json", "status.json", "history.csv")} <= set(names)
    assert f"{run_id}/model.keras" not in names
    (runs.run_dir(run_id) / "model.keras").write_bytes(b"model bytes")
    zf = zipfile.ZipFile(io.BytesIO(run_admin.run_zip(run_id)))
    assert zf.read(f"{run_id}/model.keras") == b"model bytes"


def test_cli_tag_adds_removes_and_notes_and_show_prints_them(capsys):
    run_id = recorded_run("run-tags", "scratch", 10.0, 0.9)
    out = run_main(["runs", "tag", run_id, "--add", "Baseline", "--add", "cpu", "--note", "first try"], capsys)
    assert json.loads(out.stdout) == {"notes": "first try", "tags": ["baseline", "cpu"]}
    out = run_main(["runs", "tag", run_id, "--remove", "cpu", "--add", "keep"], capsys)
    assert json.loads(out.stdout) == {"notes": "first try", "tags": ["baseline", "keep"]}
    shown = json.loads(run_main(["runs", "show", run_id], capsys).stdout)
    assert shown["notes"] == "first try" and shown["tags"] == ["baseline", "keep"]
    assert json.loads((runs.run_dir(run_id) / "notes.json").read_text())["tags"] == ["baseline", "keep"]
    assert_one_line_error(run_main(["runs", "tag", run_id, "--add", "two words"], capsys), "Invalid tag")
    assert_one_line_error(run_main(["runs", "tag", run_id, "--add", "x/../y"], capsys), "Invalid tag")


def test_malformed_notes_read_as_empty_and_tags_filter_rows():
    a = recorded_run("run-a", "scratch", 10.0, 0.9)
    b = recorded_run("run-b", "scratch", 10.0, 0.9)
    (runs.run_dir(b) / "notes.json").write_text("{not json")
    assert run_admin.read_notes(b) == {"notes": "", "tags": []}
    run_admin.write_notes(a, "", ["gpu", "keep"])
    rows = run_admin.with_tags(runs.list_runs())
    assert run_admin.tag_options(rows) == ["gpu", "keep"]
    assert [r["run_id"] for r in run_admin.filter_by_tags(rows, ["keep"])] == [a]
    assert len(run_admin.filter_by_tags(rows, [])) == 2
    with pytest.raises(TransferLabError, match="default"):
        run_admin.write_notes("default", "x", [])


def test_estimate_uses_the_limit_the_repeats_and_says_when_it_cannot():
    from core import estimate
    from core.pipeline import Experiment

    exp = Experiment.from_dict({"name": "e", "pipelines": [{"name": "p", "repeats": 2, "stages": [
        {"dataset": "big", "arch": "alexnet4", "input_size": 48, "epochs": 3, "limit_per_class": 10},
        {"dataset": "gone", "arch": "alexnet4", "input_size": 48, "epochs": 5, "source": "previous"},
        {"dataset": "big", "arch": "alexnet4", "input_size": 64, "epochs": 2, "source": "scratch"}]}]})

    def counts(name):
        if name == "gone":
            raise TransferLabError("not imported")
        return {"a": 50, "b": 4}

    rows = estimate.estimate(exp, counts, {("alexnet4", 48): 7.0})
    assert rows[0]["images_per_epoch"] == 14 and rows[0]["runs"] == 1 and rows[0]["seconds"] == 14 * 3 / 7.0
    assert rows[1]["seconds"] is None and rows[1]["note"] == "dataset gone is not available"
    assert rows[2]["runs"] == 2 and rows[2]["seconds"] is None
    assert rows[2]["note"] == "no estimate yet for alexnet4 at 64 px"


def test_measured_throughput_is_the_median_of_finished_runs_on_the_same_device_arch_and_size():
    from core import estimate

    for i, (speed, size, device) in enumerate(((10.0, 48, "CPU"), (30.0, 48, "CPU"), (20.0, 48, "CPU"),
                                               (99.0, 96, "CPU"), (5000.0, 48, "NVIDIA H100"))):
        run_id = recorded_run(f"m{i}", "scratch", 10.0, 0.9, device=device)
        path = runs.run_dir(run_id) / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "images_per_s": speed, "input_size": size}))
    assert estimate.measured_throughputs("CPU") == {("alexnet4", 48): 20.0, ("alexnet4", 96): 99.0}
    assert estimate.measured_throughputs("NVIDIA H100") == {("alexnet4", 48): 5000.0}
