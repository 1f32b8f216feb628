"""The Train page's learning-rate finder: for one stage of the table, core.lr_find's loss against an exponential
rate ramp, the suggestion marked, and a button that writes the suggestion into that stage's learning rate."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from core import lr_find
from core.pipeline import StageConfig
from core.stage_form import FormResult
from pages import charts, common
from pages.train_table import set_cell

MIN_STEPS, DEFAULT_STEPS = 10, 100


def rate_text(rate: float) -> str:
    """7.2e-4: two significant digits, no padded exponent (what the button says and writes)."""
    mantissa, exponent = f"{rate:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def stage_label(rows: list[dict[str, Any]], r: int) -> str:
    row = rows[r]
    return f"row {r + 1}: {row.get('pipeline') or 'pipeline'} · {row.get('name') or row.get('dataset')}"


def parent_choice(stage: StageConfig, key: str) -> str | None:
    """The finished run a stage that continues an earlier one starts from (None: it needs none)."""
    if stage.source.startswith("run:") or not (stage.source == "previous" or stage.source.startswith("stage:")):
        return None
    done = [r for r in common.run_rows() if r["status"] == "done" and r["has_model"] and r.get("arch") == stage.arch]
    label = {r["run_id"]: f"{r['run_id']} · {r.get('dataset')} · test acc "
             + ("—" if r.get("test_accuracy") is None else f"{r['test_accuracy']:.3f}") for r in done}
    return st.selectbox(f"This stage continues {stage.source}: start from the model of", list(label),
                        format_func=label.get, key=f"lr_parent_{key}", index=None,
                        placeholder=f"a finished {stage.arch} run", help="The finder trains a throwaway copy of "
                        "the stage's model, so it needs the run the stage would start from.")


def run_finder(stage: StageConfig, parent: str | None, steps: int) -> dict[str, Any] | None:
    """Runs the finder with its progress shown (the session keeps the result: st.cache_data cannot replay a
    status drawn outside it); None when it failed (the message is shown)."""
    with common.error_boundary("The learning-rate finder") as finding:
        stage, parent = lr_find.finder_stage(stage, parent)
        with st.status("Finding a learning rate…") as status:
            result = lr_find.find_lr(stage, parent, steps=steps, progress=lambda message: status.update(label=message))
            status.update(label=f"Done: {result['steps']} steps in {result['seconds']:.1f} s", state="complete")
    return None if finding.failed else result


def show_result(name: str, table: pd.DataFrame, found: dict[str, Any], current: str) -> None:
    result, r = found["result"], found["row"]
    st.plotly_chart(charts.lr_curve(result), width="stretch", key="lr_curve")
    s = result["suggestions"]
    st.caption(f"Suggested {rate_text(result['suggestion'])} (fastai's valley); steepest fall "
               f"{rate_text(s['steepest'])}, minimum / 10 {rate_text(s['minimum/10'])}. {result['steps']} steps of "
               f"one batch each, from {result['start_lr']:g} up" + (", stopped early once the loss diverged"
                                                                    if result["stopped_early"] else "") + ".")
    if found["stage"] != current:
        st.warning("The stage changed since this curve was measured: run the finder again.", icon=":material/warning:")
        return
    value = float(rate_text(result["suggestion"]))
    if table["learning_rate"].iloc[r] == value:
        st.caption(f"Row {r + 1} trains at {rate_text(value)}.")
    elif st.button(f"Use {rate_text(value)}", key="lr_use", help=f"Write it into row {r + 1}'s learning rate"):
        set_cell(name, table, r, "learning_rate", value)


def lr_finder(name: str, table: pd.DataFrame, form: FormResult) -> None:
    """Pick a valid stage of the table, run the finder on it, plot the curve and offer its suggestion."""
    st.markdown("**Learning-rate finder**")
    rows = table.to_dict("records")
    valid = [r for r, (s, e) in enumerate(zip(form.stages, form.errors, strict=True)) if s is not None and not e]
    if not valid:
        st.caption("Fix the table's problems first: the finder trains a valid stage.")
        return
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    r = c1.selectbox("Stage", valid, format_func=lambda i: stage_label(rows, i), key=f"lr_row_{name}")
    steps = c2.number_input("Steps", min_value=MIN_STEPS, max_value=1000, value=DEFAULT_STEPS, step=10,
                            key="lr_steps", help="batches, each at a higher rate, from 1e-7 up to 10")
    stage = form.stages[r]
    parent = parent_choice(stage, name)
    current = json.dumps({**stage.to_dict(), "learning_rate": None, "parent": parent}, sort_keys=True)  # the ramp sets it
    if c3.button("LR finder", key="lr_find", help="Trains a throwaway copy of this stage's model for a few "
                 "batches while the rate grows; nothing is stored"):
        result = run_finder(stage, parent, int(steps))
        if result is not None:
            st.session_state[f"lr_found_{name}"] = {"row": r, "stage": current, "result": result}
    found = st.session_state.get(f"lr_found_{name}")
    if found and found["row"] == r:
        show_result(name, table, found, current)
        if stage.limit_per_class:
            st.caption(f"⚠ On {stage.limit_per_class} images per class (the stage's limit) the batches repeat "
                       "and the curve is noisy: read the suggestion as a rough range.")
    else:
        st.caption("Loss against an exponentially growing rate: the suggestion sits where the loss falls fastest, "
                   "well before it blows up.")
