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

from diffpose3d.bundle import default_checkpoint
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
    from diffpose3d.viz.html import library_name

    # plotly.js once in the output folder, the page loads it from there (not inlined)
    assert (out / library_name()).is_file() and f'src="{library_name()}"' in html and "plotly.js v" not in html


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
    # 20 hypotheses: a spread estimated from 5 samples varies by a third from seed to seed
    assert main(["predict", str(photo), "--out", str(out), "--render", "--quiet", "--hypotheses", "20"]) == 0
    res = load_result_npz(out / "astronaut.npz")
    names = res.joint_names
    assert res.missing[0, [names.index(n) for n in ("l_knee", "r_knee", "l_ankle", "r_ankle")]].all()  # cut off
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
    with pytest.raises(InputFileError, match="cut.npz: not a readable .npz"):
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
    assert len(err) == 1 and f"{out / 'people.json'}: exists and is a folder: refusing to replace it" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["people.json"]


def _photo(path, image):
    from diffpose3d.viz.render import save_image

    return save_image(path, image)


def _two_astronauts():
    from skimage import data

    a = data.astronaut()
    return np.ascontiguousarray(np.concatenate([a, a[:, ::-1]], axis=1))


def _json_strict(path):
    def refuse(name):
        raise AssertionError(f"bare {name} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


@needs_detector
def test_a_photo_of_two_people_gives_two_lifted_people_drawn_and_summarised(tiny_bundle, tmp_path, capsys):
    photo = _photo(tmp_path / "two.png", _two_astronauts())
    out = tmp_path / "out"
    args = ["--checkpoint", str(tiny_bundle), "--quiet"]
    assert main(["predict", str(photo), "--out", str(out), "--render", "--html", *args]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and re.fullmatch(
        rf"{re.escape(str(photo))}: 1 frame, 2 people, median spread \d+ mm, [\d.]+ s -> .*two\.npz, .*two\.json, "
        r".*two_render\.png, .*two\.html", printed[0]), printed
    res = load_result_npz(out / "two.npz")
    assert res.people == [0, 1] and list(res.frame_indices) == [0, 0]
    assert res.detector_world_3d.shape == (2, 33, 3) and np.isfinite(res.detector_world_3d).all()
    assert res.meta["source"]["exif_orientation"] == 1 and res.meta["source"]["path"] == str(photo)
    nose_x = res.keypoints_2d[:, res.joint_names.index("head"), 0]
    assert nose_x.min() < 512 < nose_x.max()  # one on each half of the picture
    doc = _json_strict(out / "two.json")
    jsonschema.validate(doc, prediction_schema())
    assert doc["num_people"] == 2 and [p["id"] for p in doc["frames"][0]["people"]] == [0, 1]
    assert len(doc["frames"][0]["people"][1]["detector_world_3d"]) == 33
    html = (out / "two.html").read_text()
    assert '"source":"data:image\\u002fjpeg;base64,' in html and "#1 " in html  # the photo beside the 3D
    from diffpose3d.io.images import read_image

    assert read_image(out / "two_render.png").shape == (640, 1280, 3)

    assert main(["predict", str(photo), "--out", str(tmp_path / "one"), "--person", "largest", *args]) == 0
    assert len(load_result_npz(tmp_path / "one" / "two.npz").people) == 1
    assert main(["predict", str(photo), "--out", str(tmp_path / "max"), "--max-people", "1", *args]) == 0
    assert len(load_result_npz(tmp_path / "max" / "two.npz").people) == 1
    capsys.readouterr()
    assert main(["predict", str(photo), "--out", str(tmp_path / "none"), "--person", "5", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"diffpose3d predict: error: {photo}: no person 5 (found: 0, 1)"]


@needs_detector
def test_a_folder_gives_one_result_per_photo_of_any_size_and_a_sequence_one_result(tiny_bundle, tmp_path, capsys):
    from skimage import data, transform

    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "big.png", data.astronaut())
    _photo(folder / "small.jpg", (transform.resize(data.astronaut(), (300, 300)) * 255).astype(np.uint8))
    _photo(folder / "cup.png", data.coffee())
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out), "--checkpoint", str(tiny_bundle), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.npz")) == ["big.npz", "small.npz"]
    assert load_result_npz(out / "small.npz").image_size == (300, 300)
    assert len(captured.out.strip().splitlines()) == 2
    expected = f"diffpose3d predict: warning: {folder / 'cup.png'}: no person found, nothing written"
    assert captured.err.strip().splitlines() == [expected]

    code = main(["predict", str(folder), "--out", str(tmp_path / "seq"), "--sequence", "--checkpoint", str(tiny_bundle)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "a sequence needs one size" in err[0]
    assert not (tmp_path / "seq").exists()

    frames = tmp_path / "frames"
    frames.mkdir()
    two = _two_astronauts()[:, 200:900]
    for t in range(3):
        _photo(frames / f"f{t}.png", np.ascontiguousarray(np.roll(two, 5 * t, axis=1)))
    assert main(["predict", str(frames), "--out", str(out), "--sequence", "--checkpoint", str(tiny_bundle), "--quiet"]) == 0
    res = load_result_npz(out / "frames.npz")
    assert res.people == [0, 1] and sorted(set(res.frame_indices.tolist())) == [0, 1, 2]
    head = res.joint_names.index("head")
    for pid in res.people:  # ids follow the people: each stays on its side
        xs = res.person(pid).keypoints_2d[:, head, 0]
        assert xs.max() - xs.min() < 40
    assert res.meta["source"]["frame_names"] == ["f0.png", "f1.png", "f2.png"]


def test_coco_json_with_several_people_per_image_is_lifted_whole(tiny_bundle, tmp_path):
    rng = np.random.default_rng(3)
    records = []
    for t in range(3):
        for p, x0 in enumerate((50, 350)):
            kp = np.concatenate([rng.uniform(x0, x0 + 150, (17, 2)) + [2 * t, 0], np.full((17, 1), 0.9)], -1)
            records.append({"image_id": t, "keypoints": kp.reshape(-1).tolist(), "score": 0.9 - 0.1 * p})
    src = tmp_path / "people.json"
    src.write_text(json.dumps(records))
    out = tmp_path / "out"
    assert main(["predict", str(src), "--out", str(out), "--image-size", "640", "480",
                 "--checkpoint", str(tiny_bundle), "--quiet", "--html"]) == 0
    res = load_result_npz(out / "people.npz")
    assert len(res) == 6 and res.people == [0, 1]
    np.testing.assert_array_equal(res.frame_indices, [0, 0, 1, 1, 2, 2])
    doc = _json_strict(out / "people.json")
    jsonschema.validate(doc, prediction_schema())
    assert doc["num_frames"] == 3 and all(len(f["people"]) == 2 for f in doc["frames"])


def test_keypoints_without_any_evidence_are_refused_in_one_line(tiny_bundle, tmp_path, capsys):
    src = tmp_path / "nan.npz"
    np.savez(src, keypoints=np.full((4, 17, 3), np.nan), image_size=np.array([640, 480]))
    assert main(["predict", str(src), "--out", str(tmp_path / "out"), "--checkpoint", str(tiny_bundle)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"diffpose3d predict: error: {src}: holds no usable keypoints (every joint is NaN, out of range "
                   "or of confidence 0)"]
    assert not (tmp_path / "out").exists()


@needs_detector
def test_a_photo_without_anybody_is_one_line_and_exit_2(tiny_bundle, tmp_path, capsys):
    from skimage import data

    photo = _photo(tmp_path / "cup.png", data.coffee())
    assert main(["predict", str(photo), "--out", str(tmp_path / "out"), "--checkpoint", str(tiny_bundle)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"diffpose3d predict: error: {photo}: no person found"]


def test_confidences_out_of_range_are_clamped_with_one_warning_and_the_output_is_valid(tiny_bundle, tmp_path, capsys):
    kp = np.random.default_rng(4).uniform(50, 400, (3, 17, 3))
    kp[..., 2] = 7.0  # a detector's raw scores, not probabilities
    records = [{"image_id": t, "keypoints": kp[t].reshape(-1).tolist()} for t in range(3)]
    src = tmp_path / "scores.json"
    src.write_text(json.dumps(records))
    out = tmp_path / "out"
    assert main(["predict", str(src), "--out", str(out), "--image-size", "640", "480",
                 "--checkpoint", str(tiny_bundle), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"diffpose3d: warning: {src}: 51 confidence(s) outside [0, 1] clamped into it"]
    doc = _json_strict(out / "scores.json")
    jsonschema.validate(doc, prediction_schema())
    assert all(c == 1.0 for f in doc["frames"] for p in f["people"] for c in p["confidence"])


@needs_detector
def test_one_detector_kept_over_many_inputs_finds_what_a_fresh_one_does(tiny_bundle, tmp_path):
    """`batch` workers keep their detector from input to input; `predict` makes one per input."""
    from skimage import data

    from diffpose3d.inference.api import DiffPose
    from diffpose3d.inference.predict import KeptDetector, PredictSettings, predict_one, predict_path
    from diffpose3d.io.results import OutputFolder
    from diffpose3d.viz.render import save_image

    clip = tmp_path / "clip.mp4"
    _astronaut_clip(clip, frames=3)
    photo = save_image(tmp_path / "photo.png", data.astronaut())
    model = DiffPose.load(str(tiny_bundle))
    settings = PredictSettings()
    kept = KeptDetector(settings.heatmaps_for(model), settings.max_people)
    try:
        with OutputFolder(tmp_path / "kept") as out:
            found = [predict_one(model, path, out, settings, name=f"{path.stem}{k}", detector=kept).result is not None
                     for k, path in enumerate([clip, photo, clip, photo])]
    finally:
        kept.close()
    assert all(found)
    for path in (clip, photo):
        predict_path(model, path, tmp_path / "fresh", settings, progress=False)
        fresh = load_result_npz(tmp_path / "fresh" / f"{path.stem}.npz")
        for k in (0, 2) if path == clip else (1, 3):
            again = load_result_npz(tmp_path / "kept" / f"{path.stem}{k}.npz")
            assert np.array_equal(again.keypoints_2d, fresh.keypoints_2d)
            assert np.array_equal(again.hypotheses, fresh.hypotheses)
