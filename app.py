"""TransferLab dashboard: `streamlit run app.py`. `main()` routes; every page lives in `pages/`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent


def compute_line() -> None:
    from pages import common

    st.markdown(f"**Compute:** {common.device_label() or 'checking…'}")


def sidebar() -> None:
    """The compute device and where data and results live, on every page; the device line polls until the
    background probe answers."""
    from core import config
    from pages import common

    with st.sidebar:
        if common.device_label() is None:
            st.fragment(run_every=1.0)(compute_line)()
        else:
            compute_line()
        st.caption(f"Data root: `{config.data_root()}`")
        st.caption(f"Results root: `{config.results_root()}`")


@st.cache_resource(show_spinner=False)
def clean_up_once(data_root: str, results_root: str) -> int:
    """What killed processes left behind (temp models, downloads), once per server and pair of roots."""
    from core import cleanup

    return len(cleanup.remove_stale_temp_files())


def main() -> None:
    from core import config
    from pages.registry import PAGES

    st.set_page_config(page_title="TransferLab", page_icon=":material/nutrition:", layout="wide")
    clean_up_once(str(config.data_root()), str(config.results_root()))
    nav = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=i == 0) for i, p in enumerate(PAGES)])
    sidebar()
    nav.run()


main()
