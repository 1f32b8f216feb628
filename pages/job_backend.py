"""The Train page's choice of where a job's runs execute: this machine, or a Ray cluster (core/job_backends.py)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import job_backends
from core.config import TransferLabError

LABELS = {"local": "this machine (one run at a time)", "ray": "a Ray cluster (runs in parallel)"}


def picker() -> dict[str, Any] | None:
    """The backend for the next launch; None while the Ray address is not usable (Launch stays off)."""
    configured = job_backends.configured()
    c1, c2 = st.columns([1, 2])
    choice = c1.selectbox("Run on", list(LABELS), index=list(LABELS).index(configured["name"]),
                          format_func=LABELS.get, key="train_backend",
                          help=f"Set {job_backends.RAY_ADDRESS_ENV} to preselect a Ray cluster. On Ray, the repeats "
                               "of a last stage and independent pipelines run at the same time.")
    if choice == "local":
        return dict(job_backends.LOCAL)
    address = c2.text_input("Ray cluster address", value=configured.get("address", ""), key="train_ray_address",
                            placeholder="127.0.0.1:6379, ray://head:10001, auto or local")
    try:
        return job_backends.make("ray", address)
    except TransferLabError as exc:
        c2.error(str(exc))
        return None
