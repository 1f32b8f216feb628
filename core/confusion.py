"""A run's test confusion matrix, stored once and compactly: sparse cells, never an n x n list in memory.

The JSON file (core.store.CONFUSION) holds `{"classes", "sparse": [[true, predicted, count], ...]}` (only the
non-zero cells: at most one per test image); the CSV file (core.store.CONFUSION_CSV) is the dense table for up
to DENSE_CSV_MAX classes (a spreadsheet's view) and the same non-zero cells in long form beyond that. Class names are quoted by the csv module.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.config import atomic_write_json
from core.store import CONFUSION, CONFUSION_CSV

DENSE_CSV_MAX = 200


def sparse_cells(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> list[list[int]]:
    """[[true, predicted, count], ...] for every non-zero cell, row-major."""
    keys, counts = np.unique(y_true.astype(np.int64) * n + y_pred.astype(np.int64), return_counts=True)
    return [[int(k // n), int(k % n), int(c)] for k, c in zip(keys, counts, strict=True)]


def summary(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> dict[str, Any]:
    """Accuracy, Cohen's kappa and per-class tp / support / predicted from the marginals (no n x n array)."""
    total = len(y_true)
    row = np.bincount(y_true, minlength=n).astype(float)
    col = np.bincount(y_pred, minlength=n).astype(float)
    tp = np.bincount(y_true[y_true == y_pred], minlength=n).astype(float)
    acc = float(tp.sum() / total) if total else 0.0
    expected = float((row * col).sum() / total**2) if total else 0.0
    kappa = (acc - expected) / (1 - expected) if expected < 1 else 1.0
    return {"accuracy": acc, "kappa": float(kappa), "tp": tp, "support": row, "predicted": col}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, Cohen's kappa, the confusion matrix as sparse cells and per-class precision/recall/F1."""
    n = len(classes)
    m = summary(y_true, y_pred, n)
    tp, support, predicted = m["tp"], m["support"], m["predicted"]
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    per_class = [{"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                 for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)]
    return {"accuracy": m["accuracy"], "kappa": m["kappa"], "confusion": sparse_cells(y_true, y_pred, n),
            "per_class": per_class}


def write(folder: Path, classes: list[str], cells: list[list[int]]) -> None:
    atomic_write_json(folder / CONFUSION, {"classes": classes, "sparse": cells})
    _write_csv(folder / CONFUSION_CSV, classes, cells)


def _write_csv(path: Path, classes: list[str], cells: list[list[int]]) -> None:
    """Streamed row by row into a temp file, then renamed (atomic, and no whole-table string in memory)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            if len(classes) > DENSE_CSV_MAX:
                out.writerow(["true", "predicted", "count"])
                out.writerows([classes[i], classes[j], c] for i, j, c in cells)
            else:
                out.writerow(["true\\pred", *classes])
                dense = np.zeros((len(classes), len(classes)), np.int64)
                for i, j, c in cells:
                    dense[i, j] = c
                out.writerows([c, *map(int, r)] for c, r in zip(classes, dense, strict=True))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
