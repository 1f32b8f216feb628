"""Dataset names: what a name resolves to, derived views (source classes mapped to new classes), and the list.

Names resolve local-first: an imported folder `data_root()/<name>` wins, then a user view
(`data_root()/views/<name>.json`), then a built-in view (`fruits360-3`), then the Keras built-ins
(`cifar10`, `cifar100`, `mnist`, `fashion_mnist`).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from core import data_store as store
from core.config import TransferLabError, atomic_write_json, data_root, read_json, validate_name
from core.data_sources import KERAS, KERAS_DATASETS, Source, keras_cached, keras_source, local_source
from core.data_store import FRUITS360, LOCAL, read_meta

FRUITS_HINT = (
    "import the Fruits-360 zip: python -m core datasets import ../shared/data/fruits-360-v2019.05.06.1-subset.zip "
    "(or the full release from https://github.com/fruits-360)"
)
BUILTIN_VIEWS: dict[str, dict[str, Any]] = {
    "fruits360-3": {
        "name": "fruits360-3",
        "source": FRUITS360,
        "mapping": {"apple": ["Apple*"], "pear": ["Pear*"]},
        "rest": "noise",
        "balance": True,
        "per_class": None,
        "seed": 0,
        "description": "Fruits-360 as apple / noise / pear: every Apple* and Pear* class, noise sampled from the rest",
    }
}
VIEW_FIELDS = ("name", "source", "mapping", "rest", "balance", "per_class", "seed", "description")


def resolve(name: str) -> tuple[Source, dict[str, Any] | None]:
    """(base source, view spec or None), local folder first."""
    validate_name(name, "dataset name")
    meta = read_meta(name)
    if meta is not None:
        return local_source(name, meta), None
    if problem := store.meta_problem(name):
        raise TransferLabError(f"Dataset {name!r} is unreadable ({problem}): import it again.")
    if (data_root() / name).is_dir() and name not in store.RESERVED_NAMES:
        raise TransferLabError(
            f"{data_root() / name} was not imported (no {store.META_FILE}): python -m core datasets import <folder>."
        )
    spec = _find_view(name)
    if spec is not None:
        return base_source(spec["source"], f"view {name!r}"), spec
    return base_source(name, None), None


def base_source(name: str, what: str | None) -> Source:
    meta = read_meta(name)
    if meta is not None:
        return local_source(name, meta)
    if name in KERAS_DATASETS:
        return keras_source(name)
    prefix = f"{what}: source " if what else ""
    if name == FRUITS360:
        raise TransferLabError(f"{prefix}Dataset {FRUITS360!r} is not imported: {FRUITS_HINT}.")
    known = ", ".join(d["name"] for d in list_datasets())
    raise TransferLabError(f"{prefix}Unknown dataset {name!r}; known: {known}.")


def _views_dir() -> Path:
    return data_root() / store.VIEWS_DIR


def _find_view(name: str) -> dict[str, Any] | None:
    path = _views_dir() / f"{name}.json"
    if path.is_file():
        spec = read_json(path)
        if not isinstance(spec, dict):
            raise TransferLabError(f"{path} is not a readable view (JSON object expected).")
        return normalise_view({**spec, "name": name})
    return dict(BUILTIN_VIEWS[name]) if name in BUILTIN_VIEWS else None


def normalise_view(spec: dict[str, Any]) -> dict[str, Any]:
    """Check a view spec's shape (not its classes) and fill defaults."""
    if not isinstance(spec, dict):
        raise TransferLabError("A view must be an object with name, source and mapping.")
    unknown = set(spec) - set(VIEW_FIELDS)
    if unknown:
        raise TransferLabError(f"View: unknown field(s) {', '.join(sorted(unknown))}.")
    name = validate_name(str(spec.get("name", "")), "view name")
    mapping = spec.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise TransferLabError(
            f"View {name!r}: mapping must be an object {{new class: [source classes or patterns]}}."
        )
    clean = {}
    for cls, patterns in mapping.items():
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if (
            not str(cls).strip()
            or not isinstance(patterns, list)
            or not all(isinstance(p, str) for p in patterns)
        ):
            raise TransferLabError(
                f"View {name!r}: class {cls!r} needs a list of source class names or patterns."
            )
        clean[str(cls)] = patterns
    rest = spec.get("rest")
    if rest is not None and (not isinstance(rest, str) or not rest.strip() or rest in clean):
        raise TransferLabError(
            f"View {name!r}: rest must be null or a new class name not already in the mapping."
        )
    per_class = spec.get("per_class")
    if per_class is not None and (not isinstance(per_class, int) or per_class < 1):
        raise TransferLabError(f"View {name!r}: per_class must be null or a positive integer.")
    return {
        "name": name,
        "source": validate_name(str(spec.get("source", "")), "view source"),
        "mapping": clean,
        "rest": rest,
        "balance": bool(spec.get("balance", True)),
        "per_class": per_class,
        "seed": int(spec.get("seed", 0)),
        "description": str(spec.get("description", "")),
    }


def view_labels(spec: dict[str, Any], src: Source) -> tuple[list[str], np.ndarray, dict[str, list[str]]]:
    """(new classes sorted, new label per source class or -1, new class -> its source classes)."""
    owner: dict[str, str] = {}
    for new, patterns in spec["mapping"].items():
        for pattern in patterns:
            hits = [c for c in src.classes if fnmatch.fnmatchcase(c, pattern)]
            if not hits:
                raise TransferLabError(f"View {spec['name']!r}: {pattern!r} matches no class of {src.name}.")
            for c in hits:
                if owner.get(c, new) != new:
                    raise TransferLabError(
                        f"View {spec['name']!r}: source class {c!r} is matched by both {owner[c]!r} and {new!r}."
                    )
                owner[c] = new
    if spec["rest"]:
        owner.update({c: spec["rest"] for c in src.classes if c not in owner})
    classes = sorted(set(owner.values()))
    if len(classes) < 2:
        raise TransferLabError(
            f"View {spec['name']!r} has {len(classes)} class; a classifier needs at least two."
        )
    index = {c: i for i, c in enumerate(classes)}
    new_label = np.array([index.get(owner.get(c, ""), -1) for c in src.classes], np.int32)
    sources = {c: [s for s in src.classes if owner.get(s) == c] for c in classes}
    return classes, new_label, sources


def save_view(spec: dict[str, Any]) -> dict[str, Any]:
    """Check a view against its source and store it as `data_root()/views/<name>.json`; returns the stored spec."""
    spec = normalise_view(spec)
    name = spec["name"]
    if name in BUILTIN_VIEWS or name in KERAS_DATASETS or name == FRUITS360 or read_meta(name) is not None:
        raise TransferLabError(f"View name {name!r} is taken by a dataset; choose another name.")
    src = base_source(spec["source"], f"view {name!r}")
    view_labels(spec, src)
    atomic_write_json(_views_dir() / f"{name}.json", spec)
    return spec


def load_view(name: str) -> dict[str, Any]:
    """A view's spec (user file or built-in)."""
    spec = _find_view(validate_name(name, "view name"))
    if spec is None:
        raise TransferLabError(f"No view {name!r}; views: {', '.join(_view_names()) or 'none'}.")
    return spec


def delete_view(name: str) -> None:
    path = _views_dir() / f"{validate_name(name, 'view name')}.json"
    if not path.is_file():
        raise TransferLabError(f"No saved view {name!r} (built-in views cannot be deleted).")
    path.unlink()


def _view_names() -> list[str]:
    saved = [p.stem for p in _views_dir().glob("*.json")] if _views_dir().is_dir() else []
    return sorted(set(saved) | set(BUILTIN_VIEWS))


def list_datasets() -> list[dict[str, Any]]:
    """Every name a stage may use: {"name", "kind": local|keras|view|idx, "available", "description"}.

    "downloads" is true where Keras fetches the data on first use (so "not available" is not final).
    """
    out: dict[str, dict[str, Any]] = {}
    root = data_root()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        meta = read_meta(folder.name) if folder.is_dir() and not folder.name.startswith(".") else None
        if meta:
            out[folder.name] = {"name": folder.name, "kind": meta["kind"], "available": True,
                                "description": _meta_description(meta)}  # fmt: skip
        elif folder.is_dir() and (problem := store.meta_problem(folder.name)):
            out[folder.name] = {"name": folder.name, "kind": "unreadable", "available": False,
                                "description": f"unreadable: {problem}; import it again"}
    if FRUITS360 not in out:
        out[FRUITS360] = {"name": FRUITS360, "kind": LOCAL, "available": False,
                          "description": f"Fruits-360 (103 classes, 100x100): {FRUITS_HINT}"}  # fmt: skip
    for view in _view_names():
        if view not in out:
            try:
                spec = _find_view(view)
            except TransferLabError:
                continue
            available = out.get(spec["source"], {}).get("available") or (
                spec["source"] in KERAS_DATASETS and keras_cached(spec["source"])
            )
            desc = spec["description"] or f"view of {spec['source']}: {', '.join(sorted(spec['mapping']))}"
            out[view] = {"name": view, "kind": "view", "available": bool(available), "description": desc,
                         "downloads": spec["source"] in KERAS_DATASETS}
    for name, desc in KERAS_DATASETS.items():
        if name not in out:
            cached = keras_cached(name)
            note = "cached by Keras" if cached else "downloads on first use; offline: import it"
            out[name] = {"name": name, "kind": KERAS, "available": cached, "description": f"{desc}, {note}",
                         "downloads": True}
    return list(out.values())


def _meta_description(meta: dict[str, Any]) -> str:
    sizes = ", ".join(f"{sum(c.values())} {s}" for s, c in meta["counts"].items())
    return f"{len(meta['classes'])} classes, {sizes} images (imported from {Path(meta['source']).name})"
