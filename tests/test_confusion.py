"""Issue 17, points 3 and 11: the confusion matrix is stored once, sparsely, with memory bounded by the test
images (not classes squared), and class names holding ',' or newlines survive confusion.csv."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np

from core import confusion, records
from core.config import REPO_ROOT

ODD = ["plain", "with, comma", "two\nlines", 'say "hi"']


def test_odd_class_names_round_trip_through_confusion_csv(tmp_path):
    y_true = np.array([0, 1, 1, 2, 3, 3], np.int32)
    y_pred = np.array([0, 1, 2, 2, 3, 0], np.int64)
    confusion.write(tmp_path, ODD, confusion.sparse_cells(y_true, y_pred, len(ODD)))
    with (tmp_path / "confusion.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true\\pred", *ODD] and [r[0] for r in rows[1:]] == ODD
    assert [list(map(int, r[1:])) for r in rows[1:]] == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 1]]
    classes, matrix = records.read_confusion(tmp_path)
    assert classes == ODD and matrix[3] == [1, 0, 0, 1]


PEAK = """
import json, resource, sys, numpy as np
from pathlib import Path
from core import confusion
n, images = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
y_true = rng.integers(0, n, images).astype(np.int32)
y_pred = np.where(rng.random(images) < 0.5, y_true, rng.integers(0, n, images))
classes = [f"class {i:05d}" for i in range(n)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
test = confusion.classification_metrics(y_true, y_pred, classes)
confusion.write(Path(sys.argv[3]), classes, test["confusion"])
print(json.dumps({"peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


def peak_mb(n: int, images: int, folder) -> float:
    proc = subprocess.run([sys.executable, "-c", PEAK, str(n), str(images), str(folder)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])["peak_mb"]


def test_a_3000_class_confusion_store_stays_small_in_memory_and_on_disk(tmp_path):
    """3,000 classes, 20,000 test images: the old dense store peaked at hundreds of MB; sparse cells cost a few."""
    peak = peak_mb(3000, 20_000, tmp_path)
    assert peak < 60, f"peak grew by {peak:.0f} MB"
    stored = json.loads((tmp_path / "confusion.json").read_text())
    assert "matrix" not in stored and len(stored["sparse"]) <= 20_000
    assert (tmp_path / "confusion.json").stat().st_size < 2_000_000
    classes, matrix = records.read_confusion(tmp_path)
    assert len(classes) == 3000 and matrix is None  # too large to draw: the page says so
