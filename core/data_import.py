"""Importing untrusted input into the data root: a zip, a folder, an http(s) URL of a zip, or MNIST-style IDX files.

Every image is decode-checked before it is kept, so what is stored is exactly what training can read; the
dataset is built in a hidden temp folder and renamed into place (`core.data_store`).
"""

from __future__ import annotations

import os
import re
import urllib.parse
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from core import data_store as store
from core import downloads
from core.config import TransferLabError
from core.data_idx import import_idx, is_idx
from core.data_layout import Entry, at_least_two, plan_layout
from core.data_members import Members, folder_members, not_a_zip_reason, zip_members
from core.data_store import FRAME_NAME_RE, FRUITS360, LOCAL, ImportReport
from core.images import decodes

Progress = Callable[[str, float], None]

UPLOAD_PREFIX = ".upload-"  # the Datasets page's temp folder for an upload: errors name the upload, not it
IN_FLIGHT_BYTES = 128 * 1024**2  # member bytes read but not yet verified and written, at most (plus one member)
_WORKERS = max(2, min(8, os.cpu_count() or 2))
_CHUNK = 256  # files per pool task during import


def import_dataset(
    source: str | Path, name: str | None = None, progress: Progress | None = None, exclude: Iterable[str] = (),
    replace: bool = True,
) -> ImportReport:
    """Import a zip, a folder, an http(s) URL of a zip, or IDX files into `data_root()/<name>/`.

    Class folders named in `exclude` are left out, and so is every folder holding a label table (a .csv or .tsv
    file, e.g. `mixed/labels.csv` of multi-label photos): such a folder is annotated images, not a class.
    With `replace` False an existing dataset of the same name is an error, found before anything is copied.
    """
    report = quiet_progress(progress)
    exclude = tuple(exclude)
    if isinstance(source, str) and re.match(r"^https?://", source, re.IGNORECASE):
        return _import_url(source, name, report, exclude, replace)
    path = Path(source).expanduser()
    if not path.exists():
        raise TransferLabError(f"{path} does not exist: give a .zip, a folder or an http(s) URL of a zip.")
    idx = is_idx(path)
    if idx and exclude:
        raise TransferLabError("Excluding classes works for folders of images, not for IDX files.")
    if idx:
        return import_idx(path, name, report, replace)
    if path.is_dir():
        return _import_members(folder_members(path), str(path), path.name, name, report, exclude, replace)
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        return _import_zip(path, name, report, path.stem, exclude, replace)
    raise TransferLabError(f"{path} is neither a .zip, a folder nor IDX files (*-images-idx3-ubyte[.gz]).")


def quiet_progress(progress: Progress | None) -> Progress:
    return progress if progress is not None else (lambda message, fraction: None)


def _import_url(url: str, name: str | None, progress: Progress, exclude: tuple[str, ...],
                replace: bool) -> ImportReport:
    """Download to a temp file under the data root (first half of the progress), then import it (second half)."""
    tmp = downloads.download(url, lambda m, f: progress(m, 0.5 * f))
    try:
        stem = Path(urllib.parse.urlparse(url).path).stem or "dataset"
        return _import_zip(tmp, name, lambda m, f: progress(m, 0.5 + 0.5 * f), stem, exclude, replace, label=url)
    finally:
        tmp.unlink(missing_ok=True)


def _import_zip(
    path: Path, name: str | None, progress: Progress, fallback_name: str, exclude: tuple[str, ...], replace: bool,
    label: str | None = None,
) -> ImportReport:
    label = label or str(path)
    uploaded = any(part.startswith(UPLOAD_PREFIX) for part in path.parts)
    shown = f"the uploaded file {path.name}" if uploaded else label  # never the hidden temp folder's path
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TransferLabError(f"{shown} is not a readable zip file ({not_a_zip_reason(path, exc)}).") from None
    with zf:
        members = zip_members(zf, shown)
        return _import_members(members, label, fallback_name, name, progress, exclude, replace)


