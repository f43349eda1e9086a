"""Video round trips through VideoWriter/VideoReader, and errors for damaged files."""

from __future__ import annotations

import os

import numpy as np
import pytest

from diffpose3d.errors import InputFileError
from diffpose3d.io.video import VideoReader, VideoWriter, is_video

N, H, W = 12, 48, 64


def moving_square(n: int = N, h: int = H, w: int = W) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        frame = np.full((h, w, 3), 30, np.uint8)
        frame[12:28, 4 + 3 * i : 20 + 3 * i] = (220, 60, 40)
        frames.append(frame)
    return frames


@pytest.mark.parametrize("suffix, tolerance", [(".mp4", 12.0), (".gif", 2.0)])
def test_round_trip(tmp_path, suffix, tolerance):
    path = tmp_path / f"clip{suffix}"
    frames = moving_square()
    with VideoWriter(path, fps=10) as writer:
        for frame in frames:
            writer.write(frame)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind

    with VideoReader(path) as reader:
        assert (reader.width, reader.height) == (W, H)
        assert reader.num_frames == N
        assert reader.fps == pytest.approx(10.0, rel=0.05)
        decoded = list(reader)
    assert len(decoded) == N
    for got, want in zip(decoded, frames):
        assert got.shape == (H, W, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want).mean() < tolerance
    # The square really moves: frame 0 and the last differ where it started.
    assert decoded[0][20, 10, 0] > 150 and decoded[-1][20, 10, 0] < 80


def test_reader_is_lazy_and_reiterable(tmp_path):
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps=25) as writer:
        for frame in moving_square():
            writer.write(frame)
    reader = VideoReader(path)
    first = next(iter(reader))
    assert first.shape == (H, W, 3)
    assert sum(1 for _ in reader) == N


def test_odd_size_mp4_is_padded_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=12.5) as writer:
        for frame in moving_square(3, 47, 63):
            writer.write(frame)
    reader = VideoReader(path)
    assert (reader.width, reader.height) == (64, 48)
    assert len(list(reader)) == 3


def test_writer_discards_output_on_error(tmp_path):
    path = tmp_path / "broken.mp4"
    with pytest.raises(ValueError, match="expected"), VideoWriter(path, fps=10) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.avi", fps=10)


def _write_clip(path, **options) -> bytes:
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for _ in range(N):
            noise = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")))
        container.mux(stream.encode(None))
    return path.read_bytes()


def test_truncated_and_corrupt_files_raise(tmp_path):
    data = _write_clip(tmp_path / "ok.mp4")
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # index at the end: lost
    with pytest.raises(InputFileError):
        VideoReader(tmp_path / "cut.mp4")

    data = _write_clip(tmp_path / "fast.mp4", movflags="faststart")  # index first, media cut
    (tmp_path / "cut_fast.mp4").write_bytes(data[: len(data) // 2])
    reader = VideoReader(tmp_path / "cut_fast.mp4")
    with pytest.raises(InputFileError, match="truncated"):
        list(reader)

    (tmp_path / "junk.mp4").write_bytes(os.urandom(2000))
    with pytest.raises(InputFileError):
        VideoReader(tmp_path / "junk.mp4")
    with pytest.raises(InputFileError, match="not found"):
        VideoReader(tmp_path / "missing.mp4")
    assert is_video("a.MOV") and not is_video("a.png")


def test_a_truncated_matroska_file_is_refused(tmp_path):
    data = _write_clip(tmp_path / "ok.mkv")
    with VideoReader(tmp_path / "ok.mkv") as reader:
        assert reader._declared == 0 and len(list(reader)) == N  # mkv stores no frame count
    (tmp_path / "cut.mkv").write_bytes(data[: int(len(data) * 0.6)])
    reader = VideoReader(tmp_path / "cut.mkv")
    with pytest.raises(InputFileError, match=r"cut.mkv: video is truncated: frames end at .* of the 1.20 s"):
        list(reader)


def _segment(path, w: int, h: int, colour) -> bytes:
    import av

    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for _ in range(5):
            frame = np.full((h, w, 3), colour, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path.read_bytes()


def test_a_resolution_change_mid_stream_is_rescaled_to_the_first_size(tmp_path):
    first = _segment(tmp_path / "a.ts", W, H, (200, 30, 30))
    second = _segment(tmp_path / "b.ts", W // 2, H // 2, (30, 200, 30))
    (tmp_path / "both.ts").write_bytes(first + second)
    with VideoReader(tmp_path / "both.ts") as reader:
        frames = list(reader)
        assert reader.rescaled_frames == 5
    assert len(frames) == 10 and {f.shape for f in frames} == {(H, W, 3)}
    assert frames[-1][..., 1].mean() > 150  # the second part, scaled up
