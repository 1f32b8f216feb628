"""`python -m core bench`: the speed figures of issue 5, measured on this machine in one run.

Prints the input pipeline (cold decode vs warm cache), training throughput (all layers / frozen prefix /
feature-cached head), the machine's fp32 matmul roofline and alexnet4's share of it, single-image latency,
and time to accuracy for transfer and scratch on fruits360-3. Medians throughout; ratios from this run only.
Beside them, from the stored runs: the fine-tuning recipe's time to 0.99 / 0.995 next to paper B's stages
(core.recipe_times).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core import datasets, forward, hardware, model_input, models, recipe_times, runs, training, transfer
from core.config import TransferLabError
from core.pipeline import StageConfig
from core.run_records import RunRecord

SIZE = 48
VARIANT_IMAGES = 4096  # a multiple of every batch size tried, so XLA compiles one shape; ~10 s a variant


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """The machine's fp32 matmul rate with TensorFlow: the roofline we compare training against."""
    import tensorflow as tf

    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    mm = tf.function(lambda a, b: tf.matmul(a, b))
    mm(a, b).numpy()
    return 2 * n**3 / _median_time(lambda: mm(a, b).numpy(), repeats) / 1e9


def layer_flops(layer: Any) -> int:
    """Multiply-adds x2 of one Conv2D or Dense layer for one image; 0 for the rest (BN, pooling: memory-bound)."""
    import keras

    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        _, h, w, _ = layer.output.shape
        return int(2 * kh * kw * layer.kernel.shape[2] * layer.filters * h * w)
    if isinstance(layer, keras.layers.Dense):
        return int(2 * layer.kernel.shape[0] * layer.kernel.shape[1])
    return 0


def forward_flops(model: Any) -> int:
    """FLOPs of one image's forward pass: the conv and dense layers' multiply-adds x2."""
    return sum(layer_flops(layer) for layer in model.layers)


def training_flops(model: Any) -> int:
    """Forward + backward for one image: the backward pass costs two forwards (input and weight gradients),
    except the first layer's, whose input needs no gradient."""
    return 3 * forward_flops(model) - layer_flops(_first_weighted(model))


def _first_weighted(model: Any) -> Any:
    """The first conv or dense layer (after the input and the in-model preprocessing)."""
    return next(layer for layer in model.layers if layer_flops(layer))


def layer_profile(model: Any, batch: int = 64, repeats: int = 5) -> list[dict[str, Any]]:
    """Where a training step's time goes: each layer timed alone on a batch of its input shape, forward and
    forward + backward, with the GFLOP/s its convolution or matmul reaches (counted as in `training_flops`)."""
    import tensorflow as tf

    rows = []
    first_weighted = _first_weighted(model)
    for layer in model.layers[1:]:
        x = tf.random.uniform((batch, *layer.input.shape[1:]))
        forward = tf.function(lambda x, layer=layer: tf.reduce_sum(layer(x, training=True)))

        @tf.function
        def step(x: Any, layer: Any = layer, first: bool = layer is first_weighted) -> Any:
            with tf.GradientTape() as tape:
                if not first:  # the first layer's input needs no gradient
                    tape.watch(x)
                loss = tf.reduce_sum(layer(x, training=True))
            grads = tape.gradient(loss, ([] if first else [x]) + layer.trainable_weights)
            return tf.add_n([tf.reduce_sum(g) for g in grads]) if grads else loss

        seconds = {}
        for name, fn in (("forward", forward), ("step", step)):
            fn(x).numpy()
            seconds[name] = _median_time(lambda: fn(x).numpy(), repeats)  # noqa: B023 (called in this iteration)
        flops = (2 if layer is first_weighted else 3) * layer_flops(layer) * batch
        rows.append({"layer": layer.name, "forward_ms": seconds["forward"] * 1000, "ms": seconds["step"] * 1000,
                     "gflops": flops / seconds["step"] / 1e9 if flops else None})
    total = sum(r["ms"] for r in rows)
    for r in rows:
        r["share"] = r["ms"] / total
    return rows


