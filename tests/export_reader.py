"""Read TransferLab's exports as a stranger would: plain Keras, TensorFlow and LiteRT, never TransferLab.

python -I export_reader.py FOLDER IMAGE...   FOLDER holds one .keras, one -savedmodel.zip and one .tflite.
Prints JSON: per format, the labels the file carries and, per image (RGB, resized to the model's input, 0..255
as float32), the probabilities; and whether TransferLab's `core` got imported.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def pixels(path: str, size: int) -> np.ndarray:
    img = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, np.float32)[None]


def read_keras(path: Path, images: list[str]) -> dict:
    import keras

    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    labels = zipfile.ZipFile(path).read("labels.txt").decode().splitlines()
    size = model.input_shape[1]
    return {"labels": labels, "probs": [np.asarray(model(pixels(p, size), training=False))[0].tolist() for p in images]}


def read_savedmodel(path: Path, images: list[str]) -> dict:
    import tensorflow as tf

    with zipfile.ZipFile(path) as zf:
        zf.extractall(path.parent / "unzipped")
        labels = zf.read("labels.txt").decode().splitlines()
    loaded = tf.saved_model.load(str(path.parent / "unzipped" / "savedmodel"))
    spec = next(iter(loaded.signatures["serving_default"].structured_input_signature[1].values()))
    size = int(spec.shape[1])
    return {"labels": labels, "probs": [loaded.serve(tf.constant(pixels(p, size))).numpy()[0].tolist() for p in images]}


def read_tflite(path: Path, images: list[str]) -> dict:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    blob = path.read_bytes()
    fb = schema.Model.GetRootAs(blob, 0)
    entries = {fb.Metadata(i).Name().decode(): fb.Metadata(i).Buffer() for i in range(fb.MetadataLength())}
    labels = fb.Buffers(entries["labels"]).DataAsNumpy().tobytes().decode().splitlines()
    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    probs = []
    for p in images:
        interp.set_tensor(inp["index"], pixels(p, int(inp["shape"][1])))
        interp.invoke()
        probs.append(interp.get_tensor(out["index"])[0].tolist())
    return {"labels": labels, "probs": probs}


def main() -> None:
    folder, images = Path(sys.argv[1]), sys.argv[2:]
    result = {"keras": read_keras(next(folder.glob("*.keras")), images),
              "savedmodel": read_savedmodel(next(folder.glob("*-savedmodel.zip")), images),
              "tflite": read_tflite(next(folder.glob("*.tflite")), images)}
    result["transferlab_imported"] = any(name == "core" or name.startswith("core.") for name in sys.modules)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
