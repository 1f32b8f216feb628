"""Issue 17, points 4 and 12: a URL that trickles is given up on (overall deadline, minimum average rate), the
temp download goes on every exit path, and what a killed process left behind is cleaned at start-up."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from faultkit import page

from core import cleanup, data_import, downloads, runs
from core.config import TransferLabError
from core.run_records import RunRecord


class Trickle(http.server.BaseHTTPRequestHandler):
    """A zip 'download' that sends `step` bytes every `every` seconds, for at most 20 s."""

    step, every = 1, 0.2

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "100000000")
        self.end_headers()
        end = time.monotonic() + 20
        try:
            while time.monotonic() < end:
                self.wfile.write(b"\0" * self.step)
                self.wfile.flush()
                time.sleep(self.every)
        except OSError:
            pass  # the client gave up

    def log_message(self, *args):
        pass


@pytest.fixture
def trickle_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data.zip"
    server.shutdown()
    server.server_close()


def leftovers(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / ".downloads").glob("*")) if (data_dir / ".downloads").exists() else []


def test_a_trickling_url_is_given_up_on_for_its_rate(data_dir, trickle_url, monkeypatch):
    monkeypatch.setattr(downloads, "DOWNLOAD_GRACE_S", 1.0)
    monkeypatch.setattr(downloads, "DOWNLOAD_MIN_RATE", 1000)
    t0 = time.monotonic()
    with pytest.raises(TransferLabError, match="too slow"):
        data_import.import_dataset(trickle_url)
    assert time.monotonic() - t0 < 10 and leftovers(data_dir) == []


def test_a_url_past_its_deadline_is_given_up_on(data_dir, trickle_url, monkeypatch):
    monkeypatch.setattr(downloads, "DOWNLOAD_DEADLINE_S", 1.0)
    monkeypatch.setattr(downloads, "DOWNLOAD_MIN_RATE", 0)
    with pytest.raises(TransferLabError, match="took over 1 s"):
        downloads.download(trickle_url)
    assert leftovers(data_dir) == []


def test_an_interrupted_download_leaves_no_temp_file(data_dir, trickle_url):
    def interrupt(message, fraction):
        if "MB" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        downloads.download(trickle_url, interrupt)
    assert leftovers(data_dir) == []


def test_leftovers_of_killed_processes_are_cleaned_at_start_up(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = data_dir / ".downloads"
    folder.mkdir()
    killed = folder / f"tmp-{dead.pid}-abc.zip"
    live = folder / f"tmp-{os.getpid()}-def.zip"
    legacy = folder / "tmpq1w2e3.zip"  # an older version's name, a day old
    for path in (killed, live, legacy):
        path.write_bytes(b"PK")
    os.utime(legacy, (time.time() - 86400, time.time() - 86400))
    run_id = runs.create_run(RunRecord(stage={"dataset": "toy", "arch": "alexnet4"}))
    half = runs.run_dir(run_id) / f".model.{dead.pid}.tmp.keras"
    half.write_bytes(b"PK\x03\x04 cut short")
    assert cleanup.stale_temp_files() == sorted([killed, legacy, half])
    page("pages/home.py")  # the app's start-up
    assert not killed.exists() and not legacy.exists() and not half.exists() and live.exists()


def test_cancel_on_the_page_stops_the_import_and_keeps_nothing(data_dir, trickle_url):
    """The Datasets page's Cancel: a click makes Streamlit raise RerunException inside the running script, here
    at the import's next progress report. The download stops, and neither the temp file nor a dataset is left."""
    from streamlit.runtime.scriptrunner_utils.exceptions import RerunException

    from core import datasets

    def clicked(message, fraction):
        if "MB" in message:
            raise RerunException(None)

    with pytest.raises(RerunException):
        datasets.import_dataset(trickle_url, name="slow", progress=clicked)
    assert leftovers(data_dir) == []
    assert "slow" not in [d["name"] for d in datasets.list_datasets()]
