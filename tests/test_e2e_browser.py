"""One real-browser test: `streamlit run app.py` in a subprocess, Debian's chromium driven by Playwright.

Opens every page, saving a screenshot of each, then uploads a real Fruits-360 image on Classify and waits for the
prediction. Waits are on page elements only. Screenshots go to test-artifacts/screenshots/ (git-ignored) so a
test run never rewrites tracked files; TRANSFERLAB_SCREENSHOTS_DIR=docs/screenshots regenerates the README's.
The server gets a temporary data root holding the real datasets and a copy of the committed results root (the
stored runs and the shipped model: what a fresh clone shows, and what the README's screenshots show);
TRANSFERLAB_E2E_RESULTS_DIR points it at another results root instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import missing_prerequisite
from faultkit import recorded_run
from test_app import fruit_image

from core.config import REPO_ROOT
from pages.registry import CLASSIFY, HOME, PAGES

pytestmark = [pytest.mark.e2e, pytest.mark.realdata, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = Path(os.environ.get("TRANSFERLAB_SCREENSHOTS_DIR") or REPO_ROOT / "test-artifacts" / "screenshots")
TIMEOUT_MS = 90_000
MAX_SHOT_HEIGHT = 4000
SWEEP = "e2e-freeze-sweep"  # not a committed sweep's name: the committed results hold paper-b-freeze-sweep
STORED_MODEL = "20261123-021557-fruits360-3-alexnet4-5f5d"  # the committed alexnet4 run that keeps its model
# Nothing running, no lazy component still loading (skeletons), no element left over from the previous run.
SETTLED_JS = """() => !document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-testid^="stSkeleton"], [data-testid="stAppSkeleton"], [data-stale="true"]')"""
CONTENT_HEIGHT_JS = """() => Math.max(document.body.scrollHeight,
    ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stMainBlockContainer"]')]
        .map(e => e.scrollHeight))"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90.0) -> None:
    """Poll Streamlit's health endpoint until the server answers (or died / timed out)."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never goes through a proxy
    deadline = time.monotonic() + timeout_s
    last_error: OSError | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with direct.open(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError as e:
            last_error = e
            time.sleep(0.3)
    raise AssertionError(
        f"streamlit did not become healthy in {timeout_s}s (last error: {last_error!r}):\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        missing_prerequisite(f"{CHROMIUM} not found (apt-get install -y chromium)")
    return CHROMIUM


def sweep_records(results: Path) -> None:
    """A small freeze sweep's records (no models), so the Results page's Sweeps view has something to draw."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLAB_RESULTS_DIR", str(results))
        for k, (freeze, acc, wall) in enumerate((("none", 0.95, 30.0), ("none", 0.96, 33.0), ("first:2", 0.96, 20.0),
                                                 ("first:2", 0.97, 21.0), ("first:4", 0.94, 12.0))):
            run_id = recorded_run(f"20260101-00000{k}-e2e-sweep", "transfer", wall, acc, preset=SWEEP,
                                  stage={"freeze": freeze, "sweep": ["freeze"]})
            config = results / "runs" / run_id / "config.json"  # launch order, whatever else the root holds
            config.write_text(json.dumps({**json.loads(config.read_text()), "created": f"2026-01-01T00:00:0{k}+00:00"}))


@pytest.fixture(scope="module")
def server(imported_data, tmp_path_factory):
    """`streamlit run app.py` on a free port of 127.0.0.1 with the real data and trained runs."""
    given = os.environ.get("TRANSFERLAB_E2E_RESULTS_DIR")
    results = Path(given) if given else tmp_path_factory.mktemp("e2e") / "results"
    if not given:  # a copy of what git tracks (a fresh clone's results): the server may write there
        tracked = subprocess.run(["git", "ls-files", "-z", "results"], cwd=REPO_ROOT, capture_output=True,
                                 check=True).stdout.decode().split("\0")
        for rel in filter(None, tracked):
            target = results / Path(rel).relative_to("results")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / rel, target)
        sweep_records(results)
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "TRANSFERLAB_DATA_DIR": str(imported_data.root), "TRANSFERLAB_RESULTS_DIR": str(results)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def page(chromium_path, server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        yield page
        context.close()
        browser.close()


def settle(page) -> None:
    """Wait until the script run is over and every element is drawn."""
    page.wait_for_function(SETTLED_JS)


def shoot(page, name: str) -> None:
    """Grow the window to the page's content (Streamlit scrolls inside its main block), then screenshot."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = min(MAX_SHOT_HEIGHT, int(page.evaluate(CONTENT_HEIGHT_JS)) + 40)
    page.set_viewport_size({"width": 1400, "height": max(1000, height)})
    settle(page)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


# what each page shows once drawn, and whether a Plotly chart is among it (Classify: its own test below)
DRAWN = {"home": ("Latest finished runs", False), "datasets": ("Images per class and split", True),
         "train": ("2 · Jobs", False), "results": ("Scratch vs transfer", True)}


def test_every_page_is_opened():
    assert set(DRAWN) | {CLASSIFY.url_path} == {p.url_path for p in PAGES}


@pytest.mark.parametrize("entry", [p for p in PAGES if p.url_path in DRAWN], ids=lambda p: p.url_path)
def test_page_opens_in_a_real_browser(page, server, entry):
    name = entry.url_path
    marker, chart = DRAWN[name]
    page.goto(f"{server}/{'' if entry == HOME else name}")
    page.get_by_text(marker, exact=False).first.wait_for()
    if chart:
        page.locator(".js-plotly-plot").first.wait_for()
    settle(page)
    assert page.get_by_text("Traceback").count() == 0
    assert page.get_by_text("CPU — no GPU found").count() + page.get_by_text("Compute:").count() >= 1
    shoot(page, name)


def test_classify_a_real_image_in_a_real_browser(page, server, imported_data):
    image = fruit_image(imported_data.root, "Pear")
    page.goto(f"{server}/{CLASSIFY.url_path}")
    upload = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    upload.wait_for(state="attached")
    upload.set_input_files(str(image))
    prediction = page.get_by_text("Prediction:", exact=False).first
    prediction.wait_for()
    text = prediction.inner_text()
    assert any(c in text for c in ("apple", "pear", "noise")), text
    page.get_by_text("model latency", exact=False).first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    settle(page)
    assert page.get_by_text("Traceback").count() == 0
    shoot(page, "classify")


def open_app(page, server: str) -> None:
    """Home first: a fresh server's first session that opens a page's URL directly runs that file alone, with
    Streamlit's own list of every pages/*.py in the sidebar, instead of app.py's navigation."""
    page.goto(server)
    page.get_by_text(DRAWN["home"][0], exact=False).first.wait_for()
    settle(page)


def pick(page, widget: str, label: str, option: str) -> None:
    """Choose `option` in the selectbox or multiselect (`widget`: its data-testid) labelled `label`."""
    box = page.locator(f'[data-testid="{widget}"]').filter(has=page.get_by_text(label, exact=True)).first
    box.locator("input").first.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=False).first.click()
    page.keyboard.press("Escape")
    settle(page)


def test_results_tuning_views_in_a_real_browser(page, server):
    """Sweeps, two runs side by side, and where the stored alexnet4 model errs, with Grad-CAM."""
    open_app(page, server)
    page.goto(f"{server}/results")
    page.get_by_text("Scratch vs transfer", exact=False).first.wait_for()
    settle(page)
    pick(page, "stSelectbox", "Sweep", SWEEP)
    page.get_by_text("no spread for 1 of 3 values", exact=False).first.wait_for()
    pick(page, "stMultiSelect", "Runs", "20260101-000000-e2e-sweep")
    pick(page, "stMultiSelect", "Runs", "20260101-000004-e2e-sweep")
    page.get_by_text("field(s) differ (highlighted)", exact=False).first.wait_for()
    pick(page, "stSelectbox", "Run", STORED_MODEL)
    page.get_by_role("tab", name="Where it errs").click()
    page.get_by_role("button", name="Find the wrong Test images").click()
    page.get_by_text("Test images wrong", exact=False).first.wait_for()
    page.get_by_text("why ", exact=False).first.wait_for()
    settle(page)
    assert page.get_by_text("Traceback").count() == 0
    assert page.locator('[data-testid="stImage"]').count() >= 4, "a gallery, the image and two Grad-CAM overlays"
    shoot(page, "results-tuning")


def test_train_lr_finder_in_a_real_browser(page, server):
    open_app(page, server)
    page.goto(f"{server}/train")
    page.get_by_text("2 · Jobs", exact=False).first.wait_for()
    settle(page)
    steps = page.get_by_role("spinbutton", name="Steps")
    steps.fill("20")
    steps.press("Enter")
    settle(page)
    page.get_by_role("button", name="LR finder").click()
    page.get_by_text("Suggested", exact=False).first.wait_for()
    use = page.get_by_role("button", name=re.compile(r"^Use \d"))
    rate = use.inner_text().removeprefix("Use ").strip()
    use.click()
    page.get_by_text(f"trains at {rate}", exact=False).first.wait_for()
    settle(page)
    assert page.get_by_text("Traceback").count() == 0
    shoot(page, "train-lr-finder")
