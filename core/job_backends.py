"""Where a job's runs execute: `local` (this machine, one run at a time; the default) or `ray` (tasks on a Ray
cluster, core/ray_backend.py). Chosen by configuration (TRANSFERLAB_RAY_ADDRESS) or per job (the Train page,
`train --ray-address`), and stored in the job's `job.json`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from core.config import TransferLabError
from core.pipeline import Experiment

RAY_ADDRESS_ENV = "TRANSFERLAB_RAY_ADDRESS"
NAMES = ("local", "ray")
LOCAL: dict[str, Any] = {"name": "local"}


def ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def configured() -> dict[str, Any]:
    """The backend this process is configured for: Ray when TRANSFERLAB_RAY_ADDRESS is set, else local."""
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    return {"name": "ray", "address": address} if address else dict(LOCAL)


def make(name: str, address: str | None = None) -> dict[str, Any]:
    """A checked backend description; a Ray backend needs an address (host:port, ray://host:port, auto or local)."""
    if name == "local":
        return dict(LOCAL)
    if name != "ray":
        raise TransferLabError(f"Unknown job backend {name!r}; use one of {', '.join(NAMES)}.")
    address = (address or "").strip()
    if not address:
        raise TransferLabError(f"The Ray backend needs a cluster address (set {RAY_ADDRESS_ENV}, e.g. "
                               "127.0.0.1:6379 or ray://head:10001).")
    if any(c.isspace() for c in address):
        raise TransferLabError(f"Ray address {address!r} has spaces in it; write host:port or ray://host:port.")
    if not ray_installed():
        raise TransferLabError("The Ray backend needs Ray: pip install -r requirements-cluster.txt.")
    return {"name": "ray", "address": address}


def resolve(backend: dict[str, Any] | None) -> dict[str, Any]:
    """A job's stored backend (None: configured()), checked."""
    backend = configured() if backend is None else backend
    if not isinstance(backend, dict):
        raise TransferLabError("A job backend is an object like {\"name\": \"ray\", \"address\": \"host:port\"}.")
    return make(str(backend.get("name", "local")), backend.get("address"))


def label(backend: dict[str, Any] | None) -> str:
    backend = backend or LOCAL
    return f"Ray cluster at {backend['address']}" if backend.get("name") == "ray" else "this machine"


def run_experiment(backend: dict[str, Any] | None, exp: Experiment, command: str = "", job_id: str | None = None,
                   on_progress: Callable[[dict[str, Any]], None] | None = None,
                   on_run: Callable[[str, str], None] | None = None) -> list[dict[str, str]]:
    """experiment.run_experiment on the chosen backend: same arguments, same result (one row per run)."""
    if (backend or LOCAL).get("name") == "ray":
        from core import ray_backend

        return ray_backend.run_experiment(exp, resolve(backend)["address"], command=command, job_id=job_id,
                                          on_progress=on_progress, on_run=on_run)
    from core import experiment

    return experiment.run_experiment(exp, command=command, job_id=job_id, on_progress=on_progress, on_run=on_run)


def choose(name: str | None, address: str | None) -> dict[str, Any]:
    """`train --backend/--ray-address`: an address alone means Ray; nothing given means configured()."""
    if name is None and not address:
        return resolve(None)
    if name == "local":
        return dict(LOCAL)
    return make("ray", address or configured().get("address"))
