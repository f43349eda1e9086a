"""`predict` and `demo` end to end: detector -> H_K -> hypotheses -> files and renders.

The video and keypoint tests use a tiny untrained model (they check the plumbing); the photograph
test uses the bundled model (it checks that out-of-frame joints come out uncertain).
"""

import importlib.util
import json
import re

import jsonschema
import numpy as np
import pytest

from diffpose3d.checkpoint import default_checkpoint
from diffpose3d.cli import main
from diffpose3d.inference.outputs import load_result_npz, prediction_schema

needs_detector = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                     reason="the detector extra is not installed (pip install 'diffpose3d[detect]')")
needs_bundled = pytest.mark.skipif(not (default_checkpoint() / "model.safetensors").is_file(),
                                   reason="no bundled model in this checkout")


def _astronaut_clip(path, frames=4):
    from skimage import data

    from diffpose3d.io.video import VideoWriter

    image = data.astronaut()[:, :480]
    with VideoWriter(path, fps=10) as writer:
        for t in range(frames):
            writer.write(np.roll(image, 4 * t, axis=1))


@needs_detector
def test_predict_on_a_video_keeps_frames_and_writes_decodable_renders(tiny_bundle, tmp_path):
    from diffpose3d.io.video import VideoReader

    clip = tmp_path / "clip.mp4"
    _astronaut_clip(clip)
    out = tmp_path / "out"
    code = main(["predict", str(clip), "--out", str(out), "--checkpoint", str(tiny_bundle), "--render", "--html", "--quiet"])
    assert code == 0
    result = load_result_npz(out / "clip.npz")
    assert len(result) == 4 and result.hypotheses.shape[:2] == (4, 4)
    jsonschema.validate(json.loads((out / "clip.json").read_text()), prediction_schema())
    with VideoReader(out / "clip_render.mp4") as reader:
        rendered = list(reader)
    assert len(rendered) == 4 and rendered[0].shape[2] == 3 and rendered[0].std() > 5
    html = (out / "clip.html").read_text()
    assert "plotly" in html.lower() and "l_ankle" in html


def test_predict_on_a_keypoints_file(tiny_bundle, tmp_path):
    kp = np.random.default_rng(0).uniform(50, 400, size=(5, 17, 3)).astype(np.float32)
    kp[..., 2] = 0.9
    src = tmp_path / "people.npz"
    np.savez(src, keypoints=kp, image_size=np.array([640, 480]), layout=np.array("coco17"))
    out = tmp_path / "out"
    assert main(["predict", str(src), "--out", str(out), "--checkpoint", str(tiny_bundle), "--quiet"]) == 0
    result = load_result_npz(out / "people.npz")
    assert result.pose_3d.shape == (5, 15, 3) and result.meta["input_kind"] == "keypoints"


@needs_detector
@needs_bundled
def test_out_of_frame_joints_are_more_uncertain_than_visible_ones(tmp_path):
    from skimage import data

    from diffpose3d.viz.render import save_image

    photo = save_image(tmp_path / "astronaut.png", data.astronaut())
    out = tmp_path / "out"
    assert main(["predict", str(photo), "--out", str(out), "--render", "--quiet"]) == 0
    res = load_result_npz(out / "astronaut.npz")
    names = res.joint_names
    spread = res.uncertainty[0]
    visible = [names.index(n) for n in ("l_shoulder", "r_shoulder", "head", "thorax")]
    hidden = [names.index(n) for n in ("l_knee", "r_knee", "l_ankle", "r_ankle")]
    assert spread[hidden].mean() > 1.5 * spread[visible].mean()
    kp = res.keypoints_2d[0]
    assert kp[names.index("head"), 1] < kp[names.index("thorax"), 1] < kp[names.index("pelvis"), 1]
    assert (out / "astronaut_render.png").is_file()


@needs_bundled
def test_demo_runs_with_the_bundled_model(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    assert "least certain" in printed
    assert any(p.suffix == ".png" for p in (tmp_path / "demo").iterdir())


def _heatmaps_npz(path, frames=1, joints=17, layout="coco17", image_size=(32, 32), affine=None, fill=None):
    heat = np.zeros((frames, joints, 8, 8), np.float32)
    heat[..., 3, 4] = 1.0
    if fill is not None:
        heat[:, 0] = fill
    if affine is None:
        affine = np.tile(np.array([[4.0, 0, 0], [0, 4.0, 0]]), (frames, 1, 1))
    np.savez(path, heatmaps=heat, heatmap_to_image=affine, image_size=np.array(image_size), layout=np.array(layout))
    return path


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"frames": 0}, "heatmaps are empty"),
    ({"layout": "zzz"}, "layout 'zzz' does not fit 17 heatmaps"),
    ({"joints": 15}, "layout 'coco17' does not fit 15 heatmaps"),
    ({"image_size": (0, 32)}, "image_size must be positive"),
    ({"image_size": 32}, r"image_size must be \(width, height\)"),
    ({"affine": np.full((1, 2, 3), np.nan)}, "heatmap_to_image holds NaN or inf"),
    ({"affine": np.array([[[1e20, 0, 0], [0, 4, 0]]])}, "heatmap_to_image maps the heatmaps more than 100 image"),
])
def test_bad_heatmap_files_give_one_line_errors(tiny_bundle, tmp_path, capsys, kwargs, message):
    src = _heatmaps_npz(tmp_path / "heat.npz", **kwargs)
    assert main(["predict", str(src), "--out", str(tmp_path / "out"), "--checkpoint", str(tiny_bundle), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{src}: " in err[0] and re.search(message, err[0]), err
    assert not (tmp_path / "out").exists()


def test_nan_heatmaps_are_missing_joints_and_damaged_zips_are_errors(tmp_path):
    from diffpose3d.errors import InputFileError
    from diffpose3d.inference.inputs import read_input

    ev = read_input(_heatmaps_npz(tmp_path / "heat.npz", fill=np.nan))
    assert ev.confidence[0, 0] == 0 and np.isfinite(ev.confidence).all()
    data = (tmp_path / "heat.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="cut.npz: not a readable npz"):
        read_input(tmp_path / "cut.npz")


def test_unwritable_output_gives_one_line_error_and_no_partial_pair(tiny_bundle, tmp_path, capsys):
    src = tmp_path / "people.npz"
    np.savez(src, keypoints=np.random.default_rng(1).uniform(50, 400, (2, 17, 2)), image_size=np.array([640, 480]))
    args = ["--checkpoint", str(tiny_bundle), "--quiet"]
    (tmp_path / "taken").write_text("a file, not a folder")
    assert main(["predict", str(src), "--out", str(tmp_path / "taken"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"diffpose3d predict: error: {tmp_path / 'taken'}: cannot create the output folder (File exists)"]

    out = tmp_path / "out"
    (out / "people.json").mkdir(parents=True)  # the JSON cannot be written: the npz must not stay behind
    assert main(["predict", str(src), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{out / 'people.json'}: cannot write" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["people.json"]
