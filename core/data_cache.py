"""The decoded-image cache: decoding happens once per (dataset, stored split, size). The whole stored split is
decoded into one uint8 array, kept in memory and in `data_root()/.cache/<name>/<import id>-<split>-<size>.npy`;
splits and views only index into it."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from core.config import TransferLabError, data_root, describe_os_error
from core.data_sources import Source, forget, raw_images
from core.data_store import LOCAL
from core.images import ImageError, load_rgb

DECODE_COUNT = 0  # images decoded (or resized from raw arrays) into the cache; the cache tests read it
CACHE_DIR = ".cache"  # under the data root; hidden, so never listed as a dataset

_ARRAYS: dict[tuple[str, str, str, int], np.ndarray] = {}  # (name, import id, stored split, size) -> images
_LOCK = threading.Lock()


class NoCacheWarning(UserWarning):
    """The decoded cache cannot be written: images are decoded again by every process."""


def cache_root() -> Path:
    return data_root() / CACHE_DIR


def clear_cache(name: str | None = None, *, disk: bool = False) -> None:
    """Forget decoded arrays and file lists in this process (and the .npy files too with `disk=True`)."""
    with _LOCK:
        for key in [k for k in _ARRAYS if name is None or k[0] == name]:
            del _ARRAYS[key]
        forget(name)
    if disk:
        shutil.rmtree(cache_root() if name is None else cache_root() / name, ignore_errors=True)


def stored_array(src: Source, split: str, size: int) -> np.ndarray:
    """Every image of one stored split at `size`, decoded at most once per import (memory, then disk)."""
    key = (src.name, src.token, split, size)
    with _LOCK:
        if key in _ARRAYS:
            return _ARRAYS[key]
    path = cache_root() / src.name / f"{src.token}-{split}-{size}.npy"
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


def decode_one(src: Source, split: str, i: int, size: int | None) -> np.ndarray:
    """Image `i` of a stored split, decoded directly (not through the cache): for previews."""
    _count_decodes(1)
    if src.kind == LOCAL:
        return load_rgb(data_root() / src.name / src.files[split][i], size)
    img = raw_images(src, split)[i]
    return resize_array(img, size or img.shape[0])


def resize_array(img: np.ndarray, size: int) -> np.ndarray:
    """Grey or RGB array -> RGB size x size, resized with Pillow like core.images.load_rgb."""
    if img.shape[:2] != (size, size):
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


_NO_CACHE_SAID: set[str] = set()


def _say_no_cache(exc: OSError) -> None:
    root = str(cache_root())
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


def _decode_split(src: Source, split: str, size: int) -> np.ndarray:
    if src.kind == LOCAL:
        return _decode_files(data_root() / src.name, src.files[split], size)
    raw = raw_images(src, split)
    out = np.empty((len(raw), size, size, 3), np.uint8)
    for i in range(0, len(raw), 1024):
        out[i : i + 1024] = [resize_array(img, size) for img in raw[i : i + 1024]]
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
