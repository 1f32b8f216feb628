"""Exports take RGB 0..255 and carry their labels: read in a fresh process with plain Keras / TensorFlow / LiteRT
(no TransferLab), the shipped model classifies real Fruits-360 images; a model stored before preprocessing moved
inside keeps being preprocessed by the caller, and its exports take raw pixels too."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import FRUITS_ZIP, shared_data
from PIL import Image

from core import archs, model_input, predict, runs
from core.images import load_rgb
from core.run_records import RunRecord

READER = Path(__file__).with_name("export_reader.py")
# a Fruits-360 Test image per class of the shipped model (apple / noise / pear: a banana is noise)
IMAGES = {"apple": "fruits-360/Test/Apple Braeburn/", "noise": "fruits-360/Test/Banana/", "pear": "fruits-360/Test/Pear/"}


def _export_all(run_id: str, folder: Path) -> None:
    folder.mkdir()
    for fmt in predict.EXPORT_FORMATS:
        blob, name = predict.export_model(run_id, fmt)
        (folder / name).write_bytes(blob)


def _read_in_a_fresh_process(folder: Path, images: list[Path]) -> dict:
    done = subprocess.run([sys.executable, "-I", str(READER), str(folder), *map(str, images)], cwd=folder,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result.pop("transferlab_imported") is False
    return result


@pytest.fixture
def classifiers():
    predict._load_classifier.cache_clear()
    yield
    predict._load_classifier.cache_clear()


@pytest.mark.realdata
def test_every_export_of_the_shipped_model_classifies_real_images_in_a_fresh_process(classifiers, data_dir, tmp_path):
    with zipfile.ZipFile(shared_data(FRUITS_ZIP) / FRUITS_ZIP) as zf:
        names = zf.namelist()
        images = []
        for label, folder in IMAGES.items():
            member = sorted(n for n in names if n.startswith(folder) and n.endswith(".jpg"))[0]
            images.append(tmp_path / f"{label}.jpg")
            images[-1].write_bytes(zf.read(member))
    _export_all(runs.DEFAULT_MODEL_DIR, tmp_path / "exports")
    result = _read_in_a_fresh_process(tmp_path / "exports", images)
    labels = runs.labels_for(runs.DEFAULT_MODEL_DIR)
    clf = predict.load_classifier(runs.DEFAULT_MODEL_DIR)
    ours = np.concatenate([clf.probabilities(load_rgb(p, clf.input_size)[None]) for p in images])
    for fmt in predict.EXPORT_FORMATS:
        assert result[fmt]["labels"] == labels, fmt
        answers = [labels[int(np.argmax(p))] for p in result[fmt]["probs"]]
        assert answers == list(IMAGES), (fmt, answers)
        np.testing.assert_allclose(result[fmt]["probs"], ours, atol=0.02)  # PIL's resize here, ours in the app


def _stored_before_preprocessing_moved_inside(arch: str) -> str:
    """A small model as TransferLab stored them before: it takes `arch`'s preprocessed input (Caffe: BGR minus
    the means) and its run records no raw_pixels."""
    inp = keras.Input((32, 32, 3), name="input")
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="predictions")(x), name=arch)
    model.get_layer("conv").set_weights([np.random.default_rng(0).normal(0, 0.05, (3, 3, 3, 4)), np.zeros(4)])
    run_id = runs.create_run(RunRecord(stage={"dataset": "toy", "arch": arch}))
    runs.save_model(run_id, model)
    runs.write_labels(run_id, ["a", "b", "c"])
    runs.write_metrics(run_id, {"test_accuracy": 0.5})
    runs.set_status(run_id, "done")
    return run_id


def test_a_model_stored_before_keeps_its_preprocessing_and_its_exports_take_raw_pixels(classifiers, empty_roots):
    run_id = _stored_before_preprocessing_moved_inside("vgg16")
    assert not model_input.takes_raw_pixels(run_id) and not model_input.stage_takes_raw_pixels(run_id)
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = pixels[None].astype(np.float32)
    expected = np.asarray(runs.load_model(run_id)(archs.caffe_preprocess(x)))
    clf = predict.load_classifier(run_id)
    assert not clf.raw_pixels
    np.testing.assert_allclose(clf.probabilities(x), expected, atol=1e-5)  # LiteRT
    np.testing.assert_allclose(clf.probabilities(np.repeat(x, 9, 0))[:1], expected, atol=1e-5)  # tf.function
    _export_all(run_id, empty_roots / "exports")
    Image.fromarray(pixels).save(empty_roots / "image.png")
    result = _read_in_a_fresh_process(empty_roots / "exports", [empty_roots / "image.png"])
    for fmt in predict.EXPORT_FORMATS:
        assert result[fmt]["labels"] == ["a", "b", "c"]
        np.testing.assert_allclose(result[fmt]["probs"], expected, atol=1e-5)


def test_a_run_records_whether_its_model_takes_raw_pixels(empty_roots):
    run_id = _stored_before_preprocessing_moved_inside("alexnet4")
    runs.write_metrics(run_id, {model_input.RAW_PIXELS: True})
    assert model_input.takes_raw_pixels(run_id) and model_input.stage_takes_raw_pixels(None)
    assert model_input.preprocess("vgg16", raw_pixels=True) is archs.efficientnet_preprocess
    assert model_input.preprocess("vgg16", raw_pixels=False) is archs.caffe_preprocess
