"""The findings in `results/README.md`, computed from the stored runs (never typed in by hand)."""

from __future__ import annotations

import re
from pathlib import Path

from core import compare, runs
from core.config import atomic_write_text, results_root

BEGIN, END = "<!-- findings:begin -->", "<!-- findings:end -->"


def _fmt(mean: float | None, std: float | None, digits: int = 1) -> str:
    if mean is None or mean != mean:
        return "—"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std == std and std is not None else "")


PAPER_B = "paper-b-scratch-vs-transfer"


def findings_markdown(rows: list[dict] | None = None, dataset: str = "fruits360-3", preset: str = PAPER_B) -> str:
    """Paper B's headline per device: scratch against the transfer stage, mean ± std over the stored repeats."""
    rows_all = runs.list_runs() if rows is None else rows
    rows = [r for r in rows_all if r.get("preset") == preset]
    devices = sorted({str(r["device"]) for r in compare.finished(rows) if r.get("dataset") == dataset
                      and r.get("device")})
    blocks = [_device_findings([r for r in rows if r.get("device") == d], dataset, d) for d in devices]
    blocks = [b for b in blocks if b]
    if not blocks:
        return f"No finished scratch and transfer runs of `{preset}` on `{dataset}` yet."
    others = [_preset_table(rows_all, name) for name in ("paper-a-alexnet-widths", "paper-c-vgg-finetune",
                                                          "paper-d-architecture-survey")]
    published = ("Published (paper B, hardware unknown): scratch 104.79 min / 0.95019, transfer 8.53 min / 0.96474 "
                 "(12.3x) — `results/reference/`.")
    return "\n\n".join([*blocks, published, *[t for t in others if t]])


def _preset_table(rows: list[dict], preset: str) -> str | None:
    """Every finished stage of a preset, grouped by device, dataset, training images, arch and freeze policy:
    n, accuracy, time. The image count tells a shortened run (`limit_per_class`) from the preset's own."""
    done = [r for r in compare.finished(rows) if r.get("preset") == preset]
    if not done:
        return None
    groups: dict[tuple, list[dict]] = {}
    for r in done:
        key = (str(r.get("device")), str(r.get("pipeline")), int(r.get("stage_index") or 0), str(r.get("dataset")),
               r.get("n_train") or 0, str(r.get("arch")), str(r.get("freeze")))
        groups.setdefault(key, []).append(r)
    lines = [f"**{preset}** — every finished stage; mean ± std where repeated.", "",
             "| device | pipeline | stage | dataset | train images | arch | freeze | runs | test accuracy | wall time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups):
        members = groups[key]
        acc = compare._stats([float(m["test_accuracy"]) for m in members])
        wall = compare._stats([float(m["wall_time_s"]) for m in members])
        cells = [*map(str, key[:4]), f"{key[4]:,}" if key[4] else "—", *key[5:]]
        lines.append("| " + " | ".join(cells) + f" | {len(members)} | {_fmt(*acc, 4)} | {_fmt(*wall)} |")
    return "\n".join(lines)


def _device_findings(rows: list[dict], dataset: str, device: str) -> str | None:
    result = compare.scratch_vs_transfer(rows, dataset)
    s, t = result["scratch"], result["transfer"]
    if not s or not t:
        return None
    lines = [
        f"**{device}** — target `{dataset}`, test split of Fruits-360; mean ± std over repeats.",
        "",
        "| method | runs | wall time (s) | time to target (s) | test accuracy | kappa |",
        "|---|---|---|---|---|---|",
    ]
    for name, side in (("scratch", s), ("transfer (last stage)", t)):
        lines.append(f"| {name} | {side['n']} | {_fmt(side['wall_time_s_mean'], side['wall_time_s_std'])} | "
                     f"{_fmt(side['time_to_target_s_mean'], side['time_to_target_s_std'])} "
                     f"({side['reached_target']}/{side['n']} reached) | "
                     f"{_fmt(side['test_accuracy_mean'], side['test_accuracy_std'], 4)} | "
                     f"{_fmt(side['kappa_mean'], side['kappa_std'], 4)} |")
    lines += [
        "",
        f"- Transfer's last stage is **{result['speedup']:.1f}x** faster than scratch training "
        f"(time ratio {1 / result['speedup']:.3f}); counting the earlier stages it builds on once per run, "
        f"{result['speedup_incl_pretrain']:.2f}x.",
        f"- Test accuracy, transfer minus scratch: **{result['accuracy_delta']:+.4f}**; kappa "
        f"{result['kappa_delta']:+.4f}.",
    ]
    return "\n".join(lines)


def write_readme(path: Path | None = None) -> Path:
    path = path or results_root() / "README.md"
    text = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    block = f"{BEGIN}\n{findings_markdown()}\n{END}"
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    atomic_write_text(path, text)
    return path
