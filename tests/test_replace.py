"""Issue 17, point 12: importing under an existing dataset name replaces nothing by accident: the CLI needs
--replace, the Datasets page a ticked 'Replace'; nothing is copied before the refusal."""

from __future__ import annotations

import json

from faultkit import page, run_main, toy_folder

from core import datasets


def test_cli_import_under_an_existing_name_needs_replace(data_dir, tmp_path, capsys):
    first = toy_folder(tmp_path / "one", n_train=2, n_test=1)
    second = toy_folder(tmp_path / "two", n_train=3, n_test=1)
    assert run_main(["datasets", "import", first], capsys).returncode == 0
    before = json.loads((data_dir / "toy" / "dataset.json").read_text())
    proc = run_main(["datasets", "import", second], capsys)
    assert proc.returncode == 2 and "already exists" in proc.stderr and "--replace" in proc.stderr, proc
    assert json.loads((data_dir / "toy" / "dataset.json").read_text()) == before, "the first import is untouched"
    assert not list(data_dir.glob(".import-*")), "nothing was copied before the refusal"
    assert run_main(["datasets", "import", second, "--replace"], capsys).returncode == 0
    assert datasets.describe("toy")["counts"]["train"]["blue"] == 3


def test_datasets_page_asks_before_replacing(data_dir, tmp_path):
    datasets.import_dataset(toy_folder(tmp_path / "one", n_train=2, n_test=1))
    second = toy_folder(tmp_path / "two", n_train=3, n_test=1)
    at = page("pages/datasets.py")
    at.text_input(key="path_source").set_value(str(second))
    next(b for b in at.button if b.label == "Import from path").click().run()
    assert not at.exception and [e.value for e in at.error] and "already exists" in at.error[0].value
    assert datasets.describe("toy")["counts"]["train"]["blue"] == 2
    at.checkbox(key="import_replace").check().run()
    next(b for b in at.button if b.label == "Import from path").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert json.loads((data_dir / "toy" / "dataset.json").read_text())["counts"]["train"]["blue"] == 3
