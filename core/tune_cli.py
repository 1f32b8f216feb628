"""`python -m core lr-find | sweep | errors | compare`: the fine-tuning toolkit on the command line.

`register(sub)` adds the commands to `core.cli`'s parser.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from core.config import TransferLabError
from core.console import ConsoleProgress, print_json, table
from core.pipeline import Experiment, StageConfig


def _experiment(args: argparse.Namespace) -> Experiment:
    from core import pipeline

    if bool(args.preset) == bool(args.config):
        raise TransferLabError(f"{args.command} needs exactly one of --preset NAME or --config FILE.")
    exp = pipeline.load_preset(args.preset) if args.preset else pipeline.load_config_file(args.config)
    return pipeline.apply_overrides(exp, args.set or [])


def _pick_stage(exp: Experiment, pipeline_name: str | None, index: int | None) -> tuple[int, StageConfig]:
    pipe = next((p for p in exp.pipelines if p.name == pipeline_name), None) if pipeline_name else exp.pipelines[0]
    if pipe is None:
        raise TransferLabError(f"No pipeline {pipeline_name!r}; pipelines: {', '.join(p.name for p in exp.pipelines)}.")
    index = len(pipe.stages) - 1 if index is None else index
    if not 0 <= index < len(pipe.stages):
        raise TransferLabError(f"Pipeline {pipe.name} has stages 0..{len(pipe.stages) - 1}, not {index}.")
    return index, pipe.stages[index]


def cmd_lr_find(args: argparse.Namespace) -> int:
    from core import lr_find

    index, stage = _pick_stage(_experiment(args), args.pipeline, args.stage)
    stage, parent = lr_find.finder_stage(stage, args.parent, how=f"stage {index}: name it with --parent RUN_ID")
    result = lr_find.find_lr(stage, parent,
                             steps=args.steps, start_lr=args.start_lr, end_lr=args.end_lr,
                             progress=lambda message: print(message, file=sys.stderr, flush=True))
    if args.json:
        print_json(result)
        return 0
    every = max(1, len(result["lrs"]) // 20)
    table([{"lr": f"{lr:.2e}", "loss": loss, "smoothed": sm} for lr, loss, sm in
           list(zip(result["lrs"], result["losses"], result["smoothed"], strict=True))[::every]],
          ["lr", "loss", "smoothed"])
    s = result["suggestions"]
    print(f"Suggested learning rate {result['suggestion']:.2e} (valley); steepest {s['steepest']:.2e}, "
          f"minimum/10 {s['minimum/10']:.2e}; {result['steps']} steps in {result['seconds']:.1f} s"
          + (" (stopped early: the loss diverged)" if result["stopped_early"] else "") + ".")
    print(f"Apply it with --set stages.{index}.learning_rate={result['suggestion']:.2g}")
    return 0


def _run(exp: Experiment, args: argparse.Namespace) -> list[dict[str, str]]:
    from core import experiment, runs, training

    signal.signal(signal.SIGTERM, lambda *_: training.CANCEL_EVENT.set())

    def on_run(run_id: str, status: str) -> None:
        if not args.json:
            error = runs.get_run(run_id)["status_info"].get("error") if status == "failed" else None
            print(f"{run_id} {status}" + (f": {error}" if error else ""), flush=True)

    return experiment.run_experiment(exp, command=experiment.command_line(), job_id=args.job,
                                     on_progress=ConsoleProgress(), on_run=on_run)


def _show_table(name: str, as_json: bool) -> None:
    from core import sweeps

    frame = sweeps.table(name)
    if as_json:
        print_json(frame.to_dict(orient="records"))
    else:
        print(f"Sweep {name}: mean (± std) over repeats")
        table(frame.to_dict(orient="records"), list(frame.columns))


def cmd_sweep(args: argparse.Namespace) -> int:
    from core import sweeps

    if args.sweep_cmd == "show":
        _show_table(args.name, args.json)
        return 0
    axes = dict(sweeps.parse_axis(a) for a in args.vary)
    exp = sweeps.expand(_experiment(args), axes, args.repeats, args.pipeline, args.stage, args.parent)
    if args.print_config:
        print_json(exp.to_dict())
        return 0
    results = _run(exp, args)
    if args.json:
        print_json(results)
    failed = [r for r in results if r["status"] != "done"]
    if any(r["status"] == "done" for r in results) and not args.json:
        _show_table(exp.name, False)
    return 0 if not failed else (3 if any(r["status"] == "cancelled" for r in failed) else 1)


def cmd_errors(args: argparse.Namespace) -> int:
    from core import errors

    result = errors.analyse(args.run_id, limit=0, top_pairs=args.pairs)
    if args.json:
        print_json({k: v for k, v in result.items() if k != "images"})
        return 0
    print(f"{result['run_id']} on {result['dataset']} Test: {result['n_wrong']} of {result['n']} wrong "
          f"(accuracy {result['accuracy']:.4f}); the {min(args.top, result['n_wrong'])} with the highest loss:")
    table(result["wrong"][:args.top], ["index", "truth", "prediction", "probability", "truth_probability", "loss"])
    print("Most confused (truth -> prediction):")
    table(result["pairs"], ["truth", "prediction", "count", "share"])
    print("Per class:")
    table(result["per_class"], ["class", "precision", "recall", "f1", "support"])
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from core import run_diff

    found = run_diff.load(args.run_ids)
    diff, metrics = run_diff.config_diff(found, only_different=not args.all), run_diff.metrics(found)
    if args.json:
        print_json({"config": diff.to_dict(orient="records"), "metrics": metrics.to_dict(orient="records")})
        return 0
    table(diff.to_dict(orient="records"), list(diff.columns))
    table(metrics.to_dict(orient="records"), list(metrics.columns))
    return 0


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset")
    p.add_argument("--config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="set a stage field on every stage, or stages.N.FIELD=VALUE on stage N")
    p.add_argument("--pipeline", help="the pipeline's name (default: the first)")
    p.add_argument("--stage", type=int, help="the stage's index in it (default: its last)")
    p.add_argument("--parent", metavar="RUN_ID", help="start the stage from this finished run's model")
    p.add_argument("--json", action="store_true")


def register(sub: Any) -> None:
    """Add lr-find, sweep, errors and compare to `python -m core`'s subcommands."""
    lf = sub.add_parser("lr-find", help="learning-rate finder: an exponential ramp on a stage's data")
    _experiment_args(lf)
    lf.add_argument("--steps", type=int, default=200)
    lf.add_argument("--start-lr", type=float, default=1e-7)
    lf.add_argument("--end-lr", type=float, default=10.0)
    lf.set_defaults(func=cmd_lr_find)

    sw = sub.add_parser("sweep", help="vary one or two stage fields over values x repeats; aggregate the runs")
    ssub = sw.add_subparsers(dest="sweep_cmd", required=True)
    sr = ssub.add_parser("run", help="expand a preset into a sweep and train it in the foreground")
    _experiment_args(sr)
    sr.add_argument("--vary", action="append", required=True, metavar="FIELD=V1,V2",
                    help="a field and its values (once or twice)")
    sr.add_argument("--repeats", type=int, default=1)
    sr.add_argument("--print-config", action="store_true", help="print the expanded experiment and stop")
    sr.add_argument("--job", help=argparse.SUPPRESS)
    sr.set_defaults(func=cmd_sweep)
    ss = ssub.add_parser("show", help="a stored sweep: field value(s) -> test accuracy and wall time")
    ss.add_argument("name", help="the sweep's name (its runs' preset)")
    ss.add_argument("--json", action="store_true")
    ss.set_defaults(func=cmd_sweep, light=True)

    er = sub.add_parser("errors", help="the Test images a run gets wrong (by loss), confused pairs, per class")
    er.add_argument("run_id")
    er.add_argument("--top", type=int, default=20)
    er.add_argument("--pairs", type=int, default=10)
    er.add_argument("--json", action="store_true")
    er.set_defaults(func=cmd_errors)

    co = sub.add_parser("compare", help="config differences and metrics of two or more runs")
    co.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    co.add_argument("--all", action="store_true", help="every config field, not only those that differ")
    co.add_argument("--json", action="store_true")
    co.set_defaults(func=cmd_compare, light=True)
