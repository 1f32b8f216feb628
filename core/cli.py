"""`python -m core ...`: the same core the dashboard uses, for tests, background jobs and GPU servers."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings

from core.config import TransferLabError, describe_os_error
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
    from core import datasets_io

    counts = datasets_io.export_dataset(args.name, args.dest, args.size, args.quality, args.split or None)
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
    from core import job_backends, pipeline, runs, training

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

    backend = job_backends.choose(args.backend, args.ray_address)  # issue 16 hook: local or a Ray cluster
    results = job_backends.run_experiment(backend, exp, command=training.command_line(), job_id=args.job,
                                          on_progress=ConsoleProgress(), on_run=on_run)
    if args.json:
        _print_json(results)
    failed = [r for r in results if r["status"] != "done"]
    return 0 if not failed else (3 if any(r["status"] == "cancelled" for r in failed) else 1)


def cmd_runs_list(args: argparse.Namespace) -> int:
    from core import runs

    rows = runs.list_runs()
    if args.json:
        _print_json(rows)
    else:
        _table(rows, ["run_id", "status", "dataset", "arch", "freeze", "test_accuracy", "wall_time_s"])
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


# ---- parser ------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="TransferLab: transfer-learning experiments.")
    sub = p.add_subparsers(dest="command", required=True)

    ds = sub.add_parser("datasets", help="import, list and inspect datasets").add_subparsers(dest="ds", required=True)
    imp = ds.add_parser("import", help="import a zip, a directory or a URL to a zip into the data root")
    imp.add_argument("source")
    imp.add_argument("--name")
    imp.add_argument("--replace", action="store_true", help="replace an existing dataset of the same name")
    imp.add_argument("--exclude", action="append", metavar="NAME",
                     help="leave out this class folder (repeatable); a folder holding labels.csv is left out anyway")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_datasets_import)
    exp = ds.add_parser("export", help="write an imported dataset resized, as JPEGs (a copy for a GPU server)")
    exp.add_argument("name")
    exp.add_argument("dest")
    exp.add_argument("--size", type=int, required=True)
    exp.add_argument("--quality", type=int, default=95)
    exp.add_argument("--split", action="append", help="only this split (repeatable)")
    exp.set_defaults(func=cmd_datasets_export)
    lst = ds.add_parser("list", help="every known dataset and whether it is available")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_datasets_list, light=True)
    show = ds.add_parser("show", help="classes and counts per split")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_datasets_show, light=True)

    mo = sub.add_parser("models", help="inspect architectures").add_subparsers(dest="mo", required=True)
    ms = mo.add_parser("show", help="layers and parameter counts of an architecture")
    ms.add_argument("arch")
    ms.add_argument("--classes", type=int, required=True)
    ms.add_argument("--input-size", type=int)
    ms.add_argument("--json", action="store_true")
    ms.set_defaults(func=cmd_models_show)

    tr = sub.add_parser("train", help="run a preset or a config file in the foreground")
    tr.add_argument("--preset")
    tr.add_argument("--config")
    tr.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="set a stage field on every stage, or stages.N.FIELD=VALUE on stage N")
    tr.add_argument("--repeats", type=int)
    tr.add_argument("--json", action="store_true")
    tr.add_argument("--job", help=argparse.SUPPRESS)
    tr.add_argument("--backend", choices=("local", "ray"),  # issue 16 hook: the job backend
                    help="where the runs execute (default: ray when TRANSFERLAB_RAY_ADDRESS is set, else local)")
    tr.add_argument("--ray-address", help="the Ray cluster (default: TRANSFERLAB_RAY_ADDRESS), e.g. 127.0.0.1:6379")
    tr.set_defaults(func=cmd_train)

    ru = sub.add_parser("runs", help="list, show and cancel runs").add_subparsers(dest="ru", required=True)
    rl = ru.add_parser("list", help="one row per run")
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(func=cmd_runs_list, light=True)
    rs = ru.add_parser("show", help="everything about one run")
    rs.add_argument("run_id")
    rs.set_defaults(func=cmd_runs_show, light=True)
    rc = ru.add_parser("cancel", help="ask a queued or running run to stop")
    rc.add_argument("run_id")
    rc.set_defaults(func=cmd_runs_cancel, light=True)
    rd = ru.add_parser("delete", help="delete finished runs (asks first for a run that others continue from)")
    rd.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    rd.add_argument("--yes", action="store_true", help="delete even when other runs continue from it")
    rd.set_defaults(func=cmd_runs_delete, light=True)
    rt = ru.add_parser("tag", help="add or remove tags and set the note of a run (in its notes.json)")
    rt.add_argument("run_id")
    rt.add_argument("--add", action="append", metavar="TAG")
    rt.add_argument("--remove", action="append", metavar="TAG")
    rt.add_argument("--note", help="replace the run's note text")
    rt.set_defaults(func=cmd_runs_tag, light=True)

    rp = ru.add_parser("report", help="scratch vs transfer findings from the stored runs (markdown)")
    rp.add_argument("--dataset", default="fruits360-3")
    rp.add_argument("--write", action="store_true", help="update the findings block of results/README.md")
    rp.set_defaults(func=cmd_runs_report, light=True)
    sd = ru.add_parser("ship-default", help="copy a finished run's model to results/default/ (the shipped model)")
    sd.add_argument("run_id")
    sd.set_defaults(func=cmd_runs_ship_default)
    from core import tracking  # issue 16 hook: runs export-mlflow

    tracking.register_cli(ru)

    jo = sub.add_parser("jobs", help="background jobs (what the dashboard launches)")
    jsub = jo.add_subparsers(dest="jobs_cmd", required=True)
    jl = jsub.add_parser("list", help="every job")
    jl.add_argument("--json", action="store_true")
    jr = jsub.add_parser("run", help="run a queued job (used by the dashboard)")
    jr.add_argument("job_id")
    jc = jsub.add_parser("cancel", help="cancel a queued or running job")
    jc.add_argument("job_id")
    jo.set_defaults(func=cmd_jobs)

    cl = sub.add_parser("classify", help="classify image files with a stored model")
    cl.add_argument("images", nargs="+")
    cl.add_argument("--model", default="latest", help="RUN_ID, latest or default")
    cl.add_argument("--top-k", type=int, default=3)
    cl.add_argument("--json", action="store_true")
    cl.set_defaults(func=cmd_classify)

    ev = sub.add_parser("evaluate", help="score a stored model on an imported dataset; stored with the run")
    ev.add_argument("run_id", help="RUN_ID, latest or default")
    ev.add_argument("dataset")
    ev.add_argument("--map", action="append", metavar="DATASET_CLASS=MODEL_CLASS",
                    help="e.g. other=noise (repeatable; fnmatch patterns allowed; same names map by themselves)")
    ev.add_argument("--split", choices=("test", "val", "train", "all"),
                    help="default: all for a set without train/test folders the model was not trained on, else test")
    ev.add_argument("--tta", action="store_true", help="average the test-time views, as Classify's option does")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    be = sub.add_parser("bench", help="speed figures: input pipeline, training, roofline, latency")
    be.add_argument("--quick", action="store_true")
    be.add_argument("--json", action="store_true")
    be.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import core

    if core.backend() == "tensorflow" and not getattr(args, "light", False):  # listing needs no TensorFlow
        core.import_tensorflow_quietly()
    shown = warnings.showwarning
    warnings.showwarning = lambda message, category, *rest, **kw: (  # our notes as one plain line
        print(f"note: {message}", file=sys.stderr) if category.__module__.startswith("core.")
        else shown(message, category, *rest, **kw))
    try:
        return args.func(args)
    except TransferLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if os.environ.get("TRANSFERLAB_DEBUG"):
            raise
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback (TRANSFERLAB_DEBUG=1 shows it)
        if os.environ.get("TRANSFERLAB_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown
