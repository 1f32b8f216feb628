"""The Train page's stage table: one editable row per stage (its options from core's own lists), and the row of
inputs that sets a field on every stage at once. Returns the edited table; core.stage_form reads it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import models, pipeline, schedules, stage_form
from core.pipeline import Experiment
from pages import common

# the fields the table shows, in order; the rest of a stage's fields come from the preset
COLUMNS = ("pipeline", "name", "dataset", "source", "arch", "freeze", "head", "optimizer", "learning_rate",
           "schedule", "warmup_epochs", "weight_decay", "lr_mult", "epochs", "fine_tune_epochs", "unfreeze",
           "unfreeze_divisor", "batch_size", "patience", "augment", "composite", "composite_copies", "noise_images",
           "input_size", "limit_per_class", "seed", "target_accuracy", "repeats")
WHOLE_NUMBERS = [c for c in COLUMNS if c in stage_form.WHOLE_NUMBER_FIELDS or c == "repeats"]
OPTIONAL_FLOATS = ["weight_decay"]
SET_ALL = {"epochs": "epochs", "limit_per_class": "images per class", "batch_size": "batch size",
           "input_size": "input size", "repeats": "repeats"}


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole-number columns as nullable integers (the editor shows 3, not 3.0, and keeps blanks blank), and a
    number column that may be blank in every row as nullable floats (not text)."""
    frame[WHOLE_NUMBERS] = frame[WHOLE_NUMBERS].astype("Int64")
    frame[OPTIONAL_FLOATS] = frame[OPTIONAL_FLOATS].astype("Float64")
    return frame


def stages_frame(exp: Experiment) -> pd.DataFrame:
    return typed(pd.DataFrame(stage_form.experiment_rows(exp), columns=list(COLUMNS)))


def column_config() -> dict[str, object]:
    done_runs = [r["run_id"] for r in common.run_rows() if r["status"] == "done" and r["has_model"]]
    number = st.column_config.NumberColumn
    return {
        "pipeline": st.column_config.TextColumn(help="Rows with the same pipeline name run in order, each "
                                                     "stage from the one before."),
        "dataset": st.column_config.SelectboxColumn(options=[d["name"] for d in common.dataset_rows()],
                                                    help="Datasets page lists them"),
        "source": st.column_config.SelectboxColumn(options=stage_form.source_options(done_runs), help=(
            "scratch, previous (the stage above), stage:N, imagenet, or run:<id> (a finished run)")),
        "arch": st.column_config.SelectboxColumn(options=list(models.ARCHS)),
        "freeze": st.column_config.TextColumn(help="none, all, all-but-head, first:N, last-block, or layer "
                                                   "name patterns like block*"),
        "head": st.column_config.SelectboxColumn(options=list(pipeline.HEADS),
                                                 help="new: replace the output layer; keep: keep it"),
        "optimizer": st.column_config.SelectboxColumn(options=list(pipeline.OPTIMIZERS)),
        "learning_rate": number("learning rate", format="%.6f", step=1e-6, help="the LR finder below suggests one"),
        "schedule": st.column_config.SelectboxColumn(options=list(schedules.SCHEDULES), help=(
            "constant, cosine (down to 0) or one_cycle (fastai: up from lr/25, then down), stepped per batch")),
        "warmup_epochs": number("warm-up", format="%.2f", min_value=0.0, help=(
            "epochs of linear warm-up from 0; for one_cycle the length of its rise (0: a quarter)")),
        "weight_decay": number("weight decay", format="%.5f", min_value=0.0, help=(
            "decoupled weight decay; empty: the optimizer's own (adamw 0.004, the others none)")),
        "lr_mult": number("lr mult", format="%.2f", min_value=0.0, help=(
            "discriminative rates: the layer group d groups below the head trains at lr × lr_mult^d")),
        "fine_tune_epochs": number("fine-tune epochs", min_value=0, help=(
            "fastai's fine_tune: after `epochs` with `freeze`, this many more with `unfreeze`; 0: off")),
        "unfreeze": st.column_config.TextColumn(help="what trains in the fine-tune phase: all, or last:K (the last "
                                                     "K conv blocks); +batchnorm keeps every BatchNorm frozen"),
        "unfreeze_divisor": number("unfreeze ÷", format="%.1f", min_value=1.0, help=(
            "the fine-tune phase's peak rate is learning_rate / this")),
        "augment": st.column_config.TextColumn(help="comma-separated: " + ", ".join(pipeline.AUGMENTATIONS)),
        "composite": number(format="%.2f", min_value=0.0, max_value=1.0, help=(
            "share of training images pasted onto random scenes (lab -> real photos); 0: off")),
        "composite_copies": number("copies", help="with a frozen backbone: composited copies whose features are "
                                                  "cached; 0: on the fly"),
        "noise_images": number("noise imgs", help="extra 'noise' images: backgrounds alone and CIFAR-10 scenes "
                                                  "(needs a noise class)"),
        "input_size": number("input size", help="empty: the architecture's default"),
        "limit_per_class": number("limit/class", help="cap images per class and split (quick runs); empty: all"),
        "target_accuracy": number("target acc", format="%.3f", help="for time-to-target"),
        "repeats": number(help="on a pipeline's last stage: how many times it runs (seed + repeat)"),
    }


