"""The files of an untrusted import source (a zip or a folder) as members, checked before anything is written:
no absolute paths, no '..', no symlinks, no over-long names, no zip bomb; a member is read at most once and
never past MAX_MEMBER_BYTES."""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import TransferLabError
from core.downloads import MAX_UNCOMPRESSED_BYTES, limit_text

MAX_MEMBER_BYTES = 100 * 1024**2  # one image file; a larger one is left out as unreadable, never read whole
MAX_NAME_BYTES = 255  # one file or folder name (Linux's NAME_MAX)


@dataclass(frozen=True)
class Member:
    """One file of the source (zip member or file in a folder), by its path parts inside the source; `read`
    gives None for a file over MAX_MEMBER_BYTES or one that cannot be read whole (bad CRC, encrypted, ...)."""

    parts: tuple[str, ...]
    read: Callable[[], bytes | None]


Members = tuple[list[Member], set[tuple[str, ...]]]  # files, and the folders' path parts


def _read_capped(opener: Callable[[], Any], declared: int) -> bytes | None:
    """At most MAX_MEMBER_BYTES + 1 bytes are ever read, whatever the archive declares."""
    if declared > MAX_MEMBER_BYTES:
        return None
    try:
        with opener() as f:
            data = f.read(MAX_MEMBER_BYTES + 1)
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error):
        return None  # bad CRC, encrypted (RuntimeError), unsupported compression, truncated stream
    return data if len(data) <= MAX_MEMBER_BYTES else None


def not_a_zip_reason(path: Path, exc: Exception) -> str:
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return str(exc)
    if head.startswith(b"\x1f\x8b") or head[257:262] == b"ustar":
        return "it is a tar or gzip archive: unpack it and import the folder, or make a .zip"
    return str(exc)


def zip_members(zf: zipfile.ZipFile, label: str) -> Members:
    """Check every member before anything is written; return files and folder paths."""
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise TransferLabError(
            f"Refusing {label}: it declares {total / 1024**3:.1f} GB uncompressed, over the {limit_text()} limit."
        )
    files, dirs = [], set()
    for info in infos:
        member_name = _member_name(info)
        parts = _safe_parts(member_name, label)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise TransferLabError(
                f"Refusing {label}: member {member_name!r} is a symlink; nothing was imported."
            )
        if not parts:
            continue
        if info.is_dir():
            dirs.add(parts)
            continue
        files.append(Member(parts, lambda info=info: _read_capped(lambda: zf.open(info), info.file_size)))
    return files, dirs


def _member_name(info: zipfile.ZipInfo) -> str:
    """Zip names without the UTF-8 flag are decoded as cp437; many tools wrote UTF-8 anyway, so try that."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name


def _safe_parts(member_name: str, label: str) -> tuple[str, ...]:
    """Refuse absolute paths and '..' (zip-slip); return the path parts."""
    name = member_name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        raise TransferLabError(
            f"Refusing {label}: member {member_name!r} has an absolute path; nothing was imported."
        )
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise TransferLabError(
            f"Refusing {label}: member {member_name!r} points outside with '..'; nothing was imported."
        )
    longest = max(parts, key=lambda p: len(p.encode()), default="")
    if len(longest.encode()) > MAX_NAME_BYTES:
        raise TransferLabError(
            f"Refusing {label}: member {longest[:40]!r}… has a name of {len(longest.encode())} bytes, over the "
            f"file system's {MAX_NAME_BYTES}-byte limit; rename it. Nothing was imported."
        )
    return parts


def folder_members(root: Path) -> Members:
    files, dirs = [], set()
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel = base.relative_to(root).parts
        for d in dirnames:
            if (base / d).is_symlink():
                raise TransferLabError(f"Refusing {root}: {base / d} is a symlink; nothing was imported.")
            dirs.add((*rel, d))
        for f in filenames:
            p = base / f
            if p.is_symlink():
                raise TransferLabError(f"Refusing {root}: {p} is a symlink; nothing was imported.")
            files.append(Member((*rel, f), lambda p=p: _read_capped(lambda: p.open("rb"), p.stat().st_size)))
    return files, dirs
