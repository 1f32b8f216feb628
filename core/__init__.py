"""TransferLab core: datasets, models, transfer, training, runs, jobs, predict. Never imports streamlit."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
