"""Decoding one image the same way everywhere: training cache, Classify page and CLI."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.config import TransferLabError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif"}
MAX_PIXELS = 50_000_000  # refuse larger images; Pillow's own bomb guard stays on too
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(TransferLabError):
    """An image that cannot be read."""


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open, check size, turn upright by EXIF, take the first frame, and convert to RGB (alpha onto white)."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    if isinstance(source, bytes) and not source:
        raise ImageError(f"{label}: the file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(
                    f"{label}: {img.width}x{img.height} is too large (limit {MAX_PIXELS // 1_000_000} megapixels)."
                )
            img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: the image is too large (limit {MAX_PIXELS // 1_000_000} megapixels).") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image Pillow can read (jpg, png, webp, bmp, gif).") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{label}: broken or truncated image ({exc}).") from None


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = arr / max(arr.max(), 1.0) * 255.0
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_rgb(source: str | Path | bytes, size: int | None = None, name: str | None = None) -> np.ndarray:
    """Decode to an upright RGB uint8 array (H, W, 3), resized to size x size when given."""
    img = open_image(source, name)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)
