"""The MediaPipe BlazePose backend on real photographs shipped by scikit-image.

`skimage.data.astronaut()` is a 512x512 photograph of a person from the waist up: the legs are
out of frame, and MediaPipe's region of interest (about 1250 px square, so one heatmap cell is
about 20 image pixels) reaches far below the image.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None,
    reason="mediapipe not installed (pip install 'diffpose3d[detect]')",
)

skimage_data = pytest.importorskip("skimage.data")

NOSE, L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 0, 11, 12, 23, 24
LEGS = [25, 26, 27, 28, 29, 30, 31, 32]  # knees, ankles, heels, foot tips


def _heatmap_argmax(det) -> np.ndarray:
    """Image-pixel position (J, 2) of each joint's heatmap maximum."""
    j, _, w = det.heatmaps.shape
    rows, cols = np.divmod(det.heatmaps.reshape(j, -1).argmax(axis=1), w)
    return np.stack([cols, rows, np.ones_like(cols)], axis=-1).astype(np.float64) @ det.heatmap_to_image.T


@pytest.fixture(scope="module")
def detector():
    from diffpose3d.detect import get_detector

    det = get_detector("mediapipe")
    yield det
    det.close()


@pytest.fixture(scope="module")
def astronaut(detector):
    image = skimage_data.astronaut()
    return image, detector.detect(image)


def test_finds_the_astronaut_in_plausible_places(astronaut):
    image, det = astronaut
    assert det is not None
    h, w = image.shape[:2]
    assert det.layout == "blazepose33" and det.image_size == (w, h)
    assert det.keypoints.shape == (33, 2) and det.keypoints.dtype == np.float32
    assert det.confidence.shape == (33,) and 0.5 <= det.score <= 1.0
    y = det.keypoints[:, 1]
    shoulders = det.keypoints[[L_SHOULDER, R_SHOULDER]]
    assert y[NOSE] < shoulders[:, 1].min()
    assert shoulders[:, 1].max() < min(y[L_HIP], y[R_HIP])
    assert np.all((shoulders >= 0) & (shoulders < [w, h]))
    # The subject faces the camera: her left shoulder is on the image's right.
    assert det.keypoints[L_SHOULDER, 0] > det.keypoints[R_SHOULDER, 0]
    assert np.all(det.confidence[[NOSE, L_SHOULDER, R_SHOULDER]] > 0.9)


def test_out_of_frame_legs_get_low_confidence(astronaut):
    image, det = astronaut
    assert np.all(det.confidence[LEGS] < 0.2)
    assert np.all(det.keypoints[[27, 28], 1] > image.shape[0])  # ankles below the picture


def test_heatmaps_are_probability_maps_that_agree_with_the_landmarks(astronaut):
    _, det = astronaut
    maps = det.heatmaps
    assert maps.shape == (33, 64, 64) and maps.dtype == np.float32
    assert np.all(maps >= 0)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    affine = det.heatmap_to_image
    assert affine.shape == (2, 3)
    cell = np.linalg.norm(affine[:, 0])
    assert 5.0 < cell < 40.0
    sure = np.flatnonzero(det.confidence > 0.9)
    assert len(sure) >= 10
    # The raw argmax is quantised to the 64x64 grid: within about one cell of the landmark.
    dist = np.linalg.norm(_heatmap_argmax(det) - det.keypoints, axis=1)
    assert np.all(dist[sure] < 1.5 * cell), dist[sure]
    # MediaPipe refines confident landmarks to the heatmap's weighted mean over the 7x7 cells
    # around them; redoing that from our maps must land on the landmark to a pixel.
    inv = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
    for j in sure:
        col, row = (inv @ np.append(det.keypoints[j], 1.0)).astype(int)
        r0, c0 = max(row - 3, 0), max(col - 3, 0)
        win = maps[j, r0:row + 4, c0:col + 4]
        rows, cols = np.mgrid[r0:r0 + win.shape[0], c0:c0 + win.shape[1]]
        mean = np.array([(win * cols).sum(), (win * rows).sum(), win.sum()])
        refined = affine @ np.array([mean[0] / mean[2], mean[1] / mean[2], 1.0])
        assert np.linalg.norm(refined - det.keypoints[j]) < 1.5, j


def test_no_person_in_a_coffee_cup_or_a_blank_image(detector):
    for image in (skimage_data.coffee(), np.zeros((480, 640, 3), np.uint8)):
        det = detector.detect(image)
        assert det is None or det.score < 0.5


