"""Getting datasets in and reading them back: importing a zip, a folder, a URL of a zip or MNIST-style IDX
files into the data root, and listing what is stored (file lists, IDX arrays, the Keras built-ins).

Why a separate module: import is all about untrusted input (paths, sizes, broken images), while
`core.datasets` is about using what is stored (views, splits, the decoded cache, tf.data). Every import
builds the dataset in a hidden temp folder under the data root and renames it into place at the end, so a
failed import leaves nothing half-written and a reader never sees a partial dataset.

Stored layout: `<data_root>/<name>/dataset.json` plus `<split>/<class>/<file>` with split in
train/val/test (or `all` when the source had no split), or, for kind `idx`, the IDX files themselves.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import struct
import tempfile
import time
import urllib.parse
import uuid
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core import downloads, records
from core.config import TransferLabError, atomic_write_json, data_root, validate_name
from core.downloads import MAX_UNCOMPRESSED_BYTES, limit_text
from core.images import decodes, is_image_name

Progress = Callable[[str, float], None]

META_FILE = "dataset.json"
RESERVED_NAMES = {"views"}  # folders in the data root that are not datasets
NAME_ALIASES = {"fruits-360": "fruits360"}
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}  # fmt: skip
ARCHIVE_SUFFIXES = (".zip",)
LABEL_TABLE_SUFFIXES = (".csv", ".tsv")  # a class folder holding a label table is annotated images, not a class
FRAME_NAME_RE = re.compile(
    r"^(?:r\d*_)?(\d+)_\d+\.\w+$", re.IGNORECASE
)  # Fruits-360: 12_100.jpg, r2_5_100.jpg
IDX_RE = re.compile(r"^(?P<prefix>.+?)[-_.](?P<kind>images|labels)[-_.]idx(?P<ndim>[13])[-_.]ubyte(?:\.gz)?$")
IDX_SPLITS = {"train": "train", "t10k": "test", "test": "test"}
_WORKERS = max(2, min(8, os.cpu_count() or 2))
_CHUNK = 256  # files per pool task during import
MAX_MEMBER_BYTES = 100 * 1024**2  # one image file; a larger one is left out as unreadable, never read whole
MAX_NAME_BYTES = 255  # one file or folder name (Linux's NAME_MAX)
UPLOAD_PREFIX = ".upload-"  # the Datasets page's temp folder for an upload: errors name the upload, not it
IN_FLIGHT_BYTES = 128 * 1024**2  # member bytes read but not yet verified and written, at most (plus one member)


@dataclass
class ImportReport:
    """What an import stored: counts per split and class, plus what was left out and why."""

    name: str
    path: str
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> images
    skipped_files: int = 0  # non-image files, hidden files, files outside the detected layout
    unreadable: list[str] = field(default_factory=list)  # images that failed to decode (not copied)
    kind: str = "local"
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
        if "all" in self.counts:
            text += (" No train/test folders: training carves test and val splits from the images; "
                     "evaluation can use them all (--split all).")
        return text


@dataclass(frozen=True)
class _Member:
    """One file of the source (zip member or file in a folder), by its path parts inside the source; `read`
    gives None for a file over MAX_MEMBER_BYTES or one that cannot be read whole (bad CRC, encrypted, ...)."""

    parts: tuple[str, ...]
    read: Callable[[], bytes | None]


def _read_capped(opener: Callable[[], Any], declared: int) -> bytes | None:
    """At most MAX_MEMBER_BYTES + 1 bytes are ever read, whatever the archive declares."""
    if declared > MAX_MEMBER_BYTES:
        return None
    try:
        with opener() as f:
            data = f.read(MAX_MEMBER_BYTES + 1)
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error):
        return None  # bad CRC, encrypted (RuntimeError), unsupported compression, truncated stream
    return data if len(data) <= MAX_MEMBER_BYTES else None


# ---- entry point ------------------------------------------------------------------------------------------


def import_dataset(
    source: str | Path, name: str | None = None, progress: Progress | None = None, exclude: Iterable[str] = (),
    replace: bool = True,
) -> ImportReport:
    """Import a zip, a folder, an http(s) URL of a zip, or IDX files into `data_root()/<name>/`.

    Class folders named in `exclude` are left out, and so is every folder holding a label table (a .csv or .tsv
    file, e.g. `mixed/labels.csv` of multi-label photos): such a folder is annotated images, not a class.
    With `replace` False an existing dataset of the same name is an error, found before anything is copied.
    """
    token = _REPLACE.set(replace)
    try:
        return _import_dataset(source, name, progress, tuple(exclude))
    finally:
        _REPLACE.reset(token)


_REPLACE: ContextVar[bool] = ContextVar("replace", default=True)  # read where the final name is known


def _import_dataset(source: str | Path, name: str | None, progress: Progress | None,
                    exclude: tuple[str, ...]) -> ImportReport:
    report = _quiet_progress(progress)
    exclude = tuple(exclude)
    if isinstance(source, str) and re.match(r"^https?://", source, re.IGNORECASE):
        return _import_url(source, name, report, exclude)
    path = Path(source).expanduser()
    if not path.exists():
        raise TransferLabError(f"{path} does not exist: give a .zip, a folder or an http(s) URL of a zip.")
    is_idx = IDX_RE.match(path.name) or (path.is_dir() and _idx_pairs(p for p in path.iterdir() if p.is_file()))
    if is_idx and exclude:
        raise TransferLabError("Excluding classes works for folders of images, not for IDX files.")
    if is_idx:
        return _import_idx(path, name, report)
    if path.is_dir():
        return _import_members(_folder_members(path), str(path), path.name, name, report, exclude)
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        return _import_zip(path, name, report, fallback_name=path.stem, exclude=exclude)
    raise TransferLabError(f"{path} is neither a .zip, a folder nor IDX files (*-images-idx3-ubyte[.gz]).")


def _quiet_progress(progress: Progress | None) -> Progress:
    return progress if progress is not None else (lambda message, fraction: None)


# ---- URL ----------------------------------------------------------------------------------------------------


def _import_url(url: str, name: str | None, progress: Progress, exclude: tuple[str, ...] = ()) -> ImportReport:
    """Download to a temp file under the data root (first half of the progress), then import it (second half)."""
    tmp = downloads.download(url, lambda m, f: progress(m, 0.5 * f))
    try:
        stem = Path(urllib.parse.urlparse(url).path).stem or "dataset"
        return _import_zip(tmp, name, lambda m, f: progress(m, 0.5 + 0.5 * f), fallback_name=stem, label=url,
                           exclude=exclude)
    finally:
        tmp.unlink(missing_ok=True)


# ---- zip and folder members -------------------------------------------------------------------------------


def _import_zip(
    path: Path, name: str | None, progress: Progress, fallback_name: str, label: str | None = None,
    exclude: tuple[str, ...] = (),
) -> ImportReport:
    label = label or str(path)
    uploaded = any(part.startswith(UPLOAD_PREFIX) for part in path.parts)
    shown = f"the uploaded file {path.name}" if uploaded else label  # never the hidden temp folder's path
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise TransferLabError(f"{shown} is not a readable zip file ({_not_a_zip_reason(path, exc)}).") from None
    with zf:
        members = _zip_members(zf, shown)
        return _import_members(members, label, fallback_name, name, progress, exclude)


def _not_a_zip_reason(path: Path, exc: Exception) -> str:
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return str(exc)
    if head.startswith(b"\x1f\x8b") or head[257:262] == b"ustar":
        return "it is a tar or gzip archive: unpack it and import the folder, or make a .zip"
    return str(exc)


def _zip_members(zf: zipfile.ZipFile, label: str) -> tuple[list[_Member], set[tuple[str, ...]]]:
    """Check every member before anything is written; return files and folder paths."""
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise TransferLabError(
            f"Refusing {label}: it declares {total / 1024**3:.1f} GB uncompressed, over the {limit_text()} limit."
        )
    files, dirs = [], set()
    for info in infos:
        member_name = _member_name(info)
        parts = _safe_parts(member_name, label)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise TransferLabError(
                f"Refusing {label}: member {member_name!r} is a symlink; nothing was imported."
            )
        if not parts:
            continue
        if info.is_dir():
            dirs.add(parts)
            continue
        files.append(_Member(parts, lambda info=info: _read_capped(lambda: zf.open(info), info.file_size)))
    return files, dirs


def _member_name(info: zipfile.ZipInfo) -> str:
    """Zip names without the UTF-8 flag are decoded as cp437; many tools wrote UTF-8 anyway, so try that."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name


