"""Frames as they come: a camera, a stream URL, or a video file played at its own frame rate.

`LiveSource` decodes in a background thread into a one-frame slot: the consumer always gets the
newest frame, and frames that arrive while it is busy are dropped (counted), as a live view must
(a queue would let the latency grow without bound). Each frame carries the time it arrived
(`time.perf_counter()`), from which the end-to-end latency is measured.

- `camera(N)`: the N-th capture device through PyAV: `/dev/videoN` (Linux, v4l2) or device N
  (macOS, avfoundation).
- a stream URL PyAV (FFmpeg) opens: `rtsp://`, `rtmp://`, `http(s)://`, `udp://`, `tcp://`, ...
- a video file with `realtime`: each frame is released at its own time (frame k at k / fps
  seconds after the start), the same code path as a camera, for tests and measurements.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffpose3d.errors import InputFileError

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://", "rtp://")


def is_stream_url(text: str) -> bool:
    return str(text).lower().startswith(STREAM_SCHEMES)


def camera_spec(index: int) -> tuple[str, str | None]:
    """(PyAV file, format) of capture device `index` on this platform."""
    if sys.platform == "darwin":
        return str(index), "avfoundation"
    return f"/dev/video{index}", "v4l2"


@dataclass
class LiveFrame:
    """One frame: its index in the source, the RGB image, when it arrived, frames dropped before it."""

    index: int
    image: np.ndarray
    arrived: float
    dropped: int


class LiveSource:
    """Iterate over the newest frames of `target` (a file path, stream URL or device), see module."""

    def __init__(self, target: str | Path, *, fmt: str | None = None, realtime: bool = False,
                 name: str | None = None) -> None:
        import av

        self.name = name or str(target)
        self.realtime = bool(realtime)
        try:
            self._container = av.open(str(target), mode="r", format=fmt, timeout=10.0)
        except (av.error.FFmpegError, OSError) as exc:
            raise InputFileError(self.name, f"cannot open the live source ({exc})") from None
        if not self._container.streams.video:
            self._container.close()
            raise InputFileError(self.name, "contains no video stream")
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self.fps = float(rate) if rate else 25.0
        self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
        self._slot: LiveFrame | None = None
        self._cond = threading.Condition()
        self._done = False
        self._stop = False
        self._error: BaseException | None = None
        self.decoded = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._decode, name="live-source", daemon=True)

    def _decode(self) -> None:
        import av

        start = time.perf_counter()
        try:
            for k, frame in enumerate(self._container.decode(video=0)):
                if self._stop:
                    break
                image = frame.to_ndarray(format="rgb24")
                if self.realtime:  # a file: frame k is due k / fps seconds after the start
                    delay = start + k / self.fps - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                arrived = time.perf_counter()
                with self._cond:
                    dropped = 0
                    if self._slot is not None:  # the consumer did not take the previous one
                        self.dropped += 1
                        dropped = self._slot.dropped + 1
                    self._slot = LiveFrame(k, image, arrived, dropped)
                    self.decoded += 1
                    self._cond.notify()
        except av.error.FFmpegError as exc:
            self._error = InputFileError(self.name, f"live source failed after {self.decoded} frames ({exc})")
        finally:
            with self._cond:
                self._done = True
                self._cond.notify()

    def __iter__(self) -> Iterator[LiveFrame]:
        """The newest frames until the source ends; decoding (and a file's clock) starts here,
        so a model loaded after opening the source costs no frames."""
        if not self._thread.is_alive() and not self._done:
            self._thread.start()
        while True:
            with self._cond:
                while self._slot is None and not self._done:
                    self._cond.wait(0.5)
                frame, self._slot = self._slot, None
            if frame is None:
                break
            yield frame
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._stop = True
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self._container.close()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_live(target: str | int, realtime: bool = False) -> LiveSource:
    """A camera (an int), a stream URL, or a video file (played at its frame rate when `realtime`)."""
    if isinstance(target, int):
        path, fmt = camera_spec(target)
        if fmt == "v4l2" and not Path(path).exists():
            raise InputFileError(path, f"no camera {target} on this machine")
        return LiveSource(path, fmt=fmt, name=f"camera {target}")
    if not is_stream_url(str(target)) and not Path(target).is_file():
        raise InputFileError(target, "no such file")
    return LiveSource(target, realtime=realtime)
