"""A dataset as stored in the data root: `<data_root>/<name>/dataset.json` plus `<split>/<class>/<file>` (split
train/val/test, or `all` when the source had no split), or, for kind `idx`, the IDX files themselves.

Every import builds the dataset in a hidden temp folder under the data root and renames it into place at the
end, so a failed import leaves nothing half-written and a reader never sees a partial dataset.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import records
from core.config import TransferLabError, atomic_write_json, data_root, validate_name

META_FILE = "dataset.json"
VIEWS_DIR = "views"  # user views live in <data_root>/views/<name>.json
RESERVED_NAMES = {VIEWS_DIR}  # folders in the data root that are not datasets
SPLITS = TRAIN, VAL, TEST = ("train", "val", "test")
ALL = "all"  # the stored split of a source without train/test folders, and the evaluation split of every image
LOCAL, IDX = records.DATASET_KINDS  # a folder of images, or MNIST-style IDX files as they came
FRUITS360 = "fruits360"
NAME_ALIASES = {"fruits-360": FRUITS360}
FRAME_NAME_RE = re.compile(
    r"^(?:r\d*_)?(\d+)_\d+\.\w+$", re.IGNORECASE
)  # Fruits-360: 12_100.jpg, r2_5_100.jpg


@dataclass
class ImportReport:
    """What an import stored: counts per split and class, plus what was left out and why."""

    name: str
    path: str
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> images
    skipped_files: int = 0  # non-image files, hidden files, files outside the detected layout
    unreadable: list[str] = field(default_factory=list)  # images that failed to decode (not copied)
    kind: str = LOCAL
    excluded: dict[str, dict[str, Any]] = field(default_factory=dict)  # left-out folder -> {"images", "reason"}

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def summary(self, markdown: bool = False) -> str:
        """One paragraph for the CLI and the Datasets page: what was stored and what was left out, and why."""
        total = {split: sum(c.values()) for split, c in self.counts.items()}
        name = f"**{self.name}**" if markdown else self.name
        text = (f"Imported {name}: {len(self.classes)} classes ({', '.join(self.classes)}), images per split "
                f"{total}, {self.skipped_files} non-image files skipped, {len(self.unreadable)} unreadable images "
                "left out.")
        for folder, info in self.excluded.items():
            text += f" Folder {folder}/ ({info['images']} images) is not a class: {info['reason']}."
        if ALL in self.counts:
            text += (" No train/test folders: training carves test and val splits from the images; "
                     "evaluation can use them all (--split all).")
        return text


def read_meta(name: str) -> dict | None:
    """The stored dataset.json of an imported dataset, or None when there is none or it is malformed."""
    return records.read_dataset_meta(data_root() / name / META_FILE)[0]


def meta_problem(name: str) -> str | None:
    """Why the dataset.json in <data_root>/<name> cannot be used; None when it is fine or absent."""
    return records.read_dataset_meta(data_root() / name / META_FILE)[1]


def write_meta(
    folder: Path, name: str, kind: str, classes: list[str], counts: dict[str, dict[str, int]], *, source: str,
    frames: bool, skipped_files: int, unreadable: list[str], excluded: dict[str, dict[str, Any]] | None = None,
    files: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Write `folder/dataset.json` (the only place one is built) with a fresh import id; returns it.

    `files` (split -> {"images", "labels"} file names) is for kind `idx`; `excluded` for image folders."""
    meta = {"name": name, "kind": kind, "splits": sorted(counts), "classes": classes, "counts": counts,
            **({} if files is None else {"files": files}), "frames": frames, "source": source,
            "skipped_files": skipped_files, "unreadable": unreadable,
            **({} if excluded is None else {"excluded": excluded}),
            "import_id": uuid.uuid4().hex[:12], "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
    atomic_write_json(folder / META_FILE, meta)
    return meta


def dataset_name(name: str | None, fallback: str, replace: bool) -> str:
    """Given name, else the top folder (or file) name lowercased, with aliases (fruits-360 -> fruits360).

    With `replace` False an existing dataset of that name is refused."""
    if name is None:
        name = fallback.lower()
        name = NAME_ALIASES.get(name, name)
        name = re.sub(r"[^a-z0-9._-]+", "-", name).strip("-._") or "dataset"
    validate_name(name, "dataset name")
    if name in RESERVED_NAMES:
        raise TransferLabError(f"{name!r} is reserved in the data root; choose another dataset name.")
    if not replace and (data_root() / name).exists():
        raise TransferLabError(f"A dataset named {name!r} already exists: choose another name, or replace it "
                               "(--replace on the command line, 'Replace' on the Datasets page).")
    return name


@contextmanager
def building(name: str) -> Iterator[Path]:
    """A hidden temp folder in the data root to build the dataset in (then `install` it); removed on failure."""
    root = data_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".import-{name}-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def install(tmp: Path, name: str) -> Path:
    """Swap the finished temp folder into place; an older import of the same name is replaced."""
    dest = data_root() / name
    old = None
    if dest.exists():
        old = dest.with_name(f".old-{name}-{uuid.uuid4().hex[:8]}")
        os.replace(dest, old)
    tmp.chmod(0o755)  # mkdtemp makes it private; a dataset is ordinary data
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest
