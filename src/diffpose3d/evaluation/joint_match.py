"""The joints a model's layout and a dataset's layout share, for scoring any bundle on any dataset.

A model joint scores against a data joint when the keypoint mapping data -> model copies it
one-to-one (`skeleton.mapping_table`: ``mpi3dhp17``'s neck is Human3.6M's thorax), or, for layouts
without a mapping, when both carry the same name; derived joints (Human3.6M's spine from
HumanEva-I's pelvis and thorax) and missing ones are not scored. Some joints share a name but not a
place on the body (`DEFINED_APART`) and are left out too. The root (joint 0 of both layouts) must be
shared: the scores are root-relative.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from diffpose3d.data.base import PoseSequence
from diffpose3d.skeleton import get_skeleton, mapping_table

#: (data layout, model layout) -> joints named alike but placed apart. HumanEva-I's head is near the
#: top of the head (0.77 thigh lengths above the thorax; Human3.6M's 0.47) and its thorax sits at the
#: base of the neck; the field's cross-dataset protocol scores the 13 limb and hip joints.
DEFINED_APART: dict[tuple[str, str], tuple[str, ...]] = {
    ("humaneva15", "h36m17"): ("thorax", "head"),
    ("h36m17", "humaneva15"): ("thorax", "head"),
}


@dataclass(frozen=True)
class JointMatch:
    """The shared joints (model names, root first) and their indices in either layout."""

    model_layout: str
    data_layout: str
    names: tuple[str, ...]
    model_index: np.ndarray
    data_index: np.ndarray

    @property
    def identity(self) -> bool:
        """Whether every joint of both layouts is scored in the same order (one layout)."""
        j_model, j_data = get_skeleton(self.model_layout).num_joints, get_skeleton(self.data_layout).num_joints
        return (len(self.names) == j_model == j_data and np.array_equal(self.model_index, np.arange(j_model))
                and np.array_equal(self.data_index, np.arange(j_data)))

    def to_dict(self) -> dict[str, object]:
        return {"model_layout": self.model_layout, "data_layout": self.data_layout, "joints": list(self.names)}


def _copied_from(data_layout: str, model_layout: str) -> dict[str, str]:
    """model joint -> the data joint it is copied from one-to-one."""
    try:
        table = mapping_table(data_layout, model_layout)
    except ValueError:  # no mapping: by name
        data_names = set(get_skeleton(data_layout).joint_names)
        return {n: n for n in get_skeleton(model_layout).joint_names if n in data_names}
    return {joint: sources[0][0] for joint, sources in table.items()
            if len(sources) == 1 and abs(sources[0][1] - 1.0) < 1e-9}


def match_joints(model_layout: str, data_layout: str) -> JointMatch:
    """The joints both layouts share (see the module docstring), in the model's order."""
    model, data = get_skeleton(model_layout), get_skeleton(data_layout)
    copied = _copied_from(data_layout, model_layout)
    apart = set(DEFINED_APART.get((data_layout, model_layout), ()))
    pairs = [(model.index(m), data.index(d), m) for m, d in copied.items() if m not in apart]
    pairs.sort()
    if not pairs or pairs[0][0] != 0 or pairs[0][1] != 0:
        raise ValueError(f"the {model_layout} model and {data_layout} data do not share their root joint "
                         f"({model.joint_names[0]} / {data.joint_names[0]}): no root-relative score")
    if len(pairs) < 2:
        raise ValueError(f"{model_layout} and {data_layout} share no joint besides the root")
    return JointMatch(model_layout, data_layout, tuple(p[2] for p in pairs),
                      np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))


def restrict_sequence(seq: PoseSequence, match: JointMatch) -> PoseSequence:
    """`seq` with only the shared joints (2D, confidence, 3D), in the match's order."""
    idx = match.data_index
    return replace(
        seq,
        keypoints_2d=seq.keypoints_2d[:, idx],
        confidence=None if seq.confidence is None else seq.confidence[:, idx],
        pose_3d=None if seq.pose_3d is None else seq.pose_3d[:, idx],
        gmm_2d=None if seq.gmm_2d is None else seq.gmm_2d[:, idx],
    )