def _safe_parts(member_name: str, label: str) -> tuple[str, ...]:
    """Refuse absolute paths and '..' (zip-slip); return the path parts."""
    name = member_name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        raise TransferLabError(
            f"Refusing {label}: member {member_name!r} has an absolute path; nothing was imported."
        )
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise TransferLabError(
            f"Refusing {label}: member {member_name!r} points outside with '..'; nothing was imported."
        )
    longest = max(parts, key=lambda p: len(p.encode()), default="")
    if len(longest.encode()) > MAX_NAME_BYTES:
        raise TransferLabError(
            f"Refusing {label}: member {longest[:40]!r}… has a name of {len(longest.encode())} bytes, over the "
            f"file system's {MAX_NAME_BYTES}-byte limit; rename it. Nothing was imported."
        )
    return parts


def _folder_members(root: Path) -> tuple[list[_Member], set[tuple[str, ...]]]:
    files, dirs = [], set()
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel = base.relative_to(root).parts
        for d in dirnames:
            if (base / d).is_symlink():
                raise TransferLabError(f"Refusing {root}: {base / d} is a symlink; nothing was imported.")
            dirs.add((*rel, d))
        for f in filenames:
            p = base / f
            if p.is_symlink():
                raise TransferLabError(f"Refusing {root}: {p} is a symlink; nothing was imported.")
            files.append(_Member((*rel, f), lambda p=p: _read_capped(lambda: p.open("rb"), p.stat().st_size)))
    return files, dirs


