"""The Ray job backend against a real local Ray head (`ray start --head`, 2 CPUs, 127.0.0.1), through the same
background jobs the Train page launches: parallel runs with intact lineage, a killed worker, a cancelled job."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from clusterkit import RayHead, require, wait_for

from core import job_backends, jobs, runs, store, tb
from core.pipeline import Experiment, PipelineConfig, StageConfig

require("ray")

SMALL = dict(dataset="fruits360-3", epochs=1, limit_per_class=12, batch_size=32, patience=0)
LONG = dict(dataset="fruits360-3", epochs=50, limit_per_class=200, batch_size=8, patience=0)


@pytest.fixture(scope="module")
def ray_head():
    """The head, and its address and token in this process's environment (job processes inherit them)."""
    with pytest.MonkeyPatch.context() as mp:
        head = RayHead(num_cpus=2)
        for key, value in head.env.items():
            mp.setenv(key, value)
        try:
            yield head
        finally:
            head.stop()


@pytest.fixture
def ray_job(ray_head, real_data_root, tmp_path, monkeypatch):
    """Submit an experiment as a job on the Ray head; no job process is left after the test."""
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    backend = job_backends.make("ray", ray_head.address)
    yield lambda exp: jobs.submit(exp, backend=backend)
    for job in jobs.list_jobs():
        if job.get("pid") and store.pid_alive(job["pid"]):
            os.kill(job["pid"], signal.SIGKILL)


def _finished(job_id: str, timeout: float) -> dict:
    wait_for(f"job {job_id}", lambda: jobs.get_job(job_id)["status"] not in ("queued", "running"), timeout)
    return jobs.get_job(job_id)


def _runs_of(job: dict) -> dict[str, dict]:
    return {run_id: runs.get_run(run_id) for run_id in job["runs"]}


def _training(run_id: str) -> bool:
    run = runs.get_run(run_id)
    return run["status"] == "running" and run["progress"].get("phase") == "training"


def test_scratch_vs_transfer_with_two_repeats_runs_in_parallel_with_lineage(ray_job):
    exp = Experiment(name="svt", pipelines=[
        PipelineConfig(name="scratch", repeats=2, stages=[StageConfig(**SMALL)]),
        PipelineConfig(name="transfer", repeats=2, stages=[
            StageConfig(**{**SMALL, "dataset": "fruits360"}),
            StageConfig(**{**SMALL, "source": "previous", "freeze": "first:4"})])])
    job_id = ray_job(exp)
    job = _finished(job_id, 600)
    log = jobs.log_tail(job_id, 200)
    assert job["status"] == "done", log
    by_id = _runs_of(job)
    assert len(by_id) == 5 and {r["status"] for r in by_id.values()} == {"done"}
    stages = {(r["config"]["pipeline_name"], r["config"]["stage_index"]): [] for r in by_id.values()}
    for run_id, run in by_id.items():
        stages[(run["config"]["pipeline_name"], run["config"]["stage_index"])].append(run_id)
        assert run["has_model"] and run["metrics"]["test_accuracy"] is not None and runs.read_history(run_id)
        assert run["config"]["backend"] == {"name": "ray", "address": job["backend"]["address"]}
        assert run["config"]["hardware"]["cpu_cores"] and run["config"]["job_id"] == job_id
        assert list((tb.log_dir(run_id) / "train").glob("events.out.tfevents.*"))  # came back from the worker
    [first] = stages[("transfer", 0)]
    assert len(stages[("transfer", 1)]) == len(stages[("scratch", 0)]) == 2
    for run_id in stages[("transfer", 1)]:  # each repeat continues from the fruits360 stage's model
        chain = runs.lineage(run_id)
        assert [r["run_id"] for r in chain] == [first, run_id] and chain[0]["has_model"]
        assert by_id[run_id]["metrics"]["frozen_layers"]
    assert sorted(r["config"]["stage"]["seed"] for r in map(by_id.get, stages[("scratch", 0)])) == [0, 1]
    assert job["progress"].get("run_id") in by_id  # live progress reached the job's progress file
    at_once = int(log.split(" at once")[0].rsplit(" ", 1)[-1])
    assert at_once == 2, log  # 2 CPUs, one per run: the repeats and the pipelines ran side by side


