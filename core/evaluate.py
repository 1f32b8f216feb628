"""Evaluate a stored model on any imported dataset: a class mapping from the dataset's classes to the model's,
accuracy, balanced accuracy, per-class recall and precision and the confusion matrix, stored with the run.

Images are decoded exactly as Classify decodes an upload (`Classifier.prepare`: EXIF upright, RGB, resized to
the model's input) and scored in batches through `Classifier.probabilities`. Datasets stored as arrays (IDX, the
Keras built-ins) have no files; their images come from `load_split_arrays` at the model's input size.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from core import datasets, predict, runs
from core.config import TransferLabError
from core.console import print_json, table
from core.data_store import read_meta
from core.store import EVAL_SPLITS, now_iso

SPLITS = EVAL_SPLITS
BATCH = 64
NOISE_NAMES = ("noise", "other", "others", "rest", "background", "none", "negative", "unknown")


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """`["other=noise", "Apple*=apple"]` -> {"other": "noise", "Apple*": "apple"}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise TransferLabError(f"Class mapping {pair!r} is not DATASET_CLASS=MODEL_CLASS (e.g. other=noise).")
        mapping[key.strip()] = value.strip()
    return mapping


def resolve_mapping(
    dataset_classes: Sequence[str], model_classes: Sequence[str], mapping: dict[str, str] | None = None
) -> dict[str, str]:
    """Every dataset class -> one model class: its own entry, else the model class of the same name, else the
    first pattern entry (fnmatch, e.g. `Apple*`) that matches it. A class left without one is an error."""
    mapping = dict(mapping or {})
    for value in mapping.values():
        if value not in model_classes:
            raise TransferLabError(f"{value!r} is not a class of the model; its classes are "
                                   f"{', '.join(model_classes)}.")
    patterns = {k: v for k, v in mapping.items() if any(ch in k for ch in "*?[")}
    for key in mapping:
        if key not in patterns and key not in dataset_classes:
            raise TransferLabError(f"{key!r} is not a class of the dataset; its classes are "
                                   f"{', '.join(dataset_classes)}.")
        if key in patterns and not fnmatch.filter(dataset_classes, key):
            raise TransferLabError(f"The pattern {key!r} matches no class of the dataset.")
    out: dict[str, str] = {}
    for cls in dataset_classes:
        target = mapping.get(cls) or (cls if cls in model_classes else None)
        target = target or next((v for k, v in patterns.items() if fnmatch.fnmatchcase(cls, k)), None)
        if target is None:
            guess = next((m for m in model_classes if m.casefold() in NOISE_NAMES), model_classes[0])
            raise TransferLabError(f"Dataset class {cls!r} maps to no class of the model "
                                   f"({', '.join(model_classes)}): map it, e.g. {cls}={guess}.")
        out[cls] = target
    return out


def suggest_mapping(dataset_classes: Sequence[str], model_classes: Sequence[str]) -> dict[str, str | None]:
    """A first guess for a form: the same name (any case), else a catch-all (`other` -> `noise`), else None."""
    by_fold = {m.casefold(): m for m in model_classes}
    catch_all = next((m for m in model_classes if m.casefold() in NOISE_NAMES), None)
    return {c: by_fold.get(c.casefold()) or (catch_all if c.casefold() in NOISE_NAMES else None)
            for c in dataset_classes}


def _images(clf: predict.Classifier, dataset: str, split: str, tta: bool) -> tuple[Any, np.ndarray, list[str]]:
    """(batches [B, V, S, S, 3] of model-ready views (V = 1, or the test-time views with `tta`), dataset labels,
    dataset classes); batches decode lazily."""
    found = datasets.split_files(dataset, split)
    if found is None:
        x, y, classes = datasets.load_split_arrays(dataset, split, clf.input_size)

        def of_array(a: np.ndarray) -> np.ndarray:
            return predict.tta_views(Image.fromarray(a), clf.input_size) if tta else a[None]

        return (np.stack([of_array(a) for a in x[i : i + BATCH]]) for i in range(0, len(x), BATCH)), y, classes
    files, y, classes = found

    def batches() -> Any:
        with ThreadPoolExecutor(2) as pool:  # Pillow decodes without the GIL
            for i in range(0, len(files), BATCH):
                yield np.stack(list(pool.map(lambda p: clf.views(p, p.name, tta), files[i : i + BATCH])))

    return batches(), y, classes


