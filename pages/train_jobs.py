"""The Train page's live view of the background jobs: their list, and the watched one's progress bars, curves,
log tail and Cancel button, redrawn every LIVE_S seconds."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import compare, jobs, runs
from core.config import TransferLabError
from pages import charts, common

LIVE_S = 1.5  # live view refresh


def progress_bars(job: dict[str, Any]) -> None:
    s = compare.job_summary(job)
    if s["steps"]:
        head = (f"Run {s['step']} of {s['steps']} · pipeline {s['pipeline']} · stage {s['stage']} of "
                f"{s['stages']}" + (f" · repeat {s['repeat']} of {s['repeats']}" if (s["repeats"] or 1) > 1 else ""))
        st.progress(s["step_fraction"], text=f"{head} — {s['phase']}")
    if s["epochs"]:
        st.progress(s["epoch_fraction"], text=f"Epoch {s['epoch']} of {s['epochs']} · ETA "
                                              f"{compare.format_seconds(s['eta_s'])}")
        metrics = " · ".join(f"{k} {v:.4f}" for k, v in s["logs"].items() if isinstance(v, (int, float)))
        st.progress(s["batch_fraction"], text=f"Batch {s['batch']} of {s['batches']}" +
                    (f" · {metrics}" if metrics else ""))


def stage_label(run_id: str) -> str:
    try:
        cfg = runs.get_run(run_id)["config"]
    except TransferLabError:
        return run_id
    return f"{cfg.get('pipeline_name')} · stage {cfg.get('stage_index', 0) + 1} · r{cfg.get('repeat_index', 0) + 1}"


def stages_figure(run_ids: list[str]) -> go.Figure:
    """Validation accuracy per epoch of each of a job's runs."""
    fig = go.Figure()
    for rid in run_ids:
        hist = runs.read_history(rid)
        if hist and "val_accuracy" in hist[0]:
            fig.add_trace(go.Scatter(x=[h["epoch"] for h in hist], y=[h.get("val_accuracy") for h in hist],
                                     mode="lines+markers", name=stage_label(rid)))
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=40, b=10), title="val accuracy of every stage",
                      xaxis_title="epoch")
    return fig


def live_curves(job: dict[str, Any]) -> None:
    """Loss and accuracy (train vs val) of the job's current run, and val accuracy of each of its runs."""
    run_ids = job.get("runs") or []
    if not run_ids:
        return
    current = compare.job_summary(job)["run_id"] or run_ids[-1]
    title = f"{'Current' if job.get('status') == 'running' else 'Last'} run {current}"
    fig = charts.curves(runs.read_history(current), title)
    if fig is not None:
        st.plotly_chart(fig, width="stretch", key=f"live_{job['job_id']}")
    if len(run_ids) > 1:
        st.plotly_chart(stages_figure(run_ids), width="stretch", key=f"stages_{job['job_id']}")


def status_note(job: dict[str, Any]) -> None:
    status = job.get("status", "queued")
    if status == "queued":
        ahead = [j for j in common.job_list() if j.get("status") in ("running", "queued")
                 and j.get("created_ns", 0) < job.get("created_ns", 0)]
        st.info(f"Waiting in the queue: {len(ahead)} job(s) ahead. Jobs run one at a time.",
                icon=":material/hourglass_top:")
    elif status == "done":
        st.success(f"Finished: {len(job.get('runs') or [])} run(s). See them on the Results page.",
                   icon=":material/check_circle:")
    elif status == "failed":
        st.error(f"Failed: {job.get('error') or 'see the log below'}")
    elif status == "cancelled":
        st.warning(f"Cancelled{': ' + job['error'] if job.get('error') else ''}.", icon=":material/stop_circle:")


def job_view(job: dict[str, Any]) -> None:
    status = job.get("status", "queued")
    st.markdown(f"Job `{job['job_id']}` ({job.get('name')}) · **{status}**")
    if status in ("queued", "running") and st.button("Cancel this job", key=f"cancel_{job['job_id']}"):
        with common.error_boundary("Cancelling the job", only_expected=True) as cancelling:
            jobs.cancel_job(job["job_id"])
        if not cancelling.failed:
            st.toast("Cancel requested: the job stops within one batch.")
    status_note(job)
    if status == "running":
        progress_bars(job)
    live_curves(job)
    with st.expander("Log (last 30 lines)", expanded=status in ("running", "failed")):
        st.code(jobs.log_tail(job["job_id"], 30) or "(empty)", language="text")


def jobs_table(job_rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"job": j["job_id"], "name": j.get("name"), "status": common.status_label(j.get("status")),
                          "created": j.get("created"), "runs": len(j.get("runs") or []),
                          "error": j.get("error") or ""} for j in job_rows])


@st.fragment(run_every=LIVE_S)
def live_jobs() -> None:
    st.subheader("2 · Jobs")
    job_rows = common.job_list()
    if not job_rows:
        st.caption("No jobs yet. Launched jobs appear here with live progress; finished, failed and cancelled "
                   "ones stay listed.")
        return
    table = jobs_table(job_rows)
    st.dataframe(table, hide_index=True, width="stretch", height=min(250, 40 + 35 * len(table)))
    by_id = {j["job_id"]: j for j in job_rows}
    if st.session_state.get("watch_select") not in by_id:
        running = [i for i, j in by_id.items() if j.get("status") == "running"]
        st.session_state["watch_select"] = running[0] if running else job_rows[0]["job_id"]
    job_id = st.selectbox("Watch", list(by_id), key="watch_select", format_func=lambda i: f"{i} · {by_id[i].get('name')}")
    job_view(by_id[job_id])
