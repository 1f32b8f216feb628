"""Train: pick a preset or edit a pipeline of stages, check it, launch it as a background job, watch it live."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core import compare, estimate, jobs, pipeline, runs
from core.config import TransferLabError
from core.pipeline import Experiment, PipelineConfig, StageConfig
from pages import common, job_backend

LIVE_S = 1.5  # live view refresh
CUSTOM = "custom: one stage"
AUTO_COUNT_LIMIT = 8  # distinct models built automatically for parameter counts; more on request
INT_FIELDS = ("epochs", "batch_size", "patience", "seed", "composite_copies", "noise_images")
OPTIONAL_INT_FIELDS = ("input_size", "limit_per_class")
FLOAT_FIELDS = ("learning_rate", "target_accuracy", "composite")
TEXT_FIELDS = ("dataset", "source", "arch", "freeze", "head", "optimizer")
COLUMNS = ("pipeline", "name", "dataset", "source", "arch", "freeze", "head", "optimizer", "learning_rate",
           "epochs", "batch_size", "patience", "augment", "composite", "composite_copies", "noise_images",
           "input_size", "limit_per_class", "seed", "target_accuracy", "repeats")


# ---- cached compute ----------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _param_counts(arch: str, num_classes: int, input_size: int | None, freeze: str) -> dict[str, int]:
    """Build the stage's model (random weights) and apply its freeze policy: trainable / frozen counts."""
    from core import models, transfer

    model = models.build_model(arch, num_classes, input_size)
    frozen = transfer.apply_freeze(model, freeze)
    counts = models.param_counts(model)
    return {"trainable": int(counts["trainable"]), "frozen": int(counts["non_trainable"]),
            "frozen_layers": len(frozen)}


@st.cache_data(show_spinner=False, max_entries=64)
def _param_counts_from_run(root: str, run_id: str, mtime: float, num_classes: int, head: str,
                           freeze: str) -> dict[str, int]:
    from core import models, transfer

    model = runs.load_model(run_id)
    if head == "new":
        model = transfer.replace_head(model, num_classes)
    frozen = transfer.apply_freeze(model, freeze)
    counts = models.param_counts(model)
    return {"trainable": int(counts["trainable"]), "frozen": int(counts["non_trainable"]),
            "frozen_layers": len(frozen)}


@st.cache_data(ttl=30, show_spinner=False)
def _num_classes(root: str, dataset: str) -> int:
    from core import datasets

    return len(datasets.dataset_classes(dataset))


@st.cache_data(show_spinner=False)
def _arch_names() -> list[str]:
    from core import models

    return list(models.ARCHS)


# ---- the stage table ---------------------------------------------------------------------------------------


def base_experiment(choice: str) -> Experiment:
    if choice == CUSTOM:
        available = common.available_datasets()
        dataset = "fruits360-3" if "fruits360-3" in available else (available[0] if available else "fruits360-3")
        return Experiment([PipelineConfig([StageConfig(dataset=dataset, name="stage-0")], name="custom")],
                          name="custom")
    return pipeline.load_preset(choice)


def stages_frame(exp: Experiment) -> pd.DataFrame:
    """One row per stage; repeats shown on each pipeline's last stage (the one that repeats)."""
    rows = []
    for pipe in exp.pipelines:
        for i, stage in enumerate(pipe.stages):
            d = stage.to_dict()
            row = {c: d.get(c) for c in COLUMNS if c in d}
            row.update(pipeline=pipe.name, augment=",".join(stage.augment),
                       repeats=pipe.repeats if i == len(pipe.stages) - 1 else None)
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in (*INT_FIELDS, *OPTIONAL_INT_FIELDS, "repeats"):
        frame[col] = frame[col].astype("Int64")
    return frame


