"""The Ray job backend: each run of an experiment is a Ray task (core/ray_worker.py) on a cluster.

This process is the driver: it creates every run record, keeps the results root (the only writer), mirrors
progress and history live from the workers, and stores each run's folder when its task returns it. The repeats
of a last stage and independent pipelines run in parallel; a stage starts when the stage it continues is done
(its task result, the packed run folder with the model, is the next task's argument); a failed stage ends its
pipeline, as on the local backend. Cancelling a run or the job cancels the Ray tasks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from core import experiment, job_backends, ray_worker, runs, store, tracking
from core.config import TransferLabError, data_root
from core.pipeline import Experiment
from core.validation import check_experiment

CPUS_ENV = "TRANSFERLAB_RAY_CPUS_PER_RUN"  # CPUs a run's task asks for (default 1)
DATA_ENV = "TRANSFERLAB_RAY_DATA_DIR"  # the data root on the Ray nodes (default: this machine's)
POLL_S = 0.3
CANCEL_GRACE_S = 10.0  # a cancelled task gets this long to stop at a batch boundary before its worker is killed
DRIVER_FILES = (store.STATUS,)  # written here only, through runs.set_status


@dataclasses.dataclass
class _Task:
    run_id: str
    pipe: int
    stage: int
    ref: Any
    started: float | None = None  # when the worker began it (its clock)


def connect(address: str) -> Any:
    """ray.init for this job: the `core` package travels to the workers (py_modules), no shared files needed."""
    import ray

    import core

    _check_reachable(address)
    cpus = _cpus_per_run()
    env = {"TRANSFERLAB_DATA_DIR": os.environ.get(DATA_ENV) or str(data_root()), "TF_CPP_MIN_LOG_LEVEL": "2",
           "TF_NUM_INTRAOP_THREADS": str(cpus), "OMP_NUM_THREADS": str(cpus)}
    env.update({k: os.environ[k] for k in ("KERAS_BACKEND",) if k in os.environ})
    if address == "local":  # a private Ray for this job: on the loopback address, never on the network
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    elif "RAY_AUTH_MODE" not in os.environ and _ray_token_available():
        os.environ["RAY_AUTH_MODE"] = "token"  # as `ray start` does: a head finding this token requires it
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"py_modules": [os.path.dirname(core.__file__)], "env_vars": env},
                 namespace="transferlab")
    except Exception as exc:  # noqa: BLE001 - Ray raises several types for an unreachable cluster
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TransferLabError(f"Cannot connect to the Ray cluster at {address}: {first[:300]} (a cluster with "
                               "token authentication needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or "
                               "~/.ray/auth_token).") from None
    return ray


def _ray_token_available() -> bool:
    """Ray's token sources: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(path)


