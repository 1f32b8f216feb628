"""The Results page's side-by-side comparison of two or more runs (core.run_diff): what differs in their configs
(highlighted), their curves overlaid, headline metrics and confusion matrices next to each other."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import run_diff
from pages import charts, common

MAX_RUNS = 6
MATRICES_PER_ROW = 3
DIFF_STYLE = "background-color: #fff3cd; font-weight: 600"


@st.cache_data(ttl=5, show_spinner=False, max_entries=8)
def _curves(root: str, run_ids: tuple[str, ...]) -> pd.DataFrame:
    return run_diff.curves(run_ids)


@st.cache_data(ttl=5, show_spinner=False, max_entries=8)
def _confusions(root: str, run_ids: tuple[str, ...]) -> dict[str, pd.DataFrame | None]:
    return run_diff.confusions(run_ids)


def _cell(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and value != value) else str(value)


def config_table(records: list[dict[str, Any]]) -> None:
    every = st.toggle("Every config field", key="compare_all_fields", help="Off: only the fields that differ")
    diff = run_diff.config_diff(records, only_different=not every)
    if diff.empty:
        st.caption("Their configs are the same: any difference below comes from chance (or the machine).")
        return
    ids = [r["run_id"] for r in records]
    shown = diff.assign(**{i: diff[i].map(_cell) for i in ids})  # one type per column
    styled = shown.style.apply(lambda row: [DIFF_STYLE if row["differs"] else ""] * len(row), axis=1)
    st.dataframe(styled, hide_index=True, width="stretch", column_order=["field", *ids],
                 column_config={"field": st.column_config.TextColumn(width="medium")})
    st.caption(f"{int(diff['differs'].sum())} field(s) differ (highlighted)" + ("" if every else
                                                                               "; the rest are the same"))


def metrics_table(records: list[dict[str, Any]]) -> None:
    table = run_diff.metrics(records).set_index("run_id").T
    st.dataframe(table.map(lambda v: f"{v:.4f}" if isinstance(v, float) else _cell(v)).rename_axis("metric"),
                 width="stretch")


def matrices(run_ids: list[str]) -> None:
    found = _confusions(common.results_key(), tuple(run_ids))
    for start in range(0, len(run_ids), MATRICES_PER_ROW):
        for col, run_id in zip(st.columns(MATRICES_PER_ROW), run_ids[start:start + MATRICES_PER_ROW], strict=False):
            with col:
                st.caption(run_id)
                if found.get(run_id) is None:
                    st.caption("No confusion matrix (not finished, or too many classes to draw).")
                else:
                    frame = found[run_id]
                    st.plotly_chart(charts.confusion(frame.values.tolist(), list(frame.index)), width="stretch",
                                    key=f"diff_cm_{run_id}")


def label(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {r["run_id"]: f"{r['run_id']} · {common.status_label(r['status'])} · "
            + ("—" if r.get("test_accuracy") is None else f"test acc {r['test_accuracy']:.4f}") for r in rows}


def side_by_side(rows: list[dict[str, Any]]) -> None:
    st.subheader("Compare runs side by side")
    names = label(rows)
    picked = st.multiselect("Runs", list(names), format_func=names.get, key="compare_runs", max_selections=MAX_RUNS,
                            placeholder="Pick two or more runs (up to six)")
    if len(picked) < 2:
        st.caption("Pick two or more runs: what differs in their configs, their curves overlaid, their metrics and "
                   "confusion matrices next to each other.")
        return
    with common.error_boundary("Reading the runs", only_expected=True) as reading:
        records = [common.get_run(run_id) for run_id in picked]
    if reading.failed:
        return
    cautions = run_diff.cautions(records)
    if cautions:
        st.warning("Read with care — " + " ".join(cautions), icon=":material/warning:")
    config_table(records)
    long = _curves(common.results_key(), tuple(picked))
    if long.empty:
        st.caption("No epochs recorded for these runs.")
    else:
        st.plotly_chart(charts.overlaid_curves(long), width="stretch", key="diff_curves")
    metrics_table(records)
    matrices(picked)
