"""Datasets: named sources, derived views, train/val/test splits, a decoded-image cache and training batches.

Names resolve local-first: an imported folder `data_root()/<name>` wins, then a user view
(`data_root()/views/<name>.json`), then a built-in view (`fruits360-3`), then the Keras built-ins
(`cifar10`, `cifar100`, `mnist`, `fashion_mnist`). Importing lives in `core.datasets_io`.

How a split is made (all seeded, so the same arguments always give the same images):
1. Pools. The dataset's own test split is the test pool; train (and an own val split) form the train pool.
   A dataset without a test split (`all/` layout, MNIST t10k only) gets a test split carved from its
   pool: 20% per source class, with the view seed, so the test set does not move with the run seed.
2. View. A view maps source classes to new classes (names or fnmatch patterns), `rest` collects the others.
3. Balance. With `balance` every class of a pool is cut to its smallest class (or `per_class`), taking
   the same number from each source class where possible (water-filling), the train pool and the test
   pool each on their own.
4. val is carved from the train pool per class: `grouped` keeps whole groups of near-duplicate frames
   (Fruits-360: source class + frame number // 20) together; `stratified` samples images.
5. `limit_per_class` caps every class of every split (quick runs).
Decoding happens once per (dataset, stored split, size): the whole stored split is decoded into one uint8
array, kept in memory and in `data_root()/.cache/<name>/...npy`; splits and views only index into it.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import datasets_io as dio
from core.config import (
    TransferLabError,
    atomic_write_json,
    data_root,
    describe_os_error,
    read_json,
    validate_name,
)
from core.datasets_io import KERAS_DATASETS, ImportReport, read_meta
from core.images import ImageError, load_rgb

__all__ = [
    "DECODE_COUNT", "ImportReport", "import_dataset", "list_datasets", "dataset_classes", "describe",
    "sample_images", "load_split_arrays", "split_files", "make_batches", "make_tf_dataset", "save_view", "preview_view", "load_view",
    "delete_view", "clear_cache",
]  # fmt: skip

DECODE_COUNT = 0  # images decoded (or resized from raw arrays) into the cache; the cache tests read it
SPLITS = ("train", "val", "test")
EVAL_SPLITS = (*SPLITS, "all")  # `all`: train + val + test, every image (an evaluation-only set)
SPLIT_MODES = ("auto", "stratified", "grouped")
AUGMENTATIONS = ("flip", "rotation", "zoom", "contrast")
TEST_FRACTION = 0.2  # carved test split for datasets that have none
FRAME_BLOCK = 20  # Fruits-360 frames per group in the grouped split

FRUITS_HINT = (
    "import the Fruits-360 zip: python -m core datasets import ../shared/data/fruits-360-v2019.05.06.1-subset.zip "
    "(or the full release from https://github.com/fruits-360)"
)
BUILTIN_VIEWS: dict[str, dict[str, Any]] = {
    "fruits360-3": {
        "name": "fruits360-3",
        "source": "fruits360",
        "mapping": {"apple": ["Apple*"], "pear": ["Pear*"]},
        "rest": "noise",
        "balance": True,
        "per_class": None,
        "seed": 0,
        "description": "Fruits-360 as apple / noise / pear: every Apple* and Pear* class, noise sampled from the rest",
    }
}

_ARRAYS: dict[tuple[str, str, str, int], np.ndarray] = {}  # (name, import id, stored split, size) -> images
_LOCK = threading.Lock()


# ---- import ------------------------------------------------------------------------------------------------


def import_dataset(
    source: str | Path,
    name: str | None = None,
    progress: Callable[[str, float], None] | None = None,
    exclude: Sequence[str] = (),
    replace: bool = True,
) -> ImportReport:
    """Import a zip / folder / URL of a zip / IDX files (see `core.datasets_io`) and drop stale caches.

    Class folders named in `exclude`, and folders holding a label table (`labels.csv`), are left out; with
    `replace` False an existing dataset of the same name is refused."""
    report = dio.import_dataset(source, name, progress, exclude, replace)
    clear_cache(report.name, disk=True)
    return report


def clear_cache(name: str | None = None, *, disk: bool = False) -> None:
    """Forget decoded arrays and file lists in this process (and the .npy files too with `disk=True`)."""
    with _LOCK:
        for key in [k for k in _ARRAYS if name is None or k[0] == name]:
            del _ARRAYS[key]
        dio.forget(name)
    if disk:
        folder = _cache_root() if name is None else _cache_root() / name
        _rmtree(folder)


# ---- name resolution and views -------------------------------------------------------------------------------


def _resolve(name: str) -> tuple[dio.Source, dict[str, Any] | None]:
    """(base source, view spec or None), local folder first."""
    validate_name(name, "dataset name")
    meta = read_meta(name)
    if meta is not None:
        return dio.local_source(name, meta), None
    if problem := dio.meta_problem(name):
        raise TransferLabError(f"Dataset {name!r} is unreadable ({problem}): import it again.")
    if (data_root() / name).is_dir() and name not in dio.RESERVED_NAMES:
        raise TransferLabError(
            f"{data_root() / name} was not imported (no dataset.json): python -m core datasets import <folder>."
        )
    spec = _find_view(name)
    if spec is not None:
        return _base_source(spec["source"], f"view {name!r}"), spec
    return _base_source(name, None), None


def _base_source(name: str, what: str | None) -> dio.Source:
    meta = read_meta(name)
    if meta is not None:
        return dio.local_source(name, meta)
    if name in KERAS_DATASETS:
        return dio.keras_source(name)
    prefix = f"{what}: source " if what else ""
    if name == "fruits360":
        raise TransferLabError(f"{prefix}Dataset 'fruits360' is not imported: {FRUITS_HINT}.")
    known = ", ".join(d["name"] for d in list_datasets())
    raise TransferLabError(f"{prefix}Unknown dataset {name!r}; known: {known}.")


def _views_dir() -> Path:
    return data_root() / "views"


def _find_view(name: str) -> dict[str, Any] | None:
    path = _views_dir() / f"{name}.json"
    if path.is_file():
        spec = read_json(path)
        if not isinstance(spec, dict):
            raise TransferLabError(f"{path} is not a readable view (JSON object expected).")
        return _normalise_view({**spec, "name": name})
    return dict(BUILTIN_VIEWS[name]) if name in BUILTIN_VIEWS else None


def _normalise_view(spec: dict[str, Any]) -> dict[str, Any]:
    """Check a view spec's shape (not its classes) and fill defaults."""
    if not isinstance(spec, dict):
        raise TransferLabError("A view must be an object with name, source and mapping.")
    unknown = set(spec) - {"name", "source", "mapping", "rest", "balance", "per_class", "seed", "description"}
    if unknown:
        raise TransferLabError(f"View: unknown field(s) {', '.join(sorted(unknown))}.")
    name = validate_name(str(spec.get("name", "")), "view name")
    mapping = spec.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise TransferLabError(
            f"View {name!r}: mapping must be an object {{new class: [source classes or patterns]}}."
        )
    clean = {}
    for cls, patterns in mapping.items():
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if (
            not str(cls).strip()
            or not isinstance(patterns, list)
            or not all(isinstance(p, str) for p in patterns)
        ):
            raise TransferLabError(
                f"View {name!r}: class {cls!r} needs a list of source class names or patterns."
            )
        clean[str(cls)] = patterns
    rest = spec.get("rest")
    if rest is not None and (not isinstance(rest, str) or not rest.strip() or rest in clean):
        raise TransferLabError(
            f"View {name!r}: rest must be null or a new class name not already in the mapping."
        )
    per_class = spec.get("per_class")
    if per_class is not None and (not isinstance(per_class, int) or per_class < 1):
        raise TransferLabError(f"View {name!r}: per_class must be null or a positive integer.")
    return {
        "name": name,
        "source": validate_name(str(spec.get("source", "")), "view source"),
        "mapping": clean,
        "rest": rest,
        "balance": bool(spec.get("balance", True)),
        "per_class": per_class,
        "seed": int(spec.get("seed", 0)),
        "description": str(spec.get("description", "")),
    }


