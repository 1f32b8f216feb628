"""Issue 6, bad input: every bad image, zip and config gets one clear message (core, CLI and page), never a
traceback, never a crash, and nothing half-written.

Every file is made for real here (Pillow, zipfile); the model is a real untrained alexnet4 saved as a run, and
the dataset a small real import. The CLI commands of the whole module run once, a few at a time, in the
module fixture `cli` (each one imports TensorFlow); the tests then read their answers.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from faultkit import (
    ERROR_CASES,
    TOY_CLASSES,
    TOY_SIZE,
    assert_one_line_error,
    bad_images,
    bad_zips,
    cli_env,
    cp437_zip,
    good_jpeg,
    make_zip,
    model_run,
    page,
    png_of_size,
    run_cli_many,
    run_main,
    toy_folder,
    tree,
    write_files,
)
from PIL import Image

from core import datasets, predict, runs, training, validation
from core.config import TransferLabError
from core.images import MAX_PIXELS, ImageError, load_rgb
from core.pipeline import Experiment, StageConfig
from core.run_records import RunRecord

# ---- fixtures ----------------------------------------------------------------------------------------------


class Roots:
    """The module's data root (the toy dataset), results root (a tiny model run) and bad files."""

    def __init__(self, base: Path):
        self.base = base
        self.data = base / "data"
        self.results = base / "results"
        self.images = write_files(base / "images", bad_images())
        self.zips = bad_zips(base / "zips")
        self.run_id = ""
        self.parents: dict[str, str] = {}


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> Roots:
    r = Roots(tmp_path_factory.mktemp("inputs"))
    mp = pytest.MonkeyPatch()
    mp.setenv("TRANSFERLAB_DATA_DIR", str(r.data))
    mp.setenv("TRANSFERLAB_RESULTS_DIR", str(r.results))
    datasets.import_dataset(toy_folder(r.base / "src"))
    r.parents["failed"] = model_run(status="failed")
    r.parents["three"] = model_run(labels=("a", "b", "c"))
    r.run_id = model_run()  # the newest finished run: 'latest'
    yield r
    mp.undo()


def _config(roots: Roots, name: str, stage: dict) -> str:
    path = roots.base / "configs" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"stages": [stage]}))
    return str(path)


TOY = {"dataset": "toy", "arch": "alexnet4", "input_size": TOY_SIZE, "epochs": 1, "batch_size": 8, "patience": 0}


def config_cases(roots: Roots) -> dict[str, tuple[dict, str]]:
    """Case -> (stage, words of the one clear line). Each is refused before any run is created."""
    return {
        "unknown-key": ({**TOY, "epochz": 3}, "unknown field(s) epochz"),
        "wrong-type": ({**TOY, "epochs": "ten"}, "stages.0.epochs: expected int, got 'ten'"),
        "epochs-0": ({**TOY, "epochs": 0}, "epochs: epochs must be at least 1"),
        "negative-lr": ({**TOY, "learning_rate": -0.01}, "learning_rate: learning rate must be greater than 0"),
        "input-too-small": ({**TOY, "input_size": 16}, "input size 16 is too small for alexnet4 (minimum 28)"),
        "parent-failed": ({**TOY, "source": f"run:{roots.parents['failed']}", "freeze": "first:1"},
                          f"parent run {roots.parents['failed']} is failed and has no usable model"),
        "parent-missing": ({**TOY, "source": "run:20200101-000000-nope", "freeze": "first:1"},
                           "Run '20200101-000000-nope' does not exist"),
        "keep-head-other-classes": ({**TOY, "source": f"run:{roots.parents['three']}", "head": "keep"},
                                    "head 'keep' needs the parent's classes, but toy has 2 classes"),
        "arch-differs-from-parent": ({**TOY, "arch": "alexnet16", "source": f"run:{roots.parents['three']}",
                                      "freeze": "first:1"}, "set arch to alexnet4 to continue from it"),
        "input-differs-from-parent": ({**TOY, "input_size": TOY_SIZE + 8, "source": f"run:{roots.parents['three']}",
                                       "freeze": "first:1"},
                                      f"takes {TOY_SIZE}px inputs but this stage asks for {TOY_SIZE + 8}px"),
        "dataset-not-imported": ({**TOY, "dataset": "fruits360-3"}, "dataset 'fruits360-3' is not available yet"),
    }


