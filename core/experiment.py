"""Run an experiment: every pipeline's stages in order, each stage a run that continues from the one before
(core.training trains one), the last stage repeated with seed + repeat index."""

from __future__ import annotations

import dataclasses
import secrets
import sys
from collections.abc import Callable

from core import hardware, runs, tracking, training
from core.pipeline import Experiment, PipelineConfig, StageConfig
from core.run_records import Environment, RunRecord
from core.store import RunStore
from core.validation import check_experiment


def run_experiment(exp: Experiment, command: str = "", job_id: str | None = None,
                   on_progress: training.ProgressFn | None = None,
                   on_run: Callable[[str, str], None] | None = None, store: RunStore = runs) -> list[dict[str, str]]:
    """Run every pipeline; returns [{"run_id", "status"}] in order. Stops at the first cancelled run; a failed
    stage ends its pipeline (nothing to continue from)."""
    hardware.configure()
    check_experiment(exp)
    results: list[dict[str, str]] = []
    total = sum(len(p.stages) - 1 + p.repeats for p in exp.pipelines)
    for pipe in exp.pipelines:
        pipeline_id = f"{exp.name}-{pipe.name}-{secrets.token_hex(3)}"
        parent: str | None = None
        stage_runs: list[str] = []
        for index, stage in enumerate(pipe.stages):
            repeats = pipe.repeats if index == len(pipe.stages) - 1 else 1
            produced: list[str] = []
            for rep in range(repeats):
                st = dataclasses.replace(stage, seed=stage.seed + rep)
                source_run = _source_run(st.source, parent, stage_runs)
                run_id = store.create_run(run_record(exp, pipe, st, index, rep, repeats, pipeline_id, source_run,
                                                     command, job_id, hardware.environment()))
                if on_run:
                    on_run(run_id, "running")
                info = {"pipeline": pipe.name, "stage": index + 1, "stages": len(pipe.stages),
                        "repeat": rep + 1, "repeats": repeats, "step": len(results) + 1, "steps": total}
                status = training.execute_run(run_id, st, source_run, on_progress, info, store)
                tracking.run_finished(run_id)  # MLflow, when MLFLOW_TRACKING_URI is set
                results.append({"run_id": run_id, "status": status})
                if on_run:
                    on_run(run_id, status)
                if status == "cancelled":
                    return results
                if status == "done":
                    produced.append(run_id)
            if not produced:
                break
            parent = produced[0]
            stage_runs.append(parent)
    return results


def run_record(exp: Experiment, pipe: PipelineConfig, stage: StageConfig, index: int, rep: int, repeats: int,
               pipeline_id: str, parent_run: str | None, command: str, job_id: str | None,
               env: Environment) -> RunRecord:
    return RunRecord(stage=stage.to_dict(), preset=exp.name, pipeline_name=pipe.name, pipeline_id=pipeline_id,
                     stage_index=index, stage_count=len(pipe.stages), repeat_index=rep, repeats=repeats,
                     parent_run=parent_run, method="scratch" if stage.source == "scratch" else "transfer",
                     command=command, job_id=job_id, hardware=env)


def _source_run(source: str, previous: str | None, stage_runs: list[str]) -> str | None:
    """The parent run id a stage's `source` names: previous, stage:N of this pipeline, run:<id>."""
    if source == "previous":
        return previous
    if source.startswith("stage:"):
        return stage_runs[int(source[6:])]
    if source.startswith("run:"):
        return source[4:]
    return None


def command_line() -> str:
    return " ".join(["python"] + [a if " " not in a else repr(a) for a in sys.argv])
