"""What the tuning views read from core: the bench's stored time to 0.99 / 0.995 (core.recipe_times), the LR
finder's stage and parent (lr_find.finder_stage), the side-by-side cautions (run_diff.cautions) and the sweep names."""

from __future__ import annotations

import pytest
from faultkit import model_run, recorded_run

from core import lr_find, recipe_times, run_diff, runs, sweeps
from core.config import TransferLabError
from core.pipeline import StageConfig


def test_time_to_reads_the_first_epoch_at_the_threshold():
    history = [{"epoch": 1, "val_accuracy": 0.98, "elapsed_s": 3.0}, {"epoch": 2, "val_accuracy": 0.992,
                                                                       "elapsed_s": 5.5},
               {"epoch": 3, "val_accuracy": 0.996, "elapsed_s": 8.0}]
    assert recipe_times.time_to(history, 0.99) == 5.5 and recipe_times.time_to(history, 0.995) == 8.0
    assert recipe_times.time_to(history, 0.999) is None and recipe_times.time_to([], 0.99) is None


def test_bench_prints_the_recipe_beside_paper_b_from_stored_runs(empty_roots):
    for i, (preset, reach) in enumerate((("paper-b-scratch-vs-transfer", (0.97, 0.991)),
                                         ("paper-b-scratch-vs-transfer", (0.992, 0.996)),
                                         ("paper-b-recipe", (0.996, 0.997)))):
        run_id = recorded_run(f"r{i}", "transfer", 20.0, 0.97, preset=preset)
        for epoch, acc in enumerate(reach, start=1):
            runs.append_history(run_id, {"epoch": epoch, "val_accuracy": acc, "elapsed_s": 4.0 * epoch + i})
    table = recipe_times.stage_times()
    paper_b, recipe = table
    assert (paper_b["preset"], paper_b["stage"], paper_b["runs"]) == ("paper-b-scratch-vs-transfer", 3, 2)
    assert paper_b["times"][0.99] == {"reached": 2, "mean_s": 6.5, "std_s": pytest.approx(4.5 ** 0.5)}  # 8 s, 5 s
    assert paper_b["times"][0.995] == {"reached": 1, "mean_s": 9.0, "std_s": None}
    assert recipe["times"][0.995]["mean_s"] == 6.0
    text = "\n".join(recipe_times.report_lines(table))
    assert "paper-b-scratch-vs-transfer · CPU · transfer stage 3 fruits360-3 (7,896 train images, 2 runs)" in text
    assert "to 0.99: 6.5 ± 2.1 s (2/2), to 0.995: 9.0 s (1/2)" in text
    assert "paper-b-recipe · CPU · transfer stage 3 fruits360-3 (7,896 train images, 1 run): test 0.9700" in text
    runs.delete_run("r2")
    assert "paper-b-recipe: not stored yet" in "\n".join(recipe_times.report_lines(recipe_times.stage_times()))


def test_finder_stage_needs_the_parent_of_a_stage_that_continues_another(empty_roots):
    with pytest.raises(TransferLabError, match="pick the finished run"):
        lr_find.finder_stage(StageConfig(dataset="mnist", source="previous"))
    stage, parent = lr_find.finder_stage(StageConfig(dataset="mnist"))
    assert parent is None and stage.source == "scratch"
    parent_id = model_run(dataset="mnist")
    stage, parent = lr_find.finder_stage(StageConfig(dataset="mnist", source="stage:0", input_size=32), parent_id)
    assert parent == parent_id and stage.source == f"run:{parent_id}"


def _run(run_id: str, dataset: str, device: str, status: str = "done", accuracy: float = 0.9) -> dict:
    return {"run_id": run_id, "status": status, "labels": ["a", "b"], "has_model": False, "status_info": {},
            "config": {"preset": "p", "stage": {"dataset": dataset, "epochs": 5}},
            "metrics": {"device": device, "test_accuracy": accuracy}}


def test_cautions_name_what_could_mislead_side_by_side():
    same = run_diff.cautions([_run("a", "d", "CPU"), _run("b", "d", "CPU")])
    assert same == []
    notes = run_diff.cautions([_run("a", "d", "CPU"), _run("b", "e", "GPU", status="failed"),
                               _run("c", "d", "CPU", accuracy=0.52)])
    assert notes[0] == "b is failed: its numbers are partial or missing."
    assert "Different datasets (d, e): their test accuracies are not on the same images." in notes
    assert "Different devices (CPU, GPU): their times are not comparable." in notes
    assert any(n.startswith("c is not a result: near chance") for n in notes)


def test_sweep_names_come_from_the_runs_presets_in_order():
    rows = [{"preset": "b-sweep-freeze"}, {"preset": "paper-b-scratch-vs-transfer"}, {"preset": "a-sweep"},
            {"preset": "b-sweep-freeze"}, {"preset": None}]
    assert sweeps.names_in(rows) == ["b-sweep-freeze", "a-sweep"]
