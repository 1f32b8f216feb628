"""The papers' published tables in results/reference/: they load, are labelled, and match what the papers print."""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path

import pytest

from core import reference
from core.config import TransferLabError

DIGEST = Path(__file__).resolve().parents[2] / "shared" / "papers" / "DIGEST.md"

EXPECTED_TABLES = {
    "paper_a_table1_datasets", "paper_a_table2_shapes", "paper_a_table3_8",
    "paper_b_table1_model", "paper_b_table2_scratch", "paper_b_stage3_transfer", "paper_b_stages",
    "paper_c_vgg", "paper_d_table1_classic", "paper_d_table2_transfer",
}


def test_every_expected_table_is_there():
    assert EXPECTED_TABLES <= set(reference.list_tables())
    assert (reference.REFERENCE_DIR / "README.md").is_file()


@pytest.mark.parametrize("name", sorted(EXPECTED_TABLES))
def test_every_table_loads_and_is_labelled(name):
    df = reference.load_table(name)
    assert len(df) > 0
    for col in ("paper", "paper_title", "table", "source"):
        assert col in df.columns, f"{name} lacks {col}"
        assert df[col].notna().all(), f"{name}: blank {col}"
    assert set(df["source"]) == {"published"}
    assert set(df["paper"]) == {name.split("_")[1].upper()}
    if "hardware" in df.columns:
        assert set(df["hardware"]) == {"unknown"}


def test_load_table_accepts_csv_suffix_and_rejects_unknown_names():
    assert len(reference.load_table("paper_b_stages.csv")) == 3
    for bad in ("nope", "../README", "paper_b_stages.txt"):
        with pytest.raises(TransferLabError):
            reference.load_table(bad)


# Paper B's per-run tables against their printed means. Table 5 (transfer) agrees within rounding. Table 2
# (scratch) does not, in the paper itself (both copies, and the DIGEST): its runs average 105.733 min /
# 0.950416, while it prints 104.79 (104,7878788) / 0.95019. That discrepancy is pinned here, so a
# transcription slip in any run still fails the test; see results/reference/README.md.
@pytest.mark.parametrize(
    "name, printed_min, printed_acc, runs_min, runs_acc",
    [
        ("paper_b_stage3_transfer", 8.53, 0.96474, 8.53, 0.96474),
        ("paper_b_table2_scratch", 104.79, 0.95019, 105.733, 0.950416),
    ],
)
def test_paper_b_run_tables_against_printed_mean(name, printed_min, printed_acc, runs_min, runs_acc):
    df = reference.load_table(name)
    runs, mean = df[df["run"] != "mean"], df[df["run"] == "mean"]
    assert list(runs["run"]) == [str(i) for i in range(1, 11)]
    assert len(mean) == 1
    assert mean["minutes"].iloc[0] == pytest.approx(printed_min, abs=1e-9)
    assert mean["accuracy"].iloc[0] == pytest.approx(printed_acc, abs=1e-9)
    assert runs["minutes"].mean() == pytest.approx(runs_min, abs=0.01)
    assert runs["accuracy"].mean() == pytest.approx(runs_acc, abs=0.00001)
    # the full-precision minutes printed in the original agree with the rounded ones
    full = runs["minutes_as_printed"].str.replace(",", ".").astype(float)
    assert (full - runs["minutes"]).abs().max() < 0.005 + 1e-9


def test_paper_b_table1_params_sum_to_952931():
    df = reference.load_table("paper_b_table1_model")
    assert int(df["params"].sum()) == 952_931
    assert len(df) == 12


