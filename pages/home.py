"""Home: what TransferLab does, what is there, what to do next."""

from __future__ import annotations

import streamlit as st

from core import runs
from core.config import TransferLabError
from pages import common, registry

INTRO = (
    "TransferLab trains image classifiers in stages — from scratch, or from an earlier stage with its first "
    "layers frozen and a new output layer (e.g. CIFAR-10 → all Fruits-360 classes → apple / pear / noise). "
    "Every run is a background job with live progress, and its metrics, curves, model and hardware are stored. "
    "The Results page compares training from scratch with transfer learning beside four papers' published "
    "numbers, and Classify labels your own fruit photos with the most accurate finished model."
)


def counts() -> dict[str, int]:
    """Datasets available, runs (finished / all), jobs running or queued."""
    try:
        datasets = common.dataset_rows()
    except (TransferLabError, ImportError):
        datasets = []
    rows = common.run_rows()
    job_rows = common.job_list()
    return {
        "datasets": sum(1 for d in datasets if d.get("available")),
        "datasets_known": len(datasets),
        "runs": len(rows),
        "finished": sum(1 for r in rows if r["status"] == "done"),
        "running": sum(1 for j in job_rows if j.get("status") == "running"),
        "queued": sum(1 for j in job_rows if j.get("status") == "queued"),
    }


def what_next(n: dict[str, int]) -> None:
    if n["datasets"] == 0:
        common.next_step("No dataset yet. Import one — a zip of class folders, a folder on this server or a URL "
                         "(e.g. ../shared/data/fruits-360-v2019.05.06.1-subset.zip).",
                         registry.DATASETS.path, "Import a dataset")
    elif n["finished"] == 0 and n["running"] + n["queued"] == 0:
        common.next_step("Datasets are ready but nothing is trained yet. Pick a preset or build a pipeline and "
                         "launch it.", registry.TRAIN.path, "Train a model")
    elif n["finished"] == 0:
        common.next_step("A job is training. Watch it live on the Train page.", registry.TRAIN.path, "Watch training")


def shipped_model() -> None:
    """Classify needs no training: say so, naming the shipped model (results/default/)."""
    if not common.has_default_model():
        return
    try:
        shipped = common.get_run(runs.DEFAULT_MODEL_DIR)
    except TransferLabError:
        return
    stage, accuracy = shipped["config"].get("stage", {}), shipped["metrics"].get("test_accuracy")
    classes = " / ".join(shipped["labels"]) or "its classes"
    score = "" if accuracy is None else f", test accuracy {accuracy:.3f}"
    common.next_step(f"Classify works at once, with no training: the shipped model — {stage.get('arch', '?')} "
                     f"trained on {stage.get('dataset', '?')} ({classes}){score} — labels your photos now.",
                     registry.CLASSIFY.path, "Classify a photo", icon=":material/image_search:")


def latest_runs(limit: int = 5) -> None:
    done = [r for r in common.run_rows() if r["status"] == "done"][:limit]
    st.subheader("Latest finished runs")
    if not done:
        st.caption("None yet — finished runs appear here.")
        return
    st.dataframe(
        [{k: r.get(k) for k in ("run_id", "dataset", "arch", "method", "freeze", "test_accuracy", "wall_time_s")}
         for r in done],
        hide_index=True, width="stretch",
        column_config={"test_accuracy": st.column_config.NumberColumn("test accuracy", format="%.4f"),
                       "wall_time_s": st.column_config.NumberColumn("wall time (s)", format="%.1f")})


def links() -> None:
    st.subheader("Go to")
    others = [p for p in registry.PAGES if p != registry.HOME]
    for col, page in zip(st.columns(len(others)), others, strict=True):
        with col:
            st.page_link(page.path, label=page.title, icon=page.icon)
            st.caption(page.blurb)


def main() -> None:
    st.title("TransferLab")
    st.markdown(INTRO)
    n = counts()
    c1, c2, c3 = st.columns(3)
    c1.metric("Datasets available", n["datasets"], help=f"{n['datasets_known']} known (including Keras built-ins)")
    c2.metric("Runs", n["runs"], help=f"{n['finished']} finished")
    c3.metric("Jobs running", n["running"], help=f"{n['queued']} queued")
    what_next(n)
    shipped_model()
    latest_runs()
    links()


with common.error_boundary("The Home page", only_expected=True):
    main()
