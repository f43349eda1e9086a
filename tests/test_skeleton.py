from __future__ import annotations

import numpy as np
import pytest

from diffpose3d.skeleton import (
    H36M32_TO_17,
    MPI3DHP_RAW_TO_17,
    SKELETON_NAMES,
    get_skeleton,
    map_keypoints,
    mapping_indices,
    mapping_table,
)

EXPECTED_COUNTS = {"h36m17": 17, "h36m16": 16, "h36m32": 32, "humaneva15": 15, "mpii16": 16,
                   "mpi3dhp17": 17, "coco17": 17, "blazepose33": 33}


def _mirror(name: str) -> str:
    if name.startswith(("l_", "r_")):
        return ("r_" if name[0] == "l" else "l_") + name[2:]
    if name.endswith("_left"):
        return name[: -len("_left")] + "_right"
    if name.endswith("_right"):
        return name[: -len("_right")] + "_left"
    return name


@pytest.mark.parametrize("name", SKELETON_NAMES)
def test_tree_is_valid(name: str) -> None:
    sk = get_skeleton(name)
    assert sk.num_joints == EXPECTED_COUNTS[name]
    assert len(set(sk.joint_names)) == sk.num_joints
    assert sk.parents.count(-1) == 1
    for j in range(sk.num_joints):  # every joint reaches the root without a cycle
        seen, k = set(), j
        while sk.parents[k] != -1:
            assert k not in seen
            seen.add(k)
            k = sk.parents[k]
    assert len(sk.edges()) == sk.num_joints - 1


@pytest.mark.parametrize("name", SKELETON_NAMES)
def test_left_right_pairs_mirror_by_name(name: str) -> None:
    sk = get_skeleton(name)
    assert not set(sk.left) & set(sk.right)
    for a, b in zip(sk.left, sk.right):
        assert _mirror(sk.joint_names[a]) == sk.joint_names[b]
    # every lateral joint is listed
    lateral = {i for i, n in enumerate(sk.joint_names) if _mirror(n) != n}
    assert lateral == set(sk.left) | set(sk.right)


@pytest.mark.parametrize("name", SKELETON_NAMES)
def test_flip_permutation_is_an_involution(name: str) -> None:
    perm = get_skeleton(name).flip_permutation()
    assert sorted(perm) == list(range(len(perm)))
    assert [perm[p] for p in perm] == list(range(len(perm)))
    assert perm != list(range(len(perm)))


def test_lifting_layouts_have_pelvis_root() -> None:
    for name in ("h36m17", "h36m16", "humaneva15", "mpi3dhp17", "h36m32"):
        sk = get_skeleton(name)
        assert sk.joint_names[0] == "pelvis" and sk.parents[0] == -1


def test_published_tables() -> None:
    assert get_skeleton("h36m17").parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    assert get_skeleton("humaneva15").parents == (-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1)
    assert get_skeleton("humaneva15").left == (2, 3, 4, 8, 9, 10)
    assert get_skeleton("humaneva15").right == (5, 6, 7, 11, 12, 13)
    assert set(get_skeleton("mpii16").left) == {3, 4, 5, 13, 14, 15}
    assert get_skeleton("blazepose33").joint_names[23:25] == ("l_hip", "r_hip")
    assert get_skeleton("blazepose33").joint_names[32] == "r_foot_index"


def test_h36m32_subset_matches_names_and_tree() -> None:
    full, sub = get_skeleton("h36m32"), get_skeleton("h36m17")
    assert [full.joint_names[i] for i in H36M32_TO_17] == list(sub.joint_names)
    pts = np.random.default_rng(0).normal(size=(3, 32, 3))
    np.testing.assert_array_equal(map_keypoints(pts, "h36m32", "h36m17"), pts[:, H36M32_TO_17])


