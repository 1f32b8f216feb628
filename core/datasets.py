"""Datasets, the public face: import, names and views, splits as arrays or files, and training batches.

The work is done in one module per concept; this one joins them for the rest of core and the pages:
`data_import` (untrusted zip / folder / URL / IDX input), `data_store` (the stored folder and its dataset.json),
`data_sources` (imported folders, IDX files, Keras built-ins), `data_views` (names and derived views),
`data_splits` (train / val / test), `data_cache` (decoded images), `data_pipeline` (tf.data and PyDataset
batches), `data_export` (a compact JPEG copy). Importing it imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import data_cache
from core.config import TransferLabError, data_root
from core.data_cache import NoCacheWarning, clear_cache, decode_one, stored_array
from core.data_pipeline import AUGMENTATIONS, make_batches, make_tf_dataset
from core.data_splits import (
    EVAL_SPLITS,
    SPLIT_MODES,
    check_options,
    describe_plan,
    plan,
    plan_for,
    split_rows,
)
from core.data_store import LOCAL, SPLITS, TEST, TRAIN, ImportReport
from core.data_views import (
    base_source,
    delete_view,
    list_datasets,
    load_view,
    normalise_view,
    resolve,
    save_view,
    view_labels,
)

__all__ = [
    "DECODE_COUNT",  # noqa: F822 - served by __getattr__ below, so it stays live
    "ImportReport", "import_dataset", "list_datasets", "dataset_classes", "describe", "sample_images",
    "load_split_arrays", "split_files", "make_batches", "make_tf_dataset", "save_view", "preview_view", "load_view",
    "delete_view", "clear_cache", "SPLITS", "EVAL_SPLITS", "SPLIT_MODES", "AUGMENTATIONS", "NoCacheWarning",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name == "DECODE_COUNT":  # a live counter, read where the cache keeps it
        return data_cache.DECODE_COUNT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def import_dataset(
    source: str | Path,
    name: str | None = None,
    progress: Callable[[str, float], None] | None = None,
    exclude: Sequence[str] = (),
    replace: bool = True,
) -> ImportReport:
    """Import a zip / folder / URL of a zip / IDX files (see `core.data_import`) and drop stale caches.

    Class folders named in `exclude`, and folders holding a label table (`labels.csv`), are left out; with
    `replace` False an existing dataset of the same name is refused."""
    from core import data_import  # the download and zip machinery only when importing

    report = data_import.import_dataset(source, name, progress, exclude, replace)
    clear_cache(report.name, disk=True)
    return report


def dataset_classes(name: str, **view: Any) -> list[str]:
    """Class names in label order (sorted), without decoding anything."""
    check_options(view)
    src, spec = resolve(name)
    return list(src.classes) if spec is None else view_labels(spec, src)[0]


def describe(name: str, **view: Any) -> dict[str, Any]:
    """{"name", "classes", "counts": {"train": {cls: n}, "val": {...}, "test": {...}}} from file lists only."""
    return describe_plan(name, plan_for(name, view))


def preview_view(spec: dict[str, Any], **split_args: Any) -> dict[str, Any]:
    """Counts a view would give, without saving it: describe()'s dict plus `sources` (new class -> sources)."""
    spec = normalise_view(spec)
    src = base_source(spec["source"], f"view {spec['name']!r}")
    check_options(split_args)
    chosen = plan(src, spec, **split_args)
    return {**describe_plan(spec["name"], chosen), "sources": view_labels(spec, src)[2]}


def sample_images(
    name: str, per_class: int = 3, size: int | None = None, **view: Any
) -> dict[str, list[np.ndarray]]:
    """A few train images per class (seeded), decoded directly: for previews, not through the cache."""
    chosen = plan_for(name, view)
    rng = np.random.default_rng(view.get("seed", 0))
    rows = chosen.rows[TRAIN] if len(chosen.rows[TRAIN]) else chosen.rows[TEST]
    out: dict[str, list[np.ndarray]] = {}
    for c, cls in enumerate(chosen.classes):
        members = rows[chosen.y[rows] == c]
        picks = np.sort(rng.permutation(members)[:per_class])
        out[cls] = [decode_one(chosen.src, chosen.stored_names[chosen.stored[r]], int(chosen.idx[r]), size)
                    for r in picks]
    return out


def load_split_arrays(
    name: str,
    split: str,
    size: int,
    *,
    val_fraction: float = 0.1,
    split_mode: str = "auto",
    limit_per_class: int | None = None,
    seed: int = 0,
    per_class: int | None = None,
    balance: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """x uint8 (N, size, size, 3), y int32 (N,), class names, for one of train / val / test, or `all` of them.

    `balance=None` means the view's own setting (views balance by default; plain datasets do not).
    """
    if not isinstance(size, int) or size < 8:
        raise TransferLabError(f"size must be an integer of at least 8, not {size!r}.")
    chosen, rows = split_rows(name, split, dict(val_fraction=val_fraction, split_mode=split_mode,
                                                limit_per_class=limit_per_class, seed=seed, per_class=per_class,
                                                balance=balance))  # fmt: skip
    x = np.empty((len(rows), size, size, 3), np.uint8)
    for k, stored in enumerate(chosen.stored_names):
        sel = chosen.stored[rows] == k
        if sel.any():
            x[sel] = stored_array(chosen.src, stored, size)[chosen.idx[rows[sel]]]
    return x, chosen.y[rows].astype(np.int32), list(chosen.classes)


def split_files(name: str, split: str, **view: Any) -> tuple[list[Path], np.ndarray, list[str]] | None:
    """The image files of one split (or `all`), their labels and the class names; None for datasets stored as
    arrays (IDX, Keras built-ins), which have no files to decode."""
    chosen, rows = split_rows(name, split, view)
    if chosen.src.kind != LOCAL:
        return None
    root = data_root() / chosen.src.name
    files = [root / chosen.src.files[chosen.stored_names[chosen.stored[r]]][int(chosen.idx[r])] for r in rows]
    return files, chosen.y[rows].astype(np.int32), list(chosen.classes)