# ---- layout -------------------------------------------------------------------------------------------------


@dataclass
class _Layout:
    top: str | None  # the single wrapping folder, if any
    entries: list[tuple[str, str, _Member]]  # (split, class, member)
    skipped: int
    excluded: dict[str, dict[str, Any]] = field(default_factory=dict)  # folder -> {"images", "reason"}


def _plan_layout(
    members: list[_Member], dirs: set[tuple[str, ...]], label: str, exclude: tuple[str, ...] = ()
) -> _Layout:
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
        split = SPLIT_ALIASES.get(rel[0].lower()) if ok and has_split else "all"
        if not ok or split is None:
            skipped += 1
            continue
        entries.append((split, rel[-2], m))
    entries, excluded = _exclude_folders(entries, members, exclude, label)
    _check_classes(entries, dirs, prefix, has_split, label, set(excluded))
    return _Layout(top, entries, skipped, excluded)


def _exclude_folders(
    entries: list[tuple[str, str, _Member]], members: list[_Member], exclude: tuple[str, ...], label: str
) -> tuple[list[tuple[str, str, _Member]], dict[str, dict[str, Any]]]:
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


def _layout_shape(deepest: list[_Member], depth: int, label: str) -> tuple[str | None, bool]:
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
    entries: list[tuple[str, str, _Member]],
    dirs: set[tuple[str, ...]],
    prefix: tuple[str, ...],
    has_split: bool,
    label: str,
    excluded: Iterable[str] = (),
) -> None:
    """One clear error for: no train split, an empty class folder, classes differing only by case."""
    splits = {s for s, _, _ in entries}
    if has_split and "train" not in splits:
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
    _at_least_two(sorted({cls for _, cls, _ in entries}), label)  # before anything is read or written