def test_a_killed_worker_fails_its_run_and_every_other_run_finishes(ray_job):
    exp = Experiment(name="kill", pipelines=[PipelineConfig(name="victim", stages=[StageConfig(**LONG)]),
                                             PipelineConfig(name="bystander", repeats=2, stages=[StageConfig(**SMALL)])])
    job_id = ray_job(exp)
    wait_for("the victim's training", lambda: any(
        _training(r) and runs.get_run(r)["config"]["pipeline_name"] == "victim" for r in jobs.get_job(job_id)["runs"]),
             300)
    victim = next(r for r in jobs.get_job(job_id)["runs"] if runs.get_run(r)["config"]["pipeline_name"] == "victim")
    worker = runs.get_run(victim)["status_info"]["ray_worker_pid"]
    assert worker != jobs.get_job(job_id)["pid"]
    os.kill(worker, signal.SIGKILL)
    job = _finished(job_id, 300)
    by_id = _runs_of(job)
    assert job["status"] == "failed" and len(by_id) == 3, jobs.log_tail(job_id, 50)
    assert by_id[victim]["status"] == "failed" and "Ray worker" in by_id[victim]["status_info"]["error"]
    assert not by_id[victim]["has_model"]
    others = [r for run_id, r in by_id.items() if run_id != victim]
    assert [r["status"] for r in others] == ["done", "done"] and all(r["has_model"] for r in others)


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_train_page_runs_on_the_configured_cluster_live_and_cancel_stops_the_ray_tasks(ray_head, ray_job,
                                                                                        monkeypatch):
    from test_app import TINY, edit_stage, job_status, page, poll, texts

    monkeypatch.setenv(job_backends.RAY_ADDRESS_ENV, ray_head.address)
    at = page("pages/train.py")
    assert at.selectbox(key="train_backend").value == "ray"  # preselected by TRANSFERLAB_RAY_ADDRESS
    assert at.text_input(key="train_ray_address").value == ray_head.address
    at.text_input(key="train_ray_address").set_value("not an address").run()
    assert at.button(key="launch").disabled and "has spaces" in texts(at.error)
    at.text_input(key="train_ray_address").set_value(ray_head.address).run()
    edit_stage(at, "stages_custom", dataset="fruits360-3", repeats=2,
               **{**TINY, "epochs": 200, "limit_per_class": 60, "batch_size": 8})
    assert not at.error, texts(at.error)
    at.button(key="launch").click().run()
    assert "Launched job" in texts(at.success)

    def live(a) -> bool:  # bars and curves fed from the Ray workers, as for a local job
        bars = [str(getattr(p, "text", None) or p.value) for p in a.progress]
        return any(b.startswith("Epoch ") for b in bars) and len(a.get("plotly_chart")) >= 2

    poll(at, live, timeout_s=300)
    [job] = jobs.list_jobs()
    assert job["backend"] == {"name": "ray", "address": ray_head.address} and len(job["runs"]) == 2
    wait_for("both runs training", lambda: all(_training(r) for r in job["runs"]), 120)
    workers = [runs.get_run(r)["status_info"]["ray_worker_pid"] for r in job["runs"]]
    next(b for b in at.button if b.label == "Cancel this job").click().run()
    poll(at, lambda a: job_status(a) == "cancelled", timeout_s=120)
    assert {runs.get_run(r)["status"] for r in job["runs"]} == {"cancelled"}
    assert "at most 2 at once" in jobs.log_tail(job["job_id"], 10)
    before = [_cpu_seconds(pid) for pid in workers]
    time.sleep(3)
    after = [_cpu_seconds(pid) for pid in workers]
    for pid, a, b in zip(workers, before, after, strict=True):  # each worker is gone, or idle: its task stopped
        assert a is None or b is None or b - a < 0.5, (pid, a, b)


def test_an_unreachable_cluster_is_one_clear_message():
    from clusterkit import free_port

    from core import ray_backend
    from core.config import TransferLabError

    with pytest.raises(TransferLabError, match="Cannot reach the Ray cluster at 127.0.0.1:.*ray start --head"):
        ray_backend.connect(f"127.0.0.1:{free_port()}")
    for name, address, message in (("slurm", "x", "Unknown job backend"), ("ray", " ", "needs a cluster address"),
                                   ("ray", "a b:1", "has spaces")):
        with pytest.raises(TransferLabError, match=message):
            job_backends.make(name, address)
