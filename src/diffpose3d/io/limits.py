"""What an input may be: the bounds every reader checks before it reads (so a hostile file costs a
refusal, not the machine's memory), bounded reads, and the warning class for input that is used
after a correction (clamped confidences, rescaled frames, ...)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from diffpose3d.errors import InputFileError

MAX_TEXT_BYTES = 64 << 20  # a keypoints JSON file (parsed, about 30 times its size in memory)
MAX_ARRAY_BYTES = 256 << 20  # the arrays of one npz, as stored (uncompressed)
# OpenCV's warps (inside MediaPipe, the detector) take coordinates below SHRT_MAX = 32767: an image
# of 32767 px a side aborts the process (signal 134, measured with mediapipe 0.10.21); 32766 runs.
MAX_IMAGE_SIDE = 32766
MAX_IMAGE_PIXELS = 100_000_000  # 300 MB as RGB; checked from the header, before decoding
MIN_IMAGE_SIDE = 2


class InputWarning(UserWarning):
    """An input was used after a correction; the CLI prints it as one line naming the file."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


def regular_file(path: str | Path) -> Path:
    """`path` if it is (or links to) a regular file; else an InputFileError (a device such as
    /dev/zero, a FIFO or a folder could be read without end)."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise InputFileError(p, "file not found") from None
    except OSError as exc:
        raise InputFileError(p, f"cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, pipe or socket)"
        raise InputFileError(p, f"is {kind}")
    return p


def read_bytes_bounded(path: str | Path, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (default `MAX_TEXT_BYTES`), read
    without trusting its stated size."""
    max_bytes = MAX_TEXT_BYTES if max_bytes is None else max_bytes
    p = regular_file(path)
    try:
        with open(p, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputFileError(p, f"cannot read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise InputFileError(p, f"larger than {max_bytes >> 20} MB: split it into smaller files")
    return data


def check_image_dimensions(path: str | Path, width: int, height: int) -> None:
    """Refuse, from the header's size alone, images the pipeline cannot handle (every format, and
    every frame of a video: the decoders and OpenCV see the same sizes)."""
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InputFileError(path, f"image too small: {width}x{height} pixels")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise InputFileError(path, f"image too large: {width}x{height} pixels (at most {MAX_IMAGE_SIDE} a side)")
    if width * height > MAX_IMAGE_PIXELS:
        raise InputFileError(path, f"image too large: {width}x{height} = {width * height / 1e6:.0f} megapixels "
                             f"(at most {MAX_IMAGE_PIXELS // 1_000_000})")


def check_tiles(path: str | Path, tile_width: int | None, tile_height: int | None) -> None:
    """Refuse, from a TIFF header, tiles larger than an image may be (the decoder allocates a
    whole tile whatever the image's size)."""
    if tile_width is None and tile_height is None:
        return
    tw, th = int(tile_width or 0), int(tile_height or 0)
    if not (1 <= tw <= MAX_IMAGE_SIDE + 1 and 1 <= th <= MAX_IMAGE_SIDE + 1) or tw * th > MAX_IMAGE_PIXELS:
        raise InputFileError(path, f"TIFF tiles of {tw}x{th} pixels: not readable (at most {MAX_IMAGE_SIDE} a side)")
