"""The camera a result's roots are fitted with: given, from EXIF, or the stated default."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from diffpose3d.errors import ConfigError
from diffpose3d.io.exif import EXIF_IFD, FOCAL_35MM, FOCAL_LENGTH, FOCAL_PLANE_UNIT, FOCAL_PLANE_X_RESOLUTION
from diffpose3d.io.images import exif_focal, read_image_info
from diffpose3d.scene.intrinsics import DEFAULT_FOV_DEG, camera_for


def photo(path, tags: dict, size=(600, 400)):
    exif = Image.Exif()
    ifd = exif.get_ifd(EXIF_IFD)
    ifd.update(tags)
    Image.fromarray(np.zeros(size[::-1] + (3,), np.uint8)).save(path, exif=exif)
    return path


def test_the_default_is_the_stated_field_of_view_across_the_longer_side():
    cam = camera_for((640, 480))
    assert cam.source == "default" and cam.center == (320.0, 240.0)
    assert math.degrees(2 * math.atan(320 / cam.focal_px)) == pytest.approx(DEFAULT_FOV_DEG)


def test_a_given_focal_wins_over_exif_and_a_bad_one_is_refused():
    assert camera_for((640, 480), 800.0, 1234.0).focal_px == 800.0
    assert camera_for((640, 480), None, 1234.0).focal_px == 1234.0
    with pytest.raises(ConfigError, match="focal length"):
        camera_for((640, 480), -5.0)


def test_exif_35mm_equivalent_focal_length(tmp_path):
    path = photo(tmp_path / "a.jpg", {FOCAL_35MM: 28})
    _, info = read_image_info(path)
    assert info["exif_focal_px"] == pytest.approx(28 * math.hypot(600, 400) / math.hypot(36, 24), rel=1e-4)
    assert exif_focal(path)["exif_focal_source"] == "exif FocalLengthIn35mmFilm"


def test_exif_focal_length_and_sensor_resolution(tmp_path):
    path = photo(tmp_path / "b.jpg", {FOCAL_LENGTH: 4.2, FOCAL_PLANE_X_RESOLUTION: 250.0, FOCAL_PLANE_UNIT: 4})
    assert exif_focal(path)["exif_focal_px"] == pytest.approx(4.2 * 250.0, rel=1e-4)


def test_a_photo_without_focal_tags_has_none(tmp_path):
    path = photo(tmp_path / "c.png", {})
    assert "exif_focal_px" not in read_image_info(path)[1]
