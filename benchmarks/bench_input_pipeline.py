"""Input-pipeline throughput: the fruits360 train split at size 48, cold (decoding) vs warm (cached arrays).

Cold = cache cleared (memory and disk), then load_split_arrays (decodes every stored train image, writes the
.npy cache) plus one epoch through make_tf_dataset. Warm = load_split_arrays again (a cache hit, timed on its
own), then full epochs through make_tf_dataset over those arrays, median of 3. Imports fruits360 from ../shared/data first when the data root lacks it.

    python benchmarks/bench_input_pipeline.py [--size 48] [--batch-size 64] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FRUITS_ZIP = "fruits-360-v2019.05.06.1-subset.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warm-epochs", type=int, default=3)
    parser.add_argument("--data-dir", help="data root (default: TRANSFERLAB_DATA_DIR or <repo>/data)")
    args = parser.parse_args()
    if args.data_dir:
        os.environ["TRANSFERLAB_DATA_DIR"] = args.data_dir

    import tensorflow as tf  # imported before timing: the benchmark measures the pipeline, not imports

    from core import datasets
    from core.config import data_root, shared_data_dir

    ensure_fruits(datasets, data_root(), shared_data_dir())
    datasets.clear_cache("fruits360", disk=True)

    def load() -> tuple:
        return datasets.load_split_arrays("fruits360", "train", args.size)

    def one_epoch(ds) -> int:
        return sum(int(xb.shape[0]) for xb, _ in ds)

    def pipeline(x, y):
        return datasets.make_tf_dataset(
            x, y, batch_size=args.batch_size, preprocess=lambda t: t / 127.5 - 1.0, shuffle=True, seed=0
        )

    decodes = datasets.DECODE_COUNT
    start = time.perf_counter()
    x, y, _ = load()
    cold_load = time.perf_counter() - start
    n = one_epoch(pipeline(x, y))
    cold = time.perf_counter() - start
    decoded = datasets.DECODE_COUNT - decodes

    start = time.perf_counter()
    x, y, _ = load()  # a cache hit: indexes the cached array
    warm_load = time.perf_counter() - start
    ds = pipeline(x, y)
    warm_times = []
    for _ in range(args.warm_epochs):
        start = time.perf_counter()
        assert one_epoch(ds) == n
        warm_times.append(time.perf_counter() - start)
    warm = statistics.median(warm_times)
    assert datasets.DECODE_COUNT - decodes == decoded, "warm epochs must not decode"
    print(f"input pipeline: fruits360 train split, size {args.size}, batch {args.batch_size}, "
          f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")  # fmt: skip
    print(f"  images per epoch: {n:,} (the cold load decoded {decoded:,} stored train files, val included)")
    print(f"  cold: load_split_arrays {cold_load:.2f} s (decode + .npy write) + 1 epoch = {cold:6.2f} s "
          f"{n / cold:9,.0f} images/s")  # fmt: skip
    print(f"  warm: 1 epoch over the cached arrays, median of {args.warm_epochs} = {warm:6.2f} s "
          f"{n / warm:9,.0f} images/s  [epochs {', '.join(f'{t:.2f}' for t in warm_times)} s; "
          f"cache-hit load_split_arrays {warm_load:.2f} s]")  # fmt: skip
    print(f"  warm / cold speed-up: {cold / warm:.1f}x")


def ensure_fruits(datasets, root: Path, shared: Path) -> None:
    if any(d["name"] == "fruits360" and d["available"] for d in datasets.list_datasets()):
        return
    source = shared / FRUITS_ZIP
    if not source.exists():
        sys.exit(f"fruits360 is not in {root} and {source} does not exist: import it first.")
    print(f"importing {source.name} into {root} ...", flush=True)
    start = time.perf_counter()
    report = datasets.import_dataset(source)
    print(f"  imported {report.total:,} images in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
