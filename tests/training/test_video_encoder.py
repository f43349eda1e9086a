"""Stage 1 of the video model on a few hundred real HumanEva-I frames (training windows, their loss),
and the whole-sequence encoding of its context (`context.encode_sequences`)."""

import math

import pytest
import torch

from diffpose3d.config import load_config
from diffpose3d.context import encode_sequences
from diffpose3d.data.frames import build_frames
from diffpose3d.data.humaneva import load_humaneva
from diffpose3d.data.mirror import flip_keypoints, flip_pose
from diffpose3d.model import DiffPoseModel
from diffpose3d.skeleton import get_skeleton
from diffpose3d.training.batches import FrameBatches
from diffpose3d.training.loop import Budget
from diffpose3d.training.stages import lifter_mpjpe_mm, train_encoder
from diffpose3d.training.windows import TrainingWindows, window_loss

SKELETON = get_skeleton("humaneva15")
PERM = SKELETON.flip_permutation()
WINDOW = 27


def tensors(seqs):
    kp = [torch.as_tensor(s.keypoints_uv(), dtype=torch.float32) for s in seqs]
    xyz = [torch.as_tensor(s.pose_3d_root_relative(), dtype=torch.float32) for s in seqs]
    return kp, xyz


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny ops: one thread beats two contended ones on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sequences(humaneva_dir):
    files = (humaneva_dir / "data_3d_humaneva15_train.npz", humaneva_dir / "data_2d_humaneva15_gt_train.npz")
    train = load_humaneva(*files, subjects="S1", actions="Box", cameras=0)  # 4 chunks, 248 frames
    val = load_humaneva(*files, subjects="S1", actions="Jog", cameras=0)  # 90 + 27 frames
    tiny = load_humaneva(*files, subjects="S3", actions="Gestures 1 chunk5", cameras=0)  # 2 frames
    return train, val, tiny


@pytest.fixture(scope="module")
def real(sequences):
    return tuple(tensors(s) for s in sequences)


@pytest.fixture(scope="module")
def trained(sequences, one_thread):
    """Stage 1 of a small video model (`train.train_encoder` on random 27-frame windows)."""
    train_seqs, val_seqs, _ = sequences
    torch.manual_seed(0)
    cfg = load_config(None, [
        "model.encoder.kind=video", f"model.encoder.frames={WINDOW}", "model.encoder.stride=9", "model.encoder.width=32",
        "model.encoder.blocks=1", "model.encoder.heads=4", "model.encoder.dropout=0", "evidence.source=keypoints",
        "train.encoder_epochs=3", "train.window_batch_size=4", "train.encoder_lr=2e-3", "train.ema_decay=0.9",
        "train.velocity_weight=0.1", "train.eval_every=1", "train.progress=false",
    ])
    model = DiffPoseModel(cfg)
    train = build_frames(train_seqs, SKELETON, cfg.evidence)
    val = build_frames(val_seqs, SKELETON, cfg.evidence, seed_offset=100_000)
    info = train_encoder(model, FrameBatches(train), val, cfg, torch.device("cpu"), Budget(0.0))
    return model.encoder, info, model, val


def test_training_lowers_the_loss_and_keeps_the_best_ema(trained) -> None:
    enc, info, model, val = trained
    h = info["history"]
    assert [r["epoch"] for r in h] == [1, 2, 3]
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    vals = [r["val_mpjpe_mm"] for r in h]
    assert all(math.isfinite(v) and 0 < v < 2000 for v in vals)
    assert info["best_val_mpjpe_mm"] == min(vals) and h[info["best_epoch"] - 1]["val_mpjpe_mm"] == min(vals)
    # The encoder holds the best EMA weights: re-scoring it gives the recorded validation number.
    assert lifter_mpjpe_mm(model, enc, val)[0] == pytest.approx(info["best_val_mpjpe_mm"], rel=1e-5)


