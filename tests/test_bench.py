"""The benchmark's arithmetic: the FLOP count behind the roofline ratio and the per-layer profile."""

from core import bench, models


def test_alexnet4_forward_flops_match_paper_b_table_1():
    conv = [(5, 3, 16, 48), (3, 16, 32, 22), (3, 32, 64, 9), (3, 64, 128, 7)]  # kernel, cin, cout, output side
    dense = [(3 * 3 * 128, 512), (512, 512), (512, 3)]
    expected = sum(2 * k * k * cin * cout * side * side for k, cin, cout, side in conv) \
        + sum(2 * n_in * n_out for n_in, n_out in dense)
    model = models.build_model("alexnet4", 3, 48, seed=0)
    assert bench.forward_flops(model) == expected == 21_908_480
    first_conv = 2 * 5 * 5 * 3 * 16 * 48 * 48  # no input gradient for the first layer
    assert bench.training_flops(model) == 3 * expected - first_conv


def test_layer_profile_times_every_layer_and_rates_only_conv_and_dense():
    model = models.build_model("alexnet4", 3, 48, seed=0)
    rows = bench.layer_profile(model, batch=4, repeats=1)
    assert [r["layer"] for r in rows] == [layer.name for layer in model.layers[1:]]
    assert abs(sum(r["share"] for r in rows) - 1) < 1e-9
    assert all(0 < r["forward_ms"] and 0 < r["ms"] for r in rows)
    rated = {r["layer"]: r["gflops"] for r in rows if r["gflops"] is not None}
    assert set(rated) == {"conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense_1", "dense_2", "dense_3"}
    assert all(0 < g < float("inf") for g in rated.values())


def test_report_prints_every_goal_with_its_figure():
    side = {"wall_time_s": 12.0, "test_accuracy": 0.96, "epochs_run": 6, "images_per_s": 4000.0,
            "feature_cache": True}
    r = {"machine": {"cpu": "cpu", "cpu_cores": 2, "device": "CPU", "tensorflow": "2.x"}, "quick": False,
         "matmul_peak_gflops": 100.0,
         "input_pipeline": {"images": 10, "cold_img_s": 1.0, "warm_img_s": 5.0, "warm_over_cold": 5.0},
         "composite": {"images": 256, "img_s_96": 900.0, "img_s_224": 210.0},
         "training": {"all_trainable_img_s": 400.0, "frozen_prefix_img_s": 1700.0, "feature_cached_head_img_s": 6000.0,
                      "feature_extraction_img_s": 1800.0, "train_gflop_per_image": 0.06, "achieved_gflops": 24.0,
                      "roofline_ratio": 0.24,
                      "layer_profile": [{"layer": "conv2d_1", "forward_ms": 20.0, "ms": 45.0, "share": 1.0,
                                         "gflops": 23.0}],
                      "variants": [{"batch_size": 64, "jit_compile": True, "img_s": 404.0}]},
         "time_to_accuracy": {"transfer": side, "scratch": {**side, "wall_time_s": 186.0},
                              "transfer_over_scratch_time": 12.0 / 186.0, "parent": "stored run x"},
         "latency": {"model_ms": 0.27, "upload_to_answer_ms": 0.8, "gradcam_ms": 48.0},
         "stored_times": [{"preset": "paper-b-recipe", "runs": 0}]}
    text = bench.report(r)
    for figure in ("24% of peak (goal >= 75%)", "conv2d_1", "forward  20.0 ms", "23% of peak", "64 XLA 404",
                   "12.0 s wall (<= 15 s)", "186.0 s wall (<= 180 s)", "0.065 (goal <= 0.083)",
                   "model 0.27 ms (goal <= 2 ms)", "96px 900 img/s, 224px 210 img/s",
                   "time to val accuracy 0.99 / 0.995 from stored runs", "paper-b-recipe: not stored yet"):
        assert figure in text, figure
