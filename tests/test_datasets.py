"""core.datasets on the real shared data: import, views, splits, decoded cache, tf.data, and bad inputs."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CIFAR_ZIP, MNIST_DIR, shared_data

from core import data_export, data_sources, data_splits, data_store, data_views, datasets
from core.config import REPO_ROOT, TransferLabError

pytestmark = pytest.mark.realdata


# ---- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def jpegs() -> list[bytes]:
    """Twelve real JPEG files from the shared CIFAR-10 zip."""
    with zipfile.ZipFile(shared_data(CIFAR_ZIP) / CIFAR_ZIP) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")][:12]
        return [zf.read(n) for n in names]


def make_zip(path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def two_class_files(jpegs: list[bytes], top: str = "toy") -> dict[str, bytes]:
    """top/train/{cat,dog}/ 3 images each, top/test/{cat,dog}/ 1 image each."""
    files = {}
    for k, cls in enumerate(["cat", "dog"]):
        for i in range(3):
            files[f"{top}/train/{cls}/{i}.jpg"] = jpegs[k * 4 + i]
        files[f"{top}/test/{cls}/9.jpg"] = jpegs[k * 4 + 3]
    return files


def assert_nothing_written(root: Path) -> None:
    leftovers = [p.name for p in root.iterdir() if p.name != ".downloads"] if root.exists() else []
    assert leftovers == []
    assert not any((root / ".downloads").iterdir()) if (root / ".downloads").exists() else True


# ---- the shared zips -----------------------------------------------------------------------------------------


def test_shared_zips_import_as_is(imported_data, shared_data_root):
    fruits, cifar = imported_data.reports["fruits360"], imported_data.reports["cifar10"]
    expected = json.loads((shared_data_root / "class_counts.json").read_text())
    assert fruits.counts["train"] == {c: n["Training"] for c, n in expected["fruits"].items()}
    assert fruits.counts["test"] == {c: n["Test"] for c, n in expected["fruits"].items()}
    assert cifar.counts["train"] == {c: n["train"] for c, n in expected["cifar10"].items()}
    assert (fruits.skipped_files, fruits.unreadable) == (2, [])  # LICENSE and readme.md
    root = imported_data.root
    assert len(list((root / "fruits360" / "train" / "Apple Braeburn").glob("*.jpg"))) == 492
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "cifar10",
        "fruits360",
        "mnist",
    ]
    assert not [p for p in root.iterdir() if p.name.startswith(".import-")]


def test_fruits360_has_103_classes(real_data_root):
    classes = datasets.dataset_classes("fruits360")
    assert len(classes) == 103 and classes == sorted(classes)
    listed = {d["name"]: d for d in datasets.list_datasets()}
    assert listed["fruits360"]["available"] and listed["fruits360"]["kind"] == "local"
    assert listed["fruits360-3"]["kind"] == "view" and listed["fruits360-3"]["available"]
    assert listed["cifar100"] == {**listed["cifar100"], "kind": "keras", "available": False}


def test_fruits360_3_is_balanced_apple_noise_pear(real_data_root):
    info = datasets.describe("fruits360-3")
    assert info["classes"] == ["apple", "noise", "pear"]
    counts = info["counts"]
    assert {c: counts["train"][c] + counts["val"][c] for c in info["classes"]} == dict.fromkeys(
        info["classes"], 2928
    )
    assert counts["test"] == dict.fromkeys(info["classes"], 742)
    # water-filling: the 13 Apple classes give 225 or 226 each; noise comes from all 84 other classes
    src, spec = data_views.resolve("fruits360-3")
    plan = data_splits.plan(src, spec)
    pool = np.concatenate([plan.rows["train"], plan.rows["val"]])
    apple = np.unique(plan.source_class[pool][plan.y[pool] == 0], return_counts=True)
    assert len(apple[0]) == 13 and set(apple[1]) <= {225, 226}
    assert len(np.unique(plan.source_class[pool][plan.y[pool] == 1])) == 84


def test_grouped_val_split_keeps_frames_together(real_data_root):
    src, _ = data_views.resolve("fruits360")

    def frame_groups(plan, split):
        rows = plan.rows[split]
        names = [src.files[plan.stored_names[plan.stored[r]]][plan.idx[r]].rsplit("/", 1)[-1] for r in rows]
        matches = [data_store.FRAME_NAME_RE.match(n) for n in names]  # one odd name (r_135.jpg) has no group
        return {(int(c), int(m[1]) // 20) for c, m in zip(plan.source_class[rows], matches, strict=True) if m}

    grouped = data_splits.plan(src, None)  # auto -> grouped for fruits360
    assert frame_groups(grouped, "train").isdisjoint(frame_groups(grouped, "val"))
    val_share = len(grouped.rows["val"]) / (len(grouped.rows["val"]) + len(grouped.rows["train"]))
    assert 0.08 < val_share < 0.12
    stratified = data_splits.plan(src, None, split_mode="stratified")
    assert frame_groups(stratified, "train") & frame_groups(stratified, "val")  # random val leaks frames


def test_limit_and_per_class_options(real_data_root):
    limited = datasets.describe("fruits360-3", limit_per_class=10)["counts"]
    assert all(n == 10 for split in limited.values() for n in split.values())
    fixed = datasets.describe("fruits360-3", per_class=100)["counts"]
    assert all(fixed["train"][c] + fixed["val"][c] == 100 and fixed["test"][c] == 100 for c in fixed["test"])
    plain = datasets.describe("cifar10", limit_per_class=7, seed=3)["counts"]
    assert set(plain["val"].values()) == {7} and len(plain["val"]) == 10


def test_mnist_grayscale_becomes_three_channels(data_dir, shared_data_root):
    report = datasets.import_dataset(shared_data_root / MNIST_DIR)
    assert (report.name, report.kind, sum(report.counts["all"].values())) == ("mnist", "idx", 10000)
    x, y, classes = datasets.load_split_arrays("mnist", "train", 32)
    assert x.shape[1:] == (32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2]) and x.max() > 200
    assert classes == [str(i) for i in range(10)]
    counts = datasets.describe("mnist")["counts"]
    sizes = {s: sum(c.values()) for s, c in counts.items()}
    assert sum(sizes.values()) == 10000 and 1990 <= sizes["test"] <= 2010  # carved 20% test split
    assert sizes["train"] == len(x)


# ---- decoded cache and tf.data ---------------------------------------------------------------------------------


def test_cached_split_is_never_decoded_twice(real_data_root):
    before = datasets.DECODE_COUNT
    x, y, _ = datasets.load_split_arrays("cifar10", "test", 24)
    assert datasets.DECODE_COUNT - before == 5000 and x.shape == (5000, 24, 24, 3)
    after_first = datasets.DECODE_COUNT
    ds = datasets.make_tf_dataset(x, y, batch_size=500, preprocess=None, shuffle=True, seed=0)
    for _epoch in range(2):
        assert sum(len(yb) for _, yb in ds) == 5000
    x2, _, _ = datasets.load_split_arrays("cifar10", "test", 24)
    datasets.clear_cache()  # a fresh process-level cache: reload from the .npy on disk
    x3, y3, _ = datasets.load_split_arrays("cifar10", "test", 24)
    assert datasets.DECODE_COUNT == after_first
    assert np.array_equal(x, x2) and np.array_equal(x, x3) and np.array_equal(y, y3)
    assert list((real_data_root / ".cache" / "cifar10").glob("*-test-24.npy"))
    code = "from core import datasets as d; d.load_split_arrays('cifar10', 'test', 24); print(d.DECODE_COUNT)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"  # a second process reads the disk cache too


def test_make_tf_dataset_is_seeded_and_preprocesses(real_data_root):
    x, y, _ = datasets.load_split_arrays("cifar10", "test", 24, limit_per_class=20)

    def labels(ds):
        return np.concatenate([yb.numpy() for _, yb in ds])

    a = datasets.make_tf_dataset(x, y, batch_size=32, preprocess=None, shuffle=True, seed=5)
    b = datasets.make_tf_dataset(x, y, batch_size=32, preprocess=None, shuffle=True, seed=5)
    first = labels(a)
    assert np.array_equal(first, labels(b)) and not np.array_equal(first, labels(a))  # reshuffled each epoch
    assert sorted(first.tolist()) == sorted(y.tolist())
    plain = datasets.make_tf_dataset(x, y, batch_size=200, preprocess=lambda t: t / 255.0)
    xb, yb = next(iter(plain))
    assert xb.dtype.name == "float32" and yb.dtype.name == "int32"
    assert np.allclose(xb.numpy(), x / 255.0, atol=1e-6)
    aug1 = next(iter(datasets.make_tf_dataset(x, y, batch_size=200, preprocess=None, augment=True, seed=1)))[
        0
    ]
    aug2 = next(iter(datasets.make_tf_dataset(x, y, batch_size=200, preprocess=None, augment=True, seed=1)))[
        0
    ]
    assert aug1.shape == x.shape and np.array_equal(aug1.numpy(), aug2.numpy())
    assert not np.allclose(aug1.numpy(), x.astype(np.float32))
    with pytest.raises(TransferLabError, match="Unknown augmentation"):
        datasets.make_tf_dataset(x, y, batch_size=8, preprocess=None, augment=["blur"])


# ---- bad inputs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "words"),
    [("toy/train/cat/../../../evil.jpg", "'..'"), ("/tmp/evil.jpg", "absolute path"), ("symlink", "symlink")],
)
def test_unsafe_members_are_refused_and_nothing_written(data_dir, tmp_path, jpegs, member, words):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in two_class_files(jpegs).items():
            zf.writestr(name, data)
        if member == "symlink":
            link = zipfile.ZipInfo("toy/train/cat/link.jpg")
            link.external_attr = 0o120777 << 16
            zf.writestr(link, "../../../../etc/passwd")
        else:
            zf.writestr(zipfile.ZipInfo(member), jpegs[0])
    with pytest.raises(TransferLabError, match=words):
        datasets.import_dataset(path)
    assert_nothing_written(data_dir)
    assert not (tmp_path / "evil.jpg").exists()


def test_unreadable_images_are_counted_not_copied(data_dir, tmp_path, jpegs):
    files = two_class_files(jpegs)
    files["toy/train/cat/truncated.jpg"] = jpegs[5][: len(jpegs[5]) // 2]
    files["toy/train/dog/notes.jpg"] = b"this is text, not a JPEG\n"
    files["toy/README.txt"] = b"hello"
    report = datasets.import_dataset(make_zip(tmp_path / "toy.zip", files))
    assert report.unreadable == ["toy/train/cat/truncated.jpg", "toy/train/dog/notes.jpg"]
    assert report.skipped_files == 1
    assert report.counts == {"test": {"cat": 1, "dog": 1}, "train": {"cat": 3, "dog": 3}}
    assert sorted(p.name for p in (data_dir / "toy" / "train" / "cat").iterdir()) == [
        "0.jpg",
        "1.jpg",
        "2.jpg",
    ]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("empty_class", "class folder 'toy/train/bird' has no images"),
        ("single_class", "at least two classes"),
        ("case_clash", "differ only by case"),
        ("nested_zip", "nested zip: unpack it first"),
        ("no_images", "holds no dataset"),
        ("all_unreadable", "'dog' in train has no readable images"),
    ],
)
def test_bad_layouts_give_one_clear_error(data_dir, tmp_path, jpegs, change, words):
    files, dirs = two_class_files(jpegs), ()
    if change == "empty_class":
        dirs = ("toy/train/bird/",)
    elif change == "single_class":
        files = {k: v for k, v in files.items() if "/dog/" not in k}
    elif change == "case_clash":
        files["toy/train/Cat/7.jpg"] = jpegs[8]
    elif change == "nested_zip":
        files["toy/inner.zip"] = make_zip(tmp_path / "inner.zip", {"a/1.jpg": jpegs[0]}).read_bytes()
    elif change == "no_images":
        files = {"docs/readme.txt": b"no images here", "docs/data.csv": b"a,b\n"}
    elif change == "all_unreadable":
        files = {k: (b"garbage" if "train/dog" in k else v) for k, v in files.items()}
    with pytest.raises(TransferLabError, match=words):
        datasets.import_dataset(make_zip(tmp_path / "toy.zip", files, dirs))
    assert_nothing_written(data_dir)


def test_empty_class_folder_in_a_directory(data_dir, tmp_path, jpegs):
    for name, data in two_class_files(jpegs, top="plain").items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    (tmp_path / "plain" / "train" / "bird").mkdir()
    with pytest.raises(TransferLabError, match="has no images"):
        datasets.import_dataset(tmp_path / "plain")
    (tmp_path / "plain" / "train" / "bird").rmdir()
    report = datasets.import_dataset(tmp_path / "plain")
    assert report.name == "plain" and report.classes == ["cat", "dog"]


def test_zip_bomb_is_refused_before_extracting(data_dir, tmp_path, jpegs):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in two_class_files(jpegs).items():
            zf.writestr(name, data)
        zf.filelist[0].file_size = 30 * 1024**3  # the central directory declares 30 GB
    assert zipfile.ZipFile(path).infolist()[0].file_size == 30 * 1024**3
    with pytest.raises(TransferLabError, match="over the 20 GB limit"):
        datasets.import_dataset(path)
    assert_nothing_written(data_dir)


def test_non_utf8_names_plain_layout_and_reimport(data_dir, tmp_path, jpegs):
    class Cp437Info(zipfile.ZipInfo):  # a zip written by an old tool: cp437 bytes, no UTF-8 flag
        def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's name
            return self.filename.encode("cp437"), self.flag_bits

    path = tmp_path / "Old Tool.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(3):
            zf.writestr(Cp437Info(f"café/{i}.jpg"), jpegs[i])
            zf.writestr(Cp437Info(f"\u00c7a/{i}.jpg"), jpegs[4 + i])
    first = datasets.import_dataset(path)
    assert first.name == "old-tool" and first.classes == ["café", "Ça"]
    assert first.counts == {"all": {"café": 3, "Ça": 3}}
    again = datasets.import_dataset(path)  # importing twice replaces, same counts, one folder
    assert again.counts == first.counts
    assert sorted(p.name for p in data_dir.iterdir() if not p.name.startswith(".")) == ["old-tool"]
    counts = datasets.describe("old-tool")["counts"]  # no test split: a carved one
    assert {s: sum(c.values()) for s, c in counts.items()}["test"] == 2


def test_missing_dataset_names(data_dir, monkeypatch):
    if data_sources.keras_cached("cifar100"):
        pytest.skip("Keras has cifar100 cached on this machine")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # never really download in a test
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    # Keras downloads through urllib's global opener, which keeps the proxies it first saw: drop it afterwards
    monkeypatch.setattr(urllib.request, "_opener", None)
    start = time.monotonic()
    with pytest.raises(TransferLabError) as err:
        datasets.load_split_arrays("cifar100", "train", 32)
    assert time.monotonic() - start < 60
    message = str(err.value)
    assert "Dataset 'cifar100' is not available" in message
    assert "python -m core datasets import <zip|dir|url> --name cifar100" in message and "\n" not in message
    with pytest.raises(TransferLabError, match=r"Unknown dataset 'nope'; known: .*fruits360-3.*cifar100"):
        datasets.describe("nope")
    with pytest.raises(TransferLabError, match="'fruits360' is not imported"):
        datasets.describe("fruits360-3")


def test_url_import_with_progress(data_dir, tmp_path, jpegs, monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "www"
    served.mkdir()
    make_zip(served / "toy.zip", two_class_files(jpegs, top="webtoy"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    calls = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/toy.zip"
        report = datasets.import_dataset(url, progress=lambda m, f: calls.append((m, f)))
        with pytest.raises(TransferLabError, match="Download of .* failed"):
            datasets.import_dataset(url.replace("toy.zip", "missing.zip"))
    finally:
        server.shutdown()
        thread.join()
    assert report.name == "webtoy" and report.counts["train"] == {"cat": 3, "dog": 3}
    assert any("Downloading" in m for m, _ in calls) and calls[-1][1] == 1.0
    fractions = [f for _, f in calls]
    assert fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)
    assert not any((data_dir / ".downloads").iterdir())  # the temp download is gone


def test_user_views_save_preview_load(real_data_root):
    spec = {"name": "apples-2", "source": "fruits360",
            "mapping": {"red": ["Apple Red*"], "green": ["Apple Granny Smith", "Apple Golden*"]}}  # fmt: skip
    preview = datasets.preview_view(spec)
    assert preview["classes"] == ["green", "red"]
    assert preview["sources"]["red"] == ["Apple Red 1", "Apple Red 2", "Apple Red 3", "Apple Red Delicious",
                                         "Apple Red Yellow 1", "Apple Red Yellow 2"]  # fmt: skip
    counts = preview["counts"]
    assert counts["train"]["red"] + counts["val"]["red"] == counts["train"]["green"] + counts["val"]["green"]
    try:
        datasets.save_view(spec)
        assert datasets.load_view("apples-2")["mapping"] == spec["mapping"]
        assert datasets.describe("apples-2")["counts"] == counts
        assert "apples-2" in {d["name"] for d in datasets.list_datasets()}
    finally:
        datasets.delete_view("apples-2")
    with pytest.raises(TransferLabError, match="matches no class"):
        datasets.preview_view({**spec, "mapping": {"a": ["Apple*"], "b": ["Banana Split*"]}})
    with pytest.raises(TransferLabError, match="matched by both"):
        datasets.preview_view({**spec, "mapping": {"a": ["Apple*"], "b": ["Apple Red 1"]}})
    with pytest.raises(TransferLabError, match="taken by a dataset"):
        datasets.save_view({**spec, "name": "fruits360-3"})
    assert os.environ["TRANSFERLAB_DATA_DIR"] == str(real_data_root)


def test_export_writes_a_resized_copy_that_imports_back(data_dir, tmp_path, jpegs):
    datasets.import_dataset(make_zip(tmp_path / "toy.zip", two_class_files(jpegs)))
    out = tmp_path / "toy-16"
    assert data_export.export_dataset("toy", out, 16, splits=["train"]) == {"train": 6}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))[:2] == ["train/cat/0.jpg",
                                                                                     "train/cat/1.jpg"]
    back = datasets.import_dataset(out, name="toy16")
    assert back.counts == {"train": {"cat": 3, "dog": 3}}
    original, _, _ = datasets.load_split_arrays("toy", "train", 16, val_fraction=0.2)
    copy, _, _ = datasets.load_split_arrays("toy16", "train", 16, val_fraction=0.2)
    assert copy.shape == original.shape and np.abs(copy.astype(int) - original).mean() < 4  # JPEG q95 at 16px
    with pytest.raises(TransferLabError, match="is not empty"):
        data_export.export_dataset("toy", out, 16)
    with pytest.raises(TransferLabError, match="has no split val"):
        data_export.export_dataset("toy", tmp_path / "other", 16, splits=["val"])
