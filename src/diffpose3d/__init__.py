"""diffpose3d: DiffPose 3D human pose estimation with calibrated uncertainty.

    from diffpose3d import DiffPose
    model = DiffPose.load()                       # the default bundled model
    result = model.from_keypoints(keypoints, confidence, image_size=(w, h), layout="coco17")

The names below are imported on first use, so `import diffpose3d` (and the command line's start)
stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "DiffPose": "diffpose3d.inference.api",
    "PoseResult": "diffpose3d.inference.result",
    "load_result_npz": "diffpose3d.inference.outputs",
    "evaluate_checkpoint": "diffpose3d.evaluation.scoring",
    "load_config": "diffpose3d.config",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diffpose3d' has no attribute {name!r}")
