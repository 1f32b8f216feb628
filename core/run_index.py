"""A summary index of the run store: `runs.list_runs()` rows kept in SQLite in the results root
(`core.store.index_path()`).

Each row is stored with its folder's signature (the folder's mtime and the identity of its status and metrics
files). `sync()` stats every folder, rebuilds only the rows whose signature changed (a folder written
behind the index's back included) and drops rows whose folder is gone; a missing, corrupt or older-schema index
is rebuilt. The run store's writers call `refresh()` after each write. SQLite transactions keep the index
whole; when it cannot be used at all (a read-only root), rows are read from the folders as before.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from core import records, store
from core.config import TransferLabError
from core.run_records import summary_row
from core.store import index_path

SCHEMA = "2"
SIGNED_FILES = (store.STATUS, store.METRICS)

Row = dict[str, Any]
_last_scan: dict[Path, float] = {}  # index file -> time.monotonic() of this process's last full check


def _signature(folder: Path, folder_mtime_ns: int) -> str:
    parts = [str(folder_mtime_ns)]
    for name in SIGNED_FILES:
        try:
            st = os.stat(folder / name)
            parts.append(f"{st.st_ino}.{st.st_mtime_ns}.{st.st_size}")
        except OSError:
            parts.append("-")
    return ":".join(parts)


def _scan() -> dict[str, str]:
    """Every run folder's signature, by run id."""
    found: dict[str, str] = {}
    try:
        entries = os.scandir(store.runs_dir())
    except (FileNotFoundError, NotADirectoryError):
        return found
    with entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                found[entry.name] = _signature(Path(entry.path), entry.stat().st_mtime_ns)
            except OSError:
                continue
    return found


def _build(run_id: str) -> Row | None:
    try:
        return summary_row(records.get_run(run_id))
    except TransferLabError:
        return None


def _connect() -> sqlite3.Connection:
    con = sqlite3.connect(index_path(), timeout=30, isolation_level=None)
    try:
        con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        schema = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if schema is None or schema[0] != SCHEMA:
            con.execute("BEGIN IMMEDIATE")
            con.execute("DROP TABLE IF EXISTS runs")
            con.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, sig TEXT, status TEXT, created TEXT, row TEXT)")
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?), ('version', '0'), ('generation', ?)",
                        (SCHEMA, secrets.token_hex(8)))
            con.execute("COMMIT")
    except sqlite3.DatabaseError:
        con.close()
        raise
    return con


def _open() -> sqlite3.Connection:
    """The index, created when missing and recreated when it is not a readable SQLite file."""
    try:
        return _connect()
    except sqlite3.DatabaseError:
        index_path().unlink(missing_ok=True)
        return _connect()


def _bump(con: sqlite3.Connection) -> None:
    con.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")


def _store(con: sqlite3.Connection, run_id: str, sig: str) -> None:
    row = _build(run_id)
    if row is None:
        con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
    else:
        con.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
                    (run_id, sig, row["status"], row.get("created") or "", json.dumps(row, default=str)))


def sync(max_age_s: float = 0.0) -> str:
    """Bring the index up to date with the folders; returns its version (see `_version`).
    Within `max_age_s` of this process's last full check the folders are not looked at again: writes through
    the run store are in the index already, so only a change made behind its back waits that long."""
    path = index_path()
    with closing(_open()) as con:
        if time.monotonic() - _last_scan.get(path, -math.inf) < max_age_s:
            return _version(con)
        _last_scan[path] = time.monotonic()
        return _sync(con)


def _version(con: sqlite3.Connection) -> str:
    """Changes whenever a row does, and with every rebuilt index file (its random generation)."""
    meta = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'version')").fetchall())
    return f"{meta.get('generation')}.{meta.get('version')}"


def _sync(con: sqlite3.Connection) -> str:
    on_disk = _scan()
    indexed = dict(con.execute("SELECT run_id, sig FROM runs").fetchall())
    stale = [run_id for run_id, sig in on_disk.items() if indexed.get(run_id) != sig]
    gone = [run_id for run_id in indexed if run_id not in on_disk]
    if stale or gone:
        con.execute("BEGIN IMMEDIATE")
        try:
            for run_id in stale:
                _store(con, run_id, on_disk[run_id])
            con.executemany("DELETE FROM runs WHERE run_id = ?", [(g,) for g in gone])
            _bump(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return _version(con)


def refresh(run_id: str) -> None:
    """After a write into one run's folder: its row again (or none, when the folder is gone). A missing index
    is left for the next reader to build (a training process does not spend disk on it)."""
    folder = store.run_dir(run_id)
    if not index_path().is_file():
        return
    try:
        with closing(_open()) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                if folder.is_dir():
                    _store(con, run_id, _signature(folder, folder.stat().st_mtime_ns))
                else:
                    con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
                _bump(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    except (sqlite3.Error, OSError):
        pass  # the next sync() sees the folder's new signature and rebuilds the row


def load() -> list[Row]:
    """The indexed rows, newest first, as stored (see `with_live_status`)."""
    with closing(_open()) as con:
        stored = con.execute("SELECT row FROM runs ORDER BY created DESC").fetchall()
    return [json.loads(r[0]) for r in stored]


def with_live_status(rows: list[Row]) -> list[Row]:
    """A `running` row is read again: its process may have ended since (see `records.effective_status`)."""
    return [(_build(r["run_id"]) or r) if r["status"] == "running" else r for r in rows]


def rows() -> list[Row]:
    """`runs.list_runs()`: every run's summary row, newest first, through the index."""
    try:
        with closing(_open()) as con:
            _sync(con)
        return with_live_status(load())
    except (sqlite3.Error, OSError):
        built = (_build(run_id) for run_id in _scan())
        return sorted((r for r in built if r is not None), key=lambda r: r.get("created") or "", reverse=True)