def test_training_windows_pad_short_chunks_and_mark_real_frames(sequences) -> None:
    _, _, tiny = sequences
    frames = build_frames(tiny, SKELETON, load_config(None, ["evidence.source=keypoints"]).evidence)
    windows = TrainingWindows(frames, WINDOW, seed=3)
    assert windows.count == 1 and len(frames) == 2
    uv, xyz, valid = windows.batch(torch.tensor([0]))
    assert uv.shape == (1, WINDOW, 15, 2) and xyz.shape == (1, WINDOW, 15, 3)
    assert int(valid.sum()) == 2  # the 2 real frames; the rest are edge copies
    real_rows = valid[0].nonzero().squeeze(1)
    assert torch.equal(uv[0, real_rows], frames.keypoints_uv) and torch.equal(uv[0, 0], frames.keypoints_uv[0])
    assert torch.equal(uv[0, -1], frames.keypoints_uv[1])
    mirrored, mirrored_xyz, _ = windows.batch(torch.tensor([0]), PERM)
    assert torch.equal(mirrored, flip_keypoints(uv, PERM)) and torch.equal(mirrored_xyz, flip_pose(xyz, PERM))
    windows.new_epoch(5)
    first = list(windows.windows)
    windows.new_epoch(5)
    assert windows.windows == first  # a pure function of the seed and the epoch: resuming is exact


def test_encode_sequences_gives_every_frame_of_every_sequence(trained, real) -> None:
    enc = trained[0]
    _, (vkp, _), (kkp, _) = real
    seqs = [kkp[0], vkp[1], vkp[0]]  # 2, 27 and 90 frames
    assert [len(s) for s in seqs] == [2, 27, 90]
    out = encode_sequences(enc, seqs, WINDOW, stride=9, batch_windows=3)
    for (xyz, feats), kp in zip(out, seqs):
        assert xyz.shape == (len(kp), 15, 3) and feats.shape == (len(kp), 15, 32)
        assert torch.equal(xyz[:, 0], torch.zeros(len(kp), 3)) and torch.isfinite(feats).all()
    # Windowing is invisible in the result: one window's worth of batching or another gives the same.
    again = encode_sequences(enc, seqs, WINDOW, stride=9, batch_windows=64)
    assert all(torch.allclose(a[0], b[0], atol=1e-6) for a, b in zip(out, again))
    # A sequence of exactly one window is that window's direct output.
    with torch.no_grad():
        direct, direct_f = enc.eval()(vkp[1][None])
    assert torch.allclose(out[1][0], direct[0], atol=1e-6) and torch.allclose(out[1][1], direct_f[0], atol=1e-6)


def test_flip_tta_in_encode_sequences(trained, real) -> None:
    enc = trained[0]
    _, (vkp, _), _ = real
    seq = vkp[1]
    (xyz, feats), = encode_sequences(enc, [seq], WINDOW, stride=WINDOW, flip_perm=PERM)
    with torch.no_grad():
        a, fa = enc(seq[None])
        b, fb = enc(flip_keypoints(seq, PERM)[None])
    assert torch.allclose(xyz, 0.5 * (a[0] + flip_pose(b[0], PERM)), atol=1e-6)
    assert torch.allclose(feats, 0.5 * (fa[0] + fb[0][:, PERM]), atol=1e-6)


def test_window_loss_ignores_padding_and_adds_velocity() -> None:
    target = torch.zeros(1, 4, 2, 3)
    pred = torch.zeros(1, 4, 2, 3)
    pred[0, 3] = 1.0  # error only on a padded frame
    valid = torch.tensor([[True, True, True, False]])
    loss, mpjpe = window_loss(pred, target, valid, velocity_weight=1.0)
    assert float(mpjpe) == 0.0 and float(loss) == 0.0
    pred[0, 1, :, 0] = 0.3  # a jitter on a real frame: 0.3 m error there, both adjacent velocities off by 0.3
    loss, mpjpe = window_loss(pred, target, valid, velocity_weight=1.0)
    assert float(mpjpe) == pytest.approx(0.1) and float(loss) == pytest.approx(0.1 + 0.3)
