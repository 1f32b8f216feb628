"""The compute device, probed once in a background thread: importing TensorFlow and listing GPUs takes seconds,
and no page should wait for it. `answer()` is None until the probe has answered."""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_current: dict[str, Any] = {}  # the latest probe: {"thread": Thread, "answer": str | None}


def _probe(state: dict[str, Any]) -> None:
    try:
        from core import hardware

        gpus = hardware.gpu_names()
        state["answer"] = ", ".join(gpus) if gpus else "CPU — no GPU found"
    except Exception as exc:  # noqa: BLE001 - the sidebar must never take the page down
        state["answer"] = f"unknown ({type(exc).__name__})"


def start(again: bool = False) -> None:
    """Start the probe unless it already ran (`again`: probe afresh)."""
    global _current
    with _lock:
        if _current and not again:
            return
        state: dict[str, Any] = {"answer": None}
        state["thread"] = threading.Thread(target=_probe, args=(state,), name="transferlab-gpu-probe", daemon=True)
        _current = state
        state["thread"].start()


def answer() -> str | None:
    """GPU names, 'CPU — no GPU found', or None while the probe is still looking."""
    start()
    return _current["answer"]


def wait(timeout_s: float) -> str | None:
    start()
    _current["thread"].join(timeout_s)
    return _current["answer"]
