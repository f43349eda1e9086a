"""The focal length of a photo in pixels, from its EXIF tags (when the camera wrote them).

Two ways, in this order:
- `FocalLengthIn35mmFilm` (0xA405): the focal length a 36 x 24 mm frame would need for the same
  field of view, compared along the diagonal: f_px = f35 * diagonal_px / 43.27 mm;
- `FocalLength` (0x920A) with `FocalPlaneXResolution` (0xA20E) and its unit (0xA210): f_px = f_mm *
  pixels per mm of the sensor, scaled by the stored width over `PixelXDimension` (0xA002) when the
  image was resized after the camera wrote its tags.
"""

from __future__ import annotations

import math

EXIF_IFD = 0x8769
FOCAL_35MM = 0xA405
FOCAL_LENGTH = 0x920A
FOCAL_PLANE_X_RESOLUTION = 0xA20E
FOCAL_PLANE_UNIT = 0xA210
PIXEL_X_DIMENSION = 0xA002
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # inch, cm, mm, micrometre


def _number(value) -> float | None:
    try:
        number = float(value[0]) / float(value[1]) if isinstance(value, tuple) else float(value)
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def focal_from_exif(img) -> tuple[float, str] | None:
    """(focal length in pixels of the stored image, which tags gave it) of an open Pillow image, or
    None when its EXIF says nothing usable (a damaged block counts as nothing)."""
    try:
        tags = img.getexif().get_ifd(EXIF_IFD)
    except Exception:  # Pillow raises many types for damaged EXIF
        return None
    w, h = img.size
    f35 = _number(tags.get(FOCAL_35MM))
    if f35 is not None:
        return f35 * math.hypot(w, h) / FULL_FRAME_DIAGONAL_MM, "exif FocalLengthIn35mmFilm"
    f_mm, res = _number(tags.get(FOCAL_LENGTH)), _number(tags.get(FOCAL_PLANE_X_RESOLUTION))
    unit = _UNIT_MM.get(int(_number(tags.get(FOCAL_PLANE_UNIT)) or 2))
    if f_mm is None or res is None or unit is None:
        return None
    stored = _number(tags.get(PIXEL_X_DIMENSION))
    scale = w / stored if stored else 1.0
    return f_mm * res / unit * scale, "exif FocalLength and FocalPlaneXResolution"