def _view_labels(spec: dict[str, Any], src: dio.Source) -> tuple[list[str], np.ndarray, dict[str, list[str]]]:
    """(new classes sorted, new label per source class or -1, new class -> its source classes)."""
    owner: dict[str, str] = {}
    for new, patterns in spec["mapping"].items():
        for pattern in patterns:
            hits = [c for c in src.classes if fnmatch.fnmatchcase(c, pattern)]
            if not hits:
                raise TransferLabError(f"View {spec['name']!r}: {pattern!r} matches no class of {src.name}.")
            for c in hits:
                if owner.get(c, new) != new:
                    raise TransferLabError(
                        f"View {spec['name']!r}: source class {c!r} is matched by both {owner[c]!r} and {new!r}."
                    )
                owner[c] = new
    if spec["rest"]:
        owner.update({c: spec["rest"] for c in src.classes if c not in owner})
    classes = sorted(set(owner.values()))
    if len(classes) < 2:
        raise TransferLabError(
            f"View {spec['name']!r} has {len(classes)} class; a classifier needs at least two."
        )
    index = {c: i for i, c in enumerate(classes)}
    new_label = np.array([index.get(owner.get(c, ""), -1) for c in src.classes], np.int32)
    sources = {c: [s for s in src.classes if owner.get(s) == c] for c in classes}
    return classes, new_label, sources


def save_view(spec: dict[str, Any]) -> dict[str, Any]:
    """Check a view against its source and store it as `data_root()/views/<name>.json`; returns the stored spec."""
    spec = _normalise_view(spec)
    name = spec["name"]
    if name in BUILTIN_VIEWS or name in KERAS_DATASETS or name == "fruits360" or read_meta(name) is not None:
        raise TransferLabError(f"View name {name!r} is taken by a dataset; choose another name.")
    src = _base_source(spec["source"], f"view {name!r}")
    _view_labels(spec, src)
    atomic_write_json(_views_dir() / f"{name}.json", spec)
    return spec


def preview_view(spec: dict[str, Any], **split_args: Any) -> dict[str, Any]:
    """Counts a view would give, without saving it: describe()'s dict plus `sources` (new class -> sources)."""
    spec = _normalise_view(spec)
    src = _base_source(spec["source"], f"view {spec['name']!r}")
    _check_options(split_args)
    plan = _plan(src, spec, **split_args)
    return {**_describe_plan(spec["name"], plan), "sources": _view_labels(spec, src)[2]}


def load_view(name: str) -> dict[str, Any]:
    """A view's spec (user file or built-in)."""
    spec = _find_view(validate_name(name, "view name"))
    if spec is None:
        raise TransferLabError(f"No view {name!r}; views: {', '.join(_view_names()) or 'none'}.")
    return spec


def delete_view(name: str) -> None:
    path = _views_dir() / f"{validate_name(name, 'view name')}.json"
    if not path.is_file():
        raise TransferLabError(f"No saved view {name!r} (built-in views cannot be deleted).")
    path.unlink()


def _view_names() -> list[str]:
    saved = [p.stem for p in _views_dir().glob("*.json")] if _views_dir().is_dir() else []
    return sorted(set(saved) | set(BUILTIN_VIEWS))


# ---- splits ----------------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Which stored images form each split: rows into the pool arrays."""

    src: dio.Source
    classes: list[str]
    stored: np.ndarray  # index into stored_names
    stored_names: list[str]
    idx: np.ndarray  # index within the stored split
    y: np.ndarray  # new label
    source_class: np.ndarray
    rows: dict[str, np.ndarray]  # split -> rows (sorted)


