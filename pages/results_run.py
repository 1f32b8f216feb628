"""The Results page's one run in depth: headline numbers, management, and a tab per view (curves, confusion matrix,
per class, where it errs, evaluations, layers, lineage, config, command and hardware)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from core import compare, runs, store
from pages import charts, common, evaluations, results_errors, results_manage

MAX_HEATMAP_CLASSES = 200
LINEAGE_COLUMNS = ["run_id", "status", "dataset", "arch", "source", "freeze", "test_accuracy", "wall_time_s"]


@st.cache_data(ttl=5, show_spinner=False)
def _lineage(root: str, run_id: str) -> list[dict[str, Any]]:
    return [runs.summary_row(r) for r in runs.lineage(run_id)]


def curves(run: dict[str, Any]) -> None:
    fig = charts.curves(common.history(run["run_id"]))
    if fig is None:
        st.caption("No epochs recorded.")
    else:
        st.plotly_chart(fig, width="stretch")


def confusion(run: dict[str, Any]) -> None:
    stored = runs.read_confusion(run["run_id"], MAX_HEATMAP_CLASSES)
    if stored is None:
        st.caption(f"No readable confusion matrix (the run did not finish, or {store.CONFUSION} is malformed).")
        return
    classes, matrix = stored
    if matrix is None:
        st.caption(f"{len(classes)} classes: too many to draw; {store.CONFUSION_CSV} in the run's folder holds the "
                   "matrix.")
        return
    st.plotly_chart(charts.confusion(matrix, classes), width="stretch")


def per_class(run: dict[str, Any]) -> None:
    rows = run["metrics"].get("per_class") or []
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.caption("No per-class metrics (the run did not finish).")


def layers(run: dict[str, Any]) -> None:
    frozen = set(run["metrics"].get("frozen_layers") or [])
    # a broken model file is an error; a record too old to rebuild from is only a note
    with common.error_boundary("Reading the layers", only_expected=True,
                               show=st.error if run["has_model"] else st.info) as reading:
        if run["has_model"]:
            rows, source = common.model_layers(run["run_id"]), "frozen layers kept their parent's weights."
        else:
            rows, rebuilt, built = common.layers_from_record(run["run_id"])
            frozen = frozen or set(rebuilt)
            source = (f"No saved model for this run: this table comes from its record — {built['arch']} for "
                      f"{built['classes']} classes at {built['input_size']} px, freeze policy "
                      f"`{built['freeze']}` — rebuilt without weights.")
    if reading.failed:
        return
    table = pd.DataFrame([{"frozen": "frozen" if r["name"] in frozen else "", **r} for r in rows])
    st.caption(f"{len(frozen)} frozen layer(s) of {len(rows)}; {source}")
    st.dataframe(table, hide_index=True, width="stretch")


def lineage(run: dict[str, Any]) -> None:
    chain = _lineage(common.results_key(), run["run_id"])
    st.caption("From the first stage down to this run; each stage starts from the one above it.")
    st.dataframe(pd.DataFrame(chain)[LINEAGE_COLUMNS], hide_index=True, width="stretch")


def config(run: dict[str, Any]) -> None:
    cfg = run["config"]
    st.code(common.pretty_json(cfg.get("stage", cfg)), language="json")
    st.caption(f"preset {cfg.get('preset')} · pipeline {cfg.get('pipeline_name')} · stage "
               f"{(cfg.get('stage_index') or 0) + 1} of {cfg.get('stage_count')} · repeat "
               f"{(cfg.get('repeat_index') or 0) + 1} of {cfg.get('repeats')}")


def command_and_hardware(run: dict[str, Any]) -> None:
    st.markdown("**Command**")
    st.code(run["config"].get("command") or "—", language="bash")
    st.markdown("**Hardware and software**")
    st.code(common.pretty_json(run["config"].get("hardware") or {}), language="json")


TABS = {"Curves": curves, "Confusion matrix": confusion, "Per class": per_class, "Where it errs": results_errors.section,
        "Evaluations": evaluations.section, "Layers": layers, "Lineage": lineage, "Config": config,
        "Command & hardware": command_and_hardware}


def pick_run(rows: list[dict[str, Any]], on_screen: Sequence[str], clicked: str | None) -> str | None:
    """The run picker: it follows the comparison on screen until the user picks, and a clicked row once per click."""
    ids = [r["run_id"] for r in rows]
    label = {r["run_id"]: f"{r['run_id']} · {common.status_label(r['status'])}" for r in rows}
    if common.has_default_model():  # the shipped model Classify uses on a fresh clone
        ids.append(runs.DEFAULT_MODEL_DIR)
        label[runs.DEFAULT_MODEL_DIR] = "default · the shipped model (Classify's on a fresh clone)"
    if not ids:
        return None
    done = [r["run_id"] for r in rows if r["status"] == "done"]
    first = next((i for i in on_screen if i in ids), done[0] if done else ids[0])
    state = st.session_state
    if state.get("detail_run") not in ids or state.get("detail_run") == state.get("detail_default"):
        state["detail_run"] = first  # not chosen by the user: follows the comparison on screen
    state["detail_default"] = first
    if clicked != state.get("detail_clicked"):
        state["detail_clicked"] = clicked
        if clicked in ids:
            state["detail_run"] = clicked
    return st.selectbox("Run", ids, format_func=label.get, key="detail_run")


def run_detail(rows: list[dict[str, Any]], on_screen: Sequence[str] = (), clicked: str | None = None) -> None:
    """`on_screen`: the runs of the comparison shown above (the default is the newest of them); `clicked`: the
    row picked in the runs table, which the view switches to once per click."""
    st.subheader("One run in depth")
    run_id = pick_run(rows, on_screen, clicked)
    if run_id is None:
        return
    with common.error_boundary("Reading the run", only_expected=True) as reading:
        run = common.get_run(run_id)
    if reading.failed:
        return
    m = run["metrics"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", common.status_label(run["status"]))
    c2.metric("Test accuracy", "—" if m.get("test_accuracy") is None else f"{m['test_accuracy']:.4f}")
    c3.metric("Kappa", "—" if m.get("kappa") is None else f"{m['kappa']:.4f}")
    c4.metric("Wall time", compare.format_seconds(m.get("wall_time_s")))
    if run["status_info"].get("error"):
        st.error(run["status_info"]["error"])
    results_manage.manage(run, rows)
    for tab, draw in zip(st.tabs(list(TABS)), TABS.values(), strict=True):
        with tab:
            draw(run)
