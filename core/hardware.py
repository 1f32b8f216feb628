"""The machine a stage trains on: the Keras backend's devices, the distribution strategy, and the environment
recorded with every run. TensorFlow is configured by `configure()` (on first use), never by an import."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import platform
import subprocess
from typing import Any

import core
from core.config import REPO_ROOT, TransferLabError
from core.run_records import Environment

BACKENDS = ("tensorflow", "jax")


@functools.cache
def configure() -> str:
    """Once per process: check the Keras backend, quiet TensorFlow's logger and, with TRANSFERLAB_LOGICAL_CPUS=N,
    split the CPU into N logical devices (to test multi-device training). Returns the backend."""
    backend = core.backend()
    if backend not in BACKENDS:
        raise TransferLabError(f"Training runs on the tensorflow or jax Keras backend, not {backend!r} "
                               "(KERAS_BACKEND).")
    if backend == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # retracing notices are noise in run logs
        if int(os.environ.get("TRANSFERLAB_LOGICAL_CPUS", "0")) > 1:
            tf.config.set_logical_device_configuration(
                tf.config.list_physical_devices("CPU")[0],
                [tf.config.LogicalDeviceConfiguration()] * int(os.environ["TRANSFERLAB_LOGICAL_CPUS"]))
    return backend


@dataclasses.dataclass(frozen=True)
class DefaultDevice:
    """The strategy off TensorFlow: Keras' default device, one replica (JAX multi-device is not wired up)."""

    name: str
    num_replicas_in_sync: int = 1

    def scope(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def get_strategy() -> Any:
    """Default strategy on one device, MirroredStrategy on several GPUs, MultiWorker when TF_CONFIG is set.

    TRANSFERLAB_STRATEGY=mirrored forces MirroredStrategy over every logical device (tests use two CPUs).
    Off TensorFlow: a DefaultDevice named "<backend>-default".
    """
    backend = configure()
    if backend != "tensorflow":
        if os.environ.get("TF_CONFIG") or os.environ.get("TRANSFERLAB_STRATEGY") == "mirrored":
            raise TransferLabError(f"TF_CONFIG and TRANSFERLAB_STRATEGY=mirrored need KERAS_BACKEND=tensorflow, "
                                   f"not {backend}.")
        return DefaultDevice(f"{backend}-default")
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if os.environ.get("TRANSFERLAB_STRATEGY") == "mirrored":
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        return tf.distribute.MirroredStrategy(gpus or cpus)
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_name(strategy: Any) -> str:
    return strategy.name if isinstance(strategy, DefaultDevice) else type(strategy).__name__


def gpu_names() -> list[str]:
    if configure() == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    import tensorflow as tf

    names = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        names.append(details.get("device_name", dev.name))
    return names


def device_label() -> str:
    gpus = gpu_names()
    return ", ".join(gpus) if gpus else "CPU"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    """The backend's and Keras' versions."""
    import keras

    if configure() == "tensorflow":
        import tensorflow as tf

        return {"tensorflow": tf.__version__, "jax": None, "keras": keras.__version__}
    import jax

    return {"tensorflow": None, "jax": jax.__version__, "keras": keras.__version__}


def environment() -> Environment:
    """Hardware and software a result was obtained on."""
    return Environment(cpu=cpu_model(), cpu_cores=os.cpu_count(), gpus=gpu_names(), device=device_label(),
                       keras_backend=configure(), python=platform.python_version(), commit=git_commit(),
                       **versions())
