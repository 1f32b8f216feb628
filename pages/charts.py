"""Plotly figures more than one page draws. Figures only: the pages put them on screen."""

from __future__ import annotations

from typing import Any

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
