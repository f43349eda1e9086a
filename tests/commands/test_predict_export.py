"""`predict --export bvh,gltf --focal PX`: the exports are files of the result (in its manifest), the
roots are fitted with the focal length given."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffpose3d.cli import main
from diffpose3d.inference.outputs import load_result_npz


def test_predict_writes_the_exports_with_the_result_and_uses_the_focal_length(tiny_bundle, tmp_path, capsys):
    pygltflib = pytest.importorskip("pygltflib")
    kp = np.random.default_rng(0).uniform(200, 400, (6, 15, 3))
    kp[..., 2] = 0.9
    source = tmp_path / "walk.npz"
    np.savez(source, keypoints=kp, image_size=np.array([640, 480]), layout=np.array("humaneva15"))
    out = tmp_path / "out"
    code = main(["predict", str(source), "--out", str(out), "--checkpoint", str(tiny_bundle), "--quiet",
                 "--export", "bvh,glb", "--focal", "900"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "walk.manifest.json").read_text())
    files = json.dumps(manifest)
    assert "walk_person0.bvh" in files and "walk.glb" in files
    result = load_result_npz(out / "walk.npz")
    assert result.meta["camera"]["focal_px"] == 900.0 and result.meta["camera"]["focal_source"] == "given"
    assert result.root.shape == (6, 3) and result.root_hypotheses.shape[:2] == (6, result.num_hypotheses)
    gltf = pygltflib.GLTF2().load(str(out / "walk.glb"))
    assert [gltf.nodes[n].name for n in gltf.scenes[0].nodes] == ["person0"]
    assert (out / "walk_person0.bvh").read_text().startswith("HIERARCHY\nROOT pelvis")
