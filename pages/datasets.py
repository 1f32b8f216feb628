"""Datasets: what is there, import more, look inside, and build derived views (apple / pear / noise)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from core import datasets
from core.config import data_root, shared_data_dir
from core.data_import import UPLOAD_PREFIX
from pages import common

SAMPLE_SIZE = 64


@st.cache_data(ttl=300, show_spinner="Decoding sample images…", max_entries=8)
def _samples(root: str, name: str, per_class: int) -> dict[str, list]:
    return datasets.sample_images(name, per_class=per_class, size=SAMPLE_SIZE)


@st.cache_data(ttl=60, show_spinner=False)
def _classes(root: str, name: str) -> list[str]:
    return datasets.dataset_classes(name)


# ---- sections ----------------------------------------------------------------------------------------------


def dataset_table(rows: list[dict[str, Any]]) -> None:
    st.subheader("Datasets")
    st.dataframe(pd.DataFrame(rows, columns=["name", "kind", "available", "description"]), hide_index=True,
                 width="stretch", column_config={
                     "available": st.column_config.CheckboxColumn(help="Imported, or cached by Keras"),
                     "description": st.column_config.TextColumn(width="large")})
    if not any(r.get("available") for r in rows):
        shared = shared_data_dir()
        hint = f" The workplace copies are in `{shared}`." if shared.is_dir() else ""
        st.info("No dataset is available yet: import one below (a zip of class folders, a folder on this server "
                f"or a URL to a zip).{hint}", icon=":material/arrow_downward:")


def run_import(source: str, name: str | None) -> None:
    """Import with a progress bar; the report or one clear error. Any click reruns the page, which stops the
    import at its next progress step (the download and the half-made folder are removed): hence the button."""
    bar = st.progress(0.0, text="Starting…")
    st.form_submit_button("Cancel the import", help="Stops the download or import; nothing of it is kept.")

    def progress(message: str, fraction: float) -> None:
        bar.progress(max(0.0, min(1.0, float(fraction))), text=message)

    report = None
    with common.error_boundary("The import"):
        report = datasets.import_dataset(source, name=name or None, progress=progress,
                                         replace=st.session_state.get("import_replace", False))
    if report is None:
        bar.empty()
        return
    bar.progress(1.0, text="Done")
    common.clear_dataset_caches()
    st.session_state["import_report"] = (report.summary(markdown=True), report.unreadable[:200])
    st.rerun()  # redraw the dataset list with the new dataset in it


def run_upload(upload, name: str | None) -> None:
    """Store the uploaded zip in a hidden temp folder inside the data root (never elsewhere), import it, drop it."""
    file_name = Path(upload.name).name
    if not file_name.lower().endswith(".zip") or file_name.startswith("."):
        file_name = "upload.zip"
    with common.error_boundary(f"Storing the upload in {data_root()}"):
        data_root().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=data_root(), prefix=UPLOAD_PREFIX) as tmp:
            path = Path(tmp) / file_name
            path.write_bytes(upload.getvalue())
            run_import(str(path), name)


def import_section() -> None:
    st.subheader("Import a dataset")
    st.caption("A zip or folder with class folders (`<class>/*.jpg`), optionally under train / val / test "
               "(Fruits-360's Training / Test work too), or MNIST-style IDX files. The name defaults to the "
               "zip's or folder's name.")
    if "import_report" in st.session_state:
        message, unreadable = st.session_state.pop("import_report")
        st.success(message)
        if unreadable:
            with st.expander("Unreadable images (left out)"):
                st.write(unreadable)
    st.checkbox("Replace a dataset of the same name", key="import_replace",
                help="Off: importing under a name that exists is refused, so nothing is replaced by accident.")
    tab_zip, tab_path, tab_url = st.tabs(["Upload a zip", "Server path", "URL"])
    with tab_zip, st.form("import_zip", clear_on_submit=False):
        upload = st.file_uploader(f"Zip file (up to {common.MAX_UPLOAD_MB} MB)", type=["zip"], key="zip_upload")
        name = st.text_input("Name (optional)", key="zip_name")
        if st.form_submit_button("Import zip"):
            if upload is None:
                st.error("Choose a zip file first.")
            else:
                run_upload(upload, name)
    with tab_path, st.form("import_path"):
        default = shared_data_dir()
        path = st.text_input("Path on this server (zip or folder)", key="path_source",
                             placeholder=str(default / "cifar10-jpg-subset.zip"))
        name = st.text_input("Name (optional)", key="path_name")
        if st.form_submit_button("Import from path"):
            if not path.strip():
                st.error("Enter a path first.")
            else:
                run_import(path.strip(), name)
    with tab_url, st.form("import_url"):
        url = st.text_input("URL of a zip (http or https)", key="url_source")
        name = st.text_input("Name (optional)", key="url_name")
        if st.form_submit_button("Download and import"):
            if not url.strip():
                st.error("Enter a URL first.")
            else:
                run_import(url.strip(), name)


def inspect_section(available: list[str]) -> None:
    st.subheader("Look inside")
    if not available:
        st.caption("Import a dataset to see its classes, counts and sample images.")
        return
    preferred = next((n for n in ("fruits360-3", "fruits360") if n in available), available[0])
    name = st.selectbox("Dataset", available, index=available.index(preferred), key="inspect_name")
    with common.error_boundary("Reading the dataset", only_expected=True) as reading:
        info = common.describe(name)
    if reading.failed:
        return
    frame = common.counts_frame(info)
    splits = [c for c in frame.columns if c not in ("class", "total")]
    st.caption(f"{len(info['classes'])} classes · " + " · ".join(f"{s}: {int(frame[s].sum())}" for s in splits))
    left, right = st.columns([2, 3])
    with left:
        st.dataframe(frame, hide_index=True, width="stretch", height=min(420, 40 + 35 * len(frame)))
    with right:
        long = frame.melt(id_vars="class", value_vars=splits, var_name="split", value_name="images")
        fig = px.bar(long, x="class", y="images", color="split", barmode="stack",
                     title=f"Images per class and split — {name}")
        fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10), xaxis_tickangle=-60)
        st.plotly_chart(fig, width="stretch")
    samples_grid(name, info["classes"])


def samples_grid(name: str, classes: list[str]) -> None:
    shown = st.multiselect("Sample images of", classes, default=classes[:8], key=f"samples_{name}",
                           max_selections=24)
    if not shown:
        return
    with common.error_boundary("Reading the sample images", only_expected=True) as reading:
        samples = _samples(common.data_key(), name, 4)
    if reading.failed:
        return
    per_row = 4
    for start in range(0, len(shown), per_row):
        cols = st.columns(per_row)
        for col, cls in zip(cols, shown[start:start + per_row], strict=False):
            with col:
                images = samples.get(cls, [])
                if images:
                    st.image(images, width=SAMPLE_SIZE)
                st.caption(cls)


def view_spec(sources: list[str]) -> dict[str, Any] | None:
    """The view builder's widgets -> a view spec (not yet checked against the source's classes)."""
    c1, c2 = st.columns(2)
    default_src = sources.index("fruits360") if "fruits360" in sources else 0
    source = c1.selectbox("Source dataset", sources, index=default_src, key="view_source")
    name = c2.text_input("View name", value=f"{source}-apple-pear", key="view_name")
    classes = _classes(common.data_key(), source)
    with st.expander(f"The {len(classes)} source classes"):
        st.write(", ".join(classes))
    st.caption("Each row is a new class and the source classes it takes: exact names or patterns like `Apple*`, "
               "separated by commas.")
    default_rows = ([{"new class": "apple", "source classes": "Apple*"},
                     {"new class": "pear", "source classes": "Pear*"}]
                    if any(c.startswith("Apple") for c in classes) else
                    [{"new class": "group-a", "source classes": ", ".join(classes[:1])},
                     {"new class": "group-b", "source classes": ", ".join(classes[1:2])}])
    edited = st.data_editor(pd.DataFrame(default_rows), num_rows="dynamic", hide_index=True, width="stretch",
                            key=f"view_mapping_{source}",
                            column_config={"source classes": st.column_config.TextColumn(width="large")})
    c3, c4, c5 = st.columns(3)
    rest = c3.text_input("Every other class goes to (empty: leave them out)", value="noise", key="view_rest")
    balance = c4.checkbox("Balance classes (cut each to the smallest)", value=True, key="view_balance")
    per_class = c5.number_input("Images per class (0 = as many as balance allows)", min_value=0, value=0,
                                step=50, key="view_per_class")
    mapping: dict[str, list[str]] = {}
    for _, row in edited.iterrows():
        new = str(row.get("new class") or "").strip()
        patterns = [p.strip() for p in str(row.get("source classes") or "").split(",") if p.strip()]
        if new and patterns:
            mapping.setdefault(new, []).extend(patterns)
    if not mapping:
        st.warning("Add at least one new class with its source classes.")
        return None
    return {"name": name.strip(), "source": source, "mapping": mapping, "rest": rest.strip() or None,
            "balance": balance, "per_class": int(per_class) or None}


def view_section(rows: list[dict[str, Any]]) -> None:
    st.subheader("Build a derived view")
    st.caption("A view regroups a dataset's classes without copying images — e.g. Fruits-360 → apple / pear / "
               "noise (the built-in `fruits360-3`). Preview its counts, then save it to train on it.")
    sources = [r["name"] for r in rows if r.get("available") and r.get("kind") != "view"]
    if not sources:
        st.caption("Import a dataset first; views are built from an imported dataset.")
        return
    with common.error_boundary("Reading the source dataset", only_expected=True) as reading:
        spec = view_spec(sources)
    if reading.failed or spec is None:
        return
    c1, c2 = st.columns(2)
    preview = c1.button("Preview counts", key="view_preview")
    save = c2.button("Save view", type="primary", key="view_save")
    if preview or save:
        with common.error_boundary("The preview", only_expected=True) as previewing:
            info = datasets.preview_view(spec)
        if previewing.failed:
            return
        frame = common.counts_frame(info)
        frame["from"] = [", ".join(info["sources"].get(c, [])[:6]) + (" …" if len(info["sources"].get(c, [])) > 6
                                                                        else "") for c in frame["class"]]
        st.dataframe(frame, hide_index=True, width="stretch")
    if save:
        with common.error_boundary("Saving the view", only_expected=True) as saving:
            stored = datasets.save_view(spec)
        if saving.failed:
            return
        common.clear_dataset_caches()
        st.success(f"Saved view **{stored['name']}** — pick it as a stage's dataset on the Train page.")


def main() -> None:
    st.title("Datasets")
    rows: list[dict[str, Any]] = []
    with common.error_boundary("Listing the datasets", only_expected=True):
        rows = common.dataset_rows()
    dataset_table(rows)
    import_section()
    st.divider()
    inspect_section([r["name"] for r in common.dataset_rows() if r.get("available")])
    st.divider()
    view_section(common.dataset_rows())


with common.error_boundary("The Datasets page", only_expected=True):
    main()