def test_mpi3dhp_reorder_puts_pelvis_first() -> None:
    raw = ["head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
           "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "pelvis", "spine", "head"]
    assert [raw[i] for i in MPI3DHP_RAW_TO_17] == list(get_skeleton("mpi3dhp17").joint_names)


def test_coco_to_h36m_table_joint_by_joint() -> None:
    t = mapping_table("coco17", "h36m17")
    assert list(t) == list(get_skeleton("h36m17").joint_names)
    assert t["neck_nose"] == (("nose", 1.0),)
    for joint, pairs in t.items():  # affine combinations
        assert abs(sum(w for _, w in pairs) - 1.0) < 1e-12, joint
    assert mapping_indices("coco17", "h36m17")[2] == ((14, 1.0),)  # r_knee copied
    for joint in ("r_knee", "r_ankle", "l_knee", "l_ankle", "l_shoulder", "l_elbow", "l_wrist",
                  "r_shoulder", "r_elbow", "r_wrist"):
        assert t[joint] == ((joint, 1.0),)


def test_detector_landmarks_to_h36m_follow_the_measured_correction() -> None:
    # The definition, computed independently: m mid-hip, d half hip vector, t torso; hips m +- a d + b t,
    # thorax mid-shoulder + e t, head mid-eye + k t, spine the mean of pelvis and thorax.
    a, b, e, k = 1.475, 0.171, 0.167, 0.141
    rng = np.random.default_rng(1)
    pts = np.concatenate([rng.uniform(0, 500, (4, 17, 2)), rng.uniform(0, 1, (4, 17, 1))], -1)
    coco, h36m = get_skeleton("coco17"), get_skeleton("h36m17")
    out = map_keypoints(pts, "coco17", "h36m17")
    xy = {n: pts[:, coco.index(n), :2] for n in coco.joint_names}
    m = (xy["l_hip"] + xy["r_hip"]) / 2
    d = (xy["l_hip"] - xy["r_hip"]) / 2
    t = (xy["l_shoulder"] + xy["r_shoulder"]) / 2 - m
    thorax = (xy["l_shoulder"] + xy["r_shoulder"]) / 2 + e * t
    expected = {"l_hip": m + a * d + b * t, "r_hip": m - a * d + b * t, "pelvis": m + b * t, "thorax": thorax,
                "spine": (m + b * t + thorax) / 2, "head": (xy["l_eye"] + xy["r_eye"]) / 2 + k * t,
                "neck_nose": xy["nose"], "l_wrist": xy["l_wrist"]}
    for joint, value in expected.items():
        np.testing.assert_allclose(out[:, h36m.index(joint), :2], value, err_msg=joint)
    np.testing.assert_allclose(out[:, 0, 2], pts[:, [5, 6, 11, 12], 2].min(1))  # the pelvis' sources
    bp = get_skeleton("blazepose33")
    bpts = rng.normal(size=(2, 33, 2))
    via_bp = map_keypoints(bpts, "blazepose33", "h36m17")
    as_coco = bpts[:, [bp.index(n) for n in coco.joint_names]]
    np.testing.assert_allclose(via_bp, map_keypoints(as_coco, "coco17", "h36m17"))


def test_blazepose_tables() -> None:
    t = mapping_table("blazepose33", "humaneva15")
    assert t["pelvis"] == (("l_hip", 0.5), ("r_hip", 0.5)) and t["head"] == (("l_eye", 0.5), ("r_eye", 0.5))
    bp = get_skeleton("blazepose33")
    pts = np.random.default_rng(2).normal(size=(2, 33, 2))
    out = map_keypoints(pts, "blazepose33", "humaneva15")
    np.testing.assert_allclose(out[:, 0], pts[:, [bp.index("l_hip"), bp.index("r_hip")]].mean(1))
    np.testing.assert_allclose(out[:, 13], pts[:, bp.index("r_ankle")])


def test_coco_to_humaneva() -> None:
    t = mapping_table("coco17", "humaneva15")
    assert t["thorax"] == (("l_shoulder", 0.5), ("r_shoulder", 0.5))
    pts = np.random.default_rng(3).normal(size=(5, 17, 2))
    out = map_keypoints(pts, "coco17", "humaneva15")
    np.testing.assert_allclose(out[:, 2], pts[:, 5])   # l_shoulder
    np.testing.assert_allclose(out[:, 11], pts[:, 12])  # r_hip


def test_mpii_to_h36m_missing_neck() -> None:
    t = mapping_table("mpii16", "h36m17")
    assert t["neck_nose"] == ()
    assert t["spine"] == (("spine", 1.0),) and t["head"] == (("head", 1.0),)
    pts = np.concatenate([np.random.default_rng(4).normal(size=(3, 16, 2)), np.ones((3, 16, 1))], -1)
    out = map_keypoints(pts, "mpii16", "h36m17")
    assert np.isnan(out[:, 9, :2]).all() and (out[:, 9, 2] == 0).all()
    np.testing.assert_allclose(out[:, 0], pts[:, 6])   # pelvis
    np.testing.assert_allclose(out[:, 3], pts[:, 0])   # r_ankle
    np.testing.assert_allclose(out[:, 16], pts[:, 10])  # r_wrist


def test_h36m_humaneva_round_trip() -> None:
    pts = np.random.default_rng(5).normal(size=(2, 17, 3))
    he = map_keypoints(pts, "h36m17", "humaneva15", confidence=False)
    assert mapping_table("h36m17", "humaneva15")["head"] == (("head", 1.0),)
    back = map_keypoints(he, "humaneva15", "h36m17", confidence=False)
    keep = [i for i in range(17) if i not in (7, 9)]  # spine is derived, neck_nose missing
    np.testing.assert_allclose(back[:, keep], pts[:, keep])
    np.testing.assert_allclose(back[:, 7], (pts[:, 0] + pts[:, 8]) / 2)
    assert np.isnan(back[:, 9]).all()
    scored = map_keypoints(pts, "h36m17", "humaneva15")  # C == 3 -> last channel is a score
    np.testing.assert_allclose(scored, he)
    scored_back = map_keypoints(scored, "humaneva15", "h36m17")
    assert scored_back[0, 9, 2] == 0 and scored_back[0, 7, 2] == min(pts[0, 0, 2], pts[0, 8, 2])


def test_unknown_mapping_and_bad_shape() -> None:
    with pytest.raises(ValueError, match="no keypoint mapping"):
        mapping_table("h36m17", "coco17")
    with pytest.raises(ValueError, match="expected"):
        map_keypoints(np.zeros((2, 15, 2)), "coco17", "h36m17")
    with pytest.raises(ValueError, match="unknown skeleton"):
        get_skeleton("smpl24")
