"""The Results page's published numbers beside ours: the four papers' tables (results/reference/), with their own
speedup and accuracy delta, next to the runs in scope."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import compare
from pages.results_compare import pm

PUBLISHED = "published (hardware unknown)"


@st.cache_data(show_spinner=False)
def published_summary() -> pd.DataFrame:
    from core import reference

    return reference.published_summary()


@st.cache_data(show_spinner=False)
def reference_tables() -> list[str]:
    from core import reference

    return reference.list_tables()


@st.cache_data(show_spinner=False)
def reference_table(name: str) -> pd.DataFrame:
    from core import reference

    return reference.load_table(name)


def papers_frame(table: pd.DataFrame) -> pd.DataFrame:
    """compare.side_by_side as display text: mean ± std, ratios with ×, and '—' for every empty cell."""
    def text(value: Any, fmt: str) -> str:
        return pm(value, None, fmt)

    def count(value: Any) -> str:
        return "—" if pd.isna(value) else str(int(value))

    return pd.DataFrame({
        "source": table["source"], "paper": table["paper"].replace("", "—").fillna("—"),
        "model": table["model"].fillna("—"), "method": table["method"].fillna("—"),
        "runs": table["n_runs"].map(count),
        "time (min)": [pm(m, s, "{:.2f}") for m, s in zip(table["time_min"], table["time_min_std"], strict=True)],
        "accuracy": [pm(m, s) for m, s in zip(table["accuracy"], table["accuracy_std"], strict=True)],
        "speedup": table["speedup"].map(lambda v: text(v, "{:.2f}×")),
        "accuracy delta": table["accuracy_delta"].map(lambda v: text(v * 100 if pd.notna(v) else v,
                                                                     "{:+.2f} points")),
        "pre-training (min)": table["pretrain_time_min"].map(lambda v: text(v, "{:.1f}")),
    })


def papers(rows: list[dict[str, Any]], dataset: str | None, scope_label: str = "") -> None:
    st.subheader("The papers beside our runs")
    st.caption(f"Rows marked **{PUBLISHED}** are copied from the papers; their times come from unknown "
               "machines, so compare them with ours as orders of magnitude only. Speedup and accuracy delta are "
               "against the scratch row of the same paper (ours: of the same model); paper A published no "
               "scratch baseline.")
    summary = published_summary()
    target = dataset if dataset and not compare.published_for(summary, dataset).empty else "fruits360-3"
    table = compare.side_by_side(rows, summary, target)
    numeric = ["n_runs", "time_min", "time_min_std", "accuracy", "accuracy_std", "pretrain_time_min"]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    st.markdown(f"Target: **{target}**" + (f" · ours: {scope_label}" if scope_label else ""))
    st.table(papers_frame(table))
    with st.expander(f"All published tables ({PUBLISHED})"):
        name = st.selectbox("Table", reference_tables(), key="reference_table")
        st.caption(f"{name}.csv — {PUBLISHED}; see results/reference/README.md for caveats")
        st.dataframe(reference_table(name), hide_index=True, width="stretch")