def _check_reachable(address: str) -> None:
    """A host:port (or ray://host:port) that does not answer is one message in seconds: ray.init itself keeps
    retrying for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # auto, local: Ray finds (or starts) the cluster itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise TransferLabError(f"Cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start one "
                               f"(ray start --head) or correct the address ({job_backends.RAY_ADDRESS_ENV}).") from None


def _cpus_per_run() -> float:
    try:
        cpus = float(os.environ.get(CPUS_ENV, "1"))
    except ValueError:
        cpus = -1
    if not cpus > 0:
        raise TransferLabError(f"{CPUS_ENV} must be a number of CPUs above 0, not {os.environ.get(CPUS_ENV)!r}.")
    return cpus


def run_experiment(exp: Experiment, address: str, command: str = "", job_id: str | None = None,
                   on_progress: Callable[[dict[str, Any]], None] | None = None,
                   on_run: Callable[[str, str], None] | None = None) -> list[dict[str, str]]:
    """Run every pipeline on the Ray cluster at `address`; the same result as experiment.run_experiment."""
    check_experiment(exp)
    ray = connect(address)
    try:
        return _Driver(ray, exp, address, command, job_id, on_progress, on_run).run()
    finally:
        ray.shutdown()


class _Driver:
    def __init__(self, ray: Any, exp: Experiment, address: str, command: str, job_id: str | None,
                 on_progress: Callable[[dict[str, Any]], None] | None, on_run: Callable[[str, str], None] | None):
        self.ray, self.exp, self.address, self.command, self.job_id = ray, exp, address, command, job_id
        self.on_progress, self.on_run = on_progress, on_run
        self.mailbox = ray.remote(num_cpus=0)(ray_worker.Mailbox).remote()
        self.remote = ray.remote(max_retries=0)(ray_worker.train)
        self.has_gpus = ray.cluster_resources().get("GPU", 0) >= 1
        self.pending: dict[Any, _Task] = {}
        self.by_run: dict[str, _Task] = {}
        self.stage_runs: list[list[tuple[str, Any]]] = [[] for _ in exp.pipelines]  # (run id, task ref) per stage
        self.pipeline_ids = [f"{exp.name}-{p.name}-{secrets.token_hex(3)}" for p in exp.pipelines]
        self.results: list[dict[str, str]] = []
        self.steps = sum(len(p.stages) - 1 + p.repeats for p in exp.pipelines)
        self.submitted = self.running = 0
        self.spans: list[tuple[float, float]] = []  # (start, end) of every run that started: how many at once
        self.cancelling = False

    # ---- scheduling ----

    def run(self) -> list[dict[str, str]]:
        from core import training

        try:
            for p in range(len(self.exp.pipelines)):
                self.submit(p, 0)
            while self.pending:
                ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=POLL_S)
                self.drain()
                if training.CANCEL_EVENT.is_set() or any(runs.cancel_requested(t.run_id)
                                                         for t in self.pending.values()):
                    self.cancel_all()
                    break
                for ref in ready:
                    if ref in self.pending:  # a cancelled run may have ended the others already
                        self.finish(ref)
        except BaseException as exc:  # the driver itself failed: no run it started is left queued or running
            for ref, task in self.pending.items():
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)
                    runs.set_status(task.run_id, "failed", error=f"the job's Ray driver stopped ({type(exc).__name__})")
            raise
        print(f"ray: {len(self.results)} run(s) on {self.address}, at most {self.most_at_once()} at once", flush=True)
        return self.results

    def most_at_once(self) -> int:
        edges = sorted([(t0, 1) for t0, _ in self.spans] + [(t1, -1) for _, t1 in self.spans])
        level = peak = 0
        for _, step in edges:
            level += step
            peak = max(peak, level)
        return peak

    def submit(self, p: int, s: int) -> None:
        """Create the runs of stage `s` of pipeline `p` (its repeats when it is the last) and start their tasks."""
        pipe = self.exp.pipelines[p]
        stage = pipe.stages[s]
        repeats = pipe.repeats if s == len(pipe.stages) - 1 else 1
        parent_run, parent = self._parent(p, stage.source)
        for rep in range(repeats):
            st = dataclasses.replace(stage, seed=stage.seed + rep)
            record = dataclasses.replace(
                experiment.run_record(self.exp, pipe, st, s, rep, repeats, self.pipeline_ids[p], parent_run,
                                      self.command, self.job_id, None),
                backend={"name": "ray", "address": self.address})
            run_id = runs.create_run(record)
            self.submitted += 1
            info = {"pipeline": pipe.name, "stage": s + 1, "stages": len(pipe.stages), "repeat": rep + 1,
                    "repeats": repeats, "step": self.submitted, "steps": self.steps}
            config = runs.get_run(run_id)["config"]
            gpus = (1 if self.has_gpus else 0) if st.gpus is None else st.gpus
            ref = self.remote.options(num_cpus=_cpus_per_run(), num_gpus=gpus, name=f"transferlab:{run_id}").remote(
                run_id, config, st.to_dict(), parent_run, parent, info, self.mailbox)
            task = _Task(run_id, p, s, ref)
            self.pending[ref] = self.by_run[run_id] = task
            if self.on_run:
                self.on_run(run_id, "running")

    def _parent(self, p: int, source: str) -> tuple[str | None, Any]:
        """The run a stage continues from and its packed folder: a task result (an ObjectRef, so Ray hands it
        from worker to worker) or, for a stored run of this results root, its folder put into the object store."""
        done = self.stage_runs[p]
        if source == "previous":
            return done[-1]
        if source.startswith("stage:"):
            return done[int(source[6:])]
        if source.startswith("run:"):
            run_id = source[4:]
            return run_id, self.ray.put({"bundle": ray_worker.pack(runs.model_dir(run_id))})
        return None, None

    # ---- what comes back ----

    def drain(self) -> None:
        """Mirror the workers' messages into the run store: status, history rows, progress."""
        try:
            messages = self.ray.get(self.mailbox.take.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - progress is best effort; results come with the task
            return
        for msg in messages:
            task = self.by_run.get(msg.get("run_id", ""))
            if task is None or task.ref not in self.pending:
                continue
            if msg["event"] == "running" and task.started is None:
                task.started = float(msg.get("t0") or time.time())
                self.running += 1
                config = runs.get_run(task.run_id)["config"]
                runs.write_config(task.run_id, {**config, "hardware": msg.get("hardware")})
                runs.set_status(task.run_id, "running", pid=os.getpid(), ray_worker_pid=msg.get("pid"),
                                ray_node=msg.get("node"))
            elif msg["event"] == "progress":
                for row in msg.get("history") or []:
                    runs.append_history(task.run_id, row)
                info = {**msg["info"], "running": self.running}
                runs.write_progress(task.run_id, info)
                runs.heartbeat(task.run_id)
                if self.on_progress:
                    self.on_progress(info)

    def finish(self, ref: Any) -> None:
        """Store a finished task's run folder (or why it failed), then start what continues from it."""
        task = self.pending.pop(ref)
        status, error, ended = self._outcome(ref, task.run_id)
        if task.started is not None:
            self.running -= 1
            self.spans.append((task.started, ended))
        runs.set_status(task.run_id, status, **({"error": error} if error else {}))
        tracking.run_finished(task.run_id)
        self.results.append({"run_id": task.run_id, "status": status})
        if self.on_run:
            self.on_run(task.run_id, status)
        if status == "cancelled" and not self.cancelling:
            self.cancel_all()  # as on the local backend: a cancelled run ends the job
        pipe = self.exp.pipelines[task.pipe]
        if status == "done" and not self.cancelling and task.stage < len(pipe.stages) - 1:
            self.stage_runs[task.pipe].append((task.run_id, ref))
            self.submit(task.pipe, task.stage + 1)

    def _outcome(self, ref: Any, run_id: str) -> tuple[str, str | None, float]:
        """(status, error, when it ended); a finished task's run folder is stored here."""
        import ray.exceptions as rex

        try:
            out = self.ray.get(ref)
        except rex.TaskCancelledError:
            return "cancelled", "cancelled by the user", time.time()
        except rex.WorkerCrashedError:  # a forced cancel kills the worker too
            return ("cancelled", "cancelled by the user", time.time()) if self.cancelling else (
                "failed", "the Ray worker running this run died unexpectedly (killed, or out of memory): "
                          "WorkerCrashedError", time.time())
        except rex.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            first = (str(cause).strip().splitlines() or [""])[-1][:400]
            return "failed", f"the Ray task failed: {type(cause).__name__}: {first}", time.time()
        ray_worker.unpack(out["bundle"], runs.run_dir(run_id), skip=DRIVER_FILES)
        return out["status"], out.get("error"), float(out.get("t1") or time.time())

    def cancel_all(self) -> None:
        """Cancel every task (KeyboardInterrupt at the next batch; the worker is killed after the grace period)."""
        self.cancelling = True
        refs = list(self.pending)
        for ref in refs:
            self.ray.cancel(ref)
        deadline = time.time() + CANCEL_GRACE_S
        while time.time() < deadline:
            _, waiting = self.ray.wait(refs, num_returns=len(refs), timeout=POLL_S)
            if not waiting:
                break
        for ref in self.ray.wait(refs, num_returns=len(refs), timeout=0)[1]:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        for ref in refs:
            self.finish(ref)
