"""Reading still images: colour conversion, listing, and errors for bad files."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from diffpose3d.errors import InputFileError
from diffpose3d.io.images import image_size, is_image, list_images, read_image


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


def test_cmyk_jpeg_is_converted_not_read_as_a_negative(tmp_path):
    from PIL import Image

    red = np.zeros((32, 48, 3), np.uint8)
    red[..., 0] = 220
    Image.fromarray(red).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    rgb = read_image(tmp_path / "cmyk.jpg")
    assert rgb.shape == (32, 48, 3)
    assert rgb[..., 0].mean() > 180 and rgb[..., 1:].mean() < 60  # red, not cyan


def test_exif_orientation_is_applied_and_reported(tmp_path):
    from PIL import Image

    from diffpose3d.io.images import image_size, read_image_info

    pixels = np.zeros((20, 40, 3), np.uint8)  # landscape as stored, a bright left column
    pixels[:, :4] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to show"
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    shown, info = read_image_info(tmp_path / "phone.jpg")
    assert info["exif_orientation"] == 6 and shown.shape == (40, 20, 3)
    assert image_size(tmp_path / "phone.jpg") == (20, 40)
    assert shown[:4].mean() > 200 and shown[-4:].mean() < 50  # the bright column is now the top row


def test_16_bit_grey_is_scaled_to_8_bits(tmp_path):
    from PIL import Image

    ramp = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(out[..., 0], (ramp >> 8).astype(np.uint8))


def _tiff_claiming(path, width: int, height: int) -> None:
    """A few-kB tiled TIFF whose header claims width x height pixels (a decompression bomb)."""
    tifffile = pytest.importorskip("tifffile", reason="tifffile (a scikit-image dependency) writes the test TIFF")

    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint8), tile=(16, 16), photometric="rgb")
    with tifffile.TiffFile(path) as tif:
        offsets = {name: tif.pages[0].tags[name].valueoffset for name in ("ImageWidth", "ImageLength")}
        kinds = {name: tif.pages[0].tags[name].dtype for name in ("ImageWidth", "ImageLength")}
    data = bytearray(path.read_bytes())
    for name, value in (("ImageWidth", width), ("ImageLength", height)):
        size = 2 if int(kinds[name]) == 3 else 4
        data[offsets[name]:offsets[name] + size] = value.to_bytes(size, "little")
    path.write_bytes(bytes(data))


def test_sizes_the_pipeline_cannot_handle_are_refused_from_the_header(tmp_path):
    from PIL import Image

    Image.new("L", (40000, 2)).save(tmp_path / "wide.png")  # a few hundred bytes, 40000 px wide
    assert (tmp_path / "wide.png").stat().st_size < 2000
    with pytest.raises(InputFileError, match=r"wide.png: image too large: 40000x2 pixels \(at most 32766 a side\)"):
        read_image(tmp_path / "wide.png")
    _tiff_claiming(tmp_path / "bomb.tif", 30000, 30000)
    assert (tmp_path / "bomb.tif").stat().st_size < 100_000
    with pytest.raises(InputFileError, match="bomb.tif: image too large") as info:
        read_image(tmp_path / "bomb.tif")
    assert len(str(info.value).splitlines()) == 1
    (tmp_path / "dev.png").symlink_to("/dev/zero")
    with pytest.raises(InputFileError, match="dev.png: is not a regular file"):
        read_image(tmp_path / "dev.png")


def _tiled_tiff(path, width: int, height: int, tile: int, tile_height: int | None = None) -> None:
    """A small uncompressed RGB TIFF of `width` x `height` whose tiles all share one tile's bytes."""
    import struct

    th = tile_height or tile
    n = -(-width // tile) * -(-height // th)
    tile_bytes = min(tile * th * 3, 1 << 16)
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
            (277, 3, 1, 3), (284, 3, 1, 1), (322, 4, 1, tile), (323, 4, 1, th)]
    ifd_size = 2 + (len(tags) + 2) * 12 + 4
    offsets_at = 8 + ifd_size
    counts_at = offsets_at + 4 * n
    data_at = counts_at + 4 * n
    tags += [(324, 4, n, offsets_at if n > 1 else data_at), (325, 4, n, counts_at if n > 1 else tile_bytes)]
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)))
    for tag, kind, count, value in sorted(tags):
        out += struct.pack("<HHIHH", tag, kind, count, value, 0) if kind == 3 else struct.pack("<HHII", tag, kind, count, value)
    out += struct.pack("<I", 0) + struct.pack(f"<{n}I", *[data_at] * n) + struct.pack(f"<{n}I", *[tile_bytes] * n)
    path.write_bytes(bytes(out) + bytes(tile_bytes))


@pytest.mark.parametrize("make", ["png-wide", "png-tall", "tiled-tiff", "huge-tile"])
def test_what_would_abort_opencv_is_refused_from_the_header(tmp_path, make):
    from PIL import Image

    path = tmp_path / ("x.png" if make.startswith("png") else "x.tif")
    if make == "png-wide":
        Image.new("L", (32767, 2)).save(path)
    elif make == "png-tall":
        Image.new("L", (2, 32767)).save(path)
    elif make == "tiled-tiff":
        _tiled_tiff(path, 32767, 64, 64)
    else:
        _tiled_tiff(path, 64, 64, 65536, 65536)
    assert path.stat().st_size < 200_000
    for read in (read_image, image_size):
        with pytest.raises(InputFileError, match="x.(png|tif): (image too large|TIFF tiles)") as info:
            read(path)
        assert len(str(info.value).splitlines()) == 1


def test_a_small_tiled_tiff_inside_the_limits_reads(tmp_path):
    _tiled_tiff(tmp_path / "ok.tif", 300, 200, 64)
    assert read_image(tmp_path / "ok.tif").shape == (200, 300, 3)


def test_predict_refuses_an_image_opencv_would_abort_on_in_one_line_and_leaves_no_lock(tmp_path, tiny_bundle, capsys):
    from PIL import Image

    from diffpose3d.cli import main

    Image.new("L", (32767, 2)).save(tmp_path / "wide.png")
    _tiled_tiff(tmp_path / "tiles.tif", 32767, 64, 64)
    out = tmp_path / "out"
    for name in ("wide.png", "tiles.tif"):
        code = main(["predict", str(tmp_path / name), "--out", str(out), "--checkpoint", str(tiny_bundle), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "image too large" in err[0] and name in err[0], err
        assert not out.exists()  # no lock file, no folder: nothing was written
