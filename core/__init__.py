"""TransferLab core: datasets, models, transfer, training, runs, jobs, predict. Never imports streamlit."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def backend() -> str:
    """The Keras backend of this process ("tensorflow" unless KERAS_BACKEND says otherwise); imports nothing."""
    import sys

    keras = sys.modules.get("keras")
    try:
        return keras.backend.backend() if keras else os.environ["KERAS_BACKEND"]
    except AttributeError:  # keras is still being imported by another thread (the dashboard's GPU probe)
        return os.environ["KERAS_BACKEND"]


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with C-level stderr muted: its start-up log (CUDA probing, absl) is noise to users."""
    import sys

    if "tensorflow" in sys.modules:
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            except Exception:  # noqa: BLE001 - re-raised below with stderr restored
                pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    import tensorflow  # noqa: F401,F811 - raises visibly if the quiet import failed
