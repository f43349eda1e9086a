"""A video file played at its own frame rate through the live source: frames on time, the newest
one to a busy consumer, the rest dropped and counted."""

from __future__ import annotations

import time

import numpy as np
import pytest

from diffpose3d.errors import InputFileError
from diffpose3d.io.live import is_stream_url, open_live
from diffpose3d.io.video import VideoWriter


def _clip(path, frames: int, fps: float):
    with VideoWriter(path, fps=fps) as writer:
        for t in range(frames):
            writer.write(np.full((64, 96, 3), 8 * t, np.uint8))
    return path


def test_a_file_plays_at_its_frame_rate(tmp_path):
    clip = _clip(tmp_path / "c.mp4", 12, 20.0)
    with open_live(clip, realtime=True) as source:
        assert source.fps == pytest.approx(20.0) and (source.width, source.height) == (96, 64)
        start = time.perf_counter()
        got = [(f.index, f.arrived - start) for f in source]
    indices = [i for i, _ in got]
    assert indices == sorted(indices) and indices[-1] == 11
    assert got[-1][1] >= 11 / 20.0 - 0.02  # not faster than the clip's own clock
    assert len(got) + source.dropped == 12


def test_a_busy_consumer_gets_the_newest_frame_and_the_rest_are_dropped(tmp_path):
    clip = _clip(tmp_path / "c.mp4", 20, 40.0)
    with open_live(clip, realtime=True) as source:
        got = []
        for frame in source:
            got.append(frame)
            deadline = time.perf_counter() + 60
            while source.decoded < min(frame.index + 5, 20) and time.perf_counter() < deadline:
                time.sleep(0.005)  # busy for four more frames' arrival
    assert source.dropped >= 12 and len(got) + source.dropped == 20
    assert any(f.dropped > 0 for f in got) and np.all(np.diff([f.index for f in got]) >= 1)
    assert got[0].image.shape == (64, 96, 3) and got[0].image.dtype == np.uint8


def test_bad_live_sources_fail_in_one_line(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        open_live(tmp_path / "none.mp4")
    with pytest.raises(InputFileError, match="no camera 63"):
        open_live(63)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(InputFileError, match="cannot open the live source"):
        open_live(tmp_path / "bad.mp4", realtime=True)
    assert is_stream_url("rtsp://cam.local/stream") and not is_stream_url("clip.mp4")