def input_pipeline(limit: int | None) -> dict[str, float]:
    """Cold = decode every JPEG of the fruits360 train split; warm = one epoch from the decoded cache."""
    datasets.clear_cache("fruits360")
    t0 = time.perf_counter()
    x, y, _ = datasets.load_split_arrays("fruits360", "train", SIZE, limit_per_class=limit)
    cold = len(x) / (time.perf_counter() - t0)
    pre = model_input.preprocess("alexnet4", raw_pixels=True)

    def epoch() -> None:
        for _ in datasets.make_tf_dataset(x, y, batch_size=256, preprocess=pre, shuffle=True, seed=0):
            pass

    epoch()
    warm = len(x) / _median_time(epoch, 3)
    return {"images": len(x), "cold_img_s": cold, "warm_img_s": warm, "warm_over_cold": warm / cold}


def composite_pipeline(images: int = 256, sizes: tuple[int, ...] = (96, 224)) -> dict[str, Any]:
    """img/s of an epoch through tf.data with every image composited (seed 0, batch 64), per output size."""
    import tensorflow as tf

    from core import composite_stage

    shown = datasets.sample_images("fruits360-3", per_class=images // 3 + 1, size=100)
    x100 = np.stack([img for imgs in shown.values() for img in imgs])[:images]
    y = np.zeros(len(x100), np.int32)
    compositor = composite_stage.compositor(StageConfig(composite=1.0, seed=0))
    out: dict[str, Any] = {"images": len(x100)}
    for size in sizes:
        x = tf.cast(tf.round(tf.image.resize(x100, (size, size))), tf.uint8).numpy()

        def epoch(x: np.ndarray = x) -> None:
            for _ in datasets.make_tf_dataset(x, y, batch_size=64, preprocess=None, shuffle=True, seed=0,
                                              composite=compositor):
                pass

        epoch()
        out[f"img_s_{size}"] = len(x) / _median_time(epoch, 3)
    return out


def training_throughput(x: np.ndarray, y: np.ndarray, parent: Any, peak: float,
                        variants: bool = False, parent_raw_pixels: bool = True) -> dict[str, Any]:
    """img/s for the three ways a stage trains, on the same images, one timed epoch each after warm-up;
    `variants`: all-trainable img/s for batch 64/128/256 with and without XLA, the settings one would try next."""
    import keras
    import tensorflow as tf

    pre = model_input.preprocess("alexnet4", raw_pixels=True)
    parent_pre = model_input.preprocess("alexnet4", parent_raw_pixels)
    out: dict[str, float] = {}

    def timed_fit(model: Any, data: np.ndarray, preprocess, batch_size: int = 64, jit: bool = False) -> float:
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      jit_compile=jit)
        ds = datasets.make_tf_dataset(data, y[:len(data)], batch_size=batch_size, preprocess=preprocess,
                                      shuffle=True, seed=0)
        model.fit(ds, verbose=0)  # a whole epoch: the first pays a one-off ~2.5 s here, not only the first steps
        return len(data) / _median_time(lambda: model.fit(ds, verbose=0), 1)

    scratch = models.build_model("alexnet4", 3, SIZE, seed=0)
    out["all_trainable_img_s"] = timed_fit(scratch, x, pre)
    out["train_gflop_per_image"] = training_flops(scratch) / 1e9
    out["achieved_gflops"] = out["all_trainable_img_s"] * out["train_gflop_per_image"]
    out["matmul_peak_gflops"] = peak
    out["roofline_ratio"] = out["achieved_gflops"] / peak
    out["layer_profile"] = layer_profile(scratch)
    if variants:
        out["variants"] = [{"batch_size": b, "jit_compile": jit, "img_s": timed_fit(
            models.build_model("alexnet4", 3, SIZE, seed=0), x[:VARIANT_IMAGES], pre, b, jit)}
            for b in (64, 128, 256) for jit in (False, True)]

    frozen = transfer.replace_head(parent, 3, seed=0)
    transfer.apply_freeze(frozen, "first:4")
    out["frozen_prefix_img_s"] = timed_fit(frozen, x, parent_pre)
    k = transfer.cacheable_prefix(frozen)
    prefix, head = transfer.split_model(frozen, k)
    t0 = time.perf_counter()
    feats = forward.predict_batches(prefix, x, parent_pre)
    out["feature_extraction_img_s"] = len(x) / (time.perf_counter() - t0)
    out["feature_cached_head_img_s"] = timed_fit(head, feats, lambda t: t)
    tf.keras.backend.clear_session() if hasattr(tf, "keras") else None
    return out