def _blank(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def row_to_stage(row: dict[str, Any], base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """One table row (plus the preset's fields the table does not show) -> stage fields and field errors."""
    values, errors = dict(base), {}
    for field in TEXT_FIELDS:
        value = row.get(field)
        if _blank(value):
            errors[field] = f"{field} is required"
        else:
            values[field] = str(value).strip()
    values["name"] = "" if _blank(row.get("name")) else str(row["name"]).strip()
    for field in INT_FIELDS + OPTIONAL_INT_FIELDS:
        value = row.get(field)
        if _blank(value):
            if field in INT_FIELDS:
                errors[field] = f"{field.replace('_', ' ')} is required"
            else:
                values[field] = None
        elif float(value) != int(float(value)):
            errors[field] = f"{field.replace('_', ' ')} must be a whole number"
        else:
            values[field] = int(float(value))
    for field in FLOAT_FIELDS:
        value = row.get(field)
        if _blank(value):
            errors[field] = f"{field.replace('_', ' ')} is required"
        else:
            values[field] = float(value)
    aug = row.get("augment")
    values["augment"] = [] if _blank(aug) else [a.strip() for a in str(aug).split(",") if a.strip()]
    return values, errors


def table_to_experiment(table: pd.DataFrame, base: Experiment, name: str
                        ) -> tuple[Experiment | None, list[StageConfig | None], list[dict[str, str]], list[str]]:
    """Edited rows -> (experiment or None, stage per row, field errors per row, experiment-level problems)."""
    base_stages = {(p.name, i): s.to_dict() for p in base.pipelines for i, s in enumerate(p.stages)}
    records = table.to_dict("records")
    row_errors: list[dict[str, str]] = []
    row_stages: list[StageConfig | None] = []
    grouped: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    position: dict[str, int] = {}
    for r, row in enumerate(records):
        pipe = "pipeline" if _blank(row.get("pipeline")) else str(row["pipeline"]).strip()
        index = position.get(pipe, 0)
        position[pipe] = index + 1
        base_fields = base_stages.get((pipe, index), StageConfig().to_dict())
        values, errors = row_to_stage(row, base_fields)
        stage = None
        if not errors:
            try:
                stage = StageConfig.from_dict(values)
            except TransferLabError as exc:
                errors["row"] = str(exc)
        if stage is not None:
            errors.update(pipeline.validate_stage(stage, index, has_previous=index > 0))
        row_errors.append(errors)
        row_stages.append(stage)
        grouped.setdefault(pipe, []).append((r, {"stage": stage, "repeats": row.get("repeats")}))
    problems = []
    if not records:
        problems.append("add at least one stage")
    pipes = []
    for pipe, items in grouped.items():
        repeats = items[-1][1]["repeats"]
        repeats = 1 if _blank(repeats) else int(float(repeats))
        if repeats < 1:
            problems.append(f"pipeline {pipe}: repeats must be at least 1")
        stages = [it["stage"] for _, it in items]
        if all(s is not None for s in stages):
            pipes.append(PipelineConfig(stages=stages, repeats=repeats, name=pipe))
    ok = not problems and not any(row_errors) and pipes
    exp = Experiment(pipelines=pipes, name=name, description=base.description) if ok else None
    return exp, row_stages, row_errors, problems


def stage_table(choice: str, exp: Experiment) -> pd.DataFrame:
    archs = _arch_names()
    dataset_names = [d["name"] for d in common.dataset_rows()]
    done_runs = [f"run:{r['run_id']}" for r in common.run_rows() if r["status"] == "done" and r["has_model"]]
    sources = ["scratch", "previous", "imagenet", *(f"stage:{i}" for i in range(8)), *done_runs]
    config = {
        "pipeline": st.column_config.TextColumn(help="Rows with the same pipeline name run in order, each "
                                                     "stage from the one before."),
        "dataset": st.column_config.SelectboxColumn(options=dataset_names, help="Datasets page lists them"),
        "source": st.column_config.SelectboxColumn(options=sources, help="scratch, previous (the stage above), "
                                                   "stage:N, imagenet, or run:<id> (a finished run)"),
        "arch": st.column_config.SelectboxColumn(options=archs),
        "freeze": st.column_config.TextColumn(help="none, all, all-but-head, first:N, last-block, or layer "
                                                   "name patterns like block*"),
        "head": st.column_config.SelectboxColumn(options=list(pipeline.HEADS),
                                                 help="new: replace the output layer; keep: keep it"),
        "optimizer": st.column_config.SelectboxColumn(options=list(pipeline.OPTIMIZERS)),
        "learning_rate": st.column_config.NumberColumn("learning rate", format="%.6f", step=1e-6),
        "augment": st.column_config.TextColumn(help="comma-separated: " + ", ".join(pipeline.AUGMENTATIONS)),
        "composite": st.column_config.NumberColumn(format="%.2f", min_value=0.0, max_value=1.0, help=(
            "share of training images pasted onto random scenes (lab -> real photos); 0: off")),
        "composite_copies": st.column_config.NumberColumn("copies", help="with a frozen backbone: composited "
                                                          "copies whose features are cached; 0: on the fly"),
        "noise_images": st.column_config.NumberColumn("noise imgs", help="extra 'noise' images: backgrounds "
                                                      "alone and CIFAR-10 scenes (needs a noise class)"),
        "input_size": st.column_config.NumberColumn("input size", help="empty: the architecture's default"),
        "limit_per_class": st.column_config.NumberColumn("limit/class", help="cap images per class and split "
                                                         "(quick runs); empty: all"),
        "target_accuracy": st.column_config.NumberColumn("target acc", format="%.3f",
                                                         help="for time-to-target"),
        "repeats": st.column_config.NumberColumn(help="on a pipeline's last stage: how many times it runs "
                                                      "(seed + repeat)"),
    }
    name = "custom" if choice == CUSTOM else choice
    frame = st.session_state.get(f"stage_frame_{name}")
    version = st.session_state.get(f"stage_version_{name}", 0)
    return st.data_editor(stages_frame(exp) if frame is None else frame,
                          key=f"stages_{name}" + (f"_{version}" if version else ""), num_rows="dynamic",
                          hide_index=True, width="stretch", column_config=config)


SET_ALL = {"epochs": "epochs", "limit_per_class": "images per class", "batch_size": "batch size",
           "input_size": "input size", "repeats": "repeats"}


def set_all_inputs() -> tuple[dict[str, int], bool]:
    """A row of inputs for the common fields (blank: leave as is) and its Apply button."""
    st.caption("Set for every stage (as the CLI's `--set`); blank fields are left as they are.")
    cols = st.columns(len(SET_ALL) + 1, vertical_alignment="bottom")
    values = {field: cols[i].number_input(label, min_value=1, value=None, step=1, key=f"set_all_{field}")
              for i, (field, label) in enumerate(SET_ALL.items())}
    applied = cols[-1].button("Apply to every stage", key="set_all_apply")
    return {f: int(v) for f, v in values.items() if v is not None}, applied


def set_every_stage(table: pd.DataFrame, values: dict[str, int]) -> pd.DataFrame:
    """The table with the fields set on every row; repeats on each pipeline's last row (the one that repeats)."""
    out = table.copy()
    for field, value in values.items():
        if field == "repeats":
            last = ~out["pipeline"].duplicated(keep="last")
            out.loc[last, "repeats"] = value
        else:
            out[field] = value
    for col in (*INT_FIELDS, *OPTIONAL_INT_FIELDS, "repeats"):
        out[col] = out[col].astype("Int64")
    return out.reset_index(drop=True)


def apply_set_all(choice: str, table: pd.DataFrame, values: dict[str, int]) -> None:
    """Stores the changed table as the editor's data under a fresh key (the old key's edits are in it)."""
    name = "custom" if choice == CUSTOM else choice
    st.session_state[f"stage_frame_{name}"] = set_every_stage(table, values)
    st.session_state[f"stage_version_{name}"] = st.session_state.get(f"stage_version_{name}", 0) + 1
    st.rerun()


@st.cache_data(max_entries=4, show_spinner=False)
def _throughputs(root: str, finished: tuple[str, ...], device: str) -> dict[tuple[str, int], float]:
    return estimate.measured_throughputs(device)


def run_time_estimate(exp: Experiment) -> None:
    """Per stage and in total, from this machine's measured throughput."""
    probed = common.device_label()
    if probed is None:
        st.caption("Estimated run time: waiting for the device probe.")
        return
    device = "CPU" if probed.startswith("CPU") else probed  # as the runs' metrics name it
    finished = tuple(r["run_id"] for r in common.run_rows() if r["status"] == "done")
    rows = estimate.estimate(exp, lambda name: common.describe(name)["counts"]["train"],
                             _throughputs(common.results_key(), finished, device))
    known = [r["seconds"] for r in rows if r["seconds"] is not None]
    missing = sorted({r["note"] for r in rows if r["seconds"] is None})
    total = compare.format_seconds(sum(known)) if known else "—"
    st.markdown(f"**Estimated run time: {total}**" + (" for the stages with an estimate" if missing and known
                                                        else ""))
    st.caption(f"An estimate from the median training throughput (images/s) of the finished runs on {device} "
               "with the same architecture and input size; early stopping can end runs sooner. "
               + (" · ".join(missing) if missing else ""))
    st.dataframe(pd.DataFrame([{
        "pipeline": r["pipeline"], "stage": r["stage"], "arch": r["arch"], "input size": r["input_size"],
        "runs": r["runs"], "images/epoch": r["images_per_epoch"],
        "images/s (measured)": None if r["images_per_s"] is None else round(r["images_per_s"], 1),
        "estimated time": compare.format_seconds(r["seconds"]) if r["seconds"] is not None else r["note"]}
        for r in rows]), hide_index=True, width="stretch")


def param_counts(stage: StageConfig) -> dict[str, int] | str:
    """Trainable / frozen parameters of the model this stage will train, or why they are unknown."""
    try:
        n = _num_classes(common.data_key(), stage.dataset)
        if stage.source.startswith("run:"):
            rid = stage.source[4:]
            return _param_counts_from_run(common.results_key(), rid, common.model_mtime(rid), n, stage.head,
                                          stage.freeze)
        return _param_counts(stage.arch, n, stage.input_size, stage.freeze)
    except TransferLabError as exc:
        return str(exc)


def check_rows(table: pd.DataFrame, stages: list[StageConfig | None], row_errors: list[dict[str, str]],
               count: bool) -> pd.DataFrame:
    """One row per stage: ok, its problems, and (when counting) trainable / frozen parameters."""
    rows = []
    for r, row in enumerate(table.to_dict("records")):
        errors = dict(row_errors[r]) if r < len(row_errors) else {}
        out: dict[str, Any] = {"pipeline": row.get("pipeline"), "stage": row.get("name") or r}
        if count and not errors and stages[r] is not None:
            counts = param_counts(stages[r])
            if isinstance(counts, dict):
                out.update(trainable=counts["trainable"], frozen=counts["frozen"],
                           frozen_layers=counts["frozen_layers"])
            else:
                errors["freeze"] = counts  # e.g. a freeze policy that matches no layer of this model
                row_errors[r] = errors
        out.update(ok="yes" if not errors else "no", problems="; ".join(f"{f}: {m}" for f, m in errors.items()))
        rows.append(out)
    return pd.DataFrame(rows)


def check_table(table: pd.DataFrame, stages: list[StageConfig | None], row_errors: list[dict[str, str]]) -> None:
    """Each row's problems next to its fields, and the parameter counts of every valid stage."""
    valid = [s for s, e in zip(stages, row_errors, strict=True) if s is not None and not e]
    distinct = {(s.arch, s.dataset, s.input_size, s.freeze, s.source if s.source.startswith("run:") else "")
                for s in valid}
    count = bool(valid) and (len(distinct) <= AUTO_COUNT_LIMIT or bool(st.session_state.get("count_params")))
    if valid and not count:
        st.button(f"Count parameters ({len(distinct)} models to build)", key="count_params_btn",
                  on_click=lambda: st.session_state.update(count_params=True))
    busy = st.spinner("Building the models to count their parameters…") if count else contextlib.nullcontext()
    with busy:
        frame = check_rows(table, stages, row_errors, count)

    def highlight(df: pd.DataFrame) -> pd.DataFrame:
        styles = pd.DataFrame("", index=df.index, columns=df.columns)
        styles.loc[df["ok"] == "no", ["ok", "problems"]] = "color: #b00020; font-weight: 600"
        return styles

    st.dataframe(frame.style.apply(highlight, axis=None), hide_index=True, width="stretch",
                 column_order=[c for c in ("pipeline", "stage", "ok", "problems", "trainable", "frozen",
                                           "frozen_layers") if c in frame.columns],
                 column_config={"trainable": st.column_config.NumberColumn(format="localized"),
                                "frozen": st.column_config.NumberColumn(
                                    "frozen", format="localized",
                                    help="non-trainable: frozen weights plus BatchNorm statistics"),
                                "frozen_layers": st.column_config.NumberColumn("frozen layers"),
                                "problems": st.column_config.TextColumn(width="large")})
    for r, errors in enumerate(row_errors):
        for field, message in errors.items():
            st.error(f"Row {r + 1} ({table.iloc[r].get('pipeline')}, {table.iloc[r].get('name') or 'stage'}) — "
                     f"**{field}**: {message}", icon=":material/warning:")


def builder() -> None:
    st.subheader("1 · Build the experiment")
    presets = pipeline.list_presets()
    c1, c2 = st.columns([2, 1])
    choice = c1.selectbox("Start from", [CUSTOM, *presets], key="train_start",
                          help="The four paper presets, or one stage of your own. Then edit the table.")
    name = c2.text_input("Experiment name", value=choice if choice != CUSTOM else "custom", key=f"name_{choice}")
    try:
        base = base_experiment(choice)
    except TransferLabError as exc:
        st.error(str(exc))
        return
    if base.description:
        st.caption(base.description)
    st.caption("Edit any cell; add or delete rows at the table's edge. Stages of a pipeline run top to bottom.")
    set_values, set_clicked = set_all_inputs()
    table = stage_table(choice, base)
    if set_clicked and set_values:
        apply_set_all(choice, table, set_values)
    exp, row_stages, row_errors, problems = table_to_experiment(table, base, name.strip() or "custom")
    if exp is not None:
        problems += pipeline.validate_experiment(exp)
    check_table(table, row_stages, row_errors)
    if any(row_errors):  # building the models can find more (a freeze policy that matches nothing)
        exp = None
    for p in problems:
        st.error(p, icon=":material/warning:")
    if exp is not None and not problems:
        n_runs = sum(len(p.stages) - 1 + p.repeats for p in exp.pipelines)
        st.caption(f"{len(exp.pipelines)} pipeline(s), {n_runs} run(s). Jobs run one at a time, in a separate "
                   "process: closing this tab does not stop them.")
        run_time_estimate(exp)
    backend = job_backend.picker()  # issue 16 hook: this machine or a Ray cluster
    launch = st.button("Launch", type="primary", disabled=exp is None or bool(problems) or backend is None,
                       key="launch")
    if launch and exp is not None:
        job_id = None
        with common.error_boundary("Launching the job"):
            job_id = jobs.submit(exp, backend=backend)
        if job_id is None:
            return
        st.session_state["watch_select"] = job_id
        st.success(f"Launched job `{job_id}`. Follow it below.")


# ---- live view ---------------------------------------------------------------------------------------------


def progress_bars(job: dict[str, Any]) -> None:
    s = compare.job_summary(job)
    if s["steps"]:
        head = (f"Run {s['step']} of {s['steps']} · pipeline {s['pipeline']} · stage {s['stage']} of "
                f"{s['stages']}" + (f" · repeat {s['repeat']} of {s['repeats']}" if (s["repeats"] or 1) > 1 else ""))
        st.progress(s["step_fraction"], text=f"{head} — {s['phase']}")
    if s["epochs"]:
        st.progress(s["epoch_fraction"], text=f"Epoch {s['epoch']} of {s['epochs']} · ETA "
                                              f"{compare.format_seconds(s['eta_s'])}")
        logs = s["logs"]
        metrics = " · ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)))
        st.progress(s["batch_fraction"], text=f"Batch {s['batch']} of {s['batches']}" +
                    (f" · {metrics}" if metrics else ""))


def live_curves(job: dict[str, Any]) -> None:
    """Loss and accuracy (train vs val) of the job's current run, and val accuracy of each of its runs."""
    run_ids = job.get("runs") or []
    if not run_ids:
        return
    current = compare.job_summary(job)["run_id"] or run_ids[-1]
    long = compare.history_long(runs.read_history(current))
    if not long.empty:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
        for col, metric in enumerate(("loss", "accuracy"), start=1):
            for split, color in (("train", "#1f77b4"), ("val", "#ff7f0e")):
                part = long[(long["metric"] == metric) & (long["split"] == split)]
                if not part.empty:
                    fig.add_trace(go.Scatter(x=part["epoch"], y=part["value"], name=split, mode="lines+markers",
                                             line=dict(color=color), legendgroup=split, showlegend=col == 1),
                                  row=1, col=col)
        fig.update_xaxes(title_text="epoch", dtick=1)
        fig.update_layout(height=300, margin=dict(l=10, r=10, t=50, b=10), title=f"{'Current' if job.get('status') == 'running' else 'Last'} run {current}")
        st.plotly_chart(fig, width="stretch", key=f"live_{job['job_id']}")
    if len(run_ids) > 1:
        fig = go.Figure()
        for rid in run_ids:
            hist = runs.read_history(rid)
            if hist and "val_accuracy" in hist[0]:
                try:
                    cfg = runs.get_run(rid)["config"]
                    label = f"{cfg.get('pipeline_name')} · stage {cfg.get('stage_index', 0) + 1} · r{cfg.get('repeat_index', 0) + 1}"
                except TransferLabError:
                    label = rid
                fig.add_trace(go.Scatter(x=[h["epoch"] for h in hist], y=[h.get("val_accuracy") for h in hist],
                                         mode="lines+markers", name=label))
        fig.update_layout(height=280, margin=dict(l=10, r=10, t=40, b=10), title="val accuracy of every stage",
                          xaxis_title="epoch")
        st.plotly_chart(fig, width="stretch", key=f"stages_{job['job_id']}")


def job_view(job: dict[str, Any]) -> None:
    status = job.get("status", "queued")
    st.markdown(f"Job `{job['job_id']}` ({job.get('name')}) · **{status}**")
    if status in ("queued", "running"):
        if st.button("Cancel this job", key=f"cancel_{job['job_id']}"):
            try:
                jobs.cancel_job(job["job_id"])
                st.toast("Cancel requested: the job stops within one batch.")
            except TransferLabError as exc:
                st.error(str(exc))
    if status == "queued":
        ahead = [j for j in common.job_list() if j.get("status") in ("running", "queued")
                 and j.get("created_ns", 0) < job.get("created_ns", 0)]
        st.info(f"Waiting in the queue: {len(ahead)} job(s) ahead. Jobs run one at a time.", icon=":material/hourglass_top:")
    elif status == "done":
        st.success(f"Finished: {len(job.get('runs') or [])} run(s). See them on the Results page.", icon=":material/check_circle:")
    elif status == "failed":
        st.error(f"Failed: {job.get('error') or 'see the log below'}")
    elif status == "cancelled":
        st.warning(f"Cancelled{': ' + job['error'] if job.get('error') else ''}.", icon=":material/stop_circle:")
    if status == "running":
        progress_bars(job)
    live_curves(job)
    with st.expander("Log (last 30 lines)", expanded=status in ("running", "failed")):
        st.code(jobs.log_tail(job["job_id"], 30) or "(empty)", language="text")


@st.fragment(run_every=LIVE_S)
def live_jobs() -> None:
    st.subheader("2 · Jobs")
    job_rows = common.job_list()
    if not job_rows:
        st.caption("No jobs yet. Launched jobs appear here with live progress; finished, failed and cancelled "
                   "ones stay listed.")
        return
    table = pd.DataFrame([{"job": j["job_id"], "name": j.get("name"), "status": common.status_label(j.get("status")),
                           "created": j.get("created"), "runs": len(j.get("runs") or []),
                           "error": j.get("error") or ""} for j in job_rows])
    st.dataframe(table, hide_index=True, width="stretch", height=min(250, 40 + 35 * len(table)))
    ids = [j["job_id"] for j in job_rows]
    if st.session_state.get("watch_select") not in ids:
        running = [j["job_id"] for j in job_rows if j.get("status") == "running"]
        st.session_state["watch_select"] = running[0] if running else ids[0]
    job_id = st.selectbox("Watch", ids, key="watch_select",
                          format_func=lambda i: f"{i} · {next(j for j in job_rows if j['job_id'] == i).get('name')}")
    job = next(j for j in job_rows if j["job_id"] == job_id)
    job_view(job)


def main() -> None:
    st.title("Train")
    if not common.available_datasets():
        common.next_step("No dataset is imported yet: import one first, then come back to build a pipeline.",
                         "pages/datasets.py", "Import a dataset")
    builder()
    st.divider()
    live_jobs()


with common.error_boundary("The Train page", only_expected=True):
    main()
