"""Issue 17: one malformed record file never takes the app down.

Runs whose files hold valid JSON of the wrong shape, wrong metric types, binary history or short labels, and
datasets whose dataset.json is malformed, are listed as failed / unreadable with the reason; every other run,
dataset, page and command keeps working.
"""

from __future__ import annotations

import json
import shutil

import pytest
from faultkit import good_jpeg, model_run, page, run_main, toy_folder, write_files

from core import datasets, predict, runs

BAD_RUNS: dict[str, tuple[str, object]] = {  # case -> (file, content); the run is otherwise a good finished one
    "metrics-list": ("metrics.json", [1, 2]),
    "metrics-string": ("metrics.json", "oops"),
    "status-list": ("status.json", [1, 2]),
    "status-string": ("status.json", "oops"),
    "stage-string": ("config.json", None),  # filled in below: the real config with "stage": "oops"
    "metric-types": ("metrics.json", {"test_accuracy": "high", "kappa": [1], "per_class": "x", "epochs_run": {},
                                      "classes": [1, 2], "calibration": 3}),
    "labels-ints": ("labels.json", [1, 2]),
    "config-garbage": ("config.json", b"\x00\xff garbage {"),
}
STILL_DONE: dict[str, tuple[str, object]] = {  # readable enough to list; the page or command says what is wrong
    "confusion-list": ("confusion.json", [1, 2]),
    "confusion-ragged": ("confusion.json", {"classes": ["blue", "red"], "matrix": [[1, 2], [3]]}),
    "history-binary": ("history.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary"),
    "labels-short": ("labels.json", ["blue"]),
}


def _write(run_id: str, name: str, content: object) -> None:
    path = runs.run_dir(run_id) / name
    if name == "config.json" and content is None:
        content = {**json.loads(path.read_text()), "stage": "oops"}
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())


@pytest.fixture
def bad_store(tmp_path, monkeypatch) -> dict[str, str]:
    """A results root with one good run, then one copy of it per malformed case (case -> run id)."""
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(tmp_path / "data"))
    good = model_run()
    ids = {"good": good}
    for i, (case, (name, content)) in enumerate({**BAD_RUNS, **STILL_DONE}.items()):
        run_id = f"29990101-0000{i:02d}-{case}"
        shutil.copytree(runs.run_dir(good), runs.run_dir(run_id))
        config = json.loads((runs.run_dir(run_id) / "config.json").read_text())
        (runs.run_dir(run_id) / "config.json").write_text(json.dumps({**config, "run_id": run_id}))
        _write(run_id, name, content)
        ids[case] = run_id
    return ids


def test_each_malformed_run_is_listed_as_failed_with_the_reason(bad_store):
    rows = {r["run_id"]: r for r in runs.list_runs()}
    assert set(rows) == set(bad_store.values()), "every run folder is listed, garbage config or not"
    for case in BAD_RUNS:
        row = rows[bad_store[case]]
        assert row["status"] == "failed" and "unreadable run record" in row["error"], (case, row)
    assert "metrics.json holds a JSON list" in rows[bad_store["metrics-list"]]["error"]
    assert "config.json's stage is a string" in rows[bad_store["stage-string"]]["error"]
    assert "config.json is not" in rows[bad_store["config-garbage"]]["error"]
    assert "labels.json is not a list of class names" in rows[bad_store["labels-ints"]]["error"]
    for case in ("good", *STILL_DONE):
        assert rows[bad_store[case]]["status"] == "done", case
    assert runs.read_history(bad_store["history-binary"]) == []
    assert runs.get_run(bad_store["config-garbage"])["status"] == "failed"  # not "does not exist"
    # status.json [1,2]: the store can still write a status over it
    runs.set_status(bad_store["status-list"], "failed", error="x")
    assert runs.get_run(bad_store["status-list"])["status_info"]["error"].startswith("unreadable") is False


