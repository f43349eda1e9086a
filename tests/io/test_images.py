"""Reading still images: colour conversion, listing, and errors for bad files."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from diffpose3d.errors import InputFileError
from diffpose3d.io.images import is_image, list_images, read_image


def test_grey_and_rgba_become_rgb_uint8(tmp_path):
    grey = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) % 256
    iio.imwrite(tmp_path / "grey.png", grey.astype(np.uint8))
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    iio.imwrite(tmp_path / "rgba.png", rgba)

    g = read_image(tmp_path / "grey.png")
    assert g.shape == (48, 64, 3) and g.dtype == np.uint8
    assert np.array_equal(g[..., 0], grey) and np.array_equal(g[..., 2], grey)
    c = read_image(tmp_path / "rgba.png")
    assert c.shape == (48, 64, 3)
    assert (c[..., 0] == 200).all() and (c[..., 1:] == 0).all()


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ["b.jpg", "a.PNG", "c.txt", "d.mp4"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.jpg"]
    assert is_image("x.JPEG") and not is_image("x.mp4")
    with pytest.raises(InputFileError):
        list_images(tmp_path / "missing")


def test_missing_and_corrupt_images_raise(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(InputFileError) as info:
        read_image(bad)
    assert info.value.path == str(bad)
