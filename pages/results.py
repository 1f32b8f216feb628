"""Results: every run in one table, scratch vs transfer, the papers beside our runs, one run in depth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core import caveats, compare, report, run_admin, runs, store
from core.config import TransferLabError
from pages import common, evaluations

PUBLISHED = "published (hardware unknown)"
MAX_HEATMAP_CLASSES = 200


# ---- cached reads ------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False)
def published_summary() -> pd.DataFrame:
    from core import reference

    return reference.published_summary()


@st.cache_data(show_spinner=False)
def reference_tables() -> list[str]:
    from core import reference

    return reference.list_tables()


@st.cache_data(show_spinner=False)
def reference_table(name: str) -> pd.DataFrame:
    from core import reference

    return reference.load_table(name)


@st.cache_data(ttl=5, show_spinner=False)
def _lineage(root: str, run_id: str) -> list[dict[str, Any]]:
    return [runs.summary_row(r) for r in runs.lineage(run_id)]


# ---- small helpers -----------------------------------------------------------------------------------------


def pm(mean: Any, std: Any, fmt: str = "{:.4f}") -> str:
    """'mean ± std' with blanks for unknown values."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    text = fmt.format(mean)
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += " ± " + fmt.format(std)
    return text


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


# ---- sections ----------------------------------------------------------------------------------------------


