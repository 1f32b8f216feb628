"""The dashboard, page by page, with Streamlit's AppTest: one short test per behaviour.

Pages render on a fresh clone (empty data and results roots) and with real runs present; Train launches and
cancels real background jobs; Results compares scratch with transfer; Classify labels a real Fruits-360 image.
Real data comes from conftest's session-scoped `imported_data` (the shared zips, imported once).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from pages.registry import HOME, PAGES

APP = str(REPO_ROOT / "app.py")
TINY = {"arch": "alexnet4", "input_size": 48, "epochs": 1, "limit_per_class": 10, "batch_size": 16,
        "patience": 0}
_TRAINED: dict[str, Path] = {}  # results roots already trained this session (shared with the e2e test)


# ---- fixtures and helpers ------------------------------------------------------------------------------------


def tiny_experiment():
    """Scratch vs mnist -> fruits360-3 transfer (2 repeats): 4 runs of one epoch each.

    MNIST (raw IDX arrays) is the cheapest pre-training set to decode here; CIFAR-10 works the same way.
    """
    from core.pipeline import Experiment

    return Experiment.from_dict({"name": "tiny-scratch-vs-transfer", "pipelines": [
        {"name": "scratch", "repeats": 1, "stages": [
            {**TINY, "name": "fruits360-3", "dataset": "fruits360-3", "source": "scratch", "target_accuracy": 0.3}]},
        {"name": "transfer", "repeats": 2, "stages": [
            {**TINY, "name": "pretrain", "dataset": "mnist", "source": "scratch"},
            {**TINY, "name": "fruits360-3", "dataset": "fruits360-3", "source": "previous", "freeze": "first:2",
             "target_accuracy": 0.3}]},
    ]})


def trained_results_root(imported_data, tmp_path_factory) -> Path:
    """A results root with four small real runs, trained once per session (the e2e test reuses it)."""
    if "root" not in _TRAINED:
        root = tmp_path_factory.mktemp("trained-results")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TRANSFERLAB_DATA_DIR", str(imported_data.root))
            mp.setenv("TRANSFERLAB_RESULTS_DIR", str(root))
            from core import experiment

            results = experiment.run_experiment(tiny_experiment(), command="pytest tests/test_app.py (fixture)")
        assert [r["status"] for r in results] == ["done"] * 4, results
        _TRAINED["root"] = root
    return _TRAINED["root"]


@pytest.fixture(scope="session")
def trained(imported_data, tmp_path_factory) -> Path:
    return trained_results_root(imported_data, tmp_path_factory)


@pytest.fixture
def with_runs(real_data_root, trained, monkeypatch):
    """Real datasets and four finished real runs."""
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(trained))
    return trained


@pytest.fixture
def fresh_results(real_data_root, tmp_path, monkeypatch):
    """Real datasets, an empty results root (for jobs)."""
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90).run()
    assert not at.exception, at.exception
    if path != HOME.path:
        at.switch_page(path).run()
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def fruit_image(data_root: Path, cls: str = "Apple Braeburn") -> Path:
    return sorted((data_root / "fruits360" / "test" / cls).glob("*.jpg"))[0]


def poll(at: AppTest, done, timeout_s: float = 150.0, every_s: float = 1.0) -> AppTest:
    """Re-run the page (as the fragment's timer would) until `done(at)` or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if done(at):
            return at
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s; page text:\n{texts(at.markdown)}\n{texts(at.code)}")


def job_status(at: AppTest) -> str:
    for m in at.markdown:
        if str(m.value).startswith("Job `"):
            return str(m.value).rsplit("**", 2)[-2]
    return ""


def edit_stage(at: AppTest, key: str, **fields) -> AppTest:
    at.session_state[key] = {"edited_rows": {0: fields}, "added_rows": [], "deleted_rows": []}
    return at.run()


# ---- a fresh clone ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", PAGES, ids=[p.title for p in PAGES])
def test_every_page_renders_with_no_data_and_no_runs(empty_roots, entry):
    at = page(entry.path)
    assert not at.exception
    assert at.title[0].value == ("TransferLab" if entry == HOME else entry.title)
    assert at.info, "an empty page says what to do next"


def test_sidebar_shows_device_and_roots(empty_roots):
    from core import device_probe

    assert device_probe.wait(120) is not None, "the background probe answers"
    at = page("pages/home.py")
    side = texts(at.sidebar.markdown) + texts(at.sidebar.caption)
    assert "Compute:" in side and ("CPU — no GPU found" in side or "GPU" in side)
    assert str(empty_roots / "data") in side and str(empty_roots / "results") in side


def test_first_page_renders_while_the_gpu_probe_is_still_looking(empty_roots, monkeypatch):
    import threading

    from core import device_probe, hardware

    answer = threading.Event()

    def slow_gpu_names() -> list[str]:
        answer.wait(60)
        return ["Test GPU"]

    monkeypatch.setattr(hardware, "gpu_names", slow_gpu_names)
    device_probe.start(again=True)
    try:
        at = page("pages/home.py")
        assert "**Compute:** checking…" in texts(at.sidebar.markdown)
        assert at.title[0].value == "TransferLab", "the page itself rendered"
        answer.set()
        assert device_probe.wait(30) == "Test GPU"
        at = page("pages/home.py")  # a fresh session (AppTest drops the sidebar on a rerun of the same one)
        assert "**Compute:** Test GPU" in texts(at.sidebar.markdown)
    finally:
        answer.set()
        monkeypatch.undo()
        device_probe.start(again=True)


def test_home_says_import_first_and_links_every_page(empty_roots):
    at = page("pages/home.py")
    assert "Import" in texts(at.info)
    assert {m.label: m.value for m in at.metric}["Runs"] == "0"
    assert len(at.page_link) >= 4
    assert {p.title for p in PAGES if p != HOME} <= {link.label for link in at.page_link}


def test_home_says_classify_works_at_once_with_the_shipped_model(empty_roots):
    import json

    shipped = REPO_ROOT / "results" / "default"
    stage = json.loads((shipped / "config.json").read_text())["stage"]
    accuracy = json.loads((shipped / "metrics.json").read_text())["test_accuracy"]
    at = page("pages/home.py")
    note = next(i for i in texts(at.info).split("\n") if "Classify works at once" in i)
    assert stage["arch"] in note and f"test accuracy {accuracy:.3f}" in note
    assert [link.label for link in at.page_link].count("Classify a photo") == 1


def test_classify_without_a_model_says_train_first(empty_roots, monkeypatch):
    from core import store

    monkeypatch.setattr(store, "SHIPPED_MODEL_DIR", empty_roots / "no-shipped-model")  # no model anywhere
    at = page("pages/classify.py")
    assert "No model yet" in texts(at.info) and not at.file_uploader


def test_train_without_data_points_to_datasets(empty_roots):
    at = page("pages/train.py")
    assert "No dataset is imported yet" in texts(at.info)
    assert "No jobs yet" in texts(at.caption)


# ---- with run records written straight into an empty results root -----------------------------------------


@pytest.fixture
def cpu_and_gpu_runs(empty_roots):
    """Paper B's preset on two devices: on the CPU scratch takes 300 s, transfer 30 s; on the GPU 10 s and 5 s."""
    from faultkit import recorded_run

    for i in range(2):
        recorded_run(f"cpu-s{i}", "scratch", 300.0, 0.90, device="CPU")
        recorded_run(f"cpu-t{i}", "transfer", 30.0, 0.95, device="CPU")
        recorded_run(f"gpu-s{i}", "scratch", 10.0, 0.80, device="NVIDIA H100")
        recorded_run(f"gpu-t{i}", "transfer", 5.0, 0.85, device="NVIDIA H100")
    return empty_roots


def papers_table(at: AppTest):
    return next(t.value for t in at.table if "accuracy delta" in t.value.columns)


def test_results_papers_table_follows_the_device_filter_and_computes_the_published_speedup(cpu_and_gpu_runs):
    at = page("pages/results.py")
    at.selectbox(key="scope_device").set_value("CPU").run()
    assert not at.exception
    table = papers_table(at)
    ours = table[table["source"] == "ours (this machine)"].set_index("method")
    assert ours.loc["scratch", "runs"] == "2" and ours.loc["scratch", "time (min)"].startswith("5.00")
    assert ours.loc["transfer", "speedup"] == "10.00×" and ours.loc["transfer", "accuracy delta"] == "+5.00 points"
    published = table[table["source"] == "published (hardware unknown)"].set_index("paper")
    assert published.loc["B Table 5", "speedup"] == "12.28×"  # 104.79 / 8.53 min
    assert published.loc["B Table 5", "accuracy delta"] == "+1.46 points"
    assert published.loc["A Table 3", "speedup"] == "—"
    assert not table.isin(["None", "nan", "NaN"]).any().any()
    at.selectbox(key="scope_device").set_value("NVIDIA H100").run()
    ours = papers_table(at).query("source == 'ours (this machine)'").set_index("method")
    assert ours.loc["transfer", "speedup"] == "2.00×"


# ---- with real data and runs -------------------------------------------------------------------------------


@pytest.mark.realdata
def test_home_counts_real_runs(with_runs):
    at = page("pages/home.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Runs"] == "4" and int(metrics["Datasets available"]) >= 3
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 4  # latest finished runs


@pytest.mark.realdata
def test_datasets_lists_counts_and_samples(with_runs):
    at = page("pages/datasets.py")
    listed = at.dataframe[0].value
    assert {"fruits360", "cifar10", "mnist", "fruits360-3"} <= set(listed["name"])
    at.selectbox(key="inspect_name").set_value("fruits360-3").run()
    counts = at.dataframe[1].value
    assert list(counts["class"]) == ["apple", "noise", "pear"] and (counts["train"] > 0).all()
    assert at.get("plotly_chart") and at.image, "a bar chart and a grid of sample images"


@pytest.mark.realdata
def test_datasets_view_preview_counts_before_saving(with_runs):
    at = page("pages/datasets.py")
    at.text_input(key="view_name").input("apple-pear-only").run()
    at.text_input(key="view_rest").input("").run()  # leave the other classes out
    at.button(key="view_preview").click().run()
    assert not at.exception and not at.error
    preview = at.dataframe[-1].value
    assert list(preview["class"]) == ["apple", "pear"] and (preview["train"] > 0).all()
    assert "apple-pear-only" not in set(at.dataframe[0].value["name"]), "a preview saves nothing"


@pytest.mark.realdata
def test_datasets_import_from_server_path_with_progress(shared_data_root, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    at = page("pages/datasets.py")
    at.text_input(key="path_source").input(str(shared_data_root / "mnist-t10k"))
    at.text_input(key="path_name").input("mnist")
    at.form_submit_button[1].click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "Imported **mnist**" in texts(at.success)
    assert "mnist" in set(at.dataframe[0].value["name"])


def test_datasets_bad_path_is_one_clear_error(empty_roots):
    at = page("pages/datasets.py")
    at.text_input(key="path_source").input(str(empty_roots / "no-such.zip"))
    at.form_submit_button[1].click().run()
    assert not at.exception and len(at.error) == 1


@pytest.mark.realdata
def test_results_compares_scratch_with_transfer(with_runs):
    at = page("pages/results.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Speedup"].endswith("×")
    assert metrics["Accuracy delta"] != "—"
    assert at.selectbox(key="target_dataset").value == "fruits360-3"
    assert at.selectbox(key="scope_preset").options == ["all", "tiny-scratch-vs-transfer"]
    assert at.selectbox(key="scope_device").value == "all"  # one device: nothing to choose
    assert len(at.dataframe[0].value) == 4  # all runs
    assert at.download_button, "CSV download of the runs"
    published = papers_table(at)
    assert "published (hardware unknown)" in set(published["source"])
    assert "ours (this machine)" in set(published["source"])


@pytest.mark.realdata
def test_results_filters_runs(with_runs):
    at = page("pages/results.py")
    at.multiselect(key="filter_dataset").set_value(["mnist"]).run()
    assert list(at.dataframe[0].value["dataset"]) == ["mnist"]


@pytest.mark.realdata
def test_results_one_run_in_depth(with_runs):
    at = page("pages/results.py")
    transfer_run = next(r for r in at.dataframe[0].value.to_dict("records")
                        if r["method"] == "transfer" and r["dataset"] == "fruits360-3")
    at.selectbox(key="detail_run").set_value(transfer_run["run_id"]).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 3, "box plots, curves, confusion heatmap"
    layer_table = next(d.value for d in at.dataframe if "frozen" in d.value.columns)
    assert (layer_table["frozen"] == "frozen").sum() >= 1
    lineage = next(d.value for d in at.dataframe if list(d.value.columns)[:2] == ["run_id", "status"]
                   and len(d.value) == 2)
    assert list(lineage["dataset"]) == ["mnist", "fruits360-3"]
    assert "pytest tests/test_app.py" in texts(at.code)  # the command recorded
    assert "tensorflow" in texts(at.code)  # the hardware / software recorded


@pytest.mark.realdata
def test_classify_predicts_a_real_fruit(with_runs, real_data_root):
    at = page("pages/classify.py")
    image = fruit_image(real_data_root)
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/jpeg")).run()
    assert not at.exception and not at.error, texts(at.error)
    prediction = next(m.value for m in at.markdown if "Prediction:" in str(m.value))
    assert any(c in prediction for c in ("apple", "pear", "noise"))
    assert "model latency" in texts(at.caption)
    assert len(at.image) == 2, "the model input and its Grad-CAM overlay"
    assert at.get("plotly_chart"), "top-k probabilities"


@pytest.mark.realdata
def test_classify_on_a_fresh_clone_answers_with_the_shipped_default_model(real_data_root, tmp_path, monkeypatch):
    from core import runs

    results = tmp_path / "results"  # a clone's results root: the committed default model, no trained runs
    shutil.copytree(REPO_ROOT / "results" / runs.DEFAULT_MODEL_DIR, results / runs.DEFAULT_MODEL_DIR)
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(results))
    at = page("pages/classify.py")
    assert at.selectbox[0].value == runs.DEFAULT_MODEL_DIR
    image = fruit_image(real_data_root, "Pear Williams")
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/jpeg")).run()
    assert not at.exception and not at.error, texts(at.error)
    assert "pear" in next(m.value for m in at.markdown if "Prediction:" in str(m.value))


@pytest.mark.realdata
def test_classify_text_file_is_a_clear_error(with_runs):
    at = page("pages/classify.py")
    at.file_uploader[0].set_value(("notes.txt", b"not an image", "text/plain")).run()
    assert not at.exception
    assert "notes.txt: not an image file" in texts(at.error)


@pytest.mark.realdata
def test_classify_broken_image_is_a_clear_error(with_runs):
    at = page("pages/classify.py")
    at.file_uploader[0].set_value(("broken.jpg", b"\xff\xd8\xff\xe0 truncated", "image/jpeg")).run()
    assert not at.exception and len(at.error) == 1 and "broken.jpg" in at.error[0].value


@pytest.mark.realdata
def test_classify_many_images_gives_a_table_and_csv(with_runs, real_data_root):
    at = page("pages/classify.py")
    files = [fruit_image(real_data_root, c) for c in ("Apple Braeburn", "Pear", "Banana")]
    at.file_uploader[0].set_value([(f"{i}-{f.name}", f.read_bytes(), "image/jpeg") for i, f in enumerate(files)])
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 3 and table["prediction"].notna().all()
    assert any(d.label == "Download results (CSV)" for d in at.download_button)


@pytest.mark.realdata
def test_classify_exports_the_model(with_runs):
    at = page("pages/classify.py")
    at.button(key="prep_keras").click().run()
    assert not at.exception
    download = next(d for d in at.download_button if d.label.startswith("Download Keras"))
    assert download.label == "Download Keras (.keras)"


# ---- train: validation, counts, real jobs ------------------------------------------------------------------


@pytest.mark.realdata
def test_train_invalid_input_is_shown_and_nothing_launches(fresh_results):
    at = page("pages/train.py")
    edit_stage(at, "stages_custom", epochs=0, source="stage:3")
    assert not at.exception
    errors = texts(at.error)
    assert "**epochs**: epochs must be at least 1" in errors and "**source**" in errors
    assert at.button(key="launch").disabled
    assert not (fresh_results / "jobs").exists()


@pytest.mark.realdata
def test_train_freeze_policy_that_matches_no_layer_is_shown(fresh_results):
    at = page("pages/train.py")
    at.selectbox(key="train_start").set_value("paper-b-scratch-vs-transfer").run()
    edit_stage(at, "stages_paper-b-scratch-vs-transfer", freeze="no_such_layer*")
    assert not at.exception
    assert "**freeze**" in texts(at.error) and at.button(key="launch").disabled


@pytest.mark.realdata
def test_train_shows_parameter_counts_before_launch(fresh_results):
    at = page("pages/train.py")
    at.selectbox(key="train_start").set_value("paper-b-scratch-vs-transfer").run()
    assert not at.exception, at.exception
    check = next(d.value for d in at.dataframe if "trainable" in d.value.columns)
    assert len(check) == 4 and (check["trainable"] > 0).all()
    frozen = list(check["frozen"])
    assert frozen[3] < frozen[1] < frozen[2], "scratch freezes nothing, first:3 then first:4 freeze more"


@pytest.mark.realdata
@pytest.mark.slow
def test_train_launches_a_real_job_and_the_live_view_reaches_done(fresh_results):
    at = page("pages/train.py")
    edit_stage(at, "stages_custom", dataset="fruits360-3", **TINY)
    assert not at.error, texts(at.error)
    at.button(key="launch").click().run()
    assert "Launched job" in texts(at.success)
    seen_running = []
    poll(at, lambda a: seen_running.append(job_status(a)) or job_status(a) == "done", timeout_s=180)
    assert "Finished: 1 run(s)" in texts(at.success)
    assert at.get("plotly_chart"), "live curves of the run"
    assert "run " in texts(at.code), "log tail"


@pytest.mark.realdata
@pytest.mark.slow
def test_train_cancel_stops_a_running_job(fresh_results):
    at = page("pages/train.py")
    edit_stage(at, "stages_custom", dataset="fruits360-3", **{**TINY, "epochs": 500, "limit_per_class": 20})
    at.button(key="launch").click().run()

    def training(a: AppTest) -> bool:
        return job_status(a) == "running" and any("Epoch" in str(p.value) or "Epoch" in str(getattr(p, "text", ""))
                                                   for p in a.progress)

    poll(at, training, timeout_s=120)
    cancel = next(b for b in at.button if b.label == "Cancel this job")
    cancel.click().run()
    poll(at, lambda a: job_status(a) == "cancelled", timeout_s=60)
    assert "Cancelled" in texts(at.warning)


@pytest.mark.realdata
def test_classify_takes_an_iphone_heic_photo_and_offers_the_camera(real_data_root, tmp_path, monkeypatch):
    import io

    from PIL import Image

    from core import runs

    results = tmp_path / "results"
    shutil.copytree(REPO_ROOT / "results" / runs.DEFAULT_MODEL_DIR, results / runs.DEFAULT_MODEL_DIR)
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(results))
    heic = io.BytesIO()
    Image.open(fruit_image(real_data_root, "Pear Williams")).save(heic, format="HEIF", quality=95)
    at = page("pages/classify.py")
    at.file_uploader[0].set_value(("IMG_0001.HEIC", heic.getvalue(), "image/heic")).run()
    assert not at.exception and not at.error, texts(at.error)
    assert "pear" in next(m.value for m in at.markdown if "Prediction:" in str(m.value))
    assert not at.get("camera_input")
    at.toggle(key="classify_camera_on").set_value(True).run()
    assert not at.exception and len(at.get("camera_input")) == 1


