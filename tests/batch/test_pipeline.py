"""`diffpose3d batch` on a local Ray (2 CPUs): every good input gets `predict`'s result, the
broken ones a failed record, and a second run skips everything; a damaged result is made again.

The inputs are small keypoints files lifted by the tiny untrained model (the plumbing is what
is tested), plus a photo and a short video through the detector when it is installed.
"""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest

from diffpose3d.cli import main

ray = pytest.importorskip("ray", reason="the batch extra is not installed (pip install 'diffpose3d[batch]')")
has_detector = importlib.util.find_spec("mediapipe") is not None
GOOD_KEYPOINT_FILES = 18


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def make_inputs(folder):
    """18 keypoints files (1 to 6 frames, 1 or 2 people), a corrupt npz and a corrupt video;
    with the detector, a photo and a 3-frame video too."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(GOOD_KEYPOINT_FILES):
        people = 1 + i % 2
        kp = rng.uniform(50, 400, size=(people, 1 + i % 6, 17, 3)).astype(np.float32)
        kp[..., 2] = 0.9
        np.savez(folder / f"kp{i:02d}.npz", keypoints=kp if people > 1 else kp[0], image_size=np.array([640, 480]),
                 layout=np.array("coco17"))
    (folder / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    if has_detector:
        from skimage import data

        from diffpose3d.io.video import VideoWriter
        from diffpose3d.viz.render import save_image

        image = data.astronaut()[:, :480]
        save_image(folder / "astronaut.png", image)
        with VideoWriter(folder / "clip.mp4", fps=10) as writer:
            for t in range(3):
                writer.write(np.roll(image, 4 * t, axis=1))
    return sorted(p for p in folder.iterdir())


def same_result(a, b):
    """Two results hold the same numbers and the same JSON (all but the run id, which is per run)."""
    for suffix in (".npz", ".json"):
        if suffix == ".npz":
            with np.load(a.with_suffix(".npz")) as x, np.load(b.with_suffix(".npz")) as y:
                assert x.files == y.files
                for key in x.files:
                    if key == "meta":
                        mx, my = json.loads(str(x[key])), json.loads(str(y[key]))
                        assert mx.pop("run") != my.pop("run") and mx == my
                    else:
                        assert np.array_equal(x[key], y[key], equal_nan=x[key].dtype.kind == "f"), key
        else:
            jx, jy = (json.loads(p.with_suffix(".json").read_text()) for p in (a, b))
            jx["meta"].pop("run"), jy["meta"].pop("run")
            assert jx == jy


def summary(out):
    with open(out / "batch-summary.csv", newline="") as handle:
        return {row["input"]: row for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_batch_gives_predicts_results_records_failures_and_resumes(local_ray, tiny_bundle, tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    options = ["--checkpoint", str(tiny_bundle), "--quiet"]
    assert main(["batch", str(tmp_path / "in"), "--out", str(out), "--workers", "2", *options]) == 2
    printed = capsys.readouterr()
    total = printed.out.strip().splitlines()
    assert len(total) == 1 and total[0].startswith(f"batch: {len(inputs)} inputs: {len(inputs) - 2} ok, 0 skipped, "
                                                   "2 failed;")
    rows = summary(out)
    assert list(rows) == [str(p) for p in inputs]
    for broken in ("broken.npz", "broken.mp4"):
        row = rows[str(tmp_path / "in" / broken)]
        assert row["status"] == "failed" and row["error"].startswith(str(tmp_path / "in" / broken))
        assert f"failed: {row['error']}" in printed.err
    workers = {r["worker"] for r in json.loads((out / "batch-summary.json").read_text())["inputs"]}
    assert len(workers) == 2  # the pool's two actors shared the inputs

    # Every good result is what `predict` writes for the same input and seed.
    for path in inputs:
        if path.name.startswith("broken"):
            continue
        row = rows[str(path)]
        assert row["status"] == "ok" and int(row["frames"]) >= 1 and int(row["people"]) >= 1, row
        reference = tmp_path / "predict" / path.stem
        assert main(["predict", str(path), "--out", str(reference), *options]) == 0
        same_result(out / row["result"], reference / path.stem)
    capsys.readouterr()

    # A second run finds everything done: nothing runs, nothing is rewritten.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if not p.name.startswith("batch-summary")}
    assert main(["batch", str(tmp_path / "in"), "--out", str(out), *options]) == 2
    assert capsys.readouterr().out.startswith(f"batch: {len(inputs)} inputs: 0 ok, {len(inputs) - 2} skipped, "
                                              "2 failed; nothing left to run")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if not p.name.startswith("batch-summary")} == before
    assert {r["status"] for r in summary(out).values()} == {"skipped", "failed"}

    # A damaged result (as a kill between two writes could leave) is made again, alone.
    damaged = out / "kp03.json"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    assert main(["batch", str(tmp_path / "in"), "--out", str(out), *options]) == 2
    rows = summary(out)
    assert [p for p, r in rows.items() if r["status"] == "ok"] == [str(tmp_path / "in" / "kp03.npz")]
    same_result(out / "kp03", tmp_path / "predict" / "kp03" / "kp03")
