"""Issue 6, faults: the run store and the job queue survive SIGKILL, SIGTERM, the app server going away, a full
disk, two jobs at once and folders written by an older version. Every earlier run stays readable, the
interrupted one is marked honestly, and `latest` never points at an unfinished or half-written model.

Jobs are real detached `python -m core jobs run` processes training a real alexnet4 on a small real import.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import TOY_SIZE, model_run, page, toy_folder

from core import datasets, jobs, predict, runs
from core import store as store_paths
from core.config import REPO_ROOT, TransferLabError
from core.pipeline import Experiment

STAGE = {"dataset": "toy", "arch": "alexnet4", "input_size": TOY_SIZE, "patience": 0}
LONG = {**STAGE, "epochs": 500, "batch_size": 2}  # minutes of training: it is stopped long before the end
SHORT = {**STAGE, "epochs": 1, "batch_size": 8}


def experiment(stage: dict, name: str) -> Experiment:
    return Experiment.from_dict({"name": name, "stages": [stage]})


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLAB_DATA_DIR", str(root))
        datasets.import_dataset(toy_folder(tmp_path_factory.mktemp("faults-src")))
        for split in ("train", "val", "test"):  # decode once: the decoded cache is written here, not in a job
            datasets.load_split_arrays("toy", split, TOY_SIZE)
    return root


@pytest.fixture
def store(toy_data, tmp_path, monkeypatch) -> Path:
    """The toy data root and a fresh results root (jobs inherit both through the environment)."""
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(toy_data))
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    yield tmp_path / "results"
    for job in jobs.list_jobs():  # never leave a training process behind
        if job["status"] in ("queued", "running") and job.get("pid"):
            try:
                os.kill(int(job["pid"]), signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_for(what: str, check, timeout: float = 180, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def training_progress(job_id: str) -> dict | None:
    """The job's current run's progress once it is inside an epoch (past batch 1), else None."""
    job = jobs.get_job(job_id)
    if job["status"] in ("failed", "done", "cancelled"):
        raise AssertionError(f"job ended early: {job}\n{jobs.log_tail(job_id)}")
    prog = job.get("progress") or {}
    return prog if prog.get("phase") == "training" and prog.get("batch", 0) >= 2 else None


def gone(pid: int) -> bool:
    return not store_paths.pid_alive(pid)


def assert_store_readable(run_id: str) -> None:
    """Every file of the run parses: nothing torn."""
    folder = runs.run_dir(run_id)
    for path in folder.glob("*.json"):
        json.loads(path.read_text())
    assert not list(folder.glob(".*.tmp*")), "no temp file left behind"


# ---- SIGKILL / SIGTERM ---------------------------------------------------------------------------------------


def test_sigkill_of_a_job_mid_epoch_keeps_the_store_and_the_queue(store):
    earlier = model_run()
    job_id = jobs.submit(experiment(LONG, "killed"))
    prog = wait_for("the job to train", lambda: training_progress(job_id))
    victim, pid = prog["run_id"], jobs.get_job(job_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for("the job process to die", lambda: gone(pid), timeout=30)

    job, run = jobs.get_job(job_id), runs.get_run(victim)
    assert job["status"] == "failed" and "killed" in job["error"]
    assert run["status"] == "failed" and "killed" in run["status_info"]["error"]
    assert not run["has_model"] and not (runs.run_dir(victim) / "metrics.json").exists()
    assert_store_readable(victim)
    assert runs.get_run(earlier)["status"] == "done" and runs.get_run(earlier)["has_model"]
    assert predict.resolve_model("latest") == earlier
    assert {r["run_id"] for r in runs.list_runs()} == {earlier, victim}

    after = jobs.submit(experiment(SHORT, "after-the-kill"))  # the queue is not blocked by the dead job
    wait_for("the next job", lambda: jobs.get_job(after)["status"] not in ("queued", "running"), timeout=240)
    done = jobs.get_job(after)
    assert done["status"] == "done", jobs.log_tail(after)
    assert predict.resolve_model("latest") == done["runs"][0]


def test_sigterm_of_a_job_is_a_clean_cancel(store, monkeypatch):
    job_id = jobs.submit(experiment(LONG, "terminated"))
    prog = wait_for("the job to train", lambda: training_progress(job_id))
    pid = jobs.get_job(job_id)["pid"]
    os.kill(pid, signal.SIGTERM)
    wait_for("the job process to stop", lambda: gone(pid), timeout=60)
    job, run = jobs.get_job(job_id), runs.get_run(prog["run_id"])
    assert job["status"] == "cancelled", job
    assert run["status"] == "cancelled" and run["status_info"]["error"] == "cancelled by the user"
    assert not run["has_model"]
    monkeypatch.setattr(store_paths, "SHIPPED_MODEL_DIR", store / "no-shipped-model")  # nor the repository's model
    with pytest.raises(TransferLabError, match="No model yet"):
        predict.resolve_model("latest")  # nothing finished: no half-trained model is offered
    assert_store_readable(prog["run_id"])
    assert f"run {prog['run_id']}: cancelled" in jobs.log_tail(job_id)
    for row in runs.read_history(prog["run_id"]):  # only whole epochs were recorded
        assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"} <= set(row)


# ---- the app server goes away ---------------------------------------------------------------------------------


SUBMITTER = """
import sys, time
from core import jobs
from core.pipeline import Experiment
print(jobs.submit(Experiment.from_dict({"name": "outlives", "stages": [%r]})), flush=True)
time.sleep(600)
"""


def test_a_job_outlives_the_server_that_launched_it(store):
    """The app server's process (here a stand-in that calls jobs.submit, as the Train page does) is killed with
    its whole process group; the job goes on, and a fresh Train page shows it live again."""
    server = subprocess.Popen([sys.executable, "-c", SUBMITTER % LONG], cwd=REPO_ROOT, env=dict(os.environ),
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    job_id = server.stdout.readline().strip()
    before = wait_for("the job to train", lambda: training_progress(job_id))
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)

    def moved_on():
        now = jobs.get_job(job_id).get("progress") or {}
        step = (now.get("epoch", 0), now.get("batch", 0))
        return step if step > (before["epoch"], before["batch"] + 2) else None

    wait_for("training to go on after the server died", moved_on, timeout=60)
    job = jobs.get_job(job_id)
    assert job["status"] == "running" and not gone(job["pid"])

    at = page("pages/train.py")  # a restarted server: a fresh session, no state
    assert f"Job `{job_id}` (outlives) · **running**" in [str(m.value) for m in at.markdown]
    bars = [f"{getattr(p, 'text', '')} {p.value}" for p in at.get("progress")]
    assert any("Epoch" in b for b in bars), ("live progress bars", bars)

    jobs.cancel_job(job_id)
    wait_for("the cancel", lambda: jobs.get_job(job_id)["status"] == "cancelled", timeout=60)
    assert runs.get_run(job["runs"][0])["status"] == "cancelled"


# ---- a full disk ---------------------------------------------------------------------------------------------


def test_disk_full_while_saving_the_model_fails_the_run_cleanly(store, tmp_path):
    """A real write failure: the training process may not write files over 1 MB (RLIMIT_FSIZE, SIGXFSZ ignored,
    so write() fails with EFBIG). Every record file is far smaller; alexnet4's model.keras is ~1.8 MB."""
    earlier = model_run()
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"stages": [SHORT]}))
    limit = 1_000_000

    def small_files_only():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "core", "train", "--config", str(cfg)], cwd=REPO_ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=300,
                          preexec_fn=small_files_only)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc
    [victim] = [r["run_id"] for r in runs.list_runs() if r["run_id"] != earlier]
    assert f"{victim} failed" in proc.stdout
    run = runs.get_run(victim)
    assert run["status"] == "failed", run["status_info"]
    assert run["status_info"]["error"] == f"Could not save the model of run {victim}: File too large.", run
    assert not run["has_model"] and list(runs.run_dir(victim).glob("*.keras")) == []
    assert not (runs.run_dir(victim) / "traceback.json").exists(), "a clear error, not a crash"
    assert_store_readable(victim)
    assert len(runs.read_history(victim)) == 1, "the epoch itself was recorded"
    assert predict.resolve_model("latest") == earlier


