"""Train: pick a preset or edit a pipeline of stages, check it, find a learning rate, launch it as a background job,
watch it live. `main()` routes; the table, the checks, the LR finder and the live view live in pages/train_*.py, the
parsing in core.stage_form."""

from __future__ import annotations

import streamlit as st

from core import jobs, pipeline, stage_form
from core.pipeline import Experiment, PipelineConfig, StageConfig
from core.stage_form import FormResult
from pages import common, job_backend, registry
from pages.train_check import check_table, run_time_estimate
from pages.train_jobs import live_jobs
from pages.train_lr import lr_finder
from pages.train_table import edited_stages

CUSTOM = "custom: one stage"


def base_experiment(choice: str) -> Experiment:
    if choice != CUSTOM:
        return pipeline.load_preset(choice)
    available = common.available_datasets()
    dataset = "fruits360-3" if "fruits360-3" in available else (available[0] if available else "fruits360-3")
    return Experiment([PipelineConfig([StageConfig(dataset=dataset, name="stage-0")], name="custom")], name="custom")


def start_from() -> tuple[str, str]:
    """The preset (or one custom stage) to start from, and the experiment's name."""
    c1, c2 = st.columns([2, 1])
    choice = c1.selectbox("Start from", [CUSTOM, *pipeline.list_presets()], key="train_start",
                          help="The four paper presets, or one stage of your own. Then edit the table.")
    name = c2.text_input("Experiment name", value=choice if choice != CUSTOM else "custom", key=f"name_{choice}")
    return choice, name.strip() or "custom"


def checked(form: FormResult) -> Experiment | None:
    """The experiment once every row and the experiment as a whole are valid (building the models to count their
    parameters can find more: a freeze policy that matches nothing), with what it will run."""
    for problem in form.problems:
        st.error(problem, icon=":material/warning:")
    if form.experiment is None or any(form.errors):
        return None
    n_runs = sum(len(p.stages) - 1 + p.repeats for p in form.experiment.pipelines)
    st.caption(f"{len(form.experiment.pipelines)} pipeline(s), {n_runs} run(s). Jobs run one at a time, in a "
               "separate process: closing this tab does not stop them.")
    run_time_estimate(form.experiment)
    return form.experiment


def launch(exp: Experiment | None) -> None:
    backend = job_backend.picker()  # this machine or a Ray cluster
    if not st.button("Launch", type="primary", disabled=exp is None or backend is None, key="launch") or exp is None:
        return
    with common.error_boundary("Launching the job") as launching:
        job_id = jobs.submit(exp, backend=backend)
    if not launching.failed:
        st.session_state["watch_select"] = job_id
        st.success(f"Launched job `{job_id}`. Follow it below.")


def builder() -> None:
    st.subheader("1 · Build the experiment")
    choice, name = start_from()
    with common.error_boundary("Loading the preset", only_expected=True) as loading:
        base = base_experiment(choice)
    if loading.failed:
        return
    if base.description:
        st.caption(base.description)
    st.caption("Edit any cell; add or delete rows at the table's edge. Stages of a pipeline run top to bottom.")
    key = "custom" if choice == CUSTOM else choice
    table = edited_stages(key, base)
    rows = table.to_dict("records")
    form = stage_form.experiment_from_rows(rows, base, name)
    check_table(rows, form)
    lr_finder(key, table, form)
    launch(checked(form))


def main() -> None:
    st.title("Train")
    if not common.available_datasets():
        common.next_step("No dataset is imported yet: import one first, then come back to build a pipeline.",
                         registry.DATASETS.path, "Import a dataset")
    builder()
    st.divider()
    live_jobs()


with common.error_boundary("The Train page", only_expected=True):
    main()
