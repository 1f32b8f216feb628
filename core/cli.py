"""`python -m core ...`: the same core the dashboard uses, for tests, background jobs and GPU servers. The
arguments and the one-line errors live here; the commands themselves in core.cli_commands."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from core import tracking, tune_cli
from core.cli_commands import (
    cmd_bench,
    cmd_classify,
    cmd_datasets_export,
    cmd_datasets_import,
    cmd_datasets_list,
    cmd_datasets_show,
    cmd_evaluate,
    cmd_jobs,
    cmd_models_show,
    cmd_runs_cancel,
    cmd_runs_delete,
    cmd_runs_list,
    cmd_runs_report,
    cmd_runs_ship_default,
    cmd_runs_show,
    cmd_runs_tag,
    cmd_train,
)
from core.config import TransferLabError, describe_os_error
from core.store import EVAL_SPLITS, NOTES

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
    tr.add_argument("--backend", choices=("local", "ray"),
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
    rt = ru.add_parser("tag", help=f"add or remove tags and set the note of a run (in its {NOTES})")
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
    tracking.register_cli(ru)  # runs export-mlflow

    jo = sub.add_parser("jobs", help="background jobs (what the dashboard launches)")
    jsub = jo.add_subparsers(dest="jobs_cmd", required=True)
    jl = jsub.add_parser("list", help="every job")
    jl.add_argument("--json", action="store_true")
    jl.set_defaults(func=cmd_jobs, light=True)
    jr = jsub.add_parser("run", help="run a queued job (used by the dashboard)")
    jr.add_argument("job_id")
    jr.set_defaults(func=cmd_jobs)
    jc = jsub.add_parser("cancel", help="cancel a queued or running job")
    jc.add_argument("job_id")
    jc.set_defaults(func=cmd_jobs, light=True)

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
    ev.add_argument("--split", choices=EVAL_SPLITS,
                    help="default: all for a set without train/test folders the model was not trained on, else test")
    ev.add_argument("--tta", action="store_true", help="average the test-time views, as Classify's option does")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    be = sub.add_parser("bench", help="speed figures: input pipeline, training, roofline, latency")
    be.add_argument("--quick", action="store_true")
    be.add_argument("--json", action="store_true")
    be.set_defaults(func=cmd_bench)
    tune_cli.register(sub)
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