def latency(run_id: str, image_path: Path) -> dict[str, float]:
    """Model-only ms for one image (compiled forward, no model.predict) and upload bytes -> answer ms."""
    from core import predict

    clf = predict.load_classifier(run_id)
    data = image_path.read_bytes()
    img = clf.prepare(data)
    model_ms = _median_time(lambda: clf.probabilities(img[None]), 100) * 1000
    answer_ms = _median_time(lambda: clf.classify(data), 50) * 1000
    cam_ms = _median_time(lambda: predict.gradcam(clf, img), 5) * 1000
    return {"model_ms": model_ms, "upload_to_answer_ms": answer_ms, "gradcam_ms": cam_ms}


def _find_parent() -> str | None:
    """The newest finished stage-2 run (alexnet4 on fruits360) in the real results store."""
    for row in runs.list_runs():
        if row["status"] == "done" and row["dataset"] == "fruits360" and row["arch"] == "alexnet4" \
                and row["has_model"]:
            return row["run_id"]
    return None


def _train(stage: StageConfig, parent: str | None = None) -> tuple[str, dict[str, Any]]:
    run_id = runs.create_run(RunRecord(stage=stage.to_dict(), preset="bench", parent_run=parent,
                                       method="scratch" if stage.source == "scratch" else "transfer",
                                       command="python -m core bench", hardware=hardware.environment()))
    status = training.execute_run(run_id, stage, parent)
    run = runs.get_run(run_id)
    if status != "done":
        raise TransferLabError(f"bench stage {stage.dataset} {status}: {run['status_info'].get('error')}")
    return run_id, run["metrics"]


def time_to_accuracy(quick: bool) -> dict[str, Any]:
    """Train the transfer stage and scratch on fruits360-3 with the project's own code; wall times and accuracy."""
    real_results = runs.runs_dir()
    parent = _find_parent()
    limit = 150 if quick else None
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRANSFERLAB_RESULTS_DIR"] = tmp
        try:
            if parent:
                shutil.copytree(real_results / parent, runs.run_dir(parent))
                out["parent"] = f"stored run {parent}"
            else:
                t0 = time.perf_counter()
                pre, _ = _train(StageConfig(dataset="cifar10", epochs=2 if quick else 8, patience=2,
                                            limit_per_class=limit))
                parent, _ = _train(StageConfig(dataset="fruits360", source="previous", freeze="first:3",
                                               epochs=2 if quick else 6, patience=2, limit_per_class=limit), pre)
                out["parent"] = f"trained by the bench in {time.perf_counter() - t0:.0f} s"
            _, tm = _train(StageConfig(dataset="fruits360-3", source="previous", freeze="first:4", epochs=20,
                                       patience=4, limit_per_class=limit), parent)
            _, sm = _train(StageConfig(dataset="fruits360-3", epochs=4 if quick else 30, patience=4,
                                       limit_per_class=limit))
        finally:
            os.environ.pop("TRANSFERLAB_RESULTS_DIR", None)
    for name, m in (("transfer", tm), ("scratch", sm)):
        out[name] = {k: m[k] for k in ("wall_time_s", "test_accuracy", "epochs_run", "time_to_target_s",
                                       "images_per_s", "feature_cache")}
    out["transfer_over_scratch_time"] = tm["wall_time_s"] / sm["wall_time_s"]
    return out


