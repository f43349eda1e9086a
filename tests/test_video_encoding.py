"""Stage 1 of the video model on a few hundred real HumanEva-I frames, and whole-sequence encoding."""

import math

import pytest
import torch

from diffpose3d.data.humaneva import load_humaneva
from diffpose3d.data.windows import flip_keypoints, flip_pose
from diffpose3d.models.context_video import VideoContextEncoder
from diffpose3d.skeleton import get_skeleton
from diffpose3d.video_encoding import encode_sequences, train_video_encoder, window_loss

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
def real(humaneva_dir):
    files = (humaneva_dir / "data_3d_humaneva15_train.npz", humaneva_dir / "data_2d_humaneva15_gt_train.npz")
    train = load_humaneva(*files, subjects="S1", actions="Box", cameras=0)  # 4 chunks, 248 frames
    val = load_humaneva(*files, subjects="S1", actions="Jog", cameras=0)  # 90 + 27 frames
    tiny = load_humaneva(*files, subjects="S3", actions="Gestures 1 chunk5", cameras=0)  # 2 frames
    return tensors(train), tensors(val), tensors(tiny)


@pytest.fixture(scope="module")
def trained(real, one_thread):
    (tkp, txyz), (vkp, vxyz), _ = real
    torch.manual_seed(0)
    enc = VideoContextEncoder(list(SKELETON.parents), frames=WINDOW, width=32, depth=1, heads=4)
    info = train_video_encoder(
        enc, tkp, txyz, vkp, vxyz, window=WINDOW, epochs=3, batch_size=4, lr=2e-3, weight_decay=1e-4,
        ema_decay=0.9, flip_perm=PERM, flip_augment=True, max_minutes=0.0, seed=0, device="cpu",
        progress=False, velocity_weight=0.1, eval_every=1,
    )
    return enc, info


def test_training_lowers_the_loss_and_keeps_the_best_ema(trained, real) -> None:
    enc, info = trained
    h = info["history"]
    assert [r["epoch"] for r in h] == [1, 2, 3] and info["epochs_run"] == 3
    assert h[-1]["train_mpjpe_mm"] < h[0]["train_mpjpe_mm"]
    vals = [r["val_mpjpe_mm"] for r in h]
    assert all(math.isfinite(v) and 0 < v < 2000 for v in vals)
    assert info["best_val_mpjpe_mm"] == min(vals) and h[info["best_epoch"] - 1]["val_mpjpe_mm"] == min(vals)
    assert info["windows_per_second"] > 0
    # The encoder holds the best EMA weights: re-scoring it gives the recorded validation number.
    from diffpose3d.video_encoding import sequences_mpjpe_mm

    _, (vkp, vxyz), _ = real
    assert sequences_mpjpe_mm(enc, vkp, vxyz, WINDOW, WINDOW // 2) == pytest.approx(info["best_val_mpjpe_mm"], rel=1e-5)


def test_encode_sequences_gives_every_frame_of_every_sequence(trained, real) -> None:
    enc, _ = trained
    (tkp, _), (vkp, _), (kkp, _) = real
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
    enc, _ = trained
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
