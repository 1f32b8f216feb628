"""The four papers' published tables (results/reference/*.csv), shown beside our own runs.

Numbers are copied from the papers (via ../shared/papers/DIGEST.md); hardware unknown. See
results/reference/README.md for what each file holds and the known caveats. No streamlit here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.config import TransferLabError

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "results" / "reference"

# Columns that hold counts; read as nullable integers so blanks stay blank and 956426 is not 956426.0.
_INT_COLUMNS = (
    "stage", "layer_index", "epochs", "patience", "ms_per_step", "trainable_params", "non_trainable_params",
    "n_runs", "classes", "images", "train", "test", "params", "input_size", "conv_base_params",
    "classifier_params_approx",
)
# Kept as printed text (e.g. "(48,48,16)", "mean", "60,66666667").
_TEXT_COLUMNS = ("run", "output_shape", "minutes_as_printed", "stage_label", "note")

TARGET = "fruits360-3"


def list_tables() -> list[str]:
    """Names of the reference tables (CSV file names without `.csv`), sorted."""
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.csv"))


def load_table(name: str) -> pd.DataFrame:
    """One reference table by name (`paper_b_table2_scratch` or `paper_b_table2_scratch.csv`)."""
    stem = name[:-4] if isinstance(name, str) and name.endswith(".csv") else name
    if stem not in list_tables():
        raise TransferLabError(f"No published table named {name!r}; known: {', '.join(list_tables())}.")
    df = pd.read_csv(REFERENCE_DIR / f"{stem}.csv", dtype={c: "string" for c in _TEXT_COLUMNS})
    for col in _INT_COLUMNS:
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    return df


def _runs(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["run"] != "mean"]


def _mean_row(df: pd.DataFrame) -> pd.Series:
    return df[df["run"] == "mean"].iloc[0]


def published_summary() -> pd.DataFrame:
    """Key published rows for `fruits360-3`, method scratch vs transfer, shown beside our runs.

    Paper B: the printed means of Table 2 (scratch) and Table 5 (transfer), the speedup computed from those
    printed means, and the standard deviation (sample, ddof=1) and plain mean computed from the 10 printed
    runs. Paper A: the printed Fruits360-3 means (10 repeats) per model and pre-training dataset; the paper
    gives no per-run values and no scratch baseline, so std and speedup are blank there.
    `pretrain_time_min` is the printed time of the earlier stages of the same chain (0 for scratch), i.e. the
    one-off cost a transfer run builds on.
    """
    scratch = load_table("paper_b_table2_scratch")
    transfer = load_table("paper_b_stage3_transfer")
    stages = load_table("paper_b_stages")
    scratch_min = float(_mean_row(scratch)["minutes"])
    b_pretrain_min = float(stages.loc[stages["stage"] < 3, "minutes"].sum())
    rows = []
    for df, pretrain, pre_min in ((scratch, None, 0.0), (transfer, "cifar100", b_pretrain_min)):
        mean, runs = _mean_row(df), _runs(df)
        rows.append({
            "paper": mean["paper"], "paper_title": mean["paper_title"], "table": mean["table"],
            "source": "published", "hardware": "unknown", "model": mean["model"], "method": mean["method"],
            "pretrain_dataset": pretrain, "target_dataset": TARGET, "n_runs": len(runs),
            "time_min": float(mean["minutes"]), "time_min_std": float(runs["minutes"].std()),
            "accuracy": float(mean["accuracy"]), "accuracy_std": float(runs["accuracy"].std()),
            "val_accuracy": float("nan"),
            "runs_mean_time_min": float(runs["minutes"].mean()),
            "runs_mean_accuracy": float(runs["accuracy"].mean()),
            "speedup_vs_scratch": scratch_min / float(mean["minutes"]),
            "pretrain_time_min": pre_min,
            "note": "printed mean; std and runs_mean from the 10 printed runs",
        })
    table_a = load_table("paper_a_table3_8")
    a = table_a[(table_a["target_dataset"] == TARGET) & (table_a["aggregate"] == "mean")]
    for _, r in a.iterrows():
        chain = table_a[(table_a["table"] == r["table"]) & (table_a["stage"] < r["stage"])]
        rows.append({
            "paper": r["paper"], "paper_title": r["paper_title"], "table": r["table"],
            "source": "published", "hardware": "unknown", "model": r["model"], "method": r["method"],
            "pretrain_dataset": r["pretrain_dataset"], "target_dataset": TARGET, "n_runs": int(r["n_runs"]),
            "time_min": float(r["time_min"]), "time_min_std": float("nan"),
            "accuracy": float(r["accuracy"]), "accuracy_std": float("nan"),
            "val_accuracy": float(r["val_accuracy"]),
            "runs_mean_time_min": float("nan"), "runs_mean_accuracy": float("nan"),
            "speedup_vs_scratch": float("nan"),
            "pretrain_time_min": float(chain["time_min"].sum()),
            "note": "printed mean of 10 repeats (per-run values not published)",
        })
    return pd.DataFrame(rows)
