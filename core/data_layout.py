"""Which members of an import source are the dataset: detect `[top/]<split>/<class>/file` or `[top/]<class>/file`,
leave out what is not a class, and refuse a layout that cannot train, before anything is read or written."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.config import TransferLabError
from core.data_members import Member
from core.data_store import ALL, TEST, TRAIN, VAL
from core.images import is_image_name

SPLIT_ALIASES = {
    "train": TRAIN, "training": TRAIN,
    "val": VAL, "valid": VAL, "validation": VAL,
    "test": TEST, "testing": TEST,
}  # fmt: skip
ARCHIVE_SUFFIXES = (".zip",)
LABEL_TABLE_SUFFIXES = (".csv", ".tsv")  # a class folder holding a label table is annotated images, not a class

Entry = tuple[str, str, Member]  # (split, class, member)


@dataclass
class Layout:
    top: str | None  # the single wrapping folder, if any
    entries: list[Entry]
    skipped: int
    excluded: dict[str, dict[str, Any]] = field(default_factory=dict)  # folder -> {"images", "reason"}


def plan_layout(
    members: list[Member], dirs: set[tuple[str, ...]], label: str, exclude: tuple[str, ...] = ()
) -> Layout:
    """Detect `[top/]<split>/<class>/file` or `[top/]<class>/file`; files outside it are skipped."""
    skipped, images = 0, []
    for m in members:
        if any(p.startswith(".") or p == "__MACOSX" for p in m.parts):
            skipped += 1
        elif m.parts[-1].lower().endswith(ARCHIVE_SUFFIXES):
            raise TransferLabError(f"{label} contains {'/'.join(m.parts)}: nested zip: unpack it first.")
        elif is_image_name(m.parts[-1]):
            images.append(m)
        else:
            skipped += 1
    if not images:
        raise TransferLabError(f"{label} holds no dataset: no image files (.jpg, .png, ...) found.")
    depth = max(len(m.parts) for m in images)
    if depth > 4 or depth < 2:
        example = "/".join(next(m.parts for m in images if len(m.parts) == depth))
        raise TransferLabError(
            f"{label}: unrecognised layout (e.g. {example!r}); expected <split>/<class>/<image> or "
            "<class>/<image>, optionally inside one top folder."
        )
    deepest = [m for m in images if len(m.parts) == depth]
    top, has_split = _layout_shape(deepest, depth, label)
    prefix = (top,) if top else ()
    entries = []
    for m in images:
        rel = m.parts[len(prefix) :]
        ok = m.parts[: len(prefix)] == prefix and len(rel) == (3 if has_split else 2)
        split = SPLIT_ALIASES.get(rel[0].lower()) if ok and has_split else ALL
        if not ok or split is None:
            skipped += 1
            continue
        entries.append((split, rel[-2], m))
    entries, excluded = _exclude_folders(entries, members, exclude, label)
    _check_classes(entries, dirs, prefix, has_split, label, set(excluded))
    return Layout(top, entries, skipped, excluded)


def _exclude_folders(
    entries: list[Entry], members: list[Member], exclude: tuple[str, ...], label: str
) -> tuple[list[Entry], dict[str, dict[str, Any]]]:
    """Leave out class folders named in `exclude` and, in every split, class folders holding a label table."""
    folders = {m.parts[:-1]: cls for _, cls, m in entries}
    reasons: dict[str, str] = {}
    for m in members:
        cls = folders.get(m.parts[:-1])
        if cls is not None and m.parts[-1].lower().endswith(LABEL_TABLE_SUFFIXES):
            reasons.setdefault(cls, f"it holds {m.parts[-1]}, a label table, so its images are annotated "
                                    "examples (e.g. several fruits), not one class")
    wanted = {e.casefold() for e in exclude}
    unknown = wanted - {c.casefold() for c in folders.values()}
    if unknown:
        raise TransferLabError(f"{label}: no class folder named {sorted(unknown)[0]!r} to exclude; class folders: "
                               f"{', '.join(sorted(set(folders.values())))}.")
    for cls in folders.values():
        if cls.casefold() in wanted:
            reasons.setdefault(cls, "left out with --exclude")
    kept = [e for e in entries if e[1] not in reasons]
    images = Counter(cls for _, cls, _ in entries)
    return kept, {cls: {"images": images[cls], "reason": why} for cls, why in sorted(reasons.items())}


def _layout_shape(deepest: list[Member], depth: int, label: str) -> tuple[str | None, bool]:
    """(top folder or None, whether there is a split level) from the deepest image paths."""
    firsts = {m.parts[0] for m in deepest}
    if depth == 2:
        return None, False
    if depth == 3 and any(p.lower() in SPLIT_ALIASES for p in firsts):
        return None, True
    if len(firsts) > 1:
        raise TransferLabError(
            f"{label}: found several top folders ({', '.join(sorted(firsts)[:4])}) and no train/test folders; "
            "expected <split>/<class>/<image> or <class>/<image> inside at most one top folder."
        )
    top = next(iter(firsts))
    if depth == 3:
        return top, False
    if not any(m.parts[1].lower() in SPLIT_ALIASES for m in deepest):
        raise TransferLabError(
            f"{label}: no split folders under {top!r} (expected Training/Test, train/test or train/val/test)."
        )
    return top, True


def _check_classes(
    entries: list[Entry],
    dirs: set[tuple[str, ...]],
    prefix: tuple[str, ...],
    has_split: bool,
    label: str,
    excluded: Iterable[str] = (),
) -> None:
    """One clear error for: no train split, an empty class folder, classes differing only by case."""
    splits = {s for s, _, _ in entries}
    if has_split and TRAIN not in splits:
        raise TransferLabError(
            f"{label}: no training split (a train/ or Training/ folder with class folders)."
        )
    with_images = {m.parts[:-1] for _, _, m in entries}
    depth = len(prefix) + (2 if has_split else 1)
    for d in sorted(dirs):
        in_layout = len(d) == depth and d[: len(prefix)] == prefix and not d[-1].startswith(".")
        if in_layout and has_split and d[len(prefix)].lower() not in SPLIT_ALIASES:
            in_layout = False
        if in_layout and d not in with_images and d[-1] not in set(excluded):
            raise TransferLabError(f"{label}: class folder {'/'.join(d)!r} has no images.")
    by_fold: dict[str, set[str]] = defaultdict(set)
    for _, cls, _ in entries:
        by_fold[cls.casefold()].add(cls)
    clashes = [sorted(v) for v in by_fold.values() if len(v) > 1]
    if clashes:
        raise TransferLabError(
            f"{label}: class names differ only by case: {' / '.join(clashes[0])}; rename one."
        )
    at_least_two(sorted({cls for _, cls, _ in entries}), label)  # before anything is read or written


def at_least_two(classes: list[str], label: str) -> list[str]:
    if len(classes) < 2:
        raise TransferLabError(
            f"{label}: a classification dataset needs at least two classes; found {len(classes)} ({', '.join(classes)})."
        )
    return classes
