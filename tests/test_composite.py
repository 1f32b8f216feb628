"""Lab -> real augmentation on real Fruits-360 images: seeding, the mask, the composites, noise images, training."""

import numpy as np
import pytest

from core import composite, composite_arrays, composite_stage, datasets, runs, training
from core.pipeline import StageConfig
from core.run_records import RunRecord
from core.validation import validate_stage

pytestmark = pytest.mark.realdata
SIZE = 64


@pytest.fixture
def fruits(real_data_root) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """24 apples, pears and other fruit from the fruits360-3 training split, at 64 px."""
    x, y, classes = datasets.load_split_arrays("fruits360-3", "train", SIZE, limit_per_class=8)
    return x, y, classes


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def test_same_seed_gives_the_same_composites_and_another_seed_others(fruits):
    x = fruits[0]
    bank = composite_stage.background_bank()
    assert bank is not None and bank.shape[1:] == (32, 32, 3)
    first = composite.composite_batch(x, [3, 1], bank).numpy()
    again = composite.composite_batch(x, [3, 1], bank).numpy()
    other = composite.composite_batch(x, [3, 2], bank).numpy()
    assert first.shape == x.shape and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 255.0
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 20


def test_mask_covers_the_fruit_and_not_the_white_border(fruits):
    x = fruits[0]
    alpha = composite.foreground_mask(x).numpy()[..., 0]
    corners = np.concatenate([alpha[:, :5, :5], alpha[:, :5, -5:], alpha[:, -5:, :5], alpha[:, -5:, -5:]], 1)
    assert alpha.shape == x.shape[:3] and 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert corners.mean() < 0.01, corners.mean()
    assert alpha[:, 24:40, 24:40].mean() > 0.99
    white = x.min(-1) > 245
    assert alpha[white].mean() < 0.05  # white pixels outside the fruit stay out (highlights inside may not)


def test_composites_leave_almost_no_white_background(fruits):
    x = fruits[0]
    out = composite.composite_batch(x, [0, 7], composite_stage.background_bank()).numpy()
    assert (x.min(-1) > 245).mean() > 0.2
    assert (out.min(-1) > 245).mean() < 0.02


def test_probability_keeps_the_other_images_unchanged(fruits):
    x = fruits[0]
    out = composite.composite_batch(x, [1, 1], None, probability=0.5).numpy()
    same = np.all(out == x.astype(np.float32), axis=(1, 2, 3))
    assert 0 < same.sum() < len(x)


def test_fixed_copies_and_the_tf_data_path_are_seeded(fruits):
    x, y, _ = fruits
    stage = StageConfig(composite=1.0, composite_copies=2, seed=4)
    copies = list(composite_arrays.composited_copies(x[:10], 2, seed=4))
    assert len(copies) == 2 and copies[0].dtype == np.uint8 and copies[0].shape == x[:10].shape
    np.testing.assert_array_equal(copies[1], list(composite_arrays.composited_copies(x[:10], 2, seed=4))[1])
    assert not np.array_equal(copies[0], copies[1])

    def one_epoch() -> np.ndarray:
        ds = datasets.make_tf_dataset(x, y, batch_size=8, preprocess=None, shuffle=True, seed=4,
                                      composite=composite_stage.compositor(stage))
        return np.concatenate([xb.numpy() for xb, _ in ds])

    a, b = one_epoch(), one_epoch()
    np.testing.assert_array_equal(a, b)
    assert (a.min(-1) > 245).mean() < 0.02


def test_noise_images_are_labelled_noise_and_need_a_noise_class(fruits):
    x, y, classes = fruits
    stage = StageConfig(dataset="fruits360-3", noise_images=6, seed=1)
    x2, y2 = composite_stage.training_arrays(stage, x, y, classes)
    assert len(x2) == len(x) + 6 and x2.dtype == np.uint8
    assert (y2[len(x):] == classes.index("noise")).all()
    np.testing.assert_array_equal(x2[len(x):], composite_stage.training_arrays(stage, x, y, classes)[0][len(x):])
    assert composite_stage.training_arrays(StageConfig(), x, y, classes)[0] is x
    assert "noise_images" not in validate_stage(stage)
    assert "noise" in validate_stage(StageConfig(dataset="fruits360", noise_images=6))["noise_images"]
    bad = validate_stage(StageConfig(composite=1.5, composite_copies=-1, noise_images=-2))
    assert {"composite", "composite_copies", "noise_images"} <= set(bad)


def test_a_tiny_stage_with_composite_trains_on_both_paths(real_data_root, results_dir):
    small = dict(dataset="fruits360-3", epochs=1, limit_per_class=8, batch_size=8, patience=0)

    def run(stage: StageConfig, parent: str | None = None) -> dict:
        run_id = runs.create_run(RunRecord(stage=stage.to_dict(), parent_run=parent))
        assert training.execute_run(run_id, stage, parent) == "done", runs.get_run(run_id)["status_info"]
        return runs.get_run(run_id)

    scratch = run(StageConfig(**small, composite=0.8, noise_images=4))
    assert scratch["metrics"]["feature_cache"] is False
    assert scratch["metrics"]["n_train"] == scratch["metrics"]["n_fit"] == 3 * 8 + 4
    assert scratch["config"]["stage"]["composite"] == 0.8 and scratch["config"]["stage"]["noise_images"] == 4
    child = StageConfig(**small, source=f"run:{scratch['run_id']}", freeze="first:4", composite=1.0,
                        composite_copies=2)
    cached = run(child, scratch["run_id"])
    assert cached["metrics"]["feature_cache"] is True
    assert cached["metrics"]["n_fit"] == 3 * cached["metrics"]["n_train"]
    assert cached["config"]["stage"]["composite_copies"] == 2
    on_the_fly = run(StageConfig(**{**child.to_dict(), "composite_copies": 0}), scratch["run_id"])
    assert on_the_fly["metrics"]["feature_cache"] is False
    assert on_the_fly["metrics"]["n_fit"] == on_the_fly["metrics"]["n_train"]


def test_piles_are_seeded_and_hold_several_objects_of_one_class(fruits):
    """With labels, half the copies are piles: several objects of the image's own class on one background."""
    x, y, _ = fruits
    first = list(composite_arrays.composited_copies(x[:16], 1, seed=2, labels=y[:16]))[0]
    again = list(composite_arrays.composited_copies(x[:16], 1, seed=2, labels=y[:16]))[0]
    np.testing.assert_array_equal(first, again)
    plain = list(composite_arrays.composited_copies(x[:16], 1, seed=2))[0]
    assert not np.array_equal(first, plain)
    partners, active = composite_arrays._pile_plan(y, np.arange(16), np.random.default_rng(0))
    assert (y[partners] == y[np.arange(16)][None, :]).all(), "partners come from the image's own class"
    counts = active.sum(0)
    assert counts.min() >= composite_arrays.PILE_PARTNERS[0] and counts.max() <= composite_arrays.PILE_PARTNERS[1]
    one = composite.pile_batch(x[:1], x[None, 1:2].repeat(3, 0), np.ones((3, 1), bool), [0, 1]).numpy()
    assert one.shape == (1, *x.shape[1:]) and (one.min(-1) > 245).mean() < 0.02
