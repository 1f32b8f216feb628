"""Terminal output for `python -m core`: JSON, plain tables and a progress line (shared by the commands)."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[("" if r.get(c) is None else f"{r[c]:.4f}" if isinstance(r.get(c), float) else str(r[c]))
              for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


class ConsoleProgress:
    """A one-line progress bar on a terminal; one line per epoch and phase in a log file."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last_key: tuple = ()

    def __call__(self, info: dict[str, Any]) -> None:
        head = (f"[{info.get('step', 1)}/{info.get('steps', 1)}] {info.get('pipeline', '')} "
                f"stage {info.get('stage', 1)}/{info.get('stages', 1)}"
                + (f" repeat {info['repeat']}/{info['repeats']}" if info.get("repeats", 1) > 1 else ""))
        if info.get("phase") != "training":
            print(f"{head}: {info.get('phase')}", file=sys.stderr, flush=True)
            return
        frac = info["batch"] / info["batches"]
        bar = "#" * int(frac * 20)
        logs = info.get("logs", {})
        line = (f"{head} epoch {info['epoch']}/{info['epochs']} [{bar:<20}] {info['batch']}/{info['batches']} "
                f"loss {logs.get('loss', float('nan')):.4f} acc {logs.get('accuracy', float('nan')):.4f} "
                f"eta {info.get('eta_s', 0):.0f}s")
        if self.tty:
            end = "\n" if info["batch"] == info["batches"] else ""
            print("\r" + line, end=end, file=sys.stderr, flush=True)
        elif info["batch"] == info["batches"]:
            print(line, file=sys.stderr, flush=True)
