"""The Classify engine on the shipped default model: LiteRT for one image, tf.function for batches, same answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from core import predict, runs


@pytest.fixture
def clf(data_dir: Path) -> predict.Classifier:
    predict._load_classifier.cache_clear()
    yield predict.load_classifier("default")
    predict._load_classifier.cache_clear()


def _images(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_one_image_goes_through_litert_and_matches_tensorflow(clf: predict.Classifier) -> None:
    assert clf.engine == "litert"
    image = _images(1, clf.input_size)
    lite = clf.probabilities(image)
    tf_probs = clf._forward(tf.convert_to_tensor(image, tf.float32)).numpy()
    np.testing.assert_allclose(lite, tf_probs, atol=1e-5)
    assert lite.shape == (1, len(clf.labels)) and abs(lite.sum() - 1) < 1e-4


def test_a_batch_gives_the_same_answers_as_one_image_at_a_time(clf: predict.Classifier) -> None:
    images = _images(4, clf.input_size)
    batch = clf.probabilities(images)
    one_by_one = np.concatenate([clf.probabilities(img[None]) for img in images])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)


def test_the_conversion_is_cached_in_the_data_folder(clf: predict.Classifier, data_dir: Path) -> None:
    cached = list((data_dir / ".cache" / "litert").glob("default-*.tflite"))
    assert len(cached) == 1 and cached[0].read_bytes() == clf.lite_model


def test_a_model_litert_cannot_take_still_answers(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> bytes:
        raise ValueError("unsupported op")

    monkeypatch.setattr(predict, "_to_tflite", refuse)
    predict._load_classifier.cache_clear()
    clf = predict.load_classifier("default")
    predict._load_classifier.cache_clear()
    assert clf.engine == "tf.function"
    assert clf.probabilities(_images(1, clf.input_size)).shape == (1, len(clf.labels))


def test_the_tflite_export_takes_rgb_and_answers_like_the_page(clf: predict.Classifier) -> None:
    from ai_edge_litert.interpreter import Interpreter

    blob, name = predict.export_model("default", "tflite")
    assert name == f"{runs.DEFAULT_MODEL_DIR}.tflite"
    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    image = _images(1, clf.input_size)
    interp.set_tensor(interp.get_input_details()[0]["index"], image.astype(np.float32))
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, clf.probabilities(image), atol=1e-5)


def test_latest_is_the_newest_model_counting_the_shipped_one_by_its_creation(tmp_path, monkeypatch) -> None:
    """A stored run older than the shipped model does not hide it; a run trained after it is picked."""
    import json
    import shutil

    from core.config import REPO_ROOT

    results = tmp_path / "results"
    shutil.copytree(REPO_ROOT / "results" / runs.DEFAULT_MODEL_DIR, results / runs.DEFAULT_MODEL_DIR)
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(results))
    shipped = json.loads((results / runs.DEFAULT_MODEL_DIR / "config.json").read_text())["created"]

    def stored_run(run_id: str, created: str) -> None:
        folder = results / "runs" / run_id
        shutil.copytree(results / runs.DEFAULT_MODEL_DIR, folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "run_id": run_id, "created": created}))

    stored_run("older-run", "2000-01-01T00:00:00+00:00")
    assert runs.latest_model_run() == "older-run"
    assert predict.resolve_model("latest") == runs.DEFAULT_MODEL_DIR
    stored_run("newer-run", "2999-01-01T00:00:00+00:00")
    assert predict.resolve_model("latest") == "newer-run"
    assert shipped < "2999"


def test_best_is_the_most_accurate_loadable_model_counting_the_shipped_one(tmp_path, monkeypatch) -> None:
    """`best` (Classify's default) ranks by test accuracy; a broken model file is passed over; `latest` is
    unchanged (the newest)."""
    import json
    import shutil

    from core.config import REPO_ROOT

    results = tmp_path / "results"
    shutil.copytree(REPO_ROOT / "results" / runs.DEFAULT_MODEL_DIR, results / runs.DEFAULT_MODEL_DIR)
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(results))
    shipped = json.loads((results / runs.DEFAULT_MODEL_DIR / "metrics.json").read_text())["test_accuracy"]

    def stored_run(run_id: str, created: str, accuracy: float) -> None:
        folder = results / "runs" / run_id
        shutil.copytree(results / runs.DEFAULT_MODEL_DIR, folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "run_id": run_id, "created": created}))
        metrics = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps({**metrics, "test_accuracy": accuracy}))

    stored_run("newest-chance", "2999-01-02T00:00:00+00:00", 0.356)
    assert predict.resolve_model("latest") == "newest-chance"
    assert predict.resolve_model("best") == runs.DEFAULT_MODEL_DIR
    stored_run("better", "2999-01-01T00:00:00+00:00", min(shipped + 0.01, 1.0))
    assert predict.resolve_model("best") == "better"
    (results / "runs" / "better" / "model.keras").write_bytes(b"not a zip")
    assert predict.resolve_model("best") == runs.DEFAULT_MODEL_DIR
    stored_run("other-classes", "2999-01-03T00:00:00+00:00", 0.6)  # now the newest, for other classes
    (results / "runs" / "other-classes" / "labels.json").write_text(json.dumps(["cat", "dog"]))
    assert predict.resolve_model("best") == "other-classes"  # the best for its class set, not the shipped one
