"""TensorBoard scalars in every run's folder (`<run>/tensorboard/train`, `.../validation`: epoch_loss,
epoch_accuracy, ...), so `tensorboard --logdir results/runs` shows every run under its id.

On TensorFlow, Keras' own TensorBoard callback writes them; on JAX without TensorFlow, TensorBoard's numpy-only
`tensorboard.summary.Writer` writes the same tags (nothing is written when neither is installed).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import keras

from core import runs, store

LOG_DIR = store.TENSORBOARD


def log_dir(run_id: str) -> Path:
    return runs.run_dir(run_id) / LOG_DIR


def callbacks(run_id: str) -> list[keras.callbacks.Callback]:
    """The callback that writes the run's TensorBoard scalars, once per epoch."""
    if keras.backend.backend() == "tensorflow":
        return [keras.callbacks.TensorBoard(log_dir=str(log_dir(run_id)), write_graph=False, profile_batch=0)]
    try:
        found = importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        found = False
    return [_ScalarWriter(log_dir(run_id))] if found else []


class _ScalarWriter(keras.callbacks.Callback):
    """Keras' TensorBoard layout without TensorFlow: `train/epoch_<name>` and `validation/epoch_<name>`."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder
        self.writers: dict[str, Any] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from tensorboard.summary import Writer

        for key, value in (logs or {}).items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            if split not in self.writers:
                self.writers[split] = Writer(str(self.folder / split))
            self.writers[split].add_scalar(f"epoch_{name}", float(value), epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
