"""Issue 6, security: names cannot climb out of the roots, pages and commands touch only the data and results
roots (or a path the user typed into a server-path field), models load with safe_mode, nothing unpickles user
data, the server is local by default and the upload limit is set and stated.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import keras
import numpy as np
import pytest
from faultkit import (
    TOY_CLASSES,
    TOY_SIZE,
    assert_one_line_error,
    good_jpeg,
    make_zip,
    model_run,
    page,
    run_cli_many,
    toy_files,
    toy_folder,
    tree,
)

from core import datasets, jobs, predict, runs, validation
from core.config import REPO_ROOT, TransferLabError
from core.pipeline import Experiment

BAD_NAMES = ("../x", "../../etc", "a/b", "..", "/etc/passwd", ".hidden", "x\x00y", "")


# ---- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_source(tmp_path_factory) -> Path:
    return toy_folder(tmp_path_factory.mktemp("security-src"), n_train=6, n_test=2)


@pytest.fixture
def roots(tmp_path, monkeypatch, toy_source):
    """A data root with the toy dataset, an empty results root and, beside them, a folder nothing may touch."""
    data, results, outside = tmp_path / "data", tmp_path / "results", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("must survive")
    monkeypatch.setenv("TRANSFERLAB_DATA_DIR", str(data))
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(results))
    datasets.import_dataset(toy_source)
    return tmp_path


def lambda_model(sentinel: Path) -> keras.Model:
    """A model whose Lambda layer touches `sentinel` whenever its code runs (so loading it would show)."""
    touch = eval(f"lambda t: (__import__('pathlib').Path({str(sentinel)!r}).touch(), t)[1]")  # path baked in
    inp = keras.Input((TOY_SIZE, TOY_SIZE, 3))
    x = keras.layers.Lambda(touch)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(len(TOY_CLASSES), activation="softmax")(x))


# ---- names ---------------------------------------------------------------------------------------------------


def name_checks(good_zip: Path) -> dict:
    """Entry point -> a call taking a name; each must refuse every BAD_NAME with 'Invalid ...'."""
    return {
        "runs.get_run": runs.get_run,
        "runs.request_cancel": runs.request_cancel,
        "runs.delete_run": runs.delete_run,
        "runs.load_model": runs.load_model,
        "jobs.get_job": jobs.get_job,
        "jobs.cancel_job": jobs.cancel_job,
        "datasets.describe": datasets.describe,
        "datasets.load_split_arrays": lambda n: datasets.load_split_arrays(n, "train", 32),
        "datasets.import_dataset(name=)": lambda n: datasets.import_dataset(good_zip, name=n),
        "datasets.save_view": lambda n: datasets.save_view({"name": n, "source": "toy",
                                                           "mapping": {"a": ["blue"], "b": ["red"]}}),
        "datasets.load_view": datasets.load_view,
        "datasets.delete_view": datasets.delete_view,
        "predict.resolve_model": predict.resolve_model,
        "predict.load_classifier": predict.load_classifier,
        "predict.export_model": lambda n: predict.export_model(n, "keras"),
    }


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_every_name_taking_entry_point_refuses_path_tricks(roots, bad):
    good_zip = make_zip(roots / "good.zip", toy_files(good_jpeg()))
    before = tree(roots)
    for where, call in name_checks(good_zip).items():
        with pytest.raises(TransferLabError) as err:
            call(bad)
        message = str(err.value)
        assert ("Invalid" in message or "Unknown dataset" in message) and "\n" not in message, (where, message)
    assert tree(roots) == before, "nothing created, moved or deleted anywhere"
    assert (roots / "outside" / "keep.txt").read_text() == "must survive"


def test_a_stage_cannot_name_a_parent_outside_the_store(roots):
    exp = Experiment.from_dict({"stages": [{"dataset": "../data", "source": "run:../../outside", "freeze": "first:1",
                                            "arch": "alexnet4"}]})
    problems = "\n".join(validation.validate_experiment(exp))
    assert "unknown dataset '../data'" in problems and "Invalid run id '../../outside'" in problems


def test_cli_refuses_path_tricks_in_one_line(roots):
    good_zip = make_zip(roots / "good.zip", toy_files(good_jpeg()))
    image = roots / "image.jpg"
    image.write_bytes(good_jpeg())
    cfg = roots / "cfg.json"
    cfg.write_text(json.dumps({"stages": [{"dataset": "toy", "source": "run:../../etc", "freeze": "first:1"}]}))
    sentinel = roots / "outside" / "lambda-ran"
    lam = model_run(model=lambda_model(sentinel))
    sentinel.unlink()
    before = tree(roots)
    out = run_cli_many({
        "runs cancel": ["runs", "cancel", "../../etc"],
        "runs show": ["runs", "show", "../x"],
        "jobs cancel": ["jobs", "cancel", "../x"],
        "import --name": ["datasets", "import", str(good_zip), "--name", "../evil"],
        "datasets show": ["datasets", "show", "../evil"],
        "classify --model": ["classify", str(image), "--model", "../x"],
        "train source": ["train", "--config", str(cfg)],
        "classify lambda": ["classify", str(image), "--model", lam],
    })
    assert_one_line_error(out["runs cancel"], "Invalid run id '../../etc'")
    assert_one_line_error(out["runs show"], "Invalid run id '../x'")
    assert_one_line_error(out["jobs cancel"], "Invalid job id '../x'")
    assert_one_line_error(out["import --name"], "Invalid dataset name '../evil'")
    assert_one_line_error(out["datasets show"], "Invalid dataset name '../evil'")
    assert_one_line_error(out["classify --model"], "Invalid run id '../x'")
    assert_one_line_error(out["train source"], "Invalid run id '../../etc'")
    assert_one_line_error(out["classify lambda"], f"The model file of run {lam} was refused", "safe_mode=True")
    assert tree(roots) == before and not sentinel.exists()
    assert not (roots / "evil").exists() and not (roots / "data" / "evil").exists()


def test_datasets_page_refuses_bad_names(roots):
    good_zip = make_zip(roots / "good.zip", toy_files(good_jpeg()))
    at = page("pages/datasets.py")
    at.file_uploader(key="zip_upload").set_value(("good.zip", good_zip.read_bytes(), "application/zip"))
    at.text_input(key="zip_name").input("../evil")
    at.form_submit_button[0].click().run()
    assert not at.exception and [e.value for e in at.error] == [
        "Invalid dataset name '../evil': use letters, digits, '.', '_' or '-' (no '/', no '..', at most 100 chars)."]
    at.text_input(key="view_name").input("../evil-view").run()
    at.button(key="view_save").click().run()
    assert not at.exception
    assert any(str(e.value).startswith("Invalid view name '../evil-view'") for e in at.error), at.error
    assert tree(roots / "outside") == ["keep.txt"] and not (roots / "evil").exists()
    assert sorted(p.name for p in (roots / "data").iterdir() if not p.name.startswith(".")) == ["toy"]


# ---- the roots -------------------------------------------------------------------------------------------------


def test_an_uploaded_zip_is_unpacked_inside_the_data_root_only(roots, monkeypatch):
    systmp = roots / "system-tmp"  # what tempfile would use by default
    systmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(systmp))
    good_zip = make_zip(roots / "outside" / "upload.zip", toy_files(good_jpeg()))
    at = page("pages/datasets.py")
    at.checkbox(key="import_replace").check()  # an earlier test of this module imported 'toy' already
    at.file_uploader(key="zip_upload").set_value(("upload.zip", good_zip.read_bytes(), "application/zip"))
    at.form_submit_button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    meta = json.loads((roots / "data" / "toy" / "dataset.json").read_text())  # 'toy': the zip's top folder
    source = Path(meta["source"])
    assert source.name == "upload.zip" and source.parent.parent == roots / "data", source
    assert not source.parent.exists(), "the temp folder is gone"
    assert [p for p in systmp.rglob("*") if p.suffix == ".zip"] == [], "no upload copy outside the data root"
    assert tree(roots / "outside") == ["keep.txt", "upload.zip"]


def test_classify_page_reads_uploads_in_memory(roots):
    model_run()
    before = tree(roots)
    at = page("pages/classify.py")
    at.file_uploader[0].set_value(("photo.jpg", good_jpeg(5), "image/jpeg")).run()
    assert not at.exception and not at.error
    assert any("Prediction:" in str(m.value) for m in at.markdown)
    added = [f for f in tree(roots) if f not in before]
    index = [f for f in added if f.startswith("results/.run_index.sqlite")]  # the run list's summary index
    assert all(good_jpeg(5) not in (roots / f).read_bytes() for f in index)
    added = [f for f in added if f not in index]
    files = [f for f in added if (roots / f).is_file()]
    assert set(added) - set(files) <= {"data/.cache", "data/.cache/litert"}
    assert len(files) == 1 and files[0].startswith("data/.cache/litert/") and files[0].endswith(".tflite"), \
        "classifying writes nothing but the model's LiteRT conversion"
    assert good_jpeg(5) not in (roots / files[0]).read_bytes(), "no upload bytes kept"


# ---- models load with safe_mode ---------------------------------------------------------------------------------


def test_a_lambda_layer_model_is_refused_and_never_run(roots):
    sentinel = roots / "outside" / "lambda-ran"
    run_id = model_run(model=lambda_model(sentinel))
    assert sentinel.exists(), "building the model ran the lambda (here, in the test): the sentinel works"
    sentinel.unlink()
    with pytest.raises(TransferLabError, match=r"was refused: it holds Python code \(a Lambda layer\)"):
        runs.load_model(run_id)
    with pytest.raises(TransferLabError, match="safe_mode=True"):
        predict.load_classifier("latest")
    assert not sentinel.exists(), "the lambda's code never ran"
    at = page("pages/classify.py")
    assert [e.value for e in at.error] == [f"The model file of run {run_id} was refused: it holds Python code (a "
                                           "Lambda layer) and models are only loaded with safe_mode=True."]
    assert not at.file_uploader and not sentinel.exists()


SOURCE_FILES = sorted([*(REPO_ROOT / "core").glob("*.py"), *(REPO_ROOT / "pages").glob("*.py"), REPO_ROOT / "app.py"])
FORBIDDEN = {
    r"\bpickle\.loads?\(": "unpickling",
    r"\b(c|_)?[Pp]ickle\b.*\bUnpickler\b": "unpickling",
    r"allow_pickle\s*=\s*True": "np.load of pickles",
    r"\bjoblib\.load\(": "joblib unpickles",
    r"\bdill\b": "dill unpickles",
    r"\bmarshal\.loads?\(": "marshal",
    r"\byaml\.(unsafe_)?load\((?![^)]*SafeLoader)": "yaml.load without SafeLoader",
    r"safe_mode\s*=\s*False": "unsafe model loading",
    r"enable_unsafe_deserialization": "unsafe model loading",
    r"(?<![\w.])eval\(|(?<![\w.])exec\(": "eval/exec",
    r"\btorch\.load\(": "torch.load unpickles",
}
# The one Unpickler: ImageNet weights in legacy PyTorch files, read through a find_class allow-list (tensor
# rebuild, storage types, OrderedDict); crafted payloads are refused in test_efficientnet_lite.
RESTRICTED_UNPICKLER = ("core/torch_weights.py", r"\b(c|_)?[Pp]ickle\b.*\bUnpickler\b")
NP_LOAD_ALLOWED = {  # np.load calls without allow_pickle=False, each with the reason it is safe
    ("core/data_cache.py", "np.load(path, mmap_mode=\"r\")"):
        "the decoded-image cache core wrote itself; numpy's default allow_pickle=False refuses a pickle anyway "
        "(test_a_pickle_in_the_decoded_cache_is_never_unpickled)",
}


def test_nothing_unpickles_or_runs_user_data():
    found = []
    for path in SOURCE_FILES:
        rel = str(path.relative_to(REPO_ROOT))
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            found += [f"{rel}:{n}: {why}: {line.strip()}" for pattern, why in FORBIDDEN.items()
                      if re.search(pattern, code) and (rel, pattern) != RESTRICTED_UNPICKLER]
            for call in re.findall(r"np\.load\([^)]*\)", code):
                if "allow_pickle=False" not in call and (rel, call) not in NP_LOAD_ALLOWED:
                    found.append(f"{rel}:{n}: np.load without allow_pickle=False: {call}")
    assert found == []
    assert inspect.signature(np.load).parameters["allow_pickle"].default is False
    from core import torch_weights

    assert torch_weights._RestrictedUnpickler.find_class is not pickle.Unpickler.find_class
    load_calls = [line for p in SOURCE_FILES for line in p.read_text().splitlines() if "load_model(" in line
                  and "keras" in line]
    assert load_calls and all("safe_mode=True" in line for line in load_calls), load_calls


def test_a_pickle_in_the_decoded_cache_is_never_unpickled(roots):
    x, _, _ = datasets.load_split_arrays("toy", "train", TOY_SIZE)
    [cached] = list((roots / "data" / ".cache" / "toy").glob("*-train-32.npy"))
    sentinel = roots / "outside" / "unpickled"
    payload = np.empty(1, dtype=object)
    payload[0] = _Touch(str(sentinel))
    with cached.open("wb") as f:
        np.save(f, payload, allow_pickle=True)  # an attacker's pickle where the cache was
    datasets.clear_cache("toy")
    again, _, _ = datasets.load_split_arrays("toy", "train", TOY_SIZE)
    assert not sentinel.exists(), "the pickle was not loaded"
    np.testing.assert_array_equal(again, x)  # decoded again from the images instead


class _Touch:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


# ---- the server ---------------------------------------------------------------------------------------------------


def test_server_is_local_by_default_and_the_upload_limit_is_set_and_stated(roots):
    from pages import common

    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["maxUploadSize"] == common.MAX_UPLOAD_MB == 200
    assert config["browser"]["gatherUsageStats"] is False
    at = page("pages/datasets.py")
    assert "up to 200 MB" in at.file_uploader(key="zip_upload").label
    model_run()
    at = page("pages/classify.py")
    assert "up to 200 MB" in at.file_uploader(key="classify_upload").label


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                out.append(local.split(":")[0])
    return out


def test_the_server_really_listens_on_loopback_only(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HOME": str(tmp_path)}  # no user-level ~/.streamlit/config.toml
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.headless", "true"], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not _listening(port):
            assert server.poll() is None, server.communicate()[0]
            time.sleep(0.3)
        addresses = _listening(port)
        assert addresses == ["0100007F"], addresses  # 127.0.0.1 only: not 0.0.0.0, not ::
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_readme_says_how_to_expose_the_server_and_what_that_means():
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Security"):]
    for words in ("127.0.0.1", "--server.address 0.0.0.0", "anyone who can reach the port can import data, launch "
                  "training jobs", "safe_mode=True", "200 MB", "zip-slip"):
        assert words in section, words