def filters(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """One multiselect per filter column; returns the choices (empty = all)."""
    options = compare.filter_options(rows)
    cols = st.columns(len(compare.FILTERS))
    return {col: c.multiselect(col.replace("_", " "), options[col], key=f"filter_{col}")
            for c, col in zip(cols, compare.FILTERS, strict=True)}


def all_runs(rows: list[dict[str, Any]]) -> str | None:
    """Draws the runs table; returns the run id of the row clicked in it, if any."""
    st.subheader("All runs")
    chosen = filters(rows)
    shown = tag_filter(compare.filter_runs(rows, **chosen))
    table = compare.runs_table(shown)
    st.caption(f"{len(shown)} of {len(rows)} runs · click a column header to sort, a row to see that run below")
    event = st.dataframe(table, hide_index=True, width="stretch", key="runs_table", on_select="rerun",
                         selection_mode="single-row", column_config={
        "test_accuracy": st.column_config.NumberColumn("test acc", format="%.4f"),
        "val_accuracy": st.column_config.NumberColumn("val acc", format="%.4f"),
        "kappa": st.column_config.NumberColumn(format="%.4f"),
        "wall_time_s": st.column_config.NumberColumn("wall time (s)", format="%.1f"),
        "time_to_target_s": st.column_config.NumberColumn("time to target (s)", format="%.1f"),
    })
    st.download_button("Download these runs (CSV)", table.to_csv(index=False).encode(), file_name="runs.csv",
                       mime="text/csv", on_click="ignore")
    picked = event.selection.rows if event else []
    return str(table["run_id"].iloc[picked[0]]) if picked and picked[0] < len(table) else None


def tag_filter(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds each run's tags to its row and keeps the rows holding any chosen tag."""
    rows = run_admin.with_tags(rows)
    chosen = st.multiselect("tags", run_admin.tag_options(rows), key="filter_tags",
                            placeholder="Any tag (runs are tagged in the one-run view)")
    return run_admin.filter_by_tags(rows, chosen)


def manage(run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Notes and tags, download as a zip, delete."""
    run_id = run["run_id"]
    shipped = run_id == runs.DEFAULT_MODEL_DIR
    with st.expander("Notes, tags, download, delete"):
        if not shipped:
            stored = run_admin.read_notes(run_id)
            with st.form(f"notes_{run_id}"):
                notes = st.text_area("Notes", stored["notes"], key=f"notes_text_{run_id}")
                tags = st.text_input("Tags (short words, separated by commas or spaces)", ", ".join(stored["tags"]),
                                     key=f"tags_text_{run_id}")
                if st.form_submit_button("Save notes and tags"):
                    try:
                        run_admin.write_notes(run_id, notes, run_admin.parse_tags(tags))
                        common.clear_run_caches()
                        st.success("Saved.")
                    except TransferLabError as exc:
                        st.error(str(exc))
        st.download_button("Download this run (zip)", lambda: run_admin.run_zip(run_id), file_name=f"{run_id}.zip",
                           mime="application/zip", on_click="ignore", key=f"zip_{run_id}")
        if shipped:
            st.caption("The shipped model `default` cannot be deleted.")
            return
        if run["status"] in ("running", "queued"):
            st.caption(f"This run is {run['status']}: cancel it before deleting it.")
            return
        kids = sorted(r["run_id"] for r in rows if r.get("parent_run") == run_id)
        confirmed = not kids or st.checkbox(f"Delete although {len(kids)} run(s) continue from this one: "
                                            f"{', '.join(kids)}", key=f"confirm_delete_{run_id}")
        if st.button("Delete this run", type="secondary", disabled=not confirmed, key=f"delete_{run_id}"):
            try:
                run_admin.delete_runs([run_id], confirm=bool(kids))
            except TransferLabError as exc:
                st.error(str(exc))
                return
            common.clear_run_caches()
            st.toast(f"Deleted run {run_id}.")
            st.rerun()


def contexts(rows: list[dict[str, Any]], run_ids: list[str]) -> dict[str, Any]:
    by_id = {r["run_id"]: r for r in rows}
    return caveats.group_context([by_id[i] for i in run_ids if i in by_id])


def caveat_warning(flagged: dict[str, list[str]]) -> None:
    """One visible warning naming each group whose numbers are not results (shortened, near chance)."""
    if flagged:
        st.warning("Not a result — " + "; ".join(f"**{name}**: {', '.join(w)}" for name, w in flagged.items()),
                   icon=":material/warning:")


def headline(result: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    s, t = result["scratch"], result["transfer"]
    if s is None or t is None:
        missing = "scratch" if s is None else "transfer"
        st.info(f"No finished **{missing}** run on {result['dataset']} yet, so no speedup. The preset "
                "paper-b-scratch-vs-transfer trains both.", icon=":material/info:")
        return
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Speedup", fmt_ratio(result["speedup"]),
              help="Scratch time / transfer time: the mean wall time of the scratch runs over that of the "
                   "transfer runs (the last stage only, as the papers report).")
    delta = result["accuracy_delta"]
    c2.metric("Accuracy delta", "—" if delta is None else f"{delta:+.4f}",
              delta=None if delta is None else f"{delta * 100:+.2f} points",
              help="Mean test accuracy of the transfer runs minus that of the scratch runs.")
    c3.metric("Speedup to target", fmt_ratio(result["speedup_to_target"]),
              help="The same ratio for the time to reach the target accuracy, over the runs that reached it.")
    c4.metric("Speedup incl. pre-training", fmt_ratio(result["speedup_incl_pretrain"]),
              help="Each transfer run also charged the wall time of the stages it was built on.")
    sides = {name: contexts(rows, side["run_ids"]) for name, side in (("scratch", s), ("transfer", t))}
    st.caption(" — ".join(f"**{name}**: {int(side['n'])} runs, {caveats.describe(sides[name])}"
                          for name, side in (("scratch", s), ("transfer", t))))
    caveat_warning({name: c["warnings"] for name, c in sides.items() if c["warnings"]})


def summary_table(summary: pd.DataFrame, by: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    out, flagged = [], {}
    for _, r in summary.iterrows():
        context = contexts(rows, r["run_ids"])
        name = " / ".join(str(r[c]) for c in by)
        if context["warnings"]:
            flagged[name] = context["warnings"]
        out.append({**{c: r[c] for c in by}, "runs": int(r["n"]), "epochs": context["epochs"],
                    "images per class": context["per_class"],
                    "wall time (s)": pm(r["wall_time_s_mean"], r["wall_time_s_std"], "{:.1f}"),
                    "time to target (s)": pm(r["time_to_target_s_mean"], r["time_to_target_s_std"], "{:.1f}")
                    + f"  ({caveats.target_text(context['target'], int(r['reached_target']), int(r['n']))})",
                    "test accuracy": pm(r["test_accuracy_mean"], r["test_accuracy_std"]),
                    "kappa": pm(r["kappa_mean"], r["kappa_std"]),
                    "pre-training (s)": pm(r["pretrain_time_s_mean"], None, "{:.1f}"),
                    "caveat": "⚠ " + "; ".join(context["warnings"]) if context["warnings"] else ""})
    st.dataframe(pd.DataFrame(out), hide_index=True, width="stretch")
    caveat_warning(flagged)


def box_plots(points: pd.DataFrame) -> None:
    fig = make_subplots(rows=1, cols=3, subplot_titles=("wall time (s)", "test accuracy", "kappa"))
    palette = px.colors.qualitative.Plotly
    for i, metric in enumerate(("wall_time_s", "test_accuracy", "kappa"), start=1):
        for k, (group, part) in enumerate(points.groupby("group", sort=True)):
            fig.add_trace(go.Box(y=part[metric], name=str(group), boxpoints="all", jitter=0.3,
                                 marker_color=palette[k % len(palette)], legendgroup=str(group),
                                 showlegend=i == 1, text=part["run_id"]), row=1, col=i)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), boxmode="group")
    st.plotly_chart(fig, width="stretch")


def scope(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Compare like with like: one preset and one device at a time (paper B's by default), or everything.
    Returns the runs in scope and a label saying which they are."""
    c1, c2 = st.columns(2)
    presets = compare.filter_options(compare.finished(rows))["preset"]
    preset = c1.selectbox("Runs of preset", ["all", *presets], key="scope_preset",
                          index=1 + presets.index(report.PAPER_B) if report.PAPER_B in presets else 0)
    rows = compare.filter_runs(rows, preset=[] if preset == "all" else [preset])
    devices = compare.filter_options(compare.finished(rows))["device"]
    device = c2.selectbox("On device", ["all", *devices], key="scope_device", index=1 if len(devices) > 1 else 0)
    label = f"preset {preset}, device {device}".replace("preset all", "every preset").replace(
        "device all", "every device")
    return compare.filter_runs(rows, device=[] if device == "all" else [device]), label


def comparison(rows: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]], str]:
    """Draws the comparison; returns its target dataset, the runs in scope and the scope's label."""
    st.subheader("Scratch vs transfer")
    rows, label = scope(rows)
    targets = compare.target_datasets(rows)
    if not targets:
        st.info("No finished runs yet: the comparison appears when runs finish.", icon=":material/info:")
        return None, rows, label
    c1, c2 = st.columns(2)
    dataset = c1.selectbox("Target dataset", targets, key="target_dataset")
    grouping = c2.radio("Group by", list(compare.GROUPINGS), horizontal=True, key="group_by")
    by = compare.GROUPINGS[grouping]
    headline(compare.scratch_vs_transfer(rows, dataset), rows)
    summary = compare.group_summary(rows, dataset, by)
    st.caption("mean ± standard deviation over repeats (sample std; blank with one run)")
    summary_table(summary, by, rows)
    box_plots(compare.metric_points(rows, dataset, by))
    return dataset, rows, label


def papers_frame(table: pd.DataFrame) -> pd.DataFrame:
    """compare.side_by_side as display text: mean ± std, ratios with ×, and '—' for every empty cell."""
    def text(value: Any, fmt: str) -> str:
        return pm(value, None, fmt)

    def count(value: Any) -> str:
        return "—" if pd.isna(value) else str(int(value))

    return pd.DataFrame({
        "source": table["source"], "paper": table["paper"].replace("", "—").fillna("—"),
        "model": table["model"].fillna("—"), "method": table["method"].fillna("—"),
        "runs": table["n_runs"].map(count),
        "time (min)": [pm(m, s, "{:.2f}") for m, s in zip(table["time_min"], table["time_min_std"], strict=True)],
        "accuracy": [pm(m, s) for m, s in zip(table["accuracy"], table["accuracy_std"], strict=True)],
        "speedup": table["speedup"].map(lambda v: text(v, "{:.2f}×")),
        "accuracy delta": table["accuracy_delta"].map(lambda v: text(v * 100 if pd.notna(v) else v,
                                                                     "{:+.2f} points")),
        "pre-training (min)": table["pretrain_time_min"].map(lambda v: text(v, "{:.1f}")),
    })


def papers(rows: list[dict[str, Any]], dataset: str | None, scope_label: str = "") -> None:
    st.subheader("The papers beside our runs")
    st.caption(f"Rows marked **{PUBLISHED}** are copied from the papers; their times come from unknown "
               "machines, so compare them with ours as orders of magnitude only. Speedup and accuracy delta are "
               "against the scratch row of the same paper (ours: of the same model); paper A published no "
               "scratch baseline.")
    summary = published_summary()
    target = dataset if dataset and not compare.published_for(summary, dataset).empty else "fruits360-3"
    table = compare.side_by_side(rows, summary, target)
    numeric = ["n_runs", "time_min", "time_min_std", "accuracy", "accuracy_std", "pretrain_time_min"]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    st.markdown(f"Target: **{target}**" + (f" · ours: {scope_label}" if scope_label else ""))
    st.table(papers_frame(table))
    with st.expander(f"All published tables ({PUBLISHED})"):
        name = st.selectbox("Table", reference_tables(), key="reference_table")
        st.caption(f"{name}.csv — {PUBLISHED}; see results/reference/README.md for caveats")
        st.dataframe(reference_table(name), hide_index=True, width="stretch")


def curves(history: list[dict[str, Any]], title: str = "") -> go.Figure | None:
    """Loss and accuracy per epoch, train vs val, as two panels."""
    long = compare.history_long(history)
    if long.empty:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    colors = {"train": "#1f77b4", "val": "#ff7f0e"}
    for col, metric in enumerate(("loss", "accuracy"), start=1):
        for split in ("train", "val"):
            part = long[(long["metric"] == metric) & (long["split"] == split)]
            if not part.empty:
                fig.add_trace(go.Scatter(x=part["epoch"], y=part["value"], mode="lines+markers", name=split,
                                         line=dict(color=colors[split]), legendgroup=split,
                                         showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=50, b=10), title=title or None)
    return fig


def confusion(run: dict[str, Any]) -> None:
    stored = runs.read_confusion(run["run_id"], MAX_HEATMAP_CLASSES)
    if stored is None:
        st.caption(f"No readable confusion matrix (the run did not finish, or {store.CONFUSION} is malformed).")
        return
    classes, matrix = stored
    if matrix is None:
        st.caption(f"{len(classes)} classes: too many to draw; {store.CONFUSION_CSV} in the run's folder holds the "
                   "matrix.")
        return
    fig = px.imshow(matrix, x=classes, y=classes, text_auto=True, color_continuous_scale="Blues",
                    labels=dict(x="predicted", y="true", color="images"), aspect="auto")
    fig.update_layout(height=min(900, 200 + 30 * len(classes)), margin=dict(l=10, r=10, t=30, b=10))
    st.plotly_chart(fig, width="stretch")


def layers(run: dict[str, Any]) -> None:
    frozen = set(run["metrics"].get("frozen_layers") or [])
    try:
        if run["has_model"]:
            rows, source = common.model_layers(run["run_id"]), "frozen layers kept their parent's weights."
        else:
            rows, rebuilt, built = common.layers_from_record(run["run_id"])
            frozen = frozen or set(rebuilt)
            source = (f"No saved model for this run: this table comes from its record — {built['arch']} for "
                      f"{built['classes']} classes at {built['input_size']} px, freeze policy "
                      f"`{built['freeze']}` — rebuilt without weights.")
    except TransferLabError as exc:  # a broken model file is an error; a record too old to rebuild from is not
        (st.error if run["has_model"] else st.info)(str(exc))
        return
    table = pd.DataFrame([{"frozen": "frozen" if r["name"] in frozen else "", **r} for r in rows])
    st.caption(f"{len(frozen)} frozen layer(s) of {len(rows)}; {source}")
    st.dataframe(table, hide_index=True, width="stretch")


def run_detail(rows: list[dict[str, Any]], on_screen: Sequence[str] = (), clicked: str | None = None) -> None:
    """`on_screen`: the runs of the comparison shown above (the default is the newest of them); `clicked`: the
    row picked in the runs table, which the view switches to once per click."""
    st.subheader("One run in depth")
    ids = [r["run_id"] for r in rows]
    label = {r["run_id"]: f"{r['run_id']} · {common.status_label(r['status'])}" for r in rows}
    if common.has_default_model():  # the shipped model Classify uses on a fresh clone
        ids.append(runs.DEFAULT_MODEL_DIR)
        label[runs.DEFAULT_MODEL_DIR] = "default · the shipped model (Classify's on a fresh clone)"
    if not ids:
        return
    done = [r["run_id"] for r in rows if r["status"] == "done"]
    first = next((i for i in on_screen if i in ids), done[0] if done else ids[0])
    state = st.session_state
    if state.get("detail_run") not in ids or state.get("detail_run") == state.get("detail_default"):
        state["detail_run"] = first  # not chosen by the user: follows the comparison on screen
    state["detail_default"] = first
    if clicked != state.get("detail_clicked"):
        state["detail_clicked"] = clicked
        if clicked in ids:
            state["detail_run"] = clicked
    run_id = st.selectbox("Run", ids, format_func=label.get, key="detail_run")
    try:
        run = common.get_run(run_id)
    except TransferLabError as exc:
        st.error(str(exc))
        return
    m, cfg = run["metrics"], run["config"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", common.status_label(run["status"]))
    c2.metric("Test accuracy", "—" if m.get("test_accuracy") is None else f"{m['test_accuracy']:.4f}")
    c3.metric("Kappa", "—" if m.get("kappa") is None else f"{m['kappa']:.4f}")
    c4.metric("Wall time", compare.format_seconds(m.get("wall_time_s")))
    if run["status_info"].get("error"):
        st.error(run["status_info"]["error"])
    manage(run, rows)
    tabs = st.tabs(["Curves", "Confusion matrix", "Per class", "Evaluations", "Layers", "Lineage", "Config",
                    "Command & hardware"])
    with tabs[0]:
        fig = curves(common.history(run_id))
        if fig is None:
            st.caption("No epochs recorded.")
        else:
            st.plotly_chart(fig, width="stretch")
    with tabs[1]:
        confusion(run)
    with tabs[2]:
        per_class = m.get("per_class") or []
        if per_class:
            st.dataframe(pd.DataFrame(per_class), hide_index=True, width="stretch")
        else:
            st.caption("No per-class metrics (the run did not finish).")
    with tabs[3]:
        evaluations.section(run)
    with tabs[4]:
        layers(run)
    with tabs[5]:
        chain = _lineage(common.results_key(), run_id)
        st.caption("From the first stage down to this run; each stage starts from the one above it.")
        st.dataframe(pd.DataFrame(chain)[["run_id", "status", "dataset", "arch", "source", "freeze",
                                          "test_accuracy", "wall_time_s"]], hide_index=True, width="stretch")
    with tabs[6]:
        st.code(common.pretty_json(cfg.get("stage", cfg)), language="json")
        st.caption(f"preset {cfg.get('preset')} · pipeline {cfg.get('pipeline_name')} · stage "
                   f"{(cfg.get('stage_index') or 0) + 1} of {cfg.get('stage_count')} · repeat "
                   f"{(cfg.get('repeat_index') or 0) + 1} of {cfg.get('repeats')}")
    with tabs[7]:
        st.markdown("**Command**")
        st.code(cfg.get("command") or "—", language="bash")
        st.markdown("**Hardware and software**")
        st.code(common.pretty_json(cfg.get("hardware") or {}), language="json")


def main() -> None:
    st.title("Results")
    rows = common.run_rows()
    if not rows:
        common.next_step("No runs yet. Launch a preset or your own pipeline; its runs appear here as they "
                         "train.", "pages/train.py", "Train a model")
        papers(rows, None)
        if common.has_default_model():
            st.divider()
            run_detail(rows)
        return
    clicked = all_runs(rows)
    st.divider()
    dataset, in_scope, label = comparison(rows)
    st.divider()
    papers(in_scope, dataset, label)
    st.divider()
    on_screen = [r["run_id"] for r in compare.finished(in_scope) if r.get("dataset") == dataset]
    run_detail(rows, on_screen, clicked)


with common.error_boundary("The Results page", only_expected=True):
    main()
