"""Classify: label uploaded images with a stored model, show why (Grad-CAM), export the model."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from core import predict, runs
from core.config import TransferLabError
from core.images import IMAGE_EXTENSIONS, MAX_PIXELS
from pages import common, registry

EXPORT_LABELS = {"keras": "Keras (.keras)", "savedmodel": "SavedModel (.zip)", "tflite": "TFLite (.tflite)"}
# every type core decodes (an animated GIF / WebP is classified by its first frame)
UPLOAD_TYPES = tuple(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))
EXPORT_MIME = {"keras": "application/octet-stream", "savedmodel": "application/zip",
               "tflite": "application/octet-stream"}


# ---- cached compute (core does the work) ---------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _classify(root: str, run_id: str, mtime: float, name: str, digest: str, _data: bytes,
              top_k: int, tta: bool) -> dict[str, Any]:
    return common.classifier(run_id).classify(_data, name=name, top_k=top_k, tta=tta)


@st.cache_data(show_spinner="Computing the Grad-CAM heatmap…", max_entries=64)
def _heatmap(root: str, run_id: str, mtime: float, digest: str, _image, class_index: int):
    clf = common.classifier(run_id)
    return predict.overlay(_image, predict.gradcam(clf, _image, class_index))


@st.cache_data(show_spinner="Exporting…", max_entries=6)
def _export(root: str, run_id: str, mtime: float, fmt: str) -> tuple[bytes, str]:
    return predict.export_model(run_id, fmt)


# ---- small UI functions --------------------------------------------------------------------------------------


def model_options() -> list[str]:
    """Finished runs with a model (newest first), then the shipped default model when there is one."""
    options = [r["run_id"] for r in common.run_rows() if r["status"] == "done" and r["has_model"]]
    if common.has_default_model():
        options.append(runs.DEFAULT_MODEL_DIR)
    return options


def accuracy_text(acc: Any) -> str:
    return "test acc —" if acc is None else f"test acc {acc:.3f}"


def describe_model(run_id: str) -> str:
    if run_id == runs.DEFAULT_MODEL_DIR:
        try:
            shipped = common.get_run(runs.DEFAULT_MODEL_DIR)
        except TransferLabError:
            return "shipped default model"
        stage = shipped["config"].get("stage", {})
        return (f"shipped default model — {stage.get('dataset')}, {stage.get('arch')}, "
                f"{accuracy_text(shipped['metrics'].get('test_accuracy'))}")
    row = next((r for r in common.run_rows() if r["run_id"] == run_id), {})
    return f"{run_id} — {row.get('dataset')}, {row.get('arch')}, {accuracy_text(row.get('test_accuracy'))}"


def pick_model() -> str | None:
    """The most accurate finished model by default; a picker for any other finished run."""
    try:
        best = predict.resolve_model("best")
    except TransferLabError:
        common.next_step("No model yet: train a run first (or ship one in results/default/). Then upload "
                         "images here.", registry.TRAIN.path, "Train a model")
        return None
    options = model_options()
    if best not in options:
        options.insert(0, best)
    return st.selectbox("Model", options, index=options.index(best), format_func=describe_model,
                        help="Default: the finished model (a run's or the shipped one) with the highest test "
                             "accuracy for the classes of the newest one.")


def upload() -> list:
    files = st.file_uploader(
        f"Images ({', '.join(UPLOAD_TYPES)}; up to {common.MAX_UPLOAD_MB} MB and "
        f"{MAX_PIXELS // 1_000_000} megapixels per file)",
        accept_multiple_files=True, key="classify_upload",
        help="One image gets the full view; several get a table you can download as CSV.") or []
    if st.toggle("Take a photo with the camera", key="classify_camera_on"):
        shot = st.camera_input("Camera", key="classify_camera")
        if shot is not None:
            files = [*files, shot]
    return files


def classify_one(run_id: str, file, top_k: int, tta: bool = False) -> dict[str, Any]:
    """One uploaded file -> a result dict, or {'error': one sentence} for anything that is not a good image."""
    name = file.name
    if Path(name).suffix.lower().lstrip(".") not in UPLOAD_TYPES:
        return {"file": name, "error": f"{name}: not an image file — upload {', '.join(UPLOAD_TYPES)}."}
    data = file.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    try:
        result = _classify(common.results_key(), run_id, common.model_mtime(run_id), name, digest, data, top_k,
                           tta)
    except TransferLabError as exc:
        return {"file": name, "error": str(exc)}
    return {"file": name, "digest": digest, **result}


def show_detail(run_id: str, result: dict[str, Any], labels: list[str], gradcam: bool) -> None:
    top_label, top_p = result["top_k"][0]
    if result["sure"]:
        st.markdown(f"#### Prediction: **{top_label}** ({top_p:.1%})")
    else:
        guesses = ", ".join(f"{c} {p:.0%}" for c, p in result["top_k"])
        st.markdown(f"#### Prediction: not sure — top guesses: {guesses}")
        st.caption(f"The model answers only at {result['threshold']:.0%} confidence or more (calibrated; the "
                   "threshold was chosen on the run's validation images).")
    st.caption(f"{result['file']} · model latency {result['model_ms']:.1f} ms (forward pass only"
               f"{', 6 views averaged' if result['tta'] else ''})")
    left, middle, right = st.columns([1, 1, 2])
    with left:
        st.image(result["image"], caption="model input", width=200)
    if gradcam:
        with middle:
            with common.error_boundary("The Grad-CAM heatmap", only_expected=True, show=st.caption):
                over = _heatmap(common.results_key(), run_id, common.model_mtime(run_id), result["digest"],
                                result["image"], labels.index(top_label))
                st.image(over, caption="Grad-CAM: red = what drove the prediction", width=200)
    with right:
        top = pd.DataFrame(result["top_k"], columns=["class", "probability"])
        fig = px.bar(top.iloc[::-1], x="probability", y="class", orientation="h", range_x=[0, 1],
                     text=top.iloc[::-1]["probability"].map(lambda p: f"{p:.1%}"),
                     title=f"Top {len(top)} probabilities")
        fig.update_traces(textposition="outside", cliponaxis=False)
        fig.update_layout(height=120 + 40 * len(top), margin=dict(l=10, r=40, t=40, b=10))
        st.plotly_chart(fig, width="stretch")


def results_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in results:
        if "error" in r:
            rows.append({"file": r["file"], "prediction": None, "probability": None, "model_ms": None,
                         "top_k": None, "error": r["error"]})
        else:
            rows.append({"file": r["file"], "prediction": r["label"] if r["sure"] else f"not sure ({r['label']}?)",
                         "probability": r["top_k"][0][1],
                         "model_ms": round(r["model_ms"], 3),
                         "top_k": "; ".join(f"{c} {p:.3f}" for c, p in r["top_k"]), "error": None})
    return pd.DataFrame(rows)


def export_section(run_id: str) -> None:
    st.subheader("Export this model")
    st.caption("Each format is generated when you ask for it, then kept for this model.")
    prepared = st.session_state.setdefault("exports_prepared", set())
    cols = st.columns(len(EXPORT_LABELS))
    for col, (fmt, label) in zip(cols, EXPORT_LABELS.items(), strict=True):
        with col:
            key = (common.results_key(), run_id, fmt)
            if key in prepared or st.button(f"Prepare {label}", key=f"prep_{fmt}"):
                prepared.add(key)
                export_download(run_id, fmt, label)


def export_download(run_id: str, fmt: str, label: str) -> None:
    with common.error_boundary("The export", only_expected=True) as exporting:
        data, file_name = _export(common.results_key(), run_id, common.model_mtime(run_id), fmt)
    if exporting.failed:
        return
    st.download_button(f"Download {label}", data=data, file_name=file_name, mime=EXPORT_MIME[fmt],
                       key=f"dl_{fmt}", on_click="ignore")
    st.caption(f"{file_name} · {len(data) / 1e6:.2f} MB")


def main() -> None:
    st.title("Classify")
    run_id = pick_model()
    if run_id is None:
        return
    with common.error_boundary("Loading the model", only_expected=True) as loading:
        clf = common.classifier(run_id)
    if loading.failed:
        return
    st.caption(f"{len(clf.labels)} classes: {', '.join(clf.labels[:20])}{' …' if len(clf.labels) > 20 else ''}"
               f" · input {clf.input_size}×{clf.input_size} · {clf.arch} · answers through {clf.engine}")
    c1, c2, c3 = st.columns(3)
    top_k = c1.slider("Top-k", 1, max(1, min(10, len(clf.labels))), min(3, len(clf.labels)))
    gradcam = c2.toggle("Grad-CAM heatmap", value=True)
    tta = c3.toggle("Test-time augmentation", value=predict.trained_for_photos(run_id), key=f"tta_{run_id}",
                    help="Average the whole photo and five zoomed-in crops (centre and corners, 60% of each side): "
                         "6 forward passes. Helps with photos of many small fruits (shop bins, branches); on by "
                         "default for models trained on composited scenes.")
    files = upload()
    if not files:
        st.info("Upload one or more fruit photos to classify them.", icon=":material/photo_camera:")
    else:
        results = [classify_one(run_id, f, top_k, tta) for f in files]
        for r in results:
            if "error" in r:
                st.error(r["error"])
        good = [r for r in results if "error" not in r]
        if len(results) > 1:
            table = results_table(results)
            st.subheader(f"{len(good)} of {len(results)} images classified")
            st.dataframe(table, hide_index=True, width="stretch",
                         column_config={"probability": st.column_config.ProgressColumn(
                             "probability", min_value=0.0, max_value=1.0, format="%.3f")})
            st.download_button("Download results (CSV)", table.to_csv(index=False).encode(),
                               file_name="predictions.csv", mime="text/csv", on_click="ignore")
        if len(good) == 1:
            show_detail(run_id, good[0], clf.labels, gradcam)
        elif good:
            name = st.selectbox("Details for", [r["file"] for r in good])
            show_detail(run_id, next(r for r in good if r["file"] == name), clf.labels, gradcam)
    st.divider()
    export_section(run_id)


with common.error_boundary("The Classify page", only_expected=True):
    main()
