"""What every page shares: cached calls into core and a few display helpers. No compute lives here.

Caches are keyed by the data / results roots, so two sessions (or two tests) pointed at different roots never
see each other's tables. Tables that change while the app runs have short TTLs; models are cached as
resources keyed by run id and the model file's modification time.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import config, device_probe, run_index, runs
from core.config import TransferLabError

RUN_FOLDERS_CHECK_S = 2.0
MAX_UPLOAD_MB = 200  # keep in step with .streamlit/config.toml server.maxUploadSize


def data_key() -> str:
    return str(config.data_root())


def results_key() -> str:
    return str(config.results_root())


# ---- environment -------------------------------------------------------------------------------------------


device_probe.start()  # at import: the first page renders while the probe looks for a GPU


def device_label() -> str | None:
    """The compute device the jobs will use: GPU names, a plain note that there is none, or None while the
    background probe is still looking."""
    return device_probe.answer()


# ---- runs and jobs -----------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=8)
def _run_rows(root: str, index_version: str) -> list[dict[str, Any]]:
    return run_index.load()


def run_rows() -> list[dict[str, Any]]:
    """Every run's summary row, newest first: cached until the run index changes (core.run_index). The run
    folders are checked for changes made behind the index's back at most every RUN_FOLDERS_CHECK_S."""
    try:
        version = run_index.sync(max_age_s=RUN_FOLDERS_CHECK_S)
    except (sqlite3.Error, OSError):
        return runs.list_runs()
    return run_index.with_live_status(_run_rows(results_key(), version))


@st.cache_data(ttl=2, show_spinner=False)
def _run(root: str, run_id: str) -> dict[str, Any]:
    return runs.get_run(run_id)


def get_run(run_id: str) -> dict[str, Any]:
    return _run(results_key(), run_id)


@st.cache_data(ttl=2, show_spinner=False)
def _history(root: str, run_id: str) -> list[dict[str, Any]]:
    return runs.read_history(run_id)


def history(run_id: str) -> list[dict[str, Any]]:
    return _history(results_key(), run_id)


def clear_run_caches() -> None:
    """After something was written into a run (an evaluation): read it fresh."""
    _run.clear()
    _run_rows.clear()


def has_default_model() -> bool:
    return runs.has_default_model()


def job_list() -> list[dict[str, Any]]:
    """Jobs are read fresh: the live view polls them."""
    from core import jobs

    return jobs.list_jobs()


def model_mtime(run_id: str) -> float:
    try:
        return runs.model_path(run_id).stat().st_mtime
    except (TransferLabError, OSError):
        return 0.0


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _classifier(root: str, run_id: str, mtime: float):
    from core import predict

    return predict.load_classifier(run_id)


def classifier(run_id: str):
    """A loaded, traced classifier for a run (cached by run id and the model file's mtime)."""
    return _classifier(results_key(), run_id, model_mtime(run_id))


@st.cache_data(show_spinner="Reading the model's layers…", max_entries=16)
def _layers(root: str, run_id: str, mtime: float) -> list[dict[str, Any]]:
    from core import models

    return models.describe_layers(runs.load_model(run_id))


def model_layers(run_id: str) -> list[dict[str, Any]]:
    return _layers(results_key(), run_id, model_mtime(run_id))


@st.cache_data(show_spinner="Rebuilding the architecture from the record…", max_entries=16)
def _record_layers(root: str, run_id: str) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    from core import record_layers

    return record_layers.layers_from_record(runs.get_run(run_id))


def layers_from_record(run_id: str) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """A run without a model file: its layers rebuilt (no weights) from its record, with the freeze applied."""
    return _record_layers(results_key(), run_id)


# ---- datasets ----------------------------------------------------------------------------------------------


@st.cache_data(ttl=15, show_spinner=False)
def _datasets(root: str) -> list[dict[str, Any]]:
    from core import datasets

    return datasets.list_datasets()


def dataset_rows() -> list[dict[str, Any]]:
    """Every known dataset: local imports, views and the Keras built-ins, with availability."""
    return _datasets(data_key())


def available_datasets() -> list[str]:
    return [d["name"] for d in dataset_rows() if d.get("available")]


@st.cache_data(ttl=60, show_spinner="Counting images…")
def _describe(root: str, name: str) -> dict[str, Any]:
    from core import datasets

    return datasets.describe(name)


def describe(name: str) -> dict[str, Any]:
    return _describe(data_key(), name)


def clear_dataset_caches() -> None:
    _datasets.clear()
    _describe.clear()


# ---- display helpers ---------------------------------------------------------------------------------------


def status_label(status: str | None) -> str:
    return status or "—"


def counts_frame(info: dict[str, Any]) -> pd.DataFrame:
    """describe() counts as a class x split table with totals."""
    splits = [s for s in ("train", "val", "test", "all") if info.get("counts", {}).get(s)]
    rows = [{"class": c, **{s: int(info["counts"][s].get(c, 0)) for s in splits}} for c in info.get("classes", [])]
    frame = pd.DataFrame(rows, columns=["class", *splits])
    if splits:
        frame["total"] = frame[splits].sum(axis=1)
    return frame


def pretty_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


def read_json_file(path: str | Path) -> Any:
    return config.read_json(Path(path))


def next_step(text: str, page: str, label: str, icon: str = ":material/arrow_forward:") -> None:
    """An info box saying what to do next, with a link to the page that does it."""
    st.info(text, icon=icon)
    st.page_link(page, label=label, icon=":material/arrow_forward:")


@dataclass
class Attempt:
    failed: bool = False  # an error was shown: the caller draws no more of that part


@contextmanager
def error_boundary(action: str, only_expected: bool = False,
                   show: Callable[[str], Any] | None = None) -> Iterator[Attempt]:
    """Whatever goes wrong inside is one message on the page, never a traceback (a rerun passes through).
    `only_expected`: just our errors and the system's (disk full, read-only, ...), as around a whole page,
    where a programming error must still show as one. `show`: how the message is drawn (st.error by default)."""
    attempt = Attempt()
    show = show or st.error
    try:
        yield attempt
    except TransferLabError as exc:
        attempt.failed = True
        show(str(exc))
    except OSError as exc:
        attempt.failed = True
        show(f"{action} failed: {config.describe_os_error(exc)}.")
    except Exception as exc:
        if only_expected:
            raise
        attempt.failed = True
        show(f"{action} failed ({type(exc).__name__}: {exc}).")