def run(quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": dataclasses.asdict(hardware.environment()), "quick": quick}
    results["stored_times"] = recipe_times.stage_times()  # before time_to_accuracy points the store elsewhere
    limit = 60 if quick else None
    results["input_pipeline"] = input_pipeline(limit)
    results["composite"] = composite_pipeline()
    results["matmul_peak_gflops"] = matmul_gflops()
    x, y, _ = datasets.load_split_arrays("fruits360-3", "train", SIZE, limit_per_class=300 if quick else None)
    parent_id = _find_parent()
    parent = runs.load_model(parent_id) if parent_id else models.build_model("alexnet4", 103, SIZE, seed=1)
    results["training"] = training_throughput(x, y, parent, results["matmul_peak_gflops"], variants=not quick,
                                              parent_raw_pixels=model_input.stage_takes_raw_pixels(parent_id))
    results["time_to_accuracy"] = time_to_accuracy(quick)
    from core.config import data_root

    sample = next(iter(sorted((data_root() / "fruits360" / "test").rglob("*.jpg"))))
    try:
        results["latency"] = latency(runs.DEFAULT_MODEL_DIR, sample)  # the model Classify answers with on a fresh clone
    except TransferLabError as exc:
        results["latency"] = {"error": str(exc)}
    return results


def report(r: dict[str, Any]) -> str:
    ip, tr, tta = r["input_pipeline"], r["training"], r["time_to_accuracy"]
    lines = [
        f"machine: {r['machine']['cpu']} x{r['machine']['cpu_cores']}, {r['machine']['device']}, "
        f"TF {r['machine']['tensorflow']}{'  (quick)' if r['quick'] else ''}",
        f"input pipeline, fruits360 train @{SIZE}px ({ip['images']} images): cold {ip['cold_img_s']:.0f} img/s, "
        f"warm {ip['warm_img_s']:.0f} img/s (x{ip['warm_over_cold']:.1f})",
        *([f"composite augmentation ({r['composite']['images']} fruits360-3 images, seeded, batch 64): "
           + ", ".join(f"{k[6:]}px {v:.0f} img/s" for k, v in r["composite"].items() if k.startswith("img_s_"))]
          if "composite" in r else []),
        f"training alexnet4 @{SIZE}px, batch 64: all trainable {tr['all_trainable_img_s']:.0f} img/s, "
        f"frozen conv1-4 {tr['frozen_prefix_img_s']:.0f} img/s, feature-cached head "
        f"{tr['feature_cached_head_img_s']:.0f} img/s (features extracted at {tr['feature_extraction_img_s']:.0f} img/s)",
        f"roofline: matmul fp32 {r['matmul_peak_gflops']:.1f} GFLOP/s; alexnet4 training "
        f"{tr['train_gflop_per_image'] * 1000:.1f} MFLOP/image -> {tr['achieved_gflops']:.1f} GFLOP/s = "
        f"{tr['roofline_ratio']:.0%} of peak (goal >= 75%); per layer, alone on a batch of 64 (share of the layers' summed time):",
    ]
    peak = r["matmul_peak_gflops"]
    lines += [f"  {p['layer']:<22} forward {p['forward_ms']:5.1f} ms, + backward {p['ms']:6.1f} ms ({p['share']:4.0%})"
              + (f"  {p['gflops']:5.1f} GFLOP/s = {p['gflops'] / peak:.0%} of peak" if p["gflops"] else "")
              for p in tr.get("layer_profile", [])]
    if tr.get("variants"):
        lines.append(f"all trainable on {VARIANT_IMAGES} images, img/s by batch size and XLA: " + ", ".join(
            f"{v['batch_size']}{' XLA' if v['jit_compile'] else ''} {v['img_s']:.0f}" for v in tr["variants"]))
    for name, goal in (("transfer", "<= 15 s"), ("scratch", "<= 180 s")):
        m = tta[name]
        lines.append(f"fruits360-3 {name}: {m['wall_time_s']:.1f} s wall ({goal}), test accuracy "
                     f"{m['test_accuracy']:.4f} (goal >= 0.995), {m['epochs_run']} epochs, "
                     f"{m['images_per_s']:.0f} img/s, feature cache {m['feature_cache']}")
    lines.append(f"transfer / scratch wall time: {tta['transfer_over_scratch_time']:.3f} (goal <= {1 / 12:.3f}); "
                 f"parent: {tta['parent']}")
    if r.get("stored_times"):
        lines += recipe_times.report_lines(r["stored_times"])
    lat = r["latency"]
    if "error" in lat:
        lines.append(f"latency: {lat['error']}")
    else:
        lines.append(f"classify one image (shipped default model): model {lat['model_ms']:.2f} ms (goal <= 2 ms), upload bytes -> answer "
                     f"{lat['upload_to_answer_ms']:.1f} ms (goal <= 250 ms), Grad-CAM {lat['gradcam_ms']:.1f} ms")
    return "\n".join(lines)


def main(quick: bool = False, as_json: bool = False) -> int:
    r = run(quick)
    print(json.dumps(r, indent=2, default=str) if as_json else report(r))
    return 0
