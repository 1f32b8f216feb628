"""What a group of runs was trained with (epochs, images per class, target accuracy) and whether its numbers
are results at all: shortened against its preset, or near chance. Pure over `runs.list_runs()` rows."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from core.config import TransferLabError

CHANCE_MARGIN = 0.05  # test accuracy within 5 points of 1 / number of classes is "near chance"


def _known(values: Iterable[Any]) -> list[Any]:
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _span(values: Iterable[Any], fmt: str = "{}") -> str:
    """'20', '2–20' for a spread, '—' when unknown."""
    known = sorted(set(_known(values)))
    if not known:
        return "—"
    return fmt.format(known[0]) if len(known) == 1 else f"{fmt.format(known[0])}–{fmt.format(known[-1])}"


@lru_cache(maxsize=64)
def preset_epochs(preset: str | None, pipeline: str | None, stage_index: int | None) -> int | None:
    """The epochs the preset itself asks for at that stage; None for custom pipelines or unknown stages."""
    from core import pipeline as pipelines

    if not preset or preset not in pipelines.list_presets():
        return None
    try:
        exp = pipelines.load_preset(preset)
    except TransferLabError:
        return None
    pipe = next((p for p in exp.pipelines if p.name == pipeline), None)
    if pipe is None:
        return None
    stages = pipe.stages
    stage = stages[stage_index] if stage_index is not None and 0 <= stage_index < len(stages) else stages[-1]
    return stage.epochs


def per_class(row: dict[str, Any]) -> float | None:
    n_train, classes = row.get("n_train"), row.get("n_classes")
    if not n_train or not classes:
        return None
    return float(n_train) / float(classes)


def target_text(target: str, reached: int, n: int) -> str:
    """'target 0.99: reached by 3 of 10' (`target` as group_context writes it; '—' when not recorded)."""
    return f"target {target}: reached by {reached} of {n}" if target != "—" else f"reached by {reached} of {n}"


def group_context(members: list[dict[str, Any]]) -> dict[str, Any]:
    """How a group of finished runs was trained, and warnings when its numbers are not results."""
    epochs = [m.get("epochs") for m in members]
    limits = _known(m.get("limit_per_class") for m in members)
    warnings = []
    short = [m for m in members if m.get("epochs") is not None
             and (wanted := preset_epochs(m.get("preset"), m.get("pipeline"), m.get("stage_index"))) is not None
             and m["epochs"] < wanted]
    if short:
        wanted = preset_epochs(short[0].get("preset"), short[0].get("pipeline"), short[0].get("stage_index"))
        warnings.append(f"shortened: {len(short)} of {len(members)} run(s) trained {_span(m['epochs'] for m in short)}"
                        f" epoch(s), the preset asks for {wanted}")
    if limits:
        warnings.append(f"shortened: images per class limited to {_span(limits)}")
    accs = _known(m.get("test_accuracy") for m in members)
    classes = _known(m.get("n_classes") for m in members)
    if accs and classes:
        chance = 1.0 / max(classes)
        mean = sum(accs) / len(accs)
        if mean <= chance + CHANCE_MARGIN:
            warnings.append(f"near chance: test accuracy {mean:.2f} against {chance:.2f} for guessing among "
                            f"{max(classes)} classes")
    return {"epochs": _span(epochs), "per_class": _span((round(p) for p in _known(map(per_class, members))), "{:,}"),
            "target": _span((m.get("target_accuracy") for m in members), "{:g}"), "warnings": warnings}


def describe(context: dict[str, Any]) -> str:
    """'20 epochs · 2,632 images per class · target 0.99'."""
    return (f"{context['epochs']} epochs · {context['per_class']} images per class · "
            f"target {context['target']}")
