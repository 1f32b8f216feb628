"""MNIST-style IDX files (`<prefix>-images-idx3-ubyte[.gz]` with `<prefix>-labels-idx1-ubyte[.gz]`): find the
pairs, parse them, and import them as they are (kind `idx`)."""

from __future__ import annotations

import gzip
import re
import shutil
import struct
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from core import data_store as store
from core.config import TransferLabError
from core.data_store import ALL, IDX, TEST, TRAIN, ImportReport

IDX_RE = re.compile(r"^(?P<prefix>.+?)[-_.](?P<kind>images|labels)[-_.]idx(?P<ndim>[13])[-_.]ubyte(?:\.gz)?$")
IDX_SPLITS = {"train": TRAIN, "t10k": TEST, "test": TEST}


def idx_pairs(paths: Iterable[Path]) -> dict[str, dict[str, Path]]:
    """prefix -> {"images": path, "labels": path}, for complete pairs only."""
    found: dict[str, dict[str, Path]] = defaultdict(dict)
    for p in paths:
        m = IDX_RE.match(p.name)
        if m:
            found[m["prefix"]][m["kind"]] = p
    return {k: v for k, v in found.items() if len(v) == 2}


def is_idx(path: Path) -> bool:
    """An IDX file, or a folder holding a complete IDX pair."""
    return bool(IDX_RE.match(path.name) or (path.is_dir() and idx_pairs(p for p in path.iterdir() if p.is_file())))


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


def import_idx(
    source: Path, name: str | None, progress: Callable[[str, float], None], replace: bool
) -> ImportReport:
    """Copy IDX pairs as they are (kind `idx`); train+t10k give train/test, one pair alone is split `all`."""
    files = list(source.iterdir()) if source.is_dir() else list(source.parent.iterdir())
    pairs = idx_pairs(f for f in files if f.is_file())
    if source.is_file():
        prefix = IDX_RE.match(source.name)["prefix"]
        pairs = {k: v for k, v in pairs.items() if k == prefix}
    if not pairs:
        raise TransferLabError(f"{source}: no matching *-images-idx3-ubyte / *-labels-idx1-ubyte pair found.")
    if len(pairs) == 1:
        split_of = {p: ALL for p in pairs}  # e.g. MNIST t10k only: the test split is carved later
    else:
        split_of = {p: IDX_SPLITS.get(p.lower(), "") for p in pairs}
        if "" in split_of.values() or len(set(split_of.values())) != len(split_of):
            raise TransferLabError(
                f"{source}: IDX prefixes {sorted(pairs)} are not one train and one t10k/test pair."
            )
    name = store.dataset_name(name, "mnist", replace)
    with store.building(name) as tmp:
        counts, stored = {}, {}
        for prefix, pair in sorted(pairs.items()):
            split = split_of[prefix]
            progress(f"Reading {pair['images'].name}", 0.1)
            counts[split] = _check_idx_pair(pair)
            for src in pair.values():
                shutil.copyfile(src, tmp / src.name)
            stored[split] = {k: p.name for k, p in pair.items()}
        classes = sorted({c for per in counts.values() for c in per}, key=int)
        store.write_meta(tmp, name, IDX, classes, counts, files=stored, frames=False, source=str(source),
                         skipped_files=0, unreadable=[])
        dest = store.install(tmp, name)
    skipped = (
        sum(1 for f in files if IDX_RE.match(f.name)) - 2 * len(pairs) if source.is_dir() else 0
    )  # unpaired
    progress(f"Imported {name}", 1.0)
    return ImportReport(name, str(dest), classes, counts, skipped, [], kind=IDX)


def _check_idx_pair(pair: dict[str, Path]) -> dict[str, int]:
    images, labels = read_idx(pair["images"]), read_idx(pair["labels"])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise TransferLabError(
            f"{pair['images'].name}: {images.shape} images do not match {labels.shape} labels in {pair['labels'].name}."
        )
    values, n = np.unique(labels, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, n, strict=True)}
