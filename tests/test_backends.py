"""Training on the JAX backend on a machine without TensorFlow (the GPU server has none)."""

import json
import os
import subprocess
import sys
import textwrap

from core import runs, tb
from core.config import REPO_ROOT

# Runs `python -m core train` in-process with every `import tensorflow` failing as if it were not installed.
NO_TENSORFLOW_TRAIN = textwrap.dedent("""
    import importlib.abc
    import sys

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, NoTensorFlow())
    from core.cli import main

    code = main(sys.argv[1:])
    leaked = [m for m in ("tensorflow", "streamlit") if m in sys.modules]
    assert not leaked, f"imported {leaked}"
    sys.exit(code)
""")


def test_jax_backend_trains_a_transfer_chain_without_tensorflow(real_data_root, tmp_path, monkeypatch):
    results = tmp_path / "results"
    cfg = tmp_path / "cfg.json"
    small = {"dataset": "fruits360-3", "epochs": 1, "limit_per_class": 12, "batch_size": 16, "patience": 0}
    cfg.write_text(json.dumps({"stages": [small, {**small, "source": "previous", "freeze": "first:4"}]}))
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "TRANSFERLAB_DATA_DIR": str(real_data_root), "TRANSFERLAB_RESULTS_DIR": str(results)}
    proc = subprocess.run([sys.executable, "-c", NO_TENSORFLOW_TRAIN, "train", "--config", str(cfg), "--json"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(results))
    scratch, frozen = sorted(runs.list_runs(), key=lambda r: r["stage_index"])
    metrics = [runs.get_run(r["run_id"])["metrics"] for r in (scratch, frozen)]
    assert [r["status"] for r in (scratch, frozen)] == ["done", "done"]
    assert frozen["parent_run"] == scratch["run_id"]
    for m in metrics:
        assert m["keras_backend"] == "jax" and m["tensorflow"] is None and m["jax"]
        assert m["strategy"] == "jax-default" and m["replicas"] == 1 and m["device"] == "CPU"
        assert 0.0 <= m["test_accuracy"] <= 1.0 and m["inference_ms_per_image"] > 0
    assert [m["feature_cache"] for m in metrics] == [False, True]
    for row in (scratch, frozen):  # TensorBoard scalars without TensorFlow, through tensorboard's own writer
        assert list((tb.log_dir(row["run_id"]) / "validation").glob("events.out.tfevents.*"))
