"""Issue 17, points 8 and 9: a full disk or an unusable data folder is one message naming the cause, on the
command line and on the Datasets page, never `OSError: [Errno ...]` or a traceback."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

import pytest
from faultkit import good_jpeg, make_zip, page, toy_files, toy_folder

from core.config import REPO_ROOT


def test_cli_import_onto_a_full_disk_says_so(tmp_path):
    """A real write failure: the process may not write files over 2 kB (RLIMIT_FSIZE, SIGXFSZ ignored)."""
    source = make_zip(tmp_path / "toy.zip", toy_files(good_jpeg(7)))

    def small_files_only():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    proc = subprocess.run([sys.executable, "-m", "core", "datasets", "import", str(source)], cwd=REPO_ROOT,
                          env={**os.environ, "TRANSFERLAB_DATA_DIR": str(tmp_path / "data")}, capture_output=True,
                          text=True, timeout=300, preexec_fn=small_files_only)
    last = proc.stderr.strip().splitlines()[-1]  # after the progress lines
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "Errno" not in proc.stderr, proc
    assert last.startswith("error: ") and "disk full" in last, last
    assert not (tmp_path / "data" / "toy").exists(), "nothing half-imported"


def test_datasets_page_import_into_an_unusable_data_root_is_one_message(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(blocker / "data"))  # every write under it fails
    source = toy_folder(tmp_path / "src", n_train=3, n_test=1)
    at = page("pages/datasets.py")
    at.text_input(key="path_source").set_value(str(source))
    next(b for b in at.button if b.label == "Import from path").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "The import failed: " in errors[0] and "Errno" not in errors[0], errors


def test_training_with_an_unwritable_cache_goes_on_without_it_and_says_so_once(data_dir, tmp_path, capsys,
                                                                              monkeypatch):
    import json

    from faultkit import run_main

    from core import datasets, runs

    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    datasets.import_dataset(toy_folder(tmp_path / "src", n_train=8, n_test=2))
    datasets.clear_cache()
    (data_dir / ".cache").write_text("a file where the cache folder would go: every cache write fails")
    cfg = tmp_path / "cfg.json"
    stage = {"dataset": "toy", "arch": "alexnet4", "input_size": 32, "epochs": 1, "batch_size": 4, "patience": 0}
    cfg.write_text(json.dumps({"stages": [stage]}))
    proc = run_main(["train", "--config", cfg], capsys)
    assert proc.returncode == 0, proc
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "decoded-image cache cannot be written" in notes[0], proc.stderr
    assert [r["status"] for r in runs.list_runs()] == ["done"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 kB file system (tmpfs): needs root with mount rights; elsewhere the test is skipped."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full_early_in_training_is_said_and_recorded(data_dir, tmp_path, tiny_disk, monkeypatch):
    import json

    from core import datasets, runs

    datasets.import_dataset(toy_folder(tmp_path / "src", n_train=8, n_test=2))
    (tiny_disk / "filler").write_bytes(b"\0" * 52 * 1024)  # room for the run's record, not for its epochs
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"stages": [{"dataset": "toy", "arch": "alexnet4", "input_size": 32, "epochs": 2,
                                           "batch_size": 4, "patience": 0}]}))
    env = {**os.environ, "TRANSFERLAB_DATA_DIR": str(data_dir), "TRANSFERLAB_RESULTS_DIR": str(tiny_disk / "r")}
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--config", str(cfg)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc
    assert "failed: the disk is full" in proc.stdout, proc.stdout
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tiny_disk / "r"))
    [row] = runs.list_runs()
    assert row["status"] == "failed" and row["error"].startswith("the disk is full"), row


def test_train_page_launch_into_an_unusable_results_root_is_one_message(data_dir, tmp_path, monkeypatch):
    from core import datasets

    datasets.import_dataset(toy_folder(tmp_path / "src", n_train=8, n_test=2))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(blocker / "results"))
    at = page("pages/train.py")
    assert not at.button(key="launch").disabled, [e.value for e in at.error]
    at.button(key="launch").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Launching the job failed: ") and "Errno" not in errors[0], errors
