"""Still images: recognise, list and read them as RGB uint8 arrays, safely.

Reading goes through Pillow, which reads the header first: the size is checked against
`io.limits` (both sides, and a pixel count, for every format, TIFF included) before anything is
decoded. Then the EXIF orientation is applied (what a photo viewer shows; `read_image_info` says
which orientation was found), CMYK and other colour spaces are converted to RGB, grey and 16-bit
images are scaled to 8-bit RGB, and alpha is dropped.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from diffpose3d.errors import InputFileError
from diffpose3d.io.exif import focal_from_exif
from diffpose3d.io.limits import MAX_IMAGE_PIXELS, check_image_dimensions, check_tiles, regular_file

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def is_image(path: str | Path) -> bool:
    """True when the file name has a still-image extension (the file need not exist)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "is not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Convert a grey, grey+alpha, RGB or RGBA array (any integer or float type) to HxWx3 uint8."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"cannot interpret an array of shape {a.shape} as an image")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = (np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    else:
        a = np.clip(a, 0, 255).astype(np.uint8)
    channels = a.shape[2]
    if channels in (2, 4):  # drop alpha, composite over black would darken: just discard it
        a = a[:, :, : channels - 1]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def _open(path: Path):
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked
            return Image.open(path)
    except Image.DecompressionBombError:
        raise InputFileError(path, f"image too large (more than {MAX_IMAGE_PIXELS // 1_000_000} megapixels)") from None
    except Exception as exc:  # Pillow raises many types for damaged or unknown files
        raise InputFileError(path, f"cannot read image ({type(exc).__name__}: {exc})") from None


def _check_header(path: Path, img) -> None:
    """The header's size (and a TIFF's tile size) against what the decoders and OpenCV accept."""
    w, h = img.size
    check_image_dimensions(path, w, h)
    tags = getattr(img, "tag_v2", None)
    if tags is not None:
        try:
            tile = tags.get(322), tags.get(323)  # TileWidth, TileLength
        except Exception:  # a damaged tag: the decoder names it
            return
        check_tiles(path, *tile)


def _orientation(img) -> int:
    try:
        value = int(img.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block: show the pixels as stored
        return 1
    return value if 1 <= value <= 8 else 1


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as shown (EXIF orientation applied), from the header alone; checked."""
    p = regular_file(path)
    with _open(p) as img:
        _check_header(p, img)
        w, h = img.size
        return (h, w) if _orientation(img) in _TRANSPOSED else (w, h)


def exif_focal(path: str | Path) -> dict:
    """`{"exif_focal_px": ..., "exif_focal_source": ...}` from the file's EXIF alone, or `{}`."""
    p = regular_file(path)
    with _open(p) as img:
        focal = focal_from_exif(img)
    return {} if focal is None else {"exif_focal_px": round(focal[0], 3), "exif_focal_source": focal[1]}


def _pixels(img) -> np.ndarray:
    """A decoded Pillow image as an array `to_rgb_uint8` understands, any mode."""
    mode = img.mode
    if mode in ("RGB", "L", "RGBA", "LA"):
        return np.asarray(img)
    if mode in ("P", "PA"):
        return np.asarray(img.convert("RGBA"))
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)
    if mode == "I":
        a = np.asarray(img)
        return a.clip(0, 65535).astype(np.uint16) if a.max(initial=0) > 255 else a.clip(0, 255).astype(np.uint8)
    if mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float32))
        return a / 255.0 if a.max(initial=0) > 1.0 else a
    return np.asarray(img.convert("RGB"))  # CMYK (Adobe's inverted JPEGs included), YCbCr, LAB, HSV


def read_image_info(path: str | Path) -> tuple[np.ndarray, dict]:
    """An HxWx3 uint8 RGB array of the image as shown, and what was done to get it:
    `{"exif_orientation": 1..8 (1: none), "mode": Pillow's mode of the file}`, with
    `exif_focal_px` and `exif_focal_source` when the EXIF gives a focal length (`io.exif`)."""
    from PIL import ImageOps

    p = regular_file(path)
    with _open(p) as img:
        _check_header(p, img)
        orientation = _orientation(img)
        focal = focal_from_exif(img)
        try:
            img.seek(0)
            mode = img.mode
            shown = ImageOps.exif_transpose(img) if orientation != 1 else img
            array = to_rgb_uint8(_pixels(shown))
        except InputFileError:
            raise
        except Exception as exc:  # truncated data, unsupported compression, ...
            raise InputFileError(p, f"cannot decode image ({type(exc).__name__}: {exc})") from None
    info = {"exif_orientation": orientation, "mode": mode}
    if focal is not None:
        info["exif_focal_px"], info["exif_focal_source"] = round(focal[0], 3), focal[1]
    return array, info


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array (as shown: EXIF orientation applied)."""
    return read_image_info(path)[0]
