"""Downloading a URL into the data root: a size limit, an overall deadline and a minimum average rate, and a temp
file named for its process (start-up clean-up removes a killed process's) that goes on every exit path."""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from core.config import TransferLabError, data_root

MAX_UNCOMPRESSED_BYTES = 20 * 1024**3  # refuse archives (and downloads) declaring more than this
Progress = Callable[[str, float], None]


def limit_text() -> str:
    return f"{MAX_UNCOMPRESSED_BYTES / 1024**3:g} GB"


DOWNLOAD_DEADLINE_S = 3600.0  # a whole download, however it trickles
DOWNLOAD_GRACE_S = 60.0  # after this, the average rate must stay at or above DOWNLOAD_MIN_RATE
DOWNLOAD_MIN_RATE = 20_000  # bytes per second
DOWNLOAD_PREFIX = "tmp-"  # + pid: start-up clean-up removes a killed process's leftovers


def download(url: str, progress: Progress | None = None, timeout: float = 30.0) -> Path:
    """Stream a URL into a temp file under `data_root()/.downloads/`; the caller deletes it. A server that is
    too slow overall (deadline) or on average (minimum rate) is given up on; the temp file goes on every exit."""
    report = progress or (lambda message, fraction: None)
    folder = data_root() / ".downloads"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f"{DOWNLOAD_PREFIX}{os.getpid()}-", suffix=".zip")
    tmp = Path(tmp_name)
    start = time.monotonic()
    try:
        # a fresh opener reads the proxy settings now (urlopen's global opener keeps the first ones it saw)
        with os.fdopen(fd, "wb") as out, urllib.request.build_opener().open(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            if total > MAX_UNCOMPRESSED_BYTES:
                raise TransferLabError(f"{url} is {total / 1e9:.1f} GB, over the {limit_text()} limit.")
            done, last = 0, 0.0
            report(f"Downloading {url}", 0.0)
            while chunk := resp.read1(1 << 20):  # what has arrived: a trickle cannot hold one read forever
                out.write(chunk)
                done += len(chunk)
                if done > MAX_UNCOMPRESSED_BYTES:
                    raise TransferLabError(f"{url} is larger than the {limit_text()} limit.")
                _check_pace(url, done, time.monotonic() - start)
                if time.monotonic() - last > 0.2:
                    last = time.monotonic()
                    report(f"Downloading {url}: {done / 1e6:.1f} MB", done / total if total else 0.0)
        report(f"Downloaded {url}: {done / 1e6:.1f} MB", 1.0)
        return tmp
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, urllib.error.URLError | OSError | ValueError):
            reason = getattr(exc, "reason", None) or exc
            raise TransferLabError(f"Download of {url} failed: {reason}.") from None
        raise


def _check_pace(url: str, done: int, elapsed: float) -> None:
    if elapsed > DOWNLOAD_DEADLINE_S:
        raise TransferLabError(f"Download of {url} took over {DOWNLOAD_DEADLINE_S:g} s ({done / 1e6:.1f} MB "
                               "so far); gave up.")
    if elapsed > DOWNLOAD_GRACE_S and done / elapsed < DOWNLOAD_MIN_RATE:
        raise TransferLabError(f"Download of {url} is too slow ({done / elapsed / 1000:.1f} kB/s on average, "
                               f"under {DOWNLOAD_MIN_RATE / 1000:g} kB/s); gave up.")