def _plan(
    src: dio.Source,
    spec: dict[str, Any] | None,
    *,
    val_fraction: float = 0.1,
    split_mode: str = "auto",
    limit_per_class: int | None = None,
    seed: int = 0,
    per_class: int | None = None,
    balance: bool | None = None,
) -> _Plan:
    if split_mode not in SPLIT_MODES:
        raise TransferLabError(f"split_mode must be one of {', '.join(SPLIT_MODES)}, not {split_mode!r}.")
    if not 0 <= val_fraction < 1:
        raise TransferLabError(f"val_fraction must be at least 0 and below 1, not {val_fraction}.")
    if limit_per_class is not None and limit_per_class < 1:
        raise TransferLabError(f"limit_per_class must be at least 1, not {limit_per_class}.")
    grouped = split_mode == "grouped" or (split_mode == "auto" and src.frames)
    view_seed = spec["seed"] if spec else 0
    if spec is not None:
        balance = spec["balance"] if balance is None else balance
        per_class = spec["per_class"] if per_class is None else per_class
    classes, new_label = (
        _view_labels(spec, src)[:2] if spec else (list(src.classes), np.arange(len(src.classes)))
    )
    stored_names, stored, idx, source_class = _pool_arrays(src)
    y = new_label[source_class].astype(np.int32)
    groups = _group_keys(src, stored_names, stored, idx, source_class, grouped)
    keep = y >= 0
    role = np.array(stored_names)[stored]  # train | val | test | all
    test = keep & (role == "test")
    if "test" not in stored_names:
        # carve per source class with the view seed, so the test set never moves with the run seed
        test = keep & _carve(np.flatnonzero(keep), source_class, groups, TEST_FRACTION, view_seed, len(y))
    pool = keep & ~test
    if balance or per_class:
        rng = np.random.default_rng(view_seed)
        test = _balanced(test, y, source_class, per_class, bool(balance), rng)
        pool = _balanced(pool, y, source_class, per_class, bool(balance), rng)
    if "val" in stored_names:
        val = pool & (role == "val")
    else:
        val = _carve(np.flatnonzero(pool), y, groups, val_fraction, seed, len(y))
    rows = {"train": pool & ~val, "val": val, "test": test}
    if limit_per_class:
        rng = np.random.default_rng(seed + 1)
        rows = {s: _balanced(m, y, source_class, limit_per_class, False, rng) for s, m in rows.items()}
    rows = {s: np.flatnonzero(m) for s, m in rows.items()}
    return _Plan(src, classes, stored, stored_names, idx, y, source_class, rows)


