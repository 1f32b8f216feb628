"""The Results page's Evaluations tab: a model's stored scores on other datasets beside its own test score, and a
form that evaluates it on an imported dataset with a class mapping (`core.evaluate`). Drawing only."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from core import evaluate
from pages import common

MAX_SELECTS = 20  # more dataset classes than this: the mapping is typed as lines (patterns allowed)


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"


def _scores_table(run: dict[str, Any], stored: list[dict[str, Any]]) -> pd.DataFrame:
    own = evaluate.own_test_score(run)
    stage = run["config"].get("stage", {})
    rows = [{"evaluated on": f"{stage.get('dataset', '?')} (its own test split)", "images": own["n"],
             "accuracy": own["accuracy"], "balanced accuracy": own["balanced_accuracy"],
             **{f"recall {c}": r for c, r in own["recall"].items()}}]
    for e in stored:
        rows.append({"evaluated on": f"{e['dataset']} ({e['split']})", "images": e["n"], "accuracy": e["accuracy"],
                     "balanced accuracy": e["balanced_accuracy"],
                     **{f"recall {p['class']}": p["recall"] for p in e["per_class"]}})
    return pd.DataFrame(rows)


def _heatmap(e: dict[str, Any]) -> None:
    fig = px.imshow(e["confusion"], x=e["classes"], y=e["classes"], text_auto=True, color_continuous_scale="Blues",
                    labels=dict(x="model's answer", y="true class (mapped)", color="images"), aspect="auto")
    fig.update_layout(height=min(700, 200 + 40 * len(e["classes"])), margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig, width="stretch", key=f"eval_heatmap_{e['dataset']}_{e['split']}")


def _one(e: dict[str, Any]) -> None:
    mapped = ", ".join(f"{k} → {v}" for k, v in e["mapping"].items() if k != v) or "by name"
    st.markdown(f"**{e['dataset']}** · {e['split']} split · {e['n']} images · mapping {mapped} · "
                f"evaluated {e.get('evaluated_at', '?')}")
    left, right = st.columns(2)
    with left:
        c1, c2 = st.columns(2)
        c1.metric("Accuracy", _fmt(e["accuracy"]))
        c2.metric("Balanced accuracy", _fmt(e["balanced_accuracy"]))
        st.dataframe(pd.DataFrame(e["per_class"]), hide_index=True, width="stretch")
    with right:
        _heatmap(e)


def _mapping_inputs(run_id: str, classes: list[str], labels: list[str]) -> dict[str, str]:
    guess = evaluate.suggest_mapping(classes, labels)
    if len(classes) > MAX_SELECTS:
        lines = "\n".join(f"{c}={m}" for c, m in guess.items() if m and m != c)
        text = st.text_area(f"Class mapping, one DATASET_CLASS=MODEL_CLASS per line (model classes: "
                            f"{', '.join(labels)}; patterns like Apple*=apple; same names map by themselves)",
                            value=lines, key=f"eval_map_text_{run_id}")
        return evaluate.parse_mapping([line for line in text.splitlines() if line.strip()])
    st.caption("Dataset class → model class")
    picked = {c: st.selectbox(c, labels, index=labels.index(guess[c]) if guess[c] else None,
                              placeholder="choose a model class", key=f"eval_map_{run_id}_{c}") for c in classes}
    return {c: m for c, m in picked.items() if m}


def _form(run: dict[str, Any]) -> None:
    st.markdown("**Evaluate on a dataset**")
    run_id, labels = run["run_id"], run["labels"]
    if not run["has_model"]:
        st.caption("This run has no saved model to evaluate.")
        return
    names = common.available_datasets()
    if not names:
        st.caption("No dataset is available: import one on the Datasets page first.")
        return
    dataset = st.selectbox("Dataset", names, key=f"eval_dataset_{run_id}")
    with common.error_boundary("Reading the dataset", only_expected=True) as reading:
        classes = common.describe(dataset)["classes"]
        split = evaluate.default_split(run_id, dataset)
    if reading.failed:
        return
    with st.form(f"evaluate_{run_id}_{dataset}"):
        split = st.selectbox("Split", evaluate.SPLITS, index=evaluate.SPLITS.index(split),
                             key=f"eval_split_{run_id}", help="all: every image (for a set kept only for evaluation)")
        with common.error_boundary("Reading the class mapping", only_expected=True) as mapping_read:
            mapping = _mapping_inputs(run_id, classes, labels)
        submitted = st.form_submit_button("Evaluate", type="primary")
    if not submitted or mapping_read.failed:
        return
    with (st.spinner(f"Evaluating {run_id} on {dataset} ({split})…"),
          common.error_boundary("The evaluation") as evaluating):
        result = evaluate.evaluate(run_id, dataset, mapping, split)
    if evaluating.failed:
        return
    common.clear_run_caches()
    st.session_state["evaluation_done"] = (f"Evaluated on {dataset} ({split}, {result['n']} images): accuracy "
                                           f"{result['accuracy']:.4f}, balanced accuracy "
                                           f"{result['balanced_accuracy']:.4f}; stored with the run.")
    st.rerun()


def section(run: dict[str, Any]) -> None:
    """Stored evaluations beside the run's own test score, then the form."""
    if "evaluation_done" in st.session_state:
        st.success(st.session_state.pop("evaluation_done"))
    stored = run.get("evaluations") or []
    st.dataframe(_scores_table(run, stored), hide_index=True, width="stretch")
    if not stored:
        st.caption("No evaluations on other datasets yet: evaluate this model below (or `python -m core evaluate "
                   f"{run['run_id']} DATASET --map other=noise`).")
    for e in stored:
        st.divider()
        _one(e)
    st.divider()
    _form(run)