CLI_ZIPS = ("zip-slip", "bomb")  # as real `python -m core` processes; every case also through cli.main
CLI_CONFIGS = ("unknown-key", "keep-head-other-classes")


@pytest.fixture(scope="module")
def cli(roots: Roots) -> dict:
    """The module's CLI commands, run once, a few at a time (each imports TensorFlow): key -> CompletedProcess."""
    files = [str(p) for p in roots.images.values()] + [str(roots.base / "no-such.jpg")]
    commands: dict = {
        "classify-all": ["classify", *files, "--model", roots.run_id, "--json"],
        "classify-empty": ["classify", str(roots.images["empty.jpg"])],
        "classify-no-model": ["classify", str(roots.images["grey.png"]), "--model", "20200101-000000-nope"],
    }
    for case in CLI_ZIPS:
        data = roots.base / "import-roots" / case
        commands[f"import-{case}"] = (["datasets", "import", str(roots.zips[case][0])],
                                      cli_env(TRANSFERLAB_DATA_DIR=str(data)))
    for case in CLI_CONFIGS:
        commands[f"train-{case}"] = ["train", "--config", _config(roots, case, config_cases(roots)[case][0])]
    commands["train-batch-too-large"] = ["train", "--config", _config(roots, "batch", {**TOY, "batch_size": 999})]
    before = {r["run_id"] for r in runs.list_runs()}
    t0 = time.monotonic()
    out = run_cli_many(commands, parallel=3)
    out["_seconds"] = time.monotonic() - t0
    out["_new_runs"] = [r["run_id"] for r in runs.list_runs() if r["run_id"] not in before]
    return out


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# ---- images: core --------------------------------------------------------------------------------------------


def check_decoded(name: str, arr: np.ndarray) -> None:
    """What each readable case must decode to (RGB uint8, upright, first frame, alpha on white)."""
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3, arr.shape
    if name == "alpha.png":
        assert (arr[:10] == (255, 0, 0)).all() and (arr[10:] == 255).all()  # transparent -> white
    elif name == "cmyk.jpg":
        r, g, b = arr.reshape(-1, 3).mean(0)
        assert r > 220 and g < 40 and b < 40, (r, g, b)  # CMYK red ink -> RGB red
    elif name == "grey16.png":
        assert arr.shape == (4, 4, 3) and (arr[..., 0] == arr[..., 2]).all()
        assert list(arr[0, :, 0]) == [0, 4, 128, 255]  # 16-bit /257: a dark pixel stays dark
    elif name == "grey.png":
        assert (arr == 77).all()
    elif name in ("animated.gif", "animated.webp"):
        assert arr.shape == (16, 16, 3) and (arr == (255, 0, 0)).all()  # the first frame, red
    elif name == "one-pixel.png":
        assert arr.shape == (1, 1, 3) and list(arr[0, 0]) == [10, 200, 30]
    elif name == "rotated.jpg":
        assert arr.shape == (60, 30, 3), "EXIF orientation 6 turns the 60x30 photo upright: 30 wide, 60 high"
        top, bottom = arr[:25].reshape(-1, 3).mean(0), arr[35:].reshape(-1, 3).mean(0)
        assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60, (top, bottom)
    else:
        raise AssertionError(f"no expectation for {name}")


@pytest.mark.parametrize("name", sorted(bad_images()))
def test_load_rgb_decodes_or_refuses_each_case(roots, name):
    path = roots.images[name]
    for source in (path, path.read_bytes()):
        if name in ERROR_CASES:
            with pytest.raises(ImageError) as err:
                load_rgb(source, name=name)
            message = str(err.value)
            assert message.startswith(f"{name}: ") and ERROR_CASES[name] in message and "\n" not in message
        else:
            check_decoded(name, load_rgb(source, name=name))
            resized = load_rgb(source, 32, name=name)
            assert resized.shape == (32, 32, 3)


