"""The learning-rate finder (core.lr_find) on tiny real data, its suggestion rules, and its command line."""

import math

import numpy as np
import pytest

from core import cli, lr_find
from core.pipeline import StageConfig


def test_valley_and_steepest_on_a_textbook_curve():
    lrs = list(np.geomspace(1e-6, 1.0, 61))
    # flat, a fall between 1e-4 and 1e-2 (steepest near 1e-3), then a blow-up
    losses = [2.0 - 1.5 / (1 + math.exp(-3 * (math.log10(lr) + 3))) + (50 * lr if lr > 0.05 else 0) for lr in lrs]
    assert 3e-4 < lr_find.steepest(lrs, losses) < 3e-3
    assert 1e-4 < lr_find.valley(lrs, losses) < 1e-1
    assert lr_find.smooth([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])  # bias-corrected: no pull towards 0


def test_ramp_multiplies_by_the_same_factor_each_step():
    ramp = lr_find.ExponentialRamp(1e-6, 1.0, 7)
    values = [float(ramp(s)) for s in range(7)]
    assert values[0] == pytest.approx(1e-6, rel=1e-4) and values[-1] == pytest.approx(1.0, rel=1e-4)
    assert np.allclose(np.diff(np.log10(values)), 1.0, atol=1e-3)


def test_finder_returns_a_loss_curve_and_a_suggestion_inside_the_ramp(real_data_root):
    stage = StageConfig(dataset="fruits360-3", limit_per_class=40, batch_size=16)
    seen = []
    result = lr_find.find_lr(stage, steps=40, start_lr=1e-6, end_lr=1.0, progress=seen.append)
    lrs, losses = result["lrs"], result["losses"]
    assert 10 <= len(lrs) == len(losses) == len(result["smoothed"]) == result["steps"] <= 40
    assert all(b > a for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[0] == pytest.approx(1e-6, rel=1e-4)
    assert all(math.isfinite(v) and v > 0 for v in losses)
    assert lrs[0] <= result["suggestion"] <= lrs[-1]
    assert all(lrs[0] / 10 <= v <= lrs[-1] for v in result["suggestions"].values())
    assert any("loading data" in m for m in seen)


def test_cli_asks_for_a_parent_when_the_stage_continues_another(capsys):
    code = cli.main(["lr-find", "--preset", "paper-b-scratch-vs-transfer", "--pipeline", "transfer"])
    err = capsys.readouterr().err
    assert code == 2 and "--parent RUN_ID" in err and err.count("\n") == 1


def test_cli_refuses_an_upside_down_ramp(real_data_root, capsys):
    code = cli.main(["lr-find", "--preset", "paper-b-scratch-vs-transfer", "--pipeline", "scratch",
                     "--start-lr", "1", "--end-lr", "0.1", "--steps", "20"])
    err = capsys.readouterr().err
    assert code == 2 and "0 < start" in err
