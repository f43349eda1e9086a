"""Still images: recognise, list and read them as RGB uint8 arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffpose3d.errors import InputFileError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


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
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
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


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as an HxWx3 uint8 RGB array (grey and alpha images are converted)."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "image file not found")
    try:
        array = iio.imread(path, index=0)
    except Exception as exc:  # imageio raises many plugin-specific types
        raise InputFileError(path, f"cannot read image ({type(exc).__name__}: {exc})") from None
    try:
        return to_rgb_uint8(array)
    except ValueError as exc:
        raise InputFileError(path, str(exc)) from None
