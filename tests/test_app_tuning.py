"""The fine-tuning toolkit's views (issue 14), one short AppTest each on a toy dataset and records written without
training: the Train page's LR finder and fine-tuning columns, and on Results the sweeps, the side-by-side comparison
and "Where it errs"."""

from __future__ import annotations

from faultkit import model_run, page, recorded_run, toy_folder
from test_app import edit_stage, texts

from core import datasets


def test_train_lr_finder_plots_the_curve_and_writes_its_suggestion_into_the_table(empty_roots):
    datasets.import_dataset(toy_folder(empty_roots / "src"), name="toy")
    at = page("pages/train.py")
    edit_stage(at, "stages_custom", input_size=32, batch_size=8, schedule="cosine", warmup_epochs=1.0,
               weight_decay=0.01, lr_mult=0.5)
    assert not at.error, texts(at.error)
    at.number_input(key="lr_steps").set_value(20)
    at.button(key="lr_find").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "Suggested" in texts(at.caption) and at.get("plotly_chart")
    use = at.button(key="lr_use")
    rate = float(use.label.removeprefix("Use "))
    assert 1e-7 <= rate <= 10
    use.click().run()
    assert not at.exception
    frame = at.session_state["stage_frame_custom"]
    assert frame.loc[0, "learning_rate"] == rate and frame.loc[0, "input_size"] == 32, "other edits are kept"
    assert (frame.loc[0, "schedule"], frame.loc[0, "warmup_epochs"], frame.loc[0, "weight_decay"],
            frame.loc[0, "lr_mult"]) == ("cosine", 1.0, 0.01, 0.5)
    assert f"trains at {use.label.removeprefix('Use ')}" in texts(at.caption)


def test_results_sweep_shows_each_value_with_its_spread_and_says_where_there_is_none(empty_roots):
    for run_id, freeze, acc, wall in (("sw0", "none", 0.94, 30.0), ("sw1", "none", 0.96, 34.0),
                                      ("sw2", "first:2", 0.96, 20.0), ("sw3", "first:4", 0.93, 10.0)):
        recorded_run(run_id, "transfer", wall, acc, preset="paper-b-freeze-sweep",
                     stage={"freeze": freeze, "sweep": ["freeze"]})
    at = page("pages/results.py")
    assert not at.exception and at.selectbox(key="sweep_name").value == "paper-b-freeze-sweep"
    table = next(d.value for d in at.dataframe if "note" in d.value.columns)
    assert list(table["freeze"]) == ["none", "first:2", "first:4"] and list(table["runs"]) == [2, 1, 1]
    assert table["test accuracy"].iloc[0] == "0.9500 ± 0.0141" and table["test accuracy"].iloc[1] == "0.9600"
    assert list(table["note"]) == ["", "no spread: 1 run", "no spread: 1 run"]
    assert "no spread for 2 of 3 values: 1 run each" in texts(at.warning)
    chart = next(c for c in at.get("plotly_chart") if "wall time (s)" in c.proto.spec and "freeze" in c.proto.spec)
    assert '"error_y"' in chart.proto.spec


def test_results_compares_runs_side_by_side_with_their_differences_highlighted(empty_roots):
    from core import confusion, runs

    first = recorded_run("s0", "scratch", 300.0, 0.90)
    second = recorded_run("t0", "transfer", 30.0, 0.36, epochs=2, limit=10)  # a toy run, near chance
    for run_id in (first, second):
        runs.append_history(run_id, {"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4})
        confusion.write(runs.run_dir(run_id), ["c0", "c1", "c2"], [[0, 0, 5], [1, 1, 5], [2, 2, 5]])
    at = page("pages/results.py")
    at.multiselect(key="compare_runs").set_value([first, second]).run()
    assert not at.exception and not at.error, texts(at.error)
    diff = next(d.value for d in at.dataframe if "field" in d.value.columns).set_index("field")
    assert diff.loc["stage.freeze", first] == "none" and diff.loc["stage.freeze", second] == "first:4"
    assert "created" not in diff.index and diff["differs"].all()
    metrics = next(d.value for d in at.dataframe if list(d.value.columns) == [first, second])
    assert metrics.loc["test_accuracy", second] == "0.3600"
    warning = texts(at.warning)
    assert f"{second} is not a result" in warning and "near chance" in warning and first + " is" not in warning
    assert len([c for c in at.get("plotly_chart") if "c0" in c.proto.spec]) >= 2, "a confusion matrix per run"


def test_results_where_it_errs_shows_the_wrong_test_images_and_explains_one(empty_roots):
    datasets.import_dataset(toy_folder(empty_roots / "src"), name="toy")
    run_id = model_run()  # an untrained alexnet4 on the toy dataset: test accuracy 0.5
    at = page("pages/results.py")
    at.selectbox(key="detail_run").set_value(run_id).run()
    at.button(key=f"errs_find_{run_id}").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "near chance" in texts(at.warning)
    headline = next(str(m.value) for m in at.markdown if "Test images wrong" in str(m.value))
    wrong = next(d.value for d in at.dataframe if "p(predicted)" in d.value.columns or "loss" in d.value.columns)
    assert headline.startswith(f"**{len(wrong)} of 12 Test images wrong**") and len(wrong) > 1
    assert list(wrong["loss"]) == sorted(wrong["loss"], reverse=True), "worst first"
    assert len(at.image) == len(wrong) + 3, "the gallery, then the image and its two Grad-CAM overlays"
    at.session_state[f"errs_table_{run_id}"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    assert not at.exception
    assert any(str(m.value).startswith(f"**#2: a {wrong['truth'].iloc[1]} taken for") for m in at.markdown)
    assert any("precision" in d.value.columns for d in at.dataframe)