def _pool_arrays(src: dio.Source) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Every stored image as one row: (stored split names, stored split index, index within it, source class)."""
    stored_names = sorted(src.labels)
    sizes = [len(src.labels[s]) for s in stored_names]
    stored = np.repeat(np.arange(len(stored_names), dtype=np.int32), sizes)
    idx = np.concatenate([np.arange(n) for n in sizes])
    source_class = np.concatenate([src.labels[s] for s in stored_names]).astype(np.int32)
    return stored_names, stored, idx, source_class


def _group_keys(
    src: dio.Source,
    stored_names: list[str],
    stored: np.ndarray,
    idx: np.ndarray,
    source_class: np.ndarray,
    grouped: bool,
) -> np.ndarray:
    """Group id per image: (source class, frame number // FRAME_BLOCK) for frames, else one group per image."""
    keys = np.arange(len(idx), dtype=np.int64)
    if not grouped or not any(src.files.values()):
        return keys
    ids: dict[tuple[int, int], int] = {}
    for row, (k, i) in enumerate(zip(stored, idx, strict=True)):
        match = dio.FRAME_NAME_RE.match(src.files[stored_names[k]][i].rsplit("/", 1)[-1])
        if match:
            key = (int(source_class[row]), int(match[1]) // FRAME_BLOCK)
            keys[row] = len(idx) + ids.setdefault(key, len(ids))
    return keys


def _carve(
    rows: np.ndarray, strata: np.ndarray, groups: np.ndarray, fraction: float, seed: int, n: int
) -> np.ndarray:
    """Mask of about `fraction` of each stratum, whole groups at a time, seeded; each stratum keeps a group."""
    out = np.zeros(n, bool)
    rng = np.random.default_rng(seed)
    for s in np.unique(strata[rows]):
        members = rows[strata[rows] == s]
        uniq, sizes = np.unique(groups[members], return_counts=True)
        target = round(fraction * len(members))
        if target == 0 or len(uniq) < 2:
            continue
        order = rng.permutation(len(uniq))
        ends = np.cumsum(sizes[order])
        take = ends - sizes[order] / 2 <= target  # a group straddling the target goes in if mostly below it
        take[0] = True  # at least one group
        take[-1] = False  # never all
        out[members[np.isin(groups[members], uniq[order[take]])]] = True
    return out


def _balanced(
    mask: np.ndarray,
    y: np.ndarray,
    source_class: np.ndarray,
    per_class: int | None,
    balance: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """Cut each class to min(per_class, smallest class if balance), evenly across its source classes."""
    rows = np.flatnonzero(mask)
    counts = {c: int(np.sum(y[rows] == c)) for c in np.unique(y[rows])}
    if not counts:
        return mask
    target = min(counts.values()) if balance else max(counts.values())
    target = min(target, per_class) if per_class else target
    out = np.zeros_like(mask)
    for c in counts:
        members = rows[y[rows] == c]
        sources, sizes = np.unique(source_class[members], return_counts=True)
        for s, quota in zip(sources, _water_fill(sizes, target, rng), strict=True):
            pick = members[source_class[members] == s]
            out[rng.permutation(pick)[:quota]] = True
    return out


def _water_fill(sizes: np.ndarray, total: int, rng: np.random.Generator) -> list[int]:
    """Quotas <= sizes summing to min(total, sum(sizes)), as equal as possible; leftovers go to random groups."""
    quotas = np.zeros(len(sizes), int)
    remaining = min(total, int(sizes.sum()))
    while remaining > 0:
        open_ = np.flatnonzero(quotas < sizes)
        share = remaining // len(open_)
        if share == 0:
            quotas[rng.choice(open_, remaining, replace=False)] += 1
            break
        add = np.minimum(share, sizes[open_] - quotas[open_])
        quotas[open_] += add
        remaining -= int(add.sum())
    return quotas.tolist()


VIEW_OPTIONS = ("val_fraction", "split_mode", "limit_per_class", "seed", "per_class", "balance")


def _plan_for(name: str, view: dict[str, Any]) -> tuple[str, _Plan]:
    _check_options(view)
    src, spec = _resolve(name)
    return name, _plan(src, spec, **view)


def _check_options(view: dict[str, Any]) -> None:
    unknown = sorted(set(view) - set(VIEW_OPTIONS))
    if unknown:
        raise TransferLabError(
            f"Unknown dataset option(s) {', '.join(unknown)}; known: {', '.join(VIEW_OPTIONS)}."
        )


# ---- decoded cache -------------------------------------------------------------------------------------------


def _cache_root() -> Path:
    return data_root() / ".cache"


def _stored_array(src: dio.Source, split: str, size: int) -> np.ndarray:
    """Every image of one stored split at `size`, decoded at most once per import (memory, then disk)."""
    key = (src.name, src.token, split, size)
    with _LOCK:
        if key in _ARRAYS:
            return _ARRAYS[key]
    path = _cache_root() / src.name / f"{src.token}-{split}-{size}.npy"
    n = len(src.labels[split])
    arr = _load_npy(path, (n, size, size, 3))
    if arr is None:
        arr = _decode_split(src, split, size)
        try:
            _save_npy(path, arr)
        except OSError as exc:  # the cache is optional: a read-only or full data root trains without it
            _say_no_cache(exc)
    with _LOCK:
        _ARRAYS[key] = arr
    return arr


class NoCacheWarning(UserWarning):
    """The decoded cache cannot be written: images are decoded again by every process."""


_NO_CACHE_SAID: set[str] = set()


def _say_no_cache(exc: OSError) -> None:
    root = str(_cache_root())
    if root not in _NO_CACHE_SAID:
        _NO_CACHE_SAID.add(root)
        warnings.warn(f"the decoded-image cache cannot be written in {root} ({describe_os_error(exc)}): training "
                      "goes on without it, decoding the images in every run", NoCacheWarning, stacklevel=2)


def _load_npy(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    return arr if arr.shape == shape and arr.dtype == np.uint8 else None


def _save_npy(path: Path, arr: np.ndarray) -> None:
    """Stream to a temp file beside the target and rename: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr)
        os.chmod(tmp, 0o644)  # mkstemp files are private; the cache is ordinary data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _count_decodes(n: int) -> None:
    global DECODE_COUNT
    with _LOCK:
        DECODE_COUNT += n


def _decode_split(src: dio.Source, split: str, size: int) -> np.ndarray:
    if src.kind == "local":
        return _decode_files(data_root() / src.name, src.files[split], size)
    raw = dio.raw_images(src, split)
    out = np.empty((len(raw), size, size, 3), np.uint8)
    for i in range(0, len(raw), 1024):
        out[i : i + 1024] = [dio.resize_array(img, size) for img in raw[i : i + 1024]]
        _count_decodes(len(raw[i : i + 1024]))
    return out


def _decode_files(root: Path, files: list[str], size: int) -> np.ndarray:
    """load_rgb in a thread pool (Pillow decodes without the GIL), in chunks to keep hand-overs rare."""
    out = np.empty((len(files), size, size, 3), np.uint8)

    def work(start: int) -> None:
        chunk = files[start : start + 64]
        for j, rel in enumerate(chunk):
            try:
                out[start + j] = load_rgb(root / rel, size)
            except ImageError as exc:
                raise TransferLabError(f"{exc} Re-import the dataset.") from None
        _count_decodes(len(chunk))

    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        list(pool.map(work, range(0, len(files), 64)))
    return out


# ---- public API -------------------------------------------------------------------------------------------------


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
    plan, rows = _split_rows(name, split, dict(val_fraction=val_fraction, split_mode=split_mode,
                                               limit_per_class=limit_per_class, seed=seed, per_class=per_class,
                                               balance=balance))  # fmt: skip
    x = np.empty((len(rows), size, size, 3), np.uint8)
    for k, stored in enumerate(plan.stored_names):
        sel = plan.stored[rows] == k
        if sel.any():
            x[sel] = _stored_array(plan.src, stored, size)[plan.idx[rows[sel]]]
    return x, plan.y[rows].astype(np.int32), list(plan.classes)


def _split_rows(name: str, split: str, view: dict[str, Any]) -> tuple[_Plan, np.ndarray]:
    if split not in EVAL_SPLITS:
        raise TransferLabError(f"split must be one of {', '.join(EVAL_SPLITS)}, not {split!r}.")
    _, plan = _plan_for(name, view)
    rows = np.sort(np.concatenate([plan.rows[s] for s in SPLITS])) if split == "all" else plan.rows[split]
    return plan, rows


def split_files(name: str, split: str, **view: Any) -> tuple[list[Path], np.ndarray, list[str]] | None:
    """The image files of one split (or `all`), their labels and the class names; None for datasets stored as
    arrays (IDX, Keras built-ins), which have no files to decode."""
    plan, rows = _split_rows(name, split, view)
    if plan.src.kind != "local":
        return None
    root = data_root() / plan.src.name
    files = [root / plan.src.files[plan.stored_names[plan.stored[r]]][int(plan.idx[r])] for r in rows]
    return files, plan.y[rows].astype(np.int32), list(plan.classes)


def make_batches(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    preprocess: Callable[[Any], Any] | None,
    augment: bool | Sequence[str] = False,
    shuffle: bool = False,
    seed: int = 0,
    composite: Callable[[Any, Any], Any] | None = None,
):
    """Batches for Keras `fit`: `make_tf_dataset` under TensorFlow, a `core.batches.ArrayBatches` on other backends."""
    import core

    if core.backend() == "tensorflow":
        return make_tf_dataset(x, y, batch_size=batch_size, preprocess=preprocess, augment=augment,
                               shuffle=shuffle, seed=seed, composite=composite)
    if composite is not None:
        raise TransferLabError("composite on the fly runs in tf.data: use KERAS_BACKEND=tensorflow, or cache "
                               "composite copies (composite_copies > 0 with a frozen backbone).")
    from core.batches import ArrayBatches

    if len(x) != len(y):
        raise TransferLabError(f"x has {len(x)} images but y has {len(y)} labels.")
    return ArrayBatches(x, y, batch_size=batch_size, preprocess=preprocess,
                        augment_layers=_augment_layers(augment, seed), shuffle=shuffle, seed=seed)


def make_tf_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    preprocess: Callable[[Any], Any] | None,
    augment: bool | Sequence[str] = False,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    composite: Callable[[Any, Any], Any] | None = None,
):
    """uint8 images (or float features) -> batches of (preprocess(augment(float32 0..255)), int32 labels), prefetched.

    Batches are gathered from the numpy arrays by index (no copy of x into the graph, so arrays over 2 GB
    work). `composite(float batch, row indices)` (`core.composite.compositor`) runs first. Augmentation runs
    sequentially because the Keras random layers are deterministic per seed only then.
    """
    import tensorflow as tf

    if len(x) != len(y):
        raise TransferLabError(f"x has {len(x)} images but y has {len(y)} labels.")
    x, y = np.ascontiguousarray(x), np.asarray(y, np.int32)
    shape = (None, *x.shape[1:])
    ds = tf.data.Dataset.range(len(x))
    if shuffle:
        ds = ds.shuffle(max(len(x), 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)

    def gather(i):
        xb, yb = tf.numpy_function(_take, [i], (tf.as_dtype(x.dtype), tf.int32), stateful=False)
        xb.set_shape(shape)
        yb.set_shape((None,))
        xb = tf.cast(xb, tf.float32)
        return (xb if composite is None else composite(xb, i)), yb

    def _take(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[i], y[i]

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    layers = _augment_layers(augment, seed)
    if layers:

        def augment_batch(xb, yb):
            for layer in layers:
                xb = layer(xb, training=True)
            return xb, yb

        ds = ds.map(augment_batch)  # sequential on purpose: see the docstring
    if preprocess is not None:
        user_fn = tf.autograph.experimental.do_not_convert(preprocess)

        def preprocess_batch(xb, yb):
            return user_fn(xb), yb

        ds = ds.map(preprocess_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _augment_layers(augment: bool | Sequence[str], seed: int) -> list:
    if isinstance(augment, str):
        augment = [augment]
    names = list(AUGMENTATIONS) if augment is True else list(augment or [])
    bad = [a for a in names if a not in AUGMENTATIONS]
    if bad:
        raise TransferLabError(f"Unknown augmentation {', '.join(bad)}; use {', '.join(AUGMENTATIONS)}.")
    if not names:
        return []
    import keras

    make = {
        "flip": lambda s: keras.layers.RandomFlip("horizontal", seed=s, dtype="float32"),
        "rotation": lambda s: keras.layers.RandomRotation(0.1, seed=s, dtype="float32"),
        "zoom": lambda s: keras.layers.RandomZoom(0.1, seed=s, dtype="float32"),
        "contrast": lambda s: keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=s, dtype="float32"),
    }
    return [make[n](seed + k) for k, n in enumerate(names)]


def dataset_classes(name: str, **view: Any) -> list[str]:
    """Class names in label order (sorted), without decoding anything."""
    _check_options(view)
    src, spec = _resolve(name)
    return list(src.classes) if spec is None else _view_labels(spec, src)[0]


def describe(name: str, **view: Any) -> dict[str, Any]:
    """{"name", "classes", "counts": {"train": {cls: n}, "val": {...}, "test": {...}}} from file lists only."""
    return _describe_plan(*_plan_for(name, view))


def _describe_plan(name: str, plan: _Plan) -> dict[str, Any]:
    counts = {}
    for split in SPLITS:
        n = np.bincount(plan.y[plan.rows[split]], minlength=len(plan.classes))
        counts[split] = {c: int(k) for c, k in zip(plan.classes, n, strict=True)}
    return {"name": name, "classes": list(plan.classes), "counts": counts}


def sample_images(
    name: str, per_class: int = 3, size: int | None = None, **view: Any
) -> dict[str, list[np.ndarray]]:
    """A few train images per class (seeded), decoded directly: for previews, not through the cache."""
    _, plan = _plan_for(name, view)
    rng = np.random.default_rng(view.get("seed", 0))
    rows = plan.rows["train"] if len(plan.rows["train"]) else plan.rows["test"]
    out: dict[str, list[np.ndarray]] = {}
    for c, cls in enumerate(plan.classes):
        members = rows[plan.y[rows] == c]
        picks = np.sort(rng.permutation(members)[:per_class])
        out[cls] = [_one_image(plan, r, size) for r in picks]
    return out


def _one_image(plan: _Plan, row: int, size: int | None) -> np.ndarray:
    src, stored, i = plan.src, plan.stored_names[plan.stored[row]], int(plan.idx[row])
    _count_decodes(1)
    if src.kind == "local":
        return load_rgb(data_root() / src.name / src.files[stored][i], size)
    img = dio.raw_images(src, stored)[i]
    return dio.resize_array(img, size or img.shape[0])


def list_datasets() -> list[dict[str, Any]]:
    """Every name a stage may use: {"name", "kind": local|keras|view|idx, "available", "description"}.

    "downloads" is true where Keras fetches the data on first use (so "not available" is not final).
    """
    out: dict[str, dict[str, Any]] = {}
    root = data_root()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        meta = read_meta(folder.name) if folder.is_dir() and not folder.name.startswith(".") else None
        if meta:
            out[folder.name] = {"name": folder.name, "kind": meta["kind"], "available": True,
                                "description": _meta_description(meta)}  # fmt: skip
        elif folder.is_dir() and (problem := dio.meta_problem(folder.name)):
            out[folder.name] = {"name": folder.name, "kind": "unreadable", "available": False,
                                "description": f"unreadable: {problem}; import it again"}
    if "fruits360" not in out:
        out["fruits360"] = {"name": "fruits360", "kind": "local", "available": False,
                            "description": f"Fruits-360 (103 classes, 100x100): {FRUITS_HINT}"}  # fmt: skip
    for view in _view_names():
        if view not in out:
            try:
                spec = _find_view(view)
            except TransferLabError:
                continue
            available = out.get(spec["source"], {}).get("available") or (
                spec["source"] in KERAS_DATASETS and dio.keras_cached(spec["source"])
            )
            desc = spec["description"] or f"view of {spec['source']}: {', '.join(sorted(spec['mapping']))}"
            out[view] = {"name": view, "kind": "view", "available": bool(available), "description": desc,
                         "downloads": spec["source"] in KERAS_DATASETS}
    for name, desc in KERAS_DATASETS.items():
        if name not in out:
            cached = dio.keras_cached(name)
            note = "cached by Keras" if cached else "downloads on first use; offline: import it"
            out[name] = {"name": name, "kind": "keras", "available": cached, "description": f"{desc}, {note}",
                         "downloads": True}
    return list(out.values())


def _meta_description(meta: dict[str, Any]) -> str:
    sizes = ", ".join(f"{sum(c.values())} {s}" for s, c in meta["counts"].items())
    return f"{len(meta['classes'])} classes, {sizes} images (imported from {Path(meta['source']).name})"


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
