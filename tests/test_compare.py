"""core.compare: scratch-vs-transfer numbers from run summary rows (pure functions, no files)."""

import math

import pandas as pd
import pytest

from core import compare, report
from core.config import results_root


def row(run_id, method, wall, acc, kappa=None, ttt=None, dataset="fruits360-3", parent=None, status="done",
        arch="alexnet4", pipeline=None, **extra):
    return {"run_id": run_id, "status": status, "method": method, "dataset": dataset, "arch": arch,
            "wall_time_s": wall, "test_accuracy": acc, "kappa": acc if kappa is None else kappa,
            "time_to_target_s": ttt, "parent_run": parent, "pipeline": pipeline or method, "preset": "p",
            "freeze": "none" if method == "scratch" else "first:4", **extra}


@pytest.fixture
def rows():
    return [
        row("pre", "scratch", 500.0, 0.6, dataset="cifar10"),
        row("mid", "transfer", 100.0, 0.9, dataset="fruits360", parent="pre"),
        row("s1", "scratch", 100.0, 0.95, ttt=80.0),
        row("s2", "scratch", 120.0, 0.93, ttt=None),
        row("t1", "transfer", 10.0, 0.96, ttt=5.0, parent="mid"),
        row("t2", "transfer", 14.0, 0.98, ttt=7.0, parent="mid"),
        row("t3", "transfer", 12.0, 0.97, ttt=6.0, parent="mid"),
        row("x", "scratch", 1.0, 0.1, status="failed"),
    ]


def test_speedup_and_accuracy_delta(rows):
    result = compare.scratch_vs_transfer(rows, "fruits360-3")
    assert result["speedup"] == pytest.approx(110.0 / 12.0)
    assert result["accuracy_delta"] == pytest.approx(0.97 - 0.94)
    assert result["speedup_to_target"] == pytest.approx(80.0 / 6.0)  # scratch: only s1 reached the target
    assert result["speedup_incl_pretrain"] == pytest.approx(110.0 / (12.0 + 600.0))
    assert result["scratch"]["n"] == 2 and result["transfer"]["n"] == 3  # the failed run is left out


def test_group_summary_mean_and_sample_std(rows):
    summary = compare.group_summary(rows, "fruits360-3").set_index("method")
    t = summary.loc["transfer"]
    assert t["wall_time_s_mean"] == pytest.approx(12.0)
    assert t["wall_time_s_std"] == pytest.approx(2.0)  # sample std (ddof=1) of 10, 14, 12
    assert summary.loc["scratch", "reached_target"] == 1
    assert summary.loc["transfer", "pretrain_time_s_mean"] == pytest.approx(600.0)


def test_one_side_missing_gives_none_not_a_crash(rows):
    only_scratch = [r for r in rows if r["method"] == "scratch"]
    result = compare.scratch_vs_transfer(only_scratch, "fruits360-3")
    assert result["transfer"] is None and result["speedup"] is None and result["accuracy_delta"] is None
    empty = compare.scratch_vs_transfer([], "fruits360-3")
    assert empty["scratch"] is None and empty["speedup"] is None


def test_single_run_has_mean_and_no_std():
    summary = compare.group_summary([row("a", "scratch", 3.0, 0.5)], "fruits360-3")
    assert summary.loc[0, "wall_time_s_mean"] == 3.0 and math.isnan(summary.loc[0, "wall_time_s_std"])


def test_group_by_other_columns(rows):
    rows = rows + [row("t4", "transfer", 20.0, 0.99, parent="mid", arch="alexnet16")]
    summary = compare.group_summary(rows, "fruits360-3", ("method", "arch"))
    assert list(zip(summary["method"], summary["arch"], summary["n"], strict=True)) == [
        ("scratch", "alexnet4", 2), ("transfer", "alexnet16", 1), ("transfer", "alexnet4", 3)]
    points = compare.metric_points(rows, "fruits360-3", ("method", "arch"))
    assert set(points["group"]) == {"scratch / alexnet4", "transfer / alexnet4", "transfer / alexnet16"}


def test_targets_with_both_methods_come_first(rows):
    assert compare.target_datasets(rows)[0] == "fruits360-3"
    assert set(compare.target_datasets(rows)) == {"fruits360-3", "cifar10", "fruits360"}
    assert compare.target_datasets([]) == []


def test_filters(rows):
    options = compare.filter_options(rows)
    assert options["status"] == ["done", "failed"] and "cifar10" in options["dataset"]
    assert {r["run_id"] for r in compare.filter_runs(rows, status=["failed"])} == {"x"}
    assert len(compare.filter_runs(rows, status=[], dataset=None)) == len(rows)
    both = compare.filter_runs(rows, dataset=["fruits360-3"], freeze=["first:4"])
    assert {r["run_id"] for r in both} == {"t1", "t2", "t3"}
    with pytest.raises(ValueError):
        compare.filter_runs(rows, colour=["red"])


def test_runs_table_has_columns_even_when_empty(rows):
    assert list(compare.runs_table([]).columns)[:3] == ["run_id", "status", "created"]
    assert len(compare.runs_table(rows)) == len(rows)


def test_chain_time_follows_parents_and_survives_cycles(rows):
    assert compare.chain_time_s(rows, "t1") == pytest.approx(600.0)
    assert compare.chain_time_s(rows, "pre") == 0.0
    loop = [row("a", "transfer", 1.0, 0.5, parent="b"), row("b", "transfer", 2.0, 0.5, parent="a")]
    assert compare.chain_time_s(loop, "a") == pytest.approx(2.0)


