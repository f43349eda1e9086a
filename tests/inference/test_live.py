"""`predict --realtime`: a video file played at its own frame rate through the live path (the one
`--camera N` and stream URLs take): frames lifted as they come, an overlay video with frames/s and
latency, one line of poses a frame, and a summary."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from diffpose3d.cli import main

needs_detector = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                    reason="the detector extra is not installed (pip install 'diffpose3d[detect]')")
FRAMES, FPS = 8, 8.0


def _astronaut_clip(path):
    from skimage import data

    from diffpose3d.io.video import VideoWriter

    image = data.astronaut()[:, :480]
    with VideoWriter(path, fps=FPS) as writer:
        for t in range(FRAMES):
            writer.write(np.roll(image, 4 * t, axis=1))
    return path


@needs_detector
def test_a_video_at_its_frame_rate_through_the_live_path(tiny_bundle, tmp_path, capsys):
    from diffpose3d.io.video import VideoReader

    clip = _astronaut_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    assert main(["predict", str(clip), "--realtime", "--out", str(out), "--checkpoint", str(tiny_bundle)]) == 0
    captured = capsys.readouterr()
    assert "frames/s" in captured.out and "latency" in captured.out and "clip_live.mp4" in captured.out
    summary = json.loads((out / "clip_live.json").read_text())
    assert summary["frames"] >= 1 and summary["frames"] + summary["dropped"] == FRAMES
    assert summary["source_fps"] == pytest.approx(FPS)
    assert summary["latency_median_ms"] > 0 and summary["latency_p90_ms"] >= summary["latency_median_ms"]
    # not faster than the clip's own clock: its last frame arrives (FRAMES - 1) / FPS s after the first
    assert summary["seconds"] >= (FRAMES - 1) / FPS - 0.05
    lines = [json.loads(line) for line in (out / "clip_live.jsonl").read_text().splitlines()]
    assert len(lines) == summary["frames"] and all(line["latency_ms"] > 0 for line in lines)
    assert lines[-1]["index"] == FRAMES - 1  # the stream's last frame is always lifted
    assert any(len(line["people"]) == 1 and np.shape(line["people"][0]["pose_3d"])[1:] == (3,) for line in lines)
    with VideoReader(out / "clip_live.mp4") as video:
        frames = list(video)
    assert len(frames) == summary["frames"]
    assert (frames[0][6:20, 6:60] < 40).mean() > 0.3  # the status box (black, white text) at the top left
    assert (out / "clip_live.manifest.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["clip.mp4", "--camera", "0"], "not both"),
    (["photo.jpg", "--realtime"], "is not a video"),
    (["--camera", "3", "--html"], "not for a live source"),
    ([], "needs an INPUT"),
])
def test_live_arguments_that_do_not_go_together(tmp_path, capsys, args, message):
    assert main(["predict", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_status_of_a_slow_stream_still_says_its_rate():
    from diffpose3d.inference.live import LiveStats

    stats = LiveStats()
    assert "--" in stats.status(0)
    for k in range(4):  # one frame every 3 s, each 2.5 s late
        stats.add(3.0 * k, 2.5)
    assert stats.frames_per_second() == pytest.approx(1 / 3) and stats.latency_ms() == pytest.approx(2500)
    assert stats.status(2).startswith(" 0.3 frames/s  latency 2500 ms  2 people")
