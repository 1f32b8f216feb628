"""Where things live, the one user-facing error type, and atomic file writes."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


class TransferLabError(Exception):
    """An error whose message is one clear sentence for the user (no traceback needed)."""


def data_root() -> Path:
    """Data root: env TRANSFERLAB_DATA_DIR, default <repo>/data."""
    return Path(os.environ.get("TRANSFERLAB_DATA_DIR") or REPO_ROOT / "data").resolve()


def results_root() -> Path:
    """Results root: env TRANSFERLAB_RESULTS_DIR, default <repo>/results."""
    return Path(os.environ.get("TRANSFERLAB_RESULTS_DIR") or REPO_ROOT / "results").resolve()


def shared_data_dir() -> Path:
    """The workplace's real data (../shared/data beside the repo); env TRANSFERLAB_SHARED_DATA overrides."""
    return Path(os.environ.get("TRANSFERLAB_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data").resolve()


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def validate_name(name: str, what: str = "name") -> str:
    """Dataset names and run ids are plain names: letters, digits, '.', '_', '-'; no '/', no '..'."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise TransferLabError(
            f"Invalid {what} {name!r}: use letters, digits, '.', '_' or '-' (no '/', no '..', at most 100 chars)."
        )
    return name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_record_json(path: Path, obj: Any) -> None:
    """A small record (a run's status) atomically; when the disk is full, over the existing file in place (its
    blocks are already allocated), so that a run can still say it failed for lack of space."""
    try:
        atomic_write_json(path, obj)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or not Path(path).is_file():
            raise
        data = (json.dumps(obj, indent=2, default=str) + "\n").encode("utf-8")
        try:
            with open(path, "r+b") as f:
                f.write(data)
                f.truncate()
        except OSError:
            raise exc from None


def read_json(path: Path, default: Any = None) -> Any:
    """Read JSON; a missing or unreadable file gives `default` (the store must survive torn writes)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


_OS_ERRORS = {
    errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is too large for this disk or process (disk full?)",
    errno.EROFS: "the folder is on a read-only file system", errno.EACCES: "permission denied",
    errno.EPERM: "permission denied", errno.ENAMETOOLONG: "a file name is too long (over 255 bytes)",
}


def describe_os_error(exc: OSError) -> str:
    """An OSError as words a user acts on: 'the disk is full (/data/x)'."""
    what = _OS_ERRORS.get(exc.errno or 0, exc.strerror or str(exc))
    return f"{what} ({exc.filename})" if exc.filename else what
