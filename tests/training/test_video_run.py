"""The video model end to end on a few hundred real HumanEva-I frames: `diffpose3d train` with
`model.encoder.kind = video`, then `evaluate` and `predict`, which take the video path from the bundle;
flip symmetry of the video context, and hypotheses coherent over a sequence."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from diffpose3d.bundle import load_bundle
from diffpose3d.cli import main
from diffpose3d.config import load_config
from diffpose3d.data.frames import build_frames
from diffpose3d.data.mirror import flip_pose
from diffpose3d.data.splits import training_splits
from diffpose3d.evaluation.scoring import evaluate_checkpoint
from diffpose3d.inference.lifting import predict_frames
from diffpose3d.training.run import train

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def video_run(humaneva_dir, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("video_run")
    cfg = load_config(REPO / "configs" / "humaneva_video.yaml", [
        f"data.data_3d={humaneva_dir / 'data_3d_humaneva15_train.npz'}",
        f"data.data_2d={humaneva_dir / 'data_2d_humaneva15_gt_train.npz'}",
        "data.train_subjects=S1", "data.actions=Walk", "data.stride=2", "data.test_stride=2",
        "model.encoder.width=32", "model.encoder.blocks=1", "model.denoiser.width=32", "model.denoiser.blocks=1",
        "train.encoder_epochs=4", "train.denoiser_epochs=2", "train.eval_every=2", "train.max_minutes=0",
        "train.progress=false",
    ])
    info = train(cfg, out)
    return out, info, cfg


def test_video_training_writes_a_video_bundle(video_run):
    out, info, _ = video_run
    model, loaded = load_bundle(out)
    assert model.is_video and model.config.model.encoder.frames == 27
    assert loaded["train_frames"] == info["train_frames"] > 100
    h = info["stage1"]["history"]
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert info["stage1"]["single_frames"]["history"]  # stage 1 began on single frames
    assert np.isfinite(info["stage2"]["best_val_mpjpe_mm"])


def test_evaluate_takes_the_video_path_and_reports_mpjve(video_run):
    out, _, _ = video_run
    reports = evaluate_checkpoint(out, split="test")
    assert set(reports) == {"diffpose", "lifter"} and reports["diffpose"].hypotheses == 5
    for report in reports.values():
        assert 0 < report.summary["p_mpjpe"] < 1000 and 0 < report.summary["mpjve"] < 1000


def test_predict_on_a_keypoints_sequence_uses_the_video_model(video_run, humaneva_dir, tmp_path):
    out, _, cfg = video_run
    seq = training_splits(cfg)["test"][0]
    kp_file = tmp_path / "walk.npz"
    np.savez(kp_file, keypoints=seq.keypoints_2d.astype(np.float32), image_size=np.array(seq.image_size),
             layout="humaneva15")
    code = main(["predict", str(kp_file), "--out", str(tmp_path / "pred"), "--checkpoint", str(out), "--quiet"])
    assert code == 0
    with np.load(tmp_path / "pred" / "walk.npz") as result:
        assert result["pose_3d"].shape == (len(seq), 15, 3) and np.isfinite(result["pose_3d"]).all()
        assert result["hypotheses"].shape == (len(seq), 5, 15, 3)


def test_video_context_is_mirror_symmetric_with_flip_tta(video_run, mirrored_context):
    out, _, cfg = video_run
    model, perm, (xyz, feats), (xyz_m, feats_m), (xyz_f, feats_f) = mirrored_context(out, cfg)
    # What stage 2 relies on to mirror a batch without re-encoding it.
    assert torch.allclose(xyz_m, flip_pose(xyz, perm), atol=1e-5)
    assert torch.allclose(xyz_f, xyz_m) and torch.allclose(feats_f, feats_m, atol=1e-5)
    width = model.config.model.encoder.width
    assert torch.allclose(feats_m[..., :width], feats[:, perm, :width], atol=1e-5)


def test_coherent_hypotheses_are_motions_not_jitter(video_run):
    out, _, cfg = video_run
    model, _ = load_bundle(out)
    frames = build_frames(training_splits(cfg)["test"], model.skeleton, cfg.evidence)
    coherent = replace(cfg.inference, coherent=True, precision="fp32")  # bf16 rounding depends on the batch
    pred = predict_frames(model, frames, coherent)
    # however the frames are batched, every frame of a sequence gets the same noise
    again = predict_frames(model, frames, replace(coherent, batch_frames=7))
    np.testing.assert_allclose(again.hypotheses, pred.hypotheses, atol=1e-5)
    independent = predict_frames(model, frames, replace(coherent, coherent=False))

    def jitter(p) -> float:  # frame-to-frame change of each hypothesis's offset from the mean pose
        offsets = p.hypotheses - p.pose[:, None]
        steps = [np.linalg.norm(np.diff(offsets[rows], axis=0), axis=-1).mean() for rows in frames.sequence_rows()]
        return float(np.mean(steps))

    assert jitter(pred) < 0.5 * jitter(independent)
    # the point estimate is not what coherence changes
    assert abs(np.linalg.norm(pred.pose - frames.target_xyz.numpy(), axis=-1).mean()
               - np.linalg.norm(independent.pose - frames.target_xyz.numpy(), axis=-1).mean()) < 0.02
