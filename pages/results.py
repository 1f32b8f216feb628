"""Results: every run in one table, scratch vs transfer, the papers beside our runs, one run in depth (with where it
errs), two or more runs side by side, and sweeps. `main()` routes; each section lives in its own pages/results_*.py."""

from __future__ import annotations

import streamlit as st

from core import compare
from pages import common, registry
from pages.results_compare import comparison
from pages.results_diff import side_by_side
from pages.results_papers import papers
from pages.results_run import run_detail
from pages.results_runs import all_runs
from pages.results_sweeps import sweeps_view


def main() -> None:
    st.title("Results")
    rows = common.run_rows()
    if not rows:
        common.next_step("No runs yet. Launch a preset or your own pipeline; its runs appear here as they "
                         "train.", registry.TRAIN.path, "Train a model")
        papers(rows, None)
        if common.has_default_model():
            st.divider()
            run_detail(rows)
        return
    clicked = all_runs(rows)
    st.divider()
    dataset, in_scope, label = comparison(rows)
    st.divider()
    papers(in_scope, dataset, label)
    st.divider()
    on_screen = [r["run_id"] for r in compare.finished(in_scope) if r.get("dataset") == dataset]
    run_detail(rows, on_screen, clicked)
    st.divider()
    side_by_side(rows)
    st.divider()
    sweeps_view(rows)


with common.error_boundary("The Results page", only_expected=True):
    main()