def test_paper_b_stages_and_paper_a_agree_where_they_report_the_same_runs():
    stages = reference.load_table("paper_b_stages").set_index("stage")
    assert stages.loc[1, "minutes"] == 1449.7 and stages.loc[1, "accuracy"] == 0.47080
    assert stages.loc[2, "minutes"] == 310 and stages.loc[2, "accuracy"] == 0.98681
    a = reference.load_table("paper_a_table3_8")
    t4 = a[a["table"] == "Table 4"].set_index("stage")
    assert t4.loc[1, "accuracy"] == stages.loc[1, "accuracy"]
    assert (t4.loc[2, "time_min"], t4.loc[2, "accuracy"]) == (310, 0.98681)
    assert (t4.loc[3, "time_min"], t4.loc[3, "accuracy"]) == (8.53, 0.96474)


def test_paper_a_results_shape():
    a = reference.load_table("paper_a_table3_8")
    assert len(a) == 18
    assert list(a["table"].unique()) == [f"Table {i}" for i in range(3, 9)]
    assert a.groupby("table")["stage"].apply(list).map(lambda s: s == [1, 2, 3]).all()
    assert set(a.loc[a["stage"] == 3, "n_runs"]) == {10}


def test_paper_c_fractions_match_printed_percentages():
    c = reference.load_table("paper_c_vgg")
    assert (c["accuracy"] * 100 - c["accuracy_pct_printed"]).abs().max() < 1e-9
    ft = c[c["phase"] == "fine-tune"].set_index("model")
    tr = c[c["phase"] == "transfer"].set_index("model")
    for model in ("VGG16", "VGG19"):
        gain = ft.loc[model, "accuracy_pct_printed"] - tr.loc[model, "accuracy_pct_printed"]
        assert gain == pytest.approx(ft.loc[model, "gain_pct_printed"], abs=1e-9)


def test_paper_d_long_tables_are_complete():
    t1, t2 = reference.load_table("paper_d_table1_classic"), reference.load_table("paper_d_table2_transfer")
    assert (len(t1), len(t2)) == (3 * 8, 8 * 8)
    assert set(t1["method"]) == {"classic"} and set(t2["method"]) == {"transfer"}
    assert not t1.duplicated(["cnn", "dataset"]).any() and not t2.duplicated(["cnn", "dataset"]).any()
    assert t1["test_accuracy"].between(0, 1).all() and t2["test_accuracy"].between(0, 1).all()


def test_published_summary():
    s = reference.published_summary()
    assert set(s["target_dataset"]) == {"fruits360-3"}
    assert set(s["source"]) == {"published"}
    b = s[s["paper"] == "B"].set_index("method")
    assert (b.loc["scratch", "time_min"], b.loc["transfer", "time_min"]) == (104.79, 8.53)
    assert (b.loc["scratch", "accuracy"], b.loc["transfer", "accuracy"]) == (0.95019, 0.96474)
    assert b.loc["transfer", "speedup_vs_scratch"] == pytest.approx(104.79 / 8.53)
    assert b.loc["transfer", "time_min_std"] > 0 and b.loc["scratch", "accuracy_std"] > 0
    assert b.loc["transfer", "pretrain_time_min"] == pytest.approx(1449.7 + 310)
    a = s[s["paper"] == "A"]
    assert len(a) == 6 and set(a["model"]) == {"AlexNet16", "AlexNet32", "AlexNet64"}
    assert a["time_min_std"].isna().all()
    row = a[(a["model"] == "AlexNet16") & (a["pretrain_dataset"] == "cifar10")].iloc[0]
    assert (row["time_min"], row["accuracy"], row["val_accuracy"]) == (3.28, 0.96269, 0.97239)
    assert not math.isnan(row["pretrain_time_min"])


# --- Cross-check the CSV text, cell by cell, against the DIGEST the numbers were copied from ---------------

