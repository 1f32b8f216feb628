"""A model that takes RGB 0..255 as files that carry its class labels: `.keras`, a zipped SavedModel, `.tflite`.

`labels.txt` (one label a line) sits inside the `.keras` archive (Keras reads only its own members) and beside
`savedmodel/` in the SavedModel zip; a `.tflite` holds the same text as its `labels` metadata entry (the
flatbuffer's Metadata table: name -> buffer), readable with LiteRT's own schema module.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from core import store

LABELS_FILE = "labels.txt"
LABELS_METADATA = "labels"


def labels_text(labels: list[str]) -> str:
    return "".join(f"{label}\n" for label in labels)


def with_labels(blob: bytes, labels: list[str]) -> bytes:
    """The .tflite flatbuffer `blob` with a `labels` metadata entry."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(blob, 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(labels_text(labels).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = LABELS_METADATA, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(len(blob) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def keras_bytes(model: Any, labels: list[str], stored: Path | None = None) -> bytes:
    """The .keras archive of `model` (a copy of `stored`, its saved file, when given) with labels.txt inside."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / store.MODEL
        if stored is not None:
            shutil.copyfile(stored, path)
        else:
            model.save(path)
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(LABELS_FILE, labels_text(labels))
        return path.read_bytes()


def savedmodel_zip(model: Any, labels: list[str]) -> bytes:
    """A zip of `savedmodel/` (Keras' `model.export`, serving endpoint `serve`) and labels.txt beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "savedmodel"
        model.export(str(target), verbose=False)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(target.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(tmp))
            zf.writestr(LABELS_FILE, labels_text(labels))
        return buf.getvalue()
