"""The default bundle on the demo's photograph gives a human body, not a blob (issue: a thorax 7.5 cm
above the pelvis, a shoulder below it, 1.2-1.7 m forearms among the hypotheses)."""

import numpy as np
import pytest

from diffpose3d import DiffPose
from diffpose3d.commands.demo import bundled_example

# Mean bone lengths (m) of the 17-joint Human3.6M skeleton over S1, S5, S6, S7, S8 (every 50th frame).
H36M_BONES = {
    ("pelvis", "r_hip"): 0.134, ("r_hip", "r_knee"): 0.450, ("r_knee", "r_ankle"): 0.446,
    ("pelvis", "l_hip"): 0.134, ("l_hip", "l_knee"): 0.450, ("l_knee", "l_ankle"): 0.446,
    ("pelvis", "spine"): 0.239, ("spine", "thorax"): 0.255,
    ("thorax", "l_shoulder"): 0.149, ("l_shoulder", "l_elbow"): 0.280, ("l_elbow", "l_wrist"): 0.250,
    ("thorax", "r_shoulder"): 0.149, ("r_shoulder", "r_elbow"): 0.280, ("r_elbow", "r_wrist"): 0.250,
}


def _lift(**inference):
    model = DiffPose.load(hypotheses=50, **inference)
    with np.load(bundled_example(), allow_pickle=False) as f:
        keypoints, size, layout = f["keypoints"], tuple(int(v) for v in f["image_size"]), str(f["layout"])
    return model.from_keypoints(keypoints, image_size=size, layout=layout)


@pytest.fixture(scope="module")
def astronaut():
    return _lift()


@pytest.fixture(scope="module")
def astronaut_calibrated():
    """The hypotheses as calibrated, before the reprojection widening (which lets bones stretch)."""
    return _lift(reprojection_widening=0.0)


def _length(pose: np.ndarray, names: list[str], a: str, b: str) -> np.ndarray:
    return np.linalg.norm(pose[..., names.index(a), :] - pose[..., names.index(b), :], axis=-1)


def test_the_mean_pose_has_human_proportions(astronaut):
    pose, names = astronaut.pose_3d[0], astronaut.joint_names
    for (a, b), mean in H36M_BONES.items():
        assert abs(_length(pose, names, a, b) - mean) <= 0.25 * mean, (a, b, _length(pose, names, a, b))


def test_the_upper_body_stands_above_the_pelvis(astronaut):
    pose, names = astronaut.pose_3d[0], astronaut.joint_names
    y = {n: pose[names.index(n), 1] for n in ("pelvis", "thorax", "head", "l_shoulder", "r_shoulder")}  # y down
    assert y["pelvis"] - y["thorax"] > 0.35
    assert y["thorax"] - y["head"] > 0.1
    assert min(y["pelvis"] - y["l_shoulder"], y["pelvis"] - y["r_shoulder"]) > 0.3


def test_no_calibrated_hypothesis_has_limbs_of_another_body(astronaut_calibrated):
    hyps, names = astronaut_calibrated.hypotheses[0], astronaut_calibrated.joint_names  # (N, J, 3)
    for (a, b), mean in H36M_BONES.items():
        lengths = _length(hyps, names, a, b)
        assert np.median(lengths) == pytest.approx(mean, rel=0.3), (a, b)
        assert lengths.max() < 2.0 * mean, (a, b, lengths.max())


def test_the_reprojection_widening_stretches_bones_only_so_far(astronaut, astronaut_calibrated):
    # the photo's 2D is another layout, whose joints sit elsewhere: their bones may differ in length,
    # and the wider spread makes them longer on average; still no forearm of another body
    hyps, names = astronaut.hypotheses[0], astronaut.joint_names
    assert astronaut.uncertainty.mean() > 1.2 * astronaut_calibrated.uncertainty.mean()
    for (a, b), mean in H36M_BONES.items():
        lengths = _length(hyps, names, a, b)
        assert np.median(lengths) == pytest.approx(mean, rel=0.5), (a, b)
        assert lengths.max() < 2.5 * mean, (a, b, lengths.max())
