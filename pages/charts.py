"""Plotly figures more than one page draws. Figures only: the pages put them on screen."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core import compare

SPLIT_COLORS = {"train": "#1f77b4", "val": "#ff7f0e"}


def curves(history: list[dict[str, Any]], title: str = "") -> go.Figure | None:
    """Loss and accuracy per epoch, train vs val, as two panels; None when no epoch is recorded."""
    long = compare.history_long(history)
    if long.empty:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for col, metric in enumerate(("loss", "accuracy"), start=1):
        for split, color in SPLIT_COLORS.items():
            part = long[(long["metric"] == metric) & (long["split"] == split)]
            if not part.empty:
                fig.add_trace(go.Scatter(x=part["epoch"], y=part["value"], mode="lines+markers", name=split,
                                         line=dict(color=color), legendgroup=split, showlegend=col == 1),
                              row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=50, b=10), title=title or None)
    return fig


def lr_curve(result: dict[str, Any]) -> go.Figure:
    """core.lr_find's loss (and its smoothed line) against the rate on a log axis, the suggestions marked."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=result["lrs"], y=result["losses"], mode="lines", name="loss",
                             line=dict(color="#c7c7c7", width=1)))
    fig.add_trace(go.Scatter(x=result["lrs"], y=result["smoothed"], mode="lines", name="smoothed",
                             line=dict(color=SPLIT_COLORS["train"], width=2)))
    for (label, rate), symbol in zip(result["suggestions"].items(), ("star", "triangle-down", "circle"), strict=True):
        i = min(range(len(result["lrs"])), key=lambda k: abs(math.log(result["lrs"][k] / rate)))
        fig.add_trace(go.Scatter(x=[rate], y=[result["smoothed"][i]], mode="markers", name=f"{label} {rate:.1e}",
                                 marker=dict(symbol=symbol, size=14 if label == "valley" else 10)))
    fig.add_vline(x=result["suggestion"], line_dash="dash", line_color=SPLIT_COLORS["val"])
    low, high = min(result["smoothed"]), max(result["smoothed"][: max(1, len(result["smoothed"]) // 2)])
    fig.update_xaxes(type="log", title_text="learning rate")
    fig.update_yaxes(title_text="training loss", range=[low - 0.1 * abs(low), high + 0.5 * abs(high - low) + 1e-9])
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return fig


def _none_for_nan(values: Any) -> list[Any]:
    return [None if v is None or v != v else float(v) for v in values]


def sweep(frame: pd.DataFrame, fields: list[str]) -> go.Figure:
    """Test accuracy and wall time against the first swept field (in sweep order), a line per value of the second,
    mean with ± std error bars."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("test accuracy", "wall time (s)"))
    groups = frame.groupby(fields[1], sort=False) if len(fields) > 1 else [(None, frame)]
    palette = px.colors.qualitative.Plotly
    for k, (value, part) in enumerate(groups):
        x = [str(v) for v in part[fields[0]]]
        for col, metric in enumerate(("test_accuracy", "wall_time_s"), start=1):
            fig.add_trace(go.Scatter(
                x=x, y=part[f"{metric}_mean"], mode="lines+markers", legendgroup=str(value), showlegend=col == 1
                and value is not None, name=f"{fields[1]}={value}" if value is not None else metric,
                line=dict(color=palette[k % len(palette)]),
                error_y=dict(type="data", array=_none_for_nan(part[f"{metric}_std"]), visible=True)), row=1, col=col)
    fig.update_xaxes(title_text=fields[0], type="category", categoryorder="array",
                     categoryarray=list(dict.fromkeys(str(v) for v in frame[fields[0]])))  # the sweep's order
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def confusion(matrix: list[list[int]], classes: list[str]) -> go.Figure:
    """A confusion matrix as a heatmap: rows the true class, columns the predicted one, counts written in."""
    fig = px.imshow(matrix, x=classes, y=classes, text_auto=True, color_continuous_scale="Blues",
                    labels=dict(x="predicted", y="true", color="images"), aspect="auto")
    fig.update_layout(height=min(900, 200 + 30 * len(classes)), margin=dict(l=10, r=10, t=30, b=10))
    return fig


def overlaid_curves(long: pd.DataFrame) -> go.Figure:
    """Several runs' curves in two panels (accuracy, loss): a colour per run, validation solid, training dotted.
    `long`: core.run_diff.curves' rows (run_id, epoch, metric, value)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy", "loss"))
    palette = px.colors.qualitative.Plotly
    for k, run_id in enumerate(dict.fromkeys(long["run_id"])):
        for col, metric in enumerate(("accuracy", "loss"), start=1):
            for split, dash in (("val_", "solid"), ("", "dot")):
                part = long[(long["run_id"] == run_id) & (long["metric"] == split + metric)]
                if not part.empty:
                    fig.add_trace(go.Scatter(x=part["epoch"], y=part["value"], mode="lines+markers",
                                             name=f"{run_id} {'val' if split else 'train'}", legendgroup=run_id,
                                             line=dict(color=palette[k % len(palette)], dash=dash),
                                             showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10))
    return fig
