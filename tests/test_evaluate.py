"""Evaluating a stored model on another imported dataset (issue 13, item 4), on the real-photos dev set.

The dev set is a folder per class (apple / other / pear) plus `mixed/`, photos of several fruits described by a
`labels.csv`: not a class, so the import leaves it out. The shipped default model (apple / noise / pear) is
evaluated on all 470 photos with other -> noise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data
from faultkit import good_jpeg, make_zip, page

from core.config import REPO_ROOT, TransferLabError

DEV_ZIP = "real-photos-dev.zip"
DEV = "real-photos-dev"
COUNTS = {"apple": 156, "other": 229, "pear": 85}

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def dev_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A data root with the dev set imported once for this module, and the import report."""
    source = shared_data(DEV_ZIP) / DEV_ZIP
    root = tmp_path_factory.mktemp("dev-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLAB_DATA_DIR", str(root))
        from core import datasets

        report = datasets.import_dataset(source)
    return root, report


@pytest.fixture
def clone(dev_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dev set as data, and a fresh clone's results root: the committed default model, no runs."""
    from core import runs

    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(dev_root[0]))
    results = tmp_path / "results"
    shutil.copytree(REPO_ROOT / "results" / runs.DEFAULT_MODEL_DIR, results / runs.DEFAULT_MODEL_DIR,
                    ignore=shutil.ignore_patterns("evaluations"))
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(results))
    return results


@pytest.fixture
def evaluated(clone: Path) -> dict:
    from core import evaluate

    return evaluate.evaluate("default", DEV, {"other": "noise"}, "all")


# ---- import ----------------------------------------------------------------------------------------------------


def test_import_leaves_out_the_mixed_folder_and_keeps_every_image_for_evaluation(dev_root, monkeypatch):
    from core import datasets

    root, report = dev_root
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(root))
    assert report.name == DEV and report.classes == ["apple", "other", "pear"]
    assert report.counts == {"all": COUNTS}
    assert report.excluded == {"mixed": {"images": 29, "reason": report.excluded["mixed"]["reason"]}}
    assert "labels.csv" in report.excluded["mixed"]["reason"]
    assert "Folder mixed/ (29 images) is not a class" in report.summary() and "--split all" in report.summary()
    assert not (root / DEV / "all" / "mixed").exists()
    files, y, classes = datasets.split_files(DEV, "all")
    assert len(files) == 470 and classes == ["apple", "other", "pear"]
    assert dict(zip(classes, np.bincount(y).tolist(), strict=True)) == COUNTS
    carved = datasets.describe(DEV)["counts"]  # training carves test (20%) and val from the same images
    assert sum(sum(c.values()) for c in carved.values()) == 470 and sum(carved["test"].values()) < 470
    x, y_all, _ = datasets.load_split_arrays(DEV, "all", 16)
    assert x.shape == (470, 16, 16, 3) and np.array_equal(y_all, y)


def test_exclude_names_a_class_folder_and_an_unknown_one_is_one_clear_error(data_dir, tmp_path):
    from core import datasets

    jpeg = good_jpeg(1)
    files = {f"shelf/{c}/{i}.jpg": jpeg for c in ("a", "b", "junk") for i in range(2)}
    source = make_zip(tmp_path / "shelf.zip", files)
    report = datasets.import_dataset(source, exclude=["junk"])
    assert report.classes == ["a", "b"]
    assert report.excluded["junk"] == {"images": 2, "reason": "left out with --exclude"}
    with pytest.raises(TransferLabError, match=r"no class folder named 'nope' to exclude") as err:
        datasets.import_dataset(source, name="shelf2", exclude=["nope"])
    assert "\n" not in str(err.value)
    assert not (data_dir / "shelf2").exists()


# ---- evaluate -----------------------------------------------------------------------------------------------


def test_default_model_on_the_dev_set_is_consistent_and_stored(evaluated, clone):
    from core import runs

    e = evaluated
    matrix = np.array(e["confusion"])
    assert e["n"] == 470 and matrix.sum() == 470 and e["classes"] == ["apple", "noise", "pear"]
    assert e["mapping"] == {"apple": "apple", "other": "noise", "pear": "pear"}
    assert e["accuracy"] == pytest.approx(np.trace(matrix) / 470)
    assert [p["support"] for p in e["per_class"]] == [156, 229, 85]
    for i, p in enumerate(e["per_class"]):
        assert p["recall"] == pytest.approx(matrix[i, i] / matrix[i].sum())
        assert p["precision"] == pytest.approx(matrix[i, i] / matrix[:, i].sum())
    assert e["balanced_accuracy"] == pytest.approx(np.mean([p["recall"] for p in e["per_class"]]))
    assert e["by_dataset_class"]["other"] == dict(zip(e["classes"], matrix[1].tolist(), strict=True))
    stored = json.loads(Path(e["path"]).read_text())
    assert Path(e["path"]) == clone / "default" / "evaluations" / "real-photos-dev__all.json"
    assert {k: v for k, v in e.items() if k != "path"} == stored
    assert runs.get_run("default")["evaluations"] == [stored]


