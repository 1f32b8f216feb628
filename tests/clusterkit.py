"""Real cluster services for the Ray and MLflow tests, on 127.0.0.1 with free ports: a Ray head (`ray start
--head`), an MLflow tracking server on SQLite, TensorBoard. Each runs in its own session, so stopping it ends
every process it started (and nothing else)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
# Ray keeps a single machine on the loopback address (by default it advertises the host's own address)
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def require(*modules: str) -> None:
    """At a test module's top: the cluster extra (requirements-cluster.txt) is installed; missing, the module
    is skipped here and fails in CI (CI=true), like the real data."""
    import importlib.util

    import pytest

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        message = f"{', '.join(missing)} not installed: pip install -r requirements-cluster.txt"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], bool], timeout: float, proc: subprocess.Popen | None = None,
             log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"{what} did not come up in {timeout:.0f} s\n{tail}")


class Service:
    """A command in its own session, its output in `log`; stop() ends its whole process group."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **(env or {})}, start_new_session=True)

    def stop(self) -> None:
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.time() + grace
            while time.time() < deadline and _group_alive(self.proc.pid):
                self.proc.poll()
                time.sleep(0.2)
            if not _group_alive(self.proc.pid):
                return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class RayHead(Service):
    """`ray start --head --block` with `num_cpus` CPUs, every port free and on 127.0.0.1, with Ray's token
    authentication (its default from Ray 2.61) and a token of its own: whoever connects needs `env`."""

    def __init__(self, num_cpus: int = 2):
        # Ray's socket paths must stay under ~100 characters: a short folder of its own in /tmp
        self.temp_dir = Path(tempfile.mkdtemp(prefix="tlray-", dir="/tmp"))
        self.env = {**LOOPBACK_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        super().__init__([str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                          f"--port={port}", f"--num-cpus={num_cpus}", "--num-gpus=0",
                          "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={self.temp_dir}",
                          f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}",
                          f"--dashboard-agent-listen-port={free_port()}", "--object-store-memory=300000000"],
                         self.temp_dir / "head.log", self.env)
        wait_for("the Ray head", lambda: "Ray runtime started" in self.log.read_text(errors="replace"), 120,
                 self.proc, self.log)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class MlflowServer(Service):
    """`mlflow server` on a SQLite file, artifacts served by the server itself (no shared folder)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.uri = f"http://127.0.0.1:{port}"
        super().__init__([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                          "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
                          "--port", str(port), "--workers", "1"], folder / "mlflow.log")
        wait_for("the MLflow server", lambda: _get(f"{self.uri}/health") == "OK", 180, self.proc, self.log)


class TensorBoard(Service):
    def __init__(self, logdir: Path, folder: Path):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        super().__init__([str(BIN / "tensorboard"), "--logdir", str(logdir), "--host", "127.0.0.1",
                          "--port", str(port), "--reload_interval", "1"], folder / "tensorboard.log")
        wait_for("TensorBoard", lambda: _get(f"{self.url}/data/runs") is not None, 120, self.proc, self.log)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return None


def get_json(url: str) -> object:
    import json

    text = _get(url)
    return None if text is None else json.loads(text)
