"""The Results page's run management (notes, tags, tag filter, zip download, delete) and the Train page's
"set for every stage" and run-time estimate, with Streamlit's AppTest on records written without training."""

from __future__ import annotations

from faultkit import page, recorded_run
from test_app import texts

from core import run_admin, runs
from core.run_records import RunRecord


def test_results_notes_and_tags_are_saved_and_filter_the_table(empty_roots):
    recorded_run("s0", "scratch", 300.0, 0.90)
    run_id = recorded_run("t0", "transfer", 30.0, 0.95)
    at = page("pages/results.py")
    at.selectbox(key="detail_run").set_value(run_id).run()
    at.text_area(key=f"notes_text_{run_id}").set_value("the good one")
    at.text_input(key=f"tags_text_{run_id}").set_value("keep, GPU")
    next(b for b in at.button if b.label == "Save notes and tags").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert run_admin.read_notes(run_id) == {"notes": "the good one", "tags": ["keep", "gpu"]}
    at.multiselect(key="filter_tags").set_value(["keep"]).run()
    table = next(d.value for d in at.dataframe if "tags" in d.value.columns)
    assert list(table["run_id"]) == [run_id] and list(table["tags"]) == ["keep, gpu"]
    assert any(d.label == "Download this run (zip)" for d in at.download_button)


def test_results_bad_tag_is_one_clear_error(empty_roots):
    run_id = recorded_run("s0", "scratch", 300.0, 0.90)
    at = page("pages/results.py")
    at.selectbox(key="detail_run").set_value(run_id).run()
    at.text_input(key=f"tags_text_{run_id}").set_value("no/slashes")
    next(b for b in at.button if b.label == "Save notes and tags").click().run()
    assert not at.exception and "Invalid tag" in texts(at.error)
    assert run_admin.read_notes(run_id)["tags"] == []


def test_results_delete_asks_first_for_a_run_others_continue_from(empty_roots):
    parent = recorded_run("s0", "scratch", 300.0, 0.90)
    child = recorded_run("t0", "transfer", 30.0, 0.95, parent=parent)
    at = page("pages/results.py")
    at.selectbox(key="detail_run").set_value(parent).run()
    delete = at.button(key=f"delete_{parent}")
    assert delete.disabled
    confirm = at.checkbox(key=f"confirm_delete_{parent}")
    assert child in confirm.label
    confirm.check().run()
    at.button(key=f"delete_{parent}").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert not runs.run_dir(parent).exists() and runs.run_dir(child).is_dir()
    assert parent not in at.selectbox(key="detail_run").options


def test_results_a_run_without_children_deletes_at_once_and_a_running_one_cannot(empty_roots):
    done = recorded_run("s0", "scratch", 300.0, 0.90)
    running = runs.create_run(RunRecord(stage={"dataset": "toy", "arch": "alexnet4"}))
    runs.set_status(running, "running")
    at = page("pages/results.py")
    at.selectbox(key="detail_run").set_value(running).run()
    assert not at.get("button") or all(b.key != f"delete_{running}" for b in at.button)
    assert "cancel it before deleting it" in texts(at.caption)
    at.selectbox(key="detail_run").set_value(done).run()
    at.button(key=f"delete_{done}").click().run()
    assert not at.exception and not runs.run_dir(done).exists() and runs.run_dir(running).is_dir()


# ---- Train: set for every stage, run-time estimate ------------------------------------------------------------


def _set_all(at, **values):
    for field, value in values.items():
        at.number_input(key=f"set_all_{field}").set_value(value)
    return at.button(key="set_all_apply").click().run()


def test_train_set_for_every_stage_sets_each_row_and_repeats_on_each_pipelines_last_stage(empty_roots):
    at = page("pages/train.py")
    at.selectbox(key="train_start").set_value("paper-b-scratch-vs-transfer").run()
    _set_all(at, epochs=3, limit_per_class=7, batch_size=8, input_size=48, repeats=2)
    assert not at.exception
    frame = at.session_state["stage_frame_paper-b-scratch-vs-transfer"]
    assert len(frame) > 2
    for field, value in (("epochs", 3), ("limit_per_class", 7), ("batch_size", 8), ("input_size", 48)):
        assert (frame[field] == value).all(), field
    last = ~frame["pipeline"].duplicated(keep="last")
    assert (frame.loc[last, "repeats"] == 2).all() and frame.loc[~last, "repeats"].isna().all()


def test_train_estimates_the_run_time_from_measured_throughput(empty_roots):
    import json

    from faultkit import toy_folder

    from core import datasets, device_probe

    datasets.import_dataset(toy_folder(empty_roots / "src"), name="toy")
    probed = device_probe.wait(120)
    device = "CPU" if probed.startswith("CPU") else probed
    at = page("pages/train.py")
    _set_all(at, epochs=4, input_size=48, repeats=3)
    assert not at.exception and not at.error, texts(at.error)
    assert "no estimate yet for alexnet4 at 48 px" in texts(at.caption)

    measured = ((100.0, device), (50.0, device), (400.0, device), (9999.0, "another device"))
    for i, (speed, on) in enumerate(measured):  # median 100 images/s on this device; the other is left out
        run_id = recorded_run(f"measured-{i}", "scratch", 10.0, 0.9, device=on)
        metrics = json.loads((runs.run_dir(run_id) / "metrics.json").read_text())
        runs.write_metrics(run_id, {**metrics, "images_per_s": speed, "input_size": 48})  # the index sees it
    at = page("pages/train.py")
    _set_all(at, epochs=4, input_size=48, repeats=3)
    assert not at.exception and not at.error, texts(at.error)
    table = next(d.value for d in at.dataframe if "estimated time" in d.value.columns)
    row = table.iloc[0]
    assert row["input size"] == 48 and row["runs"] == 3 and row["images/s (measured)"] == 100.0
    seconds = row["images/epoch"] * 4 * 3 / 100.0
    from core.compare import format_seconds

    assert row["estimated time"] == format_seconds(seconds)
    assert f"Estimated run time: {format_seconds(seconds)}" in texts(at.markdown)
