"""Train / val / test splits of a dataset or view: which stored images go where, as row indices (nothing decoded).

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.config import TransferLabError
from core.data_sources import Source
from core.data_store import ALL, FRAME_NAME_RE, SPLITS, TEST, TRAIN, VAL
from core.data_views import resolve, view_labels

EVAL_SPLITS = (*SPLITS, ALL)  # `all`: train + val + test, every image (an evaluation-only set)
SPLIT_MODES = ("auto", "stratified", "grouped")
VIEW_OPTIONS = ("val_fraction", "split_mode", "limit_per_class", "seed", "per_class", "balance")
TEST_FRACTION = 0.2  # carved test split for datasets that have none
FRAME_BLOCK = 20  # Fruits-360 frames per group in the grouped split


@dataclass
class Plan:
    """Which stored images form each split: rows into the pool arrays."""

    src: Source
    classes: list[str]
    stored: np.ndarray  # index into stored_names
    stored_names: list[str]
    idx: np.ndarray  # index within the stored split
    y: np.ndarray  # new label
    source_class: np.ndarray
    rows: dict[str, np.ndarray]  # split -> rows (sorted)


def plan_for(name: str, view: dict[str, Any]) -> Plan:
    """The plan of a dataset or view name with the split options in `view`."""
    check_options(view)
    src, spec = resolve(name)
    return plan(src, spec, **view)


def check_options(view: dict[str, Any]) -> None:
    unknown = sorted(set(view) - set(VIEW_OPTIONS))
    if unknown:
        raise TransferLabError(
            f"Unknown dataset option(s) {', '.join(unknown)}; known: {', '.join(VIEW_OPTIONS)}."
        )


def split_rows(name: str, split: str, view: dict[str, Any]) -> tuple[Plan, np.ndarray]:
    """The plan and the rows of one split, or of `all` of them."""
    if split not in EVAL_SPLITS:
        raise TransferLabError(f"split must be one of {', '.join(EVAL_SPLITS)}, not {split!r}.")
    chosen = plan_for(name, view)
    rows = np.sort(np.concatenate([chosen.rows[s] for s in SPLITS])) if split == ALL else chosen.rows[split]
    return chosen, rows


def describe_plan(name: str, chosen: Plan) -> dict[str, Any]:
    """{"name", "classes", "counts": {split: {class: n}}}."""
    counts = {}
    for split in SPLITS:
        n = np.bincount(chosen.y[chosen.rows[split]], minlength=len(chosen.classes))
        counts[split] = {c: int(k) for c, k in zip(chosen.classes, n, strict=True)}
    return {"name": name, "classes": list(chosen.classes), "counts": counts}


def plan(
    src: Source,
    spec: dict[str, Any] | None,
    *,
    val_fraction: float = 0.1,
    split_mode: str = "auto",
    limit_per_class: int | None = None,
    seed: int = 0,
    per_class: int | None = None,
    balance: bool | None = None,
) -> Plan:
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
        view_labels(spec, src)[:2] if spec else (list(src.classes), np.arange(len(src.classes)))
    )
    stored_names, stored, idx, source_class = _pool_arrays(src)
    y = new_label[source_class].astype(np.int32)
    groups = _group_keys(src, stored_names, stored, idx, source_class, grouped)
    keep = y >= 0
    role = np.array(stored_names)[stored]  # train | val | test | all
    test = keep & (role == TEST)
    if TEST not in stored_names:
        # carve per source class with the view seed, so the test set never moves with the run seed
        test = keep & _carve(np.flatnonzero(keep), source_class, groups, TEST_FRACTION, view_seed, len(y))
    pool = keep & ~test
    if balance or per_class:
        rng = np.random.default_rng(view_seed)
        test = _balanced(test, y, source_class, per_class, bool(balance), rng)
        pool = _balanced(pool, y, source_class, per_class, bool(balance), rng)
    if VAL in stored_names:
        val = pool & (role == VAL)
    else:
        val = _carve(np.flatnonzero(pool), y, groups, val_fraction, seed, len(y))
    rows = {TRAIN: pool & ~val, VAL: val, TEST: test}
    if limit_per_class:
        rng = np.random.default_rng(seed + 1)
        rows = {s: _balanced(m, y, source_class, limit_per_class, False, rng) for s, m in rows.items()}
    rows = {s: np.flatnonzero(m) for s, m in rows.items()}
    return Plan(src, classes, stored, stored_names, idx, y, source_class, rows)


def _pool_arrays(src: Source) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Every stored image as one row: (stored split names, stored split index, index within it, source class)."""
    stored_names = sorted(src.labels)
    sizes = [len(src.labels[s]) for s in stored_names]
    stored = np.repeat(np.arange(len(stored_names), dtype=np.int32), sizes)
    idx = np.concatenate([np.arange(n) for n in sizes])
    source_class = np.concatenate([src.labels[s] for s in stored_names]).astype(np.int32)
    return stored_names, stored, idx, source_class


def _group_keys(
    src: Source,
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
        match = FRAME_NAME_RE.match(src.files[stored_names[k]][i].rsplit("/", 1)[-1])
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
