"""Decoding one image the same way everywhere: training cache, Classify page and CLI."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.config import TransferLabError

try:  # HEIC/HEIF: iPhones' default photo format
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_EXTENSIONS = {".heic", ".heif"}
except ImportError:
    HEIF_EXTENSIONS = set()

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif"} | HEIF_EXTENSIONS
# The decoders those extensions stand for (MPO: a camera's multi-picture JPEG); any other format Pillow knows
# (SPIDER, FITS, EPS, ...) is refused whatever the file is named.
Image.init()  # every plugin registered, so `formats=` below can name MPO and WEBP
PIL_FORMATS = tuple(f for f in ("JPEG", "MPO", "PNG", "BMP", "DIB", "WEBP", "GIF", "HEIF") if f in Image.OPEN)
MAX_PIXELS = 50_000_000  # refuse larger images; Pillow's own bomb guard stays on too
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Process-wide, set once: images decode in thread pools, and warnings.catch_warnings is not thread-safe (two
# threads restoring each other's filters leave a mix behind). Over the limit is an error; Pillow's decoder notes
# ("Truncated File Read", "Corrupt EXIF data") are not for users, the error they lead to is.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")


class ImageError(TransferLabError):
    """An image that cannot be read."""


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def open_image(source: str | Path | bytes, name: str | None = None, draft: bool = False) -> Image.Image:
    """Open, check size, turn upright by EXIF, take the first frame, and convert to RGB (alpha onto white).
    `draft`: JPEGs decode at 1/8 scale (every byte is still read: a check, not an image to use)."""
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    try:
        if (len(source) if isinstance(source, bytes) else Path(source).stat().st_size) == 0:
            raise ImageError(f"{label}: the file is empty.")
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=PIL_FORMATS)
        if img.width * img.height > MAX_PIXELS:  # also when the warning filter above was reset (pytest does)
            raise ImageError(_too_large(label, f"{img.width * img.height / 1e6:.1f}"))
        if draft:
            img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
        img.seek(0)
        img.load()
        img = ImageOps.exif_transpose(img)
        return to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses before the size is readable from the image; its message holds the pixel count
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found[1]) / 1e6:.1f}" if found else f"over {MAX_PIXELS // 1_000_000}"
        raise ImageError(_too_large(label, size)) from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image Pillow can read "
                         f"({', '.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))}).") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise ImageError(f"{label}: cannot read the file ({exc.strerror}).") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{label}: broken or truncated image ({exc}).") from None
    except Exception as exc:  # noqa: BLE001 - a malformed file may make a decoder raise anything: never a crash
        raise ImageError(f"{label}: broken image ({type(exc).__name__}: {exc}).") from None


def decodes(data: bytes) -> bool:
    """Whether `open_image` (training, Classify) will decode these bytes: what an import keeps."""
    try:
        open_image(data, draft=True)
    except ImageError:
        return False
    return True


def _too_large(label: str, size: str) -> str:
    return (f"{label}: the image is too large ({size} megapixels; the limit is {MAX_PIXELS // 1_000_000} "
            "megapixels).")


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: 0..65535 -> 0..255 (a fixed scale: a dark image stays dark, no per-image stretch)
        arr = np.clip(np.asarray(img, dtype=np.float64), 0, 65535) / 257.0
        img = Image.fromarray(np.round(arr).astype(np.uint8))
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