def test_huge_image_is_refused_before_decoding_and_the_bomb_guard_stays_on(roots):
    path = roots.images["huge.png"]
    header = path.read_bytes()[:24]
    assert header[12:16] == b"IHDR" and struct.unpack(">II", header[16:24]) == (20000, 20000)  # 400 megapixels
    assert path.stat().st_size < 200_000
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS == 50_000_000
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match=r"huge.png: the image is too large \(400.0 megapixels; the limit is 50 "):
        load_rgb(path, 48, name="huge.png")
    assert time.perf_counter() - t0 < 5, "refused from the header, not after decoding 400 megapixels"


def test_missing_or_unreadable_paths_are_clear(roots, tmp_path):
    with pytest.raises(ImageError, match=r"no-such.jpg: cannot read the file \(No such file or directory\)"):
        load_rgb(tmp_path / "no-such.jpg", name="no-such.jpg")
    with pytest.raises(ImageError, match="cannot read the file"):
        load_rgb(tmp_path, name="a-folder")


def test_classifier_classifies_or_refuses_each_case(roots):
    clf = predict.load_classifier(roots.run_id)
    assert clf.labels == list(TOY_CLASSES) and clf.input_size == TOY_SIZE
    for name, path in roots.images.items():
        if name in ERROR_CASES:
            with pytest.raises(TransferLabError, match=ERROR_CASES[name].replace("(", r"\(").replace(")", r"\)")):
                clf.classify(path.read_bytes(), name=name)
            continue
        result = clf.classify(path.read_bytes(), name=name)
        assert result["label"] in TOY_CLASSES and result["image"].shape == (TOY_SIZE, TOY_SIZE, 3)
        assert abs(sum(result["probabilities"].values()) - 1) < 1e-4
    upright = clf.prepare(roots.images["rotated.jpg"])  # the model sees the photo upright too
    assert upright[2, TOY_SIZE // 2, 0] > 200 and upright[-3, TOY_SIZE // 2, 2] > 200


# ---- images: the command line ------------------------------------------------------------------------------


def test_cli_classify_answers_every_file_in_json(roots, cli):
    proc = cli["classify-all"]
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc
    assert proc.stderr.strip() == "", proc.stderr
    results = {Path(r["path"]).name: r for r in json.loads(proc.stdout)}
    assert set(results) == set(roots.images) | {"no-such.jpg"}
    assert results["no-such.jpg"]["error"] == "no-such.jpg: cannot read the file (No such file or directory)."
    for name, r in results.items():
        if name in ERROR_CASES:
            assert ERROR_CASES[name] in r["error"] and "\n" not in r["error"], r
        elif name != "no-such.jpg":
            assert r["label"] in TOY_CLASSES and r["model"] == roots.run_id, r


def test_cli_classify_one_bad_file_is_one_line(roots, cli):
    proc = cli["classify-empty"]
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert lines == [f"{roots.images['empty.jpg']}: error: empty.jpg: the file is empty."], lines
    assert_one_line_error(cli["classify-no-model"], "Run 20200101-000000-nope has no saved model")


# ---- images: the Classify page ------------------------------------------------------------------------------


def test_classify_page_answers_every_upload(roots):
    at = page("pages/classify.py")
    uploads = [(name, p.read_bytes(), "application/octet-stream") for name, p in roots.images.items()]
    uploads.append(("notes.txt", b"plain text", "text/plain"))
    at.file_uploader[0].set_value(uploads).run()
    assert not at.exception, at.exception
    errors = [str(e.value) for e in at.error]
    assert len(errors) == len(ERROR_CASES) + 1, errors
    for name, words in ERROR_CASES.items():
        assert any(e.startswith(f"{name}: ") and words in e for e in errors), (name, errors)
    assert any(e.startswith("notes.txt: not an image file") for e in errors)
    good = len(uploads) - len(errors)
    assert f"{good} of {len(uploads)} images classified" in texts(at.subheader)
    table = at.dataframe[0].value
    assert table["prediction"].notna().sum() == good and set(table["prediction"].dropna()) <= set(TOY_CLASSES)


@pytest.mark.parametrize("name", ["rotated.jpg", "animated.gif", "huge.png"])
def test_classify_page_one_upload(roots, name):
    at = page("pages/classify.py")
    at.file_uploader[0].set_value((name, roots.images[name].read_bytes(), "image/png")).run()
    assert not at.exception, at.exception
    if name in ERROR_CASES:
        assert [e.value for e in at.error] == [f"{name}: the image is too large (400.0 megapixels; the limit is "
                                               "50 megapixels)."]
        assert not any("Prediction:" in str(m.value) for m in at.markdown)
    else:
        assert not at.error, texts(at.error)
        assert any("Prediction:" in str(m.value) for m in at.markdown)
        assert at.image, "the upright model input is shown"


def test_classify_page_states_the_upload_limits(roots):
    at = page("pages/classify.py")
    label = at.file_uploader[0].label
    assert "up to 200 MB and 50 megapixels per file" in label and "gif" in label, label


# ---- datasets --------------------------------------------------------------------------------------------------


def test_cli_import_of_a_bad_zip_is_one_line_and_writes_nothing(roots, cli):
    for case in CLI_ZIPS:
        assert_one_line_error(cli[f"import-{case}"], roots.zips[case][1], "Refusing")
        assert tree(roots.base / "import-roots" / case) == [], case
    assert not Path("/tmp/transferlab-evil.jpg").exists() and not (roots.base / "x.jpg").exists()


@pytest.mark.parametrize("case", ["zip-slip", "absolute", "symlink", "bomb", "nested", "empty-class", "single-class",
                                  "case-clash", "not-a-zip"])
def test_cli_main_import_of_each_bad_zip(roots, case, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(tmp_path / "data"))
    path, words = roots.zips[case]
    proc = run_main(["datasets", "import", path], capsys)
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_line_error(proc, words)
    assert tree(tmp_path / "data") == [], "nothing written in the data root"
    assert not Path("/tmp/transferlab-evil.jpg").exists() and not (roots.base / "x.jpg").exists()


def test_cli_import_of_non_utf8_names_works(roots, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(tmp_path / "data"))
    proc = run_main(["datasets", "import", cp437_zip(tmp_path / "Old Tool.zip", good_jpeg(3))], capsys)
    assert proc.returncode == 0, proc.stderr
    assert "Imported old-tool: 2 classes" in proc.stdout
    meta = json.loads((tmp_path / "data" / "old-tool" / "dataset.json").read_text())
    assert meta["classes"] == ["café", "Ça"]


@pytest.fixture
def empty_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.mark.parametrize("case", ["absolute", "empty-class", "single-class", "not-a-zip", "zip-slip", "bomb"])
def test_datasets_page_upload_of_a_bad_zip_is_one_error(roots, empty_data, case):
    path, words = roots.zips[case]
    at = page("pages/datasets.py")
    at.file_uploader(key="zip_upload").set_value((path.name, path.read_bytes(), "application/zip"))
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and words in at.error[0].value, texts(at.error)
    assert tree(empty_data) == [], "nothing written, not even the uploaded zip"


def test_datasets_page_imports_the_readable_images_of_a_zip_and_counts_the_rest(roots, empty_data):
    """The image cases inside a dataset zip: unreadable and oversized files are counted and left out (an image
    over 50 megapixels too, or training would trip over it later); everything kept decodes."""
    files = {f"shots/{split}/{cls}/good-{i}.jpg": good_jpeg(10 * i + len(cls))
             for split in ("train", "test") for cls in ("a", "b") for i in range(2)}
    files.update({f"shots/train/a/{name}": p.read_bytes() for name, p in roots.images.items()})
    files["shots/train/b/64-megapixels.png"] = png_of_size(8000, 8000)
    path = make_zip(roots.base / "shots.zip", files)
    at = page("pages/datasets.py")
    at.file_uploader(key="zip_upload").set_value(("shots.zip", path.read_bytes(), "application/zip"))
    at.form_submit_button[0].click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "Imported **shots**: 2 classes" in texts(at.success) and "5 unreadable images left out" in texts(at.success)
    meta = json.loads((empty_data / "shots" / "dataset.json").read_text())
    assert sorted(Path(u).name for u in meta["unreadable"]) == sorted([*ERROR_CASES, "64-megapixels.png"])
    assert meta["counts"]["train"] == {"a": 2 + len(roots.images) - len(ERROR_CASES), "b": 2}
    x, y, classes = datasets.load_split_arrays("shots", "train", TOY_SIZE, val_fraction=0.2)
    assert classes == ["a", "b"] and x.shape[1:] == (TOY_SIZE, TOY_SIZE, 3) and len(x) + 2 >= 10


# ---- configs ---------------------------------------------------------------------------------------------------


def test_each_bad_config_is_refused_before_any_run(roots):
    for case, (stage, words) in config_cases(roots).items():
        with pytest.raises(TransferLabError) as err:
            exp = Experiment.from_dict({"stages": [stage]})
            validation.check_experiment(exp)
        assert words in str(err.value) and "\n" not in str(err.value), (case, str(err.value))


def test_cli_train_refuses_bad_configs_in_one_line(roots, cli, capsys):
    for case in CLI_CONFIGS:
        assert_one_line_error(cli[f"train-{case}"], config_cases(roots)[case][1])
    before = runs.list_runs()
    for case, (stage, words) in config_cases(roots).items():
        proc = run_main(["train", "--config", _config(roots, case, stage)], capsys)
        assert proc.returncode == 2 and proc.stdout == "", (case, proc)
        assert_one_line_error(proc, words)
    assert runs.list_runs() == before, "a refused config creates no run"


def test_cli_train_records_a_batch_larger_than_the_data_as_a_failed_run(roots, cli):
    proc = cli["train-batch-too-large"]
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc
    [run_id] = cli["_new_runs"]  # the refused configs created no run
    assert proc.stdout.splitlines()[-1].startswith(f"{run_id} failed: batch size 999 is larger than the ")
    run = runs.get_run(run_id)
    assert run["status"] == "failed" and not run["has_model"]
    assert run["status_info"]["error"].startswith("batch size 999 is larger than the ")
    assert predict.resolve_model("latest") == roots.run_id


@pytest.mark.parametrize("case", ["freeze-matches-nothing", "parent-missing"])
def test_execute_run_records_a_runtime_refusal_as_failed(roots, case):
    """Past validation (a config edited by hand, a parent deleted meanwhile) a stage still fails clearly."""
    if case == "freeze-matches-nothing":
        stage, parent = StageConfig(**{**TOY, "source": f"run:{roots.run_id}", "freeze": "nosuchlayer*"}), roots.run_id
        words = "Freeze policy 'nosuchlayer*' matches no layer with weights in model alexnet4."
    else:
        stage, parent = StageConfig(**{**TOY, "source": "run:20200101-000000-gone", "freeze": "first:1"}), \
            "20200101-000000-gone"
        words = "Run 20200101-000000-gone has no saved model (model.keras missing)."
    run_id = runs.create_run(RunRecord(stage=stage.to_dict(), parent_run=parent))
    assert training.execute_run(run_id, stage, parent) == "failed"
    run = runs.get_run(run_id)
    assert run["status_info"]["error"] == words and not run["has_model"]
    assert not (runs.run_dir(run_id) / "traceback.json").exists(), "a clear error, not a crash"
    assert predict.resolve_model("latest") == roots.run_id
    runs.delete_run(run_id)