def test_a_second_evaluation_replaces_the_first(evaluated, clone):
    from core import evaluate, runs

    again = evaluate.evaluate("default", DEV, {"other": "noise"}, "all")
    assert again["confusion"] == evaluated["confusion"]
    assert len(list((clone / "default" / "evaluations").iterdir())) == 1
    assert len(runs.list_evaluations("default")) == 1


def test_evaluation_answers_exactly_as_classify_does(evaluated):
    from core import datasets, predict

    files, y, classes = datasets.split_files(DEV, "all")
    pears = [str(f) for f, k in zip(files, y, strict=True) if classes[k] == "pear"]
    answers = [r["label"] for r in predict.classify_paths(pears, model="default")]
    assert {c: answers.count(c) for c in evaluated["classes"]} == evaluated["by_dataset_class"]["pear"]


def test_a_bad_mapping_is_one_clear_error_naming_the_class(clone):
    from core import evaluate

    with pytest.raises(TransferLabError, match=r"'banana' is not a class of the model") as err:
        evaluate.evaluate("default", DEV, {"other": "banana"}, "all")
    assert "\n" not in str(err.value)
    with pytest.raises(TransferLabError, match=r"Dataset class 'other' maps to no class of the model"):
        evaluate.evaluate("default", DEV, None, "all")
    with pytest.raises(TransferLabError, match=r"'kiwi' is not a class of the dataset"):
        evaluate.evaluate("default", DEV, {"kiwi": "noise", "other": "noise"}, "all")
    assert not (clone / "default" / "evaluations").exists()


def test_suggested_mapping_and_default_split(clone):
    from core import evaluate

    assert evaluate.suggest_mapping(["apple", "other", "pear"], ["apple", "noise", "pear"]) == {
        "apple": "apple", "other": "noise", "pear": "pear"}
    assert evaluate.default_split("default", DEV) == "all"  # a split-less set the model was not trained on


def test_cli_prints_the_table_and_json_parses(clone, capsys):
    from core.cli import main

    assert main(["evaluate", "default", DEV, "--map", "other=noise"]) == 0
    out = capsys.readouterr().out
    assert "(all, 470 images, mapping other->noise)" in out
    assert "truth  apple  noise  pear  recall  precision" in out
    assert main(["evaluate", "default", DEV, "--map", "other=noise", "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and 0 < result["n"] < 470
    assert main(["evaluate", "default", DEV, "--map", "other=apples"]) == 2
    assert capsys.readouterr().err.strip() == ("error: 'apples' is not a class of the model; its classes are "
                                               "apple, noise, pear.")
    assert main(["runs", "show", "default"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert sorted((e["dataset"], e["split"]) for e in shown["evaluations"]) == [(DEV, "all"), (DEV, "test")]


# ---- Results page ----------------------------------------------------------------------------------------------


def test_results_page_shows_stored_evaluations_and_evaluates_from_the_form(evaluated):
    at = page("pages/results.py")
    assert at.selectbox(key="detail_run").value == "default"
    table = next(d.value for d in at.dataframe if "evaluated on" in d.value.columns)
    assert list(table["evaluated on"]) == ["fruits360-3 (its own test split)", "real-photos-dev (all)"]
    assert list(table["images"]) == [2226, 470]
    assert table["accuracy"].iloc[1] == pytest.approx(evaluated["accuracy"])
    assert any(m.label == "Balanced accuracy" and m.value == f"{evaluated['balanced_accuracy']:.4f}"
               for m in at.metric)
    assert any(getattr(c, "proto", None) is not None for c in at.get("plotly_chart"))
    assert at.selectbox(key="eval_map_default_other").value == "noise"  # prefilled by the other/noise rule
    assert at.selectbox(key="eval_map_default_apple").value == "apple"
    at.selectbox(key="eval_split_default").set_value("test")
    next(b for b in at.button if b.label == "Evaluate").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Evaluated on real-photos-dev (test" in "\n".join(str(s.value) for s in at.success)
    table = next(d.value for d in at.dataframe if "evaluated on" in d.value.columns)
    assert "real-photos-dev (test)" in list(table["evaluated on"])


def test_test_time_views_answer_as_classify_with_tta_does(clone):
    """With tta the evaluation averages the six views per photo, exactly as Classify's option (on the dev set's
    94-photo test split: six views of all 470 photos cost ~50 s of CI)."""
    from core import datasets, evaluate, predict
    from core.images import open_image

    files, y, classes = datasets.split_files(DEV, "test")
    clf = predict.load_classifier("default")
    views = predict.tta_views(open_image(files[0]), clf.input_size)
    assert views.shape == (6, clf.input_size, clf.input_size, 3) and views.dtype == np.uint8
    result = evaluate.evaluate("default", DEV, {"other": "noise"}, "test", tta=True, store=False)
    assert result["tta"] is True and result["n"] == len(files) and {classes[k] for k in y} == set(COUNTS)
    pears = [str(f) for f, k in zip(files, y, strict=True) if classes[k] == "pear"]
    answers = [clf.classify(p, tta=True)["label"] for p in pears]
    assert {c: answers.count(c) for c in result["classes"]} == result["by_dataset_class"]["pear"]