def stage_table(name: str, exp: Experiment) -> pd.DataFrame:
    """The editor, showing the experiment's stages or the table last stored by "set for every stage"."""
    frame = st.session_state.get(f"stage_frame_{name}")
    version = st.session_state.get(f"stage_version_{name}", 0)
    return st.data_editor(stages_frame(exp) if frame is None else frame,
                          key=f"stages_{name}" + (f"_{version}" if version else ""), num_rows="dynamic",
                          hide_index=True, width="stretch", column_config=column_config())


def set_all_inputs() -> tuple[dict[str, int], bool]:
    """A row of inputs for the common fields (blank: leave as is) and its Apply button."""
    st.caption("Set for every stage (as the CLI's `--set`); blank fields are left as they are.")
    cols = st.columns(len(SET_ALL) + 1, vertical_alignment="bottom")
    values = {field: cols[i].number_input(label, min_value=1, value=None, step=1, key=f"set_all_{field}")
              for i, (field, label) in enumerate(SET_ALL.items())}
    applied = cols[-1].button("Apply to every stage", key="set_all_apply")
    return {f: int(v) for f, v in values.items() if v is not None}, applied


def set_every_stage(table: pd.DataFrame, values: dict[str, int]) -> pd.DataFrame:
    """The table with the fields set on every row; repeats on each pipeline's last row (the one that repeats)."""
    out = table.copy()
    for field, value in values.items():
        if field == "repeats":
            out.loc[~out["pipeline"].duplicated(keep="last"), "repeats"] = value
        else:
            out[field] = value
    return typed(out).reset_index(drop=True)


def replace_table(name: str, table: pd.DataFrame) -> None:
    """Stores a changed table as the editor's data under a fresh key (the old key's edits are in it) and redraws."""
    st.session_state[f"stage_frame_{name}"] = table
    st.session_state[f"stage_version_{name}"] = st.session_state.get(f"stage_version_{name}", 0) + 1
    st.rerun()


def apply_set_all(name: str, table: pd.DataFrame, values: dict[str, int]) -> None:
    replace_table(name, set_every_stage(table, values))


def set_cell(name: str, table: pd.DataFrame, row: int, field: str, value: object) -> None:
    """One cell of the table set (the LR finder's "Use" button), every other edit kept."""
    out = table.copy().reset_index(drop=True)
    out.loc[row, field] = value
    replace_table(name, typed(out))


def edited_stages(name: str, exp: Experiment) -> pd.DataFrame:
    """The set-for-every-stage row, then the table; applying the row redraws the table with it."""
    set_values, set_clicked = set_all_inputs()
    table = stage_table(name, exp)
    if set_clicked and set_values:
        apply_set_all(name, table, set_values)
    return table