def _import_members(
    found: Members,
    label: str,
    fallback_name: str,
    name: str | None,
    progress: Progress,
    exclude: tuple[str, ...],
    replace: bool,
) -> ImportReport:
    members, dirs = found
    layout = plan_layout(members, dirs, label, exclude)
    name = store.dataset_name(name, layout.top or fallback_name, replace)
    with store.building(name) as tmp:
        counts, unreadable, duplicates = _copy_verified(layout.entries, tmp, name, progress)
        classes = _final_classes(counts, label)
        frame_names = sum(bool(FRAME_NAME_RE.match(m.parts[-1])) for _, _, m in layout.entries)
        meta = store.write_meta(
            tmp, name, LOCAL, classes, counts, source=label, excluded=layout.excluded, unreadable=unreadable,
            frames=name.startswith(FRUITS360) or frame_names >= 0.9 * len(layout.entries),
            skipped_files=layout.skipped + duplicates,
        )
        dest = store.install(tmp, name)
    progress(f"Imported {name}: {sum(sum(c.values()) for c in counts.values())} images", 1.0)
    return ImportReport(name, str(dest), classes, counts, meta["skipped_files"], unreadable,
                        excluded=layout.excluded)


def _copy_verified(
    entries: list[Entry], tmp: Path, name: str, progress: Progress
) -> tuple[dict[str, dict[str, int]], list[str], int]:
    """Read in this thread (zip reads share one file handle); decode-check and write in a pool, in chunks of
    files so that threads hand over rarely (one future per file made a 25k-file import GIL-bound)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    unreadable: list[str] = []
    unique: dict[tuple[str, str, str], Entry] = {}
    for split, cls, member in entries:
        unique.setdefault((split, cls, member.parts[-1]), (split, cls, member))
        counts[split].setdefault(
            cls, 0
        )  # a class whose images are all unreadable is still named in the error
    todo = list(unique.values())
    for split, cls in {(s, c) for s, c, _ in todo}:
        (tmp / split / cls).mkdir(parents=True, exist_ok=True)
    pending: list[tuple[Future, list[Entry], int]] = []

    def settle(chunks: int, in_flight: int) -> None:
        while pending and (len(pending) > chunks or sum(n for _, _, n in pending) > in_flight):
            fut, chunk, _ = pending.pop(0)
            for ok, (split, cls, member) in zip(fut.result(), chunk, strict=True):
                if ok:
                    counts[split][cls] += 1
                else:
                    unreadable.append("/".join(member.parts))

    with ThreadPoolExecutor(_WORKERS) as pool:
        start = 0
        while start < len(todo):
            jobs, size = [], 0
            while start + len(jobs) < len(todo) and len(jobs) < _CHUNK and size < IN_FLIGHT_BYTES // 4:
                split, cls, m = todo[start + len(jobs)]
                jobs.append((m.read(), tmp / split / cls / m.parts[-1]))
                size += len(jobs[-1][0] or b"")
            chunk, start = todo[start : start + len(jobs)], start + len(jobs)
            pending.append((pool.submit(_verify_and_write_all, jobs), chunk, size))
            settle(2 * _WORKERS, IN_FLIGHT_BYTES)
            progress(f"Importing {name}: {start}/{len(todo)} images", start / len(todo))
        settle(0, 0)
    return (
        {s: dict(sorted(c.items())) for s, c in sorted(counts.items())},
        sorted(unreadable),
        len(entries) - len(todo),
    )


def _verify_and_write_all(jobs: list[tuple[bytes | None, Path]]) -> list[bool]:
    return [_verify_and_write(data, dest) for data, dest in jobs]


def _verify_and_write(data: bytes | None, dest: Path) -> bool:
    """Keep exactly what training decodes (core.images.decodes: the same function, JPEGs at 1/8 scale)."""
    if data is None or not decodes(data):
        return False
    dest.write_bytes(data)
    return True


def _final_classes(counts: dict[str, dict[str, int]], label: str) -> list[str]:
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            if n == 0:
                raise TransferLabError(f"{label}: class {cls!r} in {split} has no readable images.")
    classes = sorted({c for per_class in counts.values() for c in per_class})
    return at_least_two(classes, label)
