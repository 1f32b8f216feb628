"""Named base datasets read back as a `Source`: an imported image folder (kind `local`), imported IDX files (kind
`idx`) or a Keras built-in (kind `keras`): classes, labels and file lists, read once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.config import TransferLabError, data_root
from core.data_idx import read_idx
from core.data_store import IDX, TEST, TRAIN, read_meta
from core.images import is_image_name

KERAS = "keras"  # the kind of a Keras built-in, and its import token
KERAS_DATASETS: dict[str, str] = {
    "cifar10": "CIFAR-10: 60k 32x32 colour images, 10 classes (Keras download)",
    "cifar100": "CIFAR-100: 60k 32x32 colour images, 100 fine classes (Keras download)",
    "mnist": "MNIST: 70k 28x28 grey digits (Keras download)",
    "fashion_mnist": "Fashion-MNIST: 70k 28x28 grey clothing images (Keras download)",
}
_KERAS_CACHE_PREFIX = {
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "mnist": "mnist.npz",
    "fashion_mnist": "fashion-mnist",
}
_CIFAR10 = "airplane automobile bird cat deer dog frog horse ship truck".split()
_FASHION = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
]
_CIFAR100 = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin
elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man
maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree
plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail
snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout
tulip turtle whale willow_tree wolf woman worm""".split()
_KERAS_CLASSES = {
    "cifar10": _CIFAR10,
    "cifar100": _CIFAR100,
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": _FASHION,
}


@dataclass
class Source:
    """A base dataset: its classes and, per stored split, every image's label and file name (sorted)."""

    name: str
    kind: str  # local | idx | keras
    classes: list[str]
    labels: dict[str, np.ndarray]  # stored split -> int32 source labels
    files: dict[str, list[str]]  # stored split -> paths relative to the dataset folder ([] for arrays)
    frames: bool  # images are frames of a rotating object (Fruits-360): grouped val split
    token: str  # changes with every import, so caches of an older import are never used


_SOURCES: dict[tuple[str, str], Source] = {}  # (name, import id) -> file lists, read once per process
_KERAS_RAW: dict[str, tuple] = {}  # keras.datasets arrays as loaded, read from disk once per process
_IDX_RAW: dict[tuple[str, str, str], np.ndarray] = {}  # (name, import id, split) -> IDX images


def local_source(name: str, meta: dict) -> Source:
    key = (name, meta.get("import_id", ""))
    if key in _SOURCES:
        return _SOURCES[key]
    classes = list(meta["classes"])
    labels, files = {}, {}
    if meta["kind"] == IDX:
        for split, pair in meta["files"].items():
            labels[split] = read_idx(data_root() / name / pair["labels"]).astype(np.int32)
            files[split] = []
        lookup = {int(c): i for i, c in enumerate(classes)}
        labels = {s: np.array([lookup[int(v)] for v in y], np.int32) for s, y in labels.items()}
    else:
        for split in meta["splits"]:
            labels[split], files[split] = _scan_split(data_root() / name, split, classes)
    src = Source(name, meta["kind"], classes, labels, files, bool(meta.get("frames")), key[1])
    _SOURCES[key] = src
    return src


def _scan_split(root: Path, split: str, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    labels, files = [], []
    for i, cls in enumerate(classes):
        folder = root / split / cls
        names = sorted(e.name for e in os.scandir(folder) if is_image_name(e.name)) if folder.is_dir() else []
        labels += [i] * len(names)
        files += [f"{split}/{cls}/{n}" for n in names]
    return np.array(labels, np.int32), files


def keras_source(name: str) -> Source:
    key = (name, KERAS)
    if key not in _SOURCES:
        (_, y_train), (_, y_test) = keras_load(name)
        labels = {TRAIN: y_train.reshape(-1).astype(np.int32), TEST: y_test.reshape(-1).astype(np.int32)}
        _SOURCES[key] = Source(
            name, KERAS, _KERAS_CLASSES[name], labels, {TRAIN: [], TEST: []}, False, KERAS
        )
    return _SOURCES[key]


def keras_load(name: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """`keras.datasets.<name>.load_data()`; offline it fails fast, which becomes one clear error."""
    if name in _KERAS_RAW:
        return _KERAS_RAW[name]
    import keras

    try:
        module = getattr(keras.datasets, name)
        _KERAS_RAW[name] = module.load_data(label_mode="fine") if name == "cifar100" else module.load_data()
        return _KERAS_RAW[name]
    except Exception:  # keras raises a bare Exception("URL fetch failure ...") offline
        raise TransferLabError(
            f"Dataset {name!r} is not available: no folder {data_root() / name} and the Keras download failed "
            f"(offline?). Import it: python -m core datasets import <zip|dir|url> --name {name}"
        ) from None


def keras_cached(name: str) -> bool:
    """Whether Keras has the dataset on disk already (so it loads without a download)."""
    folder = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"
    prefix = _KERAS_CACHE_PREFIX[name]
    return folder.is_dir() and any(p.name.startswith(prefix) for p in folder.iterdir())


def raw_images(src: Source, split: str) -> np.ndarray:
    """Undecoded arrays of an IDX or Keras dataset, (N, H, W) or (N, H, W, 3)."""
    if src.kind == IDX:
        key = (src.name, src.token, split)
        if key not in _IDX_RAW:
            meta = read_meta(src.name) or {}
            _IDX_RAW[key] = read_idx(data_root() / src.name / meta["files"][split]["images"])
        return _IDX_RAW[key]
    (x_train, _), (x_test, _) = keras_load(src.name)
    return x_train if split == TRAIN else x_test


def forget(name: str | None = None) -> None:
    """Drop this process's file lists and Keras arrays (after a re-import)."""
    for key in [k for k in _SOURCES if name is None or k[0] == name]:
        del _SOURCES[key]
    for key in [k for k in _KERAS_RAW if name is None or k == name]:
        del _KERAS_RAW[key]
    for key in [k for k in _IDX_RAW if name is None or k[0] == name]:
        del _IDX_RAW[key]
