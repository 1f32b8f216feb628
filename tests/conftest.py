"""Shared fixtures: the workplace's real data (../shared/data) and data roots for tests.

`imported_data` imports the two shared zips and MNIST once per session (the Fruits-360 zip alone takes
~20 s); tests that only read those datasets use `real_data_root`. Tests that import or write anything
use `data_dir`, a fresh empty data root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from core.config import shared_data_dir

FRUITS_ZIP = "fruits-360-v2019.05.06.1-subset.zip"
CIFAR_ZIP = "cifar10-jpg-subset.zip"
MNIST_DIR = "mnist-t10k"


def missing_prerequisite(message: str) -> NoReturn:
    """Something a test needs is not on this machine: a failure in CI (CI=true), a skip with the reason elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def shared_data(*names: str) -> Path:
    """The real data folder (with `names` in it). Missing: pytest.fail in CI (CI=true), pytest.skip elsewhere."""
    root = shared_data_dir()
    missing = [n for n in names if not (root / n).exists()] if root.is_dir() else ["the folder itself"]
    if missing:
        missing_prerequisite(f"../shared/data not found: {root} (missing {', '.join(missing)})")
    return root


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    return shared_data()


@dataclass
class ImportedData:
    root: Path  # a data root holding fruits360, cifar10 and mnist
    reports: dict  # name -> core.datasets.ImportReport


@pytest.fixture(scope="session")
def imported_data(tmp_path_factory: pytest.TempPathFactory) -> ImportedData:
    """Both shared zips and MNIST t10k imported once into a session data root."""
    source = shared_data(FRUITS_ZIP, CIFAR_ZIP, MNIST_DIR)
    root = tmp_path_factory.mktemp("imported-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERLAB_DATA_DIR", str(root))
        from core import datasets

        reports = {}
        for item in (FRUITS_ZIP, CIFAR_ZIP, MNIST_DIR):
            report = datasets.import_dataset(source / item)
            reports[report.name] = report
    return ImportedData(root, reports)


@pytest.fixture
def real_data_root(imported_data: ImportedData, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session data root with the real datasets, as TRANSFERLAB_DATA_DIR (read-mostly: do not import into it)."""
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(imported_data.root))
    return imported_data.root


@pytest.fixture
def empty_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh clone: empty data and results roots (no datasets, no runs)."""
    for var, sub in (("TRANSFERLAB_DATA_DIR", "data"), ("TRANSFERLAB_RESULTS_DIR", "results")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    return tmp_path


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty data root as TRANSFERLAB_DATA_DIR."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(root))
    return root


# ---- CI proof that the real-data tests ran ------------------------------------------------------------------

REAL_DATA_FIXTURES = {"imported_data", "real_data_root", "shared_data_root"}
_real_data_passed = 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    global _real_data_passed
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.passed and REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
        _real_data_passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """`.ci/run` reads this count (TRANSFERLAB_REALDATA_REPORT) and fails when the real-data tests did not run."""
    path = os.environ.get("TRANSFERLAB_REALDATA_REPORT")
    if path:
        Path(path).write_text(str(_real_data_passed))
