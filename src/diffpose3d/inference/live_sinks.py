"""Where live frames go besides the output folder: a window, and the outputs' file name."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np


def live_name(target: str) -> str:
    """A file name for a stream's outputs: the file's stem, or the URL's last part."""
    from diffpose3d.io.live import is_stream_url

    if not is_stream_url(target):
        return Path(target).stem
    tail = target.rstrip("/").rsplit("/", 1)[-1]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in tail)[:64] or "stream"


def window() -> Callable[[np.ndarray], None]:
    """A function that shows an RGB frame in a window (OpenCV, which MediaPipe brings)."""
    from diffpose3d.errors import ConfigError

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError("--show needs a display (DISPLAY is not set); the frames are written to --out anyway")
    try:
        import cv2
    except ImportError:
        raise ConfigError("--show needs OpenCV (pip install 'diffpose3d[detect]')") from None

    def show(frame) -> None:
        cv2.imshow("diffpose3d live", frame[:, :, ::-1])
        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
            raise KeyboardInterrupt

    return show
