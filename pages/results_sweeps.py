"""The Results page's sweeps: a stored sweep's test accuracy and wall time against the swept field (mean ± std over
repeats, as error bars), its table, and what could mislead in it (core.sweeps.overview)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import sweeps
from pages import charts, common
from pages.results_compare import pm


@st.cache_data(show_spinner="Reading the sweep's runs…", max_entries=8)
def _overview(root: str, name: str, members: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return sweeps.overview(name)


def table(frame: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    """The aggregate as text cells: 'mean ± std', and where a value has one run, a note instead of a spread."""
    return pd.DataFrame([{
        **{f: r[f] for f in fields}, "runs": int(r["runs"]),
        "test accuracy": pm(r["test_accuracy_mean"], r["test_accuracy_std"]),
        "wall time (s)": pm(r["wall_time_s_mean"], r["wall_time_s_std"], "{:.1f}"),
        "time to target (s)": pm(r["time_to_target_s_mean"], r["time_to_target_s_std"], "{:.1f}"),
        "trainable params": "—" if pd.isna(r["trainable_params"]) else f"{int(r['trainable_params']):,}",
        "note": "no spread: 1 run" if r["runs"] == 1 else ""} for _, r in frame.iterrows()])


def sweeps_view(rows: list[dict[str, Any]]) -> None:
    st.subheader("Sweeps")
    names = sweeps.names_in(rows)
    if not names:
        st.info("No sweep stored yet. Launch the preset paper-b-freeze-sweep on Train, or run one: `python -m core "
                "sweep run --preset paper-b-scratch-vs-transfer --pipeline transfer --vary freeze=none,first:2,"
                "first:4 --repeats 3`.", icon=":material/info:")
        return
    name = st.selectbox("Sweep", names, key="sweep_name", help="The runs' preset: one sweep, one job")
    members = tuple((r["run_id"], str(r["status"])) for r in rows if r.get("preset") == name)
    with common.error_boundary("Reading the sweep", only_expected=True) as reading:
        view = _overview(common.results_key(), name, members)
    if reading.failed:
        return
    frame, fields = view["table"], view["fields"]
    if len(view["devices"]) > 1:
        device = st.selectbox("On device", view["devices"], key="sweep_device",
                              help="Wall times from different devices do not compare")
        frame = frame[frame["device"] == device]
    if view["notes"]:
        st.warning("Read with care — " + "; ".join(view["notes"]), icon=":material/warning:")
    st.plotly_chart(charts.sweep(frame, fields), width="stretch", key="sweep_chart")
    st.caption(f"mean ± standard deviation over each value's runs (error bars; none with one run) · "
               f"{int(frame['runs'].sum())} finished runs · `python -m core sweep show {name}`")
    st.dataframe(table(frame, fields), hide_index=True, width="stretch")
