"""Video files: stream RGB frames in (PyAV) and write MP4 (H.264) or GIF out, atomically."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

from diffpose3d.errors import InputFileError
from diffpose3d.io.atomic import atomic_write
from diffpose3d.io.images import to_rgb_uint8
from diffpose3d.io.limits import check_image_dimensions

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".gif", ".ts", ".mts",
                              ".m2ts", ".flv", ".wmv", ".3gp", ".ogv"})
WRITE_EXTENSIONS = frozenset({".mp4", ".gif"})


def is_video(path: str | Path) -> bool:
    """True when the file name has a video extension (the file need not exist)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _rotate(rgb: np.ndarray, degrees: int) -> np.ndarray:
    """Apply a display-matrix rotation (counter-clockwise degrees, multiples of 90)."""
    k = round(degrees / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


class VideoReader:
    """Lazily decode a video file into HxWx3 uint8 RGB frames (display rotation applied).

    Opening probes the file and decodes the first frame, so an unreadable file fails at once.
    Each iteration re-opens the file, so a reader can be iterated more than once; memory stays
    bounded by one frame.

    - Truncation, in every container: fewer frames than the stream declares, or the last frame
      decoded ending well before the duration the container states, is an `InputFileError`.
    - A stream whose resolution changes is rescaled, frame by frame, to the first frame's size
      (`rescaled_frames` counts them after an iteration), so every frame shares one image size.
    """

    def __init__(self, path: str | Path) -> None:
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(self.path, "video file not found")
        self._open: list[av.container.InputContainer] = []
        try:
            with av.open(str(self.path), mode="r") as container:
                if not container.streams.video:
                    raise InputFileError(self.path, "contains no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                self._fps = float(rate) if rate else 25.0
                self._declared = int(stream.frames or 0)
                duration = None
                if stream.duration is not None and stream.time_base is not None:
                    duration = float(stream.duration * stream.time_base)
                elif container.duration is not None:
                    duration = container.duration / 1_000_000
                self._duration = duration
                first = next(container.decode(stream), None)
        except InputFileError:
            raise
        except (av.error.FFmpegError, OSError, StopIteration, ValueError) as exc:
            raise InputFileError(self.path, f"cannot decode video ({exc})") from None
        if first is None:
            raise InputFileError(self.path, "video has no decodable frames")
        self._rotation = int(first.rotation or 0)
        w, h = first.width, first.height
        check_image_dimensions(self.path, w, h)
        self._coded = (w, h)
        self._width, self._height = (h, w) if round(self._rotation / 90) % 2 else (w, h)
        self.rescaled_frames = 0

    @property
    def fps(self) -> float:
        """Frames per second (average rate; 25 when the file does not say)."""
        return self._fps

    @property
    def num_frames(self) -> int:
        """Frame count from the container, or estimated from duration x fps when it is not stored."""
        if self._declared > 0:
            return self._declared
        if self._duration:
            return max(1, round(self._duration * self._fps))
        return 0

    @property
    def width(self) -> int:
        """Frame width in pixels, after display rotation."""
        return self._width

    @property
    def height(self) -> int:
        """Frame height in pixels, after display rotation."""
        return self._height

    def __iter__(self) -> Iterator[np.ndarray]:
        import av

        container = av.open(str(self.path), mode="r")
        self._open.append(container)
        count, last_end, rescaled = 0, None, 0
        w, h = self._coded
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                count += 1
                if frame.time is not None:
                    last_end = float(frame.time) + 1.0 / self._fps
                if (frame.width, frame.height) != (w, h):
                    rescaled += 1
                    frame = frame.reformat(width=w, height=h)
                yield _rotate(frame.to_ndarray(format="rgb24"), self._rotation)
        except av.error.FFmpegError as exc:
            raise InputFileError(self.path, f"video is corrupt after frame {count} ({exc})") from None
        finally:
            container.close()
            self._open.remove(container)
            self.rescaled_frames = rescaled
        self._check_complete(count, last_end)

    def _check_complete(self, count: int, last_end: float | None) -> None:
        """Edit lists can legitimately drop a frame or two from the stored count or duration;
        more is damage."""
        if self._declared > 0 and count < self._declared - max(2, self._declared // 50):
            raise InputFileError(self.path, f"video is truncated: decoded {count} of {self._declared} frames")
        if self._duration and last_end is not None:
            slack = max(3.0 / self._fps, 0.02 * self._duration)
            if last_end < self._duration - slack:
                raise InputFileError(self.path, f"video is truncated: frames end at {last_end:.2f} s of "
                                     f"the {self._duration:.2f} s the file states ({count} frames decoded)")

    def close(self) -> None:
        """Close any container an unfinished iteration left open."""
        for container in list(self._open):
            container.close()
        self._open.clear()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class VideoWriter:
    """Write RGB frames to `.mp4` (H.264, yuv420p) or `.gif`; the file appears only on `close()`.

    All frames must have the size of the first. MP4 frames with odd sizes are padded by one
    edge pixel (yuv420p needs even dimensions). GIF frames are kept in memory until `close()`.
    Leaving a `with` block through an exception discards the output.
    """

    def __init__(self, path: str | Path, fps: float, crf: int = 20) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in WRITE_EXTENSIONS:
            raise ValueError(f"cannot write video {self.path}: use one of {sorted(WRITE_EXTENSIONS)}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.crf = int(crf)
        self.frames_written = 0
        self._atomic = atomic_write(self.path, "wb")
        self._file = self._atomic.__enter__()
        self._size: tuple[int, int] | None = None
        self._container = None
        self._stream = None
        self._gif_frames: list[np.ndarray] = []
        self._closed = False

    def _open_mp4(self, height: int, width: int) -> None:
        import av

        self._container = av.open(self._file, mode="w", format="mp4")
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        """Append one HxWx3 (or grey / RGBA) frame."""
        if self._closed:
            raise ValueError("VideoWriter is closed")
        rgb = to_rgb_uint8(frame)
        h, w = rgb.shape[:2]
        if self._size is None:
            self._size = (h, w)
            if self.suffix == ".mp4":
                self._open_mp4(h, w)
        elif self._size != (h, w):
            raise ValueError(f"frame {self.frames_written} is {w}x{h}, expected {self._size[1]}x{self._size[0]}")
        if self.suffix == ".gif":
            self._gif_frames.append(rgb)
        else:
            import av

            if h % 2 or w % 2:
                rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            video_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Finish encoding and move the file into place."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.frames_written == 0:
                raise ValueError(f"no frames were written to {self.path}")
            if self.suffix == ".gif":
                import imageio.v3 as iio

                # GIF delays are in 1/100 s; Pillow takes milliseconds.
                iio.imwrite(self._file, np.stack(self._gif_frames), extension=".gif",
                            duration=round(1000.0 / self.fps), loop=0)
                self._gif_frames.clear()
            else:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
        except BaseException as exc:
            self._discard(exc)
            raise
        self._atomic.__exit__(None, None, None)

    def _discard(self, exc: BaseException) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        self._gif_frames.clear()
        with contextlib.suppress(BaseException):
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        elif not self._closed:
            self._closed = True
            self._discard(exc)
