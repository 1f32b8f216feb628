"""The Results page's scratch vs transfer comparison: one preset and device at a time, the headline ratios, mean ± std
per group with its caveats, and box plots."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core import caveats, compare, report


def pm(mean: Any, std: Any, fmt: str = "{:.4f}") -> str:
    """'mean ± std' with blanks for unknown values."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    text = fmt.format(mean)
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += " ± " + fmt.format(std)
    return text


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def contexts(rows: list[dict[str, Any]], run_ids: list[str]) -> dict[str, Any]:
    by_id = {r["run_id"]: r for r in rows}
    return caveats.group_context([by_id[i] for i in run_ids if i in by_id])


def caveat_warning(flagged: dict[str, list[str]]) -> None:
    """One visible warning naming each group whose numbers are not results (shortened, near chance)."""
    if flagged:
        st.warning("Not a result — " + "; ".join(f"**{name}**: {', '.join(w)}" for name, w in flagged.items()),
                   icon=":material/warning:")


def headline(result: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    s, t = result["scratch"], result["transfer"]
    if s is None or t is None:
        missing = "scratch" if s is None else "transfer"
        st.info(f"No finished **{missing}** run on {result['dataset']} yet, so no speedup. The preset "
                "paper-b-scratch-vs-transfer trains both.", icon=":material/info:")
        return
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Speedup", fmt_ratio(result["speedup"]),
              help="Scratch time / transfer time: the mean wall time of the scratch runs over that of the "
                   "transfer runs (the last stage only, as the papers report).")
    delta = result["accuracy_delta"]
    c2.metric("Accuracy delta", "—" if delta is None else f"{delta:+.4f}",
              delta=None if delta is None else f"{delta * 100:+.2f} points",
              help="Mean test accuracy of the transfer runs minus that of the scratch runs.")
    c3.metric("Speedup to target", fmt_ratio(result["speedup_to_target"]),
              help="The same ratio for the time to reach the target accuracy, over the runs that reached it.")
    c4.metric("Speedup incl. pre-training", fmt_ratio(result["speedup_incl_pretrain"]),
              help="Each transfer run also charged the wall time of the stages it was built on.")
    sides = {name: contexts(rows, side["run_ids"]) for name, side in (("scratch", s), ("transfer", t))}
    st.caption(" — ".join(f"**{name}**: {int(side['n'])} runs, {caveats.describe(sides[name])}"
                          for name, side in (("scratch", s), ("transfer", t))))
    caveat_warning({name: c["warnings"] for name, c in sides.items() if c["warnings"]})


def summary_table(summary: pd.DataFrame, by: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    out, flagged = [], {}
    for _, r in summary.iterrows():
        context = contexts(rows, r["run_ids"])
        name = " / ".join(str(r[c]) for c in by)
        if context["warnings"]:
            flagged[name] = context["warnings"]
        out.append({**{c: r[c] for c in by}, "runs": int(r["n"]), "epochs": context["epochs"],
                    "images per class": context["per_class"],
                    "wall time (s)": pm(r["wall_time_s_mean"], r["wall_time_s_std"], "{:.1f}"),
                    "time to target (s)": pm(r["time_to_target_s_mean"], r["time_to_target_s_std"], "{:.1f}")
                    + f"  ({caveats.target_text(context['target'], int(r['reached_target']), int(r['n']))})",
                    "test accuracy": pm(r["test_accuracy_mean"], r["test_accuracy_std"]),
                    "kappa": pm(r["kappa_mean"], r["kappa_std"]),
                    "pre-training (s)": pm(r["pretrain_time_s_mean"], None, "{:.1f}"),
                    "caveat": "⚠ " + "; ".join(context["warnings"]) if context["warnings"] else ""})
    st.dataframe(pd.DataFrame(out), hide_index=True, width="stretch")
    caveat_warning(flagged)


def box_plots(points: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=1, cols=3, subplot_titles=("wall time (s)", "test accuracy", "kappa"))
    palette = px.colors.qualitative.Plotly
    for i, metric in enumerate(("wall_time_s", "test_accuracy", "kappa"), start=1):
        for k, (group, part) in enumerate(points.groupby("group", sort=True)):
            fig.add_trace(go.Box(y=part[metric], name=str(group), boxpoints="all", jitter=0.3,
                                 marker_color=palette[k % len(palette)], legendgroup=str(group),
                                 showlegend=i == 1, text=part["run_id"]), row=1, col=i)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), boxmode="group")
    return fig


def scope(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Compare like with like: one preset and one device at a time (paper B's by default), or everything.
    Returns the runs in scope and a label saying which they are."""
    c1, c2 = st.columns(2)
    presets = compare.filter_options(compare.finished(rows))["preset"]
    preset = c1.selectbox("Runs of preset", ["all", *presets], key="scope_preset",
                          index=1 + presets.index(report.PAPER_B) if report.PAPER_B in presets else 0)
    rows = compare.filter_runs(rows, preset=[] if preset == "all" else [preset])
    devices = compare.filter_options(compare.finished(rows))["device"]
    device = c2.selectbox("On device", ["all", *devices], key="scope_device", index=1 if len(devices) > 1 else 0)
    label = f"preset {preset}, device {device}".replace("preset all", "every preset").replace(
        "device all", "every device")
    return compare.filter_runs(rows, device=[] if device == "all" else [device]), label


def comparison(rows: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]], str]:
    """Draws the comparison; returns its target dataset, the runs in scope and the scope's label."""
    st.subheader("Scratch vs transfer")
    rows, label = scope(rows)
    targets = compare.target_datasets(rows)
    if not targets:
        st.info("No finished runs yet: the comparison appears when runs finish.", icon=":material/info:")
        return None, rows, label
    c1, c2 = st.columns(2)
    dataset = c1.selectbox("Target dataset", targets, key="target_dataset")
    grouping = c2.radio("Group by", list(compare.GROUPINGS), horizontal=True, key="group_by")
    by = compare.GROUPINGS[grouping]
    headline(compare.scratch_vs_transfer(rows, dataset), rows)
    summary = compare.group_summary(rows, dataset, by)
    st.caption("mean ± standard deviation over repeats (sample std; blank with one run)")
    summary_table(summary, by, rows)
    st.plotly_chart(box_plots(compare.metric_points(rows, dataset, by)), width="stretch")
    return dataset, rows, label
