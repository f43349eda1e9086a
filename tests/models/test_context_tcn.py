"""The temporal convolution's receptive field, causality and edge padding: one pass over a whole
sequence gives every frame what its own window gives it."""

import pytest
import torch

from diffpose3d.data.windows import gather_window
from diffpose3d.models.context_tcn import TemporalConvEncoder, receptive_blocks

J, C = 5, 3


def _net(frames: int, causal: bool) -> TemporalConvEncoder:
    torch.manual_seed(0)
    net = TemporalConvEncoder(J, C, frames=frames, width=8, channels=32, dropout=0.0, causal=causal)
    torch.nn.init.normal_(net.xyz.weight, std=0.1)  # the pose head starts at zero
    for module in net.modules():  # non-trivial running statistics, so eval mode is not the identity BN
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("frames, blocks", [(9, 1), (27, 2), (81, 3), (243, 4)])
def test_receptive_field_is_a_power_of_three(frames, blocks):
    assert receptive_blocks(frames) == blocks
    net = TemporalConvEncoder(J, C, frames=frames, width=4, channels=8)
    assert [b.dilation for b in net.blocks] == [3 ** (i + 1) for i in range(blocks)]
    for bad in (frames - 1, frames + 2):
        with pytest.raises(ValueError, match="power of 3"):
            receptive_blocks(bad)


@pytest.mark.parametrize("frames", [9, 27])
@pytest.mark.parametrize("causal", [False, True])
def test_a_valid_pass_maps_T_plus_R_minus_1_frames_to_T(frames, causal):
    assert not TemporalConvEncoder(J, C, frames=frames).xyz.weight.any()  # a fresh pose head is zero
    net = _net(frames, causal)
    xyz, feats = net(torch.randn(2, 10 + frames - 1, J, C), padded=True)
    assert xyz.shape == (2, 10, J, 3) and feats.shape == (2, 10, J, 8)
    assert torch.all(xyz[:, :, 0] == 0)  # root-relative
    with pytest.raises(AssertionError, match="at least"):
        net(torch.randn(1, frames - 1, J, C), padded=True)


@pytest.mark.parametrize("frames", [9, 27])
@pytest.mark.parametrize("causal", [False, True])
def test_each_output_sees_exactly_its_receptive_field(frames, causal):
    """Changing input frame s changes output t only for s in t - (R-1)/2 .. t + (R-1)/2 (centred)
    or t - (R-1) .. t (causal): a causal model never looks ahead."""
    net = _net(frames, causal)
    T = 3 * frames
    uv = torch.randn(1, T, J, C)
    base, _ = net(uv)
    before, after = net.context_frames
    assert (before, after) == ((frames - 1, 0) if causal else ((frames - 1) // 2, (frames - 1) // 2))
    for s in (0, frames, T // 2, T - 1):
        moved = uv.clone()
        moved[0, s] += 1.0
        changed = (net(moved)[0] - base).abs().amax(dim=(0, 2, 3)) > 1e-6
        t = torch.arange(T)
        inside = (s >= t - before) & (s <= t + after)
        # frames beyond the ends repeat the first/last one: edge outputs also see the edge frame
        inside |= (s == 0) & (t - before < 0)
        inside |= (s == T - 1) & (t + after > T - 1)
        assert not changed[~inside].any(), f"input {s} reached outputs outside the receptive field"
        assert changed[t == s].all()


@pytest.mark.parametrize("causal", [False, True])
def test_one_pass_over_a_sequence_equals_one_window_per_frame(causal):
    """What inference computes (the whole edge-padded sequence at once) is what each frame's own
    receptive-field window gives, edge-padded the same way (what training chunks see)."""
    frames = 27
    net = _net(frames, causal)
    seq = torch.randn(40, J, C)
    xyz, feats = net(seq.unsqueeze(0))
    before, _ = net.context_frames
    windows = torch.stack([gather_window(seq, t - before, frames) for t in range(len(seq))])
    xyz_w, feats_w = net(windows, padded=True)
    torch.testing.assert_close(xyz_w[:, 0], xyz[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(feats_w[:, 0], feats[0], atol=1e-5, rtol=1e-4)
    # a chunk of consecutive frames in one valid pass, as stage 1 trains
    chunk = gather_window(seq, 10 - before, 8 + frames - 1).unsqueeze(0)
    torch.testing.assert_close(net(chunk, padded=True)[0][0], xyz[0, 10:18], atol=1e-5, rtol=1e-4)


def test_a_clip_shorter_than_the_field_is_edge_padded():
    net = _net(27, False)
    one = torch.randn(1, 1, J, C)
    xyz, _ = net(one)
    torch.testing.assert_close(xyz, net(one.expand(1, 27, J, C).contiguous(), padded=True)[0])


def test_a_config_with_another_receptive_field_is_refused_in_one_line():
    from diffpose3d.config import load_config
    from diffpose3d.errors import ConfigError

    assert load_config(None, ["model.encoder.kind=tcn", "model.encoder.frames=81"]).model.encoder.frames == 81
    with pytest.raises(ConfigError, match="model.encoder.frames .*power of 3.*got 30"):
        load_config(None, ["model.encoder.kind=tcn", "model.encoder.frames=30"])
    with pytest.raises(ConfigError, match="train.chunk_frames"):
        load_config(None, ["train.chunk_frames=0"])
