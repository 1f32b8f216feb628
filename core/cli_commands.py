"""The commands of `python -m core ...` (core.cli parses the arguments and handles errors): each imports what
it needs when it runs, so listing commands start without TensorFlow."""

from __future__ import annotations

import argparse
import signal
import sys

from core.config import TransferLabError
from core.console import ConsoleProgress
from core.console import print_json as _print_json
from core.console import table as _table

# ---- datasets ----------------------------------------------------------------------------------------------


def cmd_datasets_import(args: argparse.Namespace) -> int:
    from core import datasets

    tty, shown = sys.stderr.isatty(), [-1]

    def progress(message: str, fraction: float) -> None:
        step = int(fraction * (100 if tty else 10))
        if step != shown[0]:
            shown[0] = step
            print(f"\r{message}" if tty else message, end="" if tty else "\n", file=sys.stderr, flush=True)

    report = datasets.import_dataset(args.source, name=args.name, progress=progress, exclude=args.exclude or (),
                                     replace=args.replace)
    print(file=sys.stderr)
    _print_json(report.__dict__) if args.json else print(report.summary())
    return 0


def cmd_datasets_export(args: argparse.Namespace) -> int:
    from core import data_export

    counts = data_export.export_dataset(args.name, args.dest, args.size, args.quality, args.split or None)
    print(f"Exported {args.name} at {args.size}px to {args.dest}: images per split {counts}")
    return 0


def cmd_datasets_list(args: argparse.Namespace) -> int:
    from core import datasets

    rows = datasets.list_datasets()
    if args.json:
        _print_json(rows)
    else:
        _table(rows, ["name", "kind", "available", "description"])
    return 0


def cmd_datasets_show(args: argparse.Namespace) -> int:
    from core import datasets

    info = datasets.describe(args.name)
    if args.json:
        _print_json(info)
    else:
        print(f"{info['name']}: {len(info['classes'])} classes")
        rows = [{"class": c, **{s: info["counts"].get(s, {}).get(c, 0) for s in ("train", "val", "test")}}
                for c in info["classes"]]
        _table(rows, ["class", "train", "val", "test"])
    return 0


# ---- models ------------------------------------------------------------------------------------------------


def cmd_models_show(args: argparse.Namespace) -> int:
    from core import models

    if args.arch not in models.ARCHS:
        raise TransferLabError(f"Unknown arch {args.arch!r}; known: {', '.join(models.ARCHS)}.")
    model = models.build_model(args.arch, args.classes, args.input_size)
    counts = models.param_counts(model)
    layers = models.describe_layers(model)
    if args.json:
        _print_json({"arch": args.arch, "total_params": counts["total"], "trainable_params": counts["trainable"],
                     "non_trainable_params": counts["non_trainable"], "input_size": model.input_shape[1],
                     "layers": layers})
    else:
        _table(layers, ["name", "type", "output_shape", "params", "trainable"])
        print(f"total {counts['total']:,}  trainable {counts['trainable']:,}  non-trainable {counts['non_trainable']:,}")
    return 0


# ---- train / runs ------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from core import experiment, job_backends, pipeline, runs, training

    if bool(args.preset) == bool(args.config):
        raise TransferLabError("train needs exactly one of --preset NAME or --config FILE.")
    exp = pipeline.load_preset(args.preset) if args.preset else pipeline.load_config_file(args.config)
    exp = pipeline.apply_overrides(exp, args.set or [], args.repeats)
    signal.signal(signal.SIGTERM, lambda *_: training.CANCEL_EVENT.set())

    def on_run(run_id: str, status: str) -> None:
        if args.json:
            return
        error = runs.get_run(run_id)["status_info"].get("error") if status == "failed" else None
        print(f"{run_id} {status}" + (f": {error}" if error else ""), flush=True)

    backend = job_backends.choose(args.backend, args.ray_address)  # this machine or a Ray cluster
    results = job_backends.run_experiment(backend, exp, command=experiment.command_line(), job_id=args.job,
                                          on_progress=ConsoleProgress(), on_run=on_run)
    if args.json:
        _print_json(results)
    failed = [r for r in results if r["status"] != "done"]
    return 0 if not failed else (3 if any(r["status"] == "cancelled" for r in failed) else 1)


def cmd_runs_list(args: argparse.Namespace) -> int:
    from core import runs
    from core.run_records import LIST_COLUMNS

    rows = runs.list_runs()
    if args.json:
        _print_json(rows)
    else:
        _table(rows, list(LIST_COLUMNS))
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    from core import run_admin, runs

    run = runs.get_run(args.run_id)
    _print_json({**{k: v for k, v in run.items() if k != "progress"}, **run_admin.read_notes(args.run_id)})
    return 0


def cmd_runs_delete(args: argparse.Namespace) -> int:
    from core import run_admin

    print(f"Deleted {', '.join(run_admin.delete_runs(args.run_ids, confirm=args.yes))}.")
    return 0


def cmd_runs_tag(args: argparse.Namespace) -> int:
    from core import run_admin

    _print_json(run_admin.update_notes(args.run_id, args.add or (), args.remove or (), args.note))
    return 0


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    from core import runs

    runs.request_cancel(args.run_id)
    print(f"Cancel requested for {args.run_id}.")
    return 0


def cmd_runs_report(args: argparse.Namespace) -> int:
    from core import report

    if args.write:
        print(f"Wrote the findings into {report.write_readme()}.")
    else:
        print(report.findings_markdown(dataset=args.dataset))
    return 0


def cmd_runs_ship_default(args: argparse.Namespace) -> int:
    from core import runs

    path = runs.ship_default(args.run_id)
    print(f"Run {args.run_id} is now the shipped default model ({path}).")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from core import jobs

    if args.jobs_cmd == "run":
        return jobs.run_job(args.job_id)
    if args.jobs_cmd == "cancel":
        jobs.cancel_job(args.job_id)
        print(f"Cancel requested for job {args.job_id}.")
        return 0
    rows = jobs.list_jobs()
    if args.json:
        _print_json(rows)
    else:
        _table(rows, ["job_id", "status", "name", "created", "error"])
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from core import predict

    results = predict.classify_paths(args.images, model=args.model, top_k=args.top_k)
    if args.json:
        _print_json(results)
    else:
        for r in results:
            if r.get("error"):
                print(f"{r['path']}: error: {r['error']}")
            else:
                top = ", ".join(f"{c} {p:.3f}" for c, p in list(r["probabilities"].items())[: args.top_k])
                print(f"{r['path']}: {r['label']}  ({top})")
    return 1 if any(r.get("error") for r in results) else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core import evaluate

    return evaluate.cli(args.run_id, args.dataset, args.map or [], args.split, args.json, args.tta)


def cmd_bench(args: argparse.Namespace) -> int:
    from core import bench

    return bench.main(quick=args.quick, as_json=args.json)
