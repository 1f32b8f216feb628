"""Honest probabilities: temperature scaling fitted on validation, its calibration error, and the "not sure" cut.

A softmax model trained to near-zero loss says 100% to everything, also to a photo unlike its training images.
Temperature scaling (Guo et al. 2017) divides the logits by one number T fitted to the validation negative
log-likelihood: it changes no prediction, only how sure each one claims to be. The "not sure" threshold is then
the lowest calibrated confidence at which the validation predictions kept are right at least `precision` of the
time, never below `floor`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ECE_BINS = 15
TARGET_PRECISION = 0.99
THRESHOLD_FLOOR = 0.5
_T_GRID = np.exp(np.linspace(np.log(0.05), np.log(20.0), 400))


@dataclass(frozen=True)
class Calibration:
    temperature: float = 1.0
    threshold: float = 0.0
    ece_before: float | None = None
    ece_after: float | None = None
    nll_before: float | None = None
    nll_after: float | None = None
    coverage: float | None = None           # share of validation images answered (not "not sure")
    accepted_accuracy: float | None = None  # accuracy on those
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Calibration:
        """A stored calibration, or the identity (T=1, no threshold) for runs that have none or a bad one."""
        if not isinstance(data, dict):
            return cls()
        try:
            t = float(data.get("temperature", 1.0))
            thr = float(data.get("threshold", 0.0))
        except (TypeError, ValueError):
            return cls()
        if not (np.isfinite(t) and t > 0 and np.isfinite(thr) and 0 <= thr <= 1):
            return cls()
        return cls(**{**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data},
                      "temperature": t, "threshold": thr})

    def apply(self, probs: np.ndarray) -> np.ndarray:
        return rescale(probs, self.temperature)


def rescale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax(log(p) / T): the model's softmax outputs at temperature T (rows sum to 1)."""
    logits = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)) / float(temperature)
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the confidence-weighted gap between claimed confidence and accuracy, over equal-width bins."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(right[mask].mean() - conf[mask].mean())
    return float(ece)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The T on a log grid (0.05..20) with the lowest validation NLL; a 1-D convex problem, so a grid is exact enough."""
    losses = [nll(rescale(probs, t), y) for t in _T_GRID]
    return float(_T_GRID[int(np.argmin(losses))])


def choose_threshold(probs: np.ndarray, y: np.ndarray, precision: float = TARGET_PRECISION,
                     floor: float = THRESHOLD_FLOOR) -> float:
    """The lowest confidence t >= floor at which predictions with confidence >= t are right >= `precision`."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    order = np.argsort(-conf)
    running = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(running >= precision)[0]
    if not len(ok):
        return 1.0
    return float(max(floor, conf[order][ok[-1]]))


def calibrate(probs: np.ndarray, y: np.ndarray) -> Calibration:
    """Fit T and the threshold on validation probabilities `probs` (N, C) with labels `y`."""
    probs = np.asarray(probs, np.float64)
    y = np.asarray(y, np.int64)
    if len(y) == 0:
        return Calibration()
    # With every validation image right, NLL falls without bound as T -> 0: no evidence for sharpening.
    t = fit_temperature(probs, y)
    if (probs.argmax(1) == y).all():
        t = max(t, 1.0)
    scaled = rescale(probs, t)
    thr = choose_threshold(scaled, y)
    kept = scaled.max(axis=1) >= thr
    return Calibration(
        temperature=t, threshold=thr,
        ece_before=expected_calibration_error(probs, y), ece_after=expected_calibration_error(scaled, y),
        nll_before=nll(probs, y), nll_after=nll(scaled, y),
        coverage=float(kept.mean()),
        accepted_accuracy=float((scaled.argmax(1) == y)[kept].mean()) if kept.any() else None,
        n=int(len(y)))