def test_history_long():
    hist = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.2, "val_accuracy": 0.4, "elapsed_s": 3.0},
            {"epoch": 2, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.7, "elapsed_s": 6.0}]
    long = compare.history_long(hist)
    assert len(long) == 8 and set(long["split"]) == {"train", "val"} and set(long["metric"]) == {"loss", "accuracy"}
    assert compare.history_long([]).empty


def test_side_by_side_labels_published_rows(rows):
    summary = pd.DataFrame([{"paper": "B", "table": "Table 2", "model": "AlexNet", "method": "scratch",
                             "target_dataset": "fruits360-3", "n_runs": 10, "time_min": 104.79,
                             "time_min_std": 20.0, "accuracy": 0.95, "accuracy_std": 0.002,
                             "pretrain_time_min": 0.0}])
    table = compare.side_by_side(rows, summary, "fruits360-3")
    assert (table["source"] == "published (hardware unknown)").sum() == 1
    ours = table[table["source"] != "published (hardware unknown)"]
    assert set(ours["method"]) == {"scratch", "transfer"}
    assert ours.set_index("method").loc["transfer", "time_min"] == pytest.approx(12.0 / 60)
    assert compare.published_for(summary, "cifar10").empty


def test_job_summary_fractions_and_format():
    job = {"status": "running", "progress": {"phase": "training", "epoch": 2, "epochs": 4, "batch": 5,
                                             "batches": 10, "eta_s": 75, "stage": 1, "stages": 3, "step": 2,
                                             "steps": 4, "run_id": "r"}}
    s = compare.job_summary(job)
    assert s["epoch_fraction"] == pytest.approx(1.5 / 4) and s["batch_fraction"] == 0.5
    assert s["step_fraction"] == 0.25 and s["run_id"] == "r"
    assert compare.job_summary({"status": "queued"})["epoch_fraction"] == 0.0
    assert compare.format_seconds(75) == "1 min 15 s" and compare.format_seconds(None) == "—"
    assert compare.format_seconds(7300) == "2 h 01 min" and compare.format_seconds(3.21) == "3.2 s"


def test_findings_are_per_device_and_only_paper_b():
    b = {"preset": report.PAPER_B}
    rows = [row("s1", "scratch", 100.0, 0.95, device="CPU", **b), row("s2", "scratch", 140.0, 0.93, device="CPU", **b),
            row("t1", "transfer", 10.0, 0.97, device="CPU", **b), row("t2", "transfer", 10.0, 0.99, device="CPU", **b),
            row("g1", "scratch", 8.0, 0.96, device="GPU: NVIDIA H100", **b),
            row("g2", "transfer", 1.0, 0.98, device="GPU: NVIDIA H100", **b),
            row("a1", "transfer", 1.0, 0.10, device="CPU", arch="alexnet16", preset="paper-a-alexnet-widths",
                n_train=9000),
            row("a2", "transfer", 3.0, 0.30, device="CPU", arch="alexnet16", preset="paper-a-alexnet-widths",
                n_train=45000)]
    text = report.findings_markdown(rows)
    cpu, gpu = text.split("**GPU: NVIDIA H100**")
    assert "| scratch | 2 | 120.0 ± 28.3 |" in cpu and "| transfer (last stage) | 2 | 10.0 ± 0.0 |" in cpu
    assert "**12.0x** faster" in cpu and "**+0.0400**" in cpu  # paper A's run is not mixed in
    assert "| scratch | 1 | 8.0 |" in gpu and "**8.0x** faster" in gpu
    assert "**paper-a-alexnet-widths**" in gpu  # paper A in a table of its own, after paper B
    # a shortened run (fewer training images) is its own row, not averaged with the full one
    assert "| CPU | transfer | 0 | fruits360-3 | 9,000 | alexnet16 | first:4 | 1 | 0.1000 | 1.0 |" in gpu
    assert "| CPU | transfer | 0 | fruits360-3 | 45,000 | alexnet16 | first:4 | 1 | 0.3000 | 3.0 |" in gpu
    assert report.findings_markdown(rows[:2]).startswith("No finished scratch and transfer runs")


def test_cli_report_prints_the_stored_findings(capsys):
    from core import cli

    assert cli.main(["runs", "report"]) == 0
    out = capsys.readouterr().out
    assert "transfer (last stage)" in out and "**paper-d-architecture-survey**" in out


def test_results_readme_findings_are_the_generated_ones():
    """The findings block is never edited by hand: it must equal what `runs report --write` would put there."""
    text = (results_root() / "README.md").read_text()
    block = text.split(report.BEGIN, 1)[1].split(report.END, 1)[0]
    assert block.strip("\n") == report.findings_markdown()


def test_side_by_side_speedup_and_delta_against_the_same_papers_scratch(rows):
    from core import reference

    table = compare.side_by_side(rows, reference.published_summary(), "fruits360-3")
    b = table[table["paper"] == "B Table 5"].iloc[0]
    assert b["speedup"] == pytest.approx(104.79 / 8.53) and b["accuracy_delta"] == pytest.approx(0.96474 - 0.95019)
    assert math.isnan(table[table["paper"] == "A Table 3"].iloc[0]["speedup"])  # paper A: no scratch baseline
    ours = table[table["source"] == "ours (this machine)"].set_index("method")
    assert ours.loc["transfer", "speedup"] == pytest.approx(110.0 / 12.0)
    assert math.isnan(ours.loc["scratch", "speedup"])