def test_without_heatmaps_and_in_video_mode(astronaut):
    from diffpose3d.detect.mediapipe_pose import MediaPipePoseDetector

    image, ref = astronaut
    with MediaPipePoseDetector(use_heatmaps=False) as plain:
        det = plain.detect(image)
    assert det.heatmaps is None and det.heatmap_to_image is None
    np.testing.assert_allclose(det.keypoints, ref.keypoints, atol=1e-3)
    with MediaPipePoseDetector(static_image_mode=False) as video:
        frames = [video.detect(image) for _ in range(2)]
    # The second frame is cropped from the first frame's landmarks, not from the detector.
    for det in frames:
        assert det is not None and det.heatmaps is not None
        dist = np.linalg.norm(_heatmap_argmax(det) - det.keypoints, axis=1)
        assert np.all(dist[:13] < 1.5 * np.linalg.norm(det.heatmap_to_image[:, 0]))


def test_models_that_would_be_downloaded_are_refused():
    import os

    import mediapipe

    from diffpose3d.detect.mediapipe_pose import MediaPipePoseDetector
    from diffpose3d.errors import DiffPoseError

    lite = os.path.join(os.path.dirname(mediapipe.__file__), "modules/pose_landmark/pose_landmark_lite.tflite")
    if os.path.exists(lite):
        pytest.skip("this mediapipe install ships the lite model")
    with pytest.raises(DiffPoseError, match="model_complexity=1"):
        MediaPipePoseDetector(model_complexity=0)
    assert not os.path.exists(lite)


def test_rejects_bad_images(detector):
    from diffpose3d.errors import DiffPoseError

    with pytest.raises(DiffPoseError):
        detector.detect(np.zeros((64, 64), np.uint8))


def _small_astronaut(side: int) -> np.ndarray:
    from skimage import transform

    return (transform.resize(skimage_data.astronaut(), (side, side), anti_aliasing=True) * 255).astype(np.uint8)


def test_the_same_landmarks_as_mediapipes_own_pose_solution(astronaut):
    import mediapipe as mp

    image, det = astronaut
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        ref = pose.process(image)
    h, w = image.shape[:2]
    kp = np.array([[p.x * w, p.y * h] for p in ref.pose_landmarks.landmark])
    world = np.array([[p.x, p.y, p.z] for p in ref.pose_world_landmarks.landmark])
    np.testing.assert_allclose(det.keypoints, kp, atol=0.5)
    assert det.world_landmarks.shape == (33, 3)
    np.testing.assert_allclose(det.world_landmarks, world, atol=0.01)
    hips = det.world_landmarks[[L_HIP, R_HIP]]
    assert np.abs(hips.mean(0)).max() < 0.05 and det.world_landmarks[NOSE, 1] < -0.4  # origin mid-hip, y down


def test_five_people_in_a_row_are_five_people_each_with_their_own_joints(detector):
    row = np.ascontiguousarray(np.concatenate([_small_astronaut(320)] * 5, axis=1))
    people = detector.detect_people(row)
    assert len(people) == 5
    noses = sorted(float(p.keypoints[NOSE, 0]) for p in people)
    assert np.allclose(np.diff(noses), 320, atol=15)
    for p in people:
        own = int(p.keypoints[NOSE, 0] // 320)
        seen = p.confidence > 0.5
        assert seen.sum() >= 10
        assert np.all(p.keypoints[seen, 0] // 320 == own), "a person holds joints of a neighbour"
        assert p.world_landmarks is not None and p.roi.shape == (5,)
    assert len(detector.detect_people(row, max_people=2)) == 2


def test_two_people_are_tracked_in_video_mode():
    from diffpose3d.detect.mediapipe_pose import MediaPipePoseDetector

    a = skimage_data.astronaut()
    two = np.concatenate([a, a[:, ::-1]], axis=1)
    with MediaPipePoseDetector(static_image_mode=False) as video:
        counts = [len(video.detect_people(np.ascontiguousarray(np.roll(two, 6 * t, axis=1)))) for t in range(3)]
        assert counts == [2, 2, 2] and len(video._tracked) == 2
        video.set_video_mode(False)
        assert video._tracked == []


def test_no_native_log_lines_unless_verbose(capfd):
    from diffpose3d.detect.mediapipe_pose import MediaPipePoseDetector

    capfd.readouterr()
    with MediaPipePoseDetector() as det:
        assert det.detect(skimage_data.astronaut()) is not None
    err = capfd.readouterr().err
    assert "W0000" not in err and "INFO:" not in err and "WARNING:" not in err, err
