"""What a stored run gets wrong on its Test split: the wrong images sorted by loss (truth, prediction,
probability), the most-confused class pairs and per-class precision / recall / F1 (the training engine's).

The Test split is rebuilt exactly as the run's stage loaded it (same dataset, sizes and data seed), and scored
through `core.predict`'s classifier (the Classify page's model path), so the counts match the run's confusion
matrix. Probabilities are the model's own (not temperature-calibrated): the loss is -log p(truth).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core import confusion, datasets, predict, runs
from core.config import TransferLabError
from core.confusion import classification_metrics
from core.training import DATA_SEED

BATCH = 256


def _test_split(run: dict[str, Any], size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The Test split as the run's stage loaded it (the engine's data seed)."""
    stage = run["config"].get("stage") or {}
    if not stage.get("dataset"):
        raise TransferLabError(f"Run {run['run_id']}'s record names no dataset.")
    return datasets.load_split_arrays(
        stage["dataset"], "test", size, val_fraction=stage.get("val_fraction", 0.1),
        split_mode=stage.get("split_mode", "auto"), limit_per_class=stage.get("limit_per_class"),
        per_class=stage.get("per_class"), seed=DATA_SEED)


def confused_pairs(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], top: int = 10) -> list[dict[str, Any]]:
    """The off-diagonal confusion cells, largest first: {"truth", "prediction", "count", "share"} where share is
    the part of the true class's images that went to this prediction."""
    support = np.bincount(y_true, minlength=len(classes))
    cells = [(i, j, c) for i, j, c in confusion.sparse_cells(y_true, y_pred, len(classes)) if i != j]
    cells.sort(key=lambda cell: (-cell[2], cell[0], cell[1]))
    return [{"truth": classes[i], "prediction": classes[j], "count": c, "share": c / support[i]}
            for i, j, c in cells[:top]]


def analyse(run_id: str, limit: int = 60, top_pairs: int = 10,
            progress: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """For a finished run: {"run_id", "dataset", "classes", "n", "accuracy", "n_wrong", "wrong" (every wrong
    Test image, highest loss first: "index" into the split, "truth", "prediction", "probability" of the
    prediction, "truth_probability", "loss"), "images" (uint8 arrays of the first `limit` of them), "pairs",
    "per_class", "seconds"}."""
    run = runs.get_run(run_id)
    if run["status"] != "done" or not run["has_model"]:
        raise TransferLabError(f"Run {run_id} is {run['status']} and has no model to analyse.")
    t0 = time.perf_counter()
    clf = predict.load_classifier(run_id)
    x, y, classes = _test_split(run, clf.input_size)
    if classes != clf.labels:
        raise TransferLabError(f"The dataset's classes no longer match run {run_id}'s ({len(classes)} against "
                               f"{len(clf.labels)}): it was re-imported or changed since the run.")
    if not len(x):
        raise TransferLabError(f"Run {run_id}'s Test split has no images.")
    parts = []
    for i in range(0, len(x), BATCH):
        parts.append(clf.probabilities(x[i:i + BATCH]))
        if progress:
            progress(f"Scored {min(i + BATCH, len(x))} of {len(x)} test images", min(i + BATCH, len(x)) / len(x))
    probs = np.concatenate(parts)
    pred = probs.argmax(1)
    truth_p = probs[np.arange(len(y)), y]
    loss = -np.log(np.clip(truth_p, 1e-7, 1.0))
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-loss[wrong], kind="stable")]
    rows = [{"index": int(i), "truth": classes[y[i]], "prediction": classes[pred[i]],
             "probability": float(probs[i, pred[i]]), "truth_probability": float(truth_p[i]),
             "loss": float(loss[i])} for i in wrong]
    return {"run_id": run_id, "dataset": run["config"]["stage"]["dataset"], "classes": classes, "n": int(len(y)),
            "accuracy": float((pred == y).mean()), "n_wrong": len(rows), "wrong": rows,
            "images": [x[i] for i in wrong[:limit]], "pairs": confused_pairs(y, pred, classes, top_pairs),
            "per_class": classification_metrics(y, pred, classes)["per_class"], "seconds": round(time.perf_counter() - t0, 2)}
