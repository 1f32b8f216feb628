"""Sweeps: vary one or two fields of one stage over listed values x repeats, as one Experiment (one job), and
aggregate the stored runs of a sweep into a table of field value(s) -> test accuracy and wall time, mean ± std.

Expansion keeps one pipeline of the experiment (`pipeline`, default the first) up to the swept stage (`stage`,
default its last; later stages are dropped). Each swept copy records the varied field names in its `sweep`
field, so the stored runs say which values they stand for.

* The swept stage continues an earlier stage of the same pipeline (`previous`, `stage:N`): the earlier stages
  run once, then one stage per value combination and repeat, each from the same parent (`stage:N`), seed + repeat.
* Otherwise (scratch, imagenet, run:<id>): one pipeline per value combination, repeated `repeats` times.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from core.config import TransferLabError
from core.pipeline import Experiment, PipelineConfig, StageConfig

UNSWEPT = ("name", "seed", "source", "sweep")
MAX_FIELDS = 2
METRICS = ("test_accuracy", "wall_time_s", "time_to_target_s")


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """`freeze=none,first:1` -> ("freeze", ["none", "first:1"]); a value parses as JSON when it can
    (`learning_rate=1e-3,3e-3` are numbers); a JSON list gives the values as they are (`augment=[[],["flip"]]`)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name or not raw.strip():
        raise TransferLabError(f"Sweep axis {text!r}: expected FIELD=VALUE1,VALUE2,...")
    if raw.lstrip().startswith("["):
        try:
            values = json.loads(raw)
        except ValueError:
            raise TransferLabError(f"Sweep axis {text!r}: the values are not a valid JSON list.") from None
    else:
        values = [_json_or_text(v.strip()) for v in raw.split(",") if v.strip()]
    if not isinstance(values, list) or not values:
        raise TransferLabError(f"Sweep axis {text!r}: give at least one value.")
    return name, values


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _label(fields: Sequence[str], combo: Sequence[Any]) -> str:
    return ", ".join(f"{f}={json.dumps(v) if not isinstance(v, str) else v}" for f, v in zip(fields, combo, strict=True))


def expand(exp: Experiment, axes: dict[str, list[Any]], repeats: int = 1, pipeline: str | None = None,
           stage: int | None = None, parent: str | None = None) -> Experiment:
    """One Experiment that runs every combination of the `axes` values `repeats` times (see the module doc);
    `parent` (a run id) replaces the swept stage's source, so the stages before it do not run again."""
    names = [f.name for f in dataclasses.fields(StageConfig)]
    if not 1 <= len(axes) <= MAX_FIELDS:
        raise TransferLabError(f"A sweep varies one or two fields, not {len(axes)}.")
    for field_name in axes:
        if field_name not in names or field_name in UNSWEPT:
            raise TransferLabError(f"Cannot sweep {field_name!r}; sweepable stage fields: "
                                   f"{', '.join(n for n in names if n not in UNSWEPT)} (repeats vary the seed).")
    if repeats < 1:
        raise TransferLabError("A sweep needs at least 1 repeat.")
    pipe = next((p for p in exp.pipelines if p.name == pipeline), None) if pipeline else exp.pipelines[0]
    if pipe is None:
        raise TransferLabError(f"No pipeline {pipeline!r} in {exp.name}; pipelines: "
                               f"{', '.join(p.name for p in exp.pipelines)}.")
    index = len(pipe.stages) - 1 if stage is None else stage
    if not 0 <= index < len(pipe.stages):
        raise TransferLabError(f"Pipeline {pipe.name} has stages 0..{len(pipe.stages) - 1}, not {stage}.")
    swept = dataclasses.replace(pipe.stages[index], source=f"run:{parent}") if parent else pipe.stages[index]
    source = f"stage:{index - 1}" if swept.source == "previous" and index > 0 else swept.source
    chained = source.startswith("stage:")
    fields = list(axes)
    copies: list[tuple[str, list[StageConfig]]] = []
    for combo in itertools.product(*axes.values()):
        label = _label(fields, combo)
        data = {**swept.to_dict(), **dict(zip(fields, combo, strict=True)), "source": source, "sweep": fields,
                "name": f"{swept.name or swept.dataset} [{label}]"}
        reps = range(repeats) if chained else range(1)
        copies.append((label, [StageConfig.from_dict({**data, "seed": swept.seed + r}, f"sweep {label}")
                               for r in reps]))
    if chained:
        stages = list(pipe.stages[:index]) + [s for _, group in copies for s in group]
        pipes = [PipelineConfig(stages=stages, repeats=1, name=f"{pipe.name}-sweep")]
    else:
        pipes = [PipelineConfig(stages=group, repeats=repeats, name=f"{pipe.name} [{label}]") for label, group in copies]
    axes_text = "; ".join(f"{f} in {', '.join(map(str, v))}" for f, v in axes.items())
    return Experiment(pipelines=pipes, name=f"{exp.name}-sweep-{'-'.join(fields)}",
                      description=f"Sweep of {exp.name} / {pipe.name} stage {index}: {axes_text}; {repeats} repeat(s).")


