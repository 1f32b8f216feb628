"""The benchmark's arithmetic: the FLOP count behind the roofline ratio and the per-layer profile."""

from core import bench, models


def test_alexnet4_forward_flops_match_paper_b_table_1():
    conv = [(5, 3, 16, 48), (3, 16, 32, 22), (3, 32, 64, 9), (3, 64, 128, 7)]  # kernel, cin, cout, output side
    dense = [(3 * 3 * 128, 512), (512, 512), (512, 3)]
    expected = sum(2 * k * k * cin * cout * side * side for k, cin, cout, side in conv) \
        + sum(2 * n_in * n_out for n_in, n_out in dense)
    assert bench.forward_flops(models.build_model("alexnet4", 3, 48, seed=0)) == expected == 21_908_480


def test_layer_profile_times_every_layer_and_rates_only_conv_and_dense():
    model = models.build_model("alexnet4", 3, 48, seed=0)
    rows = bench.layer_profile(model, batch=4, repeats=1)
    assert [r["layer"] for r in rows] == [layer.name for layer in model.layers[1:]]
    assert abs(sum(r["share"] for r in rows) - 1) < 1e-9 and all(r["ms"] > 0 for r in rows)
    rated = {r["layer"] for r in rows if r["gflops"]}
    assert rated == {"conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "dense_1", "dense_2", "dense_3"}
