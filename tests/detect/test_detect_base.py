"""The detector protocol and its helpers; needs no detector backend."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from diffpose3d.detect import Detection, PoseDetector, available_detectors, get_detector
from diffpose3d.detect.base import check_image
from diffpose3d.errors import DiffPoseError


def _detection(affine: np.ndarray) -> Detection:
    maps = np.zeros((2, 4, 5), np.float32)
    maps[0, 1, 3] = 1.0  # joint 0 peaks at (col 3, row 1)
    maps[1, 2, 0] = 1.0  # joint 1 peaks at (col 0, row 2)
    return Detection(
        keypoints=np.zeros((2, 2), np.float32),
        confidence=np.ones(2, np.float32),
        heatmaps=maps,
        heatmap_to_image=affine,
        layout="blazepose33",
        image_size=(100, 80),
    )


def test_detection_counts_its_joints():
    assert _detection(np.eye(2, 3)).num_joints == 2


def test_get_detector_rejects_unknown_names():
    assert "mediapipe" in available_detectors()
    with pytest.raises(DiffPoseError, match="unknown detector"):
        get_detector("openpose")


def test_check_image():
    img = np.zeros((8, 9, 3), np.uint8)[:, ::-1]
    out = check_image(img)
    assert out.flags["C_CONTIGUOUS"] and out.shape == (8, 9, 3)
    with pytest.raises(DiffPoseError, match="RGB"):
        check_image(np.zeros((8, 9), np.uint8))
    with pytest.raises(DiffPoseError, match="uint8"):
        check_image(np.zeros((8, 9, 3), np.float32))


def test_missing_mediapipe_names_the_extra(monkeypatch):
    from diffpose3d.detect import mediapipe_pose

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    monkeypatch.setitem(sys.modules, "mediapipe.python", None)
    with pytest.raises(DiffPoseError, match=r"pip install 'diffpose3d\[detect\]'"):
        mediapipe_pose.MediaPipePoseDetector()


def test_protocol_is_runtime_checkable():
    class Dummy:
        layout = "blazepose33"

        def detect(self, image):
            return None

        def close(self):
            pass

    assert isinstance(Dummy(), PoseDetector)