def axes_of(exp: Experiment) -> dict[str, list[Any]]:
    """The fields a (possibly stored) sweep experiment varies, with their values in order of appearance."""
    axes: dict[str, list[Any]] = {}
    for pipe in exp.pipelines:
        for st in pipe.stages:
            for name in st.sweep:
                value = getattr(st, name)
                if value not in axes.setdefault(name, []):
                    axes[name].append(value)
    return axes


# ---- aggregation ---------------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A hashable, printable table cell for any field value (lists such as `augment` as text)."""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return "—" if value is None else value


def aggregate(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Finished swept runs (`runs.get_run` dicts) grouped by device and the swept fields' values: n, and mean
    and std of test accuracy, wall time and time to target, plus the trainable parameters. Rows in sweep order."""
    rows = []
    for run in records:
        stage = (run.get("config") or {}).get("stage") or {}
        fields = stage.get("sweep") or []
        if run.get("status") != "done" or not fields:
            continue
        m = run.get("metrics") or {}
        rows.append({"fields": tuple(fields), "device": m.get("device"),
                     **{f: _cell(stage.get(f)) for f in fields}, **{k: m.get(k) for k in METRICS},
                     "trainable_params": m.get("trainable_params")})
    if not rows:
        return pd.DataFrame(columns=["device", "runs", *(f"{k}_{s}" for k in METRICS for s in ("mean", "std"))])
    fields = list(rows[0]["fields"])
    frame = pd.DataFrame([r for r in rows if list(r["fields"]) == fields])
    keys = ["device", *fields]
    order = {k: list(dict.fromkeys(frame[k])) for k in keys}  # the records' order: launch order
    stats = frame.groupby(keys, sort=False, dropna=False).agg(
        runs=("test_accuracy", "size"), **{f"{k}_{s}": (k, s) for k in METRICS for s in ("mean", "std")},
        trainable_params=("trainable_params", "median")).reset_index()
    rank = stats.apply(lambda r: tuple(order[k].index(r[k]) for k in keys), axis=1)
    return stats.iloc[sorted(range(len(stats)), key=lambda i: rank.iloc[i])].reset_index(drop=True)


def names_in(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The sweep names (runs' `preset`) among run summary rows, in the rows' order."""
    return list(dict.fromkeys(r["preset"] for r in rows if r.get("preset") and "sweep" in str(r["preset"])))


def stored_sweeps() -> list[str]:
    """Names (the `preset` of the runs) of the sweeps with stored runs, newest first."""
    from core import runs

    return names_in(runs.list_runs())


def sweep_records(name: str) -> list[dict[str, Any]]:
    """The stored runs of the sweep (or any preset) `name` whose stage was a swept copy, oldest first."""
    from core import runs

    found = []
    for row in reversed(runs.list_runs()):
        if row.get("preset") == name:
            run = runs.get_run(row["run_id"])
            if (run["config"].get("stage") or {}).get("sweep"):
                found.append(run)
    return found


def table(name: str) -> pd.DataFrame:
    """The aggregate table of a stored sweep; a TransferLabError when it has no finished swept runs."""
    frame = aggregate(sweep_records(name))
    if frame.empty:
        raise TransferLabError(f"No finished sweep runs for {name!r}; sweeps with runs: "
                               f"{', '.join(stored_sweeps()) or 'none yet'}.")
    return frame


def overview(name: str) -> dict[str, Any]:
    """A stored sweep as a page draws it: {"table" (`table`'s), "fields" (the swept ones), "devices", "notes"}.
    The notes say what could mislead: one run per value (no spread), shortened or near-chance runs."""
    from core import caveats, runs

    records = sweep_records(name)
    frame = aggregate(records)
    if frame.empty:
        raise TransferLabError(f"No finished sweep runs for {name!r} yet.")
    fields = list(frame.columns[1:list(frame.columns).index("runs")])
    notes = []
    if (frame["runs"] == 1).all():
        notes.append("no spread: 1 run per value (repeat the sweep for error bars)")
    elif (frame["runs"] == 1).any():
        notes.append(f"no spread for {int((frame['runs'] == 1).sum())} of {len(frame)} values: 1 run each")
    done = [runs.summary_row(r) for r in records if r.get("status") == "done"]
    notes += caveats.group_context(done)["warnings"]
    return {"table": frame, "fields": fields, "devices": list(dict.fromkeys(frame["device"])), "notes": notes}