# ---- copy, verify, install -----------------------------------------------------------------------------------


def _import_members(
    found: tuple[list[_Member], set[tuple[str, ...]]],
    label: str,
    fallback_name: str,
    name: str | None,
    progress: Progress,
    exclude: tuple[str, ...] = (),
) -> ImportReport:
    members, dirs = found
    layout = _plan_layout(members, dirs, label, exclude)
    name = _dataset_name(name, layout.top or fallback_name)
    tmp = _temp_dir(name)
    try:
        counts, unreadable, duplicates = _copy_verified(layout.entries, tmp, name, progress)
        classes = _final_classes(counts, unreadable, label)
        frame_names = sum(bool(FRAME_NAME_RE.match(m.parts[-1])) for _, _, m in layout.entries)
        meta = {
            "name": name,
            "kind": "local",
            "splits": sorted(counts),
            "classes": classes,
            "counts": counts,
            "frames": name.startswith("fruits360") or frame_names >= 0.9 * len(layout.entries),
            "source": label,
            "skipped_files": layout.skipped + duplicates,
            "unreadable": unreadable,
            "excluded": layout.excluded,
            "import_id": uuid.uuid4().hex[:12],
            "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_json(tmp / META_FILE, meta)
        dest = _install(tmp, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(f"Imported {name}: {sum(sum(c.values()) for c in counts.values())} images", 1.0)
    return ImportReport(name, str(dest), classes, counts, meta["skipped_files"], unreadable,
                        excluded=layout.excluded)


def _dataset_name(name: str | None, fallback: str) -> str:
    """Given name, else the top folder (or file) name lowercased, with aliases (fruits-360 -> fruits360)."""
    if name is None:
        name = fallback.lower()
        name = NAME_ALIASES.get(name, name)
        name = re.sub(r"[^a-z0-9._-]+", "-", name).strip("-._") or "dataset"
    validate_name(name, "dataset name")
    if name in RESERVED_NAMES:
        raise TransferLabError(f"{name!r} is reserved in the data root; choose another dataset name.")
    if not _REPLACE.get() and (data_root() / name).exists():
        raise TransferLabError(f"A dataset named {name!r} already exists: choose another name, or replace it "
                               "(--replace on the command line, 'Replace' on the Datasets page).")
    return name


def _temp_dir(name: str) -> Path:
    root = data_root()
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=root, prefix=f".import-{name}-"))


