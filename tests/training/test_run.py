"""A tiny end-to-end run: train both stages on a few hundred real HumanEva-I frames, save the bundle,
load it back and evaluate it with the HumanEva protocol."""

import math

import numpy as np
import pytest

from diffpose3d.bundle import load_bundle
from diffpose3d.cli import main
from diffpose3d.config import load_config
from diffpose3d.data.splits import training_splits
from diffpose3d.evaluation.scoring import TEST_SEED_OFFSET, evaluate_checkpoint, score_model
from diffpose3d.training.run import train


@pytest.fixture(scope="module")
def tiny_run(humaneva_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = load_config(None, [
        f"data.data_3d={humaneva_dir / 'data_3d_humaneva15_train.npz'}",
        f"data.data_2d={humaneva_dir / 'data_2d_humaneva15_gt_train.npz'}",
        "data.train_subjects=S1", "data.actions=Walk", "data.stride=3", "data.test_stride=3",
        "model.encoder.width=32", "model.encoder.blocks=1", "model.denoiser.width=32", "model.denoiser.blocks=1",
        "train.encoder_epochs=6", "train.denoiser_epochs=3", "train.eval_every=2", "train.batch_size=64",
        "train.progress=false", "train.threads=1",
    ])
    info = train(cfg, out)
    return out, info


def test_training_learns_and_writes_a_loadable_bundle(tiny_run):
    out, info = tiny_run
    assert 200 <= info["train_frames"] <= 1500
    h = info["stage1"]["history"]
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert math.isfinite(info["stage2"]["best_val_mpjpe_mm"])
    for name in ("model.safetensors", "config.yaml", "info.json"):
        assert (out / name).is_file()
    model, loaded_info = load_bundle(out)
    assert loaded_info["train_frames"] == info["train_frames"]
    assert model.residual_std.shape == (15, 3) and float(model.residual_std[1:].min()) > 0


def test_evaluate_checkpoint_on_the_held_out_blocks(tiny_run):
    out, _ = tiny_run
    reports = evaluate_checkpoint(out, split="test")
    assert set(reports) == {"diffpose", "lifter"}
    table = reports["diffpose"].tables["p_mpjpe_action_subject"]
    assert reports["diffpose"].hypotheses == 5
    value = reports["diffpose"].summary["p_mpjpe"]
    assert 0 < value < 1000 and np.isfinite(value)
    assert "Walk" in table.format()


def test_score_model_draws_the_test_evidence_from_its_seed_offset(tiny_run):
    out, _ = tiny_run
    model, _ = load_bundle(out)
    cfg = model.config
    test = training_splits(cfg)["test"]

    def lifter(offset):
        return score_model(model, test, cfg.evidence, cfg.inference, "humaneva", offset)["lifter"].summary["p_mpjpe"]

    assert lifter(TEST_SEED_OFFSET) == lifter(TEST_SEED_OFFSET)  # one realisation, reproducible
    assert lifter(TEST_SEED_OFFSET + 1) != lifter(TEST_SEED_OFFSET)  # another detector draw


def test_authors_mode_is_one_deterministic_hypothesis(tiny_run):
    out, _ = tiny_run
    reports = evaluate_checkpoint(out, split="test", inference={"mode": "authors"})
    assert reports["authors"].hypotheses == 1


def test_cli_train_then_evaluate_with_checkpoint(humaneva_dir, tmp_path):
    out = tmp_path / "cli_run"
    code = main([
        "train", "--config", "configs/humaneva_frame.yaml", "--out", str(out),
        "--set", f"data.data_3d={humaneva_dir / 'data_3d_humaneva15_train.npz'}",
        "--set", f"data.data_2d={humaneva_dir / 'data_2d_humaneva15_gt_train.npz'}",
        "--set", "data.train_subjects=S2", "--set", "data.actions=Jog", "--set", "data.stride=4",
        "--set", "model.denoiser.width=16", "--set", "model.denoiser.blocks=1", "--set", "model.encoder.width=16",
        "--set", "model.encoder.blocks=1", "--set", "train.encoder_epochs=1", "--set", "train.denoiser_epochs=1",
        "--set", "train.progress=false",
    ])
    assert code == 0 and (out / "config.yaml").is_file()
    report = tmp_path / "report.json"
    code = main([
        "evaluate", "--checkpoint", str(out), "--dataset", "humaneva",
        "--data-3d", str(humaneva_dir / "data_3d_humaneva15_train.npz"),
        "--data-2d", str(humaneva_dir / "data_2d_humaneva15_gt_train.npz"),
        "--split", "Train", "--subjects", "S2", "--actions", "Jog", "--out", str(report),
        "--hypotheses", "2", "--steps", "2",
    ])
    assert code == 0 and report.is_file()


def test_dataset_depth_prior_is_fitted_saved_and_used(humaneva_dir, tmp_path):
    import torch

    from diffpose3d.data.frames import build_frames
    from diffpose3d.data.splits import training_splits
    from diffpose3d.evidence.mixture2d import point_mixture

    cfg = load_config(None, [
        f"data.data_3d={humaneva_dir / 'data_3d_humaneva15_train.npz'}",
        f"data.data_2d={humaneva_dir / 'data_2d_humaneva15_gt_train.npz'}",
        "data.train_subjects=S1", "data.actions=Jog", "data.stride=4",
        "model.encoder.width=16", "model.encoder.blocks=1", "model.denoiser.width=16", "model.denoiser.blocks=1",
        "model.diffusion.depth_prior=dataset", "model.diffusion.depth_components=2",
        "train.encoder_epochs=1", "train.denoiser_epochs=1", "train.progress=false", "train.threads=1",
    ])
    train(cfg, tmp_path / "run")
    model, _ = load_bundle(tmp_path / "run")
    prior = model.depth_prior()
    assert prior.weights.shape == (15, 2) and torch.allclose(prior.weights.sum(-1), torch.ones(15))
    # the mixture's mean depth per joint is the training frames' mean root-relative depth
    frames = build_frames(training_splits(cfg)["train"], model.skeleton, cfg.evidence)
    z = frames.target_xyz[..., 2]
    mixture_mean = (prior.weights * prior.means[..., 0]).sum(-1)
    torch.testing.assert_close(mixture_mean, z.mean(0), atol=0.01, rtol=0.0)
    # H_K's z part follows the prior, not the lifter: a far-off lifter depth leaves it in place
    kp = frames.keypoints_uv[:4]
    xyz = torch.zeros(4, 15, 3)
    xyz[..., 2] = 5.0
    hk = model.initial_distribution(point_mixture(kp, 0.01), xyz)
    hk_z = (hk.weights * hk.means[..., 4]).sum(-1)
    assert (hk_z - mixture_mean).abs().max() < 0.05



def test_the_log_counts_cpu_minutes_for_a_learning_curve(tiny_run):
    import json

    out, _ = tiny_run
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    cpu = [r["cpu_minutes"] for r in records]
    assert len(cpu) >= 3 and cpu == sorted(cpu) and cpu[-1] > 0
    assert all(r["val_mpjpe_mm"] > 0 for r in records)