def _raw(name: str) -> list[dict[str, str]]:
    with open(reference.REFERENCE_DIR / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def _digest_tables(section: str) -> list[list[list[str]]]:
    """The markdown tables of one DIGEST section ('A'..'D'), each a list of rows of stripped cells, no header."""
    text = DIGEST.read_text(encoding="utf-8")
    part = re.split(r"^## ", text, flags=re.M)
    body = next(p for p in part if p.startswith(f"{section}. "))
    tables, current = [], []
    for line in body.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append([r for r in current[2:]])  # drop header and |---| rule
            current = []
    return tables


def _num(cell: str) -> str:
    return cell.replace(",", "")


needs_digest = pytest.mark.skipif(
    not DIGEST.is_file() and os.environ.get("CI") != "true",
    reason="../shared/papers/DIGEST.md not present (outside CI only; in CI a missing DIGEST fails)",
)


@needs_digest
def test_paper_a_matches_digest():
    datasets_t, shapes_t, results_t = _digest_tables("A")
    assert [[r["dataset_label"], r["classes"], r["images"], r["train"], r["test"]]
            for r in _raw("paper_a_table1_datasets")] == [[c[0]] + [_num(x) for x in c[1:]] for c in datasets_t]
    shapes = _raw("paper_a_table2_shapes")
    for mi, model in enumerate(["AlexNet16", "AlexNet32", "AlexNet64"]):
        ours = [r for r in shapes if r["model"] == model]
        assert [r["layer"] for r in ours] == [c[0] for c in shapes_t]
        prev = None
        for r, c in zip(ours, shapes_t, strict=True):
            want = prev if c[1 + mi] == "same" else c[1 + mi]
            assert r["output_shape"] == want, (model, r["layer"])
            prev = want
    cols = ["model", "epochs", "patience", "ms_per_step", "time_min", "trainable_params",
            "non_trainable_params", "accuracy", "val_accuracy"]
    ours = _raw("paper_a_table3_8")
    assert len(ours) == len(results_t)
    for r, c in zip(ours, results_t, strict=True):
        assert [r[k] for k in cols] == [c[0]] + [_num(x) for x in c[2:]], r["table"]
        assert c[1].lower().startswith(r["stage_label"].split(" (")[0].lower())


@needs_digest
def test_paper_b_matches_digest():
    model_t, scratch_t, transfer_t = _digest_tables("B")
    ours = _raw("paper_b_table1_model")
    assert [[r["layer"], r["output_shape"], r["params"]] for r in ours] == [[c[1], c[2], _num(c[3])] for c in model_t]
    blocks = [c[0] for c in model_t if c[0]]
    assert [r["block"] for r in ours if "block cell blank" not in r["note"]] == blocks
    for name, table in (("paper_b_table2_scratch", scratch_t), ("paper_b_stage3_transfer", transfer_t)):
        assert [[r["run"], r["minutes"], r["accuracy"]] for r in _raw(name)] == table
    text = DIGEST.read_text(encoding="utf-8")
    stages = _raw("paper_b_stages")
    assert f"{stages[0]['minutes']} min, accuracy {stages[0]['accuracy']}" in text
    assert f"Stage 2 (Fruits360-120): {stages[1]['minutes']} min, {stages[1]['accuracy']}" in text


@needs_digest
def test_paper_c_matches_digest():
    text = DIGEST.read_text(encoding="utf-8")
    section = " ".join(text[text.index("## C.") : text.index("## D.")].split())
    for r in _raw("paper_c_vgg"):
        assert f"{r['model']} {r['accuracy_pct_printed']} %" in section
        if r["gain_pct_printed"]:
            assert f"(+{r['gain_pct_printed']})" in section
        if r["conv_base_params"]:
            assert f"{int(r['conv_base_params']):,} parameters" in section
    assert "learning rate 1e-5" in section and "2 epochs" in section and "150x150x3" in section


@needs_digest
def test_paper_d_matches_digest():
    for name, table in zip(("paper_d_table1_classic", "paper_d_table2_transfer"), _digest_tables("D"), strict=True):
        ours = _raw(name)
        want = [(c[0], acc) for c in table for acc in c[1:]]
        assert [(r["cnn"], r["test_accuracy"]) for r in ours] == want
