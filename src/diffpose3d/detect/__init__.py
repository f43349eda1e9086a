"""2D pose detectors: images in, every person's keypoints, confidences and heatmaps out.

`get_detector("mediapipe")` is the offline BlazePose-33 backend (needs the `detect` extra);
backends are imported lazily, so importing this package never needs them. `detect_people`
asks any backend for everyone in an image; `people` holds the rules for several people
(duplicates, shared joints, ids over frames), `stream` runs a detector over a video's frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from diffpose3d.detect.base import Detection, PoseDetector, detect_people
from diffpose3d.errors import DiffPoseError


def _make_mediapipe(**kw: Any) -> PoseDetector:
    from diffpose3d.detect.mediapipe_pose import MediaPipePoseDetector

    return MediaPipePoseDetector(**kw)


_BACKENDS: dict[str, Callable[..., PoseDetector]] = {"mediapipe": _make_mediapipe}


def available_detectors() -> list[str]:
    return sorted(_BACKENDS)


def get_detector(name: str = "mediapipe", **kw: Any) -> PoseDetector:
    """A detector backend by name; keyword arguments go to its constructor."""
    try:
        factory = _BACKENDS[name]
    except KeyError:
        raise DiffPoseError(
            f"unknown detector {name!r}; choose one of {', '.join(available_detectors())}"
        ) from None
    return factory(**kw)


__all__ = ["Detection", "PoseDetector", "available_detectors", "detect_people", "get_detector"]
