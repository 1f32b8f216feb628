"""The same small experiment on the local backend and on a local Ray head: wall time and runs at once.

The experiment is the Ray test's (tests/test_cluster.py): scratch vs transfer (fruits360 -> fruits360-3, conv 1-4
frozen) with 2 repeats, 1 epoch, 12 images per class: 5 runs. Each backend gets a fresh results root; the Ray head
(`ray start --head`, --cpus CPUs, 127.0.0.1) is started before the clock starts, as a running cluster would be.
The data root (TRANSFERLAB_DATA_DIR) needs fruits360 imported; its decoded cache should be warm (run twice).

    python benchmarks/bench_ray_vs_local.py [--cpus 2] [--epochs 1] [--limit 12]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SMALL = {"dataset": "fruits360-3", "epochs": 1, "limit_per_class": 12, "batch_size": 32, "patience": 0}
EXPERIMENT = {"name": "svt-small", "pipelines": [
    {"name": "scratch", "repeats": 2, "stages": [SMALL]},
    {"name": "transfer", "repeats": 2, "stages": [
        {**SMALL, "dataset": "fruits360"}, {**SMALL, "source": "previous", "freeze": "first:4"}]}]}


def train(config: Path, results: Path, extra: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--config", str(config), *extra], cwd=ROOT,
                          env={**env, "TRANSFERLAB_RESULTS_DIR": str(results)}, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"train failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, proc.stdout + proc.stderr


def main() -> None:
    from clusterkit import RayHead

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=SMALL["epochs"])
    parser.add_argument("--limit", type=int, default=SMALL["limit_per_class"], help="images per class")
    args = parser.parse_args()
    sets = ["--set", f"epochs={args.epochs}", "--set", f"limit_per_class={args.limit}"]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "experiment.json"
        config.write_text(json.dumps(EXPERIMENT))
        local_s, _ = train(config, Path(tmp) / "local", sets, dict(os.environ))
        head = RayHead(num_cpus=args.cpus)
        try:
            ray_s, out = train(config, Path(tmp) / "ray", [*sets, "--ray-address", head.address],
                               {**os.environ, **head.env})
        finally:
            head.stop()
    at_once = re.search(r"at most (\d+) at once", out)
    print(f"{args.epochs} epoch(s), {args.limit} images per class\n| backend | wall time | runs at once |\n|---|---|---|")
    print(f"| local | {local_s:.1f} s | 1 |")
    print(f"| Ray head, {args.cpus} CPUs | {ray_s:.1f} s | {at_once.group(1) if at_once else '?'} |")


if __name__ == "__main__":
    main()
