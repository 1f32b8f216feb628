"""Issue 17, points 3 and 8: a small zip cannot make an import hold gigabytes (members are read with a size cap
and a bounded total in flight), and damaged members (bad CRC, encrypted) are left out as unreadable, not a crash.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from faultkit import good_jpeg, make_zip, toy_files

from core import datasets
from core.config import REPO_ROOT

PEAK = """
import json, resource, sys
from core import datasets
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = datasets.import_dataset(sys.argv[1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mb": (peak - before) / 1024, "process_peak_mb": peak / 1024}))
"""


def bomb_zip(path: Path, member_bytes: int) -> Path:
    """The toy layout plus one member named .jpg of `member_bytes` zeros (it deflates ~1000:1)."""
    make_zip(path, toy_files(good_jpeg(3)))
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf, \
            zf.open("toy/train/cat/huge.jpg", "w", force_zip64=True) as f:
        block = b"\0" * 2**20
        for _ in range(member_bytes // 2**20):
            f.write(block)
    return path


def import_peak_mb(zip_path: Path, data_root: Path) -> dict:
    env = {**__import__("os").environ, "TRANSFERLAB_DATA_DIR": str(data_root)}
    proc = subprocess.run([sys.executable, "-c", PEAK, str(zip_path)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_1gib_member_in_a_small_zip_is_left_out_without_reading_it_whole(tmp_path):
    path = bomb_zip(tmp_path / "bomb.zip", 2**30)
    assert path.stat().st_size < 3 * 2**20
    out = import_peak_mb(path, tmp_path / "data")
    assert out["peak_mb"] < 150, f"the import's memory grew by {out['peak_mb']:.0f} MB"
    meta = json.loads((tmp_path / "data" / "toy" / "dataset.json").read_text())
    assert "toy/train/cat/huge.jpg" in meta["unreadable"] and meta["counts"]["train"] == {"cat": 2, "dog": 2}


def test_bad_crc_and_encrypted_members_are_unreadable_not_a_crash(data_dir, tmp_path):
    path = make_zip(tmp_path / "damaged.zip", {**toy_files(good_jpeg(4)), "toy/train/cat/crc.jpg": good_jpeg(5),
                                                "toy/train/dog/locked.jpg": good_jpeg(6)})
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        crc, locked = zf.getinfo("toy/train/cat/crc.jpg"), zf.getinfo("toy/train/dog/locked.jpg")
    data_at = crc.header_offset + 30 + len(crc.filename.encode())
    raw[data_at + 100] ^= 0xFF  # a flipped byte in the stored data: the CRC no longer matches
    raw[locked.header_offset + 6] |= 0x01  # the local header's "encrypted" flag
    for at in range(len(raw) - 4):  # and the central directory's, which zipfile trusts
        if raw[at:at + 4] == b"PK\x01\x02" and raw[at + 46:at + 46 + len(locked.filename)] == locked.filename.encode():
            raw[at + 8] |= 0x01
    path.write_bytes(bytes(raw))
    report = datasets.import_dataset(path)
    meta = json.loads((data_dir / report.name / "dataset.json").read_text())
    assert sorted(meta["unreadable"]) == ["toy/train/cat/crc.jpg", "toy/train/dog/locked.jpg"]


def test_import_keeps_exactly_what_training_decodes(data_dir, tmp_path):
    """A SPIDER file named .gif opened at import but failed in training: now one function decides both."""
    import io

    from PIL import Image

    from core.images import ImageError, load_rgb

    buf = io.BytesIO()
    Image.new("F", (16, 16), 3.0).save(buf, "SPIDER")
    path = make_zip(tmp_path / "spider.zip", {**toy_files(good_jpeg(8)), "toy/train/cat/spider.gif": buf.getvalue()})
    report = datasets.import_dataset(path)
    meta = json.loads((data_dir / report.name / "dataset.json").read_text())
    assert meta["unreadable"] == ["toy/train/cat/spider.gif"]
    x, _, _ = datasets.load_split_arrays(report.name, "train", 32, val_fraction=0.25)
    assert len(x) >= 1 and x.shape[1:] == (32, 32, 3)  # every kept image decodes in training
    try:
        load_rgb(buf.getvalue(), 32, "spider.gif")
    except ImageError as exc:
        assert "not an image Pillow can read" in str(exc)
    else:
        raise AssertionError("a SPIDER file must be refused")


def test_a_300_byte_member_name_is_one_clear_refusal(data_dir, tmp_path, capsys):
    from faultkit import run_main

    long_name = "toy/train/cat/" + "a" * 300 + ".jpg"
    path = make_zip(tmp_path / "long.zip", {**toy_files(good_jpeg(9)), long_name: good_jpeg(9)})
    proc = run_main(["datasets", "import", path], capsys)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "Errno" not in proc.stderr, proc
    assert "has a name of 304 bytes, over the file system's 255-byte limit" in proc.stderr, proc.stderr
    assert not list(data_dir.iterdir()), "nothing was written"


def test_a_tar_gz_renamed_zip_says_what_it_is_and_not_a_temp_path(data_dir, tmp_path):
    import tarfile

    from faultkit import page

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(good_jpeg(1))
    fake = tmp_path / "photos.zip"
    with tarfile.open(fake, "w:gz") as tf:
        tf.add(src, arcname="photos")
    at = page("pages/datasets.py")
    at.file_uploader(key="zip_upload").set_value(("photos.zip", fake.read_bytes(), "application/zip"))
    at.form_submit_button[0].click().run()
    errors = [e.value for e in at.error]
    assert not at.exception and len(errors) == 1, errors
    assert "the uploaded file photos.zip is not a readable zip file (it is a tar or gzip archive" in errors[0]
    assert ".upload-" not in errors[0] and str(data_dir) not in errors[0]