def test_results_marks_a_toy_run_and_says_the_target_and_training_beside_the_numbers(empty_roots):
    from faultkit import recorded_run

    for i in range(2):  # the preset asks for 30 and 20 epochs; these ran 2, on 10 images per class, near chance
        recorded_run(f"toy-s{i}", "scratch", 20.0, 0.33, epochs=2, limit=10, n_train=30)
        recorded_run(f"toy-t{i}", "transfer", 10.0, 0.36, epochs=2, limit=10, n_train=30)
    at = page("pages/results.py")
    assert not at.exception
    head = texts(at.caption)
    assert "scratch**: 2 runs, 2 epochs · 10 images per class · target 0.99" in head
    warning = texts(at.warning)
    assert "Not a result" in warning and "shortened" in warning and "near chance" in warning
    assert "the preset asks for 30" in warning and "the preset asks for 20" in warning and "limited to 10" in warning
    summary = next(d.value for d in at.dataframe if "caveat" in d.value.columns)
    assert list(summary["epochs"]) == ["2", "2"] and list(summary["images per class"]) == ["10", "10"]
    assert summary["time to target (s)"].str.endswith("(target 0.99: reached by 0 of 2)").all()
    assert summary["caveat"].str.startswith("⚠").all()


def test_results_full_runs_carry_no_warning(cpu_and_gpu_runs):
    at = page("pages/results.py")
    assert not at.exception and not at.warning
    summary = next(d.value for d in at.dataframe if "caveat" in d.value.columns)
    assert list(summary["epochs"]) == ["30", "20"] and (summary["caveat"] == "").all()
    assert list(summary["images per class"]) == ["2,632", "2,632"]