# ---- two jobs at the same moment ------------------------------------------------------------------------------


def test_two_jobs_launched_at_the_same_moment_run_one_at_a_time_in_order(store):
    import threading

    barrier, ids = threading.Barrier(2), {}

    def launch(name):
        barrier.wait()
        ids[name] = jobs.submit(experiment(SHORT, name))

    threads = [threading.Thread(target=launch, args=(n,)) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for("both jobs", lambda: all(jobs.get_job(i)["status"] not in ("queued", "running") for i in ids.values()),
             timeout=300, every=1)
    a, b = sorted((jobs.get_job(i) for i in ids.values()), key=lambda j: j["created_ns"])
    assert a["status"] == b["status"] == "done", (jobs.log_tail(a["job_id"]), jobs.log_tail(b["job_id"]))
    assert a["finished"] <= b["started"], "one at a time, the older one first"
    run_a, run_b = (runs.get_run(j["runs"][0])["status_info"] for j in (a, b))
    assert run_a["finished"] <= run_b["started"]
    assert predict.resolve_model("latest") == b["runs"][0]


# ---- folders from an older version ----------------------------------------------------------------------------


def _old_run(name: str, created: str, files: dict[str, object], model: str | None = None) -> str:
    folder = runs.runs_dir() / name
    folder.mkdir(parents=True)
    for fname, content in {"config.json": {"created": created, **files.pop("config.json", {})}, **files}.items():
        (folder / fname).write_text(content if isinstance(content, str) else json.dumps(content))
    if model == "whole":
        from core import models

        models.build_model("alexnet4", 2, TOY_SIZE, seed=0).save(folder / "model.keras")
    elif model == "half":  # killed while saving: the temp file is cut short, model.keras never appeared
        (folder / ".model.4242.tmp.keras").write_bytes(b"PK\x03\x04 cut short")
    return name


def test_a_results_folder_from_an_older_version_stays_readable(store, monkeypatch):
    # only this folder's runs: the repository's shipped model (newer than these) would otherwise be `latest`
    monkeypatch.setattr(store_paths, "SHIPPED_MODEL_DIR", store / "no-shipped-model")
    stage = {**SHORT}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    labels = {"labels.json": ["blue", "red"]}
    old = {
        "complete": _old_run("20200101-000001-complete", "2020-01-01T00:00:01", {
            "config.json": {"stage": stage}, "status.json": {"status": "done"}, "metrics.json": {"test_accuracy": 0.9},
            **labels}, model="whole"),
        "no-status": _old_run("20200101-000002-no-status", "2020-01-01T00:00:02", {
            "config.json": {"stage": stage}, "metrics.json": {"test_accuracy": 0.8}, **labels}, model="whole"),
        "no-metrics": _old_run("20200101-000003-no-metrics", "2020-01-01T00:00:03", {
            "config.json": {"stage": stage}, "status.json": {"status": "done"}, **labels}, model="whole"),
        "no-stage": _old_run("20200101-000004-no-stage", "2020-01-01T00:00:04", {
            "config.json": {"dataset": "toy", "arch": "alexnet4"}, "status.json": {"status": "done"}}),
        "never-finished": _old_run("20200101-000005-never-finished", "2020-01-01T00:00:05", {
            "config.json": {"stage": stage}, **labels}),
        "killed-while-saving": _old_run("20200101-000006-killed-while-saving", "2020-01-01T00:00:06", {
            "config.json": {"stage": stage}, "status.json": {"status": "running", "pid": dead.pid}, **labels},
            model="half"),
        "killed-after-saving": _old_run("20200101-000007-killed-after-saving", "2020-01-01T00:00:07", {
            "config.json": {"stage": stage}, "status.json": {"status": "running", "pid": dead.pid}, **labels},
            model="whole"),
    }
    old_job = jobs.jobs_dir() / "20200101-000000-000000000-old"  # an old job folder: no status.json
    old_job.mkdir(parents=True)
    (old_job / "job.json").write_text(json.dumps({"job_id": old_job.name, "created_ns": 1, "name": "old"}))
    torn_job = jobs.jobs_dir() / "20200101-000000-000000001-torn"
    torn_job.mkdir()
    (torn_job / "job.json").write_text(json.dumps({"job_id": torn_job.name, "created_ns": 2, "name": "torn"}))
    (torn_job / "status.json").write_text('{"status": "runn')
    ghost = jobs.jobs_dir() / "20200101-000000-000000002-ghost"  # queued, but its launcher died before starting it
    ghost.mkdir()
    (ghost / "job.json").write_text(json.dumps({"job_id": ghost.name, "created_ns": 3, "name": "ghost"}))
    (ghost / "status.json").write_text(json.dumps({"status": "queued"}))

    rows = {r["run_id"]: r for r in runs.list_runs()}
    assert set(rows) == set(old.values()), "every folder is listed"
    status = {case: rows[run_id]["status"] for case, run_id in old.items()}
    assert status == {"complete": "done", "no-status": "done", "no-metrics": "done", "no-stage": "done",
                      "never-finished": "failed", "killed-while-saving": "failed", "killed-after-saving": "failed"}
    assert "interrupted" in rows[old["never-finished"]]["error"]
    assert "killed" in rows[old["killed-while-saving"]]["error"] and not rows[old["killed-while-saving"]]["has_model"]
    assert "killed" in rows[old["killed-after-saving"]]["error"]
    assert rows[old["no-stage"]]["dataset"] is None and runs.get_run(old["no-metrics"])["metrics"] == {}
    # the newest run with a whole model was killed before it finished: latest is the newest *finished* one
    assert predict.resolve_model("latest") == old["no-metrics"]
    assert predict.load_classifier("latest").labels == ["blue", "red"]
    assert [r["run_id"] for r in runs.lineage(old["complete"])] == [old["complete"]]

    listed = {j["job_id"]: j for j in jobs.list_jobs()}
    assert listed[old_job.name]["status"] == listed[torn_job.name]["status"] == "failed"
    assert "no readable status.json" in listed[old_job.name]["error"]
    new = jobs.submit(experiment(SHORT, "new"), launch=False)  # the queue still works around the old folders,
    with jobs._queue_lock():  # and an older ghost without a process does not hold it up
        assert jobs._my_turn(new)
    jobs.cancel_job(new)

    for path in ("pages/home.py", "pages/results.py", "pages/train.py", "pages/classify.py"):
        at = page(path)
        assert not at.exception and not at.error, (path, [e.value for e in at.error])
