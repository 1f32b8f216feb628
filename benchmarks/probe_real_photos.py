"""How far can frozen ImageNet features go on real photos? A linear probe trained on real photos themselves.

For each backbone and input size, the pooled features of the real-photos dev set (apple / other / pear, `mixed/`
skipped) are computed once; a logistic regression is then trained and scored by 5-fold cross-validation, 3
shuffles. Two ways to fold:
- `grouped`: a fold holds whole groups (a Grocery Store variety such as `Conference`, or one source's class), so
  every photo is scored by a probe that never saw its variety or bin: what a new photo meets.
- `random`: folds ignore groups. Shots of the same bin land on both sides, so this number is optimistic.

The grouped score is an upper bound on what any head on these frozen features can do on new real photos, since
here the head is even trained on real photos. It is a development check of the backbone, not a test score.

    python benchmarks/probe_real_photos.py [--variants efficientnet_lite0:224,efficientnet_lite0:288]

Needs the dev set imported (python -m core datasets import ../shared/data/real-photos-dev.zip) and scikit-learn
(requirements-cluster.txt brings it in with mlflow).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASET = "real-photos-dev"
DEFAULT_VARIANTS = "efficientnet_lite0:224,efficientnet_lite0:288,efficientnet_lite1:240,efficientnet_lite2:260"


def group_of(path: str) -> str:
    """`all/pear/gsd-val__Conference_004.jpg` -> `gsd:Conference`; other sources group by source and class."""
    _, cls, name = path.split("/")
    source, _, rest = name.partition("__")
    if source.startswith("gsd"):
        return "gsd:" + re.sub(r"_\d+\.\w+$", "", rest)
    return f"{source}:{cls}"


def features(variant: str, size: int, paths: list[Path]) -> tuple[np.ndarray, float]:
    import keras

    from core import efficientnet_lite
    from core.images import load_rgb

    x = np.stack([load_rgb(p, size) for p in paths])
    net = efficientnet_lite.backbone(variant, size)
    net.predict(x[:8], verbose=0)
    start = time.perf_counter()
    f = net.predict(x, batch_size=32, verbose=0)
    keras.backend.clear_session()
    return f, len(x) / (time.perf_counter() - start)


def probe(f: np.ndarray, y: np.ndarray, groups: np.ndarray | None, seeds: int = 3) -> tuple[float, float]:
    """Mean accuracy and balanced accuracy of out-of-fold predictions over `seeds` shuffles."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = []
    for seed in range(seeds):
        folds = (StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(f, y, groups) if groups is not None
                 else StratifiedKFold(5, shuffle=True, random_state=seed).split(f, y))
        pred = np.empty_like(y)
        for train, test in folds:
            head = make_pipeline(StandardScaler(),
                                 LogisticRegression(C=0.1, max_iter=500, class_weight="balanced"))
            pred[test] = head.fit(f[train], y[train]).predict(f[test])
        recalls = [np.mean(pred[y == k] == k) for k in np.unique(y)]
        scores.append((np.mean(pred == y), np.mean(recalls)))
    return tuple(np.mean(scores, axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated variant:size")
    args = parser.parse_args()

    from core import datasets
    from core.config import data_root
    from core.data_sources import local_source
    from core.data_store import read_meta

    if DATASET not in {d["name"] for d in datasets.list_datasets() if d["available"]}:
        sys.exit(f"{DATASET} is not imported: python -m core datasets import ../shared/data/real-photos-dev.zip")
    src = local_source(DATASET, read_meta(DATASET))
    files, y = src.files["all"], src.labels["all"]
    groups = np.array([group_of(p) for p in files])
    paths = [data_root() / DATASET / p for p in files]
    print(f"{DATASET}: {len(files)} photos, {len(set(groups))} groups, classes {src.classes}")
    print(f"{'backbone':22s} {'size':>4s} {'img/s':>6s}  grouped acc / bal   random acc / bal")
    for spec in args.variants.split(","):
        variant, size = spec.split(":")
        try:
            f, rate = features(variant, int(size), paths)
        except Exception as exc:  # a variant whose weights package is not installed
            print(f"{variant:22s} {size:>4s}  skipped: {exc}")
            continue
        g, r = probe(f, y, groups), probe(f, y, None)
        print(f"{variant:22s} {size:>4s} {rate:6.1f}  {g[0]:.3f} / {g[1]:.3f}      {r[0]:.3f} / {r[1]:.3f}", flush=True)


if __name__ == "__main__":
    main()
