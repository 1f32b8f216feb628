"""Start-up clean-up of what a killed process leaves behind: temp models, downloads, half-imported folders.

A file that names its process id (`.model.PID.tmp.keras`, `.downloads/tmp-PID-*.zip`) goes when that process is
gone; one that does not (an older version's `tmp*.zip`, `.import-*`, `.upload-*`) goes once it is older than
any live import could be.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from core import store
from core.config import data_root, results_root

STALE_AFTER_S = 6 * 3600
_PID_IN_NAME = (re.compile("^" + re.escape(store.TEMP_MODEL).replace(re.escape("{pid}"), r"(\d+)") + "$"),
                re.compile(r"^tmp-(\d+)-.*\.zip$"))


def _owner_gone(name: str) -> bool | None:
    """True/False when the name holds a process id; None when it does not."""
    for pattern in _PID_IN_NAME:
        found = pattern.match(name)
        if found:
            return not store.pid_alive(int(found[1]))
    return None


def _old(path: Path, now: float) -> bool:
    try:
        return now - path.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def stale_temp_files() -> list[Path]:
    """Every leftover under the data and results roots that no live process is writing."""
    now, found = time.time(), []
    model_folders = [results_root() / store.DEFAULT_MODEL_DIR, *(store.runs_dir().iterdir() if store.runs_dir().is_dir() else [])]
    for folder in model_folders:
        found += [p for p in folder.glob(store.TEMP_MODEL.format(pid="*")) if _owner_gone(p.name)] if folder.is_dir() else []
    downloads = data_root() / ".downloads"
    for path in downloads.glob("tmp*.zip") if downloads.is_dir() else []:
        gone = _owner_gone(path.name)
        if gone or (gone is None and _old(path, now)):
            found.append(path)
    for pattern in (".import-*", ".upload-*"):
        found += [p for p in data_root().glob(pattern) if _old(p, now)] if data_root().is_dir() else []
    return sorted(found)


def remove_stale_temp_files() -> list[Path]:
    """Remove them (best effort: a read-only root keeps them); returns what was removed."""
    removed = []
    for path in stale_temp_files():
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed
