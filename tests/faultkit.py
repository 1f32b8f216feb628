"""Shared makers for the bad-input, fault and security tests: real files, a tiny real model, CLI runs.

Everything is built for real in the test's folders (Pillow writes the images, zipfile the archives, Keras the
model); nothing here mocks Pillow or the filesystem.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.config import REPO_ROOT

APP = str(REPO_ROOT / "app.py")

TOY_CLASSES = ("blue", "red")
TOY_SIZE = 32  # alexnet4's minimum is 28


# ---- images ----------------------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(h: int, w: int, seed: int = 0, mean: tuple[int, int, int] = (128, 128, 128)) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(mean, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def good_jpeg(seed: int = 0) -> bytes:
    return encode(noise(40, 60, seed), "JPEG", quality=90)


def png_of_size(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of any size, written row by row: a 20000x20000 image is ~50 kB and
    costs no memory to make (Pillow would need the whole bitmap)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + one bit per pixel, all black
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    """Stored 60 wide x 30 high, left half red and right half blue, with EXIF orientation 6 (rotate 90 CW):
    upright it is 30 wide x 60 high with red on top and blue below."""
    arr = np.zeros((30, 60, 3), np.uint8)
    arr[:, :30] = (255, 0, 0)
    arr[:, 30:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())


def animated(fmt: str) -> bytes:
    """Three frames: red, green, blue. Only the first (red) may be used."""
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)
    return buf.getvalue()


def bad_images() -> dict[str, bytes]:
    """File name -> bytes for every bad-input image case of issue 6."""
    jpeg = good_jpeg(1)
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:10] = (255, 0, 0, 255)  # top half opaque red, bottom half fully transparent
    grey16 = np.tile(np.array([0, 1000, 32896, 65535], np.uint16), (4, 1))
    return {
        "empty.jpg": b"",
        "notes.jpg": b"Shopping list: apples, pears.\nThis is a text file renamed to .jpg\n",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "alpha.png": encode(Image.fromarray(rgba, "RGBA"), "PNG"),
        "cmyk.jpg": encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG", quality=95),  # red ink
        "grey16.png": encode(Image.fromarray(grey16), "PNG"),
        "grey.png": encode(Image.new("L", (20, 20), 77), "PNG"),
        "animated.gif": animated("GIF"),
        "animated.webp": animated("WEBP"),
        "one-pixel.png": encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"),
        "huge.png": png_of_size(20000, 20000),
        "rotated.jpg": exif_rotated_jpeg(),
    }


ERROR_CASES = {  # file -> words the one-sentence message must hold
    "empty.jpg": "the file is empty",
    "notes.jpg": "not an image Pillow can read",
    "truncated.jpg": "broken or truncated image",
    "huge.png": "too large (400.0 megapixels; the limit is 50 megapixels)",
}


def write_files(folder: Path, files: dict[str, bytes]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out


# ---- datasets and zips -----------------------------------------------------------------------------------


def toy_folder(root: Path, n_train: int = 24, n_test: int = 6, size: int = 40) -> Path:
    """root/toy/{train,test}/{blue,red}/*.png: noise around a blue or a red mean (learnable, cheap)."""
    means = {"blue": (40, 60, 200), "red": (200, 50, 40)}
    for split, n in (("train", n_train), ("test", n_test)):
        for k, cls in enumerate(TOY_CLASSES):
            folder = root / "toy" / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = noise(size, size, seed=1000 * k + 500 * (split == "test") + i, mean=means[cls])
                img.save(folder / f"{cls}-{k}-{i:03d}.png")
    return root / "toy"


def toy_files(jpeg: bytes, top: str = "toy") -> dict[str, bytes]:
    """A minimal two-class zip layout: top/train/{cat,dog}/ 2 images each, top/test/{cat,dog}/ 1 each."""
    files = {}
    for cls in ("cat", "dog"):
        for i in range(2):
            files[f"{top}/train/{cls}/{i}.jpg"] = jpeg
        files[f"{top}/test/{cls}/9.jpg"] = jpeg
    return files


def make_zip(path: Path, files: dict[str, bytes], infos: tuple[tuple[zipfile.ZipInfo, bytes], ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for info, data in infos:
            zf.writestr(info, data)
    return path


def bad_zips(folder: Path) -> dict[str, tuple[Path, str]]:
    """Case -> (zip path, words of the one-line refusal), every dataset case of issue 6 that must be refused."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = good_jpeg(2)
    base = toy_files(jpeg)
    link = zipfile.ZipInfo("toy/train/cat/link.jpg")
    link.external_attr = 0o120777 << 16
    empty_dir = zipfile.ZipInfo("toy/train/bird/")
    cases: dict[str, tuple[Path, str]] = {
        "zip-slip": (make_zip(folder / "slip.zip", {**base, "toy/train/cat/../../../../x.jpg": jpeg}), "'..'"),
        "absolute": (make_zip(folder / "absolute.zip", {**base, "/tmp/transferlab-evil.jpg": jpeg}),
                     "absolute path"),
        "symlink": (make_zip(folder / "symlink.zip", base, ((link, b"../../../../etc/passwd"),)), "symlink"),
        "nested": (make_zip(folder / "nested.zip", {**base, "toy/inner.zip": make_zip(
            folder / "inner.zip", {"a/b/1.jpg": jpeg}).read_bytes()}), "nested zip"),
        "empty-class": (make_zip(folder / "emptyclass.zip", base, ((empty_dir, b""),)),
                        "class folder 'toy/train/bird' has no images"),
        "single-class": (make_zip(folder / "single.zip", {k: v for k, v in base.items() if "/dog/" not in k}),
                         "at least two classes"),
        "case-clash": (make_zip(folder / "case.zip", {**base, "toy/train/Cat/7.jpg": jpeg}), "differ only by case"),
        "not-a-zip": (folder / "notes.zip", "not a readable zip file"),
    }
    (folder / "notes.zip").write_text("this is a text file renamed to .zip\n")
    bomb = folder / "bomb.zip"
    with zipfile.ZipFile(bomb, "w") as zf:
        for name, data in base.items():
            zf.writestr(name, data)
        zf.filelist[0].file_size = 30 * 1024**3  # the central directory declares 30 GB
    assert zipfile.ZipFile(bomb).infolist()[0].file_size == 30 * 1024**3
    cases["bomb"] = (bomb, "declares 30.0 GB uncompressed, over the 20 GB limit")
    return cases


def cp437_zip(path: Path, jpeg: bytes) -> Path:
    """A zip from an old tool: cp437-encoded names (not UTF-8 bytes) without the UTF-8 flag."""

    class Cp437Info(zipfile.ZipInfo):
        def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's name
            return self.filename.encode("cp437"), self.flag_bits & ~0x800

    with zipfile.ZipFile(path, "w") as zf:
        for cls in ("café", "Ça"):
            for i in range(3):
                zf.writestr(Cp437Info(f"{cls}/{i}.jpg"), jpeg)
    return path


def tree(root: Path) -> list[str]:
    """Every path under root (relative), for 'nothing was written' checks."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# ---- runs and models -------------------------------------------------------------------------------------


def model_run(labels: tuple[str, ...] = TOY_CLASSES, dataset: str = "toy", size: int = TOY_SIZE,
              model: Any = None, status: str = "done") -> str:
    """A run in the current results root with an untrained alexnet4 (or `model`), labels and metrics."""
    from core import models, runs
    from core.pipeline import StageConfig
    from core.run_records import RunRecord

    stage = StageConfig(dataset=dataset, arch="alexnet4", input_size=size, epochs=1)
    run_id = runs.create_run(RunRecord(stage=stage.to_dict(), command="tests (faultkit)"))
    runs.write_labels(run_id, list(labels))
    runs.save_model(run_id, model if model is not None else models.build_model("alexnet4", len(labels), size,
                                                                                seed=0))
    if status == "done":
        runs.write_metrics(run_id, {"test_accuracy": 0.5, "epochs_run": 1})
    runs.set_status(run_id, status)
    time.sleep(1.05)  # run ids and 'created' have one-second resolution: keep newest-first order strict
    return run_id


def recorded_run(run_id: str, method: str, wall_s: float, accuracy: float, *, device: str = "CPU",
                 preset: str = "paper-b-scratch-vs-transfer", dataset: str = "fruits360-3", epochs: int = 0,
                 epochs_run: int | None = None, limit: int | None = None, n_train: int = 7896,
                 classes: int = 3, target: float = 0.99, reached_s: float | None = None,
                 parent: str | None = None, stage: dict[str, Any] | None = None) -> str:
    """A finished run's record written straight into the results root (config, status, metrics; no model), as
    the committed runs are: for pages that only read records."""
    from core import runs

    stage_index = 0 if method == "scratch" else 2  # paper B: scratch is one stage, transfer's last is the third
    epochs = epochs or (30 if method == "scratch" else 20)  # as the preset asks
    folder = runs.runs_dir() / run_id
    folder.mkdir(parents=True)
    cfg = {"run_id": run_id, "created": f"2026-01-01T00:00:{len(list(runs.runs_dir().iterdir())):02d}+00:00",
           "stage": {"dataset": dataset, "arch": "alexnet4", "source": "scratch" if method == "scratch" else
                     "previous", "freeze": "none" if method == "scratch" else "first:4", "epochs": epochs,
                     "target_accuracy": target, "limit_per_class": limit, "input_size": 48, **(stage or {})},
           "preset": preset, "pipeline_name": method, "method": method, "parent_run": parent,
           "stage_index": stage_index, "stage_count": stage_index + 1, "repeat_index": 0, "repeats": 1}
    metrics = {"test_accuracy": accuracy, "kappa": accuracy, "wall_time_s": wall_s, "time_to_target_s": reached_s,
               "target_accuracy": target, "epochs_run": epochs if epochs_run is None else epochs_run,
               "n_train": n_train, "device": device, "classes": [f"c{i}" for i in range(classes)]}
    for name, obj in (("config.json", cfg), ("metrics.json", metrics),
                      ("status.json", {"status": "done", "finished": cfg["created"]}),
                      ("labels.json", metrics["classes"])):
        (folder / name).write_text(json.dumps(obj))
    return run_id


# ---- the command line ------------------------------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def start_cli(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", *map(str, args)], cwd=REPO_ROOT,
                            env=env or cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def run_cli_many(commands: dict[str, list[str] | tuple[list[str], dict[str, str]]], timeout: float = 300,
                 parallel: int = 4) -> dict[str, subprocess.CompletedProcess]:
    """Run several `python -m core` commands (args, or (args, env)), `parallel` at a time: each one imports
    TensorFlow (~5-10 s on two busy cores), so they overlap."""
    pending = [(k, v if isinstance(v, tuple) else (v, cli_env())) for k, v in commands.items()]
    running: dict[str, subprocess.Popen] = {}
    done: dict[str, subprocess.CompletedProcess] = {}
    deadline = time.monotonic() + timeout
    while pending or running:
        while pending and len(running) < parallel:
            key, (args, env) = pending.pop(0)
            running[key] = start_cli(*args, env=env)
        for key, proc in list(running.items()):
            if proc.poll() is not None:
                out, err = proc.communicate()
                done[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
                del running[key]
        if time.monotonic() > deadline:
            for proc in running.values():
                proc.kill()
            raise AssertionError(f"CLI commands timed out: {sorted(running)}")
        time.sleep(0.1)
    return done


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit non-zero, exactly one line on stderr ('error: ...') holding `words`, and no traceback anywhere."""
    text = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode != 0, text
    assert "Traceback" not in proc.stdout + proc.stderr, text
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    return lines[0]


def json_out(proc: subprocess.CompletedProcess) -> Any:
    return json.loads(proc.stdout)


def run_main(args: list, capsys: Any) -> subprocess.CompletedProcess:
    """`python -m core ARGS` in this process (core.cli.main: the same parser and error handling, without paying
    a TensorFlow start-up per case); stdout and stderr captured."""
    from core import cli

    capsys.readouterr()
    sigterm = signal.getsignal(signal.SIGTERM)  # `train` installs its own handler: give pytest its own back
    try:
        rc = cli.main([str(a) for a in args])
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["python", "-m", "core", *map(str, args)], rc, out, err)


# ---- the app ---------------------------------------------------------------------------------------------------


def page(path: str) -> Any:
    """The app at `path`, opened through app.py's navigation as a user would, with no exception on the way."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at
