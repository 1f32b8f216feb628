"""The one-run view's "Where it errs" tab (core.errors): the run's wrong Test images by loss as a gallery, Grad-CAM
for the one picked in the table, the most-confused class pairs and per-class precision / recall."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from core import caveats, errors, predict, runs
from pages import common

LIMIT = 60  # wrong images kept as pixels (the table lists every wrong one)
GALLERY, PER_ROW = 24, 8
THUMB, CAM = 96, 224  # px on screen


@st.cache_data(show_spinner="Computing the Grad-CAM heatmaps…", max_entries=32)
def _cam(root: str, run_id: str, mtime: float, index: int, class_index: int, _image: np.ndarray) -> np.ndarray:
    return predict.overlay(_image, predict.gradcam(common.classifier(run_id), _image, class_index))


def analysis(run_id: str) -> dict[str, Any] | None:
    """The analysis, scored with a progress bar the first time and kept in the session for the run on screen
    (st.cache_data cannot replay a progress bar drawn outside it); None when it failed (message shown)."""
    key = (common.results_key(), common.data_key(), run_id, common.model_mtime(run_id))
    kept = st.session_state.get("errs_result")
    if kept and kept[0] == key:
        return kept[1]
    with common.error_boundary("Finding the wrong images", only_expected=True) as finding:
        bar = st.progress(0.0, text="Loading the model and the Test split…")
        result = errors.analyse(run_id, limit=LIMIT, progress=lambda message, fraction: bar.progress(
            fraction, text=message))
        bar.empty()
    if finding.failed:
        return None
    st.session_state["errs_result"] = (key, result)
    return result


def gallery(result: dict[str, Any]) -> None:
    shown = result["images"][:GALLERY]
    st.caption(f"The {len(shown)} wrong Test images with the highest loss (−log of the probability the model gave "
               "the true class), worst first: #rank · true → predicted (its probability).")
    for start in range(0, len(shown), PER_ROW):
        for k, col in enumerate(st.columns(PER_ROW)):
            i = start + k
            if i < len(shown):
                w = result["wrong"][i]
                col.image(shown[i], width=THUMB,
                          caption=f"#{i + 1} {w['truth']} → {w['prediction']} ({w['probability']:.2f})")


def picked_row(result: dict[str, Any], run_id: str) -> int:
    """The wrong images as a table; the row clicked (the worst one until a row is) is the one explained."""
    table = pd.DataFrame(result["wrong"]).rename(columns={"index": "test image"})
    table.insert(0, "rank", range(1, len(table) + 1))
    event = st.dataframe(table, hide_index=True, width="stretch", key=f"errs_table_{run_id}", on_select="rerun",
                         selection_mode="single-row", height=240, column_config={
                             "probability": st.column_config.NumberColumn("p(predicted)", format="%.3f"),
                             "truth_probability": st.column_config.NumberColumn("p(true)", format="%.3f"),
                             "loss": st.column_config.NumberColumn(format="%.3f")})
    rows = event.selection.rows if event else []
    return rows[0] if rows else 0


def explain(run_id: str, result: dict[str, Any], i: int) -> None:
    w = result["wrong"][i]
    if i >= len(result["images"]):
        st.caption(f"Grad-CAM is kept for the {LIMIT} worst images; #{i + 1} is further down.")
        return
    image, classes, mtime = result["images"][i], result["classes"], common.model_mtime(run_id)
    st.markdown(f"**#{i + 1}: a {w['truth']} taken for {w['prediction']}** (p {w['probability']:.3f}; "
                f"p(true) {w['truth_probability']:.3f}) — Grad-CAM: red is what drove the class named")
    with common.error_boundary("Grad-CAM"):
        c1, c2, c3 = st.columns(3)
        c1.image(image, width=CAM, caption="the Test image")
        c2.image(_cam(common.results_key(), run_id, mtime, w["index"], classes.index(w["prediction"]), image),
                 width=CAM, caption=f"why {w['prediction']}")
        c3.image(_cam(common.results_key(), run_id, mtime, w["index"], classes.index(w["truth"]), image),
                 width=CAM, caption=f"where it sees {w['truth']}")


def pairs_and_classes(result: dict[str, Any]) -> None:
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Most confused (true → predicted)**")
        pairs = pd.DataFrame(result["pairs"], columns=["truth", "prediction", "count", "share"])
        st.dataframe(pairs, hide_index=True, width="stretch", column_config={
            "share": st.column_config.NumberColumn("share of the class", format="percent")})
    with c2:
        st.markdown("**Per class**")
        per_class = pd.DataFrame(result["per_class"])
        fig = px.bar(per_class.melt(id_vars="class", value_vars=["precision", "recall"]), x="class", y="value",
                     color="variable", barmode="group", range_y=[0, 1], height=260)
        fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), legend_title_text="")
        st.plotly_chart(fig, width="stretch", key=f"errs_per_class_{result['run_id']}")
        st.dataframe(per_class, hide_index=True, width="stretch")


def section(run: dict[str, Any]) -> None:
    run_id = run["run_id"]
    if run["status"] != "done" or not run["has_model"]:
        st.caption("Needs a finished run with its model file (this run has none): its Test images are scored again.")
        return
    key = f"errs_on_{run_id}"
    if not st.session_state.get(key):
        st.button("Find the wrong Test images", key=f"errs_find_{run_id}",
                  on_click=lambda: st.session_state.__setitem__(key, True))
        st.caption("Scores the run's Test split again with its model (the split rebuilt as it trained): the wrong "
                   "images by loss, Grad-CAM for any of them, the most-confused pairs, precision and recall.")
        return
    result = analysis(run_id)
    if result is None:
        return
    warnings = caveats.group_context([runs.summary_row(run)])["warnings"]
    if warnings:
        st.warning("Not a result — " + "; ".join(warnings) + ": the errors of a toy run say little about the "
                   "method.", icon=":material/warning:")
    st.markdown(f"**{result['n_wrong']:,} of {result['n']:,} Test images wrong** (accuracy {result['accuracy']:.4f}, "
                f"{result['dataset']}; scored in {result['seconds']:.1f} s)")
    if result["wrong"]:
        gallery(result)
        explain(run_id, result, picked_row(result, run_id))
    else:
        st.success("Every Test image is right.")
    pairs_and_classes(result)
