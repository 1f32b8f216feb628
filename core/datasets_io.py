"""Where `core.cli` and the Datasets page still import from; the code lives in `core.data_import`,
`core.data_export` and `core.data_store` (remove this module once those call sites import from there)."""

from core.data_export import export_dataset
from core.data_import import UPLOAD_PREFIX, import_dataset
from core.data_store import read_meta

__all__ = ["UPLOAD_PREFIX", "export_dataset", "import_dataset", "read_meta"]
