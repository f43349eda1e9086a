import pytest
import torch

from diffpose3d.diffusion.schedule import ALPHA_BAR_FLOOR, Schedule, cosine_alpha_bar, linear_alpha_bar, make_schedule


@pytest.mark.parametrize("name", ["cosine", "linear"])
@pytest.mark.parametrize("K", [1, 5, 50, 1000])
def test_schedule_properties(name: str, K: int) -> None:
    s = make_schedule(name, K)
    a = s.alpha_bar
    assert a.dtype == torch.float64 and a.shape == (K + 1,)
    assert a[0] == 1.0
    assert torch.all(a[1:] < a[:-1])
    assert a[-1] == pytest.approx(ALPHA_BAR_FLOOR)
    assert torch.all(a > 0)


def test_linear_matches_ddpm_product_at_1000_steps() -> None:
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    expected = torch.cumprod(1 - betas, 0)
    got = linear_alpha_bar(1000)[1:]
    # Only the affine floor map separates them, and the raw product ends near 4e-5.
    assert torch.allclose(got, expected, atol=2e-4)


def test_cosine_is_smooth_near_zero() -> None:
    a = cosine_alpha_bar(50)
    assert 0.99 < a[1] < 1.0


def test_helpers_follow_input_dtype() -> None:
    s = make_schedule("cosine", 10)
    like = torch.zeros(3, dtype=torch.float32)
    sig, noise = s.signal_noise(torch.tensor([0, 10, 5]), like)
    assert sig.dtype == torch.float32
    assert sig[0] == 1.0 and noise[0] == 0.0
    assert torch.allclose(sig**2 + noise**2, torch.ones(3))
    assert torch.allclose(s.at(torch.tensor([10]), like), torch.tensor([ALPHA_BAR_FLOOR], dtype=torch.float32))


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        make_schedule("quadratic", 10)
    with pytest.raises(AssertionError):
        Schedule(K=3, alpha_bar=torch.ones(3, dtype=torch.float64))


def test_at_broadcasts_per_frame_steps_and_takes_ints() -> None:
    s = make_schedule("linear", 20)
    like = torch.zeros(4, 17, 5, dtype=torch.float32)
    k = torch.tensor([0, 3, 11, 20])
    a = s.at(k, like)
    assert a.shape == (4, 1, 1) and a.dtype == torch.float32
    assert torch.equal(a[:, 0, 0], s.alpha_bar[k].float())
    assert s.at(7, like).shape == () and float(s.at(7, like, dtype=torch.float64)) == float(s.alpha_bar[7])
