"""2D pose detectors: images in, per-joint keypoints, confidences and heatmaps out.

`get_detector("mediapipe")` is the offline BlazePose-33 backend (needs the `detect` extra);
backends are imported lazily, so importing this package never needs them.
"""

from diffpose3d.detect.base import Detection, PoseDetector, available_detectors, get_detector

__all__ = ["Detection", "PoseDetector", "available_detectors", "get_detector"]
