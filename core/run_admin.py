"""Managing stored runs: delete (asking first when other runs continue from one), download as a zip, notes and
tags kept in the run's notes file (core.store.NOTES)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

from core import runs, store
from core.config import TransferLabError, atomic_write_json, read_json

MAX_NOTES_CHARS = 10_000
MAX_TAGS = 20
_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,29}$")


# ---- delete ------------------------------------------------------------------------------------------------


def children(run_id: str) -> list[str]:
    """The runs whose `parent_run` is this run (they continue from its model)."""
    return sorted(r["run_id"] for r in runs.list_runs() if r.get("parent_run") == run_id)


def check_delete(run_ids: Sequence[str]) -> dict[str, list[str]]:
    """Refuses the shipped model, unknown runs and running ones; returns, per run, the children that are not
    deleted with it (the caller asks before deleting those)."""
    if not run_ids:
        raise TransferLabError("Name at least one run to delete.")
    asked = set(run_ids)
    kept_children: dict[str, list[str]] = {}
    for run_id in run_ids:
        if run_id == store.DEFAULT_MODEL_DIR:
            raise TransferLabError("The shipped model `default` cannot be deleted (ship another run instead).")
        run = runs.get_run(run_id)
        if run["status"] in ("running", "queued"):
            raise TransferLabError(f"Run {run_id} is {run['status']}: cancel it before deleting it.")
        if others := [c for c in children(run_id) if c not in asked]:
            kept_children[run_id] = others
    return kept_children


def delete_runs(run_ids: Sequence[str], confirm: bool = False) -> list[str]:
    """Deletes the runs' folders; a run that others continue from needs `confirm`. Returns the deleted ids."""
    kept_children = check_delete(run_ids)
    if kept_children and not confirm:
        named = "; ".join(f"{p} (children: {', '.join(c)})" for p, c in kept_children.items())
        raise TransferLabError(f"Other runs continue from {named}: confirm (--yes) to delete anyway.")
    for run_id in dict.fromkeys(run_ids):
        runs.delete_run(run_id)
    return list(dict.fromkeys(run_ids))


# ---- download ----------------------------------------------------------------------------------------------


def run_zip(run_id: str) -> bytes:
    """The run's folder as a zip (record, metrics, history, confusion, evaluations, model when present)."""
    folder = store.model_dir(runs.get_run(run_id)["run_id"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in store.ZIP_FILES:
            if (folder / name).is_file():
                zf.write(folder / name, f"{run_id}/{name}")
        for path in store.evaluation_files(run_id):
            zf.write(path, f"{run_id}/{store.EVALUATIONS}/{path.name}")
    return buf.getvalue()


# ---- notes and tags ----------------------------------------------------------------------------------------


def read_notes(run_id: str) -> dict[str, Any]:
    """{"notes": str, "tags": [str]}; a missing or malformed file reads as empty."""
    data = read_json(store.model_dir(run_id) / store.NOTES, {})
    data = data if isinstance(data, dict) else {}
    notes = data.get("notes") if isinstance(data.get("notes"), str) else ""
    tags = [t for t in data.get("tags") or [] if isinstance(t, str) and _TAG_RE.match(t)] \
        if isinstance(data.get("tags"), list) else []
    return {"notes": notes, "tags": tags}


def validate_tag(tag: str) -> str:
    clean = tag.strip().lower() if isinstance(tag, str) else ""
    if not _TAG_RE.match(clean):
        raise TransferLabError(f"Invalid tag {tag!r}: use one short word (letters, digits, '-' or '_', at most "
                               "30 characters).")
    return clean


def write_notes(run_id: str, notes: str, tags: Iterable[str]) -> dict[str, Any]:
    """Replaces the run's notes and tags (written atomically); returns what was stored."""
    if run_id == store.DEFAULT_MODEL_DIR:
        raise TransferLabError("The shipped model `default` takes no notes: add them to the run it came from.")
    runs.get_run(run_id)
    if len(notes) > MAX_NOTES_CHARS:
        raise TransferLabError(f"Notes are limited to {MAX_NOTES_CHARS:,} characters.")
    clean = list(dict.fromkeys(validate_tag(t) for t in tags))
    if len(clean) > MAX_TAGS:
        raise TransferLabError(f"A run takes at most {MAX_TAGS} tags.")
    stored = {"notes": notes, "tags": clean}
    atomic_write_json(store.run_dir(run_id) / store.NOTES, stored)
    return stored


def update_notes(run_id: str, add: Iterable[str] = (), remove: Iterable[str] = (),
                 note: str | None = None) -> dict[str, Any]:
    """Adds and removes tags and, when given, replaces the note text."""
    current = read_notes(run_id)
    gone = {validate_tag(t) for t in remove}
    tags = [t for t in current["tags"] if t not in gone] + [validate_tag(t) for t in add]
    return write_notes(run_id, current["notes"] if note is None else note, tags)


def parse_tags(text: str) -> list[str]:
    """'a, b c' -> ['a', 'b', 'c'] (commas or spaces), each validated."""
    return list(dict.fromkeys(validate_tag(t) for t in re.split(r"[,\s]+", text) if t))


def with_tags(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary rows with a `tags` column (comma-separated text) read from each run's notes."""
    return [{**r, "tags": ", ".join(read_notes(r["run_id"])["tags"])} for r in rows]


def filter_by_tags(rows: Iterable[dict[str, Any]], chosen: Sequence[str]) -> list[dict[str, Any]]:
    """Rows holding any chosen tag; no choice keeps every row."""
    if not chosen:
        return list(rows)
    wanted = set(chosen)
    return [r for r in rows if wanted & set(filter(None, (r.get("tags") or "").split(", ")))]


def tag_options(rows: Iterable[dict[str, Any]]) -> list[str]:
    return sorted({t for r in rows for t in (r.get("tags") or "").split(", ") if t})