def test_classify_and_latest_skip_bad_runs_with_clear_errors(bad_store, capsys, tmp_path):
    image = write_files(tmp_path / "img", {"a.jpg": good_jpeg()})["a.jpg"]
    # the newest runs are the malformed copies: latest is the newest one that is done and loads
    latest = predict.resolve_model("latest")
    assert latest in (bad_store["confusion-list"], bad_store["confusion-ragged"], bad_store["history-binary"],
                      bad_store["labels-short"]) or latest == bad_store["good"]
    out = run_main(["classify", image, "--model", bad_store["labels-short"]], capsys)
    assert out.returncode != 0 and "names 1 classes but its model has 2 outputs" in out.stderr, out
    assert "Traceback" not in out.stderr
    assert run_main(["classify", image, "--model", bad_store["good"]], capsys).returncode == 0
    assert run_main(["runs", "list"], capsys).returncode == 0
    for case in bad_store:
        shown = run_main(["runs", "show", bad_store[case]], capsys)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, (case, shown)


def test_pages_keep_working_with_malformed_runs(bad_store):
    for path in ("pages/home.py", "pages/train.py", "pages/classify.py"):
        at = page(path)
        assert not at.exception, (path, at.exception)
    at = page("pages/results.py")
    for case, run_id in bad_store.items():
        at.selectbox(key="detail_run").set_value(run_id).run()
        assert not at.exception, (case, at.exception)


# ---- datasets ----------------------------------------------------------------------------------------------

BAD_META = {
    "kind-only": {"kind": "local"},
    "counts-list": "counts",  # the real dataset.json with counts a list
    "not-object": [1, 2],
}


@pytest.fixture
def bad_datasets(data_dir, tmp_path) -> list[str]:
    datasets.import_dataset(toy_folder(tmp_path / "src", n_train=4, n_test=2))
    meta = json.loads((data_dir / "toy" / "dataset.json").read_text())
    for name, content in BAD_META.items():
        (data_dir / name).mkdir()
        if content == "counts":
            content = {**meta, "name": name, "counts": [1, 2]}
        (data_dir / name / "dataset.json").write_text(json.dumps(content))
    return list(BAD_META)


def test_malformed_dataset_json_is_listed_as_unreadable(bad_datasets, capsys, tmp_path, monkeypatch):
    listed = {d["name"]: d for d in datasets.list_datasets()}
    assert listed["toy"]["available"]
    for name in bad_datasets:
        assert listed[name]["kind"] == "unreadable" and not listed[name]["available"], listed[name]
        assert "unreadable" in listed[name]["description"]
        with pytest.raises(Exception, match="is unreadable") as info:
            datasets.describe(name)
        assert type(info.value).__name__ == "TransferLabError"
    assert "counts are not" in listed["counts-list"]["description"]
    assert run_main(["datasets", "list"], capsys).returncode == 0
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    out = run_main(["train", "--preset", "paper-b-scratch-vs-transfer", "--set", "dataset=kind-only"], capsys)
    assert out.returncode != 0 and "unreadable" in out.stderr and "Traceback" not in out.stderr, out
    for path in ("pages/home.py", "pages/datasets.py", "pages/train.py"):
        at = page(path)
        assert not at.exception, (path, at.exception)


def test_malformed_job_files_do_not_break_the_job_list_or_the_train_page(tmp_path, monkeypatch):
    from core import jobs

    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(tmp_path / "data"))
    for i, (status, progress) in enumerate((([1, 2], "oops"), ({"status": "running", "pid": "x"}, [3]))):
        folder = jobs.jobs_dir() / f"20200101-000000-00000000{i}-bad"
        folder.mkdir(parents=True)
        (folder / "job.json").write_text(json.dumps({"job_id": folder.name, "created_ns": i, "name": "bad"}))
        (folder / "status.json").write_text(json.dumps(status))
        (folder / "progress.json").write_text(json.dumps(progress))
    listed = jobs.list_jobs()
    assert [j["status"] for j in listed] == ["failed", "failed"] and all(j["progress"] == {} for j in listed)
    at = page("pages/train.py")
    assert not at.exception, at.exception
