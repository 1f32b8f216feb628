"""The dashboard's pages in navigation order: app.py routes them, Home links to them, the tests open each one.
Plain data (no streamlit), so tests import it without starting the app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Page:
    path: str  # relative to app.py
    title: str
    icon: str
    blurb: str  # what Home says under its link

    @property
    def url_path(self) -> str:
        """Where a browser opens it (Streamlit names a page's URL after its file)."""
        return Path(self.path).stem


HOME = Page("pages/home.py", "Home", ":material/home:", "what TransferLab does, what is there")
DATASETS = Page("pages/datasets.py", "Datasets", ":material/photo_library:",
                "import, inspect, build apple/pear/noise views")
TRAIN = Page("pages/train.py", "Train", ":material/model_training:", "presets or your own pipeline, live progress")
RESULTS = Page("pages/results.py", "Results", ":material/leaderboard:",
               "scratch vs transfer, the papers, one run in depth")
CLASSIFY = Page("pages/classify.py", "Classify", ":material/image_search:", "label photos, Grad-CAM, export the model")

PAGES = (HOME, DATASETS, TRAIN, RESULTS, CLASSIFY)  # the first one is the default page
