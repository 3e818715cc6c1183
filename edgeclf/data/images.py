"""Decode any common image file into an RGB picture, fast, or say exactly why it cannot be used."""

from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import EdgeclfError

try:  # HEIC is an iPhone camera's default format: Pillow reads it through pillow-heif (a dependency)
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - a wheel missing on some platform loses HEIC only, with a warning
    HEIF_EXTENSIONS: frozenset[str] = frozenset()
else:
    register_heif_opener()
    HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".avif", ".bmp", ".gif", ".tif",
                              ".tiff"}) | HEIF_EXTENSIONS
# Photos a phone or camera writes that Pillow cannot decode: left out, but said so (a folder of camera
# raw files would otherwise train on nothing of it, silently).
UNREADABLE_PHOTO_EXTENSIONS = frozenset({".heic", ".heif", ".hif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf",
                                         ".rw2", ".raf", ".jxl"}) - HEIF_EXTENSIONS
# Above any camera photo (200 MP phone sensors write 16320x12240; medium-format backs 151 MP) yet far
# below what exhausts memory: a full decode of the limit is 0.8 GB of RGB.
MAX_PIXELS = 256_000_000
# Transparent pixels are composited on one fixed colour so the same file always gives the same input.
BACKGROUND = (255, 255, 255)

# Pillow refuses an image above twice MAX_IMAGE_PIXELS as a decompression bomb: at half of MAX_PIXELS it refuses
# what edgeclf refuses, and 200 MP phone photos pass. Setting None instead took the guard away from the caller's
# own Pillow code as well. Pillow's warning between the two is not news to anyone edgeclf decodes for.
if Image.MAX_IMAGE_PIXELS is not None:
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS, MAX_PIXELS // 2)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageDecodeError(EdgeclfError):
    """An image file that cannot be decoded; `reason` is short and human-readable."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_unreadable_photo(path: str | os.PathLike[str]) -> bool:
    """Whether a file is a photo format edgeclf cannot decode (camera raw, JPEG XL)."""
    return Path(path).suffix.lower() in UNREADABLE_PHOTO_EXTENSIONS


def unreadable_photos(paths: list[str]) -> str | None:
    """One line on the photo files among `paths` that edgeclf cannot decode (camera raw, JPEG XL), or None."""
    photos = [p for p in paths if is_unreadable_photo(p)]
    if not photos:
        return None
    kinds = Counter(Path(p).suffix.lower() for p in photos)
    counts = ", ".join(f"{n} {ext}" for ext, n in sorted(kinds.items()))
    return (f"{len(photos)} photo(s) in formats edgeclf cannot read were left out ({counts}; first: {photos[0]}); "
            "convert them to JPEG or PNG to use them")


def _looks_like_image(path: str) -> bool:
    """Whether a file's first bytes are an image format edgeclf reads (JPEG, PNG, GIF, WebP, BMP, TIFF, AVIF, HEIC)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return (head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*"))
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[4:12] in (b"ftypavif", b"ftypavis")
            or (bool(HEIF_EXTENSIONS) and head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"))
            or (head[:2] == b"BM" and len(head) == 12 and head[6:10] == b"\x00\x00\x00\x00"))


def misnamed_images(paths: list[str]) -> str | None:
    """One line on the files among `paths` that hold image data under a name without an image extension, or None.

    Scraped and exported photos often come as `000123` or `photo.jpg?w=400`: the name decides what edgeclf
    reads, so without this they would be left out with no word.
    """
    found = [p for p in paths if not is_image_file(p) and not is_unreadable_photo(p) and _looks_like_image(p)]
    if not found:
        return None
    return (f"{len(found)} file(s) hold image data but have no image extension, so they were left out (first: "
            f"{found[0]}); rename them to .jpg/.png/... to use them")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file name has an image extension edgeclf reads."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency on BACKGROUND."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr8 = np.zeros(arr.shape, np.uint8) if hi <= lo else ((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)
        else:
            # 16-bit data: scale the full 0..65535 range down instead of clipping it at 255.
            arr8 = (np.clip(arr.astype(np.int64), 0, 65535) // 257).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def is_picture(value: object) -> bool:
    """Whether `value` is an image held in memory (a Pillow image or a numpy array), not a path."""
    return isinstance(value, (Image.Image, np.ndarray))


def rgb_array(value: "Image.Image | np.ndarray", name: str) -> np.ndarray:
    """An in-memory image → uint8 RGB [h, w, 3], converted as a file's pixels are (no EXIF: it is already upright).

    Arrays are uint8 [h, w] (grey), [h, w, 3] (RGB) or [h, w, 4] (RGBA); ConfigError names `name` otherwise.
    """
    from ..errors import ConfigError

    if isinstance(value, np.ndarray):
        ok = value.dtype == np.uint8 and (value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (1, 3, 4)))
        if not ok or min(value.shape[:2]) < 1:
            raise ConfigError(f"{name}: a numpy image must be uint8 [H, W], [H, W, 3] (RGB; OpenCV's BGR is "
                              f"img[..., ::-1]) or [H, W, 4] (RGBA), got {value.dtype} {tuple(value.shape)}")
        value = Image.fromarray(value[..., 0] if value.ndim == 3 and value.shape[2] == 1 else value)
    w, h = value.size
    if w < 1 or h < 1 or w * h > MAX_PIXELS:
        raise ConfigError(f"{name}: image size {w}x{h} is outside 1 pixel to {MAX_PIXELS / 1e6:.0f} MP")
    return np.asarray(_to_rgb(value))


def file_size(path: str | os.PathLike[str]) -> int:
    """Size in bytes of a file that can be read; ImageDecodeError says why not (missing, unreadable, a folder)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ImageDecodeError(p, f"cannot read file ({exc.strerror})") from None
    if p.is_dir():
        raise ImageDecodeError(p, "is a folder, not an image file")
    return size


@contextlib.contextmanager
def _pillow_quiet() -> Iterator[None]:
    """Pillow's warnings silenced (edgeclf reports a file's problems itself), on the main thread only.

    catch_warnings swaps the process-wide filter list and puts back the one it found: two decoding threads
    interleaved (enter, enter, exit, exit) left "ignore every warning" installed for good, and each later
    warning of the process, edgeclf's own included, went unseen. Worker threads decode without it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def load_rgb(path: str | os.PathLike[str], min_side: int | None = None) -> Image.Image:
    """Decode `path` to an upright RGB image whose shorter side is at least `min_side` when it can be.

    JPEGs are decoded in draft mode: the decoder skips DCT detail the target size would throw away,
    which is several times faster for photos much larger than the model input.
    Raises ImageDecodeError with the reason for any file that is not a usable image.
    """
    p = Path(path)
    size = file_size(p)
    if size == 0:
        raise ImageDecodeError(p, "empty file (0 bytes)")
    opened = kept = None
    try:
        with _pillow_quiet():
            img = opened = Image.open(p)
            w, h = img.size
            if w <= 0 or h <= 0:
                raise ImageDecodeError(p, f"invalid image size {w}x{h}")
            if w * h > MAX_PIXELS:
                raise ImageDecodeError(p, f"image too large: {w}x{h} = {w * h / 1e6:.0f} MP exceeds the "
                                          f"{MAX_PIXELS / 1e6:.0f} MP limit (decompression bomb?)")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            if min_side and img.format == "JPEG" and img.mode in ("RGB", "L", "YCbCr"):
                # Request a draft whose *shorter* side stays >= min_side; EXIF rotation does not change that.
                scale = min(w, h) / float(min_side)
                if scale >= 2:
                    img.draft("RGB", (max(1, int(w / scale)), max(1, int(h / scale))))
            img.load()
            img = ImageOps.exif_transpose(img) or img
            kept = _to_rgb(img)
            return kept
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(p, "not an image Pillow recognises (wrong extension or corrupt header)") from None
    except Image.DecompressionBombError as exc:  # Pillow's own check, above 2 x MAX_IMAGE_PIXELS
        size = re.search(r"\((\d+) pixels\)", str(exc))
        n = f"{int(size.group(1)):,} pixels exceed" if size else "over"
        raise ImageDecodeError(p, f"image too large: {n} the {MAX_PIXELS:,}-pixel limit (decompression bomb?)"
                               ) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
            ZeroDivisionError, MemoryError, RuntimeError, struct.error) as exc:
        msg = str(exc).strip() or type(exc).__name__
        if "truncated" in msg.lower() or isinstance(exc, EOFError):
            msg = f"truncated image data ({msg})"
        else:
            msg = f"corrupt image data ({msg})"
        raise ImageDecodeError(p, msg) from None
    finally:
        # A file that fails to decode, or has several frames (GIF, MPO), keeps its handle open after load():
        # until the garbage collector ran, a folder of such files held one descriptor each.
        if opened is not None and opened is not kept:
            opened.close()

