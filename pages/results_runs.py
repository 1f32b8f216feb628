"""The Results page's table of every run: filters, tags, CSV download, and the row a user clicks."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import compare, run_admin


def table_columns() -> dict[str, Any]:
    """How the runs table labels and formats its columns (the columns themselves: core.compare.runs_table)."""
    return {
        "test_accuracy": st.column_config.NumberColumn("test acc", format="%.4f"),
        "val_accuracy": st.column_config.NumberColumn("val acc", format="%.4f"),
        "kappa": st.column_config.NumberColumn(format="%.4f"),
        "wall_time_s": st.column_config.NumberColumn("wall time (s)", format="%.1f"),
        "time_to_target_s": st.column_config.NumberColumn("time to target (s)", format="%.1f"),
    }


def filters(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """One multiselect per filter column; returns the choices (empty = all)."""
    options = compare.filter_options(rows)
    cols = st.columns(len(compare.FILTERS))
    return {col: c.multiselect(col.replace("_", " "), options[col], key=f"filter_{col}")
            for c, col in zip(cols, compare.FILTERS, strict=True)}


def tag_filter(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds each run's tags to its row and keeps the rows holding any chosen tag."""
    rows = run_admin.with_tags(rows)
    chosen = st.multiselect("tags", run_admin.tag_options(rows), key="filter_tags",
                            placeholder="Any tag (runs are tagged in the one-run view)")
    return run_admin.filter_by_tags(rows, chosen)


def all_runs(rows: list[dict[str, Any]]) -> str | None:
    """Draws the runs table; returns the run id of the row clicked in it, if any."""
    st.subheader("All runs")
    chosen = filters(rows)
    shown = tag_filter(compare.filter_runs(rows, **chosen))
    table = compare.runs_table(shown)
    st.caption(f"{len(shown)} of {len(rows)} runs · click a column header to sort, a row to see that run below")
    event = st.dataframe(table, hide_index=True, width="stretch", key="runs_table", on_select="rerun",
                         selection_mode="single-row", column_config=table_columns())
    st.download_button("Download these runs (CSV)", table.to_csv(index=False).encode(), file_name="runs.csv",
                       mime="text/csv", on_click="ignore")
    picked = event.selection.rows if event else []
    return str(table["run_id"].iloc[picked[0]]) if picked and picked[0] < len(table) else None
