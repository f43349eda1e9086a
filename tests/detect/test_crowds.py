"""The detector on a made-up crowd (five people of the shared photographs queued in depth, as
`benchmarks/bench_crowds.py` builds it): every person found, no skeleton made of two people."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                reason="mediapipe not installed (pip install 'diffpose3d[detect]')")


@pytest.fixture(scope="module")
def bench():
    photos = Path(os.environ.get("DIFFPOSE3D_SHARED", REPO_ROOT.parent / "shared")) / "data" / "photos"
    if not (photos / "ground_truth.npz").is_file():
        pytest.skip(f"shared photographs not found in {photos} (set DIFFPOSE3D_SHARED)")
    spec = importlib.util.spec_from_file_location("bench_crowds", REPO_ROOT / "benchmarks" / "bench_crowds.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_crowds", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module, module.scenes(module.load_people(photos))


@pytest.mark.parametrize("name", ["five_queue", "four_in_a_row", "three_stacked"])
def test_everyone_in_a_crowd_is_found_whole(bench, name):
    from diffpose3d.detect.mediapipe_pose import MediaPipePoseDetector

    module, scenes = bench
    scene = next(s for s in scenes if s.name == name)
    with MediaPipePoseDetector() as detector:
        score = module.score(scene, detector.detect_people(scene.image))
    assert score["chimeras"] == 0
    assert score["found"] == score["people"]
