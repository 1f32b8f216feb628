"""TransferLab dashboard: `streamlit run app.py`. `main()` routes; every page lives in `pages/`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent

# (file, title, icon); the first one is the default page.
PAGES = (
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/datasets.py", "Datasets", ":material/photo_library:"),
    ("pages/train.py", "Train", ":material/model_training:"),
    ("pages/results.py", "Results", ":material/leaderboard:"),
    ("pages/classify.py", "Classify", ":material/image_search:"),
)


def sidebar() -> None:
    """The compute device and where data and results live, on every page."""
    from core import config
    from pages import common

    with st.sidebar:
        st.markdown(f"**Compute:** {common.device_label()}")
        st.caption(f"Data root: `{config.data_root()}`")
        st.caption(f"Results root: `{config.results_root()}`")


def main() -> None:
    st.set_page_config(page_title="TransferLab", page_icon=":material/nutrition:", layout="wide")
    nav = st.navigation([st.Page(path, title=title, icon=icon, default=i == 0)
                         for i, (path, title, icon) in enumerate(PAGES)])
    sidebar()
    nav.run()


main()
