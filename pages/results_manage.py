"""One run's notes and tags, its zip download and its deletion (asking first when other runs continue from it)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core import run_admin, runs
from pages import common


def notes_form(run_id: str) -> None:
    stored = run_admin.read_notes(run_id)
    with st.form(f"notes_{run_id}"):
        notes = st.text_area("Notes", stored["notes"], key=f"notes_text_{run_id}")
        tags = st.text_input("Tags (short words, separated by commas or spaces)", ", ".join(stored["tags"]),
                             key=f"tags_text_{run_id}")
        if st.form_submit_button("Save notes and tags"):
            with common.error_boundary("Saving the notes", only_expected=True) as saving:
                run_admin.write_notes(run_id, notes, run_admin.parse_tags(tags))
            if not saving.failed:
                common.clear_run_caches()
                st.success("Saved.")


def delete_button(run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    run_id = run["run_id"]
    if run["status"] in ("running", "queued"):
        st.caption(f"This run is {run['status']}: cancel it before deleting it.")
        return
    kids = sorted(r["run_id"] for r in rows if r.get("parent_run") == run_id)
    confirmed = not kids or st.checkbox(f"Delete although {len(kids)} run(s) continue from this one: "
                                        f"{', '.join(kids)}", key=f"confirm_delete_{run_id}")
    if st.button("Delete this run", type="secondary", disabled=not confirmed, key=f"delete_{run_id}"):
        with common.error_boundary("Deleting the run", only_expected=True) as deleting:
            run_admin.delete_runs([run_id], confirm=bool(kids))
        if deleting.failed:
            return
        common.clear_run_caches()
        st.toast(f"Deleted run {run_id}.")
        st.rerun()


def manage(run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Notes and tags, download as a zip, delete; the shipped model is only downloaded."""
    run_id = run["run_id"]
    shipped = run_id == runs.DEFAULT_MODEL_DIR
    with st.expander("Notes, tags, download, delete"):
        if not shipped:
            notes_form(run_id)
        st.download_button("Download this run (zip)", lambda: run_admin.run_zip(run_id), file_name=f"{run_id}.zip",
                           mime="application/zip", on_click="ignore", key=f"zip_{run_id}")
        if shipped:
            st.caption("The shipped model `default` cannot be deleted.")
        else:
            delete_button(run, rows)
