"""Before launch: each stage's problems and its trainable / frozen parameter counts (core.stage_params), and the
estimated run time from this machine's measured throughput (core.estimate)."""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from core import compare, estimate, stage_params
from core.pipeline import Experiment, StageConfig
from core.stage_form import FormResult
from pages import common

AUTO_COUNT_LIMIT = 8  # distinct models built automatically for parameter counts; more on request
ERROR_STYLE = "color: #b00020; font-weight: 600"


@st.cache_data(show_spinner=False, max_entries=256)
def _param_counts(root: str, key: tuple, mtime: float, num_classes: int, _stage: StageConfig) -> dict[str, int]:
    return stage_params.stage_param_counts(_stage, num_classes)


@st.cache_data(ttl=30, show_spinner=False)
def _num_classes(root: str, dataset: str) -> int:
    from core import datasets

    return len(datasets.dataset_classes(dataset))


@st.cache_data(max_entries=4, show_spinner=False)
def _throughputs(root: str, finished: tuple[str, ...], device: str) -> dict[tuple[str, int], float]:
    return estimate.measured_throughputs(device)


def param_counts(stage: StageConfig) -> dict[str, int]:
    """Cached by what decides the model; a parent run's model also by its file's modification time."""
    parent = stage.source[4:] if stage.source.startswith("run:") else None
    return _param_counts(common.results_key(), stage_params.model_key(stage),
                         common.model_mtime(parent) if parent else 0.0,
                         _num_classes(common.data_key(), stage.dataset), stage)


def check_rows(rows: list[dict[str, Any]], form: FormResult, count: bool) -> pd.DataFrame:
    """One row per stage: ok, its problems, and (when counting) trainable / frozen parameters. A count that
    fails (a freeze policy matching no layer of this model) becomes the row's freeze error in `form.errors`."""
    out = []
    for r, row in enumerate(rows):
        errors, stage = form.errors[r], form.stages[r]
        line: dict[str, Any] = {"pipeline": row.get("pipeline"), "stage": row.get("name") or r}
        if count and not errors and stage is not None:
            with common.error_boundary("Counting the parameters", only_expected=True,
                                       show=partial(errors.__setitem__, "freeze")):
                line.update(param_counts(stage))
        line.update(ok="yes" if not errors else "no", problems="; ".join(f"{f}: {m}" for f, m in errors.items()))
        out.append(line)
    return pd.DataFrame(out)


def _highlight(df: pd.DataFrame) -> pd.DataFrame:
    styles = pd.DataFrame("", index=df.index, columns=df.columns)
    styles.loc[df["ok"] == "no", ["ok", "problems"]] = ERROR_STYLE
    return styles


def check_table(rows: list[dict[str, Any]], form: FormResult) -> None:
    """Each row's problems next to its fields, and the parameter counts of every valid stage."""
    valid = [s for s, e in zip(form.stages, form.errors, strict=True) if s is not None and not e]
    distinct = {(s.dataset, *stage_params.model_key(s)) for s in valid}
    count = bool(valid) and (len(distinct) <= AUTO_COUNT_LIMIT or bool(st.session_state.get("count_params")))
    if valid and not count:
        st.button(f"Count parameters ({len(distinct)} models to build)", key="count_params_btn",
                  on_click=lambda: st.session_state.update(count_params=True))
    busy = st.spinner("Building the models to count their parameters…") if count else contextlib.nullcontext()
    with busy:
        frame = check_rows(rows, form, count)
    st.dataframe(frame.style.apply(_highlight, axis=None), hide_index=True, width="stretch",
                 column_order=[c for c in ("pipeline", "stage", "ok", "problems", "trainable", "frozen",
                                           "frozen_layers") if c in frame.columns],
                 column_config={"trainable": st.column_config.NumberColumn(format="localized"),
                                "frozen": st.column_config.NumberColumn(
                                    "frozen", format="localized",
                                    help="non-trainable: frozen weights plus BatchNorm statistics"),
                                "frozen_layers": st.column_config.NumberColumn("frozen layers"),
                                "problems": st.column_config.TextColumn(width="large")})
    for r, errors in enumerate(form.errors):
        for field, message in errors.items():
            st.error(f"Row {r + 1} ({rows[r].get('pipeline')}, {rows[r].get('name') or 'stage'}) — "
                     f"**{field}**: {message}", icon=":material/warning:")


def run_time_estimate(exp: Experiment) -> None:
    """Per stage and in total, from this machine's measured throughput."""
    probed = common.device_label()
    if probed is None:
        st.caption("Estimated run time: waiting for the device probe.")
        return
    device = "CPU" if probed.startswith("CPU") else probed  # as the runs' metrics name it
    finished = tuple(r["run_id"] for r in common.run_rows() if r["status"] == "done")
    rows = estimate.estimate(exp, lambda name: common.describe(name)["counts"]["train"],
                             _throughputs(common.results_key(), finished, device))
    known = [r["seconds"] for r in rows if r["seconds"] is not None]
    missing = sorted({r["note"] for r in rows if r["seconds"] is None})
    total = compare.format_seconds(sum(known)) if known else "—"
    st.markdown(f"**Estimated run time: {total}**" + (" for the stages with an estimate" if missing and known
                                                        else ""))
    st.caption(f"An estimate from the median training throughput (images/s) of the finished runs on {device} "
               "with the same architecture and input size; early stopping can end runs sooner. "
               + (" · ".join(missing) if missing else ""))
    st.dataframe(pd.DataFrame([{
        "pipeline": r["pipeline"], "stage": r["stage"], "arch": r["arch"], "input size": r["input_size"],
        "runs": r["runs"], "images/epoch": r["images_per_epoch"],
        "images/s (measured)": None if r["images_per_s"] is None else round(r["images_per_s"], 1),
        "estimated time": compare.format_seconds(r["seconds"]) if r["seconds"] is not None else r["note"]}
        for r in rows]), hide_index=True, width="stretch")
