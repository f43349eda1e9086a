"""The temporal-convolution video model end to end on tiny synthetic Human3.6M takes: `train` with
the shipped configs/h36m_video_tcn_all.yaml (sizes and steps shrunk), then `predict` and
`evaluate`; its training chunks carry the receptive field's context frames."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from diffpose3d.bundle import load_bundle
from diffpose3d.cli import main
from diffpose3d.config import load_config
from diffpose3d.data.splits import training_splits
from diffpose3d.evaluation.scoring import evaluate_checkpoint
from diffpose3d.models.context_tcn import TemporalConvEncoder
from diffpose3d.training.run import train
from diffpose3d.training.windows import TrainingWindows

REPO = Path(__file__).resolve().parents[2]
SUBJECTS = ("S1", "S5", "S6", "S7", "S8")


def _take(frames: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth synthetic take `(frames, 32, 3)` in metres: a fixed body whose joints swing."""
    body = rng.normal(0.0, 0.25, size=(1, 32, 3)) + [0.0, 0.0, 1.0]
    phase = rng.uniform(0, 2 * np.pi, size=(1, 32, 3))
    t = np.arange(frames)[:, None, None] / 50.0
    return (body + 0.1 * np.sin(2 * np.pi * 0.8 * t + phase)).astype(np.float32)


@pytest.fixture(scope="module")
def data_3d(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    takes = {s: {"Walking": _take(260, rng), "Eating": _take(200, rng)} for s in SUBJECTS}
    path = tmp_path_factory.mktemp("h36m") / "data_3d_h36m.npz"
    np.savez(path, positions_3d=np.array(takes, dtype=object))
    return path


@pytest.fixture(scope="module")
def tcn_run(data_3d, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tcn_run")
    cfg = load_config(REPO / "configs" / "h36m_video_tcn_all.yaml", [
        f"data.data_3d={data_3d}", "data.holdout_gap_frames=4", "data.test_stride=2",
        "model.encoder.hidden=32", "model.encoder.width=16", "model.denoiser.width=16", "model.denoiser.blocks=1",
        "train.chunk_frames=16", "train.window_batch_size=4", "train.epoch_steps=6", "train.encoder_epochs=3",
        "train.denoiser_epochs=1", "train.eval_every=1", "train.val_max_frames=60", "train.progress=false",
        "train.threads=1",
    ])
    try:
        info = train(cfg, out)
    finally:
        torch.set_num_threads(threads)
    return out, info, cfg


def test_the_shipped_config_trains_a_tcn_bundle(tcn_run):
    out, info, cfg = tcn_run
    assert cfg.model.encoder.kind == "tcn" and cfg.train.precision == "bf16" and cfg.train.max_minutes == 0
    model, loaded = load_bundle(out)
    assert model.is_video and isinstance(model.encoder, TemporalConvEncoder)
    assert model.encoder.frames == 27 and not model.encoder.causal
    assert loaded["train_frames"] == info["train_frames"] > 1000
    assert info["stage1"]["single_frames"] is None  # chunks from the first step
    history = info["stage1"]["history"]
    assert len(history) == 3 and all(np.isfinite([h["val_mpjpe_mm"], h["train_loss"]]).all() for h in history)
    # (18 steps on random bodies: too few for the loss to fall reliably; learning is measured by
    # benchmarks/bench_video_encoders.py --data)
    assert model.encoder.xyz.weight.abs().max() > 0  # the pose head, zero at the start, was trained
    assert np.isfinite(info["stage2"]["best_val_mpjpe_mm"])
    # the BatchNorm statistics travel with the bundle
    assert float(model.encoder.bn_expand.running_var.sub(1).abs().max()) > 0


def test_predict_and_evaluate_take_the_tcn_path(tcn_run, tmp_path):
    out, _, cfg = tcn_run
    reports = evaluate_checkpoint(out, split="test")
    assert set(reports) == {"diffpose", "lifter"}
    for report in reports.values():
        assert 0 < report.summary["mpjpe"] < 5000 and 0 < report.summary["mpjve"] < 5000
    seq = training_splits(cfg)["test"][0]
    kp_file = tmp_path / "take.npz"
    np.savez(kp_file, keypoints=seq.keypoints_2d.astype(np.float32), image_size=np.array(seq.image_size), layout="h36m17")
    assert main(["predict", str(kp_file), "--out", str(tmp_path / "pred"), "--checkpoint", str(out), "--quiet"]) == 0
    with np.load(tmp_path / "pred" / "take.npz") as result:
        assert result["pose_3d"].shape == (len(seq), 17, 3) and np.isfinite(result["pose_3d"]).all()


def test_tcn_context_is_mirror_symmetric_with_flip_tta(tcn_run, mirrored_context):
    """What stage 2 relies on to mirror a batch without re-encoding it."""
    out, _, cfg = tcn_run
    _, _, _, (xyz_m, feats_m), (xyz_f, feats_f) = mirrored_context(out, cfg)
    torch.testing.assert_close(xyz_f, xyz_m, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(feats_f, feats_m, atol=1e-4, rtol=1e-4)


def test_training_chunks_carry_the_receptive_field_around_their_frames():
    """Inputs: the chunk's frames plus (before, after) context frames, edge-padded at a sequence's ends;
    targets and `valid`: the chunk's own frames."""
    lengths = [40, 5]
    frame_no = torch.cat([torch.arange(n, dtype=torch.float32) + 100 * s for s, n in enumerate(lengths)])
    rows = [np.arange(0, 40), np.arange(40, 45)]
    frames = SimpleNamespace(sequence_rows=lambda: rows, keypoints_uv=frame_no[:, None, None].expand(-1, 2, 2),
                             target_xyz=frame_no[:, None, None].expand(-1, 2, 3))
    windows = TrainingWindows(frames, 8, seed=0, context=(4, 2))
    uv, xyz, valid = windows.batch(torch.arange(len(windows.windows)))
    assert uv.shape[1] == 4 + 8 + 2 and xyz.shape[1] == 8
    for b, (s, start) in enumerate(windows.windows):
        n = lengths[s]
        want_in = 100 * s + np.clip(np.arange(start - 4, start + 10), 0, n - 1)
        want_out = 100 * s + np.clip(np.arange(start, start + 8), 0, n - 1)
        np.testing.assert_array_equal(uv[b, :, 0, 0].numpy(), want_in)
        np.testing.assert_array_equal(xyz[b, :, 0, 0].numpy(), want_out)
        np.testing.assert_array_equal(valid[b].numpy(), (np.arange(start, start + 8) >= 0) & (np.arange(start, start + 8) < n))