def test_classify_offers_the_shipped_model_from_another_root_with_each_models_accuracy(empty_roots):
    from faultkit import model_run

    run_id = model_run()  # test accuracy 0.5, in a results root with no default/ of its own
    at = page("pages/classify.py")
    assert not at.exception and not at.error, texts(at.error)
    picker = at.selectbox[0]
    assert picker.options[-1].startswith("shipped default model — ") and "test acc 0." in picker.options[-1]
    assert f"{run_id} — toy, alexnet4, test acc 0.500" in picker.options


def test_classify_defaults_to_the_most_accurate_model_not_the_newest(empty_roots):
    from faultkit import model_run

    from core import runs

    run_id = model_run(labels=("apple", "noise", "pear"))  # the newest, at test accuracy 0.5: the shipped is better
    at = page("pages/classify.py")
    assert not at.exception and not at.error, texts(at.error)
    assert at.selectbox[0].value == runs.DEFAULT_MODEL_DIR
    assert any(o.startswith(run_id) for o in at.selectbox[0].options)


def test_results_one_run_view_follows_the_comparison_and_a_clicked_row(empty_roots):
    from faultkit import recorded_run

    recorded_run("s0", "scratch", 300.0, 0.90)
    recorded_run("t0", "transfer", 30.0, 0.95)
    recorded_run("x0", "scratch", 30.0, 0.50, dataset="cifar10")  # the newest run, not in the comparison
    at = page("pages/results.py")
    assert at.selectbox(key="target_dataset").value == "fruits360-3"
    assert at.selectbox(key="detail_run").value == "t0"  # the newest of the runs compared on screen
    table = at.dataframe[0].value
    at.session_state["runs_table"] = {"selection": {"rows": [list(table["run_id"]).index("x0")], "columns": []}}
    at.run()
    assert not at.exception and at.selectbox(key="detail_run").value == "x0"
    at.selectbox(key="detail_run").set_value("s0").run()  # the picker still works; the click is not replayed
    assert at.selectbox(key="detail_run").value == "s0"


def test_results_layers_of_a_run_without_a_model_come_from_its_record(empty_roots):
    from faultkit import recorded_run

    recorded_run("s0", "scratch", 300.0, 0.90)
    run_id = recorded_run("t0", "transfer", 30.0, 0.95)  # freeze first:4, no model.keras (as committed runs)
    at = page("pages/results.py")
    at.selectbox(key="detail_run").set_value(run_id).run()
    assert not at.exception and not at.error, texts(at.error)
    assert "No saved model for this run: this table comes from its record" in texts(at.caption)
    layer_table = next(d.value for d in at.dataframe if "frozen" in d.value.columns)
    assert list(layer_table.loc[layer_table["frozen"] == "frozen", "name"]) == [
        "conv2d_1", "batch_normalization_1", "conv2d_2", "batch_normalization_2", "conv2d_3", "conv2d_4"]
    assert layer_table["params"].sum() > 0
