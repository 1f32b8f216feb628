"""Results page at scale: N synthetic finished runs in a temporary results root, then `runs.list_runs()` and the
Results page (rendered with Streamlit's AppTest) timed. Prints one line per N.

list_runs cold = the first call on the new root (the run index is built from every folder); warm = median of
later calls (the index is checked against the folders, rows read from it). Page = median of renders after a
first one (AppTest runs the script in this process; module imports are paid by the first render); "checked"
forces the look at every run folder that pages otherwise do at most every 2 s.

    python benchmarks/bench_results_page.py [--runs 85 1000 10000] [--renders 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
APP = str(Path(__file__).resolve().parents[1] / "app.py")
METHODS = ("scratch", "transfer")
DATASETS = ("fruits360-3", "cifar10", "mnist")


def write_runs(runs_dir: Path, n: int) -> None:
    """Records shaped as training writes them (config, status, metrics, labels; no model file)."""
    for i in range(n):
        method, dataset = METHODS[i % 2], DATASETS[(i // 2) % 3]
        run_id = f"2026{i:08d}-{dataset}-alexnet4-{i:04x}"
        folder = runs_dir / run_id
        folder.mkdir(parents=True)
        created = f"2026-01-{1 + i // 86400 % 28:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}+00:00"
        accuracy = 0.6 + (i % 37) / 100
        cfg = {"run_id": run_id, "created": created, "preset": "paper-b-scratch-vs-transfer",
               "pipeline_name": method, "method": method, "parent_run": None, "stage_index": 0,
               "stage_count": 1, "repeat_index": i % 10, "repeats": 10,
               "stage": {"dataset": dataset, "arch": "alexnet4", "source": "scratch" if method == "scratch"
                         else "previous", "freeze": "none", "epochs": 30, "target_accuracy": 0.9,
                         "limit_per_class": None, "input_size": 48, "seed": i}}
        metrics = {"test_accuracy": accuracy, "val_accuracy": accuracy, "kappa": accuracy - 0.05,
                   "wall_time_s": 100.0 + i % 50, "time_to_target_s": None, "target_accuracy": 0.9,
                   "epochs_run": 30, "n_train": 7896, "device": "CPU", "classes": ["a", "b", "c"]}
        for name, obj in (("config.json", cfg), ("metrics.json", metrics), ("labels.json", ["a", "b", "c"]),
                          ("status.json", {"status": "done", "finished": created})):
            (folder / name).write_text(json.dumps(obj))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(n: int, renders: int) -> dict[str, float]:
    from streamlit.testing.v1 import AppTest

    from core import run_index, runs

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRANSFERLAB_RESULTS_DIR"] = tmp
        write_runs(runs.runs_dir(), n)
        cold = timed(runs.list_runs)
        warm = statistics.median(timed(runs.list_runs) for _ in range(5))
        assert len(runs.list_runs()) == n

        def render() -> None:
            at = AppTest.from_file(APP, default_timeout=300).run()
            at.switch_page("pages/results.py").run()
            assert not at.exception, at.exception

        def checked() -> None:
            run_index._last_scan.clear()
            render()

        first = timed(render)
        page = statistics.median(timed(render) for _ in range(renders))
        page_checked = statistics.median(timed(checked) for _ in range(renders))
    return {"runs": n, "list_cold_s": cold, "list_warm_s": warm, "page_first_s": first, "page_s": page,
            "page_checked_s": page_checked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[85, 1000, 10000])
    parser.add_argument("--renders", type=int, default=3)
    args = parser.parse_args()
    print(f"{'runs':>6} {'list_runs cold':>15} {'list_runs warm':>15} {'page 1st':>9} {'page median':>12} "
          f"{'page checked':>13}")
    for n in args.runs:
        r = bench(n, args.renders)
        print(f"{n:>6} {r['list_cold_s']:>14.3f}s {r['list_warm_s']:>14.3f}s {r['page_first_s']:>8.2f}s "
              f"{r['page_s']:>11.2f}s {r['page_checked_s']:>12.2f}s", flush=True)


if __name__ == "__main__":
    main()