def _copy_verified(
    entries: list[tuple[str, str, _Member]], tmp: Path, name: str, progress: Progress
) -> tuple[dict[str, dict[str, int]], list[str], int]:
    """Read in this thread (zip reads share one file handle); decode-check and write in a pool, in chunks of
    files so that threads hand over rarely (one future per file made a 25k-file import GIL-bound)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    unreadable: list[str] = []
    unique: dict[tuple[str, str, str], tuple[str, str, _Member]] = {}
    for split, cls, member in entries:
        unique.setdefault((split, cls, member.parts[-1]), (split, cls, member))
        counts[split].setdefault(
            cls, 0
        )  # a class whose images are all unreadable is still named in the error
    todo = list(unique.values())
    for split, cls in {(s, c) for s, c, _ in todo}:
        (tmp / split / cls).mkdir(parents=True, exist_ok=True)
    pending: list[tuple[Future, list[tuple[str, str, _Member]], int]] = []

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


def _final_classes(counts: dict[str, dict[str, int]], unreadable: list[str], label: str) -> list[str]:
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            if n == 0:
                raise TransferLabError(f"{label}: class {cls!r} in {split} has no readable images.")
    classes = sorted({c for per_class in counts.values() for c in per_class})
    return _at_least_two(classes, label)


def _at_least_two(classes: list[str], label: str) -> list[str]:
    if len(classes) < 2:
        raise TransferLabError(
            f"{label}: a classification dataset needs at least two classes; found {len(classes)} ({', '.join(classes)})."
        )
    return classes


def _install(tmp: Path, name: str) -> Path:
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


# ---- IDX (MNIST format) ---------------------------------------------------------------------------------------


def _idx_pairs(paths: Iterable[Path]) -> dict[str, dict[str, Path]]:
    """prefix -> {"images": path, "labels": path}, for complete pairs only."""
    found: dict[str, dict[str, Path]] = defaultdict(dict)
    for p in paths:
        m = IDX_RE.match(p.name)
        if m:
            found[m["prefix"]][m["kind"]] = p
    return {k: v for k, v in found.items() if len(v) == 2}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped): a big-endian header, then unsigned bytes."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08 or ndim < 1:
            raise ValueError("not an unsigned-byte IDX file")
        dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return data[: int(np.prod(dims))].reshape(dims)
    except (OSError, EOFError, ValueError, struct.error, gzip.BadGzipFile) as exc:
        raise TransferLabError(f"{path}: not a readable IDX file ({exc}).") from None


def _import_idx(source: Path, name: str | None, progress: Progress) -> ImportReport:
    """Copy IDX pairs as they are (kind `idx`); train+t10k give train/test, one pair alone is split `all`."""
    files = list(source.iterdir()) if source.is_dir() else list(source.parent.iterdir())
    pairs = _idx_pairs(f for f in files if f.is_file())
    if source.is_file():
        prefix = IDX_RE.match(source.name)["prefix"]
        pairs = {k: v for k, v in pairs.items() if k == prefix}
    if not pairs:
        raise TransferLabError(f"{source}: no matching *-images-idx3-ubyte / *-labels-idx1-ubyte pair found.")
    if len(pairs) == 1:
        split_of = {p: "all" for p in pairs}  # e.g. MNIST t10k only: the test split is carved later
    else:
        split_of = {p: IDX_SPLITS.get(p.lower(), "") for p in pairs}
        if "" in split_of.values() or len(set(split_of.values())) != len(split_of):
            raise TransferLabError(
                f"{source}: IDX prefixes {sorted(pairs)} are not one train and one t10k/test pair."
            )
    name = _dataset_name(name, "mnist")
    tmp = _temp_dir(name)
    try:
        counts, stored = {}, {}
        for prefix, pair in sorted(pairs.items()):
            split = split_of[prefix]
            progress(f"Reading {pair['images'].name}", 0.1)
            counts[split] = _check_idx_pair(pair)
            for src in pair.values():
                shutil.copyfile(src, tmp / src.name)
            stored[split] = {k: p.name for k, p in pair.items()}
        classes = sorted({c for per in counts.values() for c in per}, key=int)
        meta = {
            "name": name, "kind": "idx", "splits": sorted(counts), "classes": classes, "counts": counts,
            "files": stored, "frames": False, "source": str(source), "skipped_files": 0, "unreadable": [],
            "import_id": uuid.uuid4().hex[:12], "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }  # fmt: skip
        atomic_write_json(tmp / META_FILE, meta)
        dest = _install(tmp, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    skipped = (
        sum(1 for f in files if IDX_RE.match(f.name)) - 2 * len(pairs) if source.is_dir() else 0
    )  # unpaired
    progress(f"Imported {name}", 1.0)
    return ImportReport(name, str(dest), classes, counts, skipped, [], kind="idx")


def _check_idx_pair(pair: dict[str, Path]) -> dict[str, int]:
    images, labels = read_idx(pair["images"]), read_idx(pair["labels"])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise TransferLabError(
            f"{pair['images'].name}: {images.shape} images do not match {labels.shape} labels in {pair['labels'].name}."
        )
    values, n = np.unique(labels, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, n, strict=True)}


def export_dataset(name: str, dest: str | Path, size: int, quality: int = 95, splits: Iterable[str] | None = None,
                   progress: Progress | None = None) -> dict[str, int]:
    """Write an imported image-folder dataset as <split>/<class>/*.jpg at size x size: a compact copy to carry to
    a GPU server that cannot see the original (Fruits-360 at 48px and JPEG quality 95 is about 1.8 KB an image)."""
    from core.images import load_rgb

    meta = read_meta(name)
    if not meta or meta["kind"] != "local":
        raise TransferLabError(f"Only an imported image-folder dataset can be exported; {name!r} is not one.")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise TransferLabError(f"{dest} is not empty: export into a new folder.")
    src, report = local_source(name, meta), _quiet_progress(progress)
    chosen = list(splits or src.files)
    unknown = sorted(set(chosen) - set(src.files))
    if unknown:
        raise TransferLabError(f"{name} has no split {', '.join(unknown)}; splits: {', '.join(src.files)}.")
    files = [f for split in chosen for f in src.files[split]]
    root = data_root() / name

    def one(rel: str) -> None:
        out = dest / Path(rel).with_suffix(".jpg")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(load_rgb(root / rel, size)).save(out, "JPEG", quality=quality)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for done, _ in enumerate(pool.map(one, files), 1):
            if done % 500 == 0 or done == len(files):
                report(f"Exported {done} of {len(files)} images", done / len(files))
    return {split: len(src.files[split]) for split in chosen}


def read_meta(name: str) -> dict | None:
    """The stored dataset.json of an imported dataset, or None when there is none or it is malformed."""
    return records.read_dataset_meta(data_root() / name / META_FILE)[0]


def meta_problem(name: str) -> str | None:
    """Why the dataset.json in <data_root>/<name> cannot be used; None when it is fine or absent."""
    return records.read_dataset_meta(data_root() / name / META_FILE)[1]


# ---- reading what is stored: local folders, IDX and the Keras built-ins --------------------------------------

KERAS_DATASETS: dict[str, str] = {
    "cifar10": "CIFAR-10: 60k 32x32 colour images, 10 classes (Keras download)",
    "cifar100": "CIFAR-100: 60k 32x32 colour images, 100 fine classes (Keras download)",
    "mnist": "MNIST: 70k 28x28 grey digits (Keras download)",
    "fashion_mnist": "Fashion-MNIST: 70k 28x28 grey clothing images (Keras download)",
}
_KERAS_CACHE_PREFIX = {
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "mnist": "mnist.npz",
    "fashion_mnist": "fashion-mnist",
}
_CIFAR10 = "airplane automobile bird cat deer dog frog horse ship truck".split()
_FASHION = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
]
_CIFAR100 = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin
elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man
maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree
plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail
snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout
tulip turtle whale willow_tree wolf woman worm""".split()
_KERAS_CLASSES = {
    "cifar10": _CIFAR10,
    "cifar100": _CIFAR100,
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": _FASHION,
}


@dataclass
class Source:
    """A base dataset: its classes and, per stored split, every image's label and file name (sorted)."""

    name: str
    kind: str  # local | idx | keras
    classes: list[str]
    labels: dict[str, np.ndarray]  # stored split -> int32 source labels
    files: dict[str, list[str]]  # stored split -> paths relative to the dataset folder ([] for arrays)
    frames: bool  # images are frames of a rotating object (Fruits-360): grouped val split
    token: str  # changes with every import, so caches of an older import are never used


_SOURCES: dict[tuple[str, str], Source] = {}  # (name, import id) -> file lists, read once per process
_KERAS_RAW: dict[str, tuple] = {}  # keras.datasets arrays as loaded, read from disk once per process
_IDX_RAW: dict[tuple[str, str, str], np.ndarray] = {}  # (name, import id, split) -> IDX images


def local_source(name: str, meta: dict) -> Source:
    key = (name, meta.get("import_id", ""))
    if key in _SOURCES:
        return _SOURCES[key]
    classes = list(meta["classes"])
    labels, files = {}, {}
    if meta["kind"] == "idx":
        for split, pair in meta["files"].items():
            labels[split] = read_idx(data_root() / name / pair["labels"]).astype(np.int32)
            files[split] = []
        lookup = {int(c): i for i, c in enumerate(classes)}
        labels = {s: np.array([lookup[int(v)] for v in y], np.int32) for s, y in labels.items()}
    else:
        for split in meta["splits"]:
            labels[split], files[split] = _scan_split(data_root() / name, split, classes)
    src = Source(name, meta["kind"], classes, labels, files, bool(meta.get("frames")), key[1])
    _SOURCES[key] = src
    return src


def _scan_split(root: Path, split: str, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    labels, files = [], []
    for i, cls in enumerate(classes):
        folder = root / split / cls
        names = sorted(e.name for e in os.scandir(folder) if is_image_name(e.name)) if folder.is_dir() else []
        labels += [i] * len(names)
        files += [f"{split}/{cls}/{n}" for n in names]
    return np.array(labels, np.int32), files


def keras_source(name: str) -> Source:
    key = (name, "keras")
    if key not in _SOURCES:
        (_, y_train), (_, y_test) = keras_load(name)
        labels = {"train": y_train.reshape(-1).astype(np.int32), "test": y_test.reshape(-1).astype(np.int32)}
        _SOURCES[key] = Source(
            name, "keras", _KERAS_CLASSES[name], labels, {"train": [], "test": []}, False, "keras"
        )
    return _SOURCES[key]


def keras_load(name: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """`keras.datasets.<name>.load_data()`; offline it fails fast, which becomes one clear error."""
    if name in _KERAS_RAW:
        return _KERAS_RAW[name]
    import keras

    try:
        module = getattr(keras.datasets, name)
        _KERAS_RAW[name] = module.load_data(label_mode="fine") if name == "cifar100" else module.load_data()
        return _KERAS_RAW[name]
    except Exception:  # keras raises a bare Exception("URL fetch failure ...") offline
        raise TransferLabError(
            f"Dataset {name!r} is not available: no folder {data_root() / name} and the Keras download failed "
            f"(offline?). Import it: python -m core datasets import <zip|dir|url> --name {name}"
        ) from None


def keras_cached(name: str) -> bool:
    """Whether Keras has the dataset on disk already (so it loads without a download)."""
    folder = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"
    prefix = _KERAS_CACHE_PREFIX[name]
    return folder.is_dir() and any(p.name.startswith(prefix) for p in folder.iterdir())


def raw_images(src: Source, split: str) -> np.ndarray:
    """Undecoded arrays of an IDX or Keras dataset, (N, H, W) or (N, H, W, 3)."""
    if src.kind == "idx":
        key = (src.name, src.token, split)
        if key not in _IDX_RAW:
            meta = read_meta(src.name) or {}
            _IDX_RAW[key] = read_idx(data_root() / src.name / meta["files"][split]["images"])
        return _IDX_RAW[key]
    (x_train, _), (x_test, _) = keras_load(src.name)
    return x_train if split == "train" else x_test


def resize_array(img: np.ndarray, size: int) -> np.ndarray:
    """Grey or RGB array -> RGB size x size, resized with Pillow like core.images.load_rgb."""
    if img.shape[:2] != (size, size):
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


def forget(name: str | None = None) -> None:
    """Drop this process's file lists and Keras arrays (after a re-import)."""
    for key in [k for k in _SOURCES if name is None or k[0] == name]:
        del _SOURCES[key]
    for key in [k for k in _KERAS_RAW if name is None or k == name]:
        del _KERAS_RAW[key]
    for key in [k for k in _IDX_RAW if name is None or k[0] == name]:
        del _IDX_RAW[key]
