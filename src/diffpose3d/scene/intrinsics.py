"""The pinhole camera a result's root positions are fitted with: focal length and principal point in pixels.

The focal length comes, in this order, from the caller (`predict --focal PX`), from the photo's EXIF
(`io.exif`), or from the default field of view: a focal length equal to the image's longer side,
i.e. 2 * atan(1/2) = 53.13 degrees across the longer side (the guess the model itself is told for an
unknown camera, `evidence.person_frame.FOCAL_GUESS`). The principal point is the image centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from diffpose3d.errors import ConfigError
from diffpose3d.evidence.person_frame import FOCAL_GUESS

DEFAULT_FOV_DEG = math.degrees(2.0 * math.atan(0.5 / FOCAL_GUESS))  # across the image's longer side
MAX_FOCAL_PX = 1e7


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera without distortion, in pixels of the (as shown) image."""

    focal_px: float
    center: tuple[float, float]
    source: str  # "given", "exif ...", or "default"

    def as_meta(self) -> dict:
        return {"focal_px": round(self.focal_px, 3), "principal_point": [round(c, 3) for c in self.center],
                "focal_source": self.source, "default_fov_deg": round(DEFAULT_FOV_DEG, 2),
                "model": "pinhole, no distortion, principal point at the image centre"}

    def normalised(self, image_width: int) -> float:
        """The focal length as the model is told it: `f / (w / 2)`."""
        return 2.0 * self.focal_px / image_width


def check_focal(focal_px: float, what: str = "focal length") -> float:
    value = float(focal_px)
    if not (math.isfinite(value) and 0.0 < value <= MAX_FOCAL_PX):
        raise ConfigError(f"{what} must be a number of pixels in (0, {MAX_FOCAL_PX:.0e}], got {focal_px!r}")
    return value


def camera_for(image_size: tuple[int, int], focal_px: float | None = None, exif_focal_px: float | None = None,
               exif_source: str = "exif") -> Intrinsics:
    """The intrinsics of an image of `image_size` (w, h): `focal_px` if given, else the EXIF focal
    length, else the default field of view."""
    w, h = (int(v) for v in image_size)
    center = (w / 2.0, h / 2.0)
    if focal_px is not None:
        return Intrinsics(check_focal(focal_px), center, "given")
    if exif_focal_px is not None and math.isfinite(exif_focal_px) and exif_focal_px > 0:
        return Intrinsics(float(exif_focal_px), center, exif_source)
    return Intrinsics(FOCAL_GUESS * max(w, h), center, "default")
