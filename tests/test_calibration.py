"""Temperature scaling, calibration error and the "not sure" threshold (core.calibration), and Classify's use of them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core import calibration
from core.calibration import Calibration


def _overconfident(n: int = 4000, classes: int = 3, t_true: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z); the 'model' reports softmax(t_true * z): overconfident by t_true."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    p_true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(classes, p=row) for row in p_true])
    reported = np.exp(t_true * z) / np.exp(t_true * z).sum(1, keepdims=True)
    return reported, y


def test_rescale_keeps_predictions_and_sums_to_one():
    probs, _ = _overconfident(200)
    for t in (0.5, 1.0, 4.0):
        out = calibration.rescale(probs, t)
        assert np.allclose(out.sum(1), 1.0, atol=1e-5)
        assert (out.argmax(1) == probs.argmax(1)).all()
    assert np.allclose(calibration.rescale(probs, 1.0), probs, atol=1e-5)


def test_fitted_temperature_recovers_the_overconfidence_and_lowers_ece():
    probs, y = _overconfident()
    cal = calibration.calibrate(probs, y)
    assert 2.6 < cal.temperature < 3.4
    assert cal.ece_after < cal.ece_before / 2
    assert cal.nll_after < cal.nll_before


def test_threshold_keeps_validation_precision():
    probs, y = _overconfident()
    cal = calibration.calibrate(probs, y)
    scaled = cal.apply(probs)
    kept = scaled.max(1) >= cal.threshold
    assert cal.threshold >= calibration.THRESHOLD_FLOOR
    assert (scaled.argmax(1) == y)[kept].mean() >= calibration.TARGET_PRECISION
    assert 0 < cal.coverage < 1 and cal.coverage == pytest.approx(kept.mean())


def test_perfect_validation_does_not_sharpen():
    """All validation right: lowering T always lowers NLL, which is no evidence the model is underconfident."""
    y = np.arange(300) % 3
    probs = np.full((300, 3), 0.2)
    probs[np.arange(300), y] = 0.6
    assert calibration.calibrate(probs, y).temperature >= 1.0


@pytest.mark.parametrize("stored", [None, [1, 2], "oops", {"temperature": "x"}, {"temperature": -1},
                                    {"temperature": float("nan")}, {"threshold": 7}])
def test_a_bad_stored_calibration_is_the_identity(stored):
    assert Calibration.from_dict(stored) == Calibration()


def test_ece_of_a_calibrated_model_is_small():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1, 1, 1], 20000)
    y = np.array([rng.choice(3, p=p) for p in probs])
    assert calibration.expected_calibration_error(probs, y) < 0.02


@pytest.mark.realdata
def test_classify_says_not_sure_below_the_threshold(real_data_root, shared_data_root):
    """The shipped model on a real Fruits-360 image: sure at the stored threshold, 'not sure' when it is 1."""
    import zipfile

    from core import predict

    with zipfile.ZipFile(shared_data_root / "fruits-360-v2019.05.06.1-subset.zip") as zf:
        name = next(n for n in zf.namelist() if n.startswith("fruits-360/Test/Pear Williams/") and n.endswith(".jpg"))
        data = zf.read(name)
    clf = predict.load_classifier("default")
    result = clf.classify(data, name="pear.jpg")
    assert result["label"] == "pear" and result["sure"] is (result["top_k"][0][1] >= clf.calibration.threshold)
    strict = dataclasses.replace(clf, calibration=Calibration(threshold=1.0))
    doubtful = strict.classify(data, name="pear.jpg", tta=True)
    assert doubtful["sure"] is False and doubtful["tta"] is True
    assert doubtful["label"] in clf.labels and abs(sum(doubtful["probabilities"].values()) - 1) < 1e-4