def scores(truth: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """n, accuracy, balanced accuracy (mean recall over classes present), per-class recall and precision,
    and the confusion matrix (rows: truth, columns: prediction, both in `classes` order)."""
    k = len(classes)
    matrix = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k)
    support, predicted, hits = matrix.sum(1), matrix.sum(0), np.diag(matrix)
    recall = [float(hits[i] / support[i]) if support[i] else None for i in range(k)]
    per_class = [{"class": c, "support": int(support[i]), "recall": recall[i],
                  "precision": float(hits[i] / predicted[i]) if predicted[i] else None}
                 for i, c in enumerate(classes)]
    present = [r for r in recall if r is not None]
    n = int(matrix.sum())
    if n == 0:
        raise TransferLabError("The dataset split has no images to evaluate.")
    return {"n": n, "accuracy": float(hits.sum() / n), "balanced_accuracy": float(np.mean(present)),
            "classes": list(classes), "per_class": per_class, "confusion": matrix.tolist()}


def default_split(model: str, dataset: str) -> str:
    """`all` for a set stored without train/test folders that the model was not trained on (an evaluation-only
    set such as the real-photos dev set), else `test`: never score a model on its own training images."""
    meta = read_meta(dataset)
    if not meta or list(meta.get("splits") or []) != ["all"]:
        return "test"
    stage = predict.model_record(predict.resolve_model(model)).get("stage", {})
    trained_on = {stage.get("dataset"), stage.get("name")}
    try:
        trained_on |= {datasets.load_view(str(stage.get("dataset")))["source"]}
    except TransferLabError:
        pass
    return "test" if dataset in trained_on else "all"


def evaluate(
    model: str,
    dataset: str,
    mapping: dict[str, str] | None = None,
    split: str = "test",
    *,
    store: bool = True,
    tta: bool = False,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, Any]:
    """Score a stored model (`RUN_ID`, `default` or `latest`) on one split of an imported dataset; with
    `store`, keep it in the run's `evaluations/` (replacing an earlier one of the same dataset and split)."""
    if split not in SPLITS:
        raise TransferLabError(f"split must be one of {', '.join(SPLITS)}, not {split!r}.")
    clf = predict.load_classifier(model)
    resolved = resolve_mapping(datasets.dataset_classes(dataset), clf.labels, mapping)
    t0 = time.perf_counter()
    batches, y, classes = _images(clf, dataset, split, tta)
    preds = []
    for batch in batches:
        probs = clf.probabilities(batch.reshape(-1, *batch.shape[2:])).reshape(*batch.shape[:2], -1)
        preds.append(np.argmax(probs.mean(axis=1), axis=1))
        if progress:
            done = min(len(preds) * BATCH, len(y))
            progress(f"Evaluated {done} of {len(y)} images", done / len(y))
    pred = np.concatenate(preds) if preds else np.zeros(0, int)
    to_model = np.array([clf.labels.index(resolved[c]) for c in classes], int)
    result = {"run_id": clf.run_id, "dataset": dataset, "split": split, "mapping": resolved, "tta": tta,
              **scores(to_model[y], pred, clf.labels),
              "by_dataset_class": {c: {m: int(np.sum((y == i) & (pred == j))) for j, m in enumerate(clf.labels)}
                                   for i, c in enumerate(classes)},
              "arch": clf.arch, "input_size": clf.input_size, "seconds": round(time.perf_counter() - t0, 2),
              "evaluated_at": now_iso()}
    if store:
        result["path"] = str(runs.save_evaluation(clf.run_id, result))
    return result


def own_test_score(run: dict[str, Any]) -> dict[str, Any]:
    """The run's own Test-split score from its metrics, in the same shape as an evaluation's headline."""
    m = run.get("metrics") or {}
    recall = {r["class"]: r.get("recall") for r in m.get("per_class") or []}
    present = [r for r in recall.values() if r is not None]
    return {"n": m.get("n_test"), "accuracy": m.get("test_accuracy"),
            "balanced_accuracy": float(np.mean(present)) if present else None, "recall": recall}


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The confusion matrix as rows for a table: truth class, one column per predicted class, recall, precision."""
    return [{"truth": c, **dict(zip(result["classes"], result["confusion"][i], strict=True)),
             "recall": result["per_class"][i]["recall"], "precision": result["per_class"][i]["precision"]}
            for i, c in enumerate(result["classes"])]


def cli(model: str, dataset: str, maps: Sequence[str], split: str | None, as_json: bool, tta: bool = False) -> int:
    """`python -m core evaluate`: evaluate, store, and print the table (or the stored JSON)."""
    result = evaluate(model, dataset, parse_mapping(maps), split or default_split(model, dataset), tta=tta)
    if as_json:
        print_json(result)
        return 0
    mapped = ", ".join(f"{k}->{v}" for k, v in result["mapping"].items() if k != v) or "by name"
    print(f"{result['run_id']} on {dataset} ({result['split']}, {result['n']} images, mapping {mapped}"
          f"{', test-time views averaged' if tta else ''}): "
          f"accuracy {result['accuracy']:.4f}, balanced accuracy {result['balanced_accuracy']:.4f}")
    table(table_rows(result), ["truth", *result["classes"], "recall", "precision"])
    print(f"Rows: true class (dataset classes mapped), columns: the model's answer. Stored in {result['path']}.")
    return 0
